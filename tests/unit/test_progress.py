"""The CLI's progress bars: step events read after a cursor, nothing read without a terminal."""

from __future__ import annotations

import io
import uuid

import dagster as dg
import pytest

from dubbing_pipeline.orchestration.runner import ProgressWatcher


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a"]))
def first() -> int:
    return 1


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a"]))
def second(first: int) -> int:
    if first < 0:
        raise ValueError("never")
    return first + 1


class Terminal(io.StringIO):
    """What tqdm draws on: a stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


JOB = dg.define_asset_job("both", selection=[first, second])
DEFS = dg.Definitions(assets=[first, second], jobs=[JOB])


def _run(instance: dg.DagsterInstance, watcher_stream: io.StringIO | None, batch: int) -> ProgressWatcher:
    job = DEFS.resolve_job_def("both")
    run_id = str(uuid.uuid4())
    watcher = ProgressWatcher(instance, run_id, ["first", "second"], watcher_stream)
    watcher.BATCH = batch
    with watcher:
        result = job.execute_in_process(instance=instance, partition_key="a", run_id=run_id)
    assert result.success
    return watcher


@pytest.mark.parametrize("batch", [1000, 2])  # 2: the cursor pages through the log
def test_bars_count_every_step_of_the_run(batch: int) -> None:
    stream = Terminal()
    with dg.instance_for_test() as instance:
        watcher = _run(instance, stream, batch)
    assert {stage: (p.done, p.failed, len(p.steps)) for stage, p in watcher.progress.items()} == {
        "first": (1, 0, 1),
        "second": (1, 0, 1),
    }
    assert "first" in stream.getvalue() and "1/1 steps" in stream.getvalue()


def test_without_a_terminal_nothing_is_read() -> None:
    with dg.instance_for_test() as instance:
        watcher = _run(instance, None, 1000)
    assert not watcher._thread.is_alive() and watcher._thread.ident is None  # never started
    assert all(p.done == 0 and not p.steps for p in watcher.progress.values())
