"""The Dagster code location: ``workspace.yaml`` loads ``defs`` from here."""

from __future__ import annotations

from typing import Any

import dagster as dg

from dubbing_pipeline import stages
from dubbing_pipeline.audio_stems.asset import build_audio_stems
from dubbing_pipeline.dub_mix.asset import dub_mix
from dubbing_pipeline.dubbed_speech.asset import build_dubbed_speech
from dubbing_pipeline.dubbed_video.asset import dubbed_video
from dubbing_pipeline.freshness import stage_codes
from dubbing_pipeline.lip_sync.asset import build_lip_sync
from dubbing_pipeline.orchestration.feedback_asset import feedback
from dubbing_pipeline.orchestration.io_manager import RecordIOManager
from dubbing_pipeline.orchestration.partitions import video_language, videos
from dubbing_pipeline.orchestration.resources import resources_from_settings
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.asset import source_video
from dubbing_pipeline.speakers.asset import build_speakers
from dubbing_pipeline.speech_segments.asset import speech_segments
from dubbing_pipeline.transcript.asset import build_transcript
from dubbing_pipeline.translation.asset import translation
from dubbing_pipeline.translation.edits_asset import edits
from dubbing_pipeline.up_to_date import up_to_date


def build_assets(settings: Settings) -> tuple[list[Any], list[Any]]:
    """Every stage's asset in pipeline order (``stages.STAGES``), placed as ``settings`` say and
    versioned by its recipe (``freshness``), then the ``edits`` and ``feedback`` source assets; and
    the asset checks that are definitions of their own."""
    lip_sync, lip_sync_succeeded = build_lip_sync(settings)
    built = {
        "source_video": source_video, "audio_stems": build_audio_stems(settings),
        "speech_segments": speech_segments, "transcript": build_transcript(settings),
        "speakers": build_speakers(settings), "translation": translation,
        "dubbed_speech": build_dubbed_speech(settings), "dub_mix": dub_mix, "lip_sync": lip_sync,
        "dubbed_video": dubbed_video,
    }  # fmt: skip
    codes = stage_codes(settings)  # each stage's code versions and recipe digest (``freshness``)
    placed = [
        built[name].map_asset_specs(lambda spec, code=codes[name]: spec.replace_attributes(code_version=code))
        for name in stages.STAGES
    ]
    return [*placed, edits, feedback], [lip_sync_succeeded]


source_half_job = dg.define_asset_job(
    "source_half",
    selection=dg.AssetSelection.assets(*stages.SOURCE_HALF),
    description="Understand one video: stems, speech, transcript and speakers.",
)

dub_job = dg.define_asset_job(
    "dub",
    selection=dg.AssetSelection.assets(*stages.TARGET_HALF),
    description="Dub one video into one language (its source half must be materialised).",
)


def executor_for(settings: Settings) -> Any:
    """In-process for the embedded default; one Kubernetes job per step in production."""
    if settings.deployment == "production":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return dg.in_process_executor


def automation_for(settings: Settings) -> tuple[list[Any], list[Any]]:
    """Sensors and schedules: drops (S3 in production, inbox embedded), the dub chain, the catalog."""
    from dubbing_pipeline.orchestration import catalog, sensors

    found: list[Any] = [sensors.build_dub_chain_sensor(source_half_job, dub_job)]
    if sensors.drops_enabled(settings):
        found.append(sensors.build_s3_drop_sensor(settings, source_half_job))
    if sensors.inbox_enabled(settings):
        found.append(sensors.build_inbox_sensor(settings, source_half_job))
    schedules: list[Any] = []
    if catalog.catalog_enabled(settings):
        schedules = catalog.build_catalog_schedules(
            settings, source_half_job, dub_job, lambda: build_definitions(settings).resolve_asset_graph()
        )
    return found, schedules


def resources_for(settings: Settings) -> dict[str, Any]:
    """The providers and storage from ``settings``, and the IO manager that stores records in that storage."""
    found = resources_from_settings(settings)
    return {**found, "io_manager": RecordIOManager(storage=found["storage"])}


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    automation_sensors, schedules = automation_for(settings)
    assets, checks = build_assets(settings)
    return dg.Definitions(
        assets=assets,
        jobs=[source_half_job, dub_job, up_to_date],
        sensors=automation_sensors,
        schedules=schedules,
        asset_checks=checks,
        resources=resources_for(settings),
        executor=executor_for(settings),
    )


defs = build_definitions()

__all__ = ["build_definitions", "defs", "video_language", "videos"]
