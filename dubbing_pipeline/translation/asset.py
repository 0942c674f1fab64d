"""``translation`` (video × language): every line translated with its neighbours, within its word budget."""

from typing import Any

import dagster as dg

from dubbing_pipeline.cache import StepCache
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.orchestration.partitions import split_video_language, video_language
from dubbing_pipeline.orchestration.resources import StorageResource, TranslatorResource
from dubbing_pipeline.orchestration.stage import Timer, classified, stage_metadata
from dubbing_pipeline.translation.budget import word_budget
from dubbing_pipeline.translation.providers import LineRequest

CODE_VERSION = "translation-1"


def translate_video(
    storage_res: StorageResource,
    translator_res: TranslatorResource,
    transcript: dict[str, Any],
    speakers: dict[str, Any],
    target: str,
) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    source = str(transcript["language"])
    translator = translator_res.get(source, target)  # unsupported pairs fail here, at the start
    provider = translator.describe()
    storage = storage_res.get()
    key = cache_key(
        "translation", upstream=speakers["cache_key"], source=source, target=target,
        provider=provider, code=CODE_VERSION,
    )  # fmt: skip
    cache = StepCache(storage, "translation")
    hit = cache.get(key)
    if hit is not None:
        return hit, True, provider
    segments = speakers["segments"]
    requests = [
        LineRequest(s["id"], s["text"], word_budget(s["end"] - s["start"], target), s["end"] - s["start"])
        for s in segments
    ]
    results = translator.translate(requests, source, target)
    lines = []
    for seg, req, res in zip(segments, requests, results, strict=True):
        lines.append(
            {
                "id": seg["id"],
                "start": seg["start"],
                "end": seg["end"],
                "speaker": seg["speaker"],
                "source_text": seg["text"],
                "target_text": res.text,
                "budget": req.budget,
                "attempts": res.attempts,
                "stricter_retry": res.stricter_retry,
                "status": res.status,
            }
        )
    record = {
        "cache_key": key,
        "source_language": source,
        "target_language": target,
        "provider": provider,
        "lines": lines,
    }
    return cache.put(key, record), False, provider


def _preview(lines: list[dict[str, Any]], limit: int = 40) -> str:
    rows = ["| id | speaker | source | target | budget | status |", "|---|---|---|---|---:|---|"]
    for line in lines[:limit]:
        src = line["source_text"].replace("|", "\\|")
        tgt = line["target_text"].replace("|", "\\|")
        rows.append(
            f"| {line['id']} | {line['speaker']} | {src} | {tgt} | {line['budget']} | {line['status']} |"
        )
    return "\n".join(rows)


@dg.asset(
    partitions_def=video_language,
    code_version=CODE_VERSION,
    group_name="target_half",
    kinds={"llm"},
    description="Segment-aligned, context-aware translation with a word budget per line "
    "(apertium or an LLM).",
)
def translation(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    translator: TranslatorResource,
    transcript: dict[str, Any],
    speakers: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    timer = Timer()
    _, target = split_video_language(context)
    with classified("translation"):
        record, cached, provider = translate_video(storage, translator, transcript, speakers, target)
    lines = record["lines"]
    duration = sum(line["end"] - line["start"] for line in lines) or 1.0
    return dg.Output(
        record,
        metadata=stage_metadata(
            seconds=timer.seconds,
            media_seconds=duration,
            cached=cached,
            cache_key=record["cache_key"],
            provider=provider,
            counts={
                "lines": len(lines),
                "over_budget": sum(1 for line in lines if line["status"] == "over_budget"),
                "failed": sum(1 for line in lines if line["status"] == "failed"),
                "stricter_retries": sum(1 for line in lines if line["stricter_retry"]),
            },
            preview=_preview(lines),
            extra={
                "pair": dg.MetadataValue.text(f"{record['source_language']}->{record['target_language']}")
            },
        ),
    )
