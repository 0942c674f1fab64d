"""Speech recognition providers: the factory of the recognizer ``DUBBING_ASR`` names.

The one provider is faster-whisper (CTranslate2), in the engine module ``transcript.whisper``,
which imports faster-whisper at its top; the factory imports it when it builds a recognizer, so
importing this module loads neither faster-whisper nor CTranslate2. The interface the engines
implement is ``transcript.recognizer.ASR``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.transcript.recognizer import ASR


def build_faster_whisper(settings: Settings) -> ASR:
    """The faster-whisper engine."""
    from dubbing_pipeline.transcript.whisper import FasterWhisperASR  # lazy: faster_whisper loads ctranslate2

    return FasterWhisperASR(settings)


RECOGNIZERS: dict[str, Callable[[Settings], ASR]] = {
    "faster-whisper": build_faster_whisper,
    "faster_whisper": build_faster_whisper,
    "whisper": build_faster_whisper,
}

_ASR_CACHE: dict[tuple[object, ...], ASR] = {}
_ASR_LOCK = threading.Lock()


def make_asr(settings: Settings) -> ASR:
    """The configured recognizer; one instance (one loaded model) per process and configuration."""
    key = (
        settings.asr,
        settings.whisper_model_dir,
        settings.whisper_compute_type,
        settings.whisper_beam_size,
        settings.device,
        settings.cpu_threads,
        settings.model_cache,
    )
    with _ASR_LOCK:
        cached = _ASR_CACHE.get(key)
        if cached is not None:
            return cached
        if settings.asr not in RECOGNIZERS:
            raise ConfigurationError(
                f"unknown ASR provider {settings.asr!r} (DUBBING_ASR): use faster-whisper"
            )
        asr = RECOGNIZERS[settings.asr](settings)
        _ASR_CACHE[key] = asr
        return asr


def clear_asr_cache() -> None:
    """Forget the per-process recognizers (tests)."""
    with _ASR_LOCK:
        _ASR_CACHE.clear()
