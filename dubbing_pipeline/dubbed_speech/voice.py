"""CPU voice matching: move a synthetic voice toward the original speaker's pitch.

Each global speaker's median F0 is measured on their source speech (``median_f0``). The
engine voice is picked by it (``voice_for_speaker``: below 165 Hz a ``male`` voice, else
``female``) and every synthesized line is then shifted to that median with Praat's
"Change gender" (PSOLA; ``match_voice``), so two speakers of the same gender still sound
apart and a male-only engine (Piper's joe) can voice a female speaker.

Formant shift: the vocal tract of a higher voice is shorter, so a large pitch change
without a formant change sounds like a chipmunk (up) or a giant (down). With
``gender_shift=True`` the formants move with the pitch only across a gender boundary:

* F0 ratio (target / synthetic median) > 1.15 → formant shift ratio 1.1 (male → female),
* F0 ratio < 1 / 1.15 → formant shift ratio 1 / 1.1 (female → male),
* otherwise 1.0 (same gender: pitch only).

The duration is kept (duration factor 1; the output has exactly the input's samples), and
the output is deterministic: Praat's PSOLA draws random numbers, so its generator is seeded
before every call (under a lock: the generator is global to the process).
``DUBBING_VOICE_MATCH=off`` skips the pitch shift (the voice choice still applies).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PITCH_FLOOR = 75.0
PITCH_CEILING = 600.0
TIME_STEP = 0.01
MALE_FEMALE_F0 = 165.0
"""Median F0 (Hz) below which a speaker gets a male engine voice."""
GENDER_F0_RATIO = 1.15
FORMANT_SHIFT = 1.1
MIN_VOICED_FRAMES = 3
PRAAT_SEED = 20240611
"""Praat's random generator is seeded with this before every "Change gender" (same bytes twice)."""
_PRAAT_LOCK = threading.Lock()
MIN_SHIFT = 0.02
"""Relative pitch differences below this are left alone (2 %, about a third of a semitone)."""


def _praat() -> Any:
    """Parselmouth (Praat), imported at the first measurement or shift of a run, not with the stage."""
    import parselmouth  # lazy: Praat costs 60 ms to import

    return parselmouth


def _sound(audio: np.ndarray, sr: int) -> Any:
    data = np.asarray(audio, dtype=np.float64).reshape(-1)
    return _praat().Sound(data, sampling_frequency=float(sr))


def _check(audio: np.ndarray, sr: int) -> np.ndarray:
    data = np.asarray(audio)
    if data.ndim != 1:
        raise ValueError(f"expected mono 1-D audio, got shape {data.shape}")
    if int(sr) <= 0:
        raise ValueError(f"bad sample rate {sr}")
    if data.size and not np.all(np.isfinite(data)):
        raise ValueError("audio has non-finite samples")
    return data


def median_f0(audio: np.ndarray, sr: int) -> float | None:
    """Median F0 (Hz) over the voiced frames (Praat autocorrelation pitch, 75–600 Hz).

    None when there are fewer than three voiced 10 ms frames (silence, noise, too short).
    """
    data = _check(audio, sr)
    if data.size < int(0.1 * sr) or not np.any(data):
        return None
    try:
        pitch = _sound(data, sr).to_pitch(
            time_step=TIME_STEP, pitch_floor=PITCH_FLOOR, pitch_ceiling=PITCH_CEILING
        )
    except Exception as exc:  # parselmouth.PraatError: too short for the pitch floor
        log.debug("no pitch: %s", exc)
        return None
    freq = np.asarray(pitch.selected_array["frequency"], dtype=np.float64)
    voiced = freq[freq > 0]
    if voiced.size < MIN_VOICED_FRAMES:
        return None
    return float(np.median(voiced))


def voice_for_speaker(f0: float | None) -> str:
    """The engine voice for a speaker of median F0 ``f0``: ``male`` below 165 Hz, else ``female``.

    Unknown F0 (None, no voiced speech) gets ``male``, the voice every engine has natively.
    """
    if f0 is None or not math.isfinite(f0) or f0 < MALE_FEMALE_F0:
        return "male"
    return "female"


def formant_ratio(source_f0: float, target_f0: float, *, gender_shift: bool) -> float:
    """The formant shift ratio for moving ``source_f0`` to ``target_f0`` (see the module docstring)."""
    if not gender_shift or source_f0 <= 0:
        return 1.0
    ratio = target_f0 / source_f0
    if ratio > GENDER_F0_RATIO:
        return FORMANT_SHIFT
    if ratio < 1.0 / GENDER_F0_RATIO:
        return 1.0 / FORMANT_SHIFT
    return 1.0


def match_voice(
    audio: np.ndarray,
    sr: int,
    target_f0: float | None,
    *,
    gender_shift: bool,
    source_f0: float | None = None,
) -> np.ndarray:
    """Shift ``audio``'s median pitch to ``target_f0``; same number of samples, float32.

    ``source_f0`` is the synthetic voice's median F0 (measured when not given). The audio is
    returned unchanged (as float32) when there is no target, no measurable pitch, or the
    difference is under 2 %. The peak level is kept (PSOLA may overshoot a little).
    """
    data = np.ascontiguousarray(_check(audio, sr), dtype=np.float32)
    if target_f0 is None or data.size == 0:
        return data
    target = float(target_f0)
    if not math.isfinite(target) or not PITCH_FLOOR <= target <= PITCH_CEILING:
        raise ValueError(f"target F0 must be within [{PITCH_FLOOR}, {PITCH_CEILING}] Hz, got {target_f0}")
    source = source_f0 if source_f0 is not None else median_f0(data, sr)
    if source is None or abs(target / source - 1.0) < MIN_SHIFT:
        return data
    praat = _praat().praat
    ratio = formant_ratio(source, target, gender_shift=gender_shift)
    # Praat: pitch floor, pitch ceiling, formant shift ratio, new pitch median,
    # pitch range factor, duration factor
    floor = min(PITCH_FLOOR, 0.8 * source)
    ceiling = max(PITCH_CEILING, 1.25 * source)
    sound = _sound(data, sr)
    with _PRAAT_LOCK:
        # PSOLA draws random numbers (unvoiced stretches): seed Praat's generator per call
        praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({PRAAT_SEED})")
        try:
            shifted = praat.call(sound, "Change gender", floor, ceiling, ratio, target, 1.0, 1.0)
        except Exception as exc:  # parselmouth.PraatError: nothing voiced to shift
            log.info("voice matching skipped: %s", exc)
            return data
        finally:
            praat.run("random_initializeSafelyAndUnpredictably ()")
    out = np.asarray(shifted.values, dtype=np.float64).reshape(-1)
    if abs(out.size - data.size) > 0.01 * data.size:
        raise AssertionError(f"Change gender changed the duration: {data.size} -> {out.size} samples")
    out = out[: data.size] if out.size >= data.size else np.concatenate([out, np.zeros(data.size - out.size)])
    peak_in = float(np.max(np.abs(data)))
    peak_out = float(np.max(np.abs(out))) if out.size else 0.0
    if peak_out > 0 and peak_in > 0:
        out *= peak_in / peak_out
    return np.ascontiguousarray(out, dtype=np.float32)
