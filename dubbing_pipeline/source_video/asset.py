"""``source_video``: probe, validate and hash the upload; decode its full-band audio once."""

from pathlib import Path
from typing import Any

import dagster as dg
import soundfile as sf

from dubbing_pipeline.cache import scratch
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.hashing import sha256_file
from dubbing_pipeline.media import extract_audio, ffprobe
from dubbing_pipeline.orchestration.kit import Step, StepResult, classified, run_step, stage_output
from dubbing_pipeline.orchestration.partitions import videos
from dubbing_pipeline.orchestration.registry import fetch_source, lookup_video
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.source_video.core import check_decoded_length, parse_probe

CODE_VERSION = recipe("source_video").code[0]
FULL_BAND_RATE = 44100  # the separators' native rate; never the 16 kHz ASR copy
FULL_BAND_CHANNELS = 2


def ingest(storage_res: StorageResource, video_id: str) -> StepResult:
    """Hash, probe and decode one registered video; cached by content hash."""
    entry = lookup_video(storage_res.get(), video_id)
    with scratch("source", storage_res.work_dir or None) as tmp:
        local = fetch_source(entry["source_uri"], tmp, s3_endpoint_url=storage_res.s3_endpoint_url)
        sha = sha256_file(local)

        def compute(step: Step) -> dict[str, Any]:
            info = parse_probe(ffprobe(local))
            audio = step.tmp / "audio.wav"
            extract_audio(local, audio, sample_rate=FULL_BAND_RATE, channels=FULL_BAND_CHANNELS)
            frames = sf.info(str(audio)).frames
            check_decoded_length(info, frames / FULL_BAND_RATE)
            return {
                "sha256": sha,
                "info": info.to_dict(),
                "duration": info.duration,
                "media_uri": step.put("source" + media_suffix(local), local),
                "audio_uri": step.put("audio.wav", audio),
                "audio_frames": frames,
                "audio_rate": FULL_BAND_RATE,
            }

        inputs = {"sha256": sha, "code": CODE_VERSION, "rate": FULL_BAND_RATE}
        result = run_step(storage_res, "source", inputs=inputs, compute=compute)
    # the registered object version (S3 ETag, inbox sha256, catalog size+mtime) it was made from
    fingerprint = entry.get("fingerprint")
    result.record = {
        **result.record, "video_id": video_id, "source_uri": entry["source_uri"],
        "source_fingerprint": fingerprint,
    }  # fmt: skip
    return result


def media_suffix(path: str | Path) -> str:
    """The file's video container suffix, or ``.bin`` for anything else."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in (".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi") else ".bin"


@dg.asset(
    partitions_def=videos,
    code_version=CODE_VERSION,
    group_name="source_half",
    kinds={"ffmpeg"},
    description="The uploaded video: probed, validated and content-hashed; full-band audio decoded once.",
)
def source_video(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output[dict[str, Any]]:
    with classified("source_video"):
        result = ingest(storage, context.partition_key)
    record, info = result.record, result.record["info"]
    preview = (
        f"| duration | fps | size | rotation | audio |\n|---|---|---|---|---|\n"
        f"| {info['duration']:.2f} s | {info['fps']:.3f}{' (VFR)' if info['variable_frame_rate'] else ''} "
        f"| {info['width']}×{info['height']} | {info['rotation']}° "
        f"| {info['audio_codec']} {info['sample_rate']} Hz × {info['channels']} |"
    )
    return stage_output(
        record,
        upstream={"source": {"cache_key": record.get("source_fingerprint") or record["sha256"]}},
        code_version=storage.code_version("source_video"),
        seconds=result.seconds,
        cached=result.cached,
        media_seconds=record["duration"],
        provider={"name": "ffmpeg", "model": "ffprobe"},
        preview=preview,
        extra={
            "sha256": dg.MetadataValue.text(record["sha256"]),
            "duration": dg.MetadataValue.float(record["duration"]),
        },
    )
