"""``dubbing-pipeline bench``: time the embedded default end to end and write JSON plus a markdown table.

Every measured command is a real ``dubbing-pipeline dub`` in its own process, against one fresh
temporary ``DAGSTER_HOME``, in this order:

1. ``demo_es``: the bundled 30 s demo into Spanish, cold (nothing cached);
2. ``demo_ca``: the same video into Catalan: the marginal cost of a second language (the source
   half is served from the cache);
3. ``demo_es_rerun``: the first command again, unchanged: what a no-op re-run costs;
4. ``long_es``: a longer clip (the demo looped with a stream copy, default 180 s, byte-identical
   every time), into Spanish, cold.

For each command: per-stage compute seconds (the ``seconds`` each materialisation records) and
real-time factor (seconds / media seconds), the process's wall time, the wall time of its Dagster
runs, the orchestration overhead (run wall time minus the sum of stage seconds), the CPU time of
the process and everything it started (user plus system, ``wait4``) with the cores it kept busy on
average (CPU time over wall time: what says whether a wall-time goal is a matter of overlap or of
work), and their peak resident memory (``ru_maxrss``). With them, what the dub came out as: its
lines and the ids of those ``trimmed`` (cut at the next line after every other remedy; how many
moves with the CPU kind, as Kokoro's int8 kernels move the lengths of its takes near a cap, so it
is reported per machine here rather than asserted by the tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypedDict

import dagster as dg

from dubbing_pipeline.common import numerics
from dubbing_pipeline.common.ids import video_id_from_name
from dubbing_pipeline.common.media import BITEXACT, ffprobe, run_ffmpeg
from dubbing_pipeline.demo import DEMO_VIDEO
from dubbing_pipeline.orchestration.runner import ensure_dagster_home
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.stages import STAGES


class StageTiming(TypedDict):
    """One stage of a measured command: the compute seconds its materialisation records."""

    seconds: float
    cached: bool


@dataclass
class Measurement:
    """One measured command."""

    name: str
    video: str
    language: str
    media_seconds: float
    exit_code: int
    wall_seconds: float  # the whole process, interpreter start-up included
    run_seconds: float  # wall time of the Dagster runs it launched (start → end)
    peak_rss_mib: float
    cpu_seconds: float = 0.0  # user + system of the process and its reaped children
    stages: dict[str, StageTiming] = field(default_factory=dict)
    lines: int | None = None  # lines of the dub's report.json (None: no report)
    trimmed_ids: list[str] = field(default_factory=list)  # its lines whose status is ``trimmed``

    @property
    def trimmed_lines(self) -> int | None:
        return None if self.lines is None else len(self.trimmed_ids)

    @property
    def stage_seconds(self) -> float:
        return sum(float(s["seconds"]) for s in self.stages.values())

    @property
    def overhead_seconds(self) -> float:
        return orchestration_overhead(self.run_seconds, [float(s["seconds"]) for s in self.stages.values()])

    @property
    def cores_busy(self) -> float | None:
        return round(self.cpu_seconds / self.wall_seconds, 2) if self.wall_seconds > 0 else None

    def to_dict(self) -> JsonObject:
        out = asdict(self)
        out["cores_busy"] = self.cores_busy
        out["trimmed_lines"] = self.trimmed_lines
        out["stage_seconds"] = round(self.stage_seconds, 3)
        out["overhead_seconds"] = round(self.overhead_seconds, 3)
        out["real_time_factor"] = real_time_factor(self.stage_seconds, self.media_seconds)
        return out


def orchestration_overhead(run_wall_seconds: float, stage_seconds: Sequence[float]) -> float:
    """What the orchestration costs: run wall time minus the compute the stages report (≥ 0)."""
    return max(0.0, float(run_wall_seconds) - float(sum(stage_seconds)))


def real_time_factor(seconds: float, media_seconds: float) -> float | None:
    """Compute seconds per second of media (< 1 is faster than real time)."""
    return round(seconds / media_seconds, 4) if media_seconds > 0 else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def trimmed_of(report: Mapping[str, Any]) -> tuple[int, list[str]]:
    """A dub's line count and the ids of its ``trimmed`` lines, from its ``report.json``."""
    segments = report.get("segments", [])
    return len(segments), [str(s["id"]) for s in segments if s.get("status") == "trimmed"]


