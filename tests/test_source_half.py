"""The source half end to end on the bundled demo, through the CLI and a real Dagster instance."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dubbing_pipeline.demo import DEMO_VIDEO, load_reference
from dubbing_pipeline.quality.metrics import diarization_error_rate, word_error_rate

ROOT = Path(__file__).resolve().parent.parent
# Not one run's figures: docs/quality.md's "Determinism across CPUs" table ran the demo under five kernel
# settings (MKL/oneDNN, AVX/AVX2/GENERIC ISAs, Spleeter's kernels) and got WER 0.099-0.136 and DER
# 0.39 every time, as did the Intel Xeon and the AVX-512 EPYC. The one value past these bounds was
# DER 0.53 on an AVX-512 EPYC before the kernels were pinned: what they are there to catch.
WER_CEILING = 0.20
DER_CEILING = 0.45


def transcribe(home: Path, *extra: str, video: Path = DEMO_VIDEO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("DUBBING_STORAGE_URL", None)
    cmd = [sys.executable, "-m", "dubbing_pipeline.cli", "transcribe", str(video), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("home_a")
    proc = transcribe(home, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return home, json.loads(proc.stdout)


def test_transcript_json_shape(first_run: tuple[Path, dict[str, Any]]) -> None:
    _, data = first_run
    assert set(data) == {"video_id", "language", "duration", "speakers", "segments"}
    assert data["video_id"] == "demo" and data["language"] == "en"
    assert data["duration"] == pytest.approx(30.0, abs=0.1)
    for seg in data["segments"]:
        assert set(seg) == {"start", "end", "speaker", "text"}
        assert 0 <= seg["start"] < seg["end"] <= data["duration"] + 0.01
        assert seg["speaker"] in data["speakers"]
    starts = [s["start"] for s in data["segments"]]
    assert starts == sorted(starts)


def test_word_error_rate_against_reference(first_run: tuple[Path, dict[str, Any]]) -> None:
    _, data = first_run
    ref = " ".join(s["text"] for s in load_reference()["segments"])
    hyp = " ".join(s["text"] for s in data["segments"])
    wer = word_error_rate(ref, hyp)
    print(f"demo WER = {wer:.3f}")
    assert wer <= WER_CEILING


def test_diarization_error_rate_against_reference(first_run: tuple[Path, dict[str, Any]]) -> None:
    _, data = first_run
    ref = [(t["start"], t["end"], t["speaker"]) for t in load_reference()["turns"]]
    hyp = [(s["start"], s["end"], s["speaker"]) for s in data["segments"]]
    result = diarization_error_rate(ref, hyp, collar=0.25)
    print(f"demo DER = {result}")
    assert len(data["speakers"]) == 2
    assert result["der"] <= DER_CEILING
    # and the labels carry information: better than calling every segment one speaker
    one_speaker = diarization_error_rate(ref, [(s, e, "one") for s, e, _ in hyp], collar=0.25)
    assert result["der"] < one_speaker["der"], one_speaker


def test_second_run_is_fully_cached_and_identical(first_run: tuple[Path, dict[str, Any]]) -> None:
    home, data = first_run
    proc = transcribe(home, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == data
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.from_config(str(home))
    stages = ["source_video", "audio_stems", "speech_segments", "transcript", "speakers"]
    for stage in stages:
        records = instance.fetch_materializations(dg.AssetKey(stage), limit=2).records
        assert len(records) == 2, stage
        latest = records[0].asset_materialization
        assert latest is not None
        assert latest.metadata["cached"].value is True, stage
        previous = records[1].asset_materialization
        assert previous is not None and previous.metadata["cached"].value is False, stage
        assert latest.metadata["cache_key"].value == previous.metadata["cache_key"].value


def test_two_runs_from_scratch_give_identical_json(
    first_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, data = first_run
    proc = transcribe(tmp_path / "home_b", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == json.dumps(data, ensure_ascii=False, sort_keys=True)


def test_bad_input_fails_its_partition_with_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "not a video.mp4"
    bogus.write_bytes(os.urandom(4096))
    proc = transcribe(tmp_path / "home", video=bogus)
    assert proc.returncode == 3
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "bad_input" in lines[0] and "Traceback" not in proc.stderr
    media = tmp_path / "home" / "media"
    assert not (media / "cache").exists() or not any((media / "cache").rglob("*.json"))


def test_the_ui_shows_the_cli_materialisations(first_run: tuple[Path, dict[str, Any]]) -> None:
    """`dagster-webserver` (what `dagster dev` serves) shows the materialisations the CLI made."""
    import socket
    import time
    import urllib.request

    home, _ = first_run
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    query = (
        '{ assetOrError(assetKey: {path: ["transcript"]}) { ... on Asset { '
        'assetMaterializations(partitions: ["demo"]) { partition metadataEntries { label } } } } }'
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=json.dumps({"query": query}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    data = json.loads(response.read())
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    materializations = data["data"]["assetOrError"]["assetMaterializations"]
    assert materializations and all(m["partition"] == "demo" for m in materializations)
    labels = {e["label"] for e in materializations[0]["metadataEntries"]}
    assert {"seconds", "real_time_factor", "cached", "cache_key", "provider", "model", "preview"} <= labels


def test_long_video_path_chunks_and_joins(tmp_path: Path) -> None:
    """With 12 s chunks the demo takes the long-video path: several ASR/diarization steps, joined cleanly."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DUBBING_CHUNK_SECONDS": "12"}
    env.pop("DUBBING_STORAGE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dubbing_pipeline.cli", "transcribe", str(DEMO_VIDEO), "--json"],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    record = json.loads((tmp_path / "media" / "records" / "speech_segments" / "demo.json").read_text())
    assert len(record["chunks"]) >= 3
    assert all(c["end"] - c["start"] <= 12 + 2 * 2.0 for c in record["chunks"])
    segments = data["segments"]
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in itertools.pairwise(segments))
    ref = " ".join(s["text"] for s in load_reference()["segments"])
    wer = word_error_rate(ref, " ".join(s["text"] for s in segments))
    print(f"demo WER with 12 s chunks = {wer:.3f}")
    assert wer <= WER_CEILING  # no words lost or doubled at the joins
    assert 1 <= len(data["speakers"]) <= 3
