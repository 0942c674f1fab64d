"""Window planning for lip-sync: margins, merging, 16-frame units, caps, face-less frames, frame counts."""

from __future__ import annotations

import itertools
import random

import pytest

from dubbing_pipeline.lip_sync.windows import (
    MODEL_FPS,
    UNIT_FRAMES,
    Window,
    align,
    cap_window,
    count_source_frames,
    exclude_faceless,
    merge_windows,
    plan_windows,
    speech_regions,
)


def _check_grid(plan_windows_: list[Window], duration: float) -> None:
    limit = int(duration * MODEL_FPS + 1e-6)
    for w in plan_windows_:
        assert w.frames % UNIT_FRAMES == 0 and w.frames >= UNIT_FRAMES
        assert 0 <= w.start_frame < w.end_frame <= limit
    for a, b in itertools.pairwise(plan_windows_):
        assert a.end_frame <= b.start_frame


def test_margins_and_alignment() -> None:
    plan = plan_windows([(2.0, 3.0)], duration=10.0, fps=25.0)
    (w,) = plan.windows
    # 1.6 s .. 3.4 s = frames 40..85 (45 frames) → 48 frames from 40
    assert (w.start_frame, w.end_frame) == (40, 88)
    assert w.start == pytest.approx(1.6) and w.frames % UNIT_FRAMES == 0
    assert w.start <= 2.0 - 0.4 + 1e-9 and w.end >= 3.0 + 0.4 - 1e-9


def test_gaps_under_two_seconds_merge_and_longer_gaps_do_not() -> None:
    assert speech_regions([(1.0, 2.0), (3.9, 4.5)]) == [(1.0, 4.5)]
    assert speech_regions([(1.0, 2.0), (4.0, 4.5)]) == [(1.0, 2.0), (4.0, 4.5)]
    plan = plan_windows([(1.0, 2.0), (3.9, 4.5), (8.0, 9.0)], duration=12.0, fps=25.0)
    assert len(plan.windows) == 2
    assert plan.windows[0].start <= 0.6 + 1e-9 and plan.windows[0].end >= 4.9 - 1e-9
    assert plan.windows[1].start <= 7.6 + 1e-9


def test_window_at_the_end_of_the_video_moves_back() -> None:
    plan = plan_windows([(9.5, 9.9)], duration=10.0, fps=25.0)
    (w,) = plan.windows
    assert w.end_frame == 250 and w.frames % UNIT_FRAMES == 0 and w.start <= 9.1


def test_video_shorter_than_a_unit_has_no_window() -> None:
    assert align(0.0, 0.5, 10) is None
    plan = plan_windows([(0.1, 0.4)], duration=0.5, fps=25.0)
    assert plan.windows == [] and plan.frames_skipped_silence == plan.frames_total


def test_caps_per_engine() -> None:
    long = [(0.5, 99.0)]
    latentsync = plan_windows(long, duration=100.0, fps=25.0, max_window_seconds=30.0)
    musetalk = plan_windows(long, duration=100.0, fps=25.0, max_window_seconds=120.0)
    assert len(musetalk.windows) == 1
    assert len(latentsync.windows) == 4
    assert all(w.seconds <= 30.0 for w in latentsync.windows)
    # the pieces tile the capped window, without gaps, in whole units
    assert latentsync.windows[0].start_frame == musetalk.windows[0].start_frame
    assert latentsync.windows[-1].end_frame == musetalk.windows[0].end_frame
    assert cap_window(Window(0, 64), 32) == [Window(0, 32), Window(32, 64)]
    assert [w.frames for w in cap_window(Window(0, 80), 32)] == [32, 32, 16]


def test_faceless_frames_split_windows_and_short_pieces_drop() -> None:
    mask = [True] * 100 + [False] * 20 + [True] * 10 + [False] * 5 + [True] * 40
    # 100 face frames → 96 (6 units); 10 → dropped (< 1 unit); 41 (135..175) → 32 (2 units)
    assert exclude_faceless(Window(0, 176), [*mask, True, True]) == [Window(0, 96), Window(135, 167)]


