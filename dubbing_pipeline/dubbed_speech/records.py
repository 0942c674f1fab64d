"""The ``dubbed_speech`` stage's records: what a line is spoken from, what becomes of it at each of
its cached steps, and the stage's output, every translated line's dubbed audio and fit.

A line's steps (``speech_take`` → ``speech_line`` → ``speech_mark``) and the stage's lines are flat
records of one shape (:class:`LineSound`): a silent line has a status and the reason, a spoken one
its audio, its fit (:class:`LineFit`) and its verdict (:class:`CheckedFit`). What a line does not
have is not stored (``GivenOnly``), so the records keep the stored form they always had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import ConfigDict, Field

from dubbing_pipeline.records import JsonObject, Record, StageRecord
from dubbing_pipeline.translation.records import GivenOnly


class VoiceProfile(Record):
    """A speaker's voice as their lines are spoken: their median pitch and the engine voice."""

    f0: float | None = None  # median F0 (Hz) of their source speech; None: nothing voiced measured
    voice: str | None = None  # male/female by F0, or a person's choice (edits); None: the engine's default


class ProfilesRecord(StageRecord):
    """The ``profiles`` step's record: every speaker's voice profile, by speaker id."""

    profiles: dict[str, VoiceProfile]


class PlannedLine(Record):
    """A translated line as it is spoken: its texts, its slot and its speaker's voice (the
    translation's other fields are not read)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    start: float
    end: float
    next_start: float  # the next line's start (the video's end after the last line)
    room_before: float = 0.0  # free seconds before the slot it may start early into
    # the slot its rate is planned in (start, end, next start, room before): the source's, for a
    # line a timing edit moved; None: its own slot
    rate_slot: tuple[float, float, float, float] | None = None
    target_text: str
    source_text: str
    condensed_text: str | None = None  # the source text as the translation step condensed it
    flags: list[str] = Field(default_factory=list)
    source_start: float | None = None  # where the source speaks a moved line (edits)
    source_end: float | None = None
    profile: VoiceProfile = VoiceProfile()

    @classmethod
    def of(cls, line: PlannedLine | Mapping[str, Any]) -> Self:
        """``line`` as a planned line (a mapping holds its fields)."""
        return line if isinstance(line, cls) else cls.model_validate(line)

    @property
    def edited(self) -> bool:
        """A person wrote its text (``review.edits.is_edited``): spoken as written, never re-translated."""
        return "edited" in self.flags

    @property
    def translated_from(self) -> str:
        """The source text it was translated from: condensed where the translation step condensed it."""
        return self.condensed_text or self.source_text

    def source_duration(self) -> float:
        """How long the source speaker spoke it (a moved line's slot may differ)."""
        start = self.start if self.source_start is None else self.source_start
        end = self.end if self.source_end is None else self.source_end
        return end - start


class SpeechJob(Record):
    """A batch of lines to speak (one ``synthesize_batch`` step of the fan-out)."""

    lines: list[PlannedLine]
    source_language: str
    target_language: str


class LineFit(Record):
    """A line spoken and fitted to its slot (``speak.synthesize_line``): the words it says and the
    ``isochrony.FitPlan`` it was placed by."""

    target_text: str
    retranslated: bool  # it says the one shorter translation
    shorter_asked: bool  # the shorter translation was asked for (too long at both caps)
    sample_rate: int
    syntheses: int  # texts synthesised now (0: every take came from the voice cache)
    rate: float
    stretch: float
    dub_start: float
    dub_end: float
    borrowed: float
    status: str  # isochrony.STATUSES
    overflow: float
    lead: float


class CheckedFit(LineFit, GivenOnly):
    """A fitted line with the judge's verdict, and its one repair where it was unintelligible."""

    GIVEN_ONLY = frozenset({"repair_tried", "cer_before_repair"})

    cer: float  # round-trip character error rate, 4 decimals
    repaired: bool  # the repaired take is the one kept
    repair_tried: bool | None = None  # a repair was tried and not kept (None: none tried)
    cer_before_repair: float | None = None


class LineSound(GivenOnly):
    """What became of a line at a step: its status, and where it was spoken its audio, fit and
    verdict; a silent (``failed``) line says why in ``detail``."""

    GIVEN_ONLY = frozenset({
        "detail", "uri", "target_text", "retranslated", "shorter_asked", "sample_rate", "syntheses",
        "rate", "stretch", "dub_start", "dub_end", "borrowed", "overflow", "lead", "cer", "repaired",
        "repair_tried", "cer_before_repair", "unmarked_uri", "watermark",
    })  # fmt: skip

    status: str  # isochrony.LINE_STATUSES
    detail: str | None = None
    uri: str | None = None  # its audio (marked, where the watermark is on)
    target_text: str | None = None
    retranslated: bool | None = None
    shorter_asked: bool | None = None
    sample_rate: int | None = None
    syntheses: int | None = None
    rate: float | None = None
    stretch: float | None = None
    dub_start: float | None = None
    dub_end: float | None = None
    borrowed: float | None = None
    overflow: float | None = None
    lead: float | None = None
    cer: float | None = None
    repaired: bool | None = None
    repair_tried: bool | None = None
    cer_before_repair: float | None = None
    unmarked_uri: str | None = None  # the audio before the watermark
    watermark: str | None = None  # the watermarker's name

    def fit(self) -> LineFit | None:
        """Its fit, where it was spoken."""
        if self.uri is None:
            return None
        return LineFit.model_validate(self.model_dump(include=set(LineFit.model_fields)))


class VoiceRecord(StageRecord):
    """The ``speech_voice`` step's record: one text spoken at one rate, before any fitting."""

    uri: str
    samples: int


class TakeRecord(StageRecord, LineSound):
    """The ``speech_take`` step's record: a line spoken and fitted, or why it could not be."""

    seconds: float  # of its audio


class JudgeRecord(StageRecord):
    """The ``speech_judge`` step's record: the round-trip CER of each take of one Whisper window."""

    cer: list[float]


class SpokenLineRecord(StageRecord, LineSound):
    """The ``speech_line`` (verdict and repair) and ``speech_mark`` (watermark) steps' record."""

    id: str


class SpeechBatch(Record):
    """A batch's lines as ``synthesize_batch`` hands them to the assembling op."""

    index: str  # the first line's id
    lines: list[SpokenLineRecord]
    cached: bool  # every line was a cache hit
    hits: int
    takes_cached: int  # lines not spoken again
    spoken: list[str]  # ids of the lines this run synthesised
    refitted: list[str]  # ids of the lines this run fitted again
    seconds: float
    provider: JsonObject  # the TTS engine's description
    watermark: JsonObject | None  # the watermarker's description and this run's marking seconds


class DubbedLine(LineSound):
    """A translated line's dubbed speech, in its slot (a skipped line: ``original``, no audio)."""

    GIVEN_ONLY = LineSound.GIVEN_ONLY | {"source_start", "source_end", "cache_key", "artifacts"}

    id: str
    speaker: str
    start: float
    end: float
    source_start: float | None = None  # where the source speaks a moved line (edits)
    source_end: float | None = None
    cache_key: str | None = None  # its last step's key (None: no step spoke it)
    artifacts: dict[str, int] = Field(default_factory=dict, alias="_artifacts")


class DubbedSpeechRecord(StageRecord):
    """The ``dubbed_speech`` stage's output: every translated line's dubbed speech, in the
    translation's order."""

    target_language: str
    provider: JsonObject  # the TTS engine's description
    watermark: JsonObject | None  # what marked the lines, and the seconds it took; None: off
    lines: list[DubbedLine]
    spoken: list[str]  # ids of the lines this run synthesised
    refitted: list[str]  # ids of the lines this run fitted again
