"""The audio watermark of the dubbed speech: Resemble AI's Perth implicit watermarker.

Perth (``resemble-perth``, MIT) is a small neural network that hides a mark in the magnitude
spectrogram of speech below 2 kHz, and a decoder that finds it again, also after lossy coding
(measured here: 1.0 after an AAC 192 kb/s round trip, 0.0 on speech never marked). Its weights
(37 MB) ship inside the wheel. It is the mark Chatterbox puts on everything it speaks.

**How it is loaded, and why this way.** The wheel declares no dependencies, but its package
``__init__`` imports ``pkg_resources`` (removed from setuptools 82), its audio processor imports
``torchaudio.transforms`` (torchaudio has no build for this torch, and its CUDA build's native
libraries do not load here), and its watermarker class imports librosa and writes a random
``id.txt`` into its own install folder when first used. None of that is needed to run the
network. So this module loads Perth's own model files (the encoder, the decoder, the
configuration, the helpers) under a private package name, ``dubbing_pipeline._perth``, whose
audio processor is :class:`StftProcessor` below: the same short-time Fourier transform pair
torchaudio's ``Spectrogram``/``InverseSpectrogram`` compute (``torch.stft``/``torch.istft`` with
a Hann window, centred, reflect padding, not normalised), and it reads the checkpoint and
``hparams.yaml`` directly. The real ``perth`` package is never imported, so nothing it imports
is needed and nothing clashes with a process that imports it too (Chatterbox does).
Resampling to Perth's 32 kHz and back is soxr's (deterministic), not librosa's.

**Cost.** Embedding 12 s of speech takes 0.14 s on 2 CPU cores (AMD EPYC, AVX2), reading it back
0.12 s: about 1 % of real time, so ``DUBBING_WATERMARK`` is ``on`` by default everywhere. Each
line is marked once, as its own cached step, so an edit marks one line again.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dubbing_pipeline.errors import ConfigurationError, ModelMissingError

PACKAGE = "dubbing_pipeline._perth"
MODEL = "implicit"  # the run Perth ships pretrained
MARK_RATE = 32000  # Perth's sample rate (hparams.yaml)
DETECTED = 0.5  # a mean decoded bit at or above this is "marked"


def watermark_enabled(mode: str) -> bool:
    """Whether the dub is marked (``DUBBING_WATERMARK``: ``on`` or ``off``)."""
    if mode not in ("on", "off"):
        raise ConfigurationError(f"DUBBING_WATERMARK must be on or off, got {mode!r}")
    return mode == "on"


def perth_dir() -> Path:
    """The installed ``perth`` package's folder, found without importing it."""
    spec = importlib.util.find_spec("perth")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            "the audio watermark needs the resemble-perth package (pip install resemble-perth==1.0.1), "
            "or DUBBING_WATERMARK=off"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _model_files() -> tuple[Path, Path]:
    run = perth_dir() / "perth_net" / "pretrained" / MODEL
    checkpoints = sorted(run.glob("*.pth.tar"), key=lambda p: int(p.name.split(".")[0].rsplit("_", 1)[-1]))
    if not (run / "hparams.yaml").is_file() or not checkpoints:
        raise ModelMissingError("resemble-perth is installed without its pretrained 'implicit' model")
    return run / "hparams.yaml", checkpoints[-1]


class StftProcessor:
    """What Perth's network needs of an audio processor: signal ⇄ (magnitude, phase)."""

    def __init__(self, hp: Any) -> None:
        import torch

        self.hp = hp
        self.window = torch.hann_window(int(hp.window_size))
        self._utils = importlib.import_module(f"{PACKAGE}.utils")

    def signal_to_magphase(self, signal: Any) -> Any:
        import torch

        spec = torch.stft(
            signal.float(), n_fft=int(self.hp.n_fft), hop_length=int(self.hp.hop_size),
            win_length=int(self.hp.window_size), window=self.window.to(signal.device), center=True,
            pad_mode="reflect",
            normalized=False, onesided=True, return_complex=True,
        )  # fmt: skip
        return self._utils.cx_to_magphase(self.hp, spec)

    def magphase_to_signal(self, mag: Any, phase: Any) -> Any:
        import torch

        spec = self._utils.magphase_to_cx(self.hp, mag, phase)
        return torch.istft(
            spec, n_fft=int(self.hp.n_fft), hop_length=int(self.hp.hop_size),
            win_length=int(self.hp.window_size), window=self.window.to(spec.device), center=True,
            normalized=False, onesided=True,
        )  # fmt: skip


