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
network. So the engine (``provenance.perth``, which imports torch, loaded on first use) loads
Perth's own model files under a private package name with its own STFT audio processor, and
reads the checkpoint and ``hparams.yaml`` directly. The real ``perth`` package is never imported,
so nothing it imports is needed and nothing clashes with a process that imports it too
(Chatterbox does). This module is what the pipeline holds: the watermarker's description (a
cache-key part, known without loading anything), and the readings of the mark.

**Cost.** Embedding 12 s of speech takes 0.14 s on 2 CPU cores (AMD EPYC, AVX2), reading it back
0.12 s: about 1 % of real time, so ``DUBBING_WATERMARK`` is ``on`` by default everywhere. Each
line is marked once, as its own cached step, so an edit marks one line again.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from dubbing_pipeline.common.media import extract_audio
from dubbing_pipeline.common.tool_env import tool_env
from dubbing_pipeline.dubbed_video.subtitles import parse_srt
from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.orchestration.cache import scratch
from dubbing_pipeline.provenance.perth_model import MARK_RATE as MARK_RATE  # the rate marks are read at
from dubbing_pipeline.provenance.perth_model import model_files
from dubbing_pipeline.quality.records import WatermarkRead
from dubbing_pipeline.records import JsonObject

if TYPE_CHECKING:
    from dubbing_pipeline.provenance.perth import PerthEngine

DETECTED = 0.5  # a mean decoded bit at or above this is "marked"

Audio = npt.NDArray[np.float32]
Span = tuple[float, float]


def watermark_enabled(mode: str) -> bool:
    """Whether the dub is marked (``DUBBING_WATERMARK``: ``on`` or ``off``)."""
    if mode not in ("on", "off"):
        raise ConfigurationError(f"DUBBING_WATERMARK must be on or off, got {mode!r}")
    return mode == "on"


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
    """Embeds Perth's mark in speech and reads it back (float32 mono at any sample rate); its
    network (:class:`~dubbing_pipeline.provenance.perth.PerthEngine`) is loaded on first use."""

    name = "perth-implicit"

    def __init__(self, device: str = "cpu", cpu_threads: int = 2) -> None:
        self.device = device
        self.cpu_threads = max(1, int(cpu_threads))
        self._engine: PerthEngine | None = None
        self._lock = threading.Lock()
        self._files = model_files()  # a missing package or model fails here, at start

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "package": "resemble-perth", "model": self._files.checkpoint.name}

    def engine(self) -> PerthEngine:
        """The loaded network (once per watermarker)."""
        with self._lock:
            if self._engine is None:
                from dubbing_pipeline.provenance.perth import PerthEngine  # lazy: torch, on first use

                self._engine = PerthEngine(self._files, self.device, self.cpu_threads)
            return self._engine

    def embed(self, audio: npt.ArrayLike, sample_rate: int) -> Audio:
        """``audio`` with the mark, same length and rate."""
        return self.engine().embed(audio, sample_rate)

    def detect(self, audio: npt.ArrayLike, sample_rate: int) -> Detection:
        """The decoder's score over ``audio`` (speech only: silence carries no mark)."""
        seconds = len(np.asarray(audio)) / sample_rate
        score = self.engine().score(audio, sample_rate)
        if score is None:  # shorter than one analysis frame
            return Detection(0.0, seconds)
        return Detection(round(score, 4), round(seconds, 3))


_WATERMARKERS: dict[tuple[str, int], PerthWatermarker] = {}
_WATERMARKERS_LOCK = threading.Lock()


def get_watermarker(device: str, cpu_threads: int) -> PerthWatermarker:
    """One loaded watermarker per device and thread count, per process."""
    with _WATERMARKERS_LOCK:
        key = (device, int(cpu_threads))
        if key not in _WATERMARKERS:
            _WATERMARKERS[key] = PerthWatermarker(device, cpu_threads)
        return _WATERMARKERS[key]


def speech_spans(segments: Sequence[Mapping[str, Any]]) -> list[Span]:
    """Where the dub's synthetic speech sounds: each dubbed line's ``[dub_start, dub_end)``
    (failed lines are silent, a skipped line keeps the original speech); ``segments``: report.json's."""
    spans = []
    for seg in segments:
        a, b = seg.get("dub_start"), seg.get("dub_end")
        if seg.get("status") not in ("failed", "original") and a is not None and b is not None and b > a:
            spans.append((float(a), float(b)))
    return sorted(spans)


def cut_spans(audio: Audio, sample_rate: int, spans: Sequence[Span]) -> Audio:
    """The samples of ``audio`` inside ``spans``, joined."""
    parts = [audio[int(a * sample_rate) : int(b * sample_rate)] for a, b in spans]
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)


def read_spans(
    marker: PerthWatermarker, audio: Audio, sample_rate: int, spans: Sequence[Span]
) -> tuple[Detection, int]:
    """The mark in ``audio`` (mono) over all ``spans`` at once, and how many spans read alone
    carry it (a short span alone is a weak reading either way)."""
    together = marker.detect(cut_spans(audio, sample_rate, spans), sample_rate)
    alone = sum(marker.detect(cut_spans(audio, sample_rate, [span]), sample_rate).detected for span in spans)
    return together, alone


def read_back(
    marker: PerthWatermarker, dub_track: Path, source_track: Path, spans: list[Span]
) -> WatermarkRead:
    """The ``watermark`` check: the mark read from the dub's final (decoded AAC) track over the
    dubbed lines, and from the source recording at the same times (``read_spans``), the control:
    passed when the dub carries it and the source does not. A source that already carries the
    mark (a dub of an AI dub) leaves no unmarked control: then the check passes on the dub's
    reading alone and says so (``source_marked``)."""
    found: dict[str, tuple[Detection, int]] = {}
    for name, path in (("dub", dub_track), ("source", source_track)):
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        found[name] = read_spans(marker, audio.mean(axis=1), int(rate), spans)
    (dub, dub_lines), (source, source_lines) = found["dub"], found["source"]
    return WatermarkRead(
        passed=dub.detected,
        enabled=True,
        source_marked=source.detected,
        watermarker=marker.name,
        dub_confidence=dub.confidence,
        source_confidence=source.confidence,
        lines=len(spans),
        dub_lines_detected=dub_lines,
        source_lines_detected=source_lines,
        seconds_read=dub.seconds,
        threshold=DETECTED,
    )


def subtitle_spans(path: Path) -> list[Span]:
    """Where a finished dub's first subtitle track (the dub's lines, at their dubbed times) says
    speech sounds; none for a file without a subtitle track."""
    subs = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:s:0", "-f", "srt", "-"],
        capture_output=True, text=True, check=False, env=tool_env()
    )  # fmt: skip
    if subs.returncode != 0:
        return []
    return sorted((c.start, c.end) for c in parse_srt(subs.stdout) if c.end > c.start)


def read_file(marker: PerthWatermarker, path: Path) -> JsonObject | None:
    """The mark in a finished dub, read where its subtitles say the dub speaks (``subtitle_spans``);
    ``None`` for a file without a subtitle track."""
    spans = subtitle_spans(path)
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
