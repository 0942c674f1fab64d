"""Glossary terms: a source term must come out as its target term, whatever the translator.

A glossary maps source terms to target terms (``"Dagster" -> "Dagster"``, ``"pipeline" ->
"canalización"``). Matching is case-insensitive on whole words; a longer term wins over a shorter
one inside it ("data pipeline" before "pipeline").

* Rule-based translators (Apertium) get the line with each term replaced by a placeholder token
  they pass through untouched (``protect``), and the placeholders are replaced by the target terms
  afterwards (``restore``).
* LLM translators get the terms in the prompt, and their reply is checked (``violations``).

A line whose translation lacks a target term its source asks for is flagged ``glossary``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

PLACEHOLDER = "Zqx{}qz"  # letters only: Apertium passes an unknown word through as it is
PLACEHOLDER_RE = re.compile(r"\*?Zqx(\d+)qz")


@dataclass(frozen=True)
class Term:
    source: str
    target: str


class GlossaryError(ValueError):
    """An invalid glossary entry; the message names it."""


def normalise_term(term: str) -> str:
    """NFC, single spaces, no surrounding whitespace."""
    return " ".join(unicodedata.normalize("NFC", term).split())


def make_glossary(entries: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[Term, ...]:
    """Validated terms, longest source first (ties: alphabetical), so matching is deterministic."""
    pairs = entries.items() if isinstance(entries, Mapping) else entries
    seen: dict[str, Term] = {}
    for raw_source, raw_target in pairs:
        source, target = normalise_term(str(raw_source)), normalise_term(str(raw_target))
        if not source or not target:
            raise GlossaryError(f"glossary entry {raw_source!r} -> {raw_target!r}: a term is empty")
        if PLACEHOLDER_RE.search(source) or PLACEHOLDER_RE.search(target):
            raise GlossaryError(f"glossary entry {source!r}: reserved text")
        key = source.casefold()
        if key in seen and seen[key].target != target:
            other = seen[key].target
            raise GlossaryError(f"glossary term {source!r} has two targets: {other!r} and {target!r}")
        seen[key] = Term(source, target)
    return tuple(sorted(seen.values(), key=lambda t: (-len(t.source), t.source.casefold())))


def _pattern(term: str, ignore_case: bool = True) -> re.Pattern[str]:
    words = [re.escape(w) for w in term.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE if ignore_case else 0)


def terms_in(text: str, glossary: Sequence[Term], *, ignore_case: bool = True) -> list[Term]:
    """The glossary terms ``text`` contains, longest first; a term inside a longer match is not counted."""
    found: list[Term] = []
    taken: list[tuple[int, int]] = []
    for term in glossary:
        for match in _pattern(term.source, ignore_case).finditer(text):
            span = match.span()
            if any(a < span[1] and span[0] < b for a, b in taken):
                continue
            taken.append(span)
            if term not in found:
                found.append(term)
    return found


def protect(
    text: str, glossary: Sequence[Term], used: Sequence[Term] = (), *, ignore_case: bool = True
) -> tuple[str, list[Term]]:
    """``text`` with each glossary term replaced by a numbered placeholder, and the terms by number;
    numbered after ``used`` (the terms of an earlier ``protect`` of the same text). ``ignore_case``
    off: a term only as written (a name, not the word it shares its letters with)."""
    used = list(used)
    out = text
    for term in terms_in(text, glossary, ignore_case=ignore_case):
        used.append(term)
        out = _pattern(term.source, ignore_case).sub(PLACEHOLDER.format(len(used) - 1), out)
    return out, used


def restore(text: str, used: Sequence[Term]) -> str:
    """Placeholders (with any unknown-word mark ``*`` before them) back to their target terms."""

    def target(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return used[index].target if index < len(used) else match.group(0)

    return PLACEHOLDER_RE.sub(target, text)


def violations(source: str, translation: str, glossary: Sequence[Term]) -> list[Term]:
    """Terms ``source`` contains whose target term is missing from ``translation``."""
    return [t for t in terms_in(source, glossary) if not _pattern(t.target).search(translation)]


def prompt_lines(source_texts: Sequence[str], glossary: Sequence[Term]) -> list[str]:
    """``"source" -> "target"`` for the terms these lines use, for an LLM prompt."""
    used: list[Term] = []
    for text in source_texts:
        used += [t for t in terms_in(text, glossary) if t not in used]
    return [f'"{t.source}" -> "{t.target}"' for t in used]


def load_glossary(path: str, target: str) -> tuple[Term, ...]:
    """The terms for ``target`` in a glossary file ``{"es": {"source": "target"}, ...}``; none when
    ``path`` is empty. An unreadable file or a malformed entry is a ``GlossaryError`` naming it."""
    if not path:
        return ()
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GlossaryError(f"glossary file {path!r} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise GlossaryError(f'glossary file {path!r}: expected {{"<language>": {{"<source>": "<target>"}}}}')
    entries = data.get(target, {})
    bad = [k for k, v in entries.items() if not isinstance(v, str)]
    if bad:
        raise GlossaryError(f"glossary file {path!r}, language {target!r}: term {bad[0]!r} needs a text")
    return make_glossary(entries)
