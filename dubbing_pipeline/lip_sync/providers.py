"""Lip-sync engines: interface → implementations → factory (``DUBBING_LIPSYNC``).

An engine turns one *window* (a short video cut at ``fps`` = 25 and its dubbed speech at
``audio_rate`` = 16 kHz mono) into the same window with the mouth re-animated. The stage plans
the windows, cuts them, bisects failures and puts the results back into the source
(``dubbing_pipeline.lip_sync.compose``); engines see nothing else.

* ``none`` (the CPU default): no model; every planned window keeps its original frames and the
  stage says so (``provider: none``, windows ``skipped``). The video stream is copied.
* ``latentsync``: ByteDance LatentSync 1.5/1.6 on CUDA, from a local checkpoint directory.
* ``musetalk``: not bundled yet; fails at start with instructions.

Heavy imports (torch, diffusers, the latentsync package) happen lazily in ``LatentSyncEngine``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dubbing_pipeline.errors import (
    BadInputError,
    ConfigurationError,
    ModelMissingError,
    ProviderError,
    require_dir,
)
from dubbing_pipeline.lip_sync.windows import MAX_WINDOW_SECONDS, MODEL_FPS
from dubbing_pipeline.media import run_ffmpeg
from dubbing_pipeline.settings import Settings

ENGINE_NAMES = ("none", "latentsync", "musetalk")


class LipSyncEngine(ABC):
    """One lip-sync model. ``sync`` is called once per window (or bisected piece of one)."""

    name = "engine"
    fps = MODEL_FPS
    audio_rate = 16000
    gpu = False
    passthrough = False  # True: keeps the original frames; the stage skips cutting and composing

    def __init__(self, max_window_seconds: float | None = None) -> None:
        default = MAX_WINDOW_SECONDS.get(self.name, 30.0)
        self.max_window_seconds = float(max_window_seconds or default)

    def describe(self) -> dict[str, Any]:
        """Provider, model and every setting that changes the output (part of the cache key)."""
        return {
            "name": self.name,
            "model": "",
            "fps": self.fps,
            "audio_rate": self.audio_rate,
            "max_window_seconds": self.max_window_seconds,
        }

    def check(self) -> None:  # noqa: B027 - optional hook
        """Fail early (``ModelMissingError``) when the engine cannot run at all."""

    @abstractmethod
    def sync(self, window_video: Path, window_audio: Path, out_video: Path, work_dir: Path) -> None:
        """Write ``out_video``: ``window_video`` (``fps``, constant) with the mouth following
        ``window_audio`` (``audio_rate`` Hz mono WAV of the same length). ``work_dir`` is a private,
        empty scratch directory. Raise on failure; never write a partial ``out_video``."""


class NoneEngine(LipSyncEngine):
    """No lip-sync: the original frames are kept (the embedded CPU default)."""

    name = "none"
    passthrough = True

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": "original frames kept"}

    def sync(self, window_video: Path, window_audio: Path, out_video: Path, work_dir: Path) -> None:
        tmp = out_video.with_name(f".{out_video.name}.partial")
        shutil.copyfile(window_video, tmp)
        os.replace(tmp, out_video)


_CWD_LOCK = threading.Lock()
_CONFIG_NAMES = ("unet.yaml", "stage2_512.yaml", "stage2.yaml", "config.yaml")


@contextlib.contextmanager
def _inside(path: Path) -> Iterator[None]:
    """Run with ``path`` as the working directory (LatentSync writes to a fixed ``temp/``)."""
    with _CWD_LOCK:
        old = os.getcwd()
        os.chdir(path)
        try:
            yield
        finally:
            os.chdir(old)


class LatentSyncEngine(LipSyncEngine):
    """LatentSync 1.5 (256 px) / 1.6 (512 px) on CUDA from ``DUBBING_LATENTSYNC_DIR``.

    Contract:

    * **Checkpoints** (``DUBBING_LATENTSYNC_DIR``, mounted, never downloaded): ``latentsync_unet.pt``;
      ``whisper/tiny.pt`` (``cross_attention_dim`` 384; ``whisper/small.pt`` for 768); the UNet
      config (``unet.yaml``, ``stage2_512.yaml`` for 1.6 or ``stage2.yaml`` for 1.5, the first
      found); the VAE as a diffusers directory ``sd-vae-ft-mse/`` (upstream names the hub id
      ``stabilityai/sd-vae-ft-mse``, loaded here from disk only); ``auxiliary/`` with the
      InsightFace detector upstream's face detector reads (``checkpoints/auxiliary``).
    * **Code**: the ``latentsync`` package of a pinned LatentSync source tree on ``PYTHONPATH``
      (not on PyPI), with its ``configs/scheduler_config.json`` and ``latentsync/utils/mask.png``.
    * **Inputs**: the window at 25 fps and its speech as 16 kHz mono WAV, equal lengths (the stage
      normalises both); output: an MP4 at 25 fps with as many frames as the audio holds 1/25 s,
      same resolution as the input (upstream pastes the generated mouth back into the frames).
    * **Isolation**: upstream writes to a fixed relative ``temp/`` and reads ``checkpoints/`` and
      ``configs/`` relative to the working directory. Each call runs inside its private
      ``work_dir`` (a process-wide lock serialises the ``chdir``) where ``checkpoints`` links to
      ``DUBBING_LATENTSYNC_DIR``, so parallel runs (processes, pods) never share a ``temp/``.
    * **Memory**: upstream holds every frame of the window in host memory (several copies), so
      host memory grows with the window: the 30 s cap bounds it (~4 GB at 1080p).
    * **Determinism**: a fixed seed (``DUBBING_LATENTSYNC_SEED``) through a CUDA generator.
    * **Failures**: ``ModelMissingError`` at start (``check``) when the directory, a file or the
      package is missing; upstream's ``RuntimeError("Face not detected")`` and CUDA OOM surface as
      provider/resource errors, which the stage confines by bisection.
    """

    name = "latentsync"
    gpu = True

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.lipsync_max_window or None)
        self.root = settings.latentsync_dir
        self.steps = int(settings.latentsync_steps)
        self.guidance = float(settings.latentsync_guidance)
        self.seed = int(settings.latentsync_seed)
        self.device = settings.device
        self._pipeline: Any = None
        self._config: Any = None

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": self._version_label(),
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": self.seed,
        }

    def _version_label(self) -> str:
        config = self._config_path(required=False)
        if config is None:
            return "latentsync"
        return f"latentsync {'1.6 (512px)' if '512' in config.name else config.stem}"

    def _config_path(self, *, required: bool = True) -> Path | None:
        if self.root:
            for name in _CONFIG_NAMES:
                if (Path(self.root) / name).is_file():
                    return Path(self.root) / name
        if required:
            raise ModelMissingError(
                f"LatentSync: no UNet config ({', '.join(_CONFIG_NAMES)}) in DUBBING_LATENTSYNC_DIR"
            )
        return None

    def _source_tree(self) -> Path:
        import importlib.util

        spec = importlib.util.find_spec("latentsync")
        if spec is None or not spec.submodule_search_locations:
            raise ModelMissingError(
                "LatentSync: the latentsync package is not importable; add a LatentSync 1.5/1.6 source "
                "tree to PYTHONPATH (see the README, 'Installing the GPU providers')"
            )
        return Path(next(iter(spec.submodule_search_locations))).parent

    def check(self) -> None:
        root = Path(require_dir(self.root, "LatentSync", "DUBBING_LATENTSYNC_DIR"))
        config = self._config_path()
        assert config is not None
        for rel in ("latentsync_unet.pt", "sd-vae-ft-mse"):
            if not (root / rel).exists():
                raise ModelMissingError(f"LatentSync: {rel} not found in DUBBING_LATENTSYNC_DIR")
        if not ((root / "whisper" / "tiny.pt").is_file() or (root / "whisper" / "small.pt").is_file()):
            raise ModelMissingError("LatentSync: whisper/tiny.pt not found in DUBBING_LATENTSYNC_DIR")
        tree = self._source_tree()
        if not (tree / "configs" / "scheduler_config.json").is_file():
            raise ModelMissingError("LatentSync: configs/scheduler_config.json missing from the source tree")
        self._check_device()

    def _check_device(self) -> None:
        """CUDA only: upstream's pipeline builds its face aligner and InsightFace detector on
        ``"cuda"`` whatever the pipeline's device. (The CPU tests replace exactly that and this.)"""
        if self.device != "cuda":
            raise ConfigurationError("LatentSync needs DUBBING_DEVICE=cuda")
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is a dependency
            raise ModelMissingError("LatentSync needs torch") from exc
        if not torch.cuda.is_available():
            raise ConfigurationError("LatentSync needs a CUDA GPU (none is visible)")

    def _load(self) -> Any:
        if self._pipeline is not None:
            return self._pipeline
        self.check()
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler
        from latentsync.models.unet import UNet3DConditionModel
        from latentsync.pipelines.lipsync_pipeline import LipsyncPipeline
        from latentsync.whisper.audio2feature import Audio2Feature
        from omegaconf import OmegaConf

        root, tree = Path(self.root), self._source_tree()
        config = OmegaConf.load(str(self._config_path()))
        dim = int(config.model.cross_attention_dim)
        whisper = root / "whisper" / {384: "tiny.pt", 768: "small.pt"}.get(dim, "tiny.pt")
        if not whisper.is_file():
            raise ModelMissingError(
                f"LatentSync: whisper/{whisper.name} not found (cross_attention_dim {dim})"
            )
        # fp16 from Ampere on (upstream's rule); fp32 elsewhere
        cuda = self.device == "cuda"
        dtype = torch.float16 if cuda and torch.cuda.get_device_capability()[0] > 7 else torch.float32
        scheduler = DDIMScheduler.from_pretrained(str(tree / "configs"))
        audio_encoder = Audio2Feature(
            model_path=str(whisper),
            device=self.device,
            num_frames=config.data.num_frames,
            audio_feat_length=config.data.audio_feat_length,
        )
        vae = AutoencoderKL.from_pretrained(
            str(root / "sd-vae-ft-mse"), torch_dtype=dtype, local_files_only=True
        )
        vae.config.scaling_factor = 0.18215
        vae.config.shift_factor = 0
        unet, _ = UNet3DConditionModel.from_pretrained(
            OmegaConf.to_container(config.model), str(root / "latentsync_unet.pt"), device="cpu"
        )
        unet = unet.to(dtype=dtype)
        pipeline = LipsyncPipeline(vae=vae, audio_encoder=audio_encoder, unet=unet, scheduler=scheduler)
        self._pipeline = pipeline.to(self.device)
        self._config, self._dtype = config, dtype
        mask = Path(str(config.data.mask_image_path))
        self._mask = str(mask if mask.is_absolute() else tree / mask)
        return self._pipeline

    def sync(self, window_video: Path, window_audio: Path, out_video: Path, work_dir: Path) -> None:
        for path in (window_video, window_audio):
            if not path.is_file():
                raise BadInputError(f"LatentSync input {path.name!r} not found")
        pipeline = self._load()
        import torch

        # absolute before the chdir below: a relative path would name a file in work_dir
        window_video, window_audio = Path(window_video).resolve(), Path(window_audio).resolve()
        out_video = Path(out_video).resolve()
        work_dir = Path(work_dir).resolve()
        work_dir.mkdir(parents=True, exist_ok=True)
        link = work_dir / "checkpoints"
        if not link.exists():
            link.symlink_to(Path(self.root).resolve(), target_is_directory=True)
        # upstream pastes paths unquoted into ``shell=True`` ffmpeg commands and ignores their exit
        # codes: a space in any path made them fail silently. Inside work_dir it sees only these
        # fixed, shell-safe relative names.
        for name, target in (("window.mp4", window_video), ("window.wav", window_audio)):
            (work_dir / name).unlink(missing_ok=True)
            (work_dir / name).symlink_to(target)
        partial = work_dir / "out.partial.mp4"
        config = self._config
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        with _inside(work_dir):
            try:
                pipeline(
                    video_path="window.mp4",
                    audio_path="window.wav",
                    video_out_path=partial.name,
                    num_frames=config.data.num_frames,
                    num_inference_steps=self.steps,
                    guidance_scale=self.guidance,
                    weight_dtype=self._dtype,
                    width=config.data.resolution,
                    height=config.data.resolution,
                    mask_image_path=self._mask,
                    temp_dir="temp",
                    generator=generator,
                )
            finally:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        if not partial.is_file() or partial.stat().st_size == 0:
            raise ProviderError("LatentSync wrote no output video")
        # Upstream makes one frame per whisper chunk, and its chunk loop stops one chunk late
        # (``floor(F/2) + 2`` chunks for F 50 Hz features): a window of N frames came back with
        # N + 2, the last two looped back from the end. Keep the window's own N frames.
        want, got = _video_frames(window_video), _video_frames(partial)
        if got < want:
            raise ProviderError(f"LatentSync returned {got} frames for a window of {want}")
        if got > want:
            trimmed = work_dir / "out.trimmed.mp4"
            run_ffmpeg(
                ["-i", str(partial), "-map", "0", "-frames:v", str(want), "-c:v", "libx264", "-crf", "18",
                 "-pix_fmt", "yuv420p", "-c:a", "copy", str(trimmed)],
                what="trimming LatentSync's output",
            )  # fmt: skip
            partial = trimmed
        os.replace(partial, out_video)


