"""Unit tests for dubbing_pipeline.quality.metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from dubbing_pipeline.quality.metrics import (
    best_lag,
    char_error_rate,
    diarization_error_rate,
    edit_distance,
    normalize_text,
    sdr,
    sdr_improvement,
    word_error_rate,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("¿Qué tal?  ¡Muy   bien!", "qué tal muy bien"),
        ("Don’t stop — it's O‘Brien's", "don't stop it's o'brien's"),
        ("'quoted' words", "quoted words"),
        ("Straße", "strasse"),
        ("Ｆｕｌｌ－ｗｉｄｔｈ", "full width"),
        ("Cafe\u0301 déjà-vu", "café déjà vu"),
        ("नमस्ते दुनिया।", "नमस्ते दुनिया"),
        ("50% off: $3.99", "50 off 3 99"),
        ("  \t\n ", ""),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_normalize_text_turkish_i() -> None:
    assert normalize_text("IŞIK İstanbul", "tr") == "ışık istanbul"
    assert normalize_text("IŞIK", "tr-TR") == "ışık"
    assert normalize_text("IŞIK", "en") == "işik"


def _reference_distance(a: Sequence[str], b: Sequence[str]) -> int:
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_edit_distance_known_values() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance("", "abc") == 3
    assert edit_distance(["a", "b"], []) == 2
    assert edit_distance(["the", "cat"], ["the", "cat"]) == 0
    assert edit_distance("abc", "cab") == 2


def test_edit_distance_matches_reference_on_random_sequences() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        a = [str(x) for x in rng.integers(0, 4, size=int(rng.integers(0, 15)))]
        b = [str(x) for x in rng.integers(0, 4, size=int(rng.integers(0, 15)))]
        d = edit_distance(a, b)
        assert d == _reference_distance(a, b)
        assert d == edit_distance(b, a)
        assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))


def test_word_error_rate_known_values() -> None:
    assert word_error_rate("the cat sat on the mat", "the cat sit on mat") == pytest.approx(2 / 6)
    assert word_error_rate("Hello, world!", "hello world") == 0.0
    assert word_error_rate("a b", "x a y b z") == pytest.approx(1.5)  # insertions can exceed 1
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("...", "") == 0.0
    assert word_error_rate("", "something") == 1.0
    assert word_error_rate("one two", "") == 1.0


def test_char_error_rate_ignores_spaces() -> None:
    assert char_error_rate("abc", "abd") == pytest.approx(1 / 3)
    assert char_error_rate("ice cream", "icecream") == 0.0
    assert char_error_rate("Hola!", "ola") == pytest.approx(1 / 4)
    assert char_error_rate("", "") == 0.0 and char_error_rate("", "x") == 1.0


def test_der_confusion_case() -> None:
    ref = [(0.0, 10.0, "A"), (10.0, 20.0, "B")]
    hyp = [(0.0, 12.0, "spk1"), (12.0, 20.0, "spk2")]
    out = diarization_error_rate(ref, hyp)
    assert out["confusion"] == pytest.approx(2.0)
    assert out["missed"] == pytest.approx(0.0) and out["false_alarm"] == pytest.approx(0.0)
    assert out["total_reference"] == pytest.approx(20.0)
    assert out["der"] == pytest.approx(0.1)
    assert set(out) == {"der", "missed", "false_alarm", "confusion", "total_reference"}


def test_der_is_label_invariant_and_zero_when_perfect() -> None:
    ref = [(0.0, 3.0, "A"), (3.0, 5.0, "B"), (6.0, 9.5, "A")]
    hyp = [(0.0, 3.0, "B"), (3.0, 5.0, "A"), (6.0, 9.5, "B")]
    assert diarization_error_rate(ref, hyp)["der"] == pytest.approx(0.0)


def test_der_missed_and_false_alarm() -> None:
    ref = [(0.0, 10.0, "A")]
    hyp = [(2.0, 12.0, "x")]
    out = diarization_error_rate(ref, hyp)
    assert out["missed"] == pytest.approx(2.0)
    assert out["false_alarm"] == pytest.approx(2.0)
    assert out["confusion"] == pytest.approx(0.0)
    assert out["der"] == pytest.approx(0.4)


def test_der_overlapping_reference_counts_each_speaker() -> None:
    ref = [(0.0, 10.0, "A"), (5.0, 10.0, "B")]
    out = diarization_error_rate(ref, [(0.0, 10.0, "x")])
    assert out["total_reference"] == pytest.approx(15.0)
    assert out["missed"] == pytest.approx(5.0)
    assert out["der"] == pytest.approx(1 / 3)


def test_der_mapping_is_one_to_one() -> None:
    ref = [(0.0, 6.0, "A"), (6.0, 10.0, "B")]
    out = diarization_error_rate(ref, [(0.0, 10.0, "x")])  # one hyp speaker cannot be both
    assert out["confusion"] == pytest.approx(4.0)
    assert out["der"] == pytest.approx(0.4)


def test_der_collar_forgives_boundary_errors() -> None:
    ref = [(0.0, 10.0, "A"), (10.0, 20.0, "B")]
    hyp = [(0.0, 10.2, "x"), (10.2, 20.0, "y")]
    assert diarization_error_rate(ref, hyp)["confusion"] == pytest.approx(0.2)
    out = diarization_error_rate(ref, hyp, collar=0.25)
    assert out["der"] == pytest.approx(0.0)
    # The collar removes 0.25 s around 0, 10 (twice: one end, one start) and 20 from the reference.
    assert out["total_reference"] == pytest.approx(20.0 - 0.25 - 0.5 - 0.25)


def test_der_without_reference_speech() -> None:
    assert diarization_error_rate([], [])["der"] == 0.0
    only_hyp = diarization_error_rate([], [(0.0, 1.0, "x")])
    assert only_hyp["der"] == 1.0 and only_hyp["false_alarm"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        diarization_error_rate([], [], step=0.0)


def test_sdr_known_values() -> None:
    ref = np.sin(np.linspace(0.0, 20.0, 1000))
    assert sdr(ref, 0.9 * ref) == pytest.approx(20.0)
    assert sdr(ref, np.zeros_like(ref)) == pytest.approx(0.0)
    assert sdr(ref, ref) > 100.0
    assert np.isfinite(sdr(np.zeros(10), np.zeros(10)))
    with pytest.raises(ValueError):
        sdr(ref, ref[:-1])


def test_sdr_improvement() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(size=4000)
    noise = rng.normal(size=4000)
    mixture = ref + noise
    estimate = ref + 0.1 * noise
    assert sdr_improvement(ref, estimate, mixture) == pytest.approx(20.0)
    assert sdr_improvement(ref, mixture, mixture) == pytest.approx(0.0)


def test_best_lag_finds_delays() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=2000)
    delayed = np.concatenate([np.zeros(37), a])[:2000]
    assert best_lag(a, delayed, 100) == 37
    assert best_lag(delayed, a, 100) == -37
    assert best_lag(a, a, 0) == 0
    assert abs(best_lag(a, delayed, 10)) <= 10
    assert best_lag(a, delayed[:500], 100) == 37  # different lengths
    assert best_lag(np.zeros(50), np.zeros(80), 5) == 0


def test_best_lag_matches_brute_force() -> None:
    rng = np.random.default_rng(8)
    for _ in range(100):
        a = rng.normal(size=int(rng.integers(1, 60)))
        b = rng.normal(size=int(rng.integers(1, 60)))
        max_lag = int(rng.integers(0, 70))
        lags = range(-min(max_lag, a.size - 1), min(max_lag, b.size - 1) + 1)
        scores = {lag: sum(a[n] * b[n + lag] for n in range(a.size) if 0 <= n + lag < b.size) for lag in lags}
        assert best_lag(a, b, max_lag) == max(scores, key=lambda lag: scores[lag])


def test_best_lag_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        best_lag(np.zeros((2, 2)), np.zeros(4), 1)
    with pytest.raises(ValueError):
        best_lag(np.zeros(0), np.zeros(4), 1)
    with pytest.raises(ValueError):
        best_lag(np.zeros(3), np.zeros(4), -1)
