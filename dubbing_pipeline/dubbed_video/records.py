"""The ``dubbed_video`` stage's records: the parents it reads (:class:`Parents`), its cached steps
(the mux, the quality measures, the review page's line clips) and the stage's output, the finished
dub with its report and review page."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Self

from dubbing_pipeline.audio_stems.records import AudioStemsRecord
from dubbing_pipeline.dub_mix.records import DubMixRecord
from dubbing_pipeline.dubbed_speech.records import DubbedSpeechRecord
from dubbing_pipeline.lip_sync.records import ComposeRecord, LipSyncRecord
from dubbing_pipeline.provenance.manifest import SignerInfo
from dubbing_pipeline.quality.records import Checks, Score, Thresholds
from dubbing_pipeline.records import Record, StageRecord
from dubbing_pipeline.source_video.records import SourceVideoRecord
from dubbing_pipeline.speakers.records import SpeakersRecord
from dubbing_pipeline.translation.records import TranslationRecord


@dataclass(frozen=True)
class Parents:
    """The upstream records the finished dub is made of."""

    source_video: SourceVideoRecord
    audio_stems: AudioStemsRecord
    speakers: SpeakersRecord
    translation: TranslationRecord
    dubbed_speech: DubbedSpeechRecord
    dub_mix: DubMixRecord
    lip_sync: LipSyncRecord

    def named(self) -> dict[str, Record]:
        """The records by asset name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def languages(self) -> tuple[str, str]:
        """The source and the target language."""
        return self.translation.source_language, self.translation.target_language


class MuxOutputs(Record):
    """Where the finished files are stored (URIs): the MP4, and the dub's and the source's subtitles."""

    video: str
    srt: str
    vtt: str
    source_srt: str  # the source's words at the source's times
    source_vtt: str


class LabelDrawn(ComposeRecord):
    """The visible label drawn on the video's first seconds, and what drawing it re-encoded."""

    text: str
    seconds: float


class MuxRecord(StageRecord):
    """The ``mux`` step's record: the finished MP4 and subtitle files, and what marks the dub."""

    outputs: MuxOutputs
    video_name: str  # the MP4's file name, as the review page links it
    reencoded: bool  # the source's video stream was re-encoded (not stream-copied)
    label: LabelDrawn | None  # None: no visible label
    c2pa: SignerInfo | None  # who signed the embedded C2PA manifest; None: not signed


class QualityRecord(StageRecord):
    """The ``quality`` step's record: the thresholds, every check's verdict and every line's scores."""

    thresholds: Thresholds
    checks: Checks
    segments: list[Score]


class ReviewClipsRecord(StageRecord):
    """The ``review_clips`` step's record: each spoken line's audio for the review page."""

    clips_uri: str  # a JSON object: line id → ``data:audio/ogg;base64,...``


class Pages(Record):
    """Where a dub's report.json and review.html are stored (URIs)."""

    report_uri: str
    review_uri: str


class DubbedVideoRecord(MuxRecord, Pages):
    """The ``dubbed_video`` stage's output: the mux step's record, the report and review page, and
    the blocking quality checks it failed (a blocked dub is never fresh)."""

    blocked: list[str]

    @classmethod
    def of(cls, muxed: MuxRecord, pages: Pages, blocked: list[str]) -> Self:
        """The output of a dub muxed as ``muxed`` (its key and artifacts), published as ``pages``."""
        fields = {name: getattr(muxed, name) for name in MuxRecord.model_fields if name != "schema_version"}
        return cls.model_validate({**fields, **pages.model_dump(), "blocked": blocked})
