"""LatentSyncEngine against LatentSync's real LipsyncPipeline, with structural (random) weights.

The LatentSync source tree (the commit ``k8s/Dockerfile`` pins, code only) is copied by
``.ci/install`` from ``shared/third_party/LatentSync`` into the test media folder;
``build_latentsync`` writes a reduced checkpoint directory of its real classes. Everything
upstream runs on CPU except two things it hard-codes to CUDA, which the
``cpu_engine`` fixture replaces and nothing else:

* ``LipsyncPipeline.__call__`` builds ``ImageProcessor(height, device="cuda")``: its face aligner
  (kornia on torch tensors) is built on the CPU instead, with upstream's own InsightFace
  ``FaceDetector(device="cuda")`` kept (onnxruntime falls back to its CPU provider);
* the engine's ``_check_device`` (CUDA demanded at start) is a no-op in a subclass.

LatentSync imports torchvision, whose PyPI build is linked against CUDA torch: these tests run in
``.venv-torchvision`` (see ``tests/providers/conftest.py`` and ``.ci/test``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testmedia import media_root

from dubbing_pipeline.errors import ConfigurationError, ModelMissingError
from dubbing_pipeline.lip_sync import latentsync_engine as providers
from dubbing_pipeline.lip_sync.latentsync_engine import LatentSyncEngine
from dubbing_pipeline.settings import Settings

pytestmark = pytest.mark.production_provider

ROOT = Path(__file__).resolve().parents[2]
TREE = media_root() / "LatentSync"
DEMO = ROOT / "dubbing_pipeline" / "demo" / "demo.mp4"


@pytest.fixture(scope="module")
def latentsync_tree() -> Path:
    assert (TREE / "latentsync" / "pipelines" / "lipsync_pipeline.py").is_file(), TREE
    if str(TREE) not in sys.path:
        sys.path.insert(0, str(TREE))
    return TREE


@pytest.fixture(scope="module")
def checkpoints(latentsync_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dubbing_pipeline.tooling.structural.latentsync import build_latentsync

    start = time.monotonic()
    root = build_latentsync(tmp_path_factory.mktemp("latentsync") / "checkpoints", seed=0)
    print(f"build_latentsync (reduced): {time.monotonic() - start:.1f} s")
    return root


class _CpuLatentSync(LatentSyncEngine):
    def _check_device(self) -> None:
        """The one CUDA demand of the engine, lifted for CPU (everything else runs as shipped)."""


@pytest.fixture(scope="module")
def cpu_engine(checkpoints: Path) -> Iterator[_CpuLatentSync]:
    import latentsync.pipelines.lipsync_pipeline as upstream
    from latentsync.utils.face_detector import FaceDetector
    from latentsync.utils.image_processor import ImageProcessor

    class CpuImageProcessor(ImageProcessor):
        def __init__(self, resolution: int = 512, device: str = "cpu", mask_image: Any = None) -> None:
            super().__init__(resolution, "cpu", mask_image)
            self.face_detector = FaceDetector(device=device)

    original = upstream.ImageProcessor
    upstream.ImageProcessor = CpuImageProcessor
    engine = _CpuLatentSync(
        Settings(lipsync="latentsync", latentsync_dir=str(checkpoints), latentsync_steps=2, device="cpu")
    )
    yield engine
    upstream.ImageProcessor = original


def _clip(dest: Path, frames: int) -> tuple[Path, Path]:
    """The demo's first ``frames`` frames at 25 fps (its 480x480 face) and as long a 16 kHz mono WAV."""
    video, audio = dest / "window.mp4", dest / "speech.wav"
    dest.mkdir(parents=True, exist_ok=True)
    ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(DEMO)]
    subprocess.run(
        [
            *ffmpeg,
            "-an",
            "-vf",
            "fps=25,format=yuv420p",
            "-frames:v",
            str(frames),
            "-c:v",
            "libx264",
            str(video),
        ],
        check=True,
    )
    subprocess.run(
        [*ffmpeg, "-vn", "-ac", "1", "-ar", "16000", "-t", f"{frames / 25}", "-c:a", "pcm_s16le", str(audio)],
        check=True,
    )
    return video, audio