def _trimmed_cell(m: Measurement) -> str:
    if m.lines is None:
        return "–"
    ids = f" ({', '.join(m.trimmed_ids)})" if m.trimmed_ids else ""
    return f"{len(m.trimmed_ids)} of {m.lines}{ids}"


def markdown_table(measurements: Sequence[Measurement]) -> str:
    """Two tables: seconds (and RTF) per stage and command; then wall, overhead and memory per command."""
    head = "| stage | " + " | ".join(m.name for m in measurements) + " |"
    rule = "|---|" + "---:|" * len(measurements)
    rows = [head, rule]
    for stage in STAGES:
        cells = []
        for m in measurements:
            s = m.stages.get(stage)
            if s is None:
                cells.append("–")
                continue
            rtf = real_time_factor(float(s["seconds"]), m.media_seconds)
            cached = " (cached)" if s.get("cached") else ""
            cells.append(f"{float(s['seconds']):.2f} s · RTF {_fmt(rtf, 3)}{cached}")
        rows.append(f"| {stage} | " + " | ".join(cells) + " |")
    rows.append(
        "| **all stages** | "
        + " | ".join(
            f"**{m.stage_seconds:.2f} s · RTF {_fmt(real_time_factor(m.stage_seconds, m.media_seconds), 3)}**"
            for m in measurements
        )
        + " |"
    )
    summary = [
        "",
        "| command | video | media s | exit | process wall s | Dagster run wall s | stage compute s "
        "| orchestration overhead s | CPU s | cores busy | peak RSS MiB | trimmed lines |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in measurements:
        summary.append(
            f"| {m.name} | {m.video} → {m.language} | {m.media_seconds:.1f} | {m.exit_code} "
            f"| {m.wall_seconds:.1f} | {m.run_seconds:.1f} | {m.stage_seconds:.1f} "
            f"| {m.overhead_seconds:.1f} | {m.cpu_seconds:.1f} | {_fmt(m.cores_busy, 2)} "
            f"| {m.peak_rss_mib:.0f} | {_trimmed_cell(m)} |"
        )
    return "\n".join(rows + summary) + "\n"


def derived(measurements: Mapping[str, Measurement]) -> dict[str, float | None]:
    """The headline numbers: second-language marginal cost, unchanged re-run, overheads."""
    out: dict[str, float | None] = {}
    if "demo_ca" in measurements:
        out["second_language_wall_seconds"] = round(measurements["demo_ca"].wall_seconds, 2)
        out["second_language_stage_seconds"] = round(measurements["demo_ca"].stage_seconds, 2)
    if "demo_es_rerun" in measurements:
        out["unchanged_rerun_wall_seconds"] = round(measurements["demo_es_rerun"].wall_seconds, 2)
    first = measurements.get("demo_es")
    if first is not None and first.wall_seconds > 0 and first.stage_seconds > 0:  # shares of the first dub
        if "demo_ca" in measurements:
            ca = measurements["demo_ca"]
            out["second_language_wall_share"] = round(ca.wall_seconds / first.wall_seconds, 4)
            out["second_language_stage_share"] = round(ca.stage_seconds / first.stage_seconds, 4)
        if "demo_es_rerun" in measurements:
            out["unchanged_rerun_wall_share"] = round(
                measurements["demo_es_rerun"].wall_seconds / first.wall_seconds, 4
            )
    if first is not None and first.cpu_seconds > 0:
        out["first_dub_cpu_seconds"] = round(first.cpu_seconds, 2)
        out["first_dub_cores_busy"] = first.cores_busy
    for name, m in measurements.items():
        out[f"{name}_overhead_seconds"] = round(m.overhead_seconds, 2)
    return out


def headline(numbers: Mapping[str, float | None]) -> str:
    """The shares of the first dub, in words (empty when the bench did not measure them)."""
    parts = []
    wall, stage = numbers.get("second_language_wall_share"), numbers.get("second_language_stage_share")
    if wall is not None and stage is not None:
        parts.append(
            f"second language: {100 * wall:.1f} % of the first dub's wall time ({100 * stage:.1f} % of its "
            "stage time)"
        )
    rerun = numbers.get("unchanged_rerun_wall_share")
    if rerun is not None:
        parts.append(f"unchanged re-run: {100 * rerun:.1f} % of its wall time")
    cpu, busy = numbers.get("first_dub_cpu_seconds"), numbers.get("first_dub_cores_busy")
    if cpu is not None and busy is not None:
        parts.append(f"the first dub used {cpu:.1f} s of CPU time, {busy:.2f} cores busy on average")
    return "\n" + "; ".join(parts) + ".\n" if parts else ""


# --- running -------------------------------------------------------------------------------


def make_long_clip(src: Path, dest: Path, seconds: float) -> float:
    """``src`` looped (stream copy, bit-exact: same bytes every time) to about ``seconds``; its duration."""
    length = float(_probe_duration(src))
    loops = max(0, int(round(seconds / length)) - 1)
    run_ffmpeg(
        ["-stream_loop", str(loops), "-i", str(src), "-map", "0", "-c", "copy", *BITEXACT,
         "-movflags", "+faststart", str(dest)],
        what="looping the demo",
    )  # fmt: skip
    return float(_probe_duration(dest))


def _probe_duration(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"])


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float, float]:
    """Run ``argv``; return (exit code, wall seconds, peak RSS MiB, CPU seconds), the last two of
    it and its children."""
    started = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    # Linux reports ru_maxrss in KiB (macOS in bytes); wait4 covers the child and its reaped children.
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return proc.returncode, wall, usage.ru_maxrss / scale, usage.ru_utime + usage.ru_stime


def _runs_of(instance: dg.DagsterInstance, before: set[str]) -> list[Any]:
    return [r for r in instance.get_runs() if r.run_id not in before]


def _stage_metadata(instance: Any, run_ids: Sequence[str]) -> tuple[dict[str, StageTiming], float]:
    """Per-stage {seconds, cached} from the runs' materialisations, and the runs' summed wall time."""
    stages: dict[str, StageTiming] = {}
    wall = 0.0
    for run_id in run_ids:
        stats = instance.get_run_stats(run_id)
        if stats.start_time and stats.end_time:
            wall += float(stats.end_time) - float(stats.start_time)
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            mat = entry.dagster_event.event_specific_data.materialization
            meta = mat.metadata
            name = mat.asset_key.to_user_string()
            stages[name] = {
                "seconds": float(meta["seconds"].value) if "seconds" in meta else 0.0,
                "cached": bool(meta["cached"].value) if "cached" in meta else False,
            }
    return stages, wall


@contextlib.contextmanager
def _fresh_home(keep: bool) -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="dubbing-bench-"))
    try:
        yield home
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True)
class Planned:
    """One command of the bench: its name, the video and the language it dubs into."""

    name: str
    video: Path
    language: str


