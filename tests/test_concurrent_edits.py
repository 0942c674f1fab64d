"""Edits and feedback written at the same time all land, on the local directory (threads and
processes) and on S3 (moto's server, conditional PUTs), and the edits' last observation is the
version stored."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dubbing_pipeline.orchestration.kit import DATA_VERSION_TAG
from dubbing_pipeline.review.edits import (
    Dub,
    Edits,
    check_edits,
    edits_version,
    load_edits,
    update_edits,
    with_change,
)
from dubbing_pipeline.review.feedback import add_feedback, load_feedback
from dubbing_pipeline.storage import LocalStorage, MediaStorage
from dubbing_pipeline.translation.edits_asset import observe_stored

LINES = [f"s{i:04d}" for i in range(14)]
DUB = Dub(line_ids=LINES, speakers=["S1", "S2"], voices=["male", "female"])


@pytest.fixture
def storage(local_or_s3: MediaStorage) -> MediaStorage:
    return local_or_s3


def at_once(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run every job in its own thread, all released at the same moment; re-raise the first error."""
    start = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads)
    return results


def test_twenty_reports_at_once_are_all_stored(storage: MediaStorage) -> None:
    def report(i: int) -> Callable[[], Any]:
        return lambda: add_feedback(storage, "demo", "es", LINES[i % 14], f"note {i}", LINES)

    at_once([report(i) for i in range(20)])
    notes = [item["note"] for item in load_feedback(storage, "demo", "es")]
    assert sorted(notes) == sorted(f"note {i}" for i in range(20))


def _report_from_a_process(root: str, i: int, start: Any) -> None:
    start.wait()
    add_feedback(LocalStorage(root), "demo", "es", LINES[i % 14], f"note {i}", LINES)


def test_twenty_reports_from_twenty_processes_are_all_stored(tmp_path: Path) -> None:
    """The local lock is between processes (two ``feedback`` commands), not only threads."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(20)
    procs = [
        context.Process(target=_report_from_a_process, args=(str(tmp_path), i, start)) for i in range(20)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * 20
    notes = [item["note"] for item in load_feedback(LocalStorage(tmp_path), "demo", "es")]
    assert sorted(notes) == sorted(f"note {i}" for i in range(20))


def test_fourteen_line_edits_a_voice_and_a_term_at_once_are_all_stored(storage: MediaStorage) -> None:
    def edit(**change: Any) -> Callable[[], Any]:
        return lambda: update_edits(
            storage, "demo", "es", lambda e: with_change(e, **change), lambda e: check_edits(e, DUB)
        )

    jobs = [edit(line=line, text=f"Línea {i} corregida.") for i, line in enumerate(LINES)]
    jobs += [edit(voices={"S2": "female"}), edit(glossary={"Ana": "Ana"})]
    results = at_once(jobs)
    stored = load_edits(storage, "demo", "es")
    assert {k: v.text for k, v in stored.lines.items()} == {
        line: f"Línea {i} corregida." for i, line in enumerate(LINES)
    }
    assert stored.voices == {"S2": "female"} and stored.glossary == {"Ana": "Ana"}
    # each edit was made to what was stored when it landed: the versions it returns are all different
    assert len({version for _, _, version in results}) == len(jobs)
    assert edits_version(stored) in {version for _, _, version in results}


class SlowInstance:
    """A Dagster instance whose observations take a random while to be recorded (as over a network),
    so racing ``edit``s record theirs out of order."""

    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self.rng = random.Random(7)
        self.lock = threading.Lock()

    def report_runless_asset_event(self, event: Any) -> None:
        with self.lock:
            pause = self.rng.uniform(0.0, 0.03)
        time.sleep(pause)
        with self.lock:  # one writer of the sqlite event log at a time
            self.instance.report_runless_asset_event(event)


def latest_observed(instance: Any) -> str:
    import dagster as dg

    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("edits"), asset_partitions=["es|demo"]), limit=1
    ).records
    return str(records[0].asset_observation.tags[DATA_VERSION_TAG])


def test_the_last_observation_is_of_the_stored_edits_after_racing_edits(
    tmp_path: Path, instance: Any
) -> None:
    storage = LocalStorage(tmp_path / "media")
    slow = SlowInstance(instance)

    def edit(line: str) -> Callable[[], Any]:
        def run() -> None:
            update_edits(storage, "demo", "es", lambda e: with_change(e, line=line, skip=True))
            observe_stored(slow, storage, "demo", "es")  # type: ignore[arg-type]

        return run

    at_once([edit(line) for line in LINES[:8]])
    stored = load_edits(storage, "demo", "es")
    assert sorted(stored.lines) == LINES[:8]
    assert latest_observed(instance) == edits_version(stored)


def test_an_edit_stored_while_observing_is_observed_too(tmp_path: Path, instance: Any) -> None:
    """Read, observe, read again: a version stored between the read and the observation is observed
    next (deterministically, here: the 'other edit' lands during the first observation)."""
    storage = LocalStorage(tmp_path)
    update_edits(storage, "demo", "es", lambda e: with_change(e, line="s0001", skip=True))
    seen: list[str] = []

    class Racing:
        def report_runless_asset_event(self, event: Any) -> None:
            seen.append(event.tags[DATA_VERSION_TAG])
            instance.report_runless_asset_event(event)
            if len(seen) == 1:  # another edit is stored after this one was read
                update_edits(storage, "demo", "es", lambda e: with_change(e, voices={"S1": "male"}))

    final = observe_stored(Racing(), storage, "demo", "es")  # type: ignore[arg-type]
    stored = load_edits(storage, "demo", "es")
    assert stored.voices == {"S1": "male"} and final == edits_version(stored)
    assert len(seen) == 2 and seen[-1] == edits_version(stored) != seen[0]
    assert latest_observed(instance) == edits_version(stored)
    assert observe_stored(instance, storage, "demo", "es") == final


def test_edits_without_a_change_stay_as_stored(storage: MediaStorage) -> None:
    update_edits(storage, "demo", "es", lambda e: with_change(e, line="s0001", text="Hola."))
    before = storage.get_versioned("edits/demo/es.json")
    old, new, _ = update_edits(storage, "demo", "es", lambda e: with_change(e, line="s0001", text=" Hola. "))
    assert old == new and isinstance(new, Edits)
    assert storage.get_versioned("edits/demo/es.json") == before
