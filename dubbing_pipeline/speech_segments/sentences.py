"""Turn word-level transcripts into sentence segments, and merge words from overlapping chunks."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dubbing_pipeline.records import Record
from dubbing_pipeline.speech_segments.chunks import Chunk

SENTENCE_END = frozenset(".?!…。？！‼⁇⁈⁉؟۔।॥᙮")
CLAUSE_END = frozenset(",;:，、；：—–")
_CLOSERS = "\"'”’»)]}」』）】"
_OPENERS = "\"'“‘«([{「『（【¿¡"
_ABBREVIATION_LIST = (
    "mr mrs ms mx dr prof sr sra srta jr st mt vs etc cf ca approx dept univ gen col capt lt sgt cmdr rev "
    "hon fig vol pp mme mlle bzw usw vgl sog inkl"
)
ABBREVIATIONS = frozenset(_ABBREVIATION_LIST.split())
_DOTTED = re.compile(r"^(?:[^\W\d_]\.){2,}$")  # "e.g.", "U.S.", "z.B."
CLAUSE_BONUS = 0.3
"""When splitting an over-long segment, a comma counts as this many seconds of extra pause."""


class Word(Record):
    """A timed word, in absolute seconds; ``text`` keeps Whisper's leading space."""

    start: float
    end: float
    text: str
    probability: float = 1.0

    def __init__(self, start: float, end: float, text: str, probability: float = 1.0) -> None:
        super().__init__(**{"start": start, "end": end, "text": text, "probability": probability})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Word:
        """A word as stored, or as Whisper names its text (``word``)."""
        text = data["text"] if "text" in data else data["word"]
        return cls(float(data["start"]), float(data["end"]), str(text), float(data.get("probability", 1.0)))


class Segment(Record):
    """A sentence-like segment: id ``"s0001"``-style, time span, joined text and its words."""

    id: str
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()

    def __init__(self, id: str, start: float, end: float, text: str, words: tuple[Word, ...] = ()) -> None:
        super().__init__(**{"id": id, "start": start, "end": end, "text": text, "words": words})


def segment_id(n: int) -> str:
    """The id of the ``n``-th segment (1-based): ``s0001``."""
    return f"s{n:04d}"


def join_words(words: Sequence[Word]) -> str:
    """Join words the Whisper way (texts carry their own leading spaces), whitespace normalised."""
    return " ".join("".join(w.text for w in words).split())


def ends_sentence(word: Word, next_word: Word | None = None) -> bool:
    """Whether a sentence ends after ``word`` (not after "Mr.", "e.g." or a split decimal "3." "5")."""
    text = word.text.strip().rstrip(_CLOSERS)
    if not text or text[-1] not in SENTENCE_END:
        return False
    if text[-1] != "." or text.endswith(".."):
        return True
    stem = text[:-1].lstrip(_OPENERS)
    if stem.casefold() in ABBREVIATIONS or _DOTTED.match(text.lstrip(_OPENERS)):
        return False
    if len(stem) == 1 and stem.isupper() and stem != "I":  # an initial, as in "J. R. R. Tolkien"
        return False
    # A decimal split across words ("3." "5") is not a sentence end.
    return not (stem[-1:].isdigit() and next_word is not None and next_word.text[:1].isdigit())


def _gap(a: Word, b: Word) -> float:
    return max(0.0, b.start - a.end)


def _span(words: Sequence[Word]) -> float:
    return words[-1].end - words[0].start


def _split_long(words: list[Word], max_seconds: float) -> list[list[Word]]:
    """Split recursively at the best inner boundary until every piece fits ``max_seconds``."""
    if len(words) < 2 or _span(words) <= max_seconds:
        return [words]
    middle = (words[0].start + words[-1].end) / 2
    best_key: tuple[float, float] | None = None
    best = 1
    for i in range(1, len(words)):
        clause = words[i - 1].text.strip().rstrip(_CLOSERS)[-1:] in CLAUSE_END
        score = _gap(words[i - 1], words[i]) + (CLAUSE_BONUS if clause else 0.0)
        key = (round(score, 3), -abs(words[i].start - middle))  # millisecond resolution: no float-noise ties
        if best_key is None or key > best_key:
            best_key, best = key, i
    return _split_long(words[:best], max_seconds) + _split_long(words[best:], max_seconds)


