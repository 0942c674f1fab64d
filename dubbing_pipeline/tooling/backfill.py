"""``dubbing-pipeline bench --backfill N``: a real catalog backfill run by a real ``dagster-daemon``.

N short clips (cut from the bundled demo at different places, each with speech) in a catalog with
two languages, on the embedded instance (sqlite, in-process runs, the embedded ``dagster.yaml``:
two runs at a time). The daemon evaluates the catalog sensor every 30 seconds and the
``dub_after_source_half`` run-status sensor; every run is a real run of the real pipeline.

Measured and checked, in order:

1. **backfill**: N source-half runs and 2·N dub runs succeed, each partition exactly once;
2. **quiet tick**: the next catalog tick requests nothing;
3. **one source replaced**: exactly that video's 1 + 2 runs come back.

Reported: wall times, the daemon's run throughput (runs finished per minute) and its enqueue rate
(runs created per second by one catalog tick).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.common import numerics
from dubbing_pipeline.demo import DEMO_VIDEO
from dubbing_pipeline.orchestration.runner import EMBEDDED_DAGSTER_YAML
from dubbing_pipeline.records import JsonObject

LANGUAGES = ("es", "ca")
PARTITION_TAG = "dagster/partition"
DONE = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def cut_clips(n: int, folder: Path) -> list[Path]:
    """N distinct clips of 4–6 s, each starting where the demo has speech."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n):
        start = 8.0 + (i * 1.37) % 14.0
        length = 4.0 + i % 3
        clips.append(_cut(DEMO_VIDEO, folder / f"clip{i:03d}.mp4", start, length))
    return clips


def _cut(src: Path, dest: Path, start: float, length: float) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", f"{start:.2f}", "-t", f"{length:.2f}", "-i", str(src),
         "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-c:a", "aac", "-b:a", "128k",
         "-map_metadata", "-1", "-fflags", "+bitexact", str(dest)],
        check=True,
    )  # fmt: skip
    return dest


