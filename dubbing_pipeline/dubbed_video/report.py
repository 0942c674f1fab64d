"""``report.json``: one documented, stable summary per dubbed video × language.

Schema (version 1; fields are only ever added):

```
{
  "schema": "dubbing_pipeline.report/1",
  "video_id": str, "source_language": str, "target_language": str,
  "duration": float,                      # seconds of the source (and of the output)
  "stages": {name: {"seconds": float, "cached": bool}},
  "segments": [{"id", "start", "end", "speaker", "source_text", "target_text",
                "dub_start", "dub_end", "rate", "stretch", "status", "flags",
                "source_start"?, "source_end"?}],  # the last two: a line moved by an edit
  "speakers": [{"id", "seconds"}],
  "outputs": {"video": str, "srt": str, "vtt": str, "source_srt": str, "source_vtt": str},
  "providers": {stage: {...}},
  "mix": {"target_lufs": float, "loudness_lufs": float},
  "rerender": {"lines", "spoken", "takes_cached", "refitted", "edits_version"},
  "provenance": {"watermark", "c2pa", "label", "toxicity"},
  "lipsync": {...lip_sync's summary, "changed", "status", "error"},
  "quality": {"thresholds", "checks": {name: {"passed", ...}}, "segments", "accepted", "blocking"}
}
```

``status`` per segment: fits, borrowed (used the silence after its slot), rate (spoken
faster, ≤ 1.2×), stretch (time-stretched, ≤ 1.1×), trimmed (cut at the next line after the
one shorter re-translation), failed (silence: no translation or no synthesis). ``flags`` name
what a reviewer should check (``glossary``: a glossary term is missing from the translation;
``edited``, ``speaker``, ``skip``, ``timing``: a person's edits). A line whose slot an edit moved
has ``start``/``end`` where it is dubbed and ``source_start``/``source_end`` where it was spoken.

The report is built here from typed records (:class:`DubReport`, :func:`dub_report`) and becomes
JSON once, when it is published (``dubbed_video.publish``); what reads a stored report (the review
page, the CLI's ``lines``: :func:`review_lines`) reads that JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from dubbing_pipeline.dubbed_speech.records import DubbedLine, DubbedSpeechRecord
from dubbing_pipeline.dubbed_video.records import LabelDrawn, MuxOutputs, MuxRecord, Parents, QualityRecord
from dubbing_pipeline.errors import InternalError
from dubbing_pipeline.lip_sync.records import LipSyncRecord, LipSyncSummary
from dubbing_pipeline.provenance.manifest import SignerInfo
from dubbing_pipeline.quality.records import Checks, Score, Thresholds
from dubbing_pipeline.records import JsonObject, Record
from dubbing_pipeline.review.edits import SOURCE_SLOT_KEYS
from dubbing_pipeline.translation.records import ToxicityScreen, TranslatedLine, TranslationRecord

SCHEMA = "dubbing_pipeline.report/1"


class StageTime(Record):
    """How long a stage took for this dub (seconds, 3 decimals) and whether its step was cached."""

    seconds: float
    cached: bool


class ReportSegment(Record):
    """A line of the dub: its source slot and texts, where and how it was dubbed, its status."""

    id: str
    start: float
    end: float
    speaker: str
    source_text: str
    target_text: str
    dub_start: float | None  # None: a failed line (silent)
    dub_end: float | None
    rate: float | None
    stretch: float | None
    status: str
    flags: list[str]
    source_start: float | None = None  # a line an edit moved: where the source speaks it
    source_end: float | None = None

    @model_serializer(mode="wrap")
    def _moved_only(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A line in its source slot has no ``source_start``/``source_end``."""
        stored = handler(self)
        return {k: v for k, v in stored.items() if k not in SOURCE_SLOT_KEYS or v is not None}

    def source_slot(self) -> tuple[float, float]:
        """Where the source speaker says it (``review.edits.source_slot``)."""
        start = self.start if self.source_start is None else self.source_start
        return start, self.end if self.source_end is None else self.source_end


class ReportSpeaker(Record):
    """A speaker of the source, and how long they speak."""

    id: str
    seconds: float


class Mix(Record):
    """The dub mix's integrated loudness, and the source's it was matched to (LUFS)."""

    target_lufs: float
    loudness_lufs: float


