"""Mixing the dubbed lines over the original background.

The mix stage is deliberately simple and exact:

* every dubbed line gets one gain (``line_gain_db``: its level matched to the source speech it
  replaces, clamped to +/-6 dB) and short fades (``apply_fades``) so it starts and ends at zero;
* ``mix_lines`` adds the lines to the background at their sample positions. Samples that no
  line touches are copied, so they are bit-for-bit the background's;
* ``normalize`` applies one global gain to reach a loudness target while keeping the sample
  peak under a ceiling. There is no compressor or limiter: the output is the mix times a
  constant, so wherever no line sounds it is an exactly scaled copy of the background.

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
        mix[:, begin:end] = mix[:, begin:end] + speech[begin:end]
    return mix, speech


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


def normalize(
    mix: npt.ArrayLike,
    sample_rate: int,
    target_lufs: float,
    *,
    peak_ceiling_dbfs: float = PEAK_CEILING_DBFS,
) -> tuple[Audio, float]:
    """Scale ``mix`` by one gain toward ``target_lufs``; return ``(scaled float32, gain_db)``.

    The gain is ``target - integrated_loudness(mix)``, reduced if needed so the sample peak
    stays at or below ``peak_ceiling_dbfs`` (so the result may end up quieter than the target;
    nothing is limited or compressed). A silent mix gets 0 dB. Because the whole signal is
    multiplied by the same constant, the background keeps a correlation of exactly 1.0 with
    its original wherever no line sounds.

    ``target_lufs`` has no default on purpose: the pipeline passes ``default_target_lufs(source)``
    (the source's own loudness, -16 LUFS if silent); see that function for the rationale.
    """
    arr = np.asarray(mix)
    measured = integrated_loudness(arr, sample_rate)
    gain_db = target_lufs - measured if math.isfinite(measured) else 0.0
    peak = float(np.max(np.abs(arr))) if arr.size else 0.0
    if peak > 0.0:
        # A hair under the ceiling so that float32 rounding of the product cannot cross it.
        ceiling_db = peak_ceiling_dbfs + 20.0 * math.log10(1.0 - 1e-6)
        gain_db = min(gain_db, ceiling_db - 20.0 * math.log10(peak))
    out = np.asarray(arr, dtype=np.float32) * np.float32(10.0 ** (gain_db / 20.0))
    return out, float(gain_db)