def _video_frames(path: Path) -> int:
    """Frames of ``path``'s first video stream, counted by decoding (container counts can lie)."""
    import subprocess

    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return int(proc.stdout.strip().split(",")[0])
    except ValueError as exc:
        raise ProviderError(f"cannot count the frames of {path.name}: {proc.stderr.strip()[-200:]}") from exc


class MuseTalkEngine(LipSyncEngine):
    """MuseTalk 1.5 (not bundled): fails at start with instructions."""

    name = "musetalk"
    gpu = True

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.lipsync_max_window or None)
        self.root = settings.musetalk_dir

    def check(self) -> None:
        raise ModelMissingError(
            "MuseTalk is not bundled yet: use DUBBING_LIPSYNC=latentsync (with DUBBING_LATENTSYNC_DIR) "
            "or none; a MuseTalk adapter needs its source tree on PYTHONPATH and DUBBING_MUSETALK_DIR"
        )

    def sync(self, window_video: Path, window_audio: Path, out_video: Path, work_dir: Path) -> None:
        self.check()


def make_lipsync(settings: Settings) -> LipSyncEngine:
    """The engine ``DUBBING_LIPSYNC`` names (``none``, ``latentsync``, ``musetalk``)."""
    name = (settings.lipsync or "none").strip().lower()
    if name == "none":
        return NoneEngine(settings.lipsync_max_window or None)
    if name == "latentsync":
        return LatentSyncEngine(settings)
    if name == "musetalk":
        return MuseTalkEngine(settings)
    raise ConfigurationError(f"unknown DUBBING_LIPSYNC {name!r}: use one of {', '.join(ENGINE_NAMES)}")
