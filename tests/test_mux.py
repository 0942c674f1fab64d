"""The mux stage with real ffmpeg: durations, stream copy, subtitle tracks, faststart, bit-exactness."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dubbing_pipeline.common.media import ffprobe
from dubbing_pipeline.dubbed_video import (
    AUDIO_SAMPLE_RATE,
    Cue,
    fit_audio_length,
    mux_video,
    parse_srt,
    probe_durations,
    to_srt,
    top_level_boxes,
    video_frame_hashes,
)
from dubbing_pipeline.errors import BadInputError, ConfigurationError

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

FPS = 25
FRAME = 1.0 / FPS
DURATION = 3.0


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3.0 s, 25 fps H.264 test video (with its own audio, which must not survive the mux),
    dubbed-audio WAVs that are too short and too long, and two SRT files."""
    root = tmp_path_factory.mktemp("mux")
    src = root / "src.mp4"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=size=320x240:rate={FPS}:duration={DURATION}",
            "-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=44100:duration={DURATION}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", "-c:a", "aac", str(src),
        ],
        check=True,
    )  # fmt: skip
    out = {"src": src}
    for seconds, rate in ((2.5, 48000), (3.4, 48000), (2.5, 44100)):
        t = np.arange(round(seconds * rate)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        path = root / f"dub_{seconds}_{rate}.wav"
        sf.write(path, np.stack([tone, 0.5 * tone], axis=1), rate, subtype="FLOAT")
        out[f"{seconds}@{rate}"] = path
    (root / "spa.srt").write_text(to_srt([Cue(0.2, 1.4, "Hola, ¿qué tal?", None)]), encoding="utf-8")
    (root / "eng.srt").write_text(to_srt([Cue(0.2, 1.4, "Hello, how are you?", None)]), encoding="utf-8")
    out["spa"], out["eng"] = root / "spa.srt", root / "eng.srt"
    return out


def _tracks(media: dict[str, Path]) -> list[tuple[Path, str, str]]:
    return [(media["spa"], "spa", "Español"), (media["eng"], "eng", "English (original)")]


def _decoded_audio(path: Path) -> np.ndarray:
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    )
    return np.frombuffer(proc.stdout, dtype=np.float32).reshape(-1, 2).T


def test_fit_audio_length_pads_and_trims_exactly() -> None:
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    padded = fit_audio_length(x, 2, 4.0)
    assert padded.shape == (2, 8) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:, :5], x)
    assert not padded[:, 5:].any()
    np.testing.assert_array_equal(fit_audio_length(x, 2, 1.0), x[:, :2])
    assert fit_audio_length(np.ones(48000), 48000, 0.5).shape == (24000,)
    assert fit_audio_length(np.ones(100), 48000, 0.0).shape == (0,)
    assert fit_audio_length(x, 2, 2.5).shape == (2, 5)
    with pytest.raises(ValueError):
        fit_audio_length(x, 2, -1.0)