def _merge_short(
    groups: list[list[Word]], min_seconds: float, max_seconds: float, pause: float
) -> list[list[Word]]:
    """Glue segments shorter than ``min_seconds`` to their closer neighbour (gap < pause, fits max)."""
    changed = True
    while changed:
        changed = False
        for i, group in enumerate(groups):
            if _span(group) >= min_seconds:
                continue
            options: list[tuple[float, int]] = []
            for j in (i - 1, i + 1):
                if 0 <= j < len(groups):
                    first, second = (groups[j], group) if j < i else (group, groups[j])
                    gap = _gap(first[-1], second[0])
                    if gap < pause and second[-1].end - first[0].start <= max_seconds:
                        options.append((gap, j))
            if options:
                j = min(options)[1]
                lo = min(i, j)
                groups[lo : lo + 2] = [groups[lo] + groups[lo + 1]]
                changed = True
                break
    return groups


def split_sentences(
    words: Sequence[Word], *, pause: float = 0.8, max_seconds: float = 12.0, min_seconds: float = 0.0
) -> list[Segment]:
    """Group time-ordered words into sentence segments with ids ``s0001``, ``s0002``, ...

    A segment ends after sentence punctuation (see :func:`ends_sentence`) and at every
    inter-word pause ``>= pause``. A segment longer than ``max_seconds`` is split where the
    pause (plus :data:`CLAUSE_BONUS` after a comma) is largest, ties nearest its middle; a single
    word is never split. Segments shorter than ``min_seconds`` are glued to the closer
    neighbour when the gap is below ``pause`` and the result fits ``max_seconds``.
    Words with blank text are dropped.
    """
    if not (pause > 0 and max_seconds > 0 and min_seconds >= 0):
        raise ValueError("need pause > 0, max_seconds > 0 and min_seconds >= 0")
    kept = sorted((w for w in words if w.text.strip()), key=lambda w: w.start)
    groups: list[list[Word]] = []
    current: list[Word] = []
    for i, word in enumerate(kept):
        current.append(word)
        nxt = kept[i + 1] if i + 1 < len(kept) else None
        if nxt is None or ends_sentence(word, nxt) or _gap(word, nxt) >= pause:
            groups.extend(_split_long(current, max_seconds))
            current = []
    if min_seconds > 0:
        groups = _merge_short(groups, min_seconds, max_seconds, pause)
    return [
        Segment(segment_id(n), g[0].start, g[-1].end, join_words(g), tuple(g))
        for n, g in enumerate(groups, start=1)
    ]


def merge_chunk_words(chunks: Sequence[Chunk], words_per_chunk: Sequence[Sequence[Word]]) -> list[Word]:
    """Words of all chunks (absolute seconds), each kept only by the chunk whose core holds its midpoint.

    The earliest core also owns midpoints before it and the latest those after it. The result is
    sorted by (start, end), ties keeping chunk order, so it is deterministic.
    """
    if len(chunks) != len(words_per_chunk):
        raise ValueError(f"{len(chunks)} chunks but {len(words_per_chunk)} word lists")
    if not chunks:
        return []
    first = min(c.core_start for c in chunks)
    last = max(c.core_end for c in chunks)
    order = sorted(range(len(chunks)), key=lambda i: (chunks[i].core_start, chunks[i].index))
    kept: list[Word] = []
    for i in order:
        chunk = chunks[i]
        lo = -math.inf if chunk.core_start <= first else chunk.core_start
        hi = math.inf if chunk.core_end >= last else chunk.core_end
        kept.extend(w for w in words_per_chunk[i] if lo <= (w.start + w.end) / 2 < hi)
    return sorted(kept, key=lambda w: (w.start, w.end))
