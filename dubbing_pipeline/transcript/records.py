"""What ``transcript`` hands on, and the records of its steps: the language, each chunk's words."""

from __future__ import annotations

from dubbing_pipeline.records import JsonObject, Record, StageRecord
from dubbing_pipeline.speech_segments.chunks import Chunk
from dubbing_pipeline.speech_segments.sentences import Segment, Word


class LanguageRecord(StageRecord):
    """The cached ``language`` step: the spoken language, from the first ≤30 s of speech."""

    language: str  # ISO 639-1
    probability: float


class AsrChunkRecord(StageRecord):
    """The cached ``asr_chunk`` step: one chunk's words, in absolute seconds."""

    index: int  # the chunk's, in the speech_segments plan
    language: str
    language_probability: float
    words: list[Word]


class ChunkJob(Record):
    """One chunk to transcribe, as the planning op hands it to a fan-out step."""

    chunk: Chunk
    regions: list[tuple[float, float]]  # the speech inside the chunk's span, absolute seconds
    language: str
    language_probability: float
    asr_audio_uri: str
    upstream: str  # the speech_segments record's cache key


class ChunkTranscript(Record):
    """A fan-out step's result as the assembling op collects it."""

    step: AsrChunkRecord
    cached: bool
    seconds: float  # spent on it in this run


class TranscriptChunk(Record):
    """Which cached ``asr_chunk`` step a chunk of the transcript came from."""

    index: int
    cache_key: str
    cached: bool


class TranscriptRecord(StageRecord):
    """The ``transcript`` stage's output: the chunks' words joined at the chunk cores, in sentences."""

    language: str | None  # None only without a chunk that holds speech
    language_probability: float
    segments: list[Segment]
    words: int  # how many words the segments hold
    provider: JsonObject  # the recognizer's ``describe()``
    chunks: list[TranscriptChunk]
