"""What ``audio_stems`` hands on: the full-band mix split into a vocals and a background stem."""

from __future__ import annotations

from dubbing_pipeline.records import JsonObject, StageRecord


class AudioStemsRecord(StageRecord):
    """The ``audio_stems`` stage's output (its cached ``stems`` step): two sample-aligned stems."""

    sample_rate: int
    frames: int  # of each stem, exactly the mix's
    channels: int
    mix_uri: str  # the source's full-band audio the stems were separated from
    vocals_uri: str
    background_uri: str
    provider: JsonObject  # the separator's ``describe()``: name, model, versions, settings
