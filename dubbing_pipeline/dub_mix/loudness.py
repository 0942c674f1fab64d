"""Loudness and level measurements: ITU-R BS.1770-4 integrated loudness, RMS and true peak.

Everything here is plain numpy/scipy on float arrays shaped ``(channels, samples)`` or
``(samples,)``. A silent (or too short) signal measures ``-inf``, never NaN or an error.

BS.1770-4 in brief
------------------
1. Each channel is K-weighted: a high shelf (about +4 dB above ~1.7 kHz, modelling the head)
   followed by a second-order high pass around 38 Hz (the "RLB" curve).
2. The weighted signal is cut into 400 ms blocks that start every 100 ms (75 % overlap).
   A block's loudness is ``-0.691 + 10*log10(sum_i G_i * meansquare_i)`` with the channel
   weights ``G_i`` (1.0 for front channels, 1.41 for surrounds, 0 for the LFE).
3. Blocks below -70 LUFS are dropped (absolute gate); then blocks more than 10 LU below
   the loudness of the remaining blocks are dropped (relative gate); the integrated loudness
   is the loudness of the mean power of what is left.

The standard tabulates the two K-weighting biquads for 48 kHz only. For any other rate the
48 kHz sections are mapped back to continuous time (inverse bilinear transform) and
re-discretised at the new rate, both with the frequency pre-warped at 1 kHz so the curve is
exact there (where the reference signals live) and at 48 kHz the tabulated coefficients are
reproduced exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# BS.1770-4, Table 1 and Table 2: the K-weighting sections at 48 kHz (a0 normalised to 1).
_SHELF_48K_B = (1.53512485958697, -2.69169618940638, 1.19839281085285)
_SHELF_48K_A = (1.0, -1.69065929318241, 0.73248077421585)
_HIGHPASS_48K_B = (1.0, -2.0, 1.0)
_HIGHPASS_48K_A = (1.0, -1.99004745483398, 0.99007225036621)
_REF_RATE = 48000
_WARP_HZ = 1000.0

BLOCK_S = 0.400
STEP_S = 0.100
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
_OFFSET = -0.691
_CHUNK_STEPS = 600  # 60 s of signal filtered at a time
# Channel weights for the usual 5.1 order L, R, C, LFE, Ls, Rs (BS.1770-4, Table 3).
SURROUND_51_WEIGHTS = (1.0, 1.0, 1.0, 0.0, 1.41, 1.41)


def _signal() -> Any:
    """``scipy.signal``, imported on first use: it takes over a second to import, and every process
    that builds the pipeline's definitions imports this module."""
    from scipy import signal  # type: ignore[import-untyped,unused-ignore]  # lazy: scipy.signal loads in 1-2 s

    return signal


def _warp_constant(rate: float) -> float:
    """``c`` of the pre-warped bilinear map ``s = c (1 - z^-1) / (1 + z^-1)`` at ``rate``."""
    w = 2.0 * math.pi * _WARP_HZ
    return w / math.tan(w / (2.0 * rate))


def _move_biquad(
    b: Sequence[float], a: Sequence[float], rate_from: float, rate_to: float
) -> tuple[FloatArray, FloatArray]:
    """Move a biquad designed at ``rate_from`` to ``rate_to`` through its analog prototype."""
    if rate_from == rate_to:
        return np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64)
    c_from, c_to = _warp_constant(rate_from), _warp_constant(rate_to)

    def to_analog(coef: Sequence[float]) -> FloatArray:
        # z^-1 = (c - s) / (c + s); multiply the section by (c + s)^2 (descending powers of s).
        plus = np.array([1.0, c_from])
        minus = np.array([-1.0, c_from])
        out = (
            coef[0] * np.convolve(plus, plus)
            + coef[1] * np.convolve(minus, plus)
            + coef[2] * np.convolve(minus, minus)
        )
        return np.asarray(out, dtype=np.float64)

    def to_digital(analog: FloatArray) -> FloatArray:
        # s = c (1 - z^-1) / (1 + z^-1); multiply by (1 + z^-1)^2; polynomials in z^-1.
        one_minus = np.array([1.0, -1.0])  # 1 - z^-1, ascending powers of z^-1
        one_plus = np.array([1.0, 1.0])
        s2, s1, s0 = analog  # descending powers of s
        out = (
            s2 * c_to * c_to * np.convolve(one_minus, one_minus)
            + s1 * c_to * np.convolve(one_minus, one_plus)
            + s0 * np.convolve(one_plus, one_plus)
        )
        return np.asarray(out, dtype=np.float64)

    num = to_digital(to_analog(b))
    den = to_digital(to_analog(a))
    return num / den[0], den / den[0]


