"""Kill and resume: a dub killed with SIGKILL mid-way resumes, redoes nothing finished, ends byte-identical.

The kill lands deterministically through the documented test hook (``orchestration/hooks.py``):
``DUBBING_TEST_PAUSE_AT=speech_line:2`` pauses right after the second synthesised line's cache
record is written; ``DUBBING_TEST_PAUSE_AT=mux`` pauses after the dubbed MP4 is stored in the mux
step's cache folder, before its ``record.json``. The test waits for the hook's marker file, then
kills the whole process group.

Sequence in one DAGSTER_HOME: kill in the speech fan-out → kill in the mux → run to the end; the
outputs are compared with an uninterrupted run in another DAGSTER_HOME.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dubbing_pipeline.demo import DEMO_VIDEO

ROOT = Path(__file__).resolve().parent.parent
OUTPUTS = ["clip.es.mp4", "es.srt", "es.vtt"]


def ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "DUBBING_WORK_DIR": str(home / "work"), **extra}
    env.pop("DUBBING_STORAGE_URL", None)
    return env


def dub_cmd(video: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "dubbing_pipeline.cli", "dub", str(video), "--to", "es", "--out", str(out)]


def run_and_kill_at(point: str, video: Path, home: Path, out: Path, marker: Path) -> None:
    """Start a dub that pauses at ``point``; SIGKILL its process group once the pause is reached."""
    env = env_for(
        home,
        DUBBING_TEST_PAUSE_AT=point,
        DUBBING_TEST_PAUSE_MARKER=str(marker),
        DUBBING_TEST_PAUSE_SECONDS="300",
    )
    log = open(marker.with_suffix(".log"), "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        dub_cmd(video, out), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 400
        while not marker.exists():
            code = proc.poll()
            assert code is None, (
                f"the dub ended ({code}) before reaching {point}: "
                + marker.with_suffix(".log").read_text(errors="replace")[-2000:]
            )
            assert time.monotonic() < deadline, f"pause point {point} never reached"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL


def records(media: Path, stage: str) -> dict[str, tuple[int, int]]:
    """``record.json`` files of a cache stage → (inode, mtime_ns): rewritten files get a new inode."""
    return {
        str(p.relative_to(media)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (media / "cache" / stage).rglob("record.json")
    }


def visible_keys(media: Path) -> list[str]:
    from dubbing_pipeline.storage import LocalStorage

    return LocalStorage(media).list_keys("")


def latest_metadata(home: Path, asset: str) -> dict[str, Any]:
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    recs = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    if not recs or recs[0].asset_materialization is None:
        return {}
    return {k: v.value for k, v in recs[0].asset_materialization.metadata.items()}


def assert_no_half_written(media: Path) -> None:
    """No temporary file is visible as a key, and every record's artifacts exist."""
    keys = visible_keys(media)
    assert not [k for k in keys if k.endswith((".part", ".partial.mp4"))]
    for key in keys:
        if key.endswith("record.json") and key.startswith("cache/"):
            record = json.loads((media / key).read_text())
            for value in record.values():
                if isinstance(value, str) and value.startswith("file://"):
                    assert Path(value[len("file://") :]).is_file(), (key, value)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("resume")
    video = base / "clip.mp4"  # 4.25 s, five short lines of the demo's dialogue
    ff("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=4.25", "-ss", "6.5", "-t", "4.25",
       "-i", str(DEMO_VIDEO), "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", "-c:a", "aac", str(video))  # fmt: skip
    # the uninterrupted reference, in its own instance
    ref_home, ref_out = base / "ref_home", base / "ref_out"
    ref = subprocess.run(
        dub_cmd(video, ref_out), env=env_for(ref_home), cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    home, out = base / "home", base / "out"
    media = home / "media"
    state: dict[str, Any] = {"base": base, "home": home, "out": out, "ref_out": ref_out, "media": media}

    run_and_kill_at("speech_line:2", video, home, out, base / "pause1")
    state["lines_at_kill1"] = records(media, "speech_line")
    state["keys_at_kill1"] = visible_keys(media)
    state["out_at_kill1"] = out.exists()
    assert_no_half_written(media)

    run_and_kill_at("mux", video, home, out, base / "pause2")
    state["lines_at_kill2"] = records(media, "speech_line")
    state["keys_at_kill2"] = visible_keys(media)
    state["out_at_kill2"] = out.exists()
    state["speech_at_kill2"] = latest_metadata(home, "dubbed_speech")
    state["mix_at_kill2"] = records(media, "mix")
    assert_no_half_written(media)

    final = subprocess.run(
        dub_cmd(video, out), env=env_for(home), cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert final.returncode == 0, final.stderr[-3000:]
    state["lines_final"] = records(media, "speech_line")
    state["mix_final"] = records(media, "mix")
    state["meta_final"] = {a: latest_metadata(home, a) for a in ("dubbed_speech", "dub_mix", "dubbed_video")}
    return state


def test_first_kill_lands_in_the_speech_fan_out(resumed: dict[str, Any]) -> None:
    assert len(resumed["lines_at_kill1"]) == 2  # exactly the lines finished before the kill
    keys = resumed["keys_at_kill1"]
    assert not [k for k in keys if k.startswith(("cache/mix/", "cache/mux/", "records/dubbed_speech/"))]
    assert not resumed["out_at_kill1"]


def test_second_run_reuses_the_finished_lines(resumed: dict[str, Any]) -> None:
    before, after = resumed["lines_at_kill1"], resumed["lines_at_kill2"]
    assert {k: after[k] for k in before} == before  # not rewritten: same inode and mtime
    speech = resumed["speech_at_kill2"]
    assert speech["cache_hits"] == 2 and speech["lines"] == len(after)
    assert speech["cached"] is False


def test_second_kill_lands_in_the_mux(resumed: dict[str, Any]) -> None:
    keys = resumed["keys_at_kill2"]
    mux = [k for k in keys if k.startswith("cache/mux/")]
    assert mux and all(k.endswith(".mp4") for k in mux)  # the MP4 artifact is there …
    assert not [k for k in mux if k.endswith("record.json")]  # … but the step is not done
    assert not [k for k in keys if k.startswith("records/dubbed_video/")]
    assert resumed["mix_at_kill2"]  # the mix finished before the kill
    assert not resumed["out_at_kill2"]  # no output folder for an unfinished dub


def test_resume_redoes_only_the_unfinished_step(resumed: dict[str, Any]) -> None:
    assert resumed["lines_final"] == resumed["lines_at_kill2"]
    assert resumed["mix_final"] == resumed["mix_at_kill2"]
    meta = resumed["meta_final"]
    assert meta["dubbed_speech"]["cached"] is True
    assert meta["dubbed_speech"]["cache_hits"] == meta["dubbed_speech"]["lines"]
    assert meta["dub_mix"]["cached"] is True
    assert meta["dubbed_video"]["cached"] is False


def test_outputs_are_byte_identical_to_an_uninterrupted_run(resumed: dict[str, Any]) -> None:
    """Every byte, except inside the MP4's C2PA manifest box (same size and place), where c2pa-rs
    draws random salts for its hashes (``tests/c2pa_box.py``)."""
    from c2pa_box import without_manifest

    got, want = resumed["out"] / "clip" / "es", resumed["ref_out"] / "clip" / "es"
    for name in OUTPUTS:
        ours, theirs = (got / name).read_bytes(), (want / name).read_bytes()
        if name.endswith(".mp4"):
            (ours, n), (theirs, m) = without_manifest(ours), without_manifest(theirs)
            assert n == m == 1
        assert ours == theirs, name
    assert not [p for p in got.iterdir() if p.name.startswith(".")]