@dataclass
class Backfill:
    """A temporary embedded deployment with a catalog and a daemon."""

    root: Path
    clips: list[Path]
    env: dict[str, str]

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    def write_catalog(self) -> None:
        lines = [f"languages: [{', '.join(LANGUAGES)}]", "videos:"]
        lines += [f"  - {{id: {c.stem}, source: '{c.as_uri()}'}}" for c in self.clips]
        (self.root / "catalog.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _deployment(n: int, root: Path) -> Backfill:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(EMBEDDED_DAGSTER_YAML, home / "dagster.yaml")
    (root / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: dubbing_pipeline.definitions\n"
        "      attribute: defs\n      location_name: dubbing_pipeline\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DUBBING_STORAGE_URL": str(root / "media"),
        "DUBBING_CATALOG_URL": str(root / "catalog.yaml"),
        "DUBBING_CATALOG_INTERVAL_S": "30",
        "DUBBING_INBOX_DIR": str(root / "inbox"),
    }
    backfill = Backfill(root, cut_clips(n, root / "clips"), env)
    backfill.write_catalog()
    return backfill


@contextmanager
def daemon(backfill: Backfill) -> Iterator[subprocess.Popen[bytes]]:
    log = (backfill.root / "daemon.log").open("wb")
    command = Path(sys.executable).with_name("dagster-daemon")
    proc = subprocess.Popen(
        [str(command), "run", "-w", str(backfill.root / "workspace.yaml")],
        cwd=backfill.root, env=backfill.env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _runs(instance: dg.DagsterInstance, after: float = 0.0) -> list[Any]:
    records = instance.get_run_records(dg.RunsFilter())
    return sorted(
        (r for r in records if r.create_timestamp.timestamp() >= after), key=lambda r: r.create_timestamp
    )


def _wait(
    instance: dg.DagsterInstance, until: Callable[[list[Any]], bool], after: float, timeout: float, log: Path
) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        runs = _runs(instance, after)
        if until(runs):
            return runs
        failed = [r for r in runs if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
        if failed or time.monotonic() > deadline:
            why = f"{len(failed)} run(s) failed" if failed else f"timed out after {timeout:.0f} s"
            raise RuntimeError(f"backfill: {why}; daemon log: {log}; runs: {_summary(runs)}")
        time.sleep(2.0)


def _summary(runs: Sequence[Any]) -> dict[str, list[list[str | None]]]:
    """``[partition, status]`` of every run, by job."""
    out: dict[str, list[list[str | None]]] = {}
    for r in runs:
        run = r.dagster_run
        out.setdefault(run.job_name, []).append([run.tags.get(PARTITION_TAG), run.status.value])
    return out


def _finished(runs: Sequence[Any], sources: int, dubs: int) -> bool:
    by_job = _summary(runs)
    done = lambda job: [p for p, s in by_job.get(job, []) if s == "SUCCESS"]  # noqa: E731
    return len(done("source_half")) >= sources and len(done("dub")) >= dubs


def _partitions(runs: Sequence[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in runs:
        out.setdefault(r.dagster_run.job_name, []).append(str(r.dagster_run.tags.get(PARTITION_TAG)))
    return out


def _not_succeeded(runs: Sequence[Any]) -> list[str]:
    """``job partition status (trigger)`` of every run that did not succeed, to explain a repeat."""
    return [
        f"{r.dagster_run.job_name} {r.dagster_run.tags.get(PARTITION_TAG)} {r.dagster_run.status.value} "
        f"({r.dagster_run.tags.get('dubbing/trigger', '?')})"
        for r in runs
        if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
    ]


def _enqueue_rate(runs: Sequence[Any], job: str) -> float:
    """Runs per second created by one tick (first to last creation of ``job``'s runs)."""
    stamps = [r.create_timestamp.timestamp() for r in runs if r.dagster_run.job_name == job]
    span = max(stamps) - min(stamps) if len(stamps) > 1 else 0.0
    return round((len(stamps) - 1) / span, 2) if span > 0 else float(len(stamps))


def _next_tick_after(home: Path, after: float, timeout: float) -> list[Any]:
    """The catalog sensor's ticks after ``after`` (waits for one).

    Read through a fresh instance each time: the daemon creates the sensor's state after this
    process opened its own, and a long-lived sqlite schedule storage does not see it.
    """
    deadline = time.monotonic() + timeout
    while True:
        ticks = []
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for state in instance.all_instigator_state():
                if state.instigator_name.startswith("catalog_"):
                    ticks += [
                        t for t in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5)
                        if t.timestamp > after and t.status.value in ("SUCCESS", "SKIPPED")
                    ]  # fmt: skip
        if ticks or time.monotonic() > deadline:
            return ticks
        time.sleep(2.0)


def run_backfill(n: int, *, timeout_per_run: float = 240.0, keep: Path | None = None) -> JsonObject:
    """Run the three phases on a fresh temporary deployment; see the module's docstring."""
    root = Path(tempfile.mkdtemp(prefix="dubbing-backfill-"))
    home = os.environ.get("DAGSTER_HOME")
    try:
        return _run(_deployment(n, root), n, timeout_per_run)
    finally:
        if home is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = home
        if keep is not None:
            shutil.copytree(root, keep, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)


def _run(backfill: Backfill, n: int, timeout_per_run: float) -> JsonObject:
    log = backfill.root / "daemon.log"
    limit = timeout_per_run * (3 * n) / 2 + 180
    result: JsonObject = {"clips": n, "languages": list(LANGUAGES), "cpu": numerics.cpu_model()}
    os.environ["DAGSTER_HOME"] = str(backfill.home)
    # create the sqlite storage before the daemon and its code server open it (two processes
    # creating it at once can stamp its schema twice)
    with dg.DagsterInstance.from_config(str(backfill.home)) as instance, daemon(backfill):
        start = time.time()
        runs = _wait(instance, lambda r: _finished(r, n, 2 * n), start, limit, log)
        first_run = min(r.create_timestamp.timestamp() for r in runs)
        finished = max(r.end_time or 0.0 for r in runs)
        result["backfill"] = {
            "wall_s": round(finished - start, 1),
            "runs_s": round(finished - first_run, 1),
            "runs": _partitions(runs),
            "not_succeeded": _not_succeeded(runs),
            "throughput_runs_per_min": round(len(runs) / ((finished - first_run) / 60), 2),
            "enqueue_runs_per_s": _enqueue_rate(runs, "source_half"),
        }
        quiet_after = time.time()
        ticks = _next_tick_after(backfill.home, quiet_after, 150)
        result["quiet_tick"] = {
            "ticks": sorted(t.instigator_name for t in ticks),
            "runs_requested": sum(len(t.run_ids) for t in ticks),
            "new_runs": len(_runs(instance, quiet_after)),
        }
        replaced = backfill.clips[0]
        shutil.copy(backfill.clips[-1] if n > 1 else replaced, replaced.with_suffix(".tmp"))
        _cut(replaced.with_suffix(".tmp"), replaced, 0.5, 3.0)
        replace_after = time.time()
        again = _wait(instance, lambda r: _finished(r, 1, 2), replace_after, timeout_per_run * 3 + 120, log)
        time.sleep(5.0)  # anything else that tick asked for would show now
        again = _runs(instance, replace_after)
        result["replaced"] = {"video": replaced.stem, "wall_s": round(time.time() - replace_after, 1)}
        result["replaced"]["runs"] = _partitions(again)
        result["replaced"]["triggers"] = [  # who asked for each run, to explain a repeat
            f"{r.dagster_run.job_name} {r.dagster_run.tags.get(PARTITION_TAG)} "
            f"{r.dagster_run.tags.get('dubbing/trigger', '?')} {r.dagster_run.run_id[:8]} "
            f"key={r.dagster_run.tags.get('dagster/run_key')} at={r.create_timestamp.timestamp():.1f} "
            f"why={r.dagster_run.tags.get('dubbing/reason')}"
            for r in again
        ]
    return result


def check(result: JsonObject) -> list[str]:
    """What is wrong with a ``run_backfill`` result (empty: all as expected)."""
    n, problems = result["clips"], []
    runs = result["backfill"]["runs"]
    pairs = sorted(f"{lang}|{c}" for c in (f"clip{i:03d}" for i in range(n)) for lang in LANGUAGES)
    if sorted(runs.get("source_half", [])) != [f"clip{i:03d}" for i in range(n)]:
        problems.append(f"source_half runs: {runs.get('source_half')}")
    if sorted(runs.get("dub", [])) != pairs:
        problems.append(
            f"dub runs: {runs.get('dub')}; not succeeded: {result['backfill'].get('not_succeeded')}"
        )
    quiet = result["quiet_tick"]
    if not quiet["ticks"] or quiet["runs_requested"] or quiet["new_runs"]:
        problems.append(f"the tick after the backfill: {quiet}")
    video = result["replaced"]["video"]
    want = {"source_half": [video], "dub": sorted(f"{lang}|{video}" for lang in LANGUAGES)}
    got = {job: sorted(p) for job, p in result["replaced"]["runs"].items()}
    if got != want:
        problems.append(
            f"after replacing {video}: {got}, expected {want}; asked by: {result['replaced'].get('triggers')}"
        )
    return problems


def main_json(n: int) -> int:
    result = run_backfill(n)
    result["problems"] = check(result)
    print(json.dumps(result, indent=1))
    return 1 if result["problems"] else 0
