"""Mixing the dubbed lines over the original background.

The mix stage is deliberately simple, exact and local:

* every dubbed line gets one gain (``line_gain_db``: its level matched to the source speech it
  replaces, clamped to +/-6 dB) and short fades (``apply_fades``) so it starts and ends at zero;
* ``mix_lines`` adds the lines to the background at their sample positions. Samples that no
  line touches are copied, so they are bit-for-bit the background's;
* where the sum of the background and the lines would pass a peak ceiling, only the lines of
  that stretch are turned down (``span_scale``), never the background and never anything else.

There is no global gain, compressor or limiter: each line's loudness is matched to the speech it
replaces, over the source's own background, so the dub plays as loud as the source did (the stage
reports both, BS.1770). Every decision depends on one line (or on lines that overlap), so
changing one line changes the mix only in that line's span: the edit loop re-renders one line and
leaves every other sample as it was.

All functions are pure and deterministic (same inputs, same bytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dubbing_pipeline.dub_mix.loudness import integrated_loudness

Audio = npt.NDArray[np.float32]

GAIN_CLAMP_DB = 6.0
FADE_S = 0.1
PEAK_CEILING_DBFS = -1.0
FALLBACK_TARGET_LUFS = -16.0


def line_gain_db(source_speech_dbfs: float, dubbed_dbfs: float, clamp: float = GAIN_CLAMP_DB) -> float:
    """Gain (dB) that brings a dubbed line to the level of the source speech it replaces.

    The difference ``source - dubbed`` of the two RMS levels, clamped to ``[-clamp, +clamp]`` so
    a badly measured line (a breath, a clipped segment) can never be boosted or cut by much.
    When either level is not finite (a silent line or a silent source) there is nothing to
    match and the gain is 0 dB.
    """
    if clamp < 0:
        raise ValueError(f"clamp must be >= 0, got {clamp}")
    if not (math.isfinite(source_speech_dbfs) and math.isfinite(dubbed_dbfs)):
        return 0.0
    return float(min(clamp, max(-clamp, source_speech_dbfs - dubbed_dbfs)))


def fade_ramp(length: int) -> npt.NDArray[np.float64]:
    """Raised-cosine fade-in of ``length`` samples: ``sin^2(pi/2 * n/length)``, from exactly 0 up."""
    n = np.arange(length, dtype=np.float64)
    ramp: npt.NDArray[np.float64] = np.sin(0.5 * np.pi * n / max(length, 1)) ** 2
    return ramp


def apply_fades(x: npt.ArrayLike, sample_rate: int, fade: float = FADE_S) -> Audio:
    """Raised-cosine fade in and out (``fade`` seconds each) along the last axis; a float32 copy.

    The first and the last sample become exactly 0, so a line never clicks in or out. A line
    shorter than two fades gets fades of half its length (they meet in the middle and never
    overlap).
    """
    arr = np.array(x, dtype=np.float32, copy=True)
    n = arr.shape[-1] if arr.ndim else 0
    length = min(round(fade * sample_rate), n // 2)
    if length <= 0:
        return arr
    ramp = fade_ramp(length)
    arr[..., :length] = (arr[..., :length] * ramp).astype(np.float32)
    arr[..., n - length :] = (arr[..., n - length :] * ramp[::-1]).astype(np.float32)
    return arr


@dataclass
class PlacedLine:
    """One dubbed line: where it starts (seconds), its mono float32 audio at the mix rate, its gain."""

    start: float
    audio: npt.NDArray[np.float32]
    gain_db: float = 0.0


def _mono(audio: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(audio, dtype=np.float64)
    if arr.ndim == 2:
        return np.asarray(arr.mean(axis=0), dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"a line's audio must be (samples,) or (channels, samples), got {arr.shape}")
    return arr


def mix_lines(
    background: npt.ArrayLike,
    sample_rate: int,
    lines: Sequence[PlacedLine],
    *,
    fade: float = FADE_S,
    peak_ceiling_dbfs: float | None = None,
) -> tuple[Audio, Audio]:
    """Add the dubbed ``lines`` to ``background`` ``(channels, samples)``; return ``(mix, speech_bus)``.

    Each line is placed at sample ``round(start * sample_rate)``, cut to the background's
    extent (a line running past the end is truncated; one starting before 0 loses its head),
    faded (on the part that remains, so a cut edge is faded too), scaled by its gain and
    added to every channel. Lines may overlap each other; they add up in the order given.

    ``speech_bus`` is the mono sum of the processed lines, float32 ``(samples,)``. ``mix`` is
    float32 ``(channels, samples)``: ``background + speech_bus`` (a float32 addition) on the
    samples covered by at least one line and an exact copy of ``background`` everywhere else
    (bit for bit when the background is float32, as the stems are; other dtypes are converted).

    With ``peak_ceiling_dbfs``, the lines of each stretch where lines sound (overlapping lines form
    one stretch) are scaled down by ``span_scale`` wherever the mix would pass the ceiling there;
    the returned ``speech_bus`` is the scaled one.
    """
    bg = np.asarray(background)
    if bg.ndim == 1:
        bg = bg[np.newaxis, :]
    if bg.ndim != 2:
        raise ValueError(f"background must be (channels, samples), got shape {bg.shape}")
    total = bg.shape[1]
    speech = np.zeros(total, dtype=np.float32)
    spans: list[tuple[int, int]] = []
    for line in lines:
        audio = _mono(line.audio)
        pos = round(line.start * sample_rate)
        head = max(0, -pos)
        begin = max(0, pos)
        end = min(total, pos + audio.shape[0])
        if end <= begin:
            continue
        piece = apply_fades(audio[head : head + (end - begin)], sample_rate, fade).astype(np.float64)
        speech[begin:end] += (piece * (10.0 ** (line.gain_db / 20.0))).astype(np.float32)
        spans.append((begin, end))
    mix = np.array(bg, dtype=np.float32, copy=True)
    for begin, end in _merge(spans):
        if peak_ceiling_dbfs is not None:
            scale = span_scale(mix[:, begin:end], speech[begin:end], peak_ceiling_dbfs)
            if scale < 1.0:
                speech[begin:end] = (speech[begin:end] * np.float32(scale)).astype(np.float32)
        mix[:, begin:end] = mix[:, begin:end] + speech[begin:end]
    return mix, speech


def span_scale(background: npt.ArrayLike, speech: npt.ArrayLike, ceiling_dbfs: float) -> float:
    """The largest factor in ``[0, 1]`` for ``speech`` (mono) so that ``background`` (channels,
    samples) plus the scaled speech stays at or under ``ceiling_dbfs`` on every sample where the
    background alone does (a source already over the ceiling is left as it was).

    Per sample, ``|b + s*x| <= c`` holds for ``s`` in an interval around 0 (when ``|b| <= c``);
    the answer is the smallest upper end of those intervals, capped at 1.
    """
    bg = np.atleast_2d(np.asarray(background, dtype=np.float64))
    x = np.asarray(speech, dtype=np.float64)[np.newaxis, :]
    # a hair under the ceiling, so that float32 rounding of the sum cannot cross it
    c = 10.0 ** (ceiling_dbfs / 20.0) * (1.0 - 1e-6)
    active = (np.abs(bg) <= c) & (x != 0.0)
    if not active.any():
        return 1.0
    xs = np.broadcast_to(x, bg.shape)[active]
    b = bg[active]
    upper = np.where(xs > 0, (c - b) / np.where(xs > 0, xs, 1.0), (-c - b) / np.where(xs < 0, xs, -1.0))
    return float(min(1.0, max(0.0, float(upper.min()))))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def default_target_lufs(source_mix: npt.ArrayLike, sample_rate: int) -> float:
    """The loudness target the pipeline uses by default: the source mix's own integrated loudness.

    Rationale: the dub replaces only the voices, so the finished video should play exactly as
    loud as the original did; viewers switching between language tracks (or between the
    original and the dub) hear no jump, and whatever loudness the publisher mastered to (EBU
    R128 -23, streaming -14/-16, a film's dialogue-anchored level) is preserved without the
    pipeline having to guess the delivery spec. Only when the source measures silent (every
    block below the -70 LUFS gate, or under 400 ms) is there nothing to match, and the
    target falls back to -16 LUFS, a common level for online video and podcasts.
    """
    measured = integrated_loudness(source_mix, sample_rate)
    return measured if math.isfinite(measured) else FALLBACK_TARGET_LUFS
