"""The Dagster code location: ``workspace.yaml`` loads ``defs`` from here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import dagster as dg

from dubbing_pipeline import stages
from dubbing_pipeline.audio_stems import asset as audio_stems
from dubbing_pipeline.dub_mix import asset as dub_mix
from dubbing_pipeline.dubbed_speech import asset as dubbed_speech
from dubbing_pipeline.dubbed_video import asset as dubbed_video
from dubbing_pipeline.freshness import stage_codes
from dubbing_pipeline.lip_sync import asset as lip_sync
from dubbing_pipeline.orchestration import catalog, quarantine, sensors
from dubbing_pipeline.orchestration.feedback_asset import feedback
from dubbing_pipeline.orchestration.io_manager import RecordIOManager
from dubbing_pipeline.orchestration.partitions import video_language, videos
from dubbing_pipeline.orchestration.resources import resources_from_settings, storage_resource
from dubbing_pipeline.orchestration.up_to_date import up_to_date
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video import asset as source_video
from dubbing_pipeline.speakers import asset as speakers
from dubbing_pipeline.speech_segments import asset as speech_segments
from dubbing_pipeline.transcript import asset as transcript
from dubbing_pipeline.translation import asset as translation
from dubbing_pipeline.translation.edits_asset import edits

STAGE_BUILDS: Final[Mapping[str, Callable[[Settings], dg.AssetsDefinition]]] = {
    "source_video": source_video.build, "audio_stems": audio_stems.build,
    "speech_segments": speech_segments.build, "transcript": transcript.build, "speakers": speakers.build,
    "translation": translation.build, "dubbed_speech": dubbed_speech.build, "dub_mix": dub_mix.build,
    "lip_sync": lip_sync.build, "dubbed_video": dubbed_video.build,
}  # fmt: skip
"""Each stage's declaration (``<stage>/asset.py``: ``build(settings)``, one ``kit.stage_asset``)."""

Asset = dg.AssetsDefinition | dg.SourceAsset


def _versioned(asset: dg.AssetsDefinition, code: str) -> dg.AssetsDefinition:
    """``asset`` with the effective code version of its stage (its recipe's, ``freshness``)."""
    return asset.map_asset_specs(lambda spec: spec.replace_attributes(code_version=code))


def build_assets(settings: Settings) -> tuple[list[Asset], list[dg.AssetChecksDefinition]]:
    """Every stage's asset in pipeline order (``stages.STAGES``), placed as ``settings`` say and
    versioned by its recipe (``freshness``), then the ``edits`` and ``feedback`` source assets; and
    the asset checks that are definitions of their own."""
    codes = stage_codes(settings)  # each stage's code versions and recipe digest (``freshness``)
    placed: list[Asset] = [_versioned(STAGE_BUILDS[name](settings), codes[name]) for name in stages.STAGES]
    checks = [*lip_sync.build_checks(settings), *quarantine.build_checks(settings)]
    return [*placed, edits, feedback], checks


source_half_job = dg.define_asset_job(
    "source_half",
    selection=dg.AssetSelection.assets(*stages.SOURCE_HALF) - quarantine.CHECKS,  # reported, not run
    description="Understand one video: stems, speech, transcript and speakers.",
)

dub_job = dg.define_asset_job(
    "dub",
    selection=dg.AssetSelection.assets(*stages.TARGET_HALF) - quarantine.CHECKS,
    description="Dub one video into one language (its source half must be materialised).",
)


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    """In-process for the embedded default; one Kubernetes job per step in production."""
    if settings.deployment == "production":
        from dagster_k8s import k8s_job_executor  # lazy: the production executor only

        # step pods: their own account (k8s/rbac.yaml: no Kubernetes rights, S3 through IRSA) and no
        # API token; run workers keep the launcher's "dagster" account, which launches them
        step_pods = {"service_account_name": "dubbing-step", "automount_service_account_token": False}
        executor: dg.ExecutorDefinition = k8s_job_executor.configured(
            {"step_k8s_config": {"pod_spec_config": step_pods}}
        )
        return executor
    return dg.in_process_executor


def automation_for(
    settings: Settings,
) -> tuple[list[dg.SensorDefinition], list[dg.ScheduleDefinition]]:
    """Sensors (and no schedules): drops (S3 in production, inbox embedded), the dub chain, the catalog."""
    found: list[dg.SensorDefinition] = [sensors.build_dub_chain_sensor(source_half_job, dub_job)]
    if sensors.drops_enabled(settings):
        found.append(sensors.build_s3_drop_sensor(settings, source_half_job))
    if sensors.inbox_enabled(settings):
        found.append(sensors.build_inbox_sensor(settings, source_half_job))
    if catalog.catalog_enabled(settings):
        found.append(
            catalog.build_catalog_sensor(
                settings, source_half_job, dub_job, lambda: build_definitions(settings).resolve_asset_graph()
            )
        )
    return found, []


def resources_for(settings: Settings) -> dict[str, dg.ConfigurableResource[Any] | RecordIOManager]:
    """The providers and storage from ``settings``, and the IO manager that stores records in that storage."""
    storage = storage_resource(settings)
    return {**resources_from_settings(settings, storage), "io_manager": RecordIOManager(storage=storage)}


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
