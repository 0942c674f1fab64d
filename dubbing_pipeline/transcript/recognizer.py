"""The speech recognizer interface: word-timestamped transcripts and the spoken language of
16 kHz mono audio. The engines (``transcript.whisper``) implement it; ``transcript.providers``
builds the configured one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.speech_segments.sentences import Word

LANGUAGE_PROBE_SECONDS = 30.0
"""The language is judged on at most this much speech."""


@dataclass(frozen=True)
class LanguageGuess:
    language: str
    probability: float


class ASR(ABC):
    """A speech recognizer over 16 kHz mono float32 audio."""

    name: str = ""
    model: str = ""

    @abstractmethod
    def describe(self) -> JsonObject:
        """Everything the output depends on (provider, model id/hash, decoding options, versions)."""

    @abstractmethod
    def detect_language(self, audio16k: npt.NDArray[np.float32]) -> LanguageGuess:
        """The spoken language of ``audio16k`` (ISO 639-1 code) and its probability."""

    @abstractmethod
    def transcribe(
        self,
        audio16k: npt.NDArray[np.float32],
        *,
        language: str | None,
        offset: float = 0.0,
        regions: Sequence[tuple[float, float]] | None = None,
    ) -> list[Word]:
        """Words with timestamps in absolute seconds (``offset`` + time in ``audio16k``).

        ``regions`` are absolute speech regions; decoding is restricted to them.
        ``None`` means: find them with the voice activity detector.
        """