def run_bench(
    out_dir: Path, *, long_seconds: float = 180.0, keep_home: bool = False, log: TextIO = sys.stderr
) -> JsonObject:
    """Every command of the plan (see the module docstring) in one fresh ``DAGSTER_HOME``; the
    result written to ``out_dir`` as ``bench.json`` and ``bench.md``, and returned."""
    out_dir.mkdir(parents=True, exist_ok=True)
    measurements: dict[str, Measurement] = {}
    with _fresh_home(keep_home) as home:
        env = _bench_env(home)
        plan = _plan(home / "media", long_seconds)
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        ensure_dagster_home()  # the embedded dagster.yaml, as the CLI would write it
        run_log = out_dir / "bench.log"
        run_log.write_text("", encoding="utf-8")
        for step in plan:
            print(f"bench: {step.name} ({step.video.name} → {step.language})", file=log, flush=True)
            measured = _measure(step, home, env, run_log)
            measurements[step.name] = measured
            print(
                f"bench: {step.name} exit {measured.exit_code}, {measured.wall_seconds:.1f} s",
                file=log,
                flush=True,
            )
    return _write(out_dir, measurements)


def _bench_env(home: Path) -> dict[str, str]:
    """The environment of every measured command: this one's, with its own instance and work
    directory in ``home`` and the default storage (no test settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUBBING_TEST_")}
    env.pop("DUBBING_STORAGE_URL", None)
    env.update(DAGSTER_HOME=str(home / "dagster_home"), DUBBING_WORK_DIR=str(home / "work"))
    (home / "dagster_home").mkdir()
    return env


def _plan(media: Path, long_seconds: float) -> list[Planned]:
    """The demo into es, ca and es again; then the long clip (made in ``media``) into es."""
    media.mkdir()
    demo = media / "demo.mp4"
    shutil.copyfile(DEMO_VIDEO, demo)
    plan = [
        Planned("demo_es", demo, "es"),
        Planned("demo_ca", demo, "ca"),
        Planned("demo_es_rerun", demo, "es"),
    ]
    if long_seconds > 0:
        long_clip = media / "long.mp4"
        make_long_clip(demo, long_clip, long_seconds)
        plan.append(Planned("long_es", long_clip, "es"))
    return plan


def _measure(step: Planned, home: Path, env: dict[str, str], run_log: Path) -> Measurement:
    """One ``dubbing-pipeline dub`` in its own process, and what its runs and its report say."""
    vid = video_id_from_name(step.video.name)  # the id the rule gives it, named so its report is found
    argv = [sys.executable, "-m", "dubbing_pipeline.cli", "dub", str(step.video), "--to", step.language,
            "--out", str(home / "out"), "--id", vid]  # fmt: skip
    instance = dg.DagsterInstance.get()
    before = {r.run_id for r in instance.get_runs()}
    code, wall, rss, cpu = _spawn(argv, env, run_log)
    run_ids = [r.run_id for r in _runs_of(instance, before)]
    stages, run_wall = _stage_metadata(instance, run_ids)
    report = home / "out" / vid / step.language / "report.json"
    lines, trimmed = (
        trimmed_of(json.loads(report.read_text(encoding="utf-8")))
        if code == 0 and report.is_file()
        else (None, [])
    )
    return Measurement(
        name=step.name, video=step.video.name, language=step.language,
        media_seconds=_probe_duration(step.video), exit_code=code, wall_seconds=round(wall, 3),
        run_seconds=round(run_wall, 3), peak_rss_mib=round(rss, 1), cpu_seconds=round(cpu, 2),
        stages=stages, lines=lines, trimmed_ids=trimmed,
    )  # fmt: skip


def _write(out_dir: Path, measurements: dict[str, Measurement]) -> JsonObject:
    """``bench.json`` (the machine, every measurement, the derived numbers) and ``bench.md``."""
    ordered = list(measurements.values())
    result = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "cpu": numerics.cpu_model(),
            "cpu_isa": numerics.cpu_isa(),
            "kernels": numerics.kernel_settings(),
            "threads": os.environ.get("DUBBING_CPU_THREADS", "2"),
        },
        "measurements": [m.to_dict() for m in ordered],
        "derived": derived(measurements),
    }
    (out_dir / "bench.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    table = f"Measured on {numerics.cpu_model()} ({numerics.cpu_isa()}), {os.cpu_count()} CPUs.\n\n"
    table += markdown_table(ordered) + headline(derived(measurements))
    (out_dir / "bench.md").write_text(table, encoding="utf-8")
    return result
