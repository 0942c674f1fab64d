"""``transcript``: faster-whisper per chunk (a dynamic fan-out), merged and split into sentences."""

from typing import Any

import dagster as dg

from dubbing_pipeline.cache import StepCache, scratch
from dubbing_pipeline.errors import IneligibleError
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.orchestration.partitions import videos
from dubbing_pipeline.orchestration.placement import DEPLOYED, gpu_op_tags, gpu_pool
from dubbing_pipeline.orchestration.resources import ASRResource, StorageResource
from dubbing_pipeline.orchestration.stage import Timer, classified, stage_metadata
from dubbing_pipeline.segments.chunks import Chunk
from dubbing_pipeline.segments.sentences import Word, merge_chunk_words, split_sentences

CODE_VERSION = "transcript-1"
LANGUAGE_PROBE_SECONDS = 30.0
RETRY = dg.RetryPolicy(max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL)


def _speech_sample(speech: list[list[float]], limit: float) -> list[tuple[float, float]]:
    picked: list[tuple[float, float]] = []
    total = 0.0
    for start, end in speech:
        take = min(end - start, limit - total)
        if take <= 0:
            break
        picked.append((start, start + take))
        total += take
    return picked


def detect_language(
    storage_res: StorageResource, asr_res: ASRResource, segments: dict[str, Any]
) -> dict[str, Any]:
    """Spoken language from the first ≤30 s of speech, cached."""
    import numpy as np

    from dubbing_pipeline.segments.vad import read_wav_16k_mono

    storage = storage_res.get()
    asr = asr_res.get()
    key = cache_key(
        "language", upstream=segments["cache_key"], provider=asr.describe(), seconds=LANGUAGE_PROBE_SECONDS
    )
    cache = StepCache(storage, "language")
    hit = cache.get(key)
    if hit is not None:
        return {**hit, "cached": True}
    sample = _speech_sample(segments["speech"], LANGUAGE_PROBE_SECONDS)
    with scratch("language", storage_res.work_dir or None) as tmp:
        with storage.open_local(storage.key_of(segments["asr_audio_uri"]), tmp) as path:
            parts = [read_wav_16k_mono(path, s, e) for s, e in sample] or [read_wav_16k_mono(path, 0.0, 30.0)]
    guess = asr.detect_language(np.concatenate(parts))
    record = {"cache_key": key, "language": guess.language, "probability": round(float(guess.probability), 4)}
    cache.put(key, record)
    return {**record, "cached": False}


@dg.op(out=dg.DynamicOut(dict), tags={"stage": "transcript"})
def plan_transcription(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    asr: ASRResource,
    speech_segments: dict[str, Any],
) -> Any:
    """Detect the language once, then emit one job per chunk that holds speech."""
    with classified("transcript"):
        language = detect_language(storage, asr, speech_segments)
        if language["probability"] < asr.min_language_confidence:
            raise IneligibleError(
                f"spoken language unclear: {language['language']} with confidence "
                f"{language['probability']:.2f} "
                f"(at least {asr.min_language_confidence:.2f} needed, DUBBING_MIN_LANGUAGE_CONFIDENCE)"
            )
    context.log.info(f"language {language['language']} (p={language['probability']})")
    for chunk in speech_segments["chunks"]:
        regions = [
            [max(s, chunk["start"]), min(e, chunk["end"])]
            for s, e in speech_segments["speech"]
            if e > chunk["start"] and s < chunk["end"]
        ]
        if not regions:
            continue
        yield dg.DynamicOutput(
            {
                "chunk": chunk,
                "regions": regions,
                "language": language,
                "asr_audio_uri": speech_segments["asr_audio_uri"],
                "upstream": speech_segments["cache_key"],
            },
            mapping_key=f"c{chunk['index']:04d}",
        )


