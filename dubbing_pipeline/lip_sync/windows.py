"""Which stretches of a video the lip-sync model must process (pure planning).

The model works on a fixed grid: 25 fps frames (``MODEL_FPS``) in units of 16 frames
(``UNIT_FRAMES``, 0.64 s: LatentSync's temporal batch). Everything here is computed on that
grid, in integers, then counted back in frames of the *source* video.

Planning, from the placed dubbed lines (``dub_start``/``dub_end`` seconds):

1. **Speech regions.** Lines are sorted; a line that starts less than ``merge_gap`` (2 s)
   after the previous region ends joins it. Each region gets ``margin`` (0.4 s) before and
   after and is clamped to ``[0, duration]``.
2. **Grid alignment.** A region becomes model frames ``[floor(s·25), ceil(e·25))``, whose
   length is rounded *up* to a multiple of 16 by extending the end (or, at the end of the video,
   the start). Every window is inside the video's last full model frame
   (``floor(duration·25)``). Aligned windows that overlap or touch are merged.
3. **Caps.** A window longer than ``max_window_seconds`` (30 s LatentSync, 120 s MuseTalk,
   rounded down to whole units) is split into the fewest pieces under the cap, with lengths
   as equal as whole units allow (earlier pieces get the extra unit).
4. **Faces.** A model frame has a face when the source frame shown at its time has one
   (source frame ``floor(k·fps/25)``). Windows are split around face-less runs; each face
   run keeps its start and is cut down to whole units; pieces shorter than one unit are dropped.

Frame accounting, in source frames ``j = 0 … frames_total-1`` (frame ``j`` is shown at ``j/fps``;
a model interval ``[a, b)`` holds the source frames ``j`` with ``a/25 <= j/fps < b/25``):

* ``frames_to_model``: source frames inside a final window;
* ``frames_skipped_no_face``: inside a grid-aligned speech window (step 3) but not inside a
  final window: removed because no face was visible (or by the unit trim next to one);
* ``frames_skipped_silence``: all other frames (no dubbed speech near them);

and ``frames_to_model + frames_skipped_no_face + frames_skipped_silence == frames_total``
exactly, because every count uses the same integer boundary function.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MODEL_FPS = 25
UNIT_FRAMES = 16
MARGIN_SECONDS = 0.4
MERGE_GAP_SECONDS = 2.0
MAX_WINDOW_SECONDS = {"latentsync": 30.0, "musetalk": 120.0, "none": 30.0}
_EPS = 1e-6


@dataclass(frozen=True, order=True)
class Window:
    """Model frames ``[start_frame, end_frame)`` at ``MODEL_FPS`` (a whole number of units)."""

    start_frame: int
    end_frame: int

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def start(self) -> float:
        return self.start_frame / MODEL_FPS

    @property
    def end(self) -> float:
        return self.end_frame / MODEL_FPS

    @property
    def seconds(self) -> float:
        return self.frames / MODEL_FPS


@dataclass(frozen=True)
class WindowPlan:
    """The model windows of a video and its frame accounting (see the module docstring)."""

    windows: list[Window]
    speech_windows: list[Window]
    frames_total: int
    frames_to_model: int
    frames_skipped_silence: int
    frames_skipped_no_face: int
    fps: float
    duration: float
    settings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "frames_total": self.frames_total,
            "frames_to_model": self.frames_to_model,
            "frames_skipped_silence": self.frames_skipped_silence,
            "frames_skipped_no_face": self.frames_skipped_no_face,
        }


def model_frames_in(duration: float) -> int:
    """Model frames that fit entirely in ``duration`` seconds."""
    return max(0, math.floor(duration * MODEL_FPS + _EPS))


def first_source_frame_at(t: float, fps: float, frames_total: int) -> int:
    """Index of the first source frame shown at or after ``t`` seconds, clamped to ``[0, N]``."""
    return min(frames_total, max(0, math.ceil(t * fps - _EPS)))


def source_frame_range(window: Window, fps: float, frames_total: int) -> tuple[int, int]:
    """Source frames ``[j0, j1)`` shown inside ``window``."""
    return (
        first_source_frame_at(window.start, fps, frames_total),
        first_source_frame_at(window.end, fps, frames_total),
    )


def count_source_frames(windows: Iterable[Window], fps: float, frames_total: int) -> int:
    """Source frames inside a set of disjoint windows."""
    total = 0
    for w in windows:
        j0, j1 = source_frame_range(w, fps, frames_total)
        total += j1 - j0
    return total


def speech_regions(
    lines: Iterable[tuple[float, float]], *, merge_gap: float = MERGE_GAP_SECONDS
) -> list[tuple[float, float]]:
    """Sort lines, drop empty ones, merge those separated by less than ``merge_gap`` seconds."""
    spans = sorted((float(s), float(e)) for s, e in lines if e > s)
    out: list[tuple[float, float]] = []
    for s, e in spans:
        if out and s - out[-1][1] < merge_gap:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def align(start: float, end: float, limit: int) -> Window | None:
    """The smallest unit-aligned window on the model grid covering ``[start, end)`` within ``[0, limit)``.

    ``None`` when the video holds less than one unit.
    """
    if limit < UNIT_FRAMES:
        return None
    a = max(0, math.floor(start * MODEL_FPS + _EPS))
    b = min(limit, math.ceil(end * MODEL_FPS - _EPS))
    b = max(b, a + 1)
    length = min(_round_up(b - a), (limit // UNIT_FRAMES) * UNIT_FRAMES)
    b = a + length
    if b > limit:  # at the end of the video: move the start back instead
        b = limit
        a = b - length
    return Window(a, b)


def _round_up(frames: int) -> int:
    return -(-frames // UNIT_FRAMES) * UNIT_FRAMES


def merge_windows(windows: Iterable[Window]) -> list[Window]:
    """Merge overlapping or touching windows (the union of whole units is whole units)."""
    out: list[Window] = []
    for w in sorted(windows):
        if out and w.start_frame <= out[-1].end_frame:
            last = out[-1]
            out[-1] = Window(last.start_frame, max(last.end_frame, w.end_frame))
        else:
            out.append(w)
    return out


def cap_window(window: Window, max_frames: int) -> list[Window]:
    """Split ``window`` into the fewest whole-unit pieces of at most ``max_frames`` frames."""
    cap_units = max(1, max_frames // UNIT_FRAMES)
    units = window.frames // UNIT_FRAMES
    if units <= cap_units:
        return [window]
    pieces = -(-units // cap_units)
    base, extra = divmod(units, pieces)
    out, a = [], window.start_frame
    for i in range(pieces):
        n = (base + (1 if i < extra else 0)) * UNIT_FRAMES
        out.append(Window(a, a + n))
        a += n
    return out


def model_face_mask(face: Sequence[bool], fps: float, limit: int) -> list[bool]:
    """Face presence per model frame ``k < limit``: that of source frame ``floor(k·fps/25)``."""
    n = len(face)
    out = []
    for k in range(limit):
        j = min(n - 1, math.floor(k * fps / MODEL_FPS + _EPS))
        out.append(bool(face[j]) if n else False)
    return out


def exclude_faceless(window: Window, has_face: Sequence[bool]) -> list[Window]:
    """Split ``window`` around model frames without a face; keep whole units of each face run."""
    out: list[Window] = []
    k = window.start_frame
    while k < window.end_frame:
        if not has_face[k]:
            k += 1
            continue
        run_start = k
        while k < window.end_frame and has_face[k]:
            k += 1
        units = (k - run_start) // UNIT_FRAMES
        if units:
            out.append(Window(run_start, run_start + units * UNIT_FRAMES))
    return out


def plan_windows(
    lines: Iterable[tuple[float, float]],
    *,
    duration: float,
    fps: float,
    frames_total: int | None = None,
    face: Sequence[bool] | None = None,
    max_window_seconds: float = MAX_WINDOW_SECONDS["latentsync"],
    margin: float = MARGIN_SECONDS,
    merge_gap: float = MERGE_GAP_SECONDS,
) -> WindowPlan:
    """Plan the model windows for dubbed ``lines`` (``(dub_start, dub_end)`` seconds).

    ``fps`` is the source frame rate and ``frames_total`` its frame count (default
    ``round(duration·fps)``); ``face`` is the per-source-frame face presence (``None``: a face
    everywhere). See the module docstring for the rules and the frame accounting.
    """
    if duration <= 0 or fps <= 0:
        raise ValueError(f"duration and fps must be positive, got {duration}, {fps}")
    if max_window_seconds * MODEL_FPS < UNIT_FRAMES:
        raise ValueError(f"max_window_seconds must hold one {UNIT_FRAMES}-frame unit")
    n = round(duration * fps) if frames_total is None else int(frames_total)
    if face is not None and len(face) != n:
        raise ValueError(f"face mask has {len(face)} frames, the video {n}")
    limit = model_frames_in(duration)
    aligned: list[Window] = []
    for s, e in speech_regions(lines, merge_gap=merge_gap):
        w = align(max(0.0, s - margin), min(duration, e + margin), limit)
        if w is not None:
            aligned.append(w)
    max_frames = math.floor(max_window_seconds * MODEL_FPS + _EPS)
    speech = [piece for w in merge_windows(aligned) for piece in cap_window(w, max_frames)]
    if face is None:
        final = list(speech)
    else:
        mask = model_face_mask(face, fps, limit)
        final = [piece for w in speech for piece in exclude_faceless(w, mask)]
    to_model = count_source_frames(final, fps, n)
    in_speech = count_source_frames(speech, fps, n)
    return WindowPlan(
        windows=final,
        speech_windows=speech,
        frames_total=n,
        frames_to_model=to_model,
        frames_skipped_no_face=in_speech - to_model,
        frames_skipped_silence=n - in_speech,
        fps=fps,
        duration=duration,
        settings={"margin": margin, "merge_gap": merge_gap, "max_window_seconds": max_window_seconds},
    )
