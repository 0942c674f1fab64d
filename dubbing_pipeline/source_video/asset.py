"""``source_video``: probe, validate and hash the upload; decode its full-band audio once."""

from pathlib import Path

import dagster as dg
import soundfile as sf

from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.common.media import extract_audio, ffprobe
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.orchestration.cache import scratch
from dubbing_pipeline.orchestration.kit import (
    Step,
    StepResult,
    classified,
    run_step,
    stage_asset,
    stage_output,
)
from dubbing_pipeline.orchestration.registry import fetch_source, lookup_video
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.core import check_decoded_length, parse_probe
from dubbing_pipeline.source_video.records import IngestRecord, SourceInfo, SourceVideoRecord

CODE_VERSION = recipe("source_video").code[0]
FULL_BAND_RATE = 44100  # the separators' native rate; never the 16 kHz ASR copy
FULL_BAND_CHANNELS = 2
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi")


def ingest(storage_res: StorageResource, video_id: str) -> StepResult[SourceVideoRecord]:
    """Hash, probe and decode one registered video; cached by content hash."""
    entry = lookup_video(storage_res.get(), video_id)
    with scratch("source", storage_res.work_dir or None) as tmp:
        local = fetch_source(entry["source_uri"], tmp, s3_endpoint_url=storage_res.s3_endpoint_url)
        sha = sha256_file(local)

        def compute(step: Step) -> dict[str, object]:
            return probe_and_decode(step, Path(local), sha)

        inputs = {"sha256": sha, "code": CODE_VERSION, "rate": FULL_BAND_RATE}
        result = run_step(storage_res, "source", inputs=inputs, compute=compute, record=IngestRecord)
    record = SourceVideoRecord(
        **result.record.model_dump(), video_id=video_id, source_uri=entry["source_uri"],
        # the registered object version (S3 ETag, inbox sha256, catalog size+mtime) it was made from
        source_fingerprint=entry.get("fingerprint"),
    )  # fmt: skip
    return StepResult(record, result.cached, result.seconds)


def probe_and_decode(step: Step, local: Path, sha: str) -> dict[str, object]:
    """The ``source`` step's fields: the upload probed and stored, its full-band audio decoded."""
    info = parse_probe(ffprobe(local))
    audio = step.tmp / "audio.wav"
    extract_audio(local, audio, sample_rate=FULL_BAND_RATE, channels=FULL_BAND_CHANNELS)
    frames = sf.info(str(audio)).frames
    check_decoded_length(info, frames / FULL_BAND_RATE)
    return {
        "sha256": sha,
        "info": info,
        "duration": info.duration,
        "media_uri": step.put("source" + media_suffix(local), local),
        "audio_uri": step.put("audio.wav", audio),
        "audio_frames": frames,
        "audio_rate": FULL_BAND_RATE,
    }


def media_suffix(path: str | Path) -> str:
    """The file's video container suffix, or ``.bin`` for anything else."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else ".bin"


def probe_preview(info: SourceInfo) -> str:
    """The probe as a one-row markdown table for the UI."""
    return (
        f"| duration | fps | size | rotation | audio |\n|---|---|---|---|---|\n"
        f"| {info.duration:.2f} s | {info.fps:.3f}{' (VFR)' if info.variable_frame_rate else ''} "
        f"| {info.width}×{info.height} | {info.rotation}° "
        f"| {info.audio_codec} {info.sample_rate} Hz × {info.channels} |"
    )


def source_output(storage: StorageResource, video_id: str) -> dg.Output[SourceVideoRecord]:
    """The ingested video as the asset's output, with its probe as the preview."""
    with classified("source_video"):
        result = ingest(storage, video_id)
    record = result.record
    return stage_output(
        record,
        upstream={"source": {"cache_key": record.source_fingerprint or record.sha256}},
        code_version=storage.code_version("source_video"),
        seconds=result.seconds,
        cached=result.cached,
        media_seconds=record.duration,
        provider={"name": "ffmpeg", "model": "ffprobe"},
        preview=probe_preview(record.info),
        extra={
            "sha256": dg.MetadataValue.text(record.sha256),
            "duration": dg.MetadataValue.float(record.duration),
        },
    )


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``source_video`` asset."""

    def source_video(
        context: dg.AssetExecutionContext, storage: StorageResource
    ) -> dg.Output[SourceVideoRecord]:
        return source_output(storage, context.partition_key)

    return stage_asset(
        source_video,
        kinds={"ffmpeg"},
        description="The uploaded video: probed, validated and content-hashed; full-band audio decoded once.",
        settings=settings,
    )


source_video = build(Settings())  # the embedded default; build_definitions builds its own