class Rerender(Record):
    """What this run spoke: every line on a first dub, the edited ones after an edit."""

    lines: int  # lines with dubbed speech
    spoken: list[str]  # synthesised in this run
    takes_cached: int  # voices not synthesised again
    refitted: list[str]  # fitted again (a new text or slot)
    edits_version: str | None


class Provenance(Record):
    """What says this dub is AI-made (docs/provenance.md)."""

    watermark: JsonObject | None  # the speech's audio watermark (dubbed_speech's description)
    c2pa: SignerInfo | None
    label: LabelDrawn | None
    toxicity: ToxicityScreen | None  # the translation's toxicity screen


class LipsyncSection(LipSyncSummary):
    """What lip-sync did (its summary), whether it changed the video, and how the stage ended."""

    changed: bool
    status: str
    error: str | None

    @classmethod
    def of(cls, lip_sync: LipSyncRecord) -> LipsyncSection:
        summary = {name: getattr(lip_sync.lipsync, name) for name in LipSyncSummary.model_fields}
        return cls(**summary, changed=lip_sync.changed, status=lip_sync.status, error=lip_sync.error)


class QualitySection(Record):
    """The quality measures and the blocking checks' fate: failed and accepted, or blocking."""

    thresholds: Thresholds
    checks: Checks
    segments: list[Score]
    accepted: list[str]  # blocking checks that failed and a person accepted (``dubbing/accept``)
    blocking: list[str]  # blocking checks that failed and block the dub

    @classmethod
    def judged(cls, measured: QualityRecord, accepted: list[str], blocking: list[str]) -> QualitySection:
        return cls(
            thresholds=measured.thresholds,
            checks=measured.checks,
            segments=measured.segments,
            accepted=accepted,
            blocking=blocking,
        )


class DubReport(Record):
    """report.json (see the module docstring for its schema)."""

    report_schema: str = Field(default=SCHEMA, alias="schema")
    video_id: str
    source_language: str
    target_language: str
    duration: float  # seconds of the source (and of the output), 4 decimals
    stages: dict[str, StageTime]
    segments: list[ReportSegment]
    speakers: list[ReportSpeaker]
    outputs: MuxOutputs
    providers: dict[str, JsonObject]  # by stage: the provider's description
    mix: Mix
    rerender: Rerender
    provenance: Provenance
    lipsync: LipsyncSection
    quality: QualitySection


def dub_report(
    video_id: str,
    stages: dict[str, StageTime],
    muxed: MuxRecord,
    up: Parents,
    segments: list[ReportSegment],
    quality: QualitySection,
) -> DubReport:
    """The report of the dub of ``up`` (see the module docstring for its schema)."""
    translation, speech, lip_sync = up.translation, up.dubbed_speech, up.lip_sync
    return DubReport(
        video_id=video_id,
        source_language=translation.source_language,
        target_language=translation.target_language,
        duration=round(float(up.source_video.duration), 4),
        stages=stages,
        segments=segments,
        speakers=[ReportSpeaker(id=s.id, seconds=s.seconds) for s in up.speakers.speakers],
        outputs=muxed.outputs,
        providers={
            "translation": translation.provider,
            "speech": speech.provider,
            "lipsync": {"name": lip_sync.lipsync.provider},
        },
        mix=Mix(target_lufs=up.dub_mix.target_lufs, loudness_lufs=up.dub_mix.loudness_lufs),
        rerender=rerender(speech, translation.edits_version),
        provenance=Provenance(
            watermark=speech.watermark,
            c2pa=muxed.c2pa,
            label=muxed.label,
            toxicity=translation.toxicity,
        ),
        lipsync=LipsyncSection.of(lip_sync),
        quality=quality,
    )


def report_segments(translation: TranslationRecord, speech: DubbedSpeechRecord) -> list[ReportSegment]:
    """Every translated line with its dubbed speech (a line the speech stage has not: failed)."""
    by_id = {line.id: line for line in speech.lines}
    return [report_segment(line, by_id.get(line.id)) for line in translation.lines]


def report_segment(line: TranslatedLine, dub: DubbedLine | None) -> ReportSegment:
    status = dub.status if dub is not None else "failed"
    spoken = dub if dub is not None and status != "failed" else None
    return ReportSegment(
        id=line.id,
        start=line.start,
        end=line.end,
        speaker=line.speaker,
        source_text=line.source_text,
        target_text=line.target_text if dub is None or dub.target_text is None else dub.target_text,
        dub_start=None if spoken is None else _rounded(spoken.dub_start),
        dub_end=None if spoken is None else _rounded(spoken.dub_end),
        rate=None if spoken is None else _rounded(spoken.rate),
        stretch=None if spoken is None else _rounded(spoken.stretch),
        status=status,
        flags=list(line.flags),
        # a moved line (edits): where the source speaker spoke it
        source_start=line.source_start,
        source_end=line.source_end,
    )


