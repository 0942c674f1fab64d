"""The Dagster code location: ``workspace.yaml`` loads ``defs`` from here."""

from __future__ import annotations

from typing import Any

import dagster as dg

from dubbing_pipeline.lipsync.asset import lip_sync, lip_sync_succeeded, lipsync_resource
from dubbing_pipeline.mix.asset import dub_mix
from dubbing_pipeline.mux.asset import dubbed_video
from dubbing_pipeline.orchestration.partitions import video_language, videos
from dubbing_pipeline.orchestration.resources import resources_from_settings
from dubbing_pipeline.segments.asset import speech_segments
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source.asset import source_video
from dubbing_pipeline.speakers.asset import speakers
from dubbing_pipeline.speech.asset import dubbed_speech
from dubbing_pipeline.stems.asset import audio_stems
from dubbing_pipeline.transcript.asset import transcript
from dubbing_pipeline.translation.asset import translation

SOURCE_HALF = [source_video, audio_stems, speech_segments, transcript, speakers]
TARGET_HALF = [translation, dubbed_speech, dub_mix, lip_sync, dubbed_video]

source_half_job = dg.define_asset_job(
    "source_half",
    selection=dg.AssetSelection.assets(*SOURCE_HALF),
    description="Understand one video: stems, speech, transcript and speakers.",
)

dub_job = dg.define_asset_job(
    "dub",
    selection=dg.AssetSelection.assets(*TARGET_HALF),
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


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    automation_sensors, schedules = automation_for(settings)
    return dg.Definitions(
        assets=[*SOURCE_HALF, *TARGET_HALF],
        jobs=[source_half_job, dub_job],
        sensors=automation_sensors,
        schedules=schedules,
        asset_checks=[lip_sync_succeeded],
        resources={**resources_from_settings(settings), "lipsync": lipsync_resource(settings)},
        executor=executor_for(settings),
    )


defs = build_definitions()

__all__ = ["build_definitions", "defs", "video_language", "videos"]
