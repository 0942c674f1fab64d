"""Dagster resources: each wraps one provider family, configured from environment variables."""

import functools
from dataclasses import replace
from typing import Any

import dagster as dg

from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage, make_storage


@functools.lru_cache(maxsize=8)
def _storage(url: str, endpoint: str, region: str) -> MediaStorage:
    return make_storage(url, s3_endpoint_url=endpoint or None, s3_region=region or None)


class StorageResource(dg.ConfigurableResource):
    """Where media and records live: a directory or ``s3://bucket/prefix``."""

    url: str
    s3_endpoint_url: str = ""
    s3_region: str = ""
    work_dir: str = ""

    def get(self) -> MediaStorage:
        return _storage(self.url, self.s3_endpoint_url, self.s3_region)


class _ProviderResource(dg.ConfigurableResource):
    device: str = "cpu"
    cpu_threads: int = 2
    model_cache: str = ""

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            k: v for k, v in self.model_dump().items() if k in Settings.__dataclass_fields__
        }
        return replace(Settings(), **values)


class SeparatorResource(_ProviderResource):
    """Voice/background separation (``DUBBING_SEPARATOR``)."""

    separator: str = "spleeter"
    demucs_repo: str = ""
    demucs_model: str = "htdemucs"

    def get(self) -> Any:
        from dubbing_pipeline.stems.providers import make_separator

        return make_separator(self.settings())


class ASRResource(_ProviderResource):
    """Speech recognition and voice activity (``DUBBING_ASR``, ``DUBBING_WHISPER_*``)."""

    asr: str = "faster-whisper"
    whisper_model_dir: str = ""
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = 5
    chunk_seconds: float = 300.0
    chunk_overlap: float = 2.0
    min_language_confidence: float = 0.5

    def get(self) -> Any:
        from dubbing_pipeline.transcript.providers import make_asr

        return make_asr(self.settings())


class DiarizerResource(_ProviderResource):
    """Speaker diarization (``DUBBING_DIARIZER``, ``DUBBING_PYANNOTE_DIR``)."""

    diarizer: str = "voicefilter"
    pyannote_dir: str = ""
    speaker_merge_sim: float = 0.78
    speaker_match_sim: float = 0.80

    def get(self) -> Any:
        from dubbing_pipeline.speakers.diarize import make_diarizer

        return make_diarizer(self.settings())


class TranslatorResource(_ProviderResource):
    """Translation (``DUBBING_TRANSLATOR``, ``DUBBING_LLM_*``)."""

    translator: str = "auto"
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_max_retries: int = 3
    llm_timeout: float = 120.0

    def get(self, source: str, target: str) -> Any:
        from dubbing_pipeline.translation.providers import make_translator

        return make_translator(self.settings(), source, target)


class TTSResource(_ProviderResource):
    """Text to speech and voice matching (``DUBBING_TTS``, ``DUBBING_TTS_MODEL_DIR``,
    ``DUBBING_VOICE_MATCH``)."""

    tts: str = "auto"
    tts_model_dir: str = ""
    voice_match: str = "on"

    def get(self, language: str) -> Any:
        from dubbing_pipeline.speech.tts import make_tts

        return make_tts(self.settings(), language)


def storage_resource(settings: Settings) -> StorageResource:
    """The media storage the settings name (the resources, the CLI, sensors and schedules share it)."""
    return StorageResource(
        url=settings.storage_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        work_dir=settings.work_dir,
    )


def resources_from_settings(settings: Settings) -> dict[str, Any]:
    common: dict[str, Any] = {
        "device": settings.device,
        "cpu_threads": settings.cpu_threads,
        "model_cache": settings.model_cache,
    }
    storage = storage_resource(settings)
    return {
        "storage": storage,
        "separator": SeparatorResource(
            separator=settings.separator,
            demucs_repo=settings.demucs_repo,
            demucs_model=settings.demucs_model,
            **common,
        ),
        "asr": ASRResource(
            asr=settings.asr,
            whisper_model_dir=settings.whisper_model_dir,
            whisper_compute_type=settings.whisper_compute_type,
            whisper_beam_size=settings.whisper_beam_size,
            chunk_seconds=settings.chunk_seconds,
            chunk_overlap=settings.chunk_overlap,
            min_language_confidence=settings.min_language_confidence,
            **common,
        ),
        "diarizer": DiarizerResource(
            diarizer=settings.diarizer,
            pyannote_dir=settings.pyannote_dir,
            speaker_merge_sim=settings.speaker_merge_sim,
            speaker_match_sim=settings.speaker_match_sim,
            **common,
        ),
        "translator": TranslatorResource(
            translator=settings.translator,
            llm_url=settings.llm_url,
            llm_model=settings.llm_model,
            # the key stays an EnvVar so the UI never shows it
            llm_api_key=dg.EnvVar("DUBBING_LLM_API_KEY") if settings.llm_api_key else "",
            llm_max_retries=settings.llm_max_retries,
            llm_timeout=settings.llm_timeout,
            **common,
        ),
        "tts": TTSResource(
            tts=settings.tts, tts_model_dir=settings.tts_model_dir, voice_match=settings.voice_match, **common
        ),
        "io_manager": _io_manager(storage),
    }


def _io_manager(storage: StorageResource) -> Any:
    from dubbing_pipeline.orchestration.io_manager import RecordIOManager

    return RecordIOManager(storage=storage)
