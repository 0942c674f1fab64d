"""``speakers``: diarization per chunk (fan-out), then one global speaker set (Hungarian matching)."""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
import numpy as np

from dubbing_pipeline.common.hashing import cache_key
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
from dubbing_pipeline.orchestration.resources import DiarizerResource, StorageResource
from dubbing_pipeline.records import JsonObject, Record
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.base import Diarizer
from dubbing_pipeline.speakers.records import (
    ChunkLabels,
    DiarizationJob,
    DiarizeChunkRecord,
    DiarizedChunk,
    Speaker,
    SpeakerSegment,
    SpeakersRecord,
)
from dubbing_pipeline.speech_segments.records import SpeechSegmentsRecord
from dubbing_pipeline.speech_segments.sentences import Segment
from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono
from dubbing_pipeline.transcript.records import TranscriptRecord

CODE_VERSION = recipe("speakers").code[0]

Stored = Mapping[str, Any] | Record
"""An upstream record, typed or in its stored form (both read by field name)."""


@dg.op(out=dg.DynamicOut(DiarizationJob), tags={"stage": "speakers"})
def plan_diarization(
    speech_segments: SpeechSegmentsRecord, transcript: TranscriptRecord
) -> Iterator[dg.DynamicOutput[DiarizationJob]]:
    """One job per chunk: the transcript segments whose midpoint lies in the chunk's core."""
    for chunk in speech_segments.chunks:
        spans = [
            (s.id, s.start, s.end)
            for s in transcript.segments
            if chunk.core_start <= (s.start + s.end) / 2 < chunk.core_end
        ]
        if spans:
            job = DiarizationJob(
                chunk=chunk,
                spans=spans,
                asr_audio_uri=speech_segments.asr_audio_uri,
                upstream=[speech_segments.cache_key, transcript.cache_key],
            )
            yield dg.DynamicOutput(job, mapping_key=f"c{chunk.index:04d}")


def diarize_chunk(
    context: dg.OpExecutionContext, storage: StorageResource, diarizer: DiarizerResource, job: DiarizationJob
) -> DiarizedChunk:
    """Local speakers of one chunk and their embeddings (cached)."""
    with classified("speakers"):
        result = diarize_one(storage, diarizer.get(), job)
    return DiarizedChunk(step=result.record, cached=result.cached, seconds=result.seconds)


def diarize_one(
    storage: StorageResource, model: Diarizer, job: DiarizationJob
) -> StepResult[DiarizeChunkRecord]:
    """The ``diarize_chunk`` step: keyed by the chunk, its spans and the diarizer."""
    chunk = job.chunk

    def compute(step: Step) -> JsonObject:
        with step.local(job.asr_audio_uri) as path:
            audio = read_wav_16k_mono(path, chunk.start, chunk.end)
        result = model.diarize(audio, [(s, e) for _, s, e in job.spans], offset=chunk.start)
        return {
            "index": chunk.index,
            "segment_ids": [sid for sid, _, _ in job.spans],
            "labels": [int(x) for x in result.labels],
            "embeddings": [[round(float(v), 6) for v in row] for row in result.embeddings],
        }

    inputs = {
        "upstream": job.upstream, "chunk": chunk.to_json(), "spans": job.spans, "provider": model.describe(),
        "code": CODE_VERSION,
    }  # fmt: skip
    return run_step(storage, "diarize_chunk", inputs=inputs, compute=compute, record=DiarizeChunkRecord)


PREVIEW = (
    ("start", lambda s: f"{s['start']:.2f}", True),
    ("end", lambda s: f"{s['end']:.2f}", True),
    ("speaker", lambda s: s["speaker"], False),
    ("text", lambda s: s["text"], False),
)


