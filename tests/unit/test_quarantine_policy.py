"""The retry policy of the catalog (``orchestration/quarantine.py``): backoff, quarantine, what counts."""

from __future__ import annotations

import math

import pytest

from dubbing_pipeline.orchestration.quarantine import (
    QUARANTINED,
    READY,
    WAITING,
    Failure,
    Ledger,
    RetryPolicy,
    backoff_s,
    check_asset,
    judge,
    release_command,
    streak,
)
from dubbing_pipeline.settings import Settings

POLICY = RetryPolicy(base_s=60.0, cap_s=600.0, quarantine_after=5)


@pytest.mark.parametrize(
    ("failures", "wait"), [(0, 0.0), (1, 60.0), (2, 120.0), (3, 240.0), (4, 480.0), (5, 600.0), (90, 600.0)]
)
def test_the_wait_doubles_per_failure_up_to_the_cap(failures: int, wait: float) -> None:
    assert backoff_s(POLICY, failures) == wait


def test_no_base_means_no_wait() -> None:
    assert backoff_s(RetryPolicy(base_s=0.0), 4) == 0.0


def test_a_partition_waits_its_backoff_after_its_last_failure() -> None:
    assert judge(POLICY, 0, None, 0.0).state == READY
    waiting = judge(POLICY, 2, 1000.0, 1119.0)
    assert waiting.state == WAITING and waiting.not_before == 1120.0
    assert "2 consecutive failed runs" in waiting.reason() and "next automatic try after" in waiting.reason()
    assert judge(POLICY, 2, 1000.0, 1120.0).state == READY
    assert judge(POLICY, 4, 1000.0, 1479.9).state == WAITING


def test_after_n_failures_a_partition_is_quarantined_whatever_the_time() -> None:
    verdict = judge(POLICY, 5, 1000.0, math.inf)
    assert verdict.state == QUARANTINED and verdict.reason().startswith("quarantined: 5 consecutive")
    assert judge(POLICY, 7, 0.0, 1e12).state == QUARANTINED
    assert judge(RetryPolicy(quarantine_after=0), 50, 0.0, 1e12).state == READY  # 0: never


def _f(run_id: str, key: str | None, at: float) -> Failure:
    return Failure(run_id, key, at)


def test_the_streak_counts_the_newest_failures_of_the_same_inputs() -> None:
    failures = [_f("r1", "k1", 1.0), _f("r2", "k2", 2.0), _f("r3", "k2", 3.0), _f("r4", "k2", 4.0)]
    assert [f.run_id for f in streak(failures, "k2", -math.inf)] == ["r4", "r3", "r2"]
    # new inputs (a run key no failure had): nothing counts, the partition is asked for at once
    assert streak(failures, "k3", -math.inf) == []
    # the older inputs' failures never count for the newer ones, even when those fail again
    assert [f.run_id for f in streak([*failures, _f("r5", "k1", 5.0)], "k1", -math.inf)] == ["r5"]
    # since a success or a release: the failures before it are forgotten
    assert [f.run_id for f in streak(failures, "k2", 3.0)] == ["r4"]
    # without a run key (the CLI, the check): that of the newest failure
    assert [f.run_id for f in streak(failures, None, -math.inf)] == ["r4", "r3", "r2"]


def test_a_run_of_another_trigger_resets_the_streak() -> None:
    """A failed run the chain sensor or the UI launched (another run key, or none) ends the count."""
    failures = [_f("r1", "k", 1.0), _f("r2", None, 2.0), _f("r3", "k", 3.0)]
    assert [f.run_id for f in streak(failures, "k", -math.inf)] == ["r3"]


def test_the_ledger_round_trips_and_tolerates_nothing_stored() -> None:
    ledger = Ledger({"es|a": 12.5}, {"b": "run-1"})
    assert Ledger.from_json(ledger.to_json()) == ledger
    assert Ledger.from_json(None) == Ledger() and Ledger.from_json([1]) == Ledger()


def test_the_policy_comes_from_the_settings_rows() -> None:
    settings = Settings.from_env(
        {
            "DUBBING_RETRY_BACKOFF_S": "30",
            "DUBBING_RETRY_BACKOFF_MAX_S": "90",
            "DUBBING_QUARANTINE_AFTER": "3",
        }
    )
    assert RetryPolicy.of(settings) == RetryPolicy(30.0, 90.0, 3)
    assert RetryPolicy.of(Settings()) == RetryPolicy()


def test_each_half_speaks_through_its_own_asset_and_release_command() -> None:
    assert check_asset("talk").to_user_string() == "source_video"
    assert check_asset("es|talk").to_user_string() == "dubbed_video"
    assert release_command("talk") == "dubbing-pipeline retry talk"
    assert release_command("es|talk") == "dubbing-pipeline retry talk --to es"
