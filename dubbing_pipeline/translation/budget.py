"""Word budgets: how much text fits in the time a line was spoken in.

A dubbed line has to be spoken in (about) the time the original took. The budget of a line is
the number of words an average speaker of the *target* language says in that time, with a 15 %
margin for breathing and for the isochrony stage to work with::

    word_budget(d, lang) = max(1, floor(d × WPS[lang] × 0.85))

``WPS`` is a table of typical conversational speaking rates in words per second. The rates
asked for by the design are kept as given (ja 4.0, zh 3.5, es/fr/ko/it/pt 3.0, ar/hi 2.5,
de 2.2); the others are chosen here, each with its reason next to it. They are deliberately
round: the budget steers a translator, it does not time speech.

What a "word" is (``count_words``):

* Most languages: a run of non-space characters that contains at least one letter or digit
  (``"I'm"``, ``"well-known"`` and ``"3.5"`` are one word each, a lone ``"—"`` is none).
* Korean: the same rule, so the unit is the space-separated *eojeol* (a word plus its
  particles), which is what the 3.0 rate counts.
* Japanese and Chinese are written without spaces. There the unit is **two CJK characters**
  (Han ideographs, and for Japanese also hiragana and katakana): ``ceil(cjk_chars / 2)``.
  Characters of other scripts in the same text (a Latin brand name, digits) are counted with
  the space rule and added. CJK punctuation does not count. Two characters is roughly one
  lexical word in both languages, and ``WPS`` for ja/zh is expressed in that unit.

Everything here is pure and deterministic (checked with ``mypy --strict``).
"""

from __future__ import annotations

import math
import re

# Share of the spoken duration a translation may fill.
BUDGET_MARGIN = 0.85
# A translation longer than this factor times its budget is "over budget".
OVER_BUDGET_FACTOR = 1.5
# Rate used for languages missing from the table (about 150 words per minute).
DEFAULT_WPS = 2.5

# Typical conversational speaking rates, words per second (units: see the module docstring).
WPS: dict[str, float] = {
    # given by the design
    "ja": 4.0,  # unit: 2 CJK characters; ~8 characters (mora-rich, fast) per second
    "zh": 3.5,  # unit: 2 Han characters; ~7 syllables per second in fluent Mandarin
    "es": 3.0,  # fast syllable rate, short function words
    "fr": 3.0,  # like Spanish: many short clitics and articles
    "ko": 3.0,  # unit: space-separated eojeol
    "it": 3.0,  # Romance, fast syllable rate
    "pt": 3.0,  # Romance, fast syllable rate with vowel reduction
    "ar": 2.5,  # rich morphology packs articles and pronouns into words
    "hi": 2.5,  # roughly English-like word count per second
    "de": 2.2,  # long compounds: fewer, longer words
    # chosen here
    "en": 2.6,  # ~155 words per minute, the usual figure for conversational English
    "ca": 3.0,  # Romance, close to Spanish
    "gl": 3.0,  # Romance, close to Spanish and Portuguese
    "ro": 2.8,  # Romance, but longer inflected words than es/it
    "nl": 2.5,  # Germanic, shorter words than German (fewer compounds written together)
    "sv": 2.5,  # Germanic, English-like rate
    "da": 2.5,  # Germanic, English-like rate
    "no": 2.5,  # Germanic, English-like rate
    "nb": 2.5,  # Norwegian Bokmål, as "no"
    "ru": 2.2,  # no articles, long inflected words
    "uk": 2.2,  # as Russian
    "pl": 2.2,  # as Russian: inflected, consonant clusters, no articles
    "cs": 2.2,  # as Polish
    "el": 2.5,  # fast syllable rate, longish words: between Romance and Slavic
    "he": 2.3,  # prefixed articles and prepositions make few, dense words
    "tr": 2.0,  # agglutinative: one word carries what English says in three
    "fi": 1.8,  # agglutinative with long words and long vowels
    "hu": 1.9,  # agglutinative
    "id": 2.5,  # long but simple words, fast syllable rate
    "ms": 2.5,  # as Indonesian
    "vi": 4.0,  # every space-separated token is one syllable (~5 per second)
}

