"""``audio_stems``: the full-band mix split into vocals and background, sample-aligned."""

from typing import Any

import dagster as dg

from dubbing_pipeline.errors import ConfigurationError, ProviderError
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.orchestration.kit import Step, StepResult, classified, run_step, stage_output
from dubbing_pipeline.orchestration.partitions import videos
from dubbing_pipeline.orchestration.placement import gpu_op_tags, gpu_pool
from dubbing_pipeline.orchestration.resources import SeparatorResource, StorageResource
from dubbing_pipeline.settings import Settings

CODE_VERSION = recipe("audio_stems").code[0]
BLOCK_SECONDS = 60.0
OVERLAP_SECONDS = 1.0


def separate(
    storage_res: StorageResource, separator_res: SeparatorResource, source: dict[str, Any]
) -> tuple[StepResult, dict[str, Any]]:
    """The vocals and background stems of the source's full-band audio (cached)."""
    from dubbing_pipeline.audio_stems.providers import describe_separator

    provider = describe_separator(separator_res.settings())  # no model load for a cache hit

    def compute(step: Step) -> dict[str, Any]:
        from dubbing_pipeline.audio_stems.core import separate_file

        separator = separator_res.get()
        if separator.describe() != provider:
            raise ProviderError(
                "the loaded separator does not match its fingerprint (package changed mid-run?)"
            )
        if separator.sample_rate != source["audio_rate"]:
            raise ConfigurationError(
                f"separator wants {separator.sample_rate} Hz, source audio is {source['audio_rate']} Hz"
            )
        with step.local(source["audio_uri"]) as mix:
            vocals, background = step.tmp / "vocals.wav", step.tmp / "background.wav"
            stats = separate_file(
                mix, vocals, background, separator.separate, separator.sample_rate,
                block_seconds=BLOCK_SECONDS, overlap_seconds=OVERLAP_SECONDS,
            )  # fmt: skip
        return {
            "sample_rate": stats["sample_rate"],
            "frames": stats["frames"],
            "channels": stats["channels"],
            "mix_uri": source["audio_uri"],
            "vocals_uri": step.put("vocals.wav", vocals),
            "background_uri": step.put("background.wav", background),
            "provider": provider,
        }

    inputs = {
        "upstream": source["cache_key"], "provider": provider, "code": CODE_VERSION,
        "block": BLOCK_SECONDS, "overlap": OVERLAP_SECONDS,
    }  # fmt: skip
    return run_step(storage_res, "stems", inputs=inputs, compute=compute), provider


def build_audio_stems(settings: Settings) -> dg.AssetsDefinition:
    """The ``audio_stems`` asset, placed on the GPU pool where ``settings`` run a GPU separator."""

    @dg.asset(
        name="audio_stems",
        partitions_def=videos,
        code_version=CODE_VERSION,
        group_name="source_half",
        kinds={"pytorch"},
        op_tags=gpu_op_tags(settings, "stems"),
        pool=gpu_pool(settings, "stems"),
        description="Vocals and background stems from the full-band audio (Spleeter on CPU, Demucs on GPU).",
    )
    def audio_stems(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        separator: SeparatorResource,
        source_video: dict[str, Any],
    ) -> dg.Output[dict[str, Any]]:
        return stems_output(storage, separator, source_video)

    return audio_stems


def stems_output(
    storage: StorageResource, separator: SeparatorResource, source_video: dict[str, Any]
) -> dg.Output[dict[str, Any]]:
    with classified("audio_stems"):
        result, provider = separate(storage, separator, source_video)
    record = result.record
    return stage_output(
        record,
        upstream={"source_video": source_video},
        code_version=storage.code_version("audio_stems"),
        seconds=result.seconds,
        cached=result.cached,
        media_seconds=source_video["duration"],
        provider=provider,
        counts={"frames": int(record["frames"]), "sample_rate": int(record["sample_rate"])},
    )


audio_stems = build_audio_stems(Settings())  # the embedded default; build_definitions builds its own
