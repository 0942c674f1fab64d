"""Condensing a source line before it is translated: fillers and disfluencies out.

A dubbed line has to be said in the time the original took, and a translation is usually longer
than its English source. When a line's source already has more words than its target budget
(``budget.word_budget``), the words that carry no content are dropped before translating:

* hesitations anywhere: "um", "uh", "er", "erm", "hmm", "mm", "ah";
* parenthetical fillers set off by a comma: "you know,", "I mean,", "you see," ("I mean it" stays);
* discourse markers that open a sentence and are set off by a comma: "oh,", "well,", "okay,",
  "ok,", "so,", "yeah,", "right,";
* a clause-final "though" (the discourse marker, "however": "I'm in New Jersey now though." →
  "I'm in New Jersey now."; "even though" and "as though" open a clause and never end one).

Only English sources are condensed (the filler lists are English); any other source language, or
a line that would be left empty, is returned unchanged. Pure and deterministic (``mypy --strict``).
"""

from __future__ import annotations

import re

from dubbing_pipeline.translation.budget import count_words

_HESITATIONS = r"u+m+|u+h+|e+r+m*|h+m+|m{2,}|a+h+"
_FILLERS = r"you know|i mean|you see"
_OPENERS = r"oh|well|okay|ok|so|yeah|right"
_HESITATION = re.compile(rf"(?i)(?:,\s*)?(?<![\w'])(?:{_HESITATIONS})(?![\w'])[,…]*")
_FILLER = re.compile(rf"(?i)(?<![\w'])(?:{_FILLERS}),")
_OPENING = re.compile(rf"(?i)(^|(?<=[.!?]) )(?:{_OPENERS}),\s*")
_CLOSING = re.compile(r"(?i)(?<=[\w'])(?:\s*,\s*|\s+)though(?=\s*(?:[.!?…]|$))")


def _tidy(text: str) -> str:
    out = re.sub(r"\s+", " ", text)
    out = re.sub(r"\s+([,.;:!?…])", r"\1", out)  # no space before punctuation
    out = re.sub(r",(\s*,)+", ",", out)  # doubled commas left by a removed filler
    out = re.sub(r",\s*([.;:!?…])", r"\1", out)  # a comma right before the end of a sentence
    out = re.sub(r"^[\s,;:]+", "", out)  # nothing before the first word
    out = re.sub(r"([.!?])\s*,\s*", r"\1 ", out)
    return out.strip()


def _capitalise_sentences(text: str, original: str) -> str:
    if not original[:1].isupper():
        return text
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def condense(text: str, language: str) -> str:
    """``text`` without fillers and disfluencies (English), or ``text`` itself."""
    if language.lower().split("-")[0] != "en":
        return text
    out = _CLOSING.sub("", _OPENING.sub(r"\1", _FILLER.sub("", _HESITATION.sub("", text))))
    out = _capitalise_sentences(_tidy(out), text.strip())
    return out if count_words(out, language) > 0 else text


def condense_over_budget(text: str, language: str, budget: int) -> str:
    """``condense(text)`` when the source already has more words than the target budget."""
    return condense(text, language) if count_words(text, language) > budget else text