def test_faceless_run_is_excluded_and_counted() -> None:
    fps, duration = 25.0, 12.0
    n = 300
    face = [not (125 <= j < 175) for j in range(n)]
    plan = plan_windows([(1.0, 10.0)], duration=duration, fps=fps, face=face)
    for w in plan.windows:
        assert w.end_frame <= 125 or w.start_frame >= 175
    assert plan.frames_skipped_no_face >= 50
    assert plan.frames_to_model + plan.frames_skipped_no_face + plan.frames_skipped_silence == n


def test_other_frame_rates_map_faces_and_count_exactly() -> None:
    fps, duration = 30000 / 1001, 10.0
    n = round(duration * fps)
    face = [j < 150 or j >= 200 for j in range(n)]
    plan = plan_windows([(0.5, 9.0)], duration=duration, fps=fps, face=face)
    for w in plan.windows:
        assert not (w.start < 200 / fps and w.end > 150 / fps), w
    assert plan.frames_to_model + plan.frames_skipped_no_face + plan.frames_skipped_silence == n


def test_merge_windows_joins_touching() -> None:
    assert merge_windows([Window(16, 32), Window(0, 16), Window(48, 64)]) == [Window(0, 32), Window(48, 64)]


@pytest.mark.parametrize("seed", range(40))
def test_property_frame_counts_add_up_and_windows_cover_speech(seed: int) -> None:
    rng = random.Random(seed)
    fps = rng.choice([23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0])
    duration = rng.uniform(1.0, 200.0)
    n = round(duration * fps)
    lines, t = [], rng.uniform(0.0, 3.0)
    while t < duration - 0.3 and len(lines) < 40:
        length = rng.uniform(0.2, 6.0)
        lines.append((t, min(duration, t + length)))
        t += length + rng.choice([rng.uniform(0.05, 1.9), rng.uniform(2.1, 12.0)])
    face: list[bool] | None = None
    if rng.random() < 0.7:
        face = []
        while len(face) < n:
            face += [rng.random() < 0.75] * rng.randint(1, 200)
        face = face[:n]
    cap = rng.choice([30.0, 120.0, 10.0])
    plan = plan_windows(lines, duration=duration, fps=fps, face=face, max_window_seconds=cap)
    assert plan.frames_to_model + plan.frames_skipped_no_face + plan.frames_skipped_silence == n
    assert min(plan.frames_to_model, plan.frames_skipped_no_face, plan.frames_skipped_silence) >= 0
    _check_grid(plan.windows, duration)
    _check_grid(plan.speech_windows, duration)
    for w in plan.windows:
        assert w.seconds <= cap + 1e-9
        assert any(s.start_frame <= w.start_frame and w.end_frame <= s.end_frame for s in plan.speech_windows)
    if face is None:
        assert plan.windows == plan.speech_windows and plan.frames_skipped_no_face == 0
        # every spoken moment (inside the video's last full model frame) is inside a window
        limit = int(duration * MODEL_FPS + 1e-6) / MODEL_FPS
        for s, e in lines:
            for k in range(5):
                t = s + (e - s) * k / 4
                if limit >= 16 / MODEL_FPS and t < limit - 1e-6:
                    assert any(w.start - 1e-9 <= t <= w.end + 1e-9 for w in plan.windows), (t, plan.windows)
    else:
        # no model frame of a window shows a face-less source frame
        for w in plan.windows:
            for k in range(w.start_frame, w.end_frame):
                j = min(n - 1, int(k * fps / MODEL_FPS + 1e-6))
                assert face[j]
    assert count_source_frames(plan.windows, fps, n) == plan.frames_to_model
    # deterministic
    assert plan_windows(lines, duration=duration, fps=fps, face=face, max_window_seconds=cap) == plan


def test_counts_use_one_boundary_function() -> None:
    # adjacent windows count every frame exactly once
    fps, n = 29.97, 300
    whole = count_source_frames([Window(0, 160)], fps, n)
    parts = count_source_frames([Window(0, 48), Window(48, 112), Window(112, 160)], fps, n)
    assert whole == parts


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        plan_windows([], duration=0.0, fps=25.0)
    with pytest.raises(ValueError):
        plan_windows([], duration=10.0, fps=25.0, face=[True] * 3)
    with pytest.raises(ValueError):
        plan_windows([], duration=10.0, fps=25.0, max_window_seconds=0.1)
