"""``transcript``: faster-whisper per chunk (a dynamic fan-out), merged and split into sentences."""

from typing import Any

import dagster as dg

from dubbing_pipeline.errors import IneligibleError
from dubbing_pipeline.freshness import recipe, stage_code
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.orchestration.kit import (
    Step,
    StepResult,
    Timer,
    classified,
    model_op,
    preview_table,
    run_step,
    stage_output,
)
from dubbing_pipeline.orchestration.partitions import videos
from dubbing_pipeline.orchestration.resources import ASRResource, StorageResource
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speech_segments.chunks import Chunk
from dubbing_pipeline.speech_segments.sentences import Word, merge_chunk_words, split_sentences

CODE_VERSION = recipe("transcript").code[0]
LANGUAGE_PROBE_SECONDS = 30.0


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
    asr = asr_res.get()

    def compute(step: Step) -> dict[str, Any]:
        import numpy as np

        from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono

        sample = _speech_sample(segments["speech"], LANGUAGE_PROBE_SECONDS)
        with step.local(segments["asr_audio_uri"]) as path:
            parts = [read_wav_16k_mono(path, s, e) for s, e in sample] or [read_wav_16k_mono(path, 0.0, 30.0)]
        guess = asr.detect_language(np.concatenate(parts))
        return {"language": guess.language, "probability": round(float(guess.probability), 4)}

    inputs = {
        "upstream": segments["cache_key"], "provider": asr.describe(), "seconds": LANGUAGE_PROBE_SECONDS
    }  # fmt: skip
    result = run_step(storage_res, "language", inputs=inputs, compute=compute)
    return {**result.record, "cached": result.cached}


def require_clear_language(language: dict[str, Any], minimum: float) -> None:
    """A language guess below ``minimum`` confidence makes the video ineligible."""
    if language["probability"] < minimum:
        raise IneligibleError(
            f"spoken language unclear: {language['language']} with confidence "
            f"{language['probability']:.2f} "
            f"(at least {minimum:.2f} needed, DUBBING_MIN_LANGUAGE_CONFIDENCE)"
        )


def chunk_jobs(speech_segments: dict[str, Any], language: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(mapping key, job)`` for every chunk that holds speech, with its speech regions."""
    jobs = []
    for chunk in speech_segments["chunks"]:
        regions = [
            [max(s, chunk["start"]), min(e, chunk["end"])]
            for s, e in speech_segments["speech"]
            if e > chunk["start"] and s < chunk["end"]
        ]
        if regions:
            job = {
                "chunk": chunk, "regions": regions, "language": language,
                "asr_audio_uri": speech_segments["asr_audio_uri"], "upstream": speech_segments["cache_key"],
            }  # fmt: skip
            jobs.append((f"c{chunk['index']:04d}", job))
    return jobs


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
        require_clear_language(language, asr.settings().min_language_confidence)
    context.log.info(f"language {language['language']} (p={language['probability']})")
    for mapping_key, job in chunk_jobs(speech_segments, language):
        yield dg.DynamicOutput(job, mapping_key=mapping_key)


def transcribe_chunk(
    context: dg.OpExecutionContext, storage: StorageResource, asr: ASRResource, job: dict[str, Any]
) -> dict[str, Any]:
    """Words with timestamps for one chunk (cached by audio, bounds, language and model)."""
    with classified("transcript"):
        result = transcribe_one(storage, asr, job)
    record = result.record
    context.log.info(f"chunk {record['index']}: {len(record['words'])} words in {result.seconds:.1f}s")
    return {**record, "cached": result.cached, "seconds": result.seconds}


def transcribe_one(storage_res: StorageResource, asr_res: ASRResource, job: dict[str, Any]) -> StepResult:
    model = asr_res.get()
    chunk = Chunk.from_dict(job["chunk"])
    language = job["language"]

    def compute(step: Step) -> dict[str, Any]:
        from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono

        with step.local(job["asr_audio_uri"]) as path:
            audio = read_wav_16k_mono(path, chunk.start, chunk.end)
        regions = [(float(s), float(e)) for s, e in job["regions"]]
        words = model.transcribe(audio, language=language["language"], offset=chunk.start, regions=regions)
        return {
            "index": chunk.index,
            "language": language["language"],
            "language_probability": language["probability"],
            "words": [w.to_dict() for w in words],
        }

    inputs = {
        "upstream": job["upstream"], "chunk": job["chunk"], "regions": job["regions"],
        "language": language["language"], "provider": model.describe(), "code": CODE_VERSION,
    }  # fmt: skip
    return run_step(storage_res, "asr_chunk", inputs=inputs, compute=compute)


PREVIEW = (
    ("start", lambda s: f"{s['start']:.2f}", True),
    ("end", lambda s: f"{s['end']:.2f}", True),
    ("text", lambda s: s["text"], False),
)


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
        record = transcript_record(speech_segments, ordered, asr.get().describe())
    return stage_output(
        record,
        upstream={"speech_segments": speech_segments},
        code_version=stage_code("transcript", asr.settings()),
        seconds=sum(float(r["seconds"]) for r in ordered) + timer.seconds,
        cached=all(r["cached"] for r in ordered),
        media_seconds=float(speech_segments["duration"]),
        provider=record["provider"],
        counts={"segments": len(record["segments"]), "words": record["words"], "chunks": len(ordered)},
        preview=preview_table(PREVIEW, record["segments"], limit=40),
    )


def transcript_record(
    speech_segments: dict[str, Any], ordered: list[dict[str, Any]], provider: dict[str, Any]
) -> dict[str, Any]:
    """The chunks' words joined at the chunk cores (no word lost or doubled), split into sentences."""
    plan = {c["index"]: Chunk.from_dict(c) for c in speech_segments["chunks"]}
    words = merge_chunk_words(
        [plan[r["index"]] for r in ordered], [[Word.from_dict(w) for w in r["words"]] for r in ordered]
    )
    return {
        "cache_key": cache_key("transcript", chunks=[r["cache_key"] for r in ordered], code=CODE_VERSION),
        "language": ordered[0]["language"] if ordered else None,
        "language_probability": ordered[0]["language_probability"] if ordered else 0.0,
        "segments": [s.to_dict() for s in split_sentences(words)],
        "words": len(words),
        "provider": provider,
        "chunks": [
            {"index": r["index"], "cache_key": r["cache_key"], "cached": r["cached"]} for r in ordered
        ],
    }


def build_transcript(settings: Settings) -> dg.AssetsDefinition:
    """The ``transcript`` graph asset; its chunk steps go to the GPU pool where ``settings`` say so."""
    chunk_op = model_op(transcribe_chunk, settings, stage="transcript", placement="transcript")

    @dg.graph_asset(
        name="transcript",
        partitions_def=videos,
        code_version=CODE_VERSION,
        group_name="source_half",
        kinds={"whisper"},
        description="Words with timestamps from faster-whisper, one fan-out step per ≤300 s chunk, split "
        "into sentences.",
    )
    def transcript(speech_segments: dict[str, Any]) -> Any:
        jobs = plan_transcription(speech_segments)
        return assemble_transcript(speech_segments, jobs.map(chunk_op).collect())

    return transcript


transcript = build_transcript(Settings())  # the embedded default; build_definitions builds its own