def _rounded(value: float | None) -> float:
    if value is None:
        raise InternalError("a dubbed line without its fit")
    return round(float(value), 4)


def rerender(speech: DubbedSpeechRecord, edits_version: str | None) -> Rerender:
    """What this run spoke (all lines on a first dub; the edited ones after an edit)."""
    spoken = [r for r in speech.lines if r.status not in ("failed", "original")]
    return Rerender(
        lines=len(spoken),
        spoken=list(speech.spoken),
        takes_cached=len(spoken) - len(speech.spoken),
        refitted=list(speech.refitted),
        edits_version=edits_version,
    )


def stage_time(seconds: float, cached: bool) -> StageTime:
    return StageTime(seconds=round(float(seconds), 3), cached=cached)


class ReviewLine(TypedDict):
    """A line of a stored report as ``lines`` and the review page show it."""

    id: str
    start: float
    end: float
    speaker: str
    status: str
    dub_start: float | None
    dub_end: float | None
    rate: float | None
    stretch: float | None
    cer: float | None  # the round-trip CER (the scorecard's)
    flags: list[str]  # the translation's and the scorecard's
    source: str
    target: str
    feedback: list[str]  # the viewers' notes
    source_start: NotRequired[float]  # a line an edit moved: where the source speaks it
    source_end: NotRequired[float]


def review_lines(report: Mapping[str, Any], feedback: Sequence[Mapping[str, Any]] = ()) -> list[ReviewLine]:
    """One row per line of a report: its slot, speaker, texts, fit, round-trip CER, flags and the
    viewers' feedback notes on it.

    Flags are the translation's (``glossary``) and the scorecard's problems (``unintelligible``,
    ``start``, ``overlap``, ``speed``, ``silent``).
    """
    scores = {str(r["id"]): r for r in report.get("quality", {}).get("segments", [])}
    notes: dict[str, list[str]] = {}
    for item in feedback:
        notes.setdefault(str(item["line"]), []).append(str(item["note"]))
    rows = []
    for seg in report["segments"]:
        score = scores.get(str(seg["id"]), {})
        flags = [*seg.get("flags", []), *score.get("problems", [])]
        row = ReviewLine(
            id=seg["id"],
            start=seg["start"],
            end=seg["end"],
            speaker=seg["speaker"],
            status=seg["status"],
            dub_start=seg.get("dub_start"),
            dub_end=seg.get("dub_end"),
            rate=seg.get("rate"),
            stretch=seg.get("stretch"),
            cer=score.get("cer"),
            flags=flags,
            source=seg["source_text"],
            target=seg["target_text"],
            feedback=notes.get(str(seg["id"]), []),
        )
        if "source_start" in seg:  # moved by an edit (SOURCE_SLOT_KEYS)
            row["source_start"], row["source_end"] = seg["source_start"], seg["source_end"]
        rows.append(row)
    return rows


def stamp(seconds: float) -> str:
    """``mm:ss.ss``, the time of a line as the CLI prints it."""
    minutes, secs = divmod(float(seconds), 60.0)
    return f"{int(minutes):02d}:{secs:05.2f}"


def lines_table(rows: Sequence[ReviewLine]) -> str:
    """The rows of ``review_lines`` as a plain-text table, one line of the dub per row."""
    out = [f"{'id':<6} {'time':<17} {'spk':<4} {'status':<8} {'cer':>5}  {'flags':<14} source → target"]
    for r in rows:
        cer = "" if r["cer"] is None else f"{float(r['cer']):.2f}"
        flags = ",".join(r["flags"]) or "-"
        time = f"{stamp(r['start'])}-{stamp(r['end'])}"
        out.append(
            f"{r['id']:<6} {time:<17} {r['speaker']:<4} {r['status']:<8} {cer:>5}  {flags:<14} "
            f"{r['source']} → {r['target']}" + "".join(f"  [feedback: {n}]" for n in r.get("feedback", []))
        )
    return "\n".join(out) + "\n"
