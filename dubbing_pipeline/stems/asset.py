"""``audio_stems``: the full-band mix split into vocals and background, sample-aligned."""

from typing import Any

import dagster as dg

from dubbing_pipeline.cache import StepCache, scratch
from dubbing_pipeline.errors import ConfigurationError, ProviderError
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.orchestration.partitions import videos
from dubbing_pipeline.orchestration.placement import DEPLOYED, gpu_op_tags, gpu_pool
from dubbing_pipeline.orchestration.resources import SeparatorResource, StorageResource
from dubbing_pipeline.orchestration.stage import Timer, classified, stage_metadata

CODE_VERSION = "stems-1"
BLOCK_SECONDS = 60.0
OVERLAP_SECONDS = 1.0


def separate(
    storage_res: StorageResource, separator_res: SeparatorResource, source: dict[str, Any]
) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    from dubbing_pipeline.stems.core import separate_file
    from dubbing_pipeline.stems.providers import describe_separator

    storage = storage_res.get()
    provider = describe_separator(separator_res.settings())  # no model load for a cache hit
    key = cache_key(
        "stems", upstream=source["cache_key"], provider=provider, code=CODE_VERSION,
        block=BLOCK_SECONDS, overlap=OVERLAP_SECONDS,
    )  # fmt: skip
    cache = StepCache(storage, "stems")
    hit = cache.get(key)
    if hit is not None:
        return hit, True, provider
    separator = separator_res.get()
    if separator.describe() != provider:
        raise ProviderError("the loaded separator does not match its fingerprint (package changed mid-run?)")
    if separator.sample_rate != source["audio_rate"]:
        raise ConfigurationError(
            f"separator wants {separator.sample_rate} Hz, source audio is {source['audio_rate']} Hz"
        )
    with scratch("stems", storage_res.work_dir or None) as tmp:
        with storage.open_local(storage.key_of(source["audio_uri"]), tmp) as mix:
            vocals, background = tmp / "vocals.wav", tmp / "background.wav"
            stats = separate_file(
                mix, vocals, background, separator.separate, separator.sample_rate,
                block_seconds=BLOCK_SECONDS, overlap_seconds=OVERLAP_SECONDS,
            )  # fmt: skip
        record = {
            "cache_key": key,
            "sample_rate": stats["sample_rate"],
            "frames": stats["frames"],
            "channels": stats["channels"],
            "mix_uri": source["audio_uri"],
            "vocals_uri": cache.put_artifact(key, "vocals.wav", vocals),
            "background_uri": cache.put_artifact(key, "background.wav", background),
            "provider": provider,
        }
    return cache.put(key, record), False, provider


@dg.asset(
    partitions_def=videos,
    code_version=CODE_VERSION,
    group_name="source_half",
    kinds={"pytorch"},
    op_tags=gpu_op_tags(DEPLOYED, "stems"),
    pool=gpu_pool(DEPLOYED, "stems"),
    description="Vocals and background stems from the full-band audio (Spleeter on CPU, Demucs on GPU).",
)
def audio_stems(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    separator: SeparatorResource,
    source_video: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    timer = Timer()
    with classified("audio_stems"):
        record, cached, provider = separate(storage, separator, source_video)
    return dg.Output(
        record,
        metadata=stage_metadata(
            seconds=timer.seconds,
            media_seconds=source_video["duration"],
            cached=cached,
            cache_key=record["cache_key"],
            provider=provider,
            counts={"frames": int(record["frames"]), "sample_rate": int(record["sample_rate"])},
            extra={"upstream_cache_key": dg.MetadataValue.text(source_video["cache_key"])},
        ),
    )
