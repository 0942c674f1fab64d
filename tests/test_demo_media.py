"""The bundled demo clip: its ground truth, its streams, and the reproducible build."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dubbing_pipeline.demo import DEMO_DIR, DEMO_VIDEO, load_reference
from dubbing_pipeline.tooling import demo_build


def _ffprobe(path: Path) -> dict[str, Any]:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("ffprobe is not installed")
    result = subprocess.run(
        [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def test_reference_has_the_expected_shape() -> None:
    ref = load_reference()
    assert set(ref) == {"video", "duration", "language", "speakers", "segments", "turns", "sources"}
    assert ref["video"] == "demo.mp4"
    assert (DEMO_DIR / ref["video"]) == DEMO_VIDEO
    assert DEMO_VIDEO.is_file()
    assert ref["duration"] == 30.0
    assert ref["language"] == "en"
    assert ref["speakers"] == ["Diane", "Sheila"]

    segments = ref["segments"]
    assert len(segments) == 13
    assert segments[0] == {"start": 6.68, "end": 7.16, "speaker": "Diane", "text": "Hello?"}
    assert {seg["speaker"] for seg in segments} == {"Diane", "Sheila"}
    for seg in segments:
        assert 0.0 <= seg["start"] < seg["end"] <= ref["duration"]
        assert seg["text"].strip()
    assert [seg["start"] for seg in segments] == sorted(seg["start"] for seg in segments)

    turns = ref["turns"]
    assert len(turns) == 10
    assert {turn["speaker"] for turn in turns} == {"Diane", "Sheila"}
    for turn in turns:
        assert set(turn) == {"start", "end", "speaker"}
        assert 0.0 <= turn["start"] < turn["end"] <= ref["duration"]
    # The RTTM labels were mapped by overlap: every segment overlaps a turn of its own speaker.
    for seg in segments:
        assert any(
            turn["speaker"] == seg["speaker"]
            and min(turn["end"], seg["end"]) - max(turn["start"], seg["start"]) > 0
            for turn in turns
        )


def test_demo_video_streams() -> None:
    info = _ffprobe(DEMO_VIDEO)
    assert float(info["format"]["duration"]) == pytest.approx(30.0, abs=0.05)
    assert DEMO_VIDEO.stat().st_size < 2_500_000

    videos = [s for s in info["streams"] if s["codec_type"] == "video"]
    audios = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert len(videos) == 1
    assert len(audios) == 1
    video, audio = videos[0], audios[0]

    assert video["codec_name"] == "h264"
    assert video["pix_fmt"] == "yuv420p"
    assert Fraction(video["avg_frame_rate"]) == 25
    assert Fraction(video["r_frame_rate"]) == 25
    assert float(video["duration"]) == pytest.approx(30.0, abs=0.05)
    assert int(video["nb_frames"]) == 750

    assert audio["codec_name"] == "aac"
    assert int(audio["sample_rate"]) == 44100
    assert int(audio["channels"]) == 2
    assert float(audio["duration"]) == pytest.approx(30.0, abs=0.05)


def _decoded_audio(path: Path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", "16000",
         "-f", "s16le", "-"], capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype="<i2").astype(np.float64)


def test_builder_reproduces_the_committed_files(tmp_path: Path, pyannote_sample: Path) -> None:
    out = tmp_path / "out"
    demo_build.build(out, pyannote_sample, allow_download=False)

    assert (out / "reference.json").read_bytes() == (DEMO_DIR / "reference.json").read_bytes()
    version = demo_build.ffmpeg_version()
    if version == demo_build.BUILT_WITH_FFMPEG:
        assert demo_build.sha256_file(out / "demo.mp4") == demo_build.sha256_file(DEMO_VIDEO)
        return
    # another ffmpeg encodes other bytes: the same streams, the same sound
    print(f"ffmpeg {version} is not {demo_build.BUILT_WITH_FFMPEG}: comparing decoded streams")
    built, committed = _ffprobe(out / "demo.mp4"), _ffprobe(DEMO_VIDEO)
    fields = ("codec_type", "codec_name", "width", "height", "nb_frames", "sample_rate", "channels")
    assert [{f: s.get(f) for f in fields} for s in built["streams"]] == [
        {f: s.get(f) for f in fields} for s in committed["streams"]
    ]
    a, b = _decoded_audio(out / "demo.mp4"), _decoded_audio(DEMO_VIDEO)
    n = min(a.size, b.size)
    assert abs(a.size - b.size) <= 1600
    assert float(np.corrcoef(a[:n], b[:n])[0, 1]) > 0.99