@lru_cache(maxsize=16)
def _k_weighting_rows(sample_rate: int) -> tuple[tuple[float, ...], ...]:
    rows = []
    for b, a in ((_SHELF_48K_B, _SHELF_48K_A), (_HIGHPASS_48K_B, _HIGHPASS_48K_A)):
        nb, na = _move_biquad(b, a, _REF_RATE, float(sample_rate))
        rows.append(tuple(float(v) for v in np.concatenate([nb, na])))
    return tuple(rows)


def k_weighting_sos(sample_rate: int) -> FloatArray:
    """The K-weighting filter at ``sample_rate`` as second-order sections, shape (2, 6)."""
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    return np.array(_k_weighting_rows(int(sample_rate)), dtype=np.float64)


def _as_channels(x: npt.ArrayLike) -> npt.NDArray[np.generic]:
    arr = np.asarray(x)
    if arr.ndim == 1:
        return arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"expected (samples,) or (channels, samples), got shape {arr.shape}")
    return arr


def _weights(channels: int, channel_weights: Sequence[float] | None) -> FloatArray:
    if channel_weights is None:
        chosen: Sequence[float] = SURROUND_51_WEIGHTS if channels == 6 else (1.0,) * channels
    else:
        chosen = channel_weights
    if len(chosen) != channels:
        raise ValueError(f"{len(chosen)} channel weights for {channels} channels")
    return np.asarray(chosen, dtype=np.float64)


def block_loudness(
    x: npt.ArrayLike, sample_rate: int, *, channel_weights: Sequence[float] | None = None
) -> FloatArray:
    """Weighted mean-square power of every 400 ms gating block (step 100 ms), shape (blocks,).

    Returns the power ``sum_i G_i z_i`` (not yet in LUFS), one value per block; an input
    shorter than one block gives an empty array. The signal is filtered in chunks of
    ``_CHUNK_STEPS`` steps (the filter state carried across), so a feature film needs only a
    minute of float64 working memory; a block is four consecutive 100 ms steps.
    """
    arr = _as_channels(x)
    channels, n = arr.shape
    weights = _weights(channels, channel_weights)
    step = round(STEP_S * sample_rate)
    steps_per_block = round(BLOCK_S / STEP_S)
    total_steps = n // step if step > 0 else 0
    if total_steps < steps_per_block:
        return np.zeros(0, dtype=np.float64)
    sos = k_weighting_sos(int(sample_rate))
    state = np.zeros((sos.shape[0], channels, 2), dtype=np.float64)
    step_energy = np.empty((channels, total_steps), dtype=np.float64)
    for first in range(0, total_steps, _CHUNK_STEPS):
        count = min(_CHUNK_STEPS, total_steps - first)
        chunk = np.asarray(arr[:, first * step : (first + count) * step], dtype=np.float64)
        weighted, state = _signal().sosfilt(sos, chunk, axis=-1, zi=state)
        squared = weighted * weighted
        step_energy[:, first : first + count] = squared.reshape(channels, count, step).sum(axis=-1)
    window = np.lib.stride_tricks.sliding_window_view(step_energy, steps_per_block, axis=-1)
    per_channel = window.sum(axis=-1) / (steps_per_block * step)
    power: FloatArray = np.asarray(weights @ per_channel, dtype=np.float64)
    return power


