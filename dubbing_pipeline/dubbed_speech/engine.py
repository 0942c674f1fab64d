"""The text-to-speech engine interface every engine implements (``engines/``; ``tts.make_tts`` picks one).

An engine speaks one line of text in one language, at a speaking rate, in a voice family
(``male``/``female``) or a cloned reference voice, and returns mono float32 audio at its own
``sample_rate`` with leading and trailing silence trimmed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from dubbing_pipeline.errors import ProviderError, UnsupportedError
from dubbing_pipeline.freshness import package_version
from dubbing_pipeline.records import JsonObject

MIN_RATE = 0.5
MAX_RATE = 2.0


# --------------------------------------------------------------------------- helpers


def normalize_text(text: str) -> str:
    """One line of plain text: whitespace collapsed, control characters dropped."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(cleaned.split())


def trim_silence(audio: np.ndarray, sr: int, *, threshold_db: float = -45.0, pad: float = 0.02) -> np.ndarray:
    """Drop leading/trailing silence: 10 ms frames whose RMS is ``threshold_db`` below the peak.

    ``pad`` seconds of the quiet part are kept on each side so no onset or release is cut.
    Silent input comes back empty.
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        return audio
    peak = float(np.max(np.abs(audio)))
    if peak <= 1e-6:
        return audio[:0]
    frame = max(1, int(sr * 0.01))
    n = audio.size // frame
    if n == 0:
        return audio
    frames = audio[: n * frame].reshape(n, frame).astype(np.float64)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    loud = np.flatnonzero(rms > peak * 10.0 ** (threshold_db / 20.0))
    if loud.size == 0:
        return audio[:0]
    keep = round(pad * sr)
    start = max(0, int(loud[0]) * frame - keep)
    end = min(audio.size, (int(loud[-1]) + 1) * frame + keep)
    return np.ascontiguousarray(audio[start:end])


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV bytes → (mono float32, sample rate); tolerates streamed headers.

    ``espeak-ng --stdout`` writes a RIFF header before it knows the length, so the sizes
    in it are placeholders: the ``data`` chunk is taken to run to the end of the bytes.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ProviderError("TTS output is not a WAV stream")
    pos = 12
    sr = 0
    channels = 1
    bits = 16
    while pos + 8 <= len(data):
        chunk = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        if chunk == b"fmt ":
            fmt = int.from_bytes(data[body : body + 2], "little")
            channels = int.from_bytes(data[body + 2 : body + 4], "little")
            sr = int.from_bytes(data[body + 4 : body + 8], "little")
            bits = int.from_bytes(data[body + 14 : body + 16], "little")
            if fmt != 1 or bits != 16 or channels < 1:
                raise ProviderError(f"TTS output: unsupported WAV format {fmt}/{bits} bit/{channels} ch")
        elif chunk == b"data":
            if sr <= 0:
                raise ProviderError("TTS output: WAV data before its format")
            raw = data[body:]
            raw = raw[: len(raw) - len(raw) % (2 * channels)]
            pcm = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
            if channels > 1:
                pcm = pcm.reshape(-1, channels).mean(axis=1)
            return np.ascontiguousarray(pcm, dtype=np.float32), sr
        pos = body + size + (size & 1)
    raise ProviderError("TTS output: WAV stream without data")


def version_of(dist: str) -> str:
    """An installed distribution's version, ``absent`` where it is not installed (for ``describe``)."""
    return package_version(dist) or "absent"


def language_code(language: str) -> str:
    """``es-MX`` / ``ES`` → ``es``."""
    return str(language).strip().lower().replace("_", "-").split("-")[0]


# --------------------------------------------------------------------------- interface


class TTSEngine(ABC):
    """A text-to-speech engine. Subclasses implement ``_synthesize``."""

    name: str = ""
    languages: frozenset[str] = frozenset()
    supports_rate: bool = False
    sample_rate: int = 22050
    voices: tuple[str, ...] = ("male", "female")
    """``male`` and ``female`` are always accepted (see ``speech.voice.voice_for_speaker``);
    engines may accept more, engine-specific names."""
    workers: int = 1
    """Lines this engine may speak at once from separate threads (each line's bytes are the
    same whichever worker speaks it)."""

    def predict_seconds(self, text: str, language: str, voice: str | None = None) -> float | None:
        """The predicted duration of ``text`` spoken at rate 1.0, without speaking it; ``None``
        where the engine has no duration model (the caller then speaks at 1.0 and measures)."""
        return None

    def supports(self, language: str) -> bool:
        return language_code(language) in self.languages

    def unsupported(self, language: str) -> str:
        """Why this engine does not speak ``language``, for the error that refuses it."""
        return f"it speaks {', '.join(sorted(self.languages)) or 'no language here'}"

    @abstractmethod
    def describe(self) -> JsonObject:
        """Everything the audio depends on (engine, model/voice ids and hashes, versions)."""

    def voice_key(self, voice: str | None) -> str:
        """What the audio depends on besides text and ``describe()``: the voice (for cache keys)."""
        return voice or "male"

    def synthesize(
        self, text: str, language: str, *, voice: str | None = None, rate: float = 1.0
    ) -> np.ndarray:
        """Speak ``text``: mono float32 at ``sample_rate``, silence trimmed, deterministic.

        ``rate`` > 1 speaks faster (only where ``supports_rate``; else it must be 1.0).
        Empty text gives an empty array.
        """
        lang = language_code(language)
        if lang not in self.languages:
            raise UnsupportedError(
                f"TTS engine {self.name!r} does not speak {language!r}: {self.unsupported(language)}"
            )
        rate = float(rate)
        if not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"rate must be within [{MIN_RATE}, {MAX_RATE}], got {rate}")
        if rate != 1.0 and not self.supports_rate:
            raise ValueError(f"TTS engine {self.name!r} has no speaking-rate control (rate must be 1.0)")
        line = normalize_text(text)
        if not line:
            return np.zeros(0, dtype=np.float32)
        audio = np.ascontiguousarray(self._synthesize(line, lang, voice, rate), dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(audio)):
            raise ProviderError(f"TTS engine {self.name!r} produced non-finite samples")
        return trim_silence(audio, self.sample_rate)

    @abstractmethod
    def _synthesize(self, text: str, language: str, voice: str | None, rate: float) -> np.ndarray:
        """Raw audio for normalized, non-empty ``text`` in a supported ``language``."""


# --------------------------------------------------------------------------- espeak-ng
