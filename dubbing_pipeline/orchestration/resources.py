"""Dagster resources: each wraps one provider family, configured from environment variables.

The storage and settings resources are light: every run, the CLI, the sensors and the schedules
use them. A provider resource builds its provider through the stages' factory table
(``orchestration.providers``), loaded the first time one is asked for.
"""

import functools
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import dagster as dg

from dubbing_pipeline.errors import InternalError
from dubbing_pipeline.freshness import effective_code, stage_digest
from dubbing_pipeline.settings import Settings, rows
from dubbing_pipeline.storage import MediaStorage, make_storage

if TYPE_CHECKING:
    from dubbing_pipeline.orchestration.providers import Providers


@functools.lru_cache(maxsize=8)
def _storage(url: str, endpoint: str, region: str) -> MediaStorage:
    return make_storage(url, s3_endpoint_url=endpoint or None, s3_region=region or None)


class SettingsResource(dg.ConfigurableResource[Any]):
    """Every setting of the settings table (``settings.py``); secrets as ``EnvVar`` fields.

    The provider resources below all read their settings from this one resource, so a provider
    sees exactly the settings the definitions were built with: a new row of the table reaches
    every resource, and nothing reverts to its default on the way.
    """

    # the rows' values by name (Dagster config has no union type for their str, int and float)
    values: dict[str, Any] = {}  # noqa: RUF012 (pydantic copies defaults)
    llm_api_key: str = ""  # secret rows are fields of their own (never in ``values``, shown as EnvVar)

    def settings(self) -> Settings:
        secrets = {row.name: getattr(self, row.name) for row in rows() if row.metadata["secret"]}
        return replace(Settings(), **{**self.values, **secrets})


class StorageResource(dg.ConfigurableResource[Any]):
    """Where media and records live: a directory or ``s3://bucket/prefix``; and, through the
    settings it carries, each stage's recipe digest (``freshness``) that keys its step caches."""

    url: str
    s3_endpoint_url: str = ""
    s3_region: str = ""
    work_dir: str = ""
    config: SettingsResource | None = None

    def get(self) -> MediaStorage:
        return _storage(self.url, self.s3_endpoint_url, self.s3_region)

    def recipe_digest(self, stage: str) -> str:
        """The digest of ``stage``'s identity under the settings in force (``freshness.stage_digest``)."""
        if self.config is None:
            raise InternalError(
                "a storage resource without settings cannot key a step (use storage_resource)"
            )
        return stage_digest(stage, self.config.settings())

    def code_version(self, stage: str) -> str:
        """``stage``'s effective code version now: what its materialisation's data version names."""
        return effective_code(stage, self.recipe_digest(stage))


def providers() -> type["Providers"]:
    """The stages' provider factories (``orchestration.providers``)."""
    from dubbing_pipeline.orchestration.providers import Providers  # lazy: provider modules load numpy, scipy

    return Providers


class ProviderResource(dg.ConfigurableResource[Any]):
    """A resource that builds one provider family from the settings table."""

    config: SettingsResource

    def settings(self) -> Settings:
        return self.config.settings()


class SeparatorResource(ProviderResource):
    """Voice/background separation (``DUBBING_SEPARATOR``)."""

    def get(self) -> Any:
        return providers().separator(self.settings())


class ASRResource(ProviderResource):
    """Speech recognition and voice activity (``DUBBING_ASR``, ``DUBBING_WHISPER_*``)."""

    def get(self) -> Any:
        return providers().asr(self.settings())


class DiarizerResource(ProviderResource):
    """Speaker diarization (``DUBBING_DIARIZER``, ``DUBBING_PYANNOTE_DIR``)."""

    def get(self) -> Any:
        return providers().diarizer(self.settings())


class TranslatorResource(ProviderResource):
    """Translation (``DUBBING_TRANSLATOR``, ``DUBBING_LLM_*``)."""

    def get(self, source: str, target: str) -> Any:
        return providers().translator(self.settings(), source, target)

    def glossary(self, target: str) -> tuple[Any, ...]:
        """The ``DUBBING_GLOSSARY`` terms for ``target``; a bad file is a configuration error."""
        return providers().glossary(self.settings(), target)


class TTSResource(ProviderResource):
    """Text to speech and voice matching (``DUBBING_TTS``, ``DUBBING_TTS_MODEL_DIR``,
    ``DUBBING_VOICE_MATCH``)."""

    def get(self, language: str) -> Any:
        return providers().tts(self.settings(), language)


class LipSyncResource(ProviderResource):
    """The lip-sync engine (``DUBBING_LIPSYNC``, ``DUBBING_LATENTSYNC_*``, ``DUBBING_LIPSYNC_MAX_WINDOW``)."""

    def get(self) -> Any:
        return providers().lipsync(self.settings())


class QualityResource(ProviderResource):
    """The quality thresholds of the scorecard and the automatic repair (``DUBBING_QC_*``)."""

    def thresholds(self) -> Any:
        return providers().thresholds(self.settings())


class SafetyResource(ProviderResource):
    """What marks a dub as AI-made: the audio watermark, the C2PA signer, the visible label, the
    toxicity screen (``DUBBING_WATERMARK``, ``DUBBING_C2PA*``, ``DUBBING_LABEL*``,
    ``DUBBING_BLOCK_TOXIC``)."""

    def watermarker(self) -> Any:
        """The loaded watermarker, or ``None`` with ``DUBBING_WATERMARK=off``."""
        return providers().watermarker(self.settings())

    def signer(self) -> Any:
        """The C2PA signer (checked: a bad certificate or key fails here), or ``None`` with
        ``DUBBING_C2PA=off``."""
        return providers().signer(self.settings())

    def label(self) -> Any:
        """The visible label, or ``None`` without ``DUBBING_LABEL``."""
        return providers().label(self.settings())

    def block_toxic(self) -> bool:
        return bool(self.settings().block_toxic)

    def check(self) -> None:
        """Every safety setting checked at the start of a dub (before anything is spoken): a bad
        certificate or key, label or watermark setting is a configuration error naming it."""
        self.watermarker()
        self.signer()
        self.label()


def settings_resource(settings: Settings) -> SettingsResource:
    secrets = {
        row.name: dg.EnvVar(row.metadata["env"]) if getattr(settings, row.name) else ""
        for row in rows()
        if row.metadata["secret"]
    }
    values = {row.name: getattr(settings, row.name) for row in rows() if not row.metadata["secret"]}
    return SettingsResource(values=values, **secrets)


def storage_resource(settings: Settings) -> StorageResource:
    """The media storage the settings name (the resources, the CLI, sensors and schedules share it)."""
    return StorageResource(
        config=settings_resource(settings),
        url=settings.storage_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        work_dir=settings.work_dir,
    )


def resources_from_settings(
    settings: Settings, storage: StorageResource | None = None
) -> dict[str, dg.ConfigurableResource[Any]]:
    """Every provider and storage resource of the definitions, from one ``Settings`` (``storage``:
    the storage resource of those settings, when the caller has made it)."""
    storage = storage or storage_resource(settings)
    config = storage.config
    assert config is not None
    return {
        "storage": storage,
        "separator": SeparatorResource(config=config),
        "asr": ASRResource(config=config),
        "diarizer": DiarizerResource(config=config),
        "translator": TranslatorResource(config=config),
        "tts": TTSResource(config=config),
        "quality": QualityResource(config=config),
        "lipsync": LipSyncResource(config=config),
        "safety": SafetyResource(config=config),
    }