# ISO 639-2/3 codes and common names seen in configs, mapped to the table's 639-1 codes.
_ALIASES: dict[str, str] = {
    "eng": "en", "spa": "es", "fra": "fr", "fre": "fr", "deu": "de", "ger": "de", "ita": "it",
    "por": "pt", "jpn": "ja", "zho": "zh", "chi": "zh", "cmn": "zh", "yue": "zh", "kor": "ko",
    "ara": "ar", "hin": "hi", "rus": "ru", "ukr": "uk", "pol": "pl", "ces": "cs", "cze": "cs",
    "nld": "nl", "dut": "nl", "swe": "sv", "dan": "da", "nor": "no", "nob": "nb", "tur": "tr",
    "fin": "fi", "hun": "hu", "ell": "el", "gre": "el", "heb": "he", "ind": "id", "msa": "ms",
    "may": "ms", "vie": "vi", "cat": "ca", "glg": "gl", "ron": "ro", "rum": "ro", "iw": "he",
    "in": "id",
}  # fmt: skip

_CJK_CHAR_LANGS = frozenset({"ja", "zh"})

# Han ideographs (incl. extension A and compatibility), hiragana, katakana (+ phonetic
# extensions and half-width forms). Hangul is not here: Korean is counted by eojeol.
_CJK_RE = re.compile(
    "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
    "\U00020000-\U0002fa1f]"
)
_WORD_CHAR_RE = re.compile(r"[^\W_]")


def normalize_language(language: str) -> str:
    """``"es-MX"``, ``"ES"``, ``"spa"`` and ``"es_ES"`` all become ``"es"``."""
    code = language.strip().lower().replace("_", "-").split("-", 1)[0]
    return _ALIASES.get(code, code)


def words_per_second(language: str) -> float:
    """The table's rate for ``language`` (any tag form), or ``DEFAULT_WPS``."""
    return WPS.get(normalize_language(language), DEFAULT_WPS)


def word_budget(duration: float, language: str) -> int:
    """``max(1, floor(duration × WPS × 0.85))`` words for a line spoken in ``duration`` s.

    A tiny epsilon keeps products that are whole numbers on paper (``2 × 2.5 × 0.85 × …``)
    from flooring one below because of binary floating point.
    """
    if not math.isfinite(duration) or duration <= 0:
        return 1
    raw = duration * words_per_second(language) * BUDGET_MARGIN
    return max(1, math.floor(raw + 1e-9))


def _space_words(text: str) -> int:
    return sum(1 for token in text.split() if _WORD_CHAR_RE.search(token))


def count_words(text: str, language: str) -> int:
    """Number of budget units in ``text`` (see the module docstring for the unit per language)."""
    if normalize_language(language) in _CJK_CHAR_LANGS:
        cjk = len(_CJK_RE.findall(text))
        rest = _CJK_RE.sub(" ", text)
        return (cjk + 1) // 2 + _space_words(rest)
    return _space_words(text)


def over_budget(text: str, budget: int, language: str, factor: float = OVER_BUDGET_FACTOR) -> bool:
    """True when ``text`` has more than ``factor × budget`` words."""
    return count_words(text, language) > factor * max(budget, 1)


def context_windows(n: int, size: int = 5) -> list[tuple[int, int]]:
    """Split ``n`` lines into consecutive half-open ranges ``(start, stop)`` of ``size`` lines.

    Each range is what one translation request translates; every line is in exactly one range,
    in order (the last range may be shorter). The neighbours a request sees as read-only
    context are given by ``context_range``.
    """
    if size < 1:
        raise ValueError("window size must be at least 1")
    return [(start, min(start + size, n)) for start in range(0, max(n, 0), size)]


def context_range(window: tuple[int, int], n: int, context: int = 2) -> tuple[int, int]:
    """The ``(start, stop)`` range of lines shown to the request translating ``window``.

    It is the window widened by up to ``context`` lines on each side, clipped to ``[0, n)``;
    lines outside the window are context only.
    """
    start, stop = window
    return max(0, start - context), min(n, stop + context)