@dg.op(
    retry_policy=RETRY,
    tags={"stage": "transcript", **gpu_op_tags(DEPLOYED, "transcript")},
    pool=gpu_pool(DEPLOYED, "transcript"),
)
def transcribe_chunk(
    context: dg.OpExecutionContext, storage: StorageResource, asr: ASRResource, job: dict[str, Any]
) -> dict[str, Any]:
    """Words with timestamps for one chunk (cached by audio, bounds, language and model)."""
    from dubbing_pipeline.segments.vad import read_wav_16k_mono

    timer = Timer()
    with classified("transcript"):
        store = storage.get()
        model = asr.get()
        chunk = Chunk.from_dict(job["chunk"])
        key = cache_key(
            "asr_chunk", upstream=job["upstream"], chunk=job["chunk"], regions=job["regions"],
            language=job["language"]["language"], provider=model.describe(), code=CODE_VERSION,
        )  # fmt: skip
        cache = StepCache(store, "asr_chunk")
        hit = cache.get(key)
        if hit is not None:
            return {**hit, "cached": True, "seconds": timer.seconds}
        with scratch("asr", storage.work_dir or None) as tmp:
            with store.open_local(store.key_of(job["asr_audio_uri"]), tmp) as path:
                audio = read_wav_16k_mono(path, chunk.start, chunk.end)
        words = model.transcribe(
            audio,
            language=job["language"]["language"],
            offset=chunk.start,
            regions=[(float(s), float(e)) for s, e in job["regions"]],
        )
        record = {
            "cache_key": key,
            "index": chunk.index,
            "language": job["language"]["language"],
            "language_probability": job["language"]["probability"],
            "words": [w.to_dict() for w in words],
        }
        cache.put(key, record)
    context.log.info(f"chunk {chunk.index}: {len(words)} words in {timer.seconds:.1f}s")
    return {**record, "cached": False, "seconds": timer.seconds}


def _preview(segments: list[dict[str, Any]], limit: int = 40) -> str:
    rows = ["| start | end | text |", "|---:|---:|---|"]
    for seg in segments[:limit]:
        text = seg["text"].replace("|", "\\|")
        rows.append(f"| {seg['start']:.2f} | {seg['end']:.2f} | {text} |")
    if len(segments) > limit:
        rows.append(f"| … | … | {len(segments) - limit} more |")
    return "\n".join(rows)


@dg.op(tags={"stage": "transcript"})
def assemble_transcript(
    context: dg.OpExecutionContext,
    asr: ASRResource,
    speech_segments: dict[str, Any],
    chunks: list[dict[str, Any]],
) -> dg.Output[dict[str, Any]]:
    """Merge chunk words at the joins and split them into sentence segments."""
    timer = Timer()
    with classified("transcript"):
        ordered = sorted(chunks, key=lambda r: r["index"])
        plan = {c["index"]: Chunk.from_dict(c) for c in speech_segments["chunks"]}
        words = merge_chunk_words(
            [plan[r["index"]] for r in ordered], [[Word.from_dict(w) for w in r["words"]] for r in ordered]
        )
        segments = split_sentences(words)
        language = ordered[0]["language"] if ordered else None
        probability = ordered[0]["language_probability"] if ordered else 0.0
        provider = asr.get().describe()
        key = cache_key("transcript", chunks=[r["cache_key"] for r in ordered], code=CODE_VERSION)
        record = {
            "cache_key": key,
            "language": language,
            "language_probability": probability,
            "segments": [s.to_dict() for s in segments],
            "words": len(words),
            "provider": provider,
            "chunks": [
                {"index": r["index"], "cache_key": r["cache_key"], "cached": r["cached"]} for r in ordered
            ],
        }
    compute = sum(float(r["seconds"]) for r in ordered)
    cached = all(r["cached"] for r in ordered)
    return dg.Output(
        record,
        metadata=stage_metadata(
            seconds=compute + timer.seconds,
            media_seconds=float(speech_segments["duration"]),
            cached=cached,
            cache_key=key,
            provider=provider,
            counts={"segments": len(segments), "words": len(words), "chunks": len(ordered)},
            preview=_preview(record["segments"]),
        ),
    )


@dg.graph_asset(
    partitions_def=videos,
    code_version=CODE_VERSION,
    group_name="source_half",
    kinds={"whisper"},
    description="Words with timestamps from faster-whisper, one fan-out step per ≤300 s chunk, split into "
    "sentences.",
)
def transcript(speech_segments: dict[str, Any]) -> Any:
    jobs = plan_transcription(speech_segments)
    results = jobs.map(transcribe_chunk)
    return assemble_transcript(speech_segments, results.collect())
