"""``audio_stems``: the full-band mix split into vocals and background, sample-aligned."""

import dagster as dg

from dubbing_pipeline.audio_stems.core import separate_file
from dubbing_pipeline.audio_stems.providers import describe_separator
from dubbing_pipeline.audio_stems.records import AudioStemsRecord
from dubbing_pipeline.audio_stems.separator import Separator
from dubbing_pipeline.errors import ConfigurationError, ProviderError
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.orchestration.kit import (
    Step,
    StepResult,
    classified,
    run_step,
    stage_asset,
    stage_output,
)
from dubbing_pipeline.orchestration.resources import SeparatorResource, StorageResource
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.records import SourceVideoRecord

CODE_VERSION = recipe("audio_stems").code[0]
BLOCK_SECONDS = 60.0
OVERLAP_SECONDS = 1.0


def separate(
    storage_res: StorageResource, separator_res: SeparatorResource, source: SourceVideoRecord
) -> tuple[StepResult[AudioStemsRecord], JsonObject]:
    """The vocals and background stems of the source's full-band audio (cached)."""
    provider = describe_separator(separator_res.settings())  # no model load for a cache hit

    def compute(step: Step) -> dict[str, object]:
        return separate_stems(step, loaded_separator(separator_res, provider, source.audio_rate), source)

    inputs = {
        "upstream": source.cache_key, "provider": provider, "code": CODE_VERSION,
        "block": BLOCK_SECONDS, "overlap": OVERLAP_SECONDS,
    }  # fmt: skip
    result = run_step(storage_res, "stems", inputs=inputs, compute=compute, record=AudioStemsRecord)
    return result, provider


def loaded_separator(separator_res: SeparatorResource, provider: JsonObject, audio_rate: int) -> Separator:
    """The configured separator, checked to be the one ``provider`` describes and to take the
    source's full-band rate."""
    separator: Separator = separator_res.get()
    if separator.describe() != provider:
        raise ProviderError("the loaded separator does not match its fingerprint (package changed mid-run?)")
    if separator.sample_rate != audio_rate:
        raise ConfigurationError(
            f"separator wants {separator.sample_rate} Hz, source audio is {audio_rate} Hz"
        )
    return separator


def separate_stems(step: Step, separator: Separator, source: SourceVideoRecord) -> dict[str, object]:
    """The ``stems`` step's fields: both stems streamed to disk block by block, then stored."""
    with step.local(source.audio_uri) as mix:
        vocals, background = step.tmp / "vocals.wav", step.tmp / "background.wav"
        stats = separate_file(
            mix, vocals, background, separator.separate, separator.sample_rate,
            block_seconds=BLOCK_SECONDS, overlap_seconds=OVERLAP_SECONDS,
        )  # fmt: skip
    return {
        "sample_rate": stats["sample_rate"],
        "frames": stats["frames"],
        "channels": stats["channels"],
        "mix_uri": source.audio_uri,
        "vocals_uri": step.put("vocals.wav", vocals),
        "background_uri": step.put("background.wav", background),
        "provider": separator.describe(),
    }


def stems_output(
    storage: StorageResource, separator: SeparatorResource, source_video: SourceVideoRecord
) -> dg.Output[AudioStemsRecord]:
    """The stems as the asset's output."""
    with classified("audio_stems"):
        result, provider = separate(storage, separator, source_video)
    record = result.record
    return stage_output(
        record,
        upstream={"source_video": source_video},
        code_version=storage.code_version("audio_stems"),
        seconds=result.seconds,
        cached=result.cached,
        media_seconds=source_video.duration,
        provider=provider,
        counts={"frames": record.frames, "sample_rate": record.sample_rate},
    )


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``audio_stems`` asset, placed on the GPU pool where ``settings`` run a GPU separator."""

    def audio_stems(
        storage: StorageResource, separator: SeparatorResource, source_video: SourceVideoRecord
    ) -> dg.Output[AudioStemsRecord]:
        return stems_output(storage, separator, source_video)

    return stage_asset(
        audio_stems,
        kinds={"pytorch"},
        description="Vocals and background stems from the full-band audio (Spleeter on CPU, Demucs on GPU).",
        settings=settings,
        placement="stems",
    )


audio_stems = build(Settings())  # the embedded default; build_definitions builds its own
