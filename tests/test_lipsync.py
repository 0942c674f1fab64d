"""Lip-sync on real media: a face clip with a face-less stretch, real ffmpeg, a packaged face detector.

The clip (12 s, 256×256, 25 fps, GOP 50) shows scikit-image's astronaut (a real photograph of a
face), jittered a little per frame, except 5.0–7.0 s: scikit-image's coffee cup, blurred (no face;
a blurred *astronaut* is not enough, the LBP cascade still finds a face in it). Dubbed
speech: 0.6–3.0 s, 5.2–6.6 s (during the face-less stretch) and 9.0–11.0 s, separated by
silences of more than 2 s. An engine double (``MarkEngine``) "syncs" by drawing a red box over
the mouth; it fails, like a real model that loses the face, on any window containing a frame
with a green marker (frames 240–243, 9.6–9.76 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dubbing_pipeline.dubbed_video.core import probe_durations, video_frame_hashes
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, ProviderError
from dubbing_pipeline.lip_sync.base import LipSyncEngine, NoneEngine
from dubbing_pipeline.lip_sync.compose import (
    compose,
    cut_window,
    keyframe_indices,
    probe_video,
    window_speech,
)
from dubbing_pipeline.lip_sync.core import FLOOR_SECONDS, run_window
from dubbing_pipeline.lip_sync.faces import FaceTrack, choose_face, mouth_box, runs, track_faces
from dubbing_pipeline.lip_sync.latentsync_engine import LatentSyncEngine
from dubbing_pipeline.lip_sync.musetalk_engine import MuseTalkEngine
from dubbing_pipeline.lip_sync.providers import make_lipsync
from dubbing_pipeline.lip_sync.windows import MODEL_FPS, Window, plan_windows, source_frame_range
from dubbing_pipeline.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

SIZE, FPS, SECONDS = 256, 25, 12.0
N = int(FPS * SECONDS)
FACELESS = (125, 175)  # source frames 5.0–7.0 s
BAD = range(240, 244)  # frames with the marker the double fails on
LINES = [(0.6, 1.8), (2.2, 3.0), (5.2, 6.6), (9.0, 11.0)]
MARK = (slice(180, 212), slice(96, 160))  # rows, cols of the red box the double draws
SR = 16000


def _frames() -> list[np.ndarray]:
    from skimage import data, filters, transform

    face = (transform.resize(data.astronaut(), (SIZE, SIZE), anti_aliasing=True) * 255).astype(np.uint8)
    cup = transform.resize(data.coffee(), (SIZE, SIZE), anti_aliasing=True)
    blank = (filters.gaussian(cup, sigma=3, channel_axis=-1) * 255).astype(np.uint8)
    out = []
    for j in range(N):
        f = blank.copy() if FACELESS[0] <= j < FACELESS[1] else np.roll(face, (j % 5) - 2, axis=1).copy()
        if j in BAD:
            f[:24, :24] = (0, 255, 0)
        out.append(f)
    return out


def _encode(frames: list[np.ndarray], path: Path, *, gop: int = 50) -> Path:
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{SIZE}x{SIZE}", "-framerate", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "fast",
        "-pix_fmt", "yuv420p", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


def _decode(path: Path) -> np.ndarray:
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    )
    return np.frombuffer(proc.stdout, dtype=np.uint8).reshape(-1, SIZE, SIZE, 3)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _encode(_frames(), tmp_path_factory.mktemp("lipsync") / "clip.mp4")


@pytest.fixture(scope="module")
def track(clip: Path) -> FaceTrack:
    return track_faces(clip)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[float, np.ndarray, int]]:
    """Placed dubbed lines: a voiced tone per line (the double ignores the audio, LatentSync would not)."""
    out = []
    for s, e in LINES:
        t = np.arange(round((e - s) * 22050)) / 22050
        out.append(
            (
                s,
                (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))).astype(np.float32),
                22050,
            )
        )
    return out


class MarkEngine(LipSyncEngine):
    """Draws a red box over the mouth of every frame; fails on clips containing the green marker."""

    name = "mark"

    def __init__(self) -> None:
        super().__init__(30.0)
        self.calls: list[int] = []

    def sync(self, window_video: Path, window_audio: Path, out_video: Path, work_dir: Path) -> None:
        import soundfile as sf

        frames = _decode(window_video).copy()
        audio, sr = sf.read(str(window_audio))
        assert sr == self.audio_rate and abs(len(audio) / sr - len(frames) / self.fps) < 1e-6
        self.calls.append(len(frames))
        corner = frames[:, :24, :24].reshape(len(frames), -1, 3).mean(axis=1)
        if np.any((corner[:, 1] > 180) & (corner[:, 0] < 90)):
            raise ProviderError("Face not detected")
        frames[:, MARK[0], MARK[1]] = (255, 0, 0)
        tmp = work_dir / "out.mp4"
        cmd = [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{SIZE}x{SIZE}", "-framerate", str(self.fps), "-i", "-",
            "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(tmp),
        ]  # fmt: skip
        subprocess.run(cmd, input=frames.tobytes(), check=True)
        os.replace(tmp, out_video)


def _marked(frame: np.ndarray) -> bool:
    box = frame[MARK[0], MARK[1]].reshape(-1, 3).mean(axis=0)
    return bool(box[0] > 200 and box[1] < 60 and box[2] < 60)


# --- the face track --------------------------------------------------------------------------


def test_face_track_sees_the_face_and_not_the_blank(track: FaceTrack) -> None:
    assert track.frames_total == N and track.stride == 2
    spans = runs(track.present)
    assert len(spans) == 2
    assert spans[0][0] == 0 and abs(spans[0][1] - FACELESS[0]) <= 1
    assert abs(spans[1][0] - FACELESS[1]) <= 1 and spans[1][1] == N
    # the mouth box lies in the lower half of the picture, inside the astronaut's face (x≈85..135)
    x, y, w, h = track.mouth_at(10) or (0, 0, 0, 0)
    assert x >= 70 and x + w <= 150 and y >= 60 and y + h <= 140 and w > 5 and h > 3
    assert FaceTrack.from_dict(track.to_dict()) == track


def test_speaking_face_rule() -> None:
    assert choose_face([], 100, 100) is None
    assert choose_face([(0, 0, 10, 10), (50, 50, 20, 20)], 100, 100) == (50, 50, 20, 20)  # largest
    assert choose_face([(0, 0, 20, 20), (40, 40, 20, 20)], 100, 100) == (40, 40, 20, 20)  # tie: central
    assert mouth_box((0, 0, 30, 30)) == (7, 20, 16, 10)


def test_windows_avoid_silences_and_the_faceless_stretch(track: FaceTrack) -> None:
    plan = plan_windows(LINES, duration=SECONDS, fps=FPS, frames_total=N, face=track.present)
    assert plan.windows, plan
    for w in plan.windows:
        assert w.end <= FACELESS[0] / FPS or w.start >= FACELESS[1] / FPS  # no face-less frame
        for lo, hi in ((4.1, 4.8), (7.0, 8.2)):  # silences beyond margin and unit rounding
            assert w.end <= lo or w.start >= hi, (w, lo, hi)
    assert plan.frames_skipped_no_face > 0 and plan.frames_skipped_silence > 0
    assert plan.frames_to_model + plan.frames_skipped_no_face + plan.frames_skipped_silence == N
    print("frames", plan.counts())


# --- composing -------------------------------------------------------------------------------


def _run_engine(clip: Path, engine: LipSyncEngine, windows: list[Window], speech, tmp: Path):  # type: ignore[no-untyped-def]
    info = probe_video(clip)
    synced, pieces = [], []
    outputs: dict[int, Path] = {}
    for window in windows:

        def sync(piece: Window) -> None:
            name = f"p{piece.start_frame}"
            cut_window(clip, piece, tmp / f"{name}.mp4", info=info)
            window_speech(speech, piece, tmp / f"{name}.wav")
            work = tmp / f"{name}.work"
            work.mkdir(exist_ok=True)
            engine.sync(tmp / f"{name}.mp4", tmp / f"{name}.wav", tmp / f"{name}.out.mp4", work)
            outputs[piece.start_frame] = tmp / f"{name}.out.mp4"

        got = run_window(window, sync)
        pieces += got
        synced += [(p.window, outputs[p.start_frame]) for p in got if p.status == "synced"]
    return synced, pieces


def test_failure_injection_through_the_real_compose_path(
    clip: Path, track: FaceTrack, speech, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    plan = plan_windows(LINES, duration=SECONDS, fps=FPS, frames_total=N, face=track.present)
    engine = MarkEngine()
    synced, pieces = _run_engine(clip, engine, plan.windows, speech, tmp_path)
    failed = [p for p in pieces if p.status == "failed"]
    assert failed and all(p.end - p.start <= FLOOR_SECONDS for p in failed)
    assert any(p.start_frame <= 240 < p.end_frame for p in failed)
    assert [p for p in pieces if p.status == "synced"]

    result = compose(clip, synced, tmp_path / "out.mp4", tmp_path)
    out = tmp_path / "out.mp4"
    assert result.changed and result.mode == "smart"
    src_info, out_info = probe_video(clip), probe_video(out)
    assert (out_info.width, out_info.height, out_info.rate, out_info.pix_fmt) == (SIZE, SIZE, FPS, "yuv420p")
    assert out_info.frames == N == result.frames_total
    assert probe_durations(out)["video"] == pytest.approx(probe_durations(clip)["video"], abs=1e-6)
    assert out_info.timescale == src_info.timescale

    frames, source = _decode(out), _decode(clip)
    assert len(frames) == N
    in_synced = {j for w, _p in synced for j in range(*source_frame_range(w, FPS, N))}
    for j in range(N):
        assert _marked(frames[j]) == (j in in_synced), j
    for p in failed:  # failing pieces keep the original picture (re-encoded only by GOP)
        for j in range(*source_frame_range(p.window, FPS, N)):
            assert np.abs(frames[j].astype(int) - source[j].astype(int)).mean() < 4.0
    # frames outside the re-encoded GOP spans are the source's, bit for bit
    src_hashes, out_hashes = video_frame_hashes(clip), video_frame_hashes(out)
    reencoded = {j for a, b in result.spans for j in range(a, b)}
    assert all(src_hashes[j] == out_hashes[j] for j in range(N) if j not in reencoded)
    keys, _ = keyframe_indices(clip)
    assert all(a in keys for a, _b in result.spans)
    assert result.frames_reencoded < N
    print("compose", result.to_dict(), "saved", 1 - result.frames_reencoded / N)


def test_full_reencode_fallback_keeps_every_frame(clip: Path, tmp_path: Path) -> None:
    # a window clip that the double marks everywhere; force the fallback with a non-splittable copy
    mkv = tmp_path / "src.mkv"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-c:v", "mpeg4", "-q:v", "3",
                    str(mkv)], check=True)  # fmt: skip
    w = Window(32, 64)
    cut_window(mkv, w, tmp_path / "w.mp4")
    frames = _decode(tmp_path / "w.mp4").copy()
    frames[:, MARK[0], MARK[1]] = (255, 0, 0)
    _encode(list(frames), tmp_path / "w_out.mp4")
    result = compose(mkv, [(w, tmp_path / "w_out.mp4")], tmp_path / "out.mp4", tmp_path)
    assert result.mode == "full" and result.frames_reencoded == N
    out = _decode(tmp_path / "out.mp4")
    assert len(out) == N and all(_marked(out[j]) == (32 <= j < 64) for j in range(N))


def test_none_engine_copies_the_stream_bit_exactly(clip: Path, tmp_path: Path) -> None:
    engine = make_lipsync(Settings(lipsync="none"))
    assert isinstance(engine, NoneEngine) and engine.passthrough and not engine.gpu
    result = compose(clip, [], tmp_path / "out.mp4", tmp_path)
    assert not result.changed and result.mode == "copy" and result.frames_reencoded == 0
    assert video_frame_hashes(tmp_path / "out.mp4") == video_frame_hashes(clip)
    assert video_frame_hashes(tmp_path / "out.mp4", packets=True) == video_frame_hashes(clip, packets=True)


def test_window_cuts_are_25fps_and_audio_matches(clip: Path, speech, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import soundfile as sf

    w = Window(15, 15 + 48)
    cut_window(clip, w, tmp_path / "w.mp4")
    info = probe_video(tmp_path / "w.mp4")
    assert info.rate == MODEL_FPS and info.frames == 48
    # the cut starts at the right source frame (the double's jitter identifies it)
    assert np.abs(_decode(tmp_path / "w.mp4")[0].astype(int) - _decode(clip)[15].astype(int)).mean() < 4.0
    window_speech(speech, w, tmp_path / "w.wav")
    audio, sr = sf.read(str(tmp_path / "w.wav"))
    assert sr == SR and len(audio) == round(w.seconds * SR)
    before = (tmp_path / "w.wav").read_bytes()
    window_speech(speech, w, tmp_path / "w.wav")
    assert (tmp_path / "w.wav").read_bytes() == before


# --- providers ---------------------------------------------------------------------------------


def test_factory_and_missing_models(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        make_lipsync(Settings(lipsync="wav2lip"))
    engine = make_lipsync(Settings(lipsync="latentsync", latentsync_dir=""))
    assert isinstance(engine, LatentSyncEngine) and engine.gpu and engine.max_window_seconds == 30.0
    with pytest.raises(ModelMissingError, match="DUBBING_LATENTSYNC_DIR"):
        engine.check()
    with pytest.raises(ModelMissingError):
        make_lipsync(Settings(lipsync="latentsync", latentsync_dir=str(tmp_path))).check()
    muse = make_lipsync(Settings(lipsync="musetalk"))
    assert isinstance(muse, MuseTalkEngine) and muse.max_window_seconds == 120.0
    with pytest.raises(ModelMissingError):
        muse.check()
    assert make_lipsync(Settings(lipsync="latentsync", lipsync_max_window=12.0)).max_window_seconds == 12.0
    assert engine.describe()["steps"] == 20


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


@pytest.mark.gpu
def test_latentsync_smoke(tmp_path: Path, speech) -> None:  # type: ignore[no-untyped-def]
    latentsync_dir = os.environ.get("DUBBING_LATENTSYNC_DIR")
    if not latentsync_dir or not _cuda():
        pytest.skip("LatentSync smoke test needs DUBBING_LATENTSYNC_DIR and a CUDA GPU")
    from skimage import data, transform

    face = (transform.resize(data.astronaut(), (512, 512), anti_aliasing=True) * 255).astype(np.uint8)
    src = tmp_path / "face.mp4"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "512x512",
           "-framerate", "25", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)]  # fmt: skip
    subprocess.run(cmd, input=face.tobytes() * 64, check=True)
    settings = Settings(lipsync="latentsync", latentsync_dir=latentsync_dir, device="cuda")
    engine = make_lipsync(settings)
    engine.check()
    w = Window(0, 64)
    cut_window(src, w, tmp_path / "w.mp4")
    window_speech([(0.0, speech[-1][1], speech[-1][2])], w, tmp_path / "w.wav")
    (tmp_path / "work").mkdir()
    engine.sync(tmp_path / "w.mp4", tmp_path / "w.wav", tmp_path / "out.mp4", tmp_path / "work")
    info = probe_video(tmp_path / "out.mp4")
    assert info.rate == 25 and abs(info.frames - 64) <= 1 and (info.width, info.height) == (512, 512)


# --- the Dagster asset -------------------------------------------------------------------------


def _materialize_lip_sync(tmp_path: Path, clip: Path, settings: Settings):  # type: ignore[no-untyped-def]
    """Materialise ``lip_sync`` (and its check) for one partition over stored upstream records."""
    import dagster as dg
    import soundfile as sf

    from dubbing_pipeline.common.hashing import sha256_file
    from dubbing_pipeline.definitions import resources_for
    from dubbing_pipeline.dubbed_speech.records import DubbedLine, DubbedSpeechRecord
    from dubbing_pipeline.lip_sync.asset import build, build_checks
    from dubbing_pipeline.orchestration.partitions import video_language, video_language_key, videos
    from dubbing_pipeline.source_video.records import SourceInfo, SourceVideoRecord
    from dubbing_pipeline.storage import make_storage

    store = make_storage(settings.storage_url)
    media = store.put_file("media/clip.mp4", clip)
    lines = []
    for i, (s, e) in enumerate(LINES):
        t = np.arange(round((e - s) * SR)) / SR
        wav = tmp_path / f"l{i}.wav"
        sf.write(str(wav), (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), SR)
        uri = store.put_file(f"media/l{i}.wav", wav)
        lines.append(
            DubbedLine(
                id=f"s{i}", speaker="S1", start=s, end=e, status="fits", dub_start=s, dub_end=e, uri=uri
            )
        )
    info = SourceInfo(
        duration=SECONDS,
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        has_video=True,
        width=SIZE,
        height=SIZE,
        fps=float(FPS),
        variable_frame_rate=False,
        rotation=0,
        video_codec="h264",
        frame_count=N,
        audio_codec="",
        sample_rate=0,
        channels=0,
        audio_streams=0,
    )
    source = SourceVideoRecord(
        cache_key="src",
        sha256=sha256_file(clip),
        info=info,
        duration=SECONDS,
        media_uri=media,
        audio_uri=media,
        audio_frames=0,
        audio_rate=0,
        video_id="clip",
        source_uri=media,
        source_fingerprint=None,
    )
    speech = DubbedSpeechRecord(
        cache_key="speech",
        target_language="es",
        provider={"name": "test"},
        watermark=None,
        lines=lines,
        spoken=[],
        refitted=[],
    )
    store.put_json("records/source_video/clip.json", source.to_json())
    store.put_json("records/dubbed_speech/es/clip.json", speech.to_json())
    lip_sync, (check,) = build(settings), build_checks(settings)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("videos", ["clip"])
    instance.add_dynamic_partitions("languages", ["es"])
    resources = resources_for(settings)
    result = dg.materialize(
        [dg.AssetSpec("source_video", partitions_def=videos),
         dg.AssetSpec("dubbed_speech", partitions_def=video_language), lip_sync, check],
        selection=[lip_sync.key],
        partition_key=str(video_language_key("clip", "es")),
        resources=resources, instance=instance,
    )  # fmt: skip
    record = store.get_json("records/lip_sync/es/clip.json")
    return result, record, lip_sync


def test_asset_with_none_engine_keeps_the_video(tmp_path: Path, clip: Path) -> None:
    settings = Settings(storage_url=str(tmp_path / "media"), lipsync="none")
    result, record, _ = _materialize_lip_sync(tmp_path, clip, settings)
    assert result.success
    assert (
        record["changed"] is False and record["status"] == "ok" and record["video_uri"].endswith("clip.mp4")
    )
    ls = record["lipsync"]
    assert ls["provider"] == "none" and ls["windows"] and {w["status"] for w in ls["windows"]} == {"skipped"}
    assert ls["frames_to_model"] + ls["frames_skipped_silence"] + ls["frames_skipped_no_face"] == N
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 1 and checks[0].passed


def test_asset_failure_degrades_to_the_original_video_with_a_warning(tmp_path: Path, clip: Path) -> None:
    settings = Settings(storage_url=str(tmp_path / "media"), lipsync="latentsync", latentsync_dir="")
    result, record, _ = _materialize_lip_sync(tmp_path, clip, settings)
    assert result.success  # the partition still produces the dub over the original video
    assert record["changed"] is False and record["status"] == "failed" and "model_missing" in record["error"]
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity.value == "WARN"


def test_gpu_tags_only_for_gpu_engines() -> None:
    import json

    from dubbing_pipeline.lip_sync.asset import build

    def sync_op(settings: Settings):  # type: ignore[no-untyped-def]
        asset = build(settings)
        return next(
            n.definition for n in asset.node_def.node_dict.values() if n.definition.name == "sync_window"
        )

    cpu = sync_op(Settings(deployment="production", lipsync="none"))
    assert "dagster-k8s/config" not in cpu.tags and cpu.pool is None
    gpu = sync_op(Settings(deployment="production", lipsync="latentsync", device="cuda"))
    config = json.loads(gpu.tags["dagster-k8s/config"])
    assert config["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert config["pod_spec_config"]["tolerations"] and gpu.pool == "gpu"
    embedded = sync_op(Settings(lipsync="latentsync", device="cuda"))
    assert "dagster-k8s/config" not in embedded.tags


def test_asset_end_to_end_with_an_engine_double(
    tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan (face track) → sync_window per window (bisection, step cache) → compose, in Dagster."""
    from dubbing_pipeline.orchestration.providers import Providers  # the resources' factory table

    monkeypatch.setattr(Providers, "lipsync", staticmethod(lambda settings: MarkEngine()))
    settings = Settings(storage_url=str(tmp_path / "media"), lipsync="none")
    result, record, _ = _materialize_lip_sync(tmp_path, clip, settings)
    assert result.success and record["status"] == "ok" and record["changed"] is True
    ls = record["lipsync"]
    assert ls["provider"] == "mark" and ls["detector"]
    assert ls["frames_to_model"] + ls["frames_skipped_silence"] + ls["frames_skipped_no_face"] == N
    statuses = {w["status"] for w in ls["windows"]}
    assert statuses == {"synced", "failed"}
    assert all(w["end"] - w["start"] <= FLOOR_SECONDS for w in ls["windows"] if w["status"] == "failed")
    assert record["compose"]["mode"] == "smart" and record["compose"]["frames_total"] == N
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed  # some pieces kept their original frames: a warning
    from dubbing_pipeline.storage import make_storage

    store = make_storage(settings.storage_url)
    out = store.download(store.key_of(record["video_uri"]), tmp_path / "lipsync.mp4")
    assert probe_video(out).frames == N
    # a second run is served from the caches: same record, no engine call
    calls: list[int] = []
    monkeypatch.setattr(Providers, "lipsync", staticmethod(lambda settings: _Counting(calls)))
    _, again, _ = _materialize_lip_sync(tmp_path, clip, settings)
    assert again["video_uri"] == record["video_uri"] and calls == []


class _Counting(MarkEngine):
    def __init__(self, calls: list[int]) -> None:
        super().__init__()
        self.calls = calls
