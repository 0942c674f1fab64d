"""Word budgets: the rate table, the floor, word counting per script, request windows."""

import math

import pytest

from dubbing_pipeline.translation.budget import (
    BUDGET_MARGIN,
    DEFAULT_WPS,
    WPS,
    context_range,
    context_windows,
    count_words,
    normalize_language,
    over_budget,
    word_budget,
    words_per_second,
)


def test_table_values_from_the_design() -> None:
    assert WPS["ja"] == 4.0
    assert WPS["zh"] == 3.5
    for lang in ("es", "fr", "ko", "it", "pt"):
        assert WPS[lang] == 3.0
    assert WPS["ar"] == WPS["hi"] == 2.5
    assert WPS["de"] == 2.2
    for lang in ("en", "ru", "nl", "pl", "tr", "ca", "gl"):
        assert 1.5 <= WPS[lang] <= 4.0, lang
    assert BUDGET_MARGIN == 0.85


def test_language_tags_are_normalised() -> None:
    assert normalize_language("es-MX") == "es"
    assert normalize_language("ES_es") == "es"
    assert normalize_language("spa") == "es"
    assert normalize_language(" eng ") == "en"
    assert words_per_second("zh-Hant") == 3.5
    assert words_per_second("xx") == DEFAULT_WPS


@pytest.mark.parametrize(
    ("duration", "language", "expected"),
    [
        (2.0, "es", 5),  # 2 × 3.0 × 0.85 = 5.1
        (1.0, "ja", 3),  # 3.4
        (10.0, "de", 18),  # 18.7
        (4.0, "es", 10),  # 10.2
        (3.0, "zh", 8),  # 8.925
        (0.1, "es", 1),  # 0.255 -> at least one word
        (0.0, "es", 1),
        (-3.0, "en", 1),
        (float("nan"), "en", 1),
    ],
)
def test_word_budget_floors(duration: float, language: str, expected: int) -> None:
    assert word_budget(duration, language) == expected


def test_word_budget_is_floor_of_the_formula_everywhere() -> None:
    for lang, wps in WPS.items():
        for tenth in range(1, 200):
            d = tenth / 10
            exact = d * wps * BUDGET_MARGIN
            got = word_budget(d, lang)
            assert got == max(1, math.floor(exact + 1e-9)), (lang, d)
            assert got <= exact + 1e-6 or got == 1


def test_whole_number_products_do_not_lose_a_word_to_rounding() -> None:
    # 20 s × 3.0 × 0.85 is exactly 51 on paper; 51.00000000000001 or 50.99999999999999 in floats
    assert word_budget(20.0, "es") == 51
    assert word_budget(2.0, "fr") == 5


def test_count_words_spaced_languages() -> None:
    assert count_words("And I'm Sheila in Texas, originally from Chicago.", "en") == 8
    assert count_words("  well-known — 3.5 ... ok ", "en") == 3
    assert count_words("", "es") == 0
    assert count_words("¿Qué tal?", "es") == 2
    # Korean counts eojeol (space-separated units)
    assert count_words("저는 시카고 출신입니다", "ko") == 3


def test_count_words_cjk_two_characters_per_word() -> None:
    assert count_words("こんにちは", "ja") == 3  # 5 kana -> ceil(5 / 2)
    assert count_words("我是从芝加哥来的。", "zh") == 4  # 8 Han, punctuation ignored
    assert count_words("我", "zh") == 1
    assert count_words("私はiPhoneを使う", "ja") == 3 + 1  # 6 CJK chars + one Latin word
    assert count_words("東京 2024", "ja") == 2  # 2 Han -> 1, plus the number
    assert count_words("。、「」", "ja") == 0
    # the same text under a spaced language is one token
    assert count_words("我是从芝加哥来的", "en") == 1


def test_over_budget_uses_one_and_a_half_times() -> None:
    six = "one two three four five six"
    assert not over_budget(six, 4, "en")  # 6 <= 6
    assert over_budget(six + " seven", 4, "en")  # 7 > 6
    assert over_budget(six, 4, "en", factor=1.0)
    assert over_budget("a b", 0, "en")  # a budget below one word is treated as one


def test_context_windows_partition_the_lines_in_order() -> None:
    assert context_windows(0) == []
    assert context_windows(3) == [(0, 3)]
    assert context_windows(5) == [(0, 5)]
    assert context_windows(12) == [(0, 5), (5, 10), (10, 12)]
    assert context_windows(7, size=2) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    for n in range(0, 40):
        covered = [i for start, stop in context_windows(n) for i in range(start, stop)]
        assert covered == list(range(n))
    with pytest.raises(ValueError):
        context_windows(4, size=0)


def test_context_range_shows_neighbours_clipped_to_the_video() -> None:
    assert context_range((0, 5), 12) == (0, 7)
    assert context_range((5, 10), 12) == (3, 12)
    assert context_range((10, 12), 12) == (8, 12)
    assert context_range((0, 3), 3) == (0, 3)
    assert context_range((5, 10), 12, context=0) == (5, 10)
