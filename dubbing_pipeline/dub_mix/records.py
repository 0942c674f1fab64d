"""The ``dub_mix`` stage's record: the mix (the ``mix`` step's record is the stage's output)."""

from __future__ import annotations

from dubbing_pipeline.records import StageRecord


class DubMixRecord(StageRecord):
    """The background stem with every dubbed line placed at its time, and its levels (BS.1770)."""

    sample_rate: int
    frames: int  # samples per channel
    mix_uri: str  # the mix, a WAV
    target_lufs: float  # the source mix's integrated loudness: what the dub is matched to
    loudness_lufs: float  # the dub mix's integrated loudness
    peak_dbfs: float  # the dub mix's sample peak
    line_gains_db: dict[str, float]  # by line id: the gain that matched it to the source speech
