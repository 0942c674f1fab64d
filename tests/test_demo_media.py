"""The bundled demo clip: its ground truth, its streams, and the reproducible build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from dubbing_pipeline.demo import DEMO_DIR, DEMO_VIDEO, load_reference
from dubbing_pipeline.demo import build as demo_build

# A folder with sample.wav/.rttm/.stm (or the pyannote-audio 4.0.7 wheel) for the build test.
SAMPLE_ENV = "DUBBING_DEMO_PYANNOTE_SAMPLE"


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


def _speech_sample(workdir: Path) -> Path | None:
    """``$DUBBING_DEMO_PYANNOTE_SAMPLE``, else an installed pyannote.audio 4.0.7; never the network."""
    explicit = os.environ.get(SAMPLE_ENV)
    if explicit:
        return Path(explicit)
    try:
        return demo_build.locate_pyannote_sample(None, workdir, allow_download=False)
    except demo_build.DemoBuildError:
        return None


def test_builder_reproduces_the_committed_files(tmp_path: Path, pyannote_sample: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    if not demo_build.SOUND_ICONS_DIR.is_dir():
        pytest.skip(f"the Debian package sound-icons is not installed ({demo_build.SOUND_ICONS_DIR})")
    work = tmp_path / "work"
    work.mkdir()
    # the suite's fixture brings the wheel's sample (pip, PyPI) when nothing local has it
    sample = _speech_sample(work) or pyannote_sample
    if sample is None:
        pytest.skip(f"pyannote.audio 4.0.7 is not installed and ${SAMPLE_ENV} is not set")

    out = tmp_path / "out"
    demo_build.build(out, sample, allow_download=False)

    assert (out / "reference.json").read_bytes() == (DEMO_DIR / "reference.json").read_bytes()
    version = demo_build.ffmpeg_version()
    if version != demo_build.BUILT_WITH_FFMPEG:
        pytest.skip(
            f"ffmpeg {version} is not the {demo_build.BUILT_WITH_FFMPEG} that built demo.mp4: "
            "byte identity is only expected with the same encoder"
        )
    assert demo_build.sha256_file(out / "demo.mp4") == demo_build.sha256_file(DEMO_VIDEO)
