"""``speakers``: diarization per chunk (fan-out), then one global speaker set (Hungarian matching)."""

from typing import Any

import dagster as dg

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
from dubbing_pipeline.orchestration.resources import DiarizerResource, StorageResource
from dubbing_pipeline.settings import Settings

CODE_VERSION = recipe("speakers").code[0]


@dg.op(out=dg.DynamicOut(dict), tags={"stage": "speakers"})
def plan_diarization(speech_segments: dict[str, Any], transcript: dict[str, Any]) -> Any:
    """One job per chunk: the transcript segments whose midpoint lies in the chunk's core."""
    for chunk in speech_segments["chunks"]:
        spans = [
            [seg["id"], seg["start"], seg["end"]]
            for seg in transcript["segments"]
            if chunk["core_start"] <= (seg["start"] + seg["end"]) / 2 < chunk["core_end"]
        ]
        if spans:
            yield dg.DynamicOutput(
                {
                    "chunk": chunk,
                    "spans": spans,
                    "asr_audio_uri": speech_segments["asr_audio_uri"],
                    "upstream": [speech_segments["cache_key"], transcript["cache_key"]],
                },
                mapping_key=f"c{chunk['index']:04d}",
            )


def diarize_chunk(
    context: dg.OpExecutionContext, storage: StorageResource, diarizer: DiarizerResource, job: dict[str, Any]
) -> dict[str, Any]:
    """Local speakers of one chunk and their embeddings (cached)."""
    with classified("speakers"):
        result = diarize_one(storage, diarizer, job)
    return {**result.record, "cached": result.cached, "seconds": result.seconds}


def diarize_one(
    storage_res: StorageResource, diarizer_res: DiarizerResource, job: dict[str, Any]
) -> StepResult:
    model = diarizer_res.get()
    chunk = job["chunk"]

    def compute(step: Step) -> dict[str, Any]:
        from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono

        with step.local(job["asr_audio_uri"]) as path:
            audio = read_wav_16k_mono(path, chunk["start"], chunk["end"])
        spans = [(float(s), float(e)) for _, s, e in job["spans"]]
        result = model.diarize(audio, spans, offset=chunk["start"])
        return {
            "index": chunk["index"],
            "segment_ids": [sid for sid, _, _ in job["spans"]],
            "labels": [int(x) for x in result.labels],
            "embeddings": [[round(float(v), 6) for v in row] for row in result.embeddings],
        }

    inputs = {
        "upstream": job["upstream"], "chunk": chunk, "spans": job["spans"], "provider": model.describe(),
        "code": CODE_VERSION,
    }  # fmt: skip
    return run_step(storage_res, "diarize_chunk", inputs=inputs, compute=compute)


PREVIEW = (
    ("start", lambda s: f"{s['start']:.2f}", True),
    ("end", lambda s: f"{s['end']:.2f}", True),
    ("speaker", lambda s: s["speaker"], False),
    ("text", lambda s: s["text"], False),
)


def assign_speakers(
    transcript: dict[str, Any], chunks: list[dict[str, Any]], match_threshold: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[list[float]]]:
    """Global speakers ("S1" speaks first) for every transcript segment."""
    import numpy as np

    from dubbing_pipeline.speakers.clustering import assign_global, relabel_by_first_appearance

    ordered = sorted(chunks, key=lambda r: r["index"])
    global_ids, global_embs = assign_global(
        [np.asarray(r["embeddings"], dtype=np.float64) for r in ordered], match_threshold
    )
    by_segment: dict[str, int] = {}
    for record, mapping in zip(ordered, global_ids, strict=True):
        for sid, local in zip(record["segment_ids"], record["labels"], strict=True):
            by_segment[sid] = mapping[local]
    segs = [s for s in transcript["segments"] if s["id"] in by_segment]
    raw = [by_segment[s["id"]] for s in segs]
    relabelled = relabel_by_first_appearance(raw, [s["start"] for s in segs])
    order = {old: new for old, new in zip(raw, relabelled, strict=True)}
    segments = [
        {"id": s["id"], "start": s["start"], "end": s["end"], "speaker": f"S{new + 1}", "text": s["text"]}
        for s, new in zip(segs, relabelled, strict=True)
    ]
    speakers = []
    embeddings: list[list[float]] = []
    for old, new in sorted(order.items(), key=lambda kv: kv[1]):
        mine = [s for s in segments if s["speaker"] == f"S{new + 1}"]
        speakers.append(
            {
                "id": f"S{new + 1}",
                "segments": len(mine),
                "seconds": round(sum(s["end"] - s["start"] for s in mine), 3),
            }
        )
        embeddings.append([round(float(v), 6) for v in global_embs[old]])
    return speakers, segments, embeddings


@dg.op(tags={"stage": "speakers"})
def assemble_speakers(
    diarizer: DiarizerResource,
    speech_segments: dict[str, Any],
    transcript: dict[str, Any],
    chunks: list[dict[str, Any]],
) -> dg.Output[dict[str, Any]]:
    timer = Timer()
    with classified("speakers"):
        match = diarizer.settings().speaker_match_sim
        speakers, segments, embeddings = assign_speakers(transcript, chunks, match)
        provider = diarizer.get().describe()
        key = cache_key(
            "speakers", chunks=sorted(r["cache_key"] for r in chunks), match=match,
            code=CODE_VERSION,
        )  # fmt: skip
        record = {
            "cache_key": key,
            "speakers": speakers,
            "speaker_embeddings": embeddings,
            "segments": segments,
            "provider": provider,
        }
    return stage_output(
        record,
        upstream={"speech_segments": speech_segments, "transcript": transcript},
        code_version=stage_code("speakers", diarizer.settings()),
        seconds=sum(float(r["seconds"]) for r in chunks) + timer.seconds,
        cached=all(r["cached"] for r in chunks),
        media_seconds=float(speech_segments["duration"]),
        provider=provider,
        counts={"speakers": len(speakers), "segments": len(segments), "chunks": len(chunks)},
        preview=preview_table(PREVIEW, segments, limit=60),
    )


def build_speakers(settings: Settings) -> dg.AssetsDefinition:
    """The ``speakers`` graph asset; its chunk steps go to the GPU pool where ``settings`` say so."""
    chunk_op = model_op(diarize_chunk, settings, stage="speakers", placement="speakers")

    @dg.graph_asset(
        name="speakers",
        partitions_def=videos,
        code_version=CODE_VERSION,
        group_name="source_half",
        kinds={"onnx"},
        description="Who speaks each segment: embeddings + complete linkage per chunk, Hungarian matching "
        "across chunks.",
    )
    def speakers(speech_segments: dict[str, Any], transcript: dict[str, Any]) -> Any:
        jobs = plan_diarization(speech_segments, transcript)
        return assemble_speakers(speech_segments, transcript, jobs.map(chunk_op).collect())

    return speakers


speakers = build_speakers(Settings())  # the embedded default; build_definitions builds its own
