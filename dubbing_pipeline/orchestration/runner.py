"""Run asset jobs in the local Dagster instance (what the CLI does), with per-stage progress."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Never, TextIO

import dagster as dg
from tqdm import tqdm

from dubbing_pipeline.errors import ERROR_CLASSES, DubbingError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import dagster_home

EMBEDDED_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster_home" / "dagster.yaml"


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at ``./dagster_home`` unless set; create it with the embedded config."""
    home = dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        text = (
            EMBEDDED_DAGSTER_YAML.read_text()
            if EMBEDDED_DAGSTER_YAML.exists()
            else "telemetry:\n  enabled: false\n"
        )
        config.write_text(text)
    return home


def stage_of(step_key: str) -> str:
    """``transcript.transcribe_chunk[c0001]`` → ``transcript``."""
    return step_key.split(".", 1)[0].split("[", 1)[0]


@dataclass
class StageProgress:
    started: int = 0
    done: int = 0
    failed: int = 0
    first: float = 0.0
    last: float = 0.0
    steps: set[str] = field(default_factory=set)


class ProgressWatcher:
    """Draws one bar per stage on ``stream`` (a terminal) from the run's step events in the instance,
    read a batch at a time after a cursor. Without a stream it reads nothing: the run's result is
    what counts, and a watcher that re-read the whole event log every half second cost the demo dub
    0.6 s of CPU and GIL time, growing with the square of a run's events."""

    STEP_EVENTS = frozenset({"STEP_START", "STEP_SUCCESS", "STEP_FAILURE"})
    BATCH = 1000

    def __init__(
        self, instance: dg.DagsterInstance, run_id: str, stages: Sequence[str], stream: TextIO | None
    ) -> None:
        self.instance = instance
        self.run_id = run_id
        self.stages = stages
        self.stream = stream
        self.progress: dict[str, StageProgress] = {s: StageProgress() for s in stages}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._bars: dict[str, tqdm[Never]] = {}
        self._cursor: str | None = None

    def __enter__(self) -> ProgressWatcher:
        if self.stream is None:
            return self
        for i, stage in enumerate(self.stages):
            self._bars[stage] = tqdm(
                total=1, desc=f"{stage:<16}", position=i, leave=True, file=self.stream,
                bar_format="{desc} {bar:24} {n_fmt}/{total_fmt} steps {postfix}", dynamic_ncols=False,
                ncols=80, disable=None,
            )  # fmt: skip
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stream is None:
            return
        self._stop.set()
        self._thread.join()
        self._poll()
        for bar in self._bars.values():
            bar.close()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(Exception):  # progress is best effort; the run's result counts
                self._poll()

    def _poll(self) -> None:
        while True:
            batch = self.instance.get_records_for_run(self.run_id, cursor=self._cursor, limit=self.BATCH)
            for record in batch.records:
                self._seen(record.event_log_entry)
            self._cursor = batch.cursor
            if not batch.has_more:
                return

    def _seen(self, entry: dg.EventLogEntry) -> None:
        event = entry.dagster_event
        if event is None or not event.step_key or event.event_type_value not in self.STEP_EVENTS:
            return
        stage = stage_of(event.step_key)
        prog = self.progress.setdefault(stage, StageProgress())
        if event.event_type_value == "STEP_START":
            prog.steps.add(event.step_key)
            prog.first = prog.first or entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            prog.done += 1
            prog.last = entry.timestamp
        else:
            prog.failed += 1
            prog.last = entry.timestamp
        bar = self._bars.get(stage)
        if bar is not None:
            bar.total = max(len(prog.steps), 1)
            bar.n = prog.done
            if prog.failed:
                bar.set_postfix_str("failed", refresh=False)
            elif prog.done and prog.done == len(prog.steps):
                bar.set_postfix_str(f"{prog.last - prog.first:.1f}s", refresh=False)
            bar.refresh()


@dataclass
class RunOutcome:
    success: bool
    run_id: str
    stages: dict[
        str, JsonObject
    ]  # asset name → its materialisation's metadata values; "_run": the run's seconds
    error: DubbingError | None = None
    error_stage: str | None = None


def _failure(result: dg.ExecuteInProcessResult) -> tuple[DubbingError, str | None]:
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        data = event.step_failure_data
        user = data.user_failure_data if data else None
        if user is not None:
            meta = {k: getattr(v, "value", v) for k, v in (user.metadata or {}).items()}
            cls = ERROR_CLASSES.get(str(meta.get("error_code", "")), DubbingError)
            err = cls(str(meta.get("error", user.description or "failed")))
            return err, str(meta.get("error_stage") or stage_of(event.step_key or ""))
        if data and data.error:
            return DubbingError(f"{data.error.cls_name}: {data.error.message}"), stage_of(
                event.step_key or ""
            )
    return DubbingError("the run failed"), None


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, JsonObject]:
    """Each asset's materialisation metadata, as plain values."""
    out: dict[str, JsonObject] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        name = mat.asset_key.to_user_string()
        out[name] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return out


def run_job(
    defs: dg.Definitions,
    job_name: str,
    partition_key: str,
    *,
    stages: Sequence[str],
    progress: TextIO | None = sys.stderr,
    tags: dict[str, str] | None = None,
    log_level: str = "CRITICAL",
    instance: dg.DagsterInstance | None = None,
) -> RunOutcome:
    instance = instance or dg.DagsterInstance.get()
    job = defs.resolve_job_def(job_name)
    run_id = str(uuid.uuid4())
    started = time.perf_counter()
    with ProgressWatcher(instance, run_id, stages, progress if progress and progress.isatty() else None):
        result = job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            instance=instance,
            partition_key=partition_key,
            run_id=run_id,
            raise_on_error=False,
            tags=tags,
        )
    meta = materialization_metadata(result)
    meta["_run"] = {"seconds": time.perf_counter() - started}
    if result.success:
        return RunOutcome(True, run_id, meta)
    err, stage = _failure(result)
    return RunOutcome(False, run_id, meta, err, stage)
