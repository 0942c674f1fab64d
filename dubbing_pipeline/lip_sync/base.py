"""The lip-sync engine interface, and ``none``: the engine that keeps the original frames.

An engine turns one *window* (a short video cut at ``fps`` = 25 and its dubbed speech at
``audio_rate`` = 16 kHz mono) into the same window with the mouth re-animated. The stage plans
the windows, cuts them, bisects failures and puts the results back into the source
(``dubbing_pipeline.lip_sync.compose``); engines see nothing else.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from dubbing_pipeline.lip_sync.windows import MAX_WINDOW_SECONDS, MODEL_FPS
from dubbing_pipeline.records import JsonObject


class LipSyncEngine(ABC):
    """One lip-sync model. ``sync`` is called once per window (or bisected piece of one)."""

    name = "engine"
    fps = MODEL_FPS
    audio_rate = 16000
    gpu = False
    passthrough = False  # True: keeps the original frames; the stage skips cutting and composing

    def __init__(self, max_window_seconds: float | None = None) -> None:
        default = MAX_WINDOW_SECONDS.get(self.name, 30.0)
        self.max_window_seconds = float(max_window_seconds or default)

    def describe(self) -> JsonObject:
        """Provider, model and every setting that changes the output (part of the cache key)."""
        return {
            "name": self.name,
            "model": "",
            "fps": self.fps,
            "audio_rate": self.audio_rate,
            "max_window_seconds": self.max_window_seconds,
        }

    def check(self) -> None:  # noqa: B027 - optional hook
        """Fail early (``ModelMissingError``) when the engine cannot run at all."""

    @abstractmethod
    def sync(self, window_video: Path, window_audio: Path, out_video: Path, work_dir: Path) -> None:
        """Write ``out_video``: ``window_video`` (``fps``, constant) with the mouth following
        ``window_audio`` (``audio_rate`` Hz mono WAV of the same length). ``work_dir`` is a private,
        empty scratch directory. Raise on failure; never write a partial ``out_video``."""


class NoneEngine(LipSyncEngine):
    """No lip-sync: the original frames are kept (the embedded CPU default)."""

    name = "none"
    passthrough = True

    def describe(self) -> JsonObject:
        return {**super().describe(), "model": "original frames kept"}

    def sync(self, window_video: Path, window_audio: Path, out_video: Path, work_dir: Path) -> None:
        tmp = out_video.with_name(f".{out_video.name}.partial")
        shutil.copyfile(window_video, tmp)
        os.replace(tmp, out_video)
