"""The speakers stage's provider contracts: a diarizer of one chunk, and a speaker embedder.

Light on purpose (numpy only): the stage's asset names these types, while the engines that
implement them (``diarize``, ``embedders``, ``pyannote_engine``) import their models' libraries
and are only imported when a diarization runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.records import JsonObject

SAMPLE_RATE = 16000
DIARIZER_CODE = recipe("speakers").code[1]
"""The diarizers' code version, part of every ``describe()`` (so of the chunk steps' keys)."""


@dataclass
class ChunkDiarization:
    """Local speakers of one chunk.

    ``labels[i]`` is the local speaker (``0..k-1``, numbered by first appearance) of the
    i-th input span; ``embeddings`` is the ``(k, d)`` matrix of unit speaker embeddings;
    ``span_embeddings`` (``(n, d)``, optional) holds one unit embedding per span.
    """

    labels: list[int]
    embeddings: np.ndarray
    span_embeddings: np.ndarray | None = field(default=None)

    @property
    def num_speakers(self) -> int:
        return int(self.embeddings.shape[0])


class Diarizer(ABC):
    """Which local speaker says each transcript span of one chunk (see ``diarize``)."""

    name: str = ""

    @abstractmethod
    def describe(self) -> JsonObject:
        """Provider, models and parameters, for cache keys."""

    @abstractmethod
    def diarize(
        self, audio16k: np.ndarray, spans: Sequence[tuple[float, float]], offset: float
    ) -> ChunkDiarization:
        """Speakers of ``spans`` (absolute seconds) in ``audio16k``, which starts at ``offset``."""


class SpeakerEmbedder(ABC):
    """Maps 16 kHz mono float32 audio to a unit-norm 1-D speaker vector of length ``dim``."""

    name: str = ""
    dim: int = 0

    @abstractmethod
    def describe(self) -> JsonObject:
        """Provider, model hash and feature settings, for cache keys."""

    @abstractmethod
    def embed(self, audio16k: np.ndarray) -> np.ndarray:
        """A unit-norm ``(dim,)`` float32 embedding of the whole of ``audio16k``."""


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row of ``x`` scaled to unit length, in ``x``'s dtype; (near-)zero rows become zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    out: np.ndarray = np.divide(x, norms, out=np.zeros_like(x), where=norms > 1e-12)
    return out
