"""Failures back off, then quarantine: the catalog on a real Dagster instance on PostgreSQL.

Every failure here is a real run that failed: a job of the catalog's job name, executed in this
process with the tags the schedule gives the run it launches (the request's tags and its run key),
whose one step raises. Time is injected (``now``): no assertion waits for a clock.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dubbing_pipeline import stages
from dubbing_pipeline.cli import common, main
from dubbing_pipeline.definitions import build_definitions
from dubbing_pipeline.orchestration import catalog as cat
from dubbing_pipeline.orchestration import quarantine as q
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage, make_storage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standins import StandIns

POLICY = q.RetryPolicy(base_s=100.0, cap_s=1000.0, quarantine_after=3)


@pytest.fixture(scope="module")
def graph() -> Any:
    return build_definitions(Settings()).resolve_asset_graph()


def _fps(uris: Any) -> dict[str, str | None]:
    return {u: cat._local_fingerprint(u[len("file://") :]) for u in uris}


def _failing_job(name: str, error: str) -> dg.JobDefinition:
    @dg.op(name="step")
    def step() -> None:
        raise RuntimeError(error)

    @dg.job(name=name)
    def job() -> None:
        step()

    return job


def fail(instance: dg.DagsterInstance, request: dg.RunRequest, job: str, error: str) -> float:
    """Run ``request`` as the schedule would (its tags and its run key) and fail; when it ended."""
    tags = {**request.tags, "dagster/run_key": str(request.run_key)}
    result = _failing_job(job, error).execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert not result.success
    record = instance.get_run_record_by_id(result.run_id)
    assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.FAILURE
    assert record.end_time is not None
    return record.end_time


def check_evaluations(instance: dg.DagsterInstance, pk: str) -> list[dg.AssetCheckEvaluation]:
    """The ``not_quarantined`` evaluations of ``pk`` in the event log, oldest first."""
    records = instance.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION), ascending=True
    )
    found = [
        r.event_log_entry.dagster_event.event_specific_data
        for r in records
        if r.event_log_entry.dagster_event
    ]
    return [e for e in found if isinstance(e, dg.AssetCheckEvaluation) and e.partition == pk]


class Catalog:
    """One catalog of local videos, planned on the Postgres instance at an injected time."""

    def __init__(
        self, instance: dg.DagsterInstance, graph: Any, tmp: Path, vid: str, langs: tuple[str, ...]
    ) -> None:
        self.instance, self.graph = instance, graph
        self.storage: MediaStorage = make_storage(str(tmp / "media"))
        source = tmp / f"{vid}.mp4"
        source.write_bytes(b"video" * 20)
        self.catalog = cat.Catalog([cat.CatalogVideo(vid, source.as_uri(), langs)])

    def plan(self, now: float) -> cat.CatalogPlan:
        return cat.plan_catalog(
            self.instance, self.graph, self.catalog, self.storage, _fps, retry=POLICY, now=now
        )


def _cli(monkeypatch: pytest.MonkeyPatch, home: Path, storage_dir: Path, *argv: str) -> int:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DUBBING_STORAGE_URL", str(storage_dir))
    monkeypatch.setenv("DUBBING_QUARANTINE_AFTER", str(POLICY.quarantine_after))
    common.local_instance.cache_clear()
    try:
        return main(list(argv))
    finally:
        common.local_instance().dispose()
        common.local_instance.cache_clear()


def test_a_failing_video_backs_off_is_quarantined_and_released_by_the_cli(
    pg: dg.DagsterInstance,
    pg_home: Path,
    graph: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    c = Catalog(pg, graph, tmp_path, "flaky", ("es",))
    first = c.plan(now=0.0).source_requests
    assert [r.partition_key for r in first] == ["flaky"]

    # one failure: asked again only once 100 s have passed since it ended, with the same run key
    ended = fail(pg, first[0], "source_half", "separator crashed: out of memory")
    plan = c.plan(now=ended + 99)
    assert not plan.source_requests and plan.skipped["flaky"].startswith("backing off: 1 consecutive")
    again = c.plan(now=ended + 100).source_requests
    assert [r.run_key for r in again] == [first[0].run_key]

    # two: 200 s
    ended = fail(pg, again[0], "source_half", "separator crashed: out of memory")
    assert not c.plan(now=ended + 199).source_requests
    again = c.plan(now=ended + 200).source_requests
    assert len(again) == 1

    # three: quarantined, however long one waits; the UI's check fails once, with the error
    ended = fail(pg, again[0], "source_half", "separator crashed: out of memory")
    for later in (1e3, 1e6):
        plan = c.plan(now=ended + later)
        assert not plan.source_requests and not plan.dub_requests
        assert plan.skipped["flaky"].startswith("quarantined: 3 consecutive failed runs")
    evaluations = check_evaluations(pg, "flaky")
    assert len(evaluations) == 1, "reported once, not on every tick"
    failed = evaluations[0]
    assert failed.asset_key == dg.AssetKey("source_video") and failed.check_name == "not_quarantined"
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["failures"].value == 3
    assert "separator crashed: out of memory" in str(failed.metadata["last_error"].value)
    assert q.Ledger.read(c.storage).reported == {"flaky": failed.metadata["last_run_id"].value}

    # the CLI lists it with its failure count and last error
    media = tmp_path / "media"
    capsys.readouterr()
    assert _cli(monkeypatch, pg_home, media, "retry", "--list", "--json") == 0
    listed = {row["partition"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["flaky"]["failures"] == 3
    assert "separator crashed: out of memory" in listed["flaky"]["last_error"]
    assert listed["flaky"]["release"] == "dubbing-pipeline retry flaky"

    # retry releases it: the check passes, the next tick asks for it at once, the backoff reset
    assert _cli(monkeypatch, pg_home, media, "retry", "flaky") == 0
    assert "released flaky" in capsys.readouterr().out
    assert check_evaluations(pg, "flaky")[-1].passed
    plan = c.plan(now=ended + 1)
    assert [r.partition_key for r in plan.source_requests] == ["flaky"] and "flaky" not in plan.skipped
    assert _cli(monkeypatch, pg_home, media, "retry", "--list") == 0
    assert "flaky" not in capsys.readouterr().out
    # one more failure after the release is one failure, not four
    ended = fail(pg, plan.source_requests[0], "source_half", "separator crashed again")
    assert c.plan(now=ended + 99).skipped["flaky"].startswith("backing off: 1 consecutive")


def test_a_quarantined_dub_is_released_by_a_change_of_its_inputs(
    pg: dg.DagsterInstance, graph: Any, tmp_path: Path
) -> None:
    c = Catalog(pg, graph, tmp_path, "inputs", ("es",))
    assert [r.partition_key for r in c.plan(now=0.0).source_requests] == ["inputs"]
    si = StandIns(graph, c.storage, tmp_path / "io")
    si.materialise(pg, stages.SOURCE_HALF, "inputs")  # a real run of the source half
    plan = c.plan(now=0.0)
    assert [r.partition_key for r in plan.dub_requests] == ["es|inputs"] and not plan.source_requests
    request, ended = plan.dub_requests[0], 0.0
    for _ in range(POLICY.quarantine_after):
        ended = fail(pg, request, "dub", "tts provider refused the voice")
        plan = c.plan(now=ended + POLICY.cap_s)
        request = plan.dub_requests[0] if plan.dub_requests else request
    assert not plan.dub_requests and plan.skipped["es|inputs"].startswith("quarantined: 3 consecutive")
    failed = check_evaluations(pg, "es|inputs")[-1]
    assert failed.asset_key == dg.AssetKey("dubbed_video") and not failed.passed
    assert "tts provider refused the voice" in str(failed.metadata["last_error"].value)
    assert failed.metadata["release"].value == "dubbing-pipeline retry inputs --to es"

    # the source half re-made with other data: the dub's inputs (its run key) changed, so it is
    # asked for at once, and the UI's check passes again
    si.salt[("source_video", "inputs")] = "2"
    si.materialise(pg, stages.SOURCE_HALF, "inputs")
    plan = c.plan(now=ended + 1)
    assert [r.partition_key for r in plan.dub_requests] == ["es|inputs"]
    assert plan.dub_requests[0].run_key != request.run_key and "es|inputs" not in plan.skipped
    released = check_evaluations(pg, "es|inputs")[-1]
    assert released.passed and "inputs changed" in str(released.description)
    assert "es|inputs" not in q.Ledger.read(c.storage).reported
    # the new inputs fail once: one failure, backing off, not quarantined
    ended = fail(pg, plan.dub_requests[0], "dub", "tts provider refused the voice")
    assert c.plan(now=ended + 1).skipped["es|inputs"].startswith("backing off: 1 consecutive")


def test_a_success_ends_the_streak(pg: dg.DagsterInstance, graph: Any, tmp_path: Path) -> None:
    """Failures before the partition's last successful run no longer count (the tick reads the
    successes of the failing partitions only: one query per job)."""
    c = Catalog(pg, graph, tmp_path, "mended", ("es",))
    request = c.plan(now=0.0).source_requests[0]
    for _ in range(2):
        ended = fail(pg, request, "source_half", "transient")
    assert c.plan(now=ended + 1).skipped["mended"].startswith("backing off: 2 consecutive")
    job = build_definitions(Settings()).resolve_job_def("source_half")
    tags = {**request.tags, "dagster/run_key": str(request.run_key)}
    pg.create_run_for_job(job, tags=tags, status=dg.DagsterRunStatus.SUCCESS)
    history = q.History.read(pg, partitions=["mended"])
    assert len(history.failures["mended"]) == 2 and history.succeeded["mended"] >= ended
    plan = c.plan(now=ended + 1)
    assert [r.partition_key for r in plan.source_requests] == ["mended"], plan.skipped
