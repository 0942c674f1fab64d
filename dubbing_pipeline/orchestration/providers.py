"""The stages' provider factories, in one table: what the provider resources build from the settings.

``resources.py`` reaches this module through :func:`~dubbing_pipeline.orchestration.resources.providers`
only when a resource first builds a provider, so a command that runs no stage (an unchanged ``dub``)
never loads the provider modules (numpy, scipy and the engines' own modules). Each factory module
keeps its heavy library (torch, onnxruntime, a provider's SDK) behind its engine's own import.
"""

from __future__ import annotations

from dubbing_pipeline.audio_stems.providers import make_separator
from dubbing_pipeline.dubbed_speech.tts import make_tts
from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.lip_sync.providers import make_lipsync
from dubbing_pipeline.provenance.c2pa import make_signer
from dubbing_pipeline.provenance.label import make_label
from dubbing_pipeline.provenance.watermark import PerthWatermarker, get_watermarker, watermark_enabled
from dubbing_pipeline.quality.scorecard import Thresholds
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.diarize import make_diarizer
from dubbing_pipeline.transcript.providers import make_asr
from dubbing_pipeline.translation.factory import make_translator
from dubbing_pipeline.translation.glossary import GlossaryError, Term, load_glossary


def _glossary(settings: Settings, target: str) -> tuple[Term, ...]:
    """The ``DUBBING_GLOSSARY`` terms for ``target``; a bad file is a configuration error."""
    try:
        return load_glossary(settings.glossary, target)
    except GlossaryError as exc:
        raise ConfigurationError(f"DUBBING_GLOSSARY: {exc}") from exc


def _watermarker(settings: Settings) -> PerthWatermarker | None:
    """The loaded watermarker, or ``None`` with ``DUBBING_WATERMARK=off``."""
    if not watermark_enabled(settings.watermark):
        return None
    return get_watermarker(settings.device, settings.cpu_threads)


class Providers:
    """Each provider family's factory, by the resource that builds it."""

    separator = staticmethod(make_separator)
    asr = staticmethod(make_asr)
    diarizer = staticmethod(make_diarizer)
    translator = staticmethod(make_translator)
    glossary = staticmethod(_glossary)
    tts = staticmethod(make_tts)
    lipsync = staticmethod(make_lipsync)
    thresholds = staticmethod(Thresholds.from_settings)
    watermarker = staticmethod(_watermarker)
    signer = staticmethod(make_signer)
    label = staticmethod(make_label)
