"""``LatentSyncEngine``: ByteDance LatentSync 1.5/1.6 on CUDA, from a local checkpoint directory.

This module is light (the factory imports it with the others); torch and LatentSync's code are
imported by ``latentsync_pipeline``, which the engine imports on first use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubbing_pipeline.common.media import run_ffmpeg
from dubbing_pipeline.common.tool_env import tool_env
from dubbing_pipeline.errors import (
    BadInputError,
    ConfigurationError,
    ModelMissingError,
    ProviderError,
    require_dir,
)
from dubbing_pipeline.lip_sync.base import LipSyncEngine
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings

if TYPE_CHECKING:
    from dubbing_pipeline.lip_sync.latentsync_pipeline import LatentSyncRuntime

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


def _runtime() -> type[LatentSyncRuntime]:
    """LatentSync's pipeline code, imported on first use (torch, LatentSync's source tree)."""
    try:
        from dubbing_pipeline.lip_sync import latentsync_pipeline  # lazy: torch and LatentSync's tree
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise ModelMissingError("LatentSync needs torch") from exc
    return latentsync_pipeline.LatentSyncRuntime


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
        self._loaded: LatentSyncRuntime | None = None

    @property
    def _config(self) -> Any:
        """The loaded UNet config (OmegaConf), once loaded."""
        return self._loaded.config if self._loaded is not None else None

    def describe(self) -> JsonObject:
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
        spec = importlib.util.find_spec("latentsync")
        if spec is None or not spec.submodule_search_locations:
            raise ModelMissingError(
                "LatentSync: the latentsync package is not importable; add a LatentSync 1.5/1.6 source "
                "tree to PYTHONPATH (see docs/production.md, 'Installing the GPU providers')"
            )
        return Path(next(iter(spec.submodule_search_locations))).parent

    def check(self) -> None:
        root = Path(require_dir(self.root, "LatentSync", "DUBBING_LATENTSYNC_DIR"))
        self._config_path()
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
        if not _runtime().cuda_available():
            raise ConfigurationError("LatentSync needs a CUDA GPU (none is visible)")

    def _load(self) -> Any:
        """Upstream's pipeline, loaded once (after ``check``)."""
        if self._loaded is None:
            self.check()
            config = self._config_path()
            assert config is not None
            self._loaded = _runtime().load(Path(self.root), self._source_tree(), config, self.device)
        return self._loaded.pipeline

    def sync(self, window_video: Path, window_audio: Path, out_video: Path, work_dir: Path) -> None:
        for path in (window_video, window_audio):
            if not path.is_file():
                raise BadInputError(f"LatentSync input {path.name!r} not found")
        self._load()
        assert self._loaded is not None
        # absolute before the chdir below: a relative path would name a file in work_dir
        window_video, out_video = Path(window_video).resolve(), Path(out_video).resolve()
        work_dir = Path(work_dir).resolve()
        self._link_inputs(work_dir, window_video, Path(window_audio).resolve())
        partial = work_dir / "out.partial.mp4"
        with _inside(work_dir):
            self._loaded.run(partial.name, steps=self.steps, guidance=self.guidance, seed=self.seed)
        if not partial.is_file() or partial.stat().st_size == 0:
            raise ProviderError("LatentSync wrote no output video")
        os.replace(_window_frames_only(partial, window_video, work_dir), out_video)

    def _link_inputs(self, work_dir: Path, window_video: Path, window_audio: Path) -> None:
        """``work_dir`` as upstream sees it: ``checkpoints`` and the window under fixed names.

        Upstream pastes paths unquoted into ``shell=True`` ffmpeg commands and ignores their exit
        codes: a space in any path made them fail silently. Inside ``work_dir`` it sees only
        these fixed, shell-safe relative names."""
        work_dir.mkdir(parents=True, exist_ok=True)
        link = work_dir / "checkpoints"
        if not link.exists():
            link.symlink_to(Path(self.root).resolve(), target_is_directory=True)
        for name, target in (("window.mp4", window_video), ("window.wav", window_audio)):
            (work_dir / name).unlink(missing_ok=True)
            (work_dir / name).symlink_to(target)


def _window_frames_only(partial: Path, window_video: Path, work_dir: Path) -> Path:
    """LatentSync's output cut to the window's own frames.

    Upstream makes one frame per whisper chunk, and its chunk loop stops one chunk late
    (``floor(F/2) + 2`` chunks for F 50 Hz features): a window of N frames came back with
    N + 2, the last two looped back from the end. Keep the window's own N frames."""
    want, got = _video_frames(window_video), _video_frames(partial)
    if got < want:
        raise ProviderError(f"LatentSync returned {got} frames for a window of {want}")
    if got == want:
        return partial
    trimmed = work_dir / "out.trimmed.mp4"
    run_ffmpeg(
        ["-i", str(partial), "-map", "0", "-frames:v", str(want), "-c:v", "libx264", "-crf", "18",
         "-pix_fmt", "yuv420p", "-c:a", "copy", str(trimmed)],
        what="trimming LatentSync's output",
    )  # fmt: skip
    return trimmed


def _video_frames(path: Path) -> int:
    """Frames of ``path``'s first video stream, counted by decoding (container counts can lie)."""
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=False, env=tool_env()
    )  # fmt: skip
    try:
        return int(proc.stdout.strip().split(",")[0])
    except ValueError as exc:
        raise ProviderError(f"cannot count the frames of {path.name}: {proc.stderr.strip()[-200:]}") from exc