@pytest.mark.parametrize("audio", ["2.5@48000", "3.4@48000", "2.5@44100"])
def test_output_durations_match_the_video(media: dict[str, Path], audio: str, tmp_path: Path) -> None:
    assert probe_durations(media["src"])["video"] == pytest.approx(DURATION, abs=1e-6)
    out = mux_video(
        media["src"], media[audio], tmp_path / "out.mp4", duration=DURATION, subtitles=_tracks(media)
    )
    dur = probe_durations(out)
    assert dur["video"] == pytest.approx(DURATION, abs=FRAME)
    assert dur["audio"] == pytest.approx(DURATION, abs=FRAME)
    assert dur["format"] == pytest.approx(DURATION, abs=FRAME)
    # Independently of the container's bookkeeping: count the decoded samples.
    decoded = _decoded_audio(out)
    assert decoded.shape[1] / AUDIO_SAMPLE_RATE == pytest.approx(DURATION, abs=FRAME)
    # The dub is where it should be: the tone up to its end, silence after a short AAC tail.
    seconds = float(audio.split("@")[0])
    rate = AUDIO_SAMPLE_RATE
    t = np.arange(round(min(seconds, DURATION) * rate)) / rate
    ref = 0.3 * np.sin(2 * np.pi * 440 * t)
    head = decoded[0, : len(ref)]
    assert np.corrcoef(head[rate // 10 : -rate // 10], ref[rate // 10 : -rate // 10])[0, 1] > 0.99
    if seconds < DURATION:
        assert np.max(np.abs(decoded[:, round((seconds + 0.05) * rate) :])) < 1e-3


def test_stream_copy_keeps_frames_tracks_and_faststart(media: dict[str, Path], tmp_path: Path) -> None:
    out = mux_video(
        media["src"],
        media["3.4@48000"],
        tmp_path / "out.mp4",
        duration=DURATION,
        subtitles=_tracks(media),
        audio_language="spa",
        tags={"title": "clip (es, AI dub)", "comment": "dubbed from en into es with AI"},
    )
    # Video: the same compressed packets and the same decoded pictures as the source.
    assert video_frame_hashes(out, packets=True) == video_frame_hashes(media["src"], packets=True)
    frames = video_frame_hashes(out)
    assert frames == video_frame_hashes(media["src"]) and len(frames) == round(DURATION * FPS)

    streams = ffprobe(out)["streams"]
    kinds = [s["codec_type"] for s in streams]
    assert kinds == ["video", "audio", "subtitle", "subtitle"]  # the source's own audio is gone
    audio = streams[1]
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == AUDIO_SAMPLE_RATE
    assert audio["channels"] == 2 and audio["tags"]["language"] == "spa"
    subs = streams[2:]
    assert [s["codec_name"] for s in subs] == ["mov_text", "mov_text"]
    assert [s["tags"]["language"] for s in subs] == ["spa", "eng"]
    assert [s["tags"]["handler_name"] for s in subs] == ["Español", "English (original)"]
    srt = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(out), "-map", "0:s:0", "-f", "srt", "-"],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8")
    cue = parse_srt(srt)[0]
    assert (cue.start, cue.end, cue.text) == (0.2, 1.4, "Hola, ¿qué tal?")

    boxes = top_level_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat")  # +faststart
    tags = ffprobe(out)["format"].get("tags", {})
    assert "encoder" not in tags and "creation_time" not in tags  # bit-exact, no copied metadata
    assert (tags["title"], tags["comment"]) == ("clip (es, AI dub)", "dubbed from en into es with AI")


def test_running_twice_gives_identical_bytes(media: dict[str, Path], tmp_path: Path) -> None:
    a = mux_video(
        media["src"], media["2.5@44100"], tmp_path / "a.mp4", duration=DURATION, subtitles=_tracks(media)
    )
    b = mux_video(
        media["src"], media["2.5@44100"], tmp_path / "b.mp4", duration=DURATION, subtitles=_tracks(media)
    )
    assert a.read_bytes() == b.read_bytes()
    # Overwriting in place also works and leaves no temporary files behind.
    mux_video(media["src"], media["2.5@44100"], a, duration=DURATION, subtitles=_tracks(media))
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]
    # The file gets ordinary permissions (not a private temp file's 0600).
    reference = tmp_path / "plain"
    reference.write_bytes(b"")
    assert (a.stat().st_mode & 0o777) == (reference.stat().st_mode & 0o777)


def test_reencode_path(media: dict[str, Path], tmp_path: Path) -> None:
    out = mux_video(media["src"], media["2.5@48000"], tmp_path / "re.mp4", duration=DURATION, reencode=True)
    dur = probe_durations(out)
    assert dur["video"] == pytest.approx(DURATION, abs=FRAME)
    assert dur["audio"] == pytest.approx(DURATION, abs=FRAME)
    video = ffprobe(out)["streams"][0]
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert len(video_frame_hashes(out)) == round(DURATION * FPS)
    again = mux_video(
        media["src"], media["2.5@48000"], tmp_path / "re2.mp4", duration=DURATION, reencode=True
    )
    assert again.read_bytes() == out.read_bytes()


def test_bad_inputs_are_classified(media: dict[str, Path], tmp_path: Path) -> None:
    wav, src = media["2.5@48000"], media["src"]
    with pytest.raises(BadInputError):
        mux_video(tmp_path / "missing.mp4", wav, tmp_path / "o.mp4", duration=DURATION)
    with pytest.raises(BadInputError):
        mux_video(src, tmp_path / "missing.wav", tmp_path / "o.mp4", duration=DURATION)
    with pytest.raises(BadInputError):
        mux_video(
            src, wav, tmp_path / "o.mp4", duration=DURATION, subtitles=[(tmp_path / "x.srt", "spa", "x")]
        )
    with pytest.raises(ConfigurationError):
        mux_video(
            src, wav, tmp_path / "o.mp4", duration=DURATION, subtitles=[(media["spa"], "es", "Español")]
        )
    not_audio = tmp_path / "not.wav"
    not_audio.write_bytes(b"RIFF nonsense")
    with pytest.raises(BadInputError):
        mux_video(src, not_audio, tmp_path / "o.mp4", duration=DURATION)
    assert not (tmp_path / "o.mp4").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
