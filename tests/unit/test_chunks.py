"""Unit tests for dubbing_pipeline.speech_segments.chunks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dubbing_pipeline.speech_segments.chunks import Chunk, plan_chunks

M, OV = 300.0, 2.0  # defaults: first window from 0 is (150, 298]


def cuts(chunks: list[Chunk]) -> list[float]:
    return [c.core_end for c in chunks[:-1]]


def test_single_chunk_when_short() -> None:
    assert plan_chunks(120.0, [(1.0, 100.0)]) == [Chunk(0, 0.0, 120.0, 0.0, 120.0)]
    assert plan_chunks(M, [], max_seconds=M) == [Chunk(0, 0.0, M, 0.0, M)]
    assert plan_chunks(0.0, []) == [Chunk(0, 0.0, 0.0, 0.0, 0.0)]


def test_chunk_dict_round_trip() -> None:
    chunk = Chunk(3, 10.0, 320.5, 12.0, 318.5)
    data = chunk.to_json()
    assert data == {"index": 3, "start": 10.0, "end": 320.5, "core_start": 12.0, "core_end": 318.5}
    assert Chunk.from_json(data) == chunk
    assert Chunk.from_json({k: str(v) for k, v in data.items()}) == chunk
    assert chunk.duration == pytest.approx(310.5)


@pytest.mark.parametrize(
    ("duration", "max_seconds", "overlap"),
    [
        (-1.0, M, OV),
        (math.nan, M, OV),
        (math.inf, M, OV),
        (100.0, 0.0, OV),
        (100.0, M, -0.1),
        (100.0, 10.0, 5.0),
        (100.0, math.nan, OV),
        (100.0, M, math.nan),
    ],
)
def test_invalid_arguments(duration: float, max_seconds: float, overlap: float) -> None:
    with pytest.raises(ValueError):
        plan_chunks(duration, [], max_seconds=max_seconds, overlap=overlap)


def test_cut_in_middle_of_longest_pause_inside_window() -> None:
    speech = [(0.0, 100.0), (110.0, 200.0), (201.0, 250.0), (252.0, 600.0)]
    # The 10 s pause at 100-110 is before the window; 250-252 beats 200-201.
    chunks = plan_chunks(600.0, speech)
    assert cuts(chunks)[0] == pytest.approx(251.0)


def test_pause_partly_inside_window_is_measured_inside() -> None:
    # Pause 140-152 has 2 s in the window (150, 298]; pause 200-201.5 has 1.5 s.
    speech = [(0.0, 140.0), (152.0, 200.0), (201.5, 600.0)]
    assert cuts(plan_chunks(600.0, speech))[0] == pytest.approx(151.0)


def test_short_pause_loses_to_quiet_scene_change() -> None:
    speech = [(0.0, 200.0), (200.2, 260.0), (260.1, 600.0)]
    # Both gaps are below min_pause=0.3; the scene change at 260.05 is in a gap, 280 is in speech.
    chunks = plan_chunks(600.0, speech, scene_changes=[100.0, 260.05, 280.0])
    assert cuts(chunks)[0] == pytest.approx(260.05)


def test_scene_change_inside_speech_when_nothing_better() -> None:
    chunks = plan_chunks(600.0, [(0.0, 600.0)], scene_changes=[120.0, 200.0, 240.0, 299.0])
    assert cuts(chunks)[0] == pytest.approx(240.0)  # latest in the window; 299 is past 298


def test_lowest_coverage_prefers_short_gap_then_touching_edge() -> None:
    short_gap = plan_chunks(600.0, [(0.0, 200.0), (200.1, 600.0)])
    assert cuts(short_gap)[0] == pytest.approx(200.05)
    touching = plan_chunks(600.0, [(0.0, 220.0), (220.0, 600.0)])
    assert cuts(touching)[0] == pytest.approx(220.0)
    overlapping = plan_chunks(600.0, [(0.0, 230.0), (180.0, 600.0)])
    assert cuts(overlapping)[0] == pytest.approx(230.0)


def test_hard_cut_at_window_end_in_continuous_speech() -> None:
    chunks = plan_chunks(1000.0, [(0.0, 1000.0)])
    assert cuts(chunks) == pytest.approx([298.0, 596.0, 852.0])  # last window capped at D - (M/2 - OV)
    assert chunks[-1].core_end - chunks[-1].core_start == pytest.approx(M / 2 - OV)


def test_two_chunks_layout() -> None:
    chunks = plan_chunks(400.0, [(0.0, 199.0), (201.0, 400.0)])
    assert chunks == [Chunk(0, 0.0, 202.0, 0.0, 200.0), Chunk(1, 198.0, 400.0, 200.0, 400.0)]


def test_unsorted_and_out_of_range_speech_is_tolerated() -> None:
    speech = [(252.0, 900.0), (-5.0, 250.0), (10.0, 10.0)]
    assert cuts(plan_chunks(600.0, speech))[0] == pytest.approx(251.0)


def _window_has_pause(lo: float, hi: float, speech: list[tuple[float, float]], min_pause: float) -> bool:
    cursor = 0.0
    gaps = []
    for s, e in sorted(speech):
        if s > cursor:
            gaps.append((cursor, s))
        cursor = max(cursor, e)
    gaps.append((cursor, math.inf))
    return any(e - s >= min_pause and min(e, hi) - max(s, lo) > 1e-6 for s, e in gaps)


def test_guarantees_on_random_inputs() -> None:
    rng = np.random.default_rng(20240607)
    for _ in range(200):
        max_seconds = float(rng.uniform(20.0, 400.0))
        overlap = float(rng.uniform(0.0, max_seconds / 2 * 0.99))
        duration = float(rng.uniform(0.0, 12 * max_seconds))
        speech: list[tuple[float, float]] = []
        t = float(rng.uniform(0.0, 3.0))
        while t < duration:
            length = float(rng.exponential(max_seconds / rng.choice([3.0, 30.0])))
            speech.append((t, min(duration, t + length)))
            t += length + float(rng.choice([0.0, rng.exponential(0.5), rng.exponential(5.0)]))
        scenes = sorted(rng.uniform(0.0, duration, size=int(rng.integers(0, 20))).tolist())
        chunks = plan_chunks(duration, speech, scenes, max_seconds=max_seconds, overlap=overlap)

        assert [c.index for c in chunks] == list(range(len(chunks)))
        assert chunks[0].core_start == 0.0
        assert chunks[-1].core_end == duration
        for a, b in itertools.pairwise(chunks):
            assert a.core_end == b.core_start  # exact tiling, no gap, no overlap
        for c in chunks:
            assert c.start == max(0.0, c.core_start - overlap)
            assert c.end == min(duration, c.core_end + overlap)
            assert c.end - c.start <= max_seconds + overlap + 1e-9
        if len(chunks) == 1:
            assert duration <= max_seconds
            continue
        assert chunks[0].end - chunks[0].start <= max_seconds + 1e-9
        assert chunks[-1].end - chunks[-1].start <= max_seconds + 1e-9
        for c in chunks:
            assert c.core_end - c.core_start <= max_seconds - overlap + 1e-9
        for c in chunks[:-1]:
            assert c.core_end - c.core_start > max_seconds / 2
        assert chunks[-1].core_end - chunks[-1].core_start >= max_seconds / 2 - overlap - 1e-9
        assert plan_chunks(duration, speech, scenes, max_seconds=max_seconds, overlap=overlap) == chunks


def test_cut_avoids_speech_when_the_window_has_a_pause() -> None:
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(200):
        duration = float(rng.uniform(700.0, 3000.0))
        speech = []
        t = 0.0
        while t < duration:
            length = float(rng.uniform(5.0, 60.0))
            speech.append((t, min(duration, t + length)))
            t += length + float(rng.uniform(0.4, 2.0))  # every gap is a real pause
        for chunk in plan_chunks(duration, speech)[:-1]:
            lo = chunk.core_start + M / 2
            hi = min(chunk.core_start + M - OV, duration - (M / 2 - OV))
            assert lo < chunk.core_end <= hi
            if _window_has_pause(lo, hi, speech, 0.3):
                checked += 1
                assert not any(s < chunk.core_end < e for s, e in speech)
    assert checked > 500
