"""Quality metrics: text error rates, diarization error rate, SDR and signal alignment."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.fft import irfft, next_fast_len, rfft  # type: ignore[import-untyped,unused-ignore]
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped,unused-ignore]

_APOSTROPHES = str.maketrans(dict.fromkeys("’‘ʼʹ`´′＇", "'"))
_TURKIC = str.maketrans({"I": "ı", "İ": "i"})
EPS = 1e-10


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


def normalize_text(text: str, language: str | None = None) -> str:
    """Casefold, drop punctuation and symbols (incl. ``¿¡``), unify apostrophes and whitespace.

    Letters (with their accents and combining marks) and digits are kept; an apostrophe survives
    only between two word characters ("don't", "l'homme"). For Turkish and Azerbaijani the
    dotted/dotless i are folded correctly.
    """
    out = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    if language and language.split("-")[0].split("_")[0].lower() in ("tr", "az"):
        out = out.translate(_TURKIC)
    out = out.casefold()
    chars = []
    for i, ch in enumerate(out):
        if ch == "'":
            inside = 0 < i < len(out) - 1 and _is_word_char(out[i - 1]) and _is_word_char(out[i + 1])
            chars.append(ch if inside else " ")
        else:
            chars.append(ch if _is_word_char(ch) else " ")
    return unicodedata.normalize("NFC", " ".join("".join(chars).split()))


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance (unit-cost insertions, deletions, substitutions) between sequences."""
    if not a or not b:
        return max(len(a), len(b))
    vocab: dict[Hashable, int] = {}
    a_ids = [vocab.setdefault(x, len(vocab)) for x in a]
    b_ids = np.array([vocab.setdefault(x, len(vocab)) for x in b])
    cols = np.arange(len(b) + 1)
    prev = cols.copy()
    for i, token in enumerate(a_ids, start=1):
        diag = prev[:-1] + (b_ids != token)
        tmp = np.empty_like(prev)
        tmp[0] = i
        tmp[1:] = np.minimum(prev[1:] + 1, diag)
        # Insertions chain along the row: cur[j] = min_k<=j (tmp[k] + j - k).
        prev = np.minimum.accumulate(tmp - cols) + cols
    return int(prev[-1])


def _rate(ref: Sequence[str], hyp: Sequence[str]) -> float:
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)


def word_error_rate(reference: str, hypothesis: str, *, language: str | None = None) -> float:
    """Word edit distance over reference word count, on normalised text (empty ref: 0 or 1)."""
    return _rate(normalize_text(reference, language).split(), normalize_text(hypothesis, language).split())


def char_error_rate(reference: str, hypothesis: str, *, language: str | None = None) -> float:
    """Character edit distance over reference length, normalised text without spaces."""
    ref = normalize_text(reference, language).replace(" ", "")
    hyp = normalize_text(hypothesis, language).replace(" ", "")
    return _rate(list(ref), list(hyp))


Turn = tuple[float, float, str]


def _activity(turns: Sequence[Turn], n_frames: int, step: float) -> tuple[list[str], NDArray[np.bool_]]:
    """Per-speaker frame activity: frame k (centre ``(k + 0.5) * step``) is on if inside a turn."""
    speakers = sorted({label for _, _, label in turns})
    index = {s: i for i, s in enumerate(speakers)}
    act = np.zeros((len(speakers), n_frames), dtype=bool)
    for start, end, label in turns:
        a = min(n_frames, max(0, math.floor(start / step + 0.5)))
        b = min(n_frames, max(0, math.floor(end / step + 0.5)))
        act[index[label], a:b] = True
    return speakers, act


def diarization_error_rate(
    reference: Sequence[Turn], hypothesis: Sequence[Turn], collar: float = 0.0, step: float = 0.01
) -> dict[str, float]:
    """Frame-based DER with the optimal one-to-one speaker mapping (Hungarian on overlap).

    Turns are ``(start, end, speaker)``. Overlapping reference speech counts once per speaker.
    Frames within ``collar`` seconds of a reference turn boundary are not scored. Returns
    seconds for ``missed``, ``false_alarm``, ``confusion``, ``total_reference`` and the ratio
    ``der`` (0.0 with no reference speech and no hypothesis speech, 1.0 if only the latter).
    """
    if step <= 0 or collar < 0:
        raise ValueError("need step > 0 and collar >= 0")
    ends = [end for _, end, _ in (*reference, *hypothesis)]
    n_frames = max(0, math.floor(max(ends, default=0.0) / step + 0.5))
    _, ref = _activity(reference, n_frames, step)
    _, hyp = _activity(hypothesis, n_frames, step)
    scored = np.ones(n_frames, dtype=bool)
    if collar > 0:
        centres = (np.arange(n_frames) + 0.5) * step
        for start, end, _ in reference:
            for boundary in (start, end):
                scored &= np.abs(centres - boundary) >= collar
    ref, hyp = ref[:, scored], hyp[:, scored]
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    correct = 0
    if ref.shape[0] and hyp.shape[0]:
        overlap = ref.astype(np.int64) @ hyp.T.astype(np.int64)
        rows, cols = linear_sum_assignment(overlap, maximize=True)
        correct = int(overlap[rows, cols].sum())
    missed = float(np.maximum(n_ref - n_hyp, 0).sum()) * step
    false_alarm = float(np.maximum(n_hyp - n_ref, 0).sum()) * step
    confusion = (float(np.minimum(n_ref, n_hyp).sum()) - correct) * step
    total = float(n_ref.sum()) * step
    errors = missed + false_alarm + confusion
    der = errors / total if total > 0 else float(false_alarm > 0)
    return {
        "der": der,
        "missed": missed,
        "false_alarm": false_alarm,
        "confusion": confusion,
        "total_reference": total,
    }


def sdr(reference: ArrayLike, estimate: ArrayLike) -> float:
    """Signal-to-distortion ratio in dB: ``10 log10(|ref|^2 / |ref - est|^2)`` (tiny epsilon added)."""
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    if ref.shape != est.shape:
        raise ValueError(f"shape mismatch: {ref.shape} vs {est.shape}")
    signal = float(np.sum(ref**2))
    noise = float(np.sum((ref - est) ** 2))
    return 10.0 * math.log10((signal + EPS) / (noise + EPS))


def sdr_improvement(reference: ArrayLike, estimate: ArrayLike, mixture: ArrayLike) -> float:
    """SDR gain of ``estimate`` over the unprocessed ``mixture``, in dB."""
    return sdr(reference, estimate) - sdr(reference, mixture)


def best_lag(a: ArrayLike, b: ArrayLike, max_lag: int) -> int:
    """Lag ``L`` in ``[-max_lag, max_lag]`` maximising ``sum_n a[n] * b[n + L]``.

    So if ``b`` is ``a`` delayed by ``L`` samples the answer is ``L``. Ties go to the smallest
    ``|L|`` (then the negative one). Computed with an FFT cross-correlation.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.size == 0 or y.size == 0:
        raise ValueError("best_lag needs two non-empty 1-D signals")
    if max_lag < 0:
        raise ValueError("max_lag must be >= 0")
    n = next_fast_len(x.size + y.size - 1, real=True)
    corr = irfft(np.conj(rfft(x, n)) * rfft(y, n), n)
    lags = np.arange(-min(max_lag, x.size - 1), min(max_lag, y.size - 1) + 1)
    values = corr[lags % n]
    tol = 1e-9 * math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))  # FFT round-off
    order = np.lexsort((lags, np.abs(lags)))  # by |L|, then L
    best = order[int(np.argmax(values[order] >= values.max() - tol))]
    return int(lags[best])
