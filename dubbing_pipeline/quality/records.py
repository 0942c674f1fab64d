"""The scorecard's typed values: the thresholds, each line's scores and each check's verdict.

They travel in the ``quality`` step's record and in report.json's ``quality`` section, whose
stored form they keep: a check's fields are the ones its verdict names (a watermark check that
did not run says only that), a silent line carries no measures.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dubbing_pipeline.dubbed_speech.isochrony import FAILURE_LIMIT, MAX_RATE, MAX_STRETCH
from dubbing_pipeline.records import Record
from dubbing_pipeline.settings import Settings


class Thresholds(Record):
    """The limits a dub is judged by (``DUBBING_QC_*``; rate and stretch are the fitting's caps)."""

    max_line_cer: float = 0.6
    max_mean_cer: float = 0.4
    max_start_offset: float = 0.05  # seconds a dubbed line may start away from its source line
    max_rate: float = MAX_RATE
    max_stretch: float = MAX_STRETCH
    min_background_corr: float = 0.99
    max_failed_share: float = FAILURE_LIMIT

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """The ``DUBBING_QC_*`` rows of the settings table."""
        return cls(
            max_line_cer=settings.qc_max_line_cer,
            max_mean_cer=settings.qc_max_mean_cer,
            max_start_offset=settings.qc_max_start_offset,
            min_background_corr=settings.qc_min_background_corr,
            max_failed_share=settings.qc_max_failed_share,
        )

    def to_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in type(self).model_fields}


class LineScore(Record):
    """A spoken line's measures and verdict."""

    id: str
    status: str
    start_offset: float  # seconds between the dubbed and the source line's start
    overflow: float  # seconds the line runs into the next one
    rate: float
    stretch: float
    cer: float | None  # the round-trip character error rate (None: not heard back)
    chars: int  # the target text's length, the line's weight in the mean CER
    ok: bool
    problems: list[str]


class SilentLine(Record):
    """A line left silent (no translation or no synthesis): nothing to measure."""

    id: str
    status: Literal["failed"]
    ok: bool
    problems: list[str]


Score = LineScore | SilentLine


class Check(Record):
    """A check's verdict; each kind adds the values it was judged on."""

    passed: bool


class IntelligibilityCheck(Check):
    """The character-weighted mean round-trip CER, and the lines over the per-line limit."""

    mean_cer: float
    unintelligible_lines: list[str]


class TimingCheck(Check):
    """The lines that start late, overlap the next one or are sped up too much."""

    lines_out_of_bounds: list[str]


class BackgroundCheck(Check):
    """The mix's correlation with the background stem where nobody speaks (None: not measurable)."""

    correlation: float | None


class FailedLinesCheck(Check):
    """The share of lines left silent."""

    share: float


class AvDurationCheck(Check):
    """The seconds audio or video differ from the source's duration."""

    difference: float


class WatermarkOff(Check):
    """The watermark check of a dub whose speech is not marked (``DUBBING_WATERMARK=off``)."""

    enabled: Literal[False]
    detail: str


class WatermarkRead(Check):
    """The mark read back from the dub's final track over its dubbed lines, and from the source
    recording at the same times (the control)."""

    enabled: Literal[True]
    source_marked: bool  # the source carries the mark too (a dub of an AI dub)
    watermarker: str
    dub_confidence: float
    source_confidence: float
    lines: int  # dubbed lines read
    dub_lines_detected: int  # of them, read alone
    source_lines_detected: int
    seconds_read: float
    threshold: float  # the decoder's score from which a reading is "marked"


class ToxicityCheck(Check):
    """The lines the translation brought offensive terms into, and whether a term list screened them."""

    flagged_lines: list[str]
    screened: bool
    term_list: str | None = Field(alias="list")  # the list screened with
    detail: str | None


class Scorecard(Record):
    """The five checks measured on the dub itself, in report order."""

    intelligibility: IntelligibilityCheck
    timing: TimingCheck
    background: BackgroundCheck
    failed_lines: FailedLinesCheck
    av_duration: AvDurationCheck

    def by_name(self) -> dict[str, Check]:
        """Every check by its name, in report order."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class Checks(Scorecard):
    """Every check of a dub: the scorecard's, then its audio watermark and its toxicity screen."""

    watermark: WatermarkOff | WatermarkRead
    toxicity: ToxicityCheck

    @classmethod
    def of(
        cls, card: Scorecard, *, watermark: WatermarkOff | WatermarkRead, toxicity: ToxicityCheck
    ) -> Checks:
        return cls.model_validate({**card.by_name(), "watermark": watermark, "toxicity": toxicity})
