"""source_video: probe, classify bad input in one line, leave nothing half-written."""

import hashlib
import subprocess
from pathlib import Path

import pytest

from dubbing_pipeline.errors import BadInputError, sanitize
from dubbing_pipeline.orchestration.registry import register_video
from dubbing_pipeline.orchestration.resources import StorageResource, storage_resource
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.asset import ingest
from dubbing_pipeline.source_video.core import parse_probe


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    av = d / "av.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=4",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(av))  # fmt: skip
    fast = d / "fast.mp4"
    ffmpeg("-i", str(av), "-c", "copy", "-movflags", "+faststart", str(fast))
    video_only = d / "video_only.mp4"
    ffmpeg("-i", str(av), "-an", "-c", "copy", str(video_only))
    random = d / "random.mp4"
    random.write_bytes(bytes((i * 7919) % 251 for i in range(50_000)))
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    data = av.read_bytes()
    no_moov = d / "no_moov.mp4"
    no_moov.write_bytes(data[: len(data) // 2])
    cut = fast.read_bytes()
    truncated = d / "truncated.mp4"
    truncated.write_bytes(cut[: int(len(cut) * 0.4)])
    return {"av": av, "video_only": video_only, "random": random, "empty": empty,
            "no_moov": no_moov, "truncated": truncated}  # fmt: skip


@pytest.fixture()
def storage(tmp_path: Path) -> StorageResource:
    return storage_resource(Settings(storage_url=str(tmp_path / "media")))


def _ingest(storage: StorageResource, path: Path) -> tuple[dict, bool]:
    register_video(storage.get(), "v1", path.resolve().as_uri())
    result = ingest(storage, "v1")
    return result.record, result.cached


def test_good_video_is_probed_hashed_and_cached(storage: StorageResource, media: dict[str, Path]) -> None:
    record, cached = _ingest(storage, media["av"])
    assert not cached
    info = record["info"]
    assert info["has_video"] and info["fps"] == pytest.approx(25.0)
    assert info["width"] == 160 and info["sample_rate"] == 48000
    assert record["audio_rate"] == 44100 and abs(record["audio_frames"] / 44100 - 4.0) < 0.05
    # hashed: the file's own digest, computed here (the cached record below can only repeat it)
    assert record["sha256"] == hashlib.sha256(media["av"].read_bytes()).hexdigest()
    again, cached = _ingest(storage, media["av"])
    assert cached and again == record


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("random", "not a readable media file"),
        ("empty", "empty"),
        ("video_only", "no audio stream"),
        ("no_moov", "not a readable media file"),
        ("truncated", "truncated"),
    ],
)
def test_bad_input_is_classified_and_leaves_nothing(
    storage: StorageResource, media: dict[str, Path], name: str, phrase: str
) -> None:
    with pytest.raises(BadInputError) as info:
        _ingest(storage, media[name])
    line = info.value.one_line()
    assert line.startswith("bad_input: ") and phrase in line and "\n" not in line
    assert "/tmp" not in line  # no host paths
    assert storage.get().list_keys("cache") == []  # nothing half-written


def test_parse_probe_rotation_and_vfr() -> None:
    probe = {
        "format": {"duration": "3.0", "format_name": "mov,mp4"},
        "streams": [
            {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
             "avg_frame_rate": "2997/100", "r_frame_rate": "60/1",
             "side_data_list": [{"rotation": -90}]},
            {"codec_type": "audio", "codec_name": "aac", "sample_rate": "44100", "channels": 2},
        ],
    }  # fmt: skip
    info = parse_probe(probe)
    assert info.rotation == 270 and info.variable_frame_rate and info.fps == pytest.approx(29.97)


def test_sanitize_strips_paths_and_secrets() -> None:
    text = sanitize("failed at /home/user/secret/file.mp4 with password=hunter2 via s3://AK:SK@host/b")
    assert "/home/user" not in text and "hunter2" not in text and "AK:SK" not in text
    assert "file.mp4" in text