def _perth_modules() -> Any:
    """Perth's model module, loaded under ``dubbing_pipeline._perth`` (see the module docstring)."""
    if f"{PACKAGE}.model.perth_net" in sys.modules:
        return sys.modules[f"{PACKAGE}.model.perth_net"]
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(perth_dir() / "perth_net" / "perth_net_implicit")]
    sys.modules[PACKAGE] = package
    processor = types.ModuleType(f"{PACKAGE}.audio_processor")
    processor.AudioProcessor = StftProcessor  # type: ignore[attr-defined]
    sys.modules[processor.__name__] = processor
    return importlib.import_module(f"{PACKAGE}.model.perth_net")


@dataclass(frozen=True)
class Detection:
    """What the decoder read from an excerpt: its score, clipped to 0..1 (one number for the whole
    excerpt; Perth's own watermarker rounds it to 0 or 1), and the excerpt's length. The score is
    reliable over many seconds of speech: on single short lines of unmarked speech it reaches 0.8
    (measured on the demo), on 20 s of them it stays near 0.2."""

    confidence: float
    seconds: float

    @property
    def detected(self) -> bool:
        return self.confidence >= DETECTED


class PerthWatermarker:
    """Embeds Perth's mark in speech and reads it back (float32 mono at any sample rate)."""

    name = "perth-implicit"

    def __init__(self, device: str = "cpu", cpu_threads: int = 2) -> None:
        self.device = device
        self.cpu_threads = max(1, int(cpu_threads))
        self._net: Any = None
        self._lock = threading.Lock()
        self._files = _model_files()  # a missing package or model fails here, at start

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "package": "resemble-perth", "model": self._files[1].name}

    def _load(self) -> Any:
        with self._lock:
            if self._net is None:
                import torch
                import yaml

                from dubbing_pipeline.errors import require_torch_device

                dev = require_torch_device(torch, self.device)
                module = _perth_modules()
                config = importlib.import_module(f"{PACKAGE}.config")
                hp = config.PerthConfig(**yaml.safe_load(self._files[0].read_text(encoding="utf-8")))
                net = module.PerthNet(hp)
                state = torch.load(str(self._files[1]), map_location="cpu", weights_only=True)
                # the STFT's window buffers belong to torchaudio's modules, which StftProcessor replaces
                net.load_state_dict({k: v for k, v in state["model"].items() if not k.startswith("ap.")})
                if dev.type == "cpu":
                    torch.set_num_threads(self.cpu_threads)
                self._net = net.to(dev).eval()
            return self._net

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``audio`` with the mark, same length and rate."""
        import torch

        net = self._load()
        x = _resample(audio, sample_rate, MARK_RATE)
        with torch.inference_mode():
            signal = torch.from_numpy(x).to(net.device)
            mag, phase = net.ap.signal_to_magphase(signal)
            marked_mag, _mask = net.encoder(mag[None])
            marked = net.ap.magphase_to_signal(marked_mag[0], phase).cpu().numpy()
        out = _resample(np.asarray(marked, dtype=np.float32), MARK_RATE, sample_rate)
        return _fit_length(out, len(audio))

    def detect(self, audio: np.ndarray, sample_rate: int) -> Detection:
        """The decoder's score over ``audio`` (speech only: silence carries no mark)."""
        import torch

        net = self._load()
        x = _resample(audio, sample_rate, MARK_RATE)
        if len(x) < int(net.hp.n_fft):
            return Detection(0.0, len(audio) / sample_rate)
        with torch.inference_mode():
            mag, _phase = net.ap.signal_to_magphase(torch.from_numpy(x).to(net.device))
            score = float(net.decoder(mag[None])[0].clip(0.0, 1.0).item())
        return Detection(round(score, 4), round(len(audio) / sample_rate, 3))


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    x = np.array(np.asarray(audio, dtype=np.float32).reshape(-1))  # a writable copy (torch shares it)
    if rate == target:
        return x
    import soxr

    return np.asarray(soxr.resample(x, rate, target, quality="HQ"), dtype=np.float32)


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if len(audio) >= n:
        return np.ascontiguousarray(audio[:n])
    return np.concatenate([audio, np.zeros(n - len(audio), dtype=np.float32)])


