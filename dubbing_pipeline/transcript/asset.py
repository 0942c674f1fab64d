"""``transcript``: faster-whisper per chunk (a dynamic fan-out), merged and split into sentences."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np

from dubbing_pipeline.common.hashing import cache_key
from dubbing_pipeline.errors import IneligibleError
from dubbing_pipeline.freshness import recipe, stage_code
from dubbing_pipeline.orchestration.kit import (
    Step,
    StepResult,
    Timer,
    classified,
    model_op,
    preview_table,
    run_step,
    stage_asset,
    stage_output,
)
from dubbing_pipeline.orchestration.resources import ASRResource, StorageResource
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speech_segments.records import SpeechSegmentsRecord
from dubbing_pipeline.speech_segments.sentences import merge_chunk_words, split_sentences
from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono
from dubbing_pipeline.transcript.recognizer import ASR, LANGUAGE_PROBE_SECONDS
from dubbing_pipeline.transcript.records import (
    AsrChunkRecord,
    ChunkJob,
    ChunkTranscript,
    LanguageRecord,
    TranscriptChunk,
    TranscriptRecord,
)

CODE_VERSION = recipe("transcript").code[0]


def _speech_sample(speech: list[tuple[float, float]], limit: float) -> list[tuple[float, float]]:
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
    storage_res: StorageResource, asr_res: ASRResource, segments: SpeechSegmentsRecord
) -> StepResult[LanguageRecord]:
    """Spoken language from the first ≤30 s of speech, cached."""
    asr: ASR = asr_res.get()

    def compute(step: Step) -> dict[str, object]:
        sample = _speech_sample(segments.speech, LANGUAGE_PROBE_SECONDS)
        with step.local(segments.asr_audio_uri) as path:
            parts = [read_wav_16k_mono(path, s, e) for s, e in sample] or [read_wav_16k_mono(path, 0.0, 30.0)]
        guess = asr.detect_language(np.concatenate(parts))
        return {"language": guess.language, "probability": round(float(guess.probability), 4)}

    inputs = {
        "upstream": segments.cache_key, "provider": asr.describe(), "seconds": LANGUAGE_PROBE_SECONDS
    }  # fmt: skip
    return run_step(storage_res, "language", inputs=inputs, compute=compute, record=LanguageRecord)


def require_clear_language(language: LanguageRecord, minimum: float) -> None:
    """A language guess below ``minimum`` confidence makes the video ineligible."""
    if language.probability < minimum:
        raise IneligibleError(
            f"spoken language unclear: {language.language} with confidence "
            f"{language.probability:.2f} "
            f"(at least {minimum:.2f} needed, DUBBING_MIN_LANGUAGE_CONFIDENCE)"
        )


def chunk_jobs(segments: SpeechSegmentsRecord, language: LanguageRecord) -> list[tuple[str, ChunkJob]]:
    """``(mapping key, job)`` for every chunk that holds speech, with its speech regions."""
    jobs = []
    for chunk in segments.chunks:
        regions = [
            (max(s, chunk.start), min(e, chunk.end))
            for s, e in segments.speech
            if e > chunk.start and s < chunk.end
        ]
        if regions:
            job = ChunkJob(
                chunk=chunk, regions=regions, language=language.language,
                language_probability=language.probability, asr_audio_uri=segments.asr_audio_uri,
                upstream=segments.cache_key,
            )  # fmt: skip
            jobs.append((f"c{chunk.index:04d}", job))
    return jobs


@dg.op(out=dg.DynamicOut(ChunkJob), tags={"stage": "transcript"})
def plan_transcription(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    asr: ASRResource,
    speech_segments: SpeechSegmentsRecord,
) -> Iterator[dg.DynamicOutput[ChunkJob]]:
    """Detect the language once, then emit one job per chunk that holds speech."""
    with classified("transcript"):
        language = detect_language(storage, asr, speech_segments).record
        require_clear_language(language, asr.settings().min_language_confidence)
    context.log.info(f"language {language.language} (p={language.probability})")
    for mapping_key, job in chunk_jobs(speech_segments, language):
        yield dg.DynamicOutput(job, mapping_key=mapping_key)


def transcribe_chunk(
    context: dg.OpExecutionContext, storage: StorageResource, asr: ASRResource, job: ChunkJob
) -> ChunkTranscript:
    """Words with timestamps for one chunk (cached by audio, bounds, language and model)."""
    with classified("transcript"):
        result = transcribe_one(storage, asr, job)
    record = result.record
    context.log.info(f"chunk {record.index}: {len(record.words)} words in {result.seconds:.1f}s")
    return ChunkTranscript(step=record, cached=result.cached, seconds=result.seconds)


def transcribe_one(
    storage_res: StorageResource, asr_res: ASRResource, job: ChunkJob
) -> StepResult[AsrChunkRecord]:
    """The cached ``asr_chunk`` step of one chunk."""
    model: ASR = asr_res.get()
    chunk = job.chunk

    def compute(step: Step) -> dict[str, object]:
        with step.local(job.asr_audio_uri) as path:
            audio = read_wav_16k_mono(path, chunk.start, chunk.end)
        words = model.transcribe(audio, language=job.language, offset=chunk.start, regions=job.regions)
        return {
            "index": chunk.index,
            "language": job.language,
            "language_probability": job.language_probability,
            "words": words,
        }

    inputs = {
        "upstream": job.upstream, "chunk": chunk.to_json(), "regions": job.regions,
        "language": job.language, "provider": model.describe(), "code": CODE_VERSION,
    }  # fmt: skip
    return run_step(storage_res, "asr_chunk", inputs=inputs, compute=compute, record=AsrChunkRecord)


PREVIEW = (
    ("start", lambda s: f"{s['start']:.2f}", True),
    ("end", lambda s: f"{s['end']:.2f}", True),
    ("text", lambda s: s["text"], False),
)


@dg.op(tags={"stage": "transcript"})
def assemble_transcript(
    asr: ASRResource, speech_segments: SpeechSegmentsRecord, chunks: list[JsonObject]
) -> dg.Output[TranscriptRecord]:
    """Merge chunk words at the joins and split them into sentence segments."""
    timer = Timer()
    with classified("transcript"):
        ordered = sorted((ChunkTranscript.from_json(c) for c in chunks), key=lambda r: r.step.index)
        record = transcript_record(speech_segments, ordered, asr.get().describe())
    return stage_output(
        record,
        upstream={"speech_segments": speech_segments},
        code_version=stage_code("transcript", asr.settings()),
        seconds=sum(r.seconds for r in ordered) + timer.seconds,
        cached=all(r.cached for r in ordered),
        media_seconds=speech_segments.duration,
        provider=record.provider,
        counts={"segments": len(record.segments), "words": record.words, "chunks": len(ordered)},
        preview=preview_table(PREVIEW, [s.to_json() for s in record.segments], limit=40),
    )


def transcript_record(
    segments: SpeechSegmentsRecord, ordered: list[ChunkTranscript], provider: JsonObject
) -> TranscriptRecord:
    """The chunks' words joined at the chunk cores (no word lost or doubled), split into sentences."""
    plan = {c.index: c for c in segments.chunks}
    steps = [r.step for r in ordered]
    words = merge_chunk_words([plan[s.index] for s in steps], [s.words for s in steps])
    return TranscriptRecord(
        schema_version=TranscriptRecord.SCHEMA_VERSION,
        cache_key=cache_key("transcript", chunks=[s.cache_key for s in steps], code=CODE_VERSION),
        language=steps[0].language if steps else None,
        language_probability=steps[0].language_probability if steps else 0.0,
        segments=split_sentences(words),
        words=len(words),
        provider=provider,
        chunks=[
            TranscriptChunk(index=r.step.index, cache_key=r.step.cache_key, cached=r.cached) for r in ordered
        ],
    )


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``transcript`` graph asset; its chunk steps go to the GPU pool where ``settings`` say so."""
    chunk_op = model_op(transcribe_chunk, settings, stage="transcript", placement="transcript")

    def transcript(speech_segments: SpeechSegmentsRecord) -> Any:
        jobs = plan_transcription(speech_segments)
        return assemble_transcript(speech_segments, jobs.map(chunk_op).collect())

    return stage_asset(
        transcript,
        kinds={"whisper"},
        description="Words with timestamps from faster-whisper, one fan-out step per ≤300 s chunk, split "
        "into sentences.",
        graph=True,
    )


transcript = build(Settings())  # the embedded default; build_definitions builds its own
