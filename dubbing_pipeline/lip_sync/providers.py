"""Lip-sync engines by name: the factory ``make_lipsync`` (``DUBBING_LIPSYNC``).

* ``none`` (the CPU default, ``base.NoneEngine``): no model; every planned window keeps its
  original frames and the stage says so (``provider: none``, windows ``skipped``). The video
  stream is copied.
* ``latentsync`` (``latentsync_engine``): ByteDance LatentSync 1.5/1.6 on CUDA, from a local
  checkpoint directory. Its heavy libraries (torch, diffusers, the latentsync package) are
  imported by ``latentsync_pipeline``, on the engine's first use.
* ``musetalk`` (``musetalk_engine``): not bundled yet; fails at start with instructions.

The interface every engine implements is ``base.LipSyncEngine``.
"""

from __future__ import annotations

from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.lip_sync.base import LipSyncEngine, NoneEngine
from dubbing_pipeline.lip_sync.latentsync_engine import LatentSyncEngine
from dubbing_pipeline.lip_sync.musetalk_engine import MuseTalkEngine
from dubbing_pipeline.settings import Settings

ENGINE_NAMES = ("none", "latentsync", "musetalk")


def make_lipsync(settings: Settings) -> LipSyncEngine:
    """The engine ``DUBBING_LIPSYNC`` names (``none``, ``latentsync``, ``musetalk``)."""
    name = (settings.lipsync or "none").strip().lower()
    if name == "none":
        return NoneEngine(settings.lipsync_max_window or None)
    if name == "latentsync":
        return LatentSyncEngine(settings)
    if name == "musetalk":
        return MuseTalkEngine(settings)
    raise ConfigurationError(f"unknown DUBBING_LIPSYNC {name!r}: use one of {', '.join(ENGINE_NAMES)}")
