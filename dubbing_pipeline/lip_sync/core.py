"""Running the model window by window, confining failures (pure planner + driver).

A window whose engine call fails is bisected: its halves (split at a whole 16-frame unit,
the first half getting the smaller share on odd unit counts) are tried again, depth first in
time order, until a piece succeeds or is no longer than ``floor_seconds`` (3 s); such a failing
piece keeps the source's original frames. So one bad stretch (a profile face, a hand over the
mouth, an out-of-memory on a long window) costs at most a few seconds of lip-sync, and every
other piece of the window is synced.

Errors that bisection cannot cure (a missing model, a configuration error, cancellation) are
re-raised at once: the stage fails as a whole, and the asset falls back to the original video.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dubbing_pipeline.errors import CancelledError, ConfigurationError, ModelMissingError, classify
from dubbing_pipeline.lip_sync.windows import MODEL_FPS, UNIT_FRAMES, Window

FLOOR_SECONDS = 3.0
Status = Literal["synced", "failed", "skipped"]
FATAL = (ModelMissingError, ConfigurationError, CancelledError, KeyboardInterrupt)


@dataclass(frozen=True)
class Piece:
    """The outcome for model frames ``[start_frame, end_frame)``."""

    start_frame: int
    end_frame: int
    status: Status
    detail: str = ""

    @property
    def window(self) -> Window:
        return Window(self.start_frame, self.end_frame)

    @property
    def start(self) -> float:
        return self.window.start

    @property
    def end(self) -> float:
        return self.window.end

    def to_dict(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "status": self.status,
        }
        if self.detail:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Piece:
        status: Status = data["status"]
        return cls(int(data["start_frame"]), int(data["end_frame"]), status, str(data.get("detail", "")))


def floor_frames(floor_seconds: float = FLOOR_SECONDS) -> int:
    return math.floor(floor_seconds * MODEL_FPS + 1e-6)


def halves(window: Window) -> tuple[Window, Window] | None:
    """Split at a unit boundary (``None`` for a single unit)."""
    units = window.frames // UNIT_FRAMES
    if units < 2:
        return None
    mid = window.start_frame + (units // 2) * UNIT_FRAMES
    return Window(window.start_frame, mid), Window(mid, window.end_frame)


def run_window(
    window: Window,
    sync: Callable[[Window], None],
    *,
    floor_seconds: float = FLOOR_SECONDS,
    on_failure: Callable[[Window, BaseException], None] | None = None,
) -> list[Piece]:
    """Sync ``window`` with ``sync``, bisecting failures down to ``floor_seconds``.

    ``sync(piece)`` must either complete the piece (its output then belongs to the caller) or
    raise. Returns the pieces in time order; they tile ``window`` exactly.
    """
    limit = floor_frames(floor_seconds)
    out: list[Piece] = []
    stack = [window]
    while stack:
        piece = stack.pop()
        try:
            sync(piece)
        except FATAL:
            raise
        except Exception as exc:  # any model failure is confined by bisection
            if on_failure is not None:
                on_failure(piece, exc)
            parts = halves(piece) if piece.frames > limit else None
            if parts is None:
                out.append(Piece(piece.start_frame, piece.end_frame, "failed", classify(exc).one_line()))
            else:
                stack.extend(reversed(parts))
        else:
            out.append(Piece(piece.start_frame, piece.end_frame, "synced"))
    return out


def skipped(windows: Iterable[Window], detail: str = "") -> list[Piece]:
    """Pieces for windows the engine did not touch (the ``none`` engine, a failed stage)."""
    return [Piece(w.start_frame, w.end_frame, "skipped", detail) for w in windows]


def summarize(pieces: Iterable[Piece]) -> dict[str, float]:
    """Seconds per status."""
    out = {"synced": 0.0, "failed": 0.0, "skipped": 0.0}
    for p in pieces:
        out[p.status] = round(out[p.status] + (p.end_frame - p.start_frame) / MODEL_FPS, 6)
    return out
