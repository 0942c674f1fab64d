"""``translation`` (video × language): every line translated with its neighbours, within its word budget."""

from collections.abc import Sequence

import dagster as dg

from dubbing_pipeline.common.hashing import cache_key
from dubbing_pipeline.errors import BadInputError, BlockedError
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.orchestration.kit import (
    Step,
    StepResult,
    classified,
    preview_table,
    run_step,
    stage_asset,
    stage_output,
)
from dubbing_pipeline.orchestration.partitions import split_video_language
from dubbing_pipeline.orchestration.resources import SafetyResource, StorageResource, TranslatorResource
from dubbing_pipeline.provenance.toxicity import screen_lines
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.review.edits import (
    NO_EDITS,
    Edits,
    apply_edits,
    check_timing,
    edits_version,
    load_edits,
    source_slot,
)
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.records import SpeakerSegment, SpeakersRecord
from dubbing_pipeline.transcript.records import TranscriptRecord
from dubbing_pipeline.translation.base import LineRequest, LineResult
from dubbing_pipeline.translation.budget import word_budget
from dubbing_pipeline.translation.condense import condense_over_budget
from dubbing_pipeline.translation.edits_asset import EDITS_ASSET
from dubbing_pipeline.translation.glossary import GlossaryError, Term, make_glossary, terms_in
from dubbing_pipeline.translation.records import ToxicityScreen, TranslatedLine, TranslationRecord

CODE_VERSION = recipe("translation").code[0]


def translate_video(
    storage_res: StorageResource,
    translator_res: TranslatorResource,
    source: str,
    speakers: SpeakersRecord,
    target: str,
    edits: Edits = NO_EDITS,
) -> StepResult[TranslationRecord]:
    """Every line translated within its word budget (cached by the lines, the pair, the provider
    and the glossary: the catalog's ``DUBBING_GLOSSARY`` with this video's edited terms over it)."""
    translator = translator_res.get(source, target)  # unsupported pairs fail here, at the start
    provider = translator.describe()
    glossary = video_glossary(translator_res.glossary(target), edits)

    def compute(step: Step) -> JsonObject:
        requests = line_requests(speakers.segments, source, target, glossary)
        results = translator.translate(requests, source, target)
        return {
            "source_language": source,
            "target_language": target,
            "provider": provider,
            "lines": translated_lines(speakers.segments, requests, results),
        }

    inputs = {
        "upstream": speakers.cache_key, "source": source, "target": target, "provider": provider,
        "glossary": [[t.source, t.target] for t in glossary], "code": CODE_VERSION,
    }  # fmt: skip
    return run_step(storage_res, "translation", inputs=inputs, compute=compute, record=TranslationRecord)


def video_glossary(catalog: tuple[Term, ...], edits: Edits) -> tuple[Term, ...]:
    """The catalog's terms with this video's edited terms added (a video term replaces a catalog
    term with the same source)."""
    if not edits.glossary:
        return catalog
    own = {source.casefold() for source in edits.glossary}
    kept = [(t.source, t.target) for t in catalog if t.source.casefold() not in own]
    try:
        return make_glossary([*kept, *edits.glossary.items()])
    except GlossaryError as exc:
        raise BadInputError(f"edits glossary: {exc}") from exc


def edited_record(record: TranslationRecord, edits: Edits) -> TranslationRecord:
    """The translation record with the person's line edits and voice choices applied; without
    edits it is the step's record unchanged (same key, so an unedited dub keeps every cache hit)."""
    if not (edits.lines or edits.voices):
        return record
    stored = [line.to_json() for line in record.lines]  # the edits apply to the lines' stored form
    # moved lines stay in order and apart (checked by 'edit' too; here for a file edited by hand)
    check_timing(edits, {line["id"]: source_slot(line) for line in stored})
    version = edits_version(edits)
    return record.model_copy(
        update={
            "lines": [TranslatedLine.from_json(line) for line in apply_edits(stored, edits)],
            "voices": dict(edits.voices),
            "edits_version": version,
            "cache_key": cache_key("translation", translated=record.cache_key, edits=version),
        }
    )


def screened(record: TranslationRecord, block: bool) -> TranslationRecord:
    """The record with the toxicity screen's flags (``provenance.toxicity``) and its summary;
    with ``DUBBING_BLOCK_TOXIC=1`` a flagged line fails the partition instead."""
    stored, summary = screen_lines(
        [line.to_json() for line in record.lines], record.source_language, record.target_language
    )
    lines = [TranslatedLine.from_json(line) for line in stored]
    screen = ToxicityScreen.from_json(summary)
    if block and screen.flagged:
        found = {ln.id: ln.toxic_terms or [] for ln in lines if ln.id in screen.flagged}
        named = "; ".join(f"line {i}: {', '.join(t)}" for i, t in list(found.items())[:5])
        raise BlockedError(
            f"the {record.target_language} translation brings in offensive terms its source lacks "
            f"({named}); DUBBING_BLOCK_TOXIC=1 blocks the dub (edit or skip those lines)"
        )
    return record.model_copy(update={"lines": lines, "toxicity": screen})