_WATERMARKERS: dict[tuple[str, int], PerthWatermarker] = {}
_WATERMARKERS_LOCK = threading.Lock()


def get_watermarker(device: str, cpu_threads: int) -> PerthWatermarker:
    """One loaded watermarker per device and thread count, per process."""
    with _WATERMARKERS_LOCK:
        key = (device, int(cpu_threads))
        if key not in _WATERMARKERS:
            _WATERMARKERS[key] = PerthWatermarker(device, cpu_threads)
        return _WATERMARKERS[key]


def speech_spans(segments: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Where the dub's synthetic speech sounds: each dubbed line's ``[dub_start, dub_end)``
    (failed lines are silent, a skipped line keeps the original speech)."""
    spans = []
    for seg in segments:
        a, b = seg.get("dub_start"), seg.get("dub_end")
        if seg.get("status") not in ("failed", "original") and a is not None and b is not None and b > a:
            spans.append((float(a), float(b)))
    return sorted(spans)


def cut_spans(audio: np.ndarray, sample_rate: int, spans: list[tuple[float, float]]) -> np.ndarray:
    """The samples of ``audio`` inside ``spans``, joined."""
    parts = [audio[int(a * sample_rate) : int(b * sample_rate)] for a, b in spans]
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)


def read_spans(
    marker: PerthWatermarker, audio: np.ndarray, sample_rate: int, spans: list[tuple[float, float]]
) -> tuple[Detection, int]:
    """The mark in ``audio`` (mono) over all ``spans`` at once, and how many spans read alone
    carry it (a short span alone is a weak reading either way)."""
    together = marker.detect(cut_spans(audio, sample_rate, spans), sample_rate)
    alone = sum(marker.detect(cut_spans(audio, sample_rate, [span]), sample_rate).detected for span in spans)
    return together, alone


def read_back(
    marker: PerthWatermarker, dub_track: Path, source_track: Path, spans: list[tuple[float, float]]
) -> dict[str, Any]:
    """The ``watermark`` check: the mark read from the dub's final (decoded AAC) track over the
    dubbed lines, and from the source recording at the same times (``read_spans``), the control:
    passed when the dub carries it and the source does not. A source that already carries the
    mark (a dub of an AI dub) leaves no unmarked control: then the check passes on the dub's
    reading alone and says so (``source_marked``)."""
    import soundfile as sf

    found: dict[str, tuple[Detection, int]] = {}
    for name, path in (("dub", dub_track), ("source", source_track)):
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        found[name] = read_spans(marker, audio.mean(axis=1), int(rate), spans)
    (dub, dub_lines), (source, source_lines) = found["dub"], found["source"]
    return {
        "passed": dub.detected,
        "enabled": True,
        "source_marked": source.detected,
        "watermarker": marker.name,
        "dub_confidence": dub.confidence,
        "source_confidence": source.confidence,
        "lines": len(spans),
        "dub_lines_detected": dub_lines,
        "source_lines_detected": source_lines,
        "seconds_read": dub.seconds,
        "threshold": DETECTED,
    }


def read_file(marker: PerthWatermarker, path: Path) -> dict[str, Any] | None:
    """The mark in a finished dub, read where its first subtitle track (the dub's lines, at their
    dubbed times) says speech sounds; ``None`` for a file without a subtitle track."""
    import subprocess

    import soundfile as sf

    from dubbing_pipeline.cache import scratch
    from dubbing_pipeline.dubbed_video.subtitles import parse_srt
    from dubbing_pipeline.media import extract_audio

    subs = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:s:0", "-f", "srt", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    spans = (
        sorted((c.start, c.end) for c in parse_srt(subs.stdout) if c.end > c.start)
        if subs.returncode == 0
        else []
    )
    if not spans:
        return None
    with scratch("watermark") as tmp:
        extract_audio(path, tmp / "dub.wav", sample_rate=MARK_RATE, channels=1)
        audio, _ = sf.read(str(tmp / "dub.wav"), dtype="float32")
    found, alone = read_spans(marker, np.asarray(audio, dtype=np.float32).reshape(-1), MARK_RATE, spans)
    return {
        "detected": found.detected, "confidence": found.confidence, "seconds": found.seconds,
        "cues": len(spans), "cues_detected": alone, "watermarker": marker.name,
    }  # fmt: skip
