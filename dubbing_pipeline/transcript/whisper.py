"""The faster-whisper engine: Whisper on CTranslate2 over a local model directory (the factory in
``transcript.providers`` imports this module lazily).

Decoding is deterministic: temperature 0 without fallback, no conditioning on the
previous window's text, fixed beam size and thread count.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel

from dubbing_pipeline.common.numerics import kernel_settings
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, ProviderError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speech_segments.sentences import Word
from dubbing_pipeline.speech_segments.vad import SAMPLE_RATE, merge_regions, speech_regions
from dubbing_pipeline.transcript.model_dir import whisper_model
from dubbing_pipeline.transcript.recognizer import ASR, LANGUAGE_PROBE_SECONDS, LanguageGuess

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]

MERGE_GAP = 1.0
"""Speech regions closer than this (seconds) are decoded as one clip: every clip costs at
least one 30 s encoder pass, and Whisper needs a little context around short words."""
MIN_CLIP = 0.1
COMPRESSION_RATIO_LIMIT = 2.4
"""Segments whose text compresses better than this are repetition loops ("I'm sorry, I'm
sorry, ...") and are dropped; with a single temperature there is no fallback to retry."""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _local_clips(
    regions: Sequence[tuple[float, float]], offset: float, duration: float
) -> list[tuple[float, float]]:
    """Absolute regions → merged clips in seconds of the chunk audio."""
    clipped = [
        (max(0.0, float(s) - offset), min(duration, float(e) - offset))
        for s, e in regions
        if float(e) - offset > 0 and float(s) - offset < duration
    ]
    merged = merge_regions([(s, e) for s, e in clipped if e > s], MERGE_GAP)
    return [(round(s, 3), round(e, 3)) for s, e in merged if e - s >= MIN_CLIP]


def _as_audio(audio16k: Samples) -> Samples:
    audio = np.ascontiguousarray(audio16k, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected 1-D 16 kHz mono audio, got shape {audio.shape}")
    return audio


def resolve_compute_type(device: str, requested: str) -> str:
    """The CTranslate2 compute type to load with, checked against what ``device`` supports.

    ``auto`` (or empty) means int8 on a CPU and float16 on a GPU. Anything the device cannot
    run — float16 asked of a CPU, a CUDA device on a machine without one — is a configuration
    error at start: CTranslate2 would only say so when the model is first loaded, inside a
    run, where it would look like a provider failure and be retried.
    """
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise ConfigurationError(f"faster-whisper: DUBBING_DEVICE={device!r} is not cpu or cuda[:N]")
    if kind == "cuda" and ctranslate2.get_cuda_device_count() <= int(index or 0):
        raise ConfigurationError(
            f"faster-whisper: DUBBING_DEVICE={device!r} but CTranslate2 sees "
            f"{ctranslate2.get_cuda_device_count()} CUDA device(s)"
        )
    compute = (requested or "auto").strip().lower()
    if compute == "auto":
        compute = "float16" if kind == "cuda" else "int8"
    supported = sorted(ctranslate2.get_supported_compute_types(kind))
    if compute not in supported and compute != "default":
        raise ConfigurationError(
            f"faster-whisper: DUBBING_WHISPER_COMPUTE_TYPE={compute} is not supported on {kind} "
            f"(this machine's {kind} supports {', '.join(supported)}; auto picks "
            f"{'float16' if kind == 'cuda' else 'int8'})"
        )
    return compute


def _check_features(whisper: Any, model: str) -> None:
    """The model's mel bins must match the feature extractor's (large-v3 has 128, older 80).

    faster-whisper sizes its feature extractor from ``preprocessor_config.json`` and falls back
    to 80 bins when the directory has none: a large-v3 directory converted without
    ``--copy_files preprocessor_config.json`` would then fail deep inside the first decode.
    """
    expected = int(whisper.model.n_mels)
    extracted = int(whisper.feature_extractor.mel_filters.shape[0])
    if expected != extracted:
        raise ModelMissingError(
            f"faster-whisper: {model!r} expects {expected} mel bins but its directory configures "
            f"{extracted} (copy the model's preprocessor_config.json, feature_size {expected}, "
            "into DUBBING_WHISPER_MODEL_DIR)"
        )


class FasterWhisperASR(ASR):
    """faster-whisper over a local CTranslate2 directory; the model loads on first use."""

    name = "faster-whisper"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_dir, self.model = whisper_model(settings)
        self.device = settings.device or "cpu"
        self.compute_type = resolve_compute_type(self.device, settings.whisper_compute_type)
        self.beam_size = int(settings.whisper_beam_size)
        self.cpu_threads = int(settings.cpu_threads)
        self.load_seconds: float | None = None
        self._whisper: Any = None
        self._lock = threading.Lock()

    # -- model

    def _model(self) -> Any:
        with self._lock:
            if self._whisper is None:
                self._whisper = self._load()
            return self._whisper

    def _load(self) -> Any:
        started = time.perf_counter()
        device, _, index = self.device.partition(":")
        try:
            whisper = WhisperModel(
                str(self.model_dir),
                device=device,
                device_index=int(index) if index else 0,
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
                num_workers=1,
                local_files_only=True,
            )
        except (RuntimeError, ValueError) as exc:
            # a directory that does not load will not load on a retry either
            raise ModelMissingError(f"faster-whisper could not load {self.model!r}: {exc}") from exc
        _check_features(whisper, self.model)
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s (%s, %s) in %.2fs", self.model, device, self.compute_type, self.load_seconds)
        return whisper

    def describe(self) -> JsonObject:
        return {
            "provider": self.name,
            "model": self.model,
            "compute_type": self.compute_type,
            "device": self.device.partition(":")[0],
            "beam_size": self.beam_size,
            "temperature": 0.0,
            "condition_on_previous_text": False,
            "merge_gap": MERGE_GAP,
            "compression_ratio_limit": COMPRESSION_RATIO_LIMIT,
            "kernels": kernel_settings() if self.device.startswith("cpu") else {},
            "versions": {
                "faster-whisper": _version("faster-whisper"),
                "ctranslate2": _version("ctranslate2"),
            },
        }

    # -- language

    def detect_language(self, audio16k: Samples) -> LanguageGuess:
        audio = _as_audio(audio16k)
        if audio.size == 0:
            raise ValueError("detect_language needs some audio")
        whisper = self._model()
        if not whisper.model.is_multilingual:
            return LanguageGuess("en", 1.0)
        limit = int(LANGUAGE_PROBE_SECONDS * SAMPLE_RATE)
        parts = [audio[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)] for s, e in speech_regions(audio)]
        speech = np.concatenate(parts)[:limit] if parts else audio[:limit]
        if speech.size < SAMPLE_RATE:  # under a second of speech: use what there is
            speech = audio[:limit]
        try:
            language, probability, _ = whisper.detect_language(audio=speech, language_detection_segments=1)
        except RuntimeError as exc:
            raise ProviderError(f"faster-whisper language detection failed: {exc}") from exc
        return LanguageGuess(str(language), round(float(probability), 4))

    # -- transcription

    def transcribe(
        self,
        audio16k: Samples,
        *,
        language: str | None,
        offset: float = 0.0,
        regions: Sequence[tuple[float, float]] | None = None,
    ) -> list[Word]:
        audio = _as_audio(audio16k)
        duration = audio.shape[0] / SAMPLE_RATE
        if duration == 0:
            return []
        if regions is None:
            regions = [(offset + s, offset + e) for s, e in speech_regions(audio)]
        clips = _local_clips(regions, offset, duration)
        if not clips:
            return []
        whisper = self._model()
        try:
            segments, _info = whisper.transcribe(
                audio,
                language=language or None,
                task="transcribe",
                beam_size=self.beam_size,
                best_of=1,
                temperature=0.0,
                condition_on_previous_text=False,
                word_timestamps=True,
                vad_filter=False,
                clip_timestamps=[t for clip in clips for t in clip],
            )
            words: list[Word] = []
            for segment in segments:
                if segment.compression_ratio > COMPRESSION_RATIO_LIMIT:
                    log.info("dropped a repetitive segment at %.2fs", offset + float(segment.start))
                    continue
                for w in segment.words or ():
                    words.append(self._word(w, offset, clips, words[-1] if words else None))
        except RuntimeError as exc:
            raise ProviderError(f"faster-whisper transcription failed: {exc}") from exc
        return [w for w in words if w.text.strip()]

    @staticmethod
    def _word(w: Any, offset: float, clips: Sequence[tuple[float, float]], previous: Word | None) -> Word:
        """A faster-whisper word in absolute seconds, kept inside its clip and after ``previous``."""
        start, end = float(w.start), float(w.end)
        middle = (start + end) / 2
        lo, hi = min(clips, key=lambda c: max(c[0] - middle, middle - c[1], 0.0))
        start = min(max(start, lo), hi)
        end = min(max(end, start), hi)
        start, end = round(offset + start, 3), round(offset + end, 3)
        if previous is not None and start < previous.start:  # keep starts monotonic
            start = previous.start
            end = max(end, start)
        probability = float(w.probability)
        if not math.isfinite(probability):
            probability = 0.0
        return Word(start=start, end=end, text=str(w.word), probability=round(probability, 4))