def assign_speakers(
    transcript: Stored, chunks: Sequence[ChunkLabels | Mapping[str, Any]], match_threshold: float
) -> tuple[list[Speaker], list[SpeakerSegment], list[list[float]]]:
    """Global speakers ("S1" speaks first) for every transcript segment, their totals and their
    embeddings: the chunks' local speakers matched across chunks (Hungarian), then numbered by
    first appearance. ``transcript`` and ``chunks`` may be records or their stored form."""
    from dubbing_pipeline.speakers import clustering  # lazy: scipy takes 0.7 s to import

    ordered = sorted(
        (ChunkLabels.model_validate(c, from_attributes=True) for c in chunks), key=lambda c: c.index
    )
    global_ids, global_embs = clustering.assign_global(
        [np.asarray(c.embeddings, dtype=np.float64) for c in ordered], match_threshold
    )
    by_segment = {
        sid: mapping[local]
        for chunk, mapping in zip(ordered, global_ids, strict=True)
        for sid, local in zip(chunk.segment_ids, chunk.labels, strict=True)
    }
    texts = [Segment.model_validate(seg, from_attributes=True) for seg in transcript["segments"]]
    spoken = [s for s in texts if s.id in by_segment]
    raw = [by_segment[s.id] for s in spoken]
    relabelled = clustering.relabel_by_first_appearance(raw, [s.start for s in spoken])
    segments = [
        SpeakerSegment(id=s.id, start=s.start, end=s.end, speaker=f"S{new + 1}", text=s.text)
        for s, new in zip(spoken, relabelled, strict=True)
    ]
    numbered = sorted(dict(zip(raw, relabelled, strict=True)).items(), key=lambda kv: kv[1])
    speakers = [_speaker(f"S{new + 1}", segments) for _, new in numbered]
    embeddings = [[round(float(v), 6) for v in global_embs[old]] for old, _ in numbered]
    return speakers, segments, embeddings


def _speaker(name: str, segments: Sequence[SpeakerSegment]) -> Speaker:
    mine = [s for s in segments if s.speaker == name]
    return Speaker(id=name, segments=len(mine), seconds=round(sum(s.end - s.start for s in mine), 3))


def speakers_record(
    transcript: TranscriptRecord, steps: Sequence[DiarizeChunkRecord], match: float, provider: JsonObject
) -> SpeakersRecord:
    """The video's speakers from every chunk's, keyed by the chunks' records and the match threshold."""
    speakers, segments, embeddings = assign_speakers(transcript, steps, match)
    return SpeakersRecord(
        schema_version=SpeakersRecord.SCHEMA_VERSION,
        cache_key=cache_key(
            "speakers", chunks=sorted(s.cache_key for s in steps), match=match, code=CODE_VERSION
        ),
        speakers=speakers,
        speaker_embeddings=embeddings,
        segments=segments,
        provider=provider,
    )


@dg.op(tags={"stage": "speakers"})
def assemble_speakers(
    diarizer: DiarizerResource,
    speech_segments: SpeechSegmentsRecord,
    transcript: TranscriptRecord,
    chunks: list[DiarizedChunk],
) -> dg.Output[SpeakersRecord]:
    """Match the chunks' speakers across the video; the stage's output."""
    timer = Timer()
    with classified("speakers"):
        settings = diarizer.settings()
        record = speakers_record(
            transcript, [c.step for c in chunks], settings.speaker_match_sim, diarizer.get().describe()
        )
    return stage_output(
        record,
        upstream={"speech_segments": speech_segments, "transcript": transcript},
        code_version=stage_code("speakers", settings),
        seconds=sum(c.seconds for c in chunks) + timer.seconds,
        cached=all(c.cached for c in chunks),
        media_seconds=speech_segments.duration,
        provider=record.provider,
        counts={"speakers": len(record.speakers), "segments": len(record.segments), "chunks": len(chunks)},
        preview=preview_table(PREVIEW, [s.to_json() for s in record.segments], limit=60),
    )


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``speakers`` graph asset; its chunk steps go to the GPU pool where ``settings`` say so."""
    chunk_op = model_op(diarize_chunk, settings, stage="speakers", placement="speakers")

    def speakers(speech_segments: SpeechSegmentsRecord, transcript: TranscriptRecord) -> Any:
        jobs = plan_diarization(speech_segments, transcript)
        return assemble_speakers(speech_segments, transcript, jobs.map(chunk_op).collect())

    return stage_asset(
        speakers,
        graph=True,
        kinds={"onnx"},
        description="Who speaks each segment: embeddings + complete linkage per chunk, Hungarian matching "
        "across chunks.",
    )


speakers = build(Settings())  # the embedded default; build_definitions builds its own
