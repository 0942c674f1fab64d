"""The ``lip_sync`` stage's records: the plan, one job and one outcome per window (the
``lipsync_window`` step), the face track (the ``faces`` step) and the stage's output."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dubbing_pipeline.lip_sync.core import Piece, Status
from dubbing_pipeline.lip_sync.windows import Window
from dubbing_pipeline.records import JsonObject, Record, StageRecord


class WindowSpan(Record):
    """Model frames ``[start_frame, end_frame)`` at 25 fps, and the seconds they start and end at."""

    start: float
    end: float
    start_frame: int
    end_frame: int

    @classmethod
    def of(cls, window: Window) -> WindowSpan:
        return cls(
            start=round(window.start, 6),
            end=round(window.end, 6),
            start_frame=window.start_frame,
            end_frame=window.end_frame,
        )

    @property
    def window(self) -> Window:
        return Window(self.start_frame, self.end_frame)


class PieceOutcome(WindowSpan):
    """A window, or a bisected piece of one: synced (its clip at ``uri``), failed or skipped."""

    status: Status
    detail: str = ""  # why it failed or was skipped
    uri: str | None = None  # the engine's clip of a synced piece

    @classmethod
    def of_piece(cls, piece: Piece, uri: str | None = None) -> PieceOutcome:
        span = WindowSpan.of(piece.window)
        return cls(**dict(span), status=piece.status, detail=piece.detail, uri=uri)


class PlacedSpeech(Record):
    """A dubbed line that sounds: its placed span (seconds) and its audio."""

    id: str
    dub_start: float
    dub_end: float
    uri: str


class FrameCounts(Record):
    """Source frames sent to the model, and those skipped (no speech near them, no face seen)."""

    frames_total: int = 0
    frames_to_model: int = 0
    frames_skipped_silence: int = 0
    frames_skipped_no_face: int = 0

    def frame_counts(self) -> dict[str, int]:
        """The four counts by name (they add up: ``frames_total`` is the sum of the other three)."""
        return {name: getattr(self, name) for name in FrameCounts.model_fields}


class LipSyncPlan(FrameCounts):
    """What ``plan_lipsync`` hands on: the engine, the face track's outcome and the windows to run."""

    status: Literal["ok", "failed"]
    provider: JsonObject  # the engine's description (its cache-key part)
    passthrough: bool = False  # the engine keeps the original frames: nothing to cut or compose
    detector: str | None = None  # the face detector (None: no face track was needed)
    faces_cached: bool = True
    fps: float = 0.0
    duration: float = 0.0
    settings: dict[str, float] = Field(default_factory=dict)  # margin, merge gap, longest window
    windows: list[WindowSpan] = Field(default_factory=list)
    speech_windows: list[WindowSpan] = Field(default_factory=list)  # before the face-less cuts
    seconds: float = 0.0  # spent planning in this run
    error: str = ""
    error_code: str = ""


class WindowJob(Record):
    """One window for the engine, with the dubbed lines that sound in it; without a window, the
    single no-op job of a plan with nothing to run."""

    index: int = 0
    window: WindowSpan | None = None
    lines: list[PlacedSpeech] = Field(default_factory=list)
    provider: JsonObject = Field(default_factory=dict)


class LipSyncWindowRecord(StageRecord):
    """The ``lipsync_window`` step's record: a window's pieces, in time order, tiling it."""

    window: WindowSpan
    pieces: list[PieceOutcome]


class WindowOutcome(Record):
    """What ``sync_window`` hands on: a window's pieces (or a skip), and how they were obtained."""

    skip: bool = False
    window: WindowSpan | None = None
    pieces: list[PieceOutcome] = Field(default_factory=list)
    error: str = ""  # a fatal engine error: the window kept its original frames
    cached: bool = True
    seconds: float = 0.0  # spent on the window in this run


class FaceTrackRecord(StageRecord):
    """The ``faces`` step's record: where a face is seen through the video (``faces.FaceTrack``)."""

    fps: float
    frames_total: int
    width: int
    height: int
    stride: int  # detection ran on every ``stride``-th frame
    detector: str
    frames_with_face: int
    present_runs: list[list[int]]  # ``[start, end)`` source frames with a face
    mouths: list[list[int]]  # ``[frame, x, y, w, h]``: the mouth box of each sampled frame with a face


class WindowStatus(Record):
    """A piece's outcome as the stage reports it."""

    start: float
    end: float
    status: Status


class LipSyncSummary(FrameCounts):
    """What lip-sync did: the engine, the face detector, the frame accounting and each piece."""

    provider: str
    provider_config: JsonObject  # the engine's description
    detector: str | None
    windows: list[WindowStatus]


class ComposeRecord(Record):
    """How the synced pieces went back into the source (``compose.ComposeResult``)."""

    changed: bool
    mode: str  # "copy", "smart" or "full"
    frames_total: int
    frames_reencoded: int
    frames_copied: int
    frames_replaced: int
    spans: list[list[int]]  # re-encoded source frames ``[a, b)``
    frames_labelled: int


class LipSyncRecord(StageRecord):
    """The ``lip_sync`` stage's output (and its ``lip_sync`` compose step's record): the video to
    mux the dub over, with the mouth re-animated where a face speaks (or the source unchanged)."""

    status: Literal["ok", "failed"]
    lipsync: LipSyncSummary
    error: str | None = None  # why the stage failed as a whole (the source's frames are kept)
    video_uri: str
    changed: bool
    compose: ComposeRecord | None = None  # None: nothing was composed
