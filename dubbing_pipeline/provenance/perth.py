"""Perth's network, loaded without importing the ``perth`` package (see ``watermark``): the engine behind
:class:`~dubbing_pipeline.provenance.watermark.PerthWatermarker`, which imports this module (and
so torch) only when a line is first marked or read.

Perth's own model files (the encoder, the decoder, the configuration, the helpers) are loaded under
a private package name, ``dubbing_pipeline._perth``, whose audio processor is
:class:`StftProcessor`: the same short-time Fourier transform pair torchaudio's
``Spectrogram``/``InverseSpectrogram`` compute (``torch.stft``/``torch.istft`` with a Hann window,
centred, reflect padding, not normalised). The checkpoint and ``hparams.yaml`` are read directly.
Resampling to Perth's 32 kHz and back is soxr's (deterministic), not librosa's.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr
import torch
import yaml

from dubbing_pipeline.errors import require_torch_device
from dubbing_pipeline.provenance.perth_model import MARK_RATE, PACKAGE, PerthFiles

Audio = npt.NDArray[np.float32]


class StftProcessor:
    """What Perth's network needs of an audio processor: signal ⇄ (magnitude, phase)."""

    def __init__(self, hp: Any) -> None:
        self.hp = hp
        self.window = torch.hann_window(int(hp.window_size))
        self._utils = importlib.import_module(f"{PACKAGE}.utils")

    def signal_to_magphase(self, signal: torch.Tensor) -> Any:
        spec = torch.stft(
            signal.float(), n_fft=int(self.hp.n_fft), hop_length=int(self.hp.hop_size),
            win_length=int(self.hp.window_size), window=self.window.to(signal.device), center=True,
            pad_mode="reflect",
            normalized=False, onesided=True, return_complex=True,
        )  # fmt: skip
        return self._utils.cx_to_magphase(self.hp, spec)

    def magphase_to_signal(self, mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        spec = self._utils.magphase_to_cx(self.hp, mag, phase)
        return torch.istft(
            spec, n_fft=int(self.hp.n_fft), hop_length=int(self.hp.hop_size),
            win_length=int(self.hp.window_size), window=self.window.to(spec.device), center=True,
            normalized=False, onesided=True,
        )  # fmt: skip


def _perth_modules(folder: Path) -> Any:
    """Perth's model module, loaded from its installed ``folder`` under ``dubbing_pipeline._perth``
    (see the module docstring)."""
    if f"{PACKAGE}.model.perth_net" in sys.modules:
        return sys.modules[f"{PACKAGE}.model.perth_net"]
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(folder / "perth_net" / "perth_net_implicit")]
    sys.modules[PACKAGE] = package
    processor = types.ModuleType(f"{PACKAGE}.audio_processor")
    processor.AudioProcessor = StftProcessor  # type: ignore[attr-defined]
    sys.modules[processor.__name__] = processor
    return importlib.import_module(f"{PACKAGE}.model.perth_net")


def load_net(files: PerthFiles, device: str, cpu_threads: int) -> Any:
    """Perth's ``PerthNet`` with its pretrained weights, on ``device``, in eval mode."""
    dev = require_torch_device(torch, device)
    module = _perth_modules(files.package)
    config = importlib.import_module(f"{PACKAGE}.config")
    hp = config.PerthConfig(**yaml.safe_load(files.hparams.read_text(encoding="utf-8")))
    net = module.PerthNet(hp)
    state = torch.load(str(files.checkpoint), map_location="cpu", weights_only=True)
    # the STFT's window buffers belong to torchaudio's modules, which StftProcessor replaces
    net.load_state_dict({k: v for k, v in state["model"].items() if not k.startswith("ap.")})
    if dev.type == "cpu":
        torch.set_num_threads(cpu_threads)
    return net.to(dev).eval()


class PerthEngine:
    """The loaded network: marks speech and scores how marked it is (float32 mono, any rate)."""

    def __init__(self, files: PerthFiles, device: str, cpu_threads: int) -> None:
        self.net = load_net(files, device, cpu_threads)

    def embed(self, audio: npt.ArrayLike, sample_rate: int) -> Audio:
        """``audio`` with the mark, same length and rate."""
        net = self.net
        x = _resample(audio, sample_rate, MARK_RATE)
        with torch.inference_mode():
            signal = torch.from_numpy(x).to(net.device)
            mag, phase = net.ap.signal_to_magphase(signal)
            marked_mag, _mask = net.encoder(mag[None])
            marked = net.ap.magphase_to_signal(marked_mag[0], phase).cpu().numpy()
        out = _resample(np.asarray(marked, dtype=np.float32), MARK_RATE, sample_rate)
        return _fit_length(out, len(np.asarray(audio)))

    def score(self, audio: npt.ArrayLike, sample_rate: int) -> float | None:
        """The decoder's score over ``audio`` (0..1); ``None`` for less than one FFT frame of it."""
        net = self.net
        x = _resample(audio, sample_rate, MARK_RATE)
        if len(x) < int(net.hp.n_fft):
            return None
        with torch.inference_mode():
            mag, _phase = net.ap.signal_to_magphase(torch.from_numpy(x).to(net.device))
            return float(net.decoder(mag[None])[0].clip(0.0, 1.0).item())


def _resample(audio: npt.ArrayLike, rate: int, target: int) -> Audio:
    x = np.array(np.asarray(audio, dtype=np.float32).reshape(-1))  # a writable copy (torch shares it)
    if rate == target:
        return x
    return np.asarray(soxr.resample(x, rate, target, quality="HQ"), dtype=np.float32)


def _fit_length(audio: Audio, n: int) -> Audio:
    if len(audio) >= n:
        return np.ascontiguousarray(audio[:n])
    return np.concatenate([audio, np.zeros(n - len(audio), dtype=np.float32)])
