"""What ``speech_segments`` hands on: where the voice is, and how the recording is cut into chunks."""

from __future__ import annotations

from dubbing_pipeline.records import StageRecord
from dubbing_pipeline.speech_segments.chunks import Chunk


class SpeechSegmentsRecord(StageRecord):
    """The ``speech_segments`` stage's output (its cached ``segments`` step)."""

    duration: float  # seconds of the source
    asr_audio_uri: str  # the vocals stem as 16 kHz mono PCM, what recognition and diarization read
    asr_rate: int
    speech: list[tuple[float, float]]  # voice activity, ``(start, end)`` seconds, sorted and disjoint
    speech_seconds: float
    scene_changes: list[float]  # seconds; looked for only where the video needs several chunks
    chunks: list[Chunk]  # the plan: overlapping spans whose cores tile the recording
