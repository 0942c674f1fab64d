"""``MuseTalkEngine``: MuseTalk 1.5 is not bundled yet; the engine fails at start with instructions."""

from __future__ import annotations

from pathlib import Path

from dubbing_pipeline.errors import ModelMissingError
from dubbing_pipeline.lip_sync.base import LipSyncEngine
from dubbing_pipeline.settings import Settings


class MuseTalkEngine(LipSyncEngine):
    """MuseTalk 1.5 (not bundled): fails at start with instructions."""

    name = "musetalk"
    gpu = True

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.lipsync_max_window or None)
        self.root = settings.musetalk_dir

    def check(self) -> None:
        raise ModelMissingError(
            "MuseTalk is not bundled yet: use DUBBING_LIPSYNC=latentsync (with DUBBING_LATENTSYNC_DIR) "
            "or none; a MuseTalk adapter needs its source tree on PYTHONPATH and DUBBING_MUSETALK_DIR"
        )

    def sync(self, window_video: Path, window_audio: Path, out_video: Path, work_dir: Path) -> None:
        self.check()
