"""The ``speakers`` stage's records: each chunk's local speakers (a cached step), then the video's
global speakers and who speaks each transcript segment."""

from __future__ import annotations

from dubbing_pipeline.records import JsonObject, Record, StageRecord
from dubbing_pipeline.speech_segments.chunks import Chunk


class DiarizationJob(Record):
    """One chunk to diarize: the transcript spans whose midpoint lies in its core."""

    chunk: Chunk
    spans: list[tuple[str, float, float]]  # (segment id, start, end), absolute seconds
    asr_audio_uri: str  # the 16 kHz mono speech audio
    upstream: list[str]  # the cache keys of speech_segments and transcript


class ChunkLabels(Record):
    """A chunk's local speakers: ``labels[i]`` speaks ``segment_ids[i]``; one embedding per label."""

    index: int
    segment_ids: list[str]
    labels: list[int]  # local speakers 0..k-1, by first appearance
    embeddings: list[list[float]]  # (k, d) unit speaker embeddings, 6 decimals


class DiarizeChunkRecord(StageRecord, ChunkLabels):
    """The ``diarize_chunk`` step's record: one chunk's local speakers, cached."""


class DiarizedChunk(Record):
    """A chunk's step record as the assembling op receives it, with how it was obtained."""

    step: DiarizeChunkRecord
    cached: bool
    seconds: float  # spent on the step in this run


class SpeakerSegment(Record):
    """A transcript segment with its global speaker."""

    id: str
    start: float
    end: float
    speaker: str  # "S1" speaks first
    text: str


class Speaker(Record):
    """A global speaker: how many segments it speaks and for how long."""

    id: str
    segments: int
    seconds: float


class SpeakersRecord(StageRecord):
    """The ``speakers`` stage's output: the video's speakers and who speaks each segment."""

    speakers: list[Speaker]
    speaker_embeddings: list[list[float]]  # one unit embedding per speaker, in ``speakers`` order
    segments: list[SpeakerSegment]
    provider: JsonObject  # the diarizer's description (its cache-key part)
