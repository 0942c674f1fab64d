"""``source_video``: probe, validate and hash the upload; decode its full-band audio once."""

from pathlib import Path
from typing import Any

import dagster as dg
import soundfile as sf

from dubbing_pipeline.cache import StepCache, scratch
from dubbing_pipeline.hashing import cache_key, sha256_file
from dubbing_pipeline.media import extract_audio, ffprobe
from dubbing_pipeline.orchestration.partitions import videos
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.orchestration.stage import Timer, classified, fetch_source, lookup_video, stage_metadata
from dubbing_pipeline.source.core import check_decoded_length, parse_probe

CODE_VERSION = "source-1"
FULL_BAND_RATE = 44100  # the separators' native rate; never the 16 kHz ASR copy
FULL_BAND_CHANNELS = 2


def ingest(storage_res: StorageResource, video_id: str) -> tuple[dict[str, Any], bool]:
    """Hash, probe and decode one registered video; cached by content hash."""
    storage = storage_res.get()
    entry = lookup_video(storage, video_id)
    with scratch("source", storage_res.work_dir or None) as tmp:
        local = fetch_source(entry["source_uri"], tmp, s3_endpoint_url=storage_res.s3_endpoint_url)
        sha = sha256_file(local)
        key = cache_key("source", sha256=sha, code=CODE_VERSION, rate=FULL_BAND_RATE)
        cache = StepCache(storage, "source")
        hit = cache.get(key)
        if hit is not None:
            return {**hit, "video_id": video_id, "source_uri": entry["source_uri"]}, True
        info = parse_probe(ffprobe(local))
        audio = tmp / "audio.wav"
        extract_audio(local, audio, sample_rate=FULL_BAND_RATE, channels=FULL_BAND_CHANNELS)
        frames = sf.info(str(audio)).frames
        check_decoded_length(info, frames / FULL_BAND_RATE)
        suffix = (
            Path(local).suffix.lower()
            if Path(local).suffix.lower() in (".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi")
            else ".bin"
        )
        record = {
            "sha256": sha,
            "cache_key": key,
            "info": info.to_dict(),
            "duration": info.duration,
            "media_uri": cache.put_artifact(key, "source" + suffix, local),
            "audio_uri": cache.put_artifact(key, "audio.wav", audio),
            "audio_frames": frames,
            "audio_rate": FULL_BAND_RATE,
        }
        cache.put(key, record)
        return {**record, "video_id": video_id, "source_uri": entry["source_uri"]}, False


@dg.asset(
    partitions_def=videos,
    code_version=CODE_VERSION,
    group_name="source_half",
    kinds={"ffmpeg"},
    description="The uploaded video: probed, validated and content-hashed; full-band audio decoded once.",
)
def source_video(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output[dict[str, Any]]:
    timer = Timer()
    with classified("source_video"):
        record, cached = ingest(storage, context.partition_key)
    info = record["info"]
    preview = (
        f"| duration | fps | size | rotation | audio |\n|---|---|---|---|---|\n"
        f"| {info['duration']:.2f} s | {info['fps']:.3f}{' (VFR)' if info['variable_frame_rate'] else ''} "
        f"| {info['width']}×{info['height']} | {info['rotation']}° "
        f"| {info['audio_codec']} {info['sample_rate']} Hz × {info['channels']} |"
    )
    return dg.Output(
        record,
        data_version=dg.DataVersion(record["sha256"]),
        metadata=stage_metadata(
            seconds=timer.seconds,
            media_seconds=record["duration"],
            cached=cached,
            cache_key=record["cache_key"],
            provider={"name": "ffmpeg", "model": "ffprobe"},
            preview=preview,
            extra={
                "sha256": dg.MetadataValue.text(record["sha256"]),
                "duration": dg.MetadataValue.float(record["duration"]),
            },
        ),
    )