def _streams(path: Path) -> dict[str, dict[str, str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_type,width,height,r_frame_rate,nb_read_frames,sample_rate,channels,duration",
         "-of", "default=nw=1", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    streams: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key == "codec_type":
            current = streams.setdefault(value, {})
        current[key] = value
    return streams


@pytest.fixture(scope="module")
def two_windows(cpu_engine: _CpuLatentSync, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two windows synced at once from two threads, in directories whose paths hold a space:
    16 frames (two of upstream's 16-frame batches before the fix) and 8."""
    base = tmp_path_factory.mktemp("windows") / "a dir with spaces"
    calls: list[dict[str, Any]] = []
    pipeline = cpu_engine._load()
    real_call = type(pipeline).__call__

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        record = {"cwd": os.getcwd(), "locked": providers._CWD_LOCK.locked(), "kwargs": kwargs}
        record["start"] = time.monotonic()
        try:
            return real_call(self, *args, **kwargs)
        finally:
            record["end"] = time.monotonic()
            calls.append(record)

    jobs = {}
    for name, frames in (("w16", 16), ("w8", 8)):
        video, audio = _clip(base / f"in {name}", frames)
        jobs[name] = (video, audio, base / f"out {name}.mp4", base / f"work {name}", frames)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        video, audio, out, work, _ = jobs[name]
        try:
            cpu_engine.sync(video, audio, out, work)
        except BaseException as exc:  # re-raised below in the test thread
            errors.append(exc)

    cwd = os.getcwd()
    type(pipeline).__call__ = spy
    start = time.monotonic()
    try:
        threads = [threading.Thread(target=run, args=(name,)) for name in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        type(pipeline).__call__ = real_call
    print(f"two windows (16 + 8 frames, 2 steps): {time.monotonic() - start:.1f} s")
    if errors:
        raise errors[0]
    return {"jobs": jobs, "calls": calls, "cwd": cwd, "engine": cpu_engine}


def test_output_has_the_windows_frames_rate_and_size(two_windows: dict[str, Any]) -> None:
    for video, _audio, out, _work, frames in two_windows["jobs"].values():
        streams = _streams(out)
        source = _streams(video)["video"]
        assert streams["video"]["nb_read_frames"] == str(frames), out.name
        assert streams["video"]["r_frame_rate"] == "25/1"
        assert (streams["video"]["width"], streams["video"]["height"]) == (source["width"], source["height"])
        assert (streams["audio"]["sample_rate"], streams["audio"]["channels"]) == ("16000", "1")
        assert abs(float(streams["audio"]["duration"]) - frames / 25) < 0.03
        assert not out.with_name(f"{out.name}.partial").exists()


def test_each_window_runs_inside_its_own_work_dir_under_the_lock(two_windows: dict[str, Any]) -> None:
    calls = sorted(two_windows["calls"], key=lambda c: c["start"])
    assert len(calls) == 2
    works = {str(job[3].resolve()) for job in two_windows["jobs"].values()}
    assert {c["cwd"] for c in calls} == works  # a private cwd each, so a private temp/
    assert all(c["locked"] for c in calls)
    assert calls[0]["end"] <= calls[1]["start"]  # serialised: never two chdirs at once
    for call in calls:
        kwargs = call["kwargs"]
        # shell-safe relative names: upstream pastes them unquoted into shell=True commands
        assert (kwargs["video_path"], kwargs["audio_path"], kwargs["temp_dir"]) == (
            "window.mp4",
            "window.wav",
            "temp",
        )
        assert " " not in kwargs["video_out_path"]
        assert (kwargs["width"], kwargs["height"], kwargs["num_frames"]) == (64, 64, 16)
        assert kwargs["num_inference_steps"] == 2
    assert os.getcwd() == two_windows["cwd"]
    assert not (Path(two_windows["cwd"]) / "temp").exists()
    for _video, _audio, _out, work, _frames in two_windows["jobs"].values():
        assert (work / "checkpoints").resolve() == Path(two_windows["engine"].root).resolve()
        assert (work / "temp" / "video.mp4").is_file()  # upstream's scratch stayed in the window's dir


def test_loads_the_checkpoint_weights_and_the_whisper_tiny_encoder(two_windows: dict[str, Any]) -> None:
    import torch

    engine = two_windows["engine"]
    pipeline = engine._load()
    saved = torch.load(Path(engine.root) / "latentsync_unet.pt", weights_only=True)["state_dict"]
    loaded = pipeline.unet.state_dict()
    # upstream loads with strict=False: a silently ignored checkpoint would leave the random init
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert pipeline.audio_encoder.embedding_dim == 384
    assert pipeline.unet.config.cross_attention_dim == 384
    assert pipeline.vae.config.scaling_factor == 0.18215
    assert type(pipeline.scheduler).__name__ == "DDIMScheduler"
    assert engine.describe()["model"] == "latentsync unet"


def test_relative_paths_are_the_callers(
    cpu_engine: _CpuLatentSync, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clip(tmp_path, 8)
    monkeypatch.chdir(tmp_path)
    cpu_engine.sync(Path("window.mp4"), Path("speech.wav"), Path("out.mp4"), Path("work"))
    assert _streams(tmp_path / "out.mp4")["video"]["nb_read_frames"] == "8"
    assert os.getcwd() == str(tmp_path)


def test_unet_forward_with_the_shapes_the_pipeline_feeds(cpu_engine: _CpuLatentSync) -> None:
    """The real UNet3DConditionModel at the reduced config: 13 input channels (noise latents 4,
    mask 1, masked image 4, reference 4), 16 frames, whisper chunks of 10 x 5 layer embeddings."""
    import torch

    pipeline = cpu_engine._load()
    latent = cpu_engine._config.data.resolution // pipeline.vae_scale_factor
    sample = torch.randn(2, 13, 16, latent, latent)
    audio = torch.randn(2 * 16, 50, 384)
    with torch.no_grad():
        out = pipeline.unet(sample, torch.tensor(999), encoder_hidden_states=audio).sample
    assert out.shape == (2, 4, 16, latent, latent)
    assert torch.isfinite(out).all()


def test_check_demands_cuda_and_every_file(checkpoints: Path, tmp_path: Path) -> None:
    engine = LatentSyncEngine(Settings(lipsync="latentsync", latentsync_dir=str(checkpoints), device="cpu"))
    with pytest.raises(ConfigurationError, match="DUBBING_DEVICE=cuda"):
        engine.check()
    broken = tmp_path / "broken"
    broken.mkdir()
    for entry in checkpoints.iterdir():
        if entry.name != "latentsync_unet.pt":
            (broken / entry.name).symlink_to(entry)
    with pytest.raises(ModelMissingError, match=r"latentsync_unet\.pt"):
        _CpuLatentSync(Settings(lipsync="latentsync", latentsync_dir=str(broken), device="cpu")).check()
