"""Bisection of failing lip-sync windows: damage is confined to pieces of at most 3 s."""

from __future__ import annotations

import itertools
import random

import pytest

from dubbing_pipeline.errors import ModelMissingError, ProviderError
from dubbing_pipeline.lip_sync.core import Piece, floor_frames, halves, run_window, skipped, summarize
from dubbing_pipeline.lip_sync.windows import MODEL_FPS, UNIT_FRAMES, Window


class FailsOnFrames:
    """A model double that fails whenever a piece contains one of ``bad`` model frames."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad
        self.calls: list[Window] = []
        self.synced: list[Window] = []

    def __call__(self, piece: Window) -> None:
        self.calls.append(piece)
        if any(piece.start_frame <= k < piece.end_frame for k in self.bad):
            raise ProviderError("Face not detected")
        self.synced.append(piece)


def _tiles(pieces: list[Piece], window: Window) -> bool:
    edges = [(p.start_frame, p.end_frame) for p in pieces]
    return (
        edges[0][0] == window.start_frame
        and edges[-1][1] == window.end_frame
        and all(a[1] == b[0] for a, b in itertools.pairwise(edges))
    )


def test_no_failure_is_one_synced_piece() -> None:
    model = FailsOnFrames(set())
    pieces = run_window(Window(0, 480), model)
    assert pieces == [Piece(0, 480, "synced")] and len(model.calls) == 1


def test_one_bad_frame_costs_at_most_three_seconds() -> None:
    window = Window(32, 32 + 30 * 25 - (30 * 25) % UNIT_FRAMES)  # ~30 s
    model = FailsOnFrames({400})
    pieces = run_window(window, model)
    assert _tiles(pieces, window)
    failed = [p for p in pieces if p.status == "failed"]
    assert len(failed) == 1
    assert failed[0].start_frame <= 400 < failed[0].end_frame
    assert failed[0].end - failed[0].start <= 3.0
    assert all(p.frames % UNIT_FRAMES == 0 for p in (q.window for q in pieces))
    assert "provider_failure" in failed[0].detail
    # everything else was synced, and exactly the synced pieces reached the caller
    assert sorted(model.synced) == sorted(p.window for p in pieces if p.status == "synced")
    assert summarize(pieces)["failed"] <= 3.0


def test_everything_failing_ends_in_floor_sized_pieces() -> None:
    window = Window(0, 20 * UNIT_FRAMES)
    pieces = run_window(window, FailsOnFrames(set(range(0, 20 * UNIT_FRAMES))))
    assert _tiles(pieces, window)
    assert all(p.status == "failed" and p.end - p.start <= 3.0 for p in pieces)


def test_short_window_is_not_bisected() -> None:
    model = FailsOnFrames({5})
    pieces = run_window(Window(0, 64), model)  # 2.56 s <= 3 s
    assert [p.status for p in pieces] == ["failed"] and len(model.calls) == 1


def test_fatal_errors_are_not_bisected() -> None:
    def missing(piece: Window) -> None:
        raise ModelMissingError("set DUBBING_LATENTSYNC_DIR")

    with pytest.raises(ModelMissingError):
        run_window(Window(0, 480), missing)


def test_halves_are_unit_aligned() -> None:
    assert halves(Window(0, 16)) is None
    assert halves(Window(16, 16 + 5 * UNIT_FRAMES)) == (Window(16, 48), Window(48, 96))
    assert floor_frames() == 75


@pytest.mark.parametrize("seed", range(30))
def test_property_damage_is_confined(seed: int) -> None:
    rng = random.Random(seed)
    units = rng.randint(1, 120)
    start = rng.randint(0, 1000)
    window = Window(start, start + units * UNIT_FRAMES)
    bad = {rng.randrange(window.start_frame, window.end_frame) for _ in range(rng.randint(0, 4))}
    model = FailsOnFrames(bad)
    pieces = run_window(window, model)
    assert _tiles(pieces, window)
    for p in pieces:
        has_bad = any(p.start_frame <= k < p.end_frame for k in bad)
        assert (p.status == "failed") == has_bad
        if p.status == "failed" and window.frames > floor_frames():
            assert (p.end_frame - p.start_frame) / MODEL_FPS <= 3.0
        assert (p.end_frame - p.start_frame) % UNIT_FRAMES == 0
    # a failing piece never exceeds 3 s unless the whole window was shorter than that
    assert sum(p.end_frame - p.start_frame for p in pieces) == window.frames
    assert run_window(window, FailsOnFrames(bad)) == pieces  # deterministic


def test_skipped_and_round_trip() -> None:
    (p,) = skipped([Window(0, 32)], "engine none")
    assert p.status == "skipped" and Piece.from_dict(p.to_dict()) == p
    assert p.to_dict()["start"] == 0.0 and p.to_dict()["end"] == pytest.approx(1.28)