def _lufs(power: float) -> float:
    return _OFFSET + 10.0 * math.log10(power) if power > 0.0 else -math.inf


def integrated_loudness(
    x: npt.ArrayLike, sample_rate: int, *, channel_weights: Sequence[float] | None = None
) -> float:
    """Gated integrated loudness in LUFS (BS.1770-4); ``-inf`` for silence or < 400 ms.

    ``x`` is ``(samples,)`` or ``(channels, samples)`` at full scale 1.0. Channel weights
    default to 1.0 each, or to the 5.1 weights (L R C LFE Ls Rs) for six channels.
    """
    power = block_loudness(x, sample_rate, channel_weights=channel_weights)
    if power.size == 0:
        return -math.inf
    with np.errstate(divide="ignore"):
        loud = _OFFSET + 10.0 * np.log10(power)
    above_abs = power[loud > ABSOLUTE_GATE_LUFS]
    if above_abs.size == 0:
        return -math.inf
    relative_gate = _lufs(float(np.mean(above_abs))) + RELATIVE_GATE_LU
    kept = power[(loud > ABSOLUTE_GATE_LUFS) & (loud > relative_gate)]
    if kept.size == 0:
        return -math.inf
    return _lufs(float(np.mean(kept)))


def dbfs(x: npt.ArrayLike) -> float:
    """RMS level in dBFS over all samples and channels (full-scale sine: -3.01); ``-inf`` if silent.

    This is the plain ``20*log10(rms)`` convention, without the AES17 +3 dB sine offset.
    """
    flat = np.asarray(x).reshape(-1)
    if flat.size == 0:
        return -math.inf
    chunk = 1 << 22
    total = 0.0
    for first in range(0, flat.size, chunk):
        part = np.asarray(flat[first : first + chunk], dtype=np.float64)
        total += float(np.dot(part, part))
    mean_square = total / flat.size
    return 10.0 * math.log10(mean_square) if mean_square > 0.0 else -math.inf


def sample_peak_dbfs(x: npt.ArrayLike) -> float:
    """Largest absolute sample in dBFS; ``-inf`` if silent or empty."""
    arr = np.asarray(x)
    peak = float(max(np.max(arr), -np.min(arr))) if arr.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0.0 else -math.inf


def true_peak_dbfs(x: npt.ArrayLike, sample_rate: int | None = None, *, oversample: int = 4) -> float:
    """Approximate true peak (dBTP): the sample peak after ``oversample``x polyphase upsampling.

    Follows the idea of BS.1770-4 Annex 2 (4x oversampling at 48 kHz catches most inter-sample
    peaks); the interpolation filter is scipy's Kaiser-windowed polyphase design, so readings
    may differ from a certified meter by a few tenths of a dB. ``sample_rate`` is accepted for
    symmetry with the other measurements and does not change the result. Never lower than
    the sample peak. Long signals are upsampled in overlapping chunks (bounded memory).
    """
    del sample_rate
    chans = _as_channels(x)
    n = chans.shape[1]
    if chans.size == 0:
        return -math.inf
    peak = 10.0 ** (sample_peak_dbfs(chans) / 20.0)
    if oversample > 1:
        margin = 64  # input samples; more than the interpolation filter reaches
        chunk = 1 << 20
        for first in range(0, n, chunk):
            lo, hi = max(0, first - margin), min(n, first + chunk + margin)
            part = np.asarray(chans[:, lo:hi], dtype=np.float64)
            up = _signal().resample_poly(part, oversample, 1, axis=-1)
            keep = up[:, (first - lo) * oversample : (min(n, first + chunk) - lo) * oversample]
            peak = max(peak, float(np.max(np.abs(keep))))
    return 20.0 * math.log10(peak) if peak > 0.0 else -math.inf
