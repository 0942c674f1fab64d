"""Plan how a long recording is cut into overlapping chunks for transcription and diarization.

Each chunk's audio spans ``[start, end]`` and it *owns* its core ``[core_start, core_end)``.
Guarantees of :func:`plan_chunks` (``D`` = duration, ``M`` = max_seconds, ``O`` = overlap):

* the cores tile ``[0, D)`` exactly: the first starts at 0, each ends where the next begins,
  the last ends at ``D``;
* ``start = max(0, core_start - O)`` and ``end = min(D, core_end + O)``;
* with one chunk its span is ``D <= M``; with several, every core is at most ``M - O`` long,
  every core but the last is longer than ``M / 2`` and the last is at least ``M / 2 - O``;
* hence every span ``end - start`` is at most ``M + O``, and the first and last at most ``M``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dubbing_pipeline.records import Record

Interval = tuple[float, float]
_EPS = 1e-9


class Chunk(Record):
    """One chunk: audio span ``[start, end]``, owned core ``[core_start, core_end)``."""

    index: int
    start: float
    end: float
    core_start: float
    core_end: float

    def __init__(self, index: int, start: float, end: float, core_start: float, core_end: float) -> None:
        # positional, as the planner builds it; the stored form validates by name (``from_json``)
        super().__init__(
            **{"index": index, "start": start, "end": end, "core_start": core_start, "core_end": core_end}
        )

    @property
    def duration(self) -> float:
        return self.end - self.start


def _clean(duration: float, speech: Sequence[tuple[float, float]]) -> list[Interval]:
    """Speech regions clipped to ``[0, duration]``, empty ones dropped, sorted."""
    out = [(max(0.0, float(s)), min(duration, float(e))) for s, e in speech]
    return sorted((s, e) for s, e in out if e > s)


def _gaps(duration: float, regions: list[Interval]) -> list[Interval]:
    """Non-speech stretches of ``[0, duration]`` (including leading and trailing silence)."""
    gaps: list[Interval] = []
    cursor = 0.0
    for s, e in regions:
        if s > cursor:
            gaps.append((cursor, s))
        cursor = max(cursor, e)
    if duration > cursor:
        gaps.append((cursor, duration))
    return gaps


def _coverage(t: float, regions: list[Interval]) -> int:
    """Number of speech regions strictly containing ``t``."""
    return sum(1 for s, e in regions if s < t < e)


def _choose_cut(
    lo: float, hi: float, regions: list[Interval], gaps: list[Interval], scenes: list[float], min_pause: float
) -> float:
    """Best cut point in ``(lo, hi]`` by the preference order documented on :func:`plan_chunks`."""
    clipped = [(max(a, lo), min(b, hi), b - a) for a, b in gaps]
    clipped = [(a, b, full) for a, b, full in clipped if b - a > _EPS]
    pauses = [(b - a, (a + b) / 2) for a, b, full in clipped if full >= min_pause]
    if pauses:
        return max(pauses)[1]
    in_window = [t for t in scenes if lo < t <= hi]
    quiet_scenes = [t for t in in_window if _coverage(t, regions) == 0]
    if quiet_scenes:
        return max(quiet_scenes)
    if in_window:
        return max(in_window)
    # Lowest coverage; then short gaps (longest first) before edges before the hard cut; then latest.
    ranked: list[tuple[tuple[int, float, int, float], float]] = []
    for a, b, _ in clipped:
        mid = (a + b) / 2
        ranked.append(((0, -(b - a), 0, -mid), mid))
    for x in {x for region in regions for x in region if lo < x < hi}:
        ranked.append(((_coverage(x, regions), 0.0, 0, -x), x))
    ranked.append(((_coverage(hi, regions), 0.0, 1, -hi), hi))
    return min(ranked)[1]


def plan_chunks(
    duration: float,
    speech: Sequence[tuple[float, float]],
    scene_changes: Sequence[float] = (),
    max_seconds: float = 300.0,
    overlap: float = 2.0,
    min_pause: float = 0.3,
) -> list[Chunk]:
    """Cut ``[0, duration)`` into chunks whose cores tile it (see the module docstring).

    From each core start ``s`` the cut lies in ``(s + M/2, min(s + M - O, D - (M/2 - O))]``.
    Preference: the middle of the longest pause (non-speech stretch, measured inside the
    window, whose full length is ``>= min_pause``); else the latest scene change outside
    speech; else the latest scene change; else the point of lowest speech coverage (a short
    pause's middle, then a speech-region edge), falling back to a hard cut at the window end.
    """
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be finite and >= 0, got {duration}")
    if not (max_seconds > 0 and 0 <= overlap < max_seconds / 2):  # also rejects NaN
        raise ValueError("need max_seconds > 0 and 0 <= overlap < max_seconds / 2")
    duration = float(duration)
    if duration <= max_seconds:
        return [Chunk(0, 0.0, duration, 0.0, duration)]
    regions = _clean(duration, speech)
    gaps = _gaps(duration, regions)
    scenes = sorted(float(t) for t in scene_changes)
    tail_min = max_seconds / 2 - overlap
    cores: list[Interval] = []
    s = 0.0
    while duration - s > max_seconds - overlap:
        lo = s + max_seconds / 2
        hi = min(s + max_seconds - overlap, duration - tail_min)
        cut = _choose_cut(lo, hi, regions, gaps, scenes, min_pause)
        cores.append((s, cut))
        s = cut
    cores.append((s, duration))
    return [
        Chunk(i, max(0.0, a - overlap), min(duration, b + overlap), a, b) for i, (a, b) in enumerate(cores)
    ]
