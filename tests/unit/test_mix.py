"""The mix stage's core: loudness measurement, line gains, fades, placement and the peak guard."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from dubbing_pipeline.dub_mix import (
    FALLBACK_TARGET_LUFS,
    PlacedLine,
    apply_fades,
    dbfs,
    default_target_lufs,
    integrated_loudness,
    line_gain_db,
    mix_lines,
    sample_peak_dbfs,
    span_scale,
    true_peak_dbfs,
)
from dubbing_pipeline.dub_mix.loudness import block_loudness, k_weighting_sos

SR = 48000


def sine(freq: float, dbfs_peak: float, seconds: float, sr: int = SR, phase: float = 0.0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return 10 ** (dbfs_peak / 20) * np.sin(2 * np.pi * freq * t + phase)


def stereo(x: np.ndarray) -> np.ndarray:
    return np.stack([x, x])


def noise(seconds: float, level: float, seed: int, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal((channels, round(seconds * SR)))).astype(np.float32)


# --- BS.1770-4 ------------------------------------------------------------------------------


def test_k_weighting_at_48k_is_the_tabulated_filter() -> None:
    sos = k_weighting_sos(48000)
    # Coefficients printed in BS.1770-4 (Tables 1 and 2).
    assert sos[0, :3] == pytest.approx([1.53512485958697, -2.69169618940638, 1.19839281085285], abs=1e-12)
    assert sos[0, 4:] == pytest.approx([-1.69065929318241, 0.73248077421585], abs=1e-12)
    assert sos[1, 4:] == pytest.approx([-1.99004745483398, 0.99007225036621], abs=1e-12)


@pytest.mark.parametrize("sr", [48000, 44100, 16000])
def test_full_scale_997hz_sine_in_one_channel_reads_minus_3_01(sr: int) -> None:
    # BS.1770-4 states that a 0 dBFS sine at 997 Hz fed to a single front channel
    # (left, right or centre) must indicate -3.01 LKFS: at 997 Hz the K-weighting gain cancels
    # the -0.691 dB constant, leaving the sine's mean square of 1/2.
    x = sine(997, 0.0, 10.0, sr)
    assert integrated_loudness(x, sr) == pytest.approx(-3.01, abs=0.01)
    assert integrated_loudness(np.stack([x, np.zeros_like(x)]), sr) == pytest.approx(-3.01, abs=0.01)


@pytest.mark.parametrize("sr", [48000, 44100])
@pytest.mark.parametrize("level", [-23.0, -33.0])
def test_ebu_tech3341_steady_sines(sr: int, level: float) -> None:
    # EBU Tech 3341 (loudness metering, "EBU mode"), minimum-requirement cases 1 and 2: a
    # 1 kHz sine with a peak of -23 (resp. -33) dBFS on both stereo channels must read
    # -23.0 (resp. -33.0) LUFS within +/-0.1 LU.
    x = stereo(sine(1000, level, 20.0, sr))
    assert integrated_loudness(x, sr) == pytest.approx(level, abs=0.1)


def test_ebu_tech3341_gating_cases() -> None:
    # EBU Tech 3341 cases 3-5 exercise the gates; all three must read -23.0 +/- 0.1 LUFS.
    # 3: -36 / -23 / -36 dBFS for 10 / 60 / 10 s (the relative gate drops the quiet parts).
    # 4: -72 / -36 / -23 / -36 / -72 dBFS for 10 / 10 / 60 / 10 / 10 s (both gates at work).
    # 5: -26 / -20 / -26 dBFS for 20 / 20.1 / 20 s (nothing gated; the powers average).
    cases: list[list[tuple[float, float]]] = [
        [(-36, 10), (-23, 60), (-36, 10)],
        [(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)],
        [(-26, 20), (-20, 20.1), (-26, 20)],
    ]
    for parts in cases:
        x = np.concatenate([sine(1000, level, seconds) for level, seconds in parts])
        assert integrated_loudness(stereo(x), SR) == pytest.approx(-23.0, abs=0.1)


def test_chunked_measurements_match_whole_signal_computations() -> None:
    # 70 s of noise spans two filter chunks (60 s) and several true-peak chunks.
    x = noise(70.0, 0.1, seed=11)
    weighted = signal.sosfilt(k_weighting_sos(SR), x.astype(np.float64), axis=-1)
    block, step = round(0.4 * SR), round(0.1 * SR)
    direct = [
        float(np.sum(np.mean(weighted[:, i : i + block] ** 2, axis=-1)))
        for i in range(0, x.shape[1] - block + 1, step)
    ]
    np.testing.assert_allclose(block_loudness(x, SR), direct, rtol=1e-9)
    whole = 20 * np.log10(np.max(np.abs(signal.resample_poly(x.astype(np.float64), 4, 1, axis=-1))))
    assert true_peak_dbfs(x, SR) == pytest.approx(whole, abs=1e-9)


def test_loudness_of_silence_and_short_signals_is_minus_inf() -> None:
    assert integrated_loudness(np.zeros((2, SR)), SR) == -math.inf
    assert integrated_loudness(sine(1000, -20, 0.3), SR) == -math.inf  # shorter than one block
    assert integrated_loudness(sine(1000, -80, 5.0), SR) == -math.inf  # under the absolute gate
    assert integrated_loudness(np.zeros(0), SR) == -math.inf


def test_dbfs_and_peaks() -> None:
    assert dbfs(sine(1000, 0.0, 1.0)) == pytest.approx(-3.0103, abs=1e-3)
    assert dbfs(np.zeros(100)) == -math.inf
    assert dbfs(np.zeros(0)) == -math.inf
    assert sample_peak_dbfs(np.zeros(10)) == -math.inf
    assert true_peak_dbfs(np.zeros((2, 10))) == -math.inf
    # A sine at a quarter of the rate, sampled 45 degrees off its crests: every sample sits
    # at 0.707 (-3.01 dBFS) while the waveform itself reaches 1.0 between samples.
    x = sine(SR / 4, 0.0, 1.0, phase=math.pi / 4)
    assert sample_peak_dbfs(x) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbfs(x, SR) == pytest.approx(0.0, abs=0.3)
    assert true_peak_dbfs(x) >= sample_peak_dbfs(x)


# --- gains and fades -------------------------------------------------------------------------


def test_line_gain_is_the_level_difference_clamped_both_ways() -> None:
    assert line_gain_db(-20.0, -23.0) == pytest.approx(3.0)
    assert line_gain_db(-23.0, -20.0) == pytest.approx(-3.0)
    assert line_gain_db(-10.0, -30.0) == 6.0
    assert line_gain_db(-40.0, -15.0) == -6.0
    assert line_gain_db(-10.0, -30.0, clamp=12.0) == 12.0
    assert line_gain_db(-math.inf, -20.0) == 0.0
    assert line_gain_db(-20.0, -math.inf) == 0.0
    with pytest.raises(ValueError):
        line_gain_db(-20.0, -20.0, clamp=-1.0)


def test_fades_are_raised_cosine_ramps_at_both_ends() -> None:
    sr = 16000
    out = apply_fades(np.ones(sr, dtype=np.float32), sr)
    n = round(0.1 * sr)
    assert out.dtype == np.float32
    assert out[0] == 0.0 and out[-1] == 0.0
    assert np.all(np.diff(out[:n]) > 0) and np.all(np.diff(out[-n:]) < 0)
    assert out[n // 2] == pytest.approx(0.5, abs=1e-3)  # half-way up a raised cosine
    assert np.all(out[n:-n] == 1.0)  # the middle is untouched
    np.testing.assert_array_equal(out[:n], out[::-1][:n])  # symmetric


def test_short_lines_fade_over_half_their_length_without_overlap() -> None:
    sr = 16000
    x = np.ones(100, dtype=np.float32)
    out = apply_fades(x, sr)
    expected = np.sin(0.5 * np.pi * np.arange(50) / 50) ** 2
    np.testing.assert_allclose(out[:50], expected, atol=1e-7)
    np.testing.assert_allclose(out[50:], expected[::-1], atol=1e-7)
    assert out.max() <= 1.0
    np.testing.assert_array_equal(apply_fades(np.ones(1, dtype=np.float32), sr), [1.0])
    assert apply_fades(np.ones(0, dtype=np.float32), sr).shape == (0,)
    assert np.all(x == 1.0)  # the input is not modified


# --- placement -------------------------------------------------------------------------------


def _lines(sr: int) -> list[PlacedLine]:
    rng = np.random.default_rng(7)
    return [
        PlacedLine(0.5, (0.3 * rng.standard_normal(round(0.6 * sr))).astype(np.float32), -2.0),
        PlacedLine(1.7503, (0.3 * rng.standard_normal(round(0.4 * sr))).astype(np.float32), 3.5),
    ]


def test_where_no_line_sounds_the_mix_is_the_background_bit_for_bit() -> None:
    bg = noise(3.0, 0.05, seed=1)
    bg[:, ::97] = -0.0  # negative zeros must survive too (-0.0 + 0.0 would give +0.0)
    lines = _lines(SR)
    mix, speech = mix_lines(bg, SR, lines)
    assert mix.shape == bg.shape and mix.dtype == np.float32 and speech.shape == (bg.shape[1],)
    covered = np.zeros(bg.shape[1], dtype=bool)
    for line in lines:
        start = round(line.start * SR)
        covered[start : start + len(line.audio)] = True
    assert (~covered).sum() > SR  # most of the file is untouched
    assert mix[:, ~covered].view(np.uint32).tobytes() == bg[:, ~covered].view(np.uint32).tobytes()
    assert np.all(speech[~covered] == 0.0)
    # Inside the lines: the same speech on every channel, on top of the background.
    np.testing.assert_allclose(mix[0] - bg[0], speech, atol=1e-6)
    np.testing.assert_allclose(mix[1] - bg[1], speech, atol=1e-6)
    again, _ = mix_lines(bg, SR, lines)
    assert again.tobytes() == mix.tobytes()  # deterministic


def test_lines_land_at_exact_sample_offsets_with_their_gain() -> None:
    bg = np.zeros((2, SR), dtype=np.float32)
    line = np.linspace(0.1, 0.5, 480, dtype=np.float32)
    start = 0.123456  # 5925.888 samples: rounds to 5926
    _, speech = mix_lines(bg, SR, [PlacedLine(start, line, -6.0)], fade=0.0)
    pos = round(start * SR)
    assert pos == 5926
    nonzero = np.flatnonzero(speech)
    assert nonzero[0] == pos and nonzero[-1] == pos + 479
    np.testing.assert_allclose(speech[pos : pos + 480], line * 10 ** (-6 / 20), rtol=1e-6)
    # With the default fades the line's first and last samples are zero, the rest in place.
    _, faded = mix_lines(bg, SR, [PlacedLine(start, np.ones(24000, dtype=np.float32), 0.0)])
    nonzero = np.flatnonzero(faded)
    assert nonzero[0] == pos + 1 and nonzero[-1] == pos + 23998
    assert np.all(faded[pos + 4800 : pos + 24000 - 4800] == 1.0)


def test_lines_are_truncated_at_the_end_of_the_background() -> None:
    bg = noise(1.0, 0.01, seed=2)
    line = np.full(SR // 2, 0.25, dtype=np.float32)
    mix, speech = mix_lines(bg, SR, [PlacedLine(0.8, line, 0.0), PlacedLine(-0.1, line, 0.0)])
    assert mix.shape == bg.shape
    assert speech[-1] == 0.0  # the cut end is faded too
    assert speech[0] == 0.0
    assert speech[round(0.9 * SR)] == pytest.approx(0.25)
    assert np.all(speech[round(0.4 * SR) + 1 : round(0.8 * SR)] == 0.0)
    mix2, speech2 = mix_lines(bg, SR, [PlacedLine(1.5, line, 0.0)])  # entirely past the end
    assert mix2.tobytes() == bg.tobytes() and not speech2.any()


def test_mono_background_and_overlapping_lines_add() -> None:
    bg = np.zeros((1, SR), dtype=np.float32)
    line = np.full(SR // 4, 0.25, dtype=np.float32)
    mix, speech = mix_lines(bg, SR, [PlacedLine(0.1, line, 0.0), PlacedLine(0.2, line, 0.0)], fade=0.0)
    assert mix.shape == (1, SR)
    assert speech[round(0.25 * SR)] == pytest.approx(0.5)


# --- the peak guard and edit locality -----------------------------------------------------------


def test_span_scale_is_the_largest_factor_under_the_ceiling() -> None:
    c = 10 ** (-1.0 / 20)
    bg = np.full((2, 4), 0.5)
    assert span_scale(bg, np.full(4, 0.1), -1.0) == 1.0  # 0.6 is under the ceiling: untouched
    s = span_scale(bg, np.array([0.0, 0.8, -0.4, 0.2]), -1.0)
    assert s == pytest.approx((c - 0.5) / 0.8, rel=1e-5)
    assert np.max(np.abs(bg + s * np.array([0.0, 0.8, -0.4, 0.2]))) <= c
    # negative swings count too, and a background already over the ceiling is not the speech's fault
    assert span_scale(np.array([[-0.5, 0.95]]), np.array([-0.8, 0.9]), -1.0) == pytest.approx(
        (c - 0.5) / 0.8, rel=1e-5
    )
    assert span_scale(np.zeros((1, 3)), np.zeros(3), -1.0) == 1.0


def test_lines_are_turned_down_only_where_the_mix_would_clip() -> None:
    bg = noise(4.0, 0.05, seed=5)
    loud = PlacedLine(0.5, np.full(SR // 2, 0.99, dtype=np.float32), 0.0)
    soft = PlacedLine(2.5, np.full(SR // 2, 0.2, dtype=np.float32), 0.0)
    mix, _ = mix_lines(bg, SR, [loud, soft], peak_ceiling_dbfs=-1.0)
    free, _ = mix_lines(bg, SR, [loud, soft])
    assert sample_peak_dbfs(mix) <= -1.0 < sample_peak_dbfs(free)
    first = slice(round(0.5 * SR), SR)
    assert not np.array_equal(mix[:, first], free[:, first])  # the loud line went down
    rest = np.ones(bg.shape[1], dtype=bool)
    rest[first] = False
    assert np.array_equal(mix[:, rest], free[:, rest])  # the soft line and the background did not


def test_changing_one_line_changes_the_mix_only_in_its_span() -> None:
    bg = noise(4.0, 0.05, seed=6)
    lines = _lines(SR)
    before, _ = mix_lines(bg, SR, lines, peak_ceiling_dbfs=-1.0)
    other = PlacedLine(lines[0].start, noise(0.7, 0.3, seed=7, channels=1)[0], 2.0)
    after, _ = mix_lines(bg, SR, [other, *lines[1:]], peak_ceiling_dbfs=-1.0)
    a = round(lines[0].start * SR)
    b = a + max(len(lines[0].audio), len(other.audio))
    outside = np.ones(bg.shape[1], dtype=bool)
    outside[a:b] = False
    assert np.array_equal(before[:, outside], after[:, outside])
    assert not np.array_equal(before[:, a:b], after[:, a:b])


def test_default_target_matches_the_source_or_falls_back() -> None:
    src = stereo(sine(1000, -20.0, 5.0))
    assert default_target_lufs(src, SR) == pytest.approx(-20.0, abs=0.1)
    assert default_target_lufs(np.zeros((2, SR)), SR) == FALLBACK_TARGET_LUFS == -16.0
