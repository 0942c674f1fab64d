"""``speakers``: diarization per chunk (fan-out), then one global speaker set (Hungarian matching)."""

from typing import Any

import dagster as dg

from dubbing_pipeline.cache import StepCache, scratch
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.orchestration.partitions import videos
from dubbing_pipeline.orchestration.placement import DEPLOYED, gpu_op_tags, gpu_pool
from dubbing_pipeline.orchestration.resources import DiarizerResource, StorageResource
from dubbing_pipeline.orchestration.stage import Timer, classified, stage_metadata

CODE_VERSION = "speakers-1"
RETRY = dg.RetryPolicy(max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL)


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


@dg.op(
    retry_policy=RETRY,
    tags={"stage": "speakers", **gpu_op_tags(DEPLOYED, "speakers")},
    pool=gpu_pool(DEPLOYED, "speakers"),
)
def diarize_chunk(
    context: dg.OpExecutionContext, storage: StorageResource, diarizer: DiarizerResource, job: dict[str, Any]
) -> dict[str, Any]:
    """Local speakers of one chunk and their embeddings (cached)."""
    from dubbing_pipeline.segments.vad import read_wav_16k_mono

    timer = Timer()
    with classified("speakers"):
        store = storage.get()
        model = diarizer.get()
        chunk = job["chunk"]
        key = cache_key(
            "diarize_chunk", upstream=job["upstream"], chunk=chunk, spans=job["spans"],
            provider=model.describe(), code=CODE_VERSION,
        )  # fmt: skip
        cache = StepCache(store, "diarize_chunk")
        hit = cache.get(key)
        if hit is not None:
            return {**hit, "cached": True, "seconds": timer.seconds}
        with scratch("diarize", storage.work_dir or None) as tmp:
            with store.open_local(store.key_of(job["asr_audio_uri"]), tmp) as path:
                audio = read_wav_16k_mono(path, chunk["start"], chunk["end"])
        result = model.diarize(
            audio, [(float(s), float(e)) for _, s, e in job["spans"]], offset=chunk["start"]
        )
        record = {
            "cache_key": key,
            "index": chunk["index"],
            "segment_ids": [sid for sid, _, _ in job["spans"]],
            "labels": [int(x) for x in result.labels],
            "embeddings": [[round(float(v), 6) for v in row] for row in result.embeddings],
        }
        cache.put(key, record)
    return {**record, "cached": False, "seconds": timer.seconds}


def _preview(segments: list[dict[str, Any]], limit: int = 60) -> str:
    rows = ["| start | end | speaker | text |", "|---:|---:|---|---|"]
    for seg in segments[:limit]:
        text = seg["text"].replace("|", "\\|")
        rows.append(f"| {seg['start']:.2f} | {seg['end']:.2f} | {seg['speaker']} | {text} |")
    if len(segments) > limit:
        rows.append(f"| … | … | … | {len(segments) - limit} more |")
    return "\n".join(rows)


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
        speakers, segments, embeddings = assign_speakers(transcript, chunks, diarizer.speaker_match_sim)
        provider = diarizer.get().describe()
        key = cache_key(
            "speakers", chunks=sorted(r["cache_key"] for r in chunks), match=diarizer.speaker_match_sim,
            code=CODE_VERSION,
        )  # fmt: skip
        record = {
            "cache_key": key,
            "speakers": speakers,
            "speaker_embeddings": embeddings,
            "segments": segments,
            "provider": provider,
        }
    compute = sum(float(r["seconds"]) for r in chunks)
    return dg.Output(
        record,
        metadata=stage_metadata(
            seconds=compute + timer.seconds,
            media_seconds=float(speech_segments["duration"]),
            cached=all(r["cached"] for r in chunks),
            cache_key=key,
            provider=provider,
            counts={"speakers": len(speakers), "segments": len(segments), "chunks": len(chunks)},
            preview=_preview(segments),
        ),
    )


@dg.graph_asset(
    partitions_def=videos,
    code_version=CODE_VERSION,
    group_name="source_half",
    kinds={"onnx"},
    description="Who speaks each segment: embeddings + complete linkage per chunk, Hungarian matching "
    "across chunks.",
)
def speakers(speech_segments: dict[str, Any], transcript: dict[str, Any]) -> Any:
    jobs = plan_diarization(speech_segments, transcript)
    results = jobs.map(diarize_chunk)
    return assemble_speakers(speech_segments, transcript, results.collect())
