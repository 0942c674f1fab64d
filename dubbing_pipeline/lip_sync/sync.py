"""One ``lip_sync`` window through the engine: the ``lipsync_window`` step, cached by the video, the
window's speech audio, the engine and its settings, and the window's bounds. A piece that fails
is bisected (``core.run_window``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.lip_sync.base import LipSyncEngine
from dubbing_pipeline.lip_sync.compose import SpeechLine, VideoInfo, cut_window, probe_video, window_speech
from dubbing_pipeline.lip_sync.core import Piece, run_window
from dubbing_pipeline.lip_sync.records import (
    LipSyncWindowRecord,
    PieceOutcome,
    PlacedSpeech,
    WindowOutcome,
    WindowSpan,
)
from dubbing_pipeline.lip_sync.windows import Window
from dubbing_pipeline.orchestration.cache import scratch
from dubbing_pipeline.orchestration.kit import Step, run_step
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.source_video.records import SourceVideoRecord
from dubbing_pipeline.storage import MediaStorage

CODE_VERSION = recipe("lip_sync").code[0]

Speech = list[SpeechLine]


def sync_one(
    storage: StorageResource, engine: LipSyncEngine, source_video: SourceVideoRecord, span: WindowSpan,
    lines: list[PlacedSpeech],
) -> WindowOutcome:  # fmt: skip
    """Run the engine on one window (bisecting failures); cached by video, audio, engine and bounds."""
    window = span.window
    with scratch("lipsync", storage.work_dir or None) as tmp:
        speech = load_speech(storage.get(), lines, tmp)
        audio = window_speech(speech, window, tmp / "window.wav", rate=engine.audio_rate)
        inputs = {
            "video": source_video.sha256, "audio": sha256_file(audio), "engine": engine.describe(),
            "window": [window.start_frame, window.end_frame], "code": CODE_VERSION,
        }  # fmt: skip

        def compute(step: Step) -> JsonObject:
            with step.local(source_video.media_uri) as local:
                sync = PieceSync(engine, step, local, probe_video(local), speech, tmp)
                pieces = run_window(window, sync)
            return {"window": span, "pieces": [sync.outcome(p) for p in pieces]}

        result = run_step(
            storage, "lipsync_window", inputs=inputs, compute=compute, record=LipSyncWindowRecord
        )
    return WindowOutcome(window=result.record.window, pieces=result.record.pieces, cached=result.cached)


def load_speech(store: MediaStorage, lines: list[PlacedSpeech], tmp: Path) -> Speech:
    """Each line's samples (float32) and rate, with where it starts."""
    loaded: Speech = []
    for line in lines:
        with store.open_local(store.key_of(line.uri), tmp) as path:
            data, sr = sf.read(str(path), dtype="float32", always_2d=False)
        loaded.append((float(line.dub_start), data, int(sr)))
    return loaded


@dataclass
class PieceSync:
    """Syncs one piece of a window: cuts its clip and speech, runs the engine, stores the result."""

    engine: LipSyncEngine
    step: Step
    local: Path  # the source video
    info: VideoInfo
    speech: Speech
    tmp: Path
    outputs: dict[int, str] = field(default_factory=dict)  # start frame -> a synced piece's stored clip

    def __call__(self, piece: Window) -> None:
        name = f"p{piece.start_frame:06d}-{piece.end_frame:06d}"
        tmp = self.tmp
        clip, wav, out = tmp / f"{name}.in.mp4", tmp / f"{name}.wav", tmp / f"{name}.out.mp4"
        cut_window(self.local, piece, clip, info=self.info)
        window_speech(self.speech, piece, wav, rate=self.engine.audio_rate)
        work = tmp / f"{name}.work"
        work.mkdir(exist_ok=True)
        self.engine.sync(clip, wav, out, work)
        self.outputs[piece.start_frame] = self.step.put(f"{name}.mp4", out)

    def outcome(self, piece: Piece) -> PieceOutcome:
        uri = self.outputs.get(piece.start_frame) if piece.status == "synced" else None
        return PieceOutcome.of_piece(piece, uri)