def line_requests(
    segments: Sequence[SpeakerSegment], source: str, target: str, glossary: tuple[Term, ...] = ()
) -> list[LineRequest]:
    """One request per segment, with the word budget of its duration in the target language; a
    source line already longer than that budget is condensed first (``condense``: fillers out).
    Each request carries the glossary terms its text uses."""
    requests = []
    for s in segments:
        duration = s.end - s.start
        budget = word_budget(duration, target)
        text = condense_over_budget(s.text, source, budget)
        requests.append(LineRequest(s.id, text, budget, duration, tuple(terms_in(text, glossary))))
    return requests


def translated_lines(
    segments: Sequence[SpeakerSegment], requests: Sequence[LineRequest], results: Sequence[LineResult]
) -> list[TranslatedLine]:
    """Each segment with its request's budget and its translation's result."""
    return [
        TranslatedLine(
            id=seg.id,
            start=seg.start,
            end=seg.end,
            speaker=seg.speaker,
            source_text=seg.text,
            condensed_text=req.text if req.text != seg.text else None,
            target_text=res.text,
            budget=req.budget,
            attempts=res.attempts,
            stricter_retry=res.stricter_retry,
            status=res.status,
            flags=list(res.flags),
        )
        for seg, req, res in zip(segments, requests, results, strict=True)
    ]


def translation_counts(lines: Sequence[TranslatedLine]) -> dict[str, int | float]:
    """Materialisation counts: lines, over budget, failed, retries, condensed, flagged, edited, skipped."""
    return {
        "lines": len(lines),
        "over_budget": sum(1 for line in lines if line.status == "over_budget"),
        "failed": sum(1 for line in lines if line.status == "failed"),
        "stricter_retries": sum(1 for line in lines if line.stricter_retry),
        "condensed": sum(1 for line in lines if line.condensed_text),
        "glossary_flags": sum(1 for line in lines if "glossary" in line.flags),
        "edited": sum(1 for line in lines if "edited" in line.flags),  # review.edits.is_edited
        "skipped": sum(1 for line in lines if line.skip),
        "toxic_flags": sum(1 for line in lines if "toxic" in line.flags),
    }


PREVIEW = (
    ("id", lambda ln: ln["id"], False),
    ("speaker", lambda ln: ln["speaker"], False),
    ("source", lambda ln: ln["source_text"], False),
    ("target", lambda ln: ln["target_text"], False),
    ("budget", lambda ln: ln["budget"], True),
    ("status", lambda ln: ln["status"], False),
)


def translation_output(
    storage: StorageResource,
    translator: TranslatorResource,
    safety: SafetyResource,
    transcript: TranscriptRecord,
    speakers: SpeakersRecord,
    partition: tuple[str, str],
) -> dg.Output[TranslationRecord]:
    """The ``(video, language)`` partition's translation, edited and screened, as the asset's output."""
    video, target = partition
    with classified("translation"):
        safety.check()  # the dub's first step: bad signing credentials fail here, before any work
        edits = load_edits(storage.get(), video, target)
        result = translate_video(storage, translator, str(transcript.language), speakers, target, edits)
        record = screened(edited_record(result.record, edits), safety.block_toxic())
    # no observation of the edits here: 'edit' records each version it stores, and one saved while
    # this run translated must stay the latest, so the partition stays stale until it is dubbed
    return stage_output(
        record,
        upstream={
            "transcript": transcript,
            "speakers": speakers,
            EDITS_ASSET: {"cache_key": edits_version(edits)},
        },
        code_version=storage.code_version("translation"),
        seconds=result.seconds,
        cached=result.cached,
        media_seconds=sum(line.end - line.start for line in record.lines) or 1.0,
        provider=record.provider,
        counts=translation_counts(record.lines),
        preview=preview_table(PREVIEW, [line.to_json() for line in record.lines], limit=40),
        extra={
            "pair": dg.MetadataValue.text(f"{record.source_language}->{record.target_language}"),
            "edits_version": dg.MetadataValue.text(record.edits_version or "none"),
        },
    )


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``translation`` asset, downstream of the person's ``edits``."""

    def translation(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        translator: TranslatorResource,
        safety: SafetyResource,
        transcript: TranscriptRecord,
        speakers: SpeakersRecord,
    ) -> dg.Output[TranslationRecord]:
        partition = split_video_language(context)
        return translation_output(storage, translator, safety, transcript, speakers, partition)

    return stage_asset(
        translation,
        kinds={"llm"},
        description="Segment-aligned, context-aware translation with a word budget per line "
        "(apertium or an LLM).",
        settings=settings,
        deps=[EDITS_ASSET],
    )


translation = build(Settings())  # the embedded default; build_definitions builds its own
