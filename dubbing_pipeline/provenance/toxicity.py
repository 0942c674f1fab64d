"""The toxicity screen of translations: a line whose translation brings in offensive terms its source lacks.

The term lists are ``glin-profanity``'s (MIT package; its per-language dictionaries are the
LDNOOBW lists, CC-BY-4.0): plain JSON, 24 languages, read directly here (its matching engine is
not used), chosen because it covers the most of this project's target languages with a single
dependency and is released often. It has no Catalan or Galician list, nor has any package found;
for those targets the screen says it did not run (``available: false``) rather than passing.

A term matches as whole words, case-folded, accents kept (a multi-word term allows any spacing);
in Chinese, Japanese and Thai, which do not separate words, as a substring. A handful of ordinary
words the lists carry (Spanish *martillo*, *infierno*, *concha*…) are set aside in ``ORDINARY``,
so that a faithful translation of "murder" or "hell" is not flagged. A line is flagged when its
target text has a listed term and its source text has none in the source language's list: the
translation *introduced* it. The LLM translator also answers for itself: each line of its reply
carries ``offensive`` (its own verdict, flag ``offensive``), and such a line is flagged too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from dubbing_pipeline.records import JsonObject

PACKAGE = "glin_profanity"
LISTS = {
    "ar": "arabic", "cs": "czech", "da": "danish", "de": "german", "en": "english", "eo": "esperanto",
    "es": "spanish", "fa": "persian", "fi": "finnish", "fr": "french", "hi": "hindi", "hu": "hungarian",
    "it": "italian", "ja": "japanese", "ko": "korean", "nl": "dutch", "no": "norwegian", "pl": "polish",
    "pt": "portuguese", "ru": "russian", "sv": "swedish", "th": "thai", "tr": "turkish", "zh": "chinese",
}  # fmt: skip
UNSPACED = frozenset({"ja", "zh", "th"})
ORDINARY: Mapping[str, frozenset[str]] = {
    "es": frozenset({
        "asesinato", "asno", "concha", "drogas", "heroína", "infierno", "maldito", "martillo", "nazi",
        "orina", "pis", "racista", "sexo", "trio",
    }),
    "en": frozenset({"hell", "murder", "drug", "drugs"}),
}  # fmt: skip


@dataclass(frozen=True)
class TermList:
    """One language's listed terms (case-folded), and where they come from."""

    language: str
    terms: frozenset[str]
    source: str

    def found(self, text: str) -> list[str]:
        """The listed terms in ``text``, sorted."""
        folded = " ".join(text.casefold().split())
        return sorted(t for t in self.terms if _pattern(t, self.language in UNSPACED).search(folded))


@functools.lru_cache(maxsize=4096)
def _pattern(term: str, unspaced: bool) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(word) for word in term.split())
    return re.compile(body if unspaced else rf"(?<!\w){body}(?!\w)")


def _base(language: str) -> str:
    return language.split("-")[0].split("_")[0].lower()


@functools.lru_cache(maxsize=64)
def term_list(language: str) -> TermList | None:
    """The list for ``language`` (``None``: no list, or the package is not installed)."""
    lang = _base(language)
    name = LISTS.get(lang)
    if name is None:
        return None
    try:
        data = resources.files(PACKAGE).joinpath("data", "dictionaries", f"{name}.json").read_text("utf-8")
        release = version("glin-profanity")
    except (ModuleNotFoundError, FileNotFoundError, PackageNotFoundError):
        return None
    words = {" ".join(str(w).casefold().split()) for w in json.loads(data)["words"]}
    terms = frozenset(w for w in words if w and w not in ORDINARY.get(lang, frozenset()))
    return TermList(lang, terms, f"glin-profanity {release} ({name})")


def introduced(source_text: str, target_text: str, source: TermList | None, target: TermList) -> list[str]:
    """The target's listed terms when the source line has none (else nothing: the translation
    only carries what was said)."""
    found = target.found(target_text)
    if not found or (source is not None and source.found(source_text)):
        return []
    return found


def screen_lines(
    lines: Sequence[Mapping[str, Any]], source_language: str, target_language: str
) -> tuple[list[JsonObject], JsonObject]:
    """Every line with the ``toxic`` flag and its ``toxic_terms`` where the translation brought in
    listed terms or the translator itself said so (flag ``offensive``); and the screen's summary."""
    target = term_list(target_language)
    source = term_list(source_language)
    out: list[JsonObject] = []
    flagged: list[str] = []
    for line in lines:
        texts = str(line["source_text"]), str(line["target_text"])
        terms = introduced(*texts, source, target) if target else []
        flags = [f for f in line.get("flags", []) if f != "toxic"]
        rec = {k: v for k, v in line.items() if k != "toxic_terms"}
        if terms or "offensive" in flags:
            flags.append("toxic")
            flagged.append(str(line["id"]))
            rec["toxic_terms"] = terms
        out.append({**rec, "flags": flags})
    summary = {
        "available": target is not None,  # the term lists (the LLM's own verdict counts either way)
        "list": target.source if target else None,
        "flagged": flagged,
        "detail": None if target else f"no term list for {_base(target_language)!r}: lines were not screened",
    }
    return out, summary
