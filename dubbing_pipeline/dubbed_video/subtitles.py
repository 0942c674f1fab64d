"""Subtitle files: SubRip (``.srt``) and WebVTT (``.vtt``) writers and an SRT reader.

The writers apply the same layout rules to both formats:

* cues are sorted by start time; a cue that would overlap the next one ends where the next
  begins (times are handled in whole milliseconds, so the clip is exact); a cue left with no
  duration, and a cue with no text, is dropped;
* text is whitespace-normalised and wrapped into at most two lines, broken at the space that
  balances the two lines best once the text exceeds ``max_chars`` (42, the usual broadcast
  and streaming guideline). Text without spaces (Chinese, Japanese...) is broken at its middle;
  a text too long for two lines of ``max_chars`` keeps two balanced, longer lines;
* timestamps always carry hours: ``HH:MM:SS,mmm`` in SRT, ``HH:MM:SS.mmm`` in WebVTT;
* cues are numbered from 1 (SRT requires it; in WebVTT the number is the cue identifier).

SubRip has no escape mechanism, so an arrow ``-->`` inside SRT text is written as ``->``.
WebVTT escapes ``&``, ``<`` and ``>`` as character references (which also defuses ``-->``).
Speaker names are left out unless ``speaker_labels=True``: then SRT prefixes ``Name: `` and
WebVTT uses a voice span ``<v Name>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_CHARS = 42
MAX_LINES = 2


@dataclass
class Cue:
    """One subtitle: ``start``/``end`` in seconds, the text, and who says it (optional)."""

    start: float
    end: float
    text: str
    speaker: str | None = None


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000.0))


def format_timestamp(seconds: float, *, sep: str = ",") -> str:
    """``HH:MM:SS,mmm`` (``sep=","``, SRT) or ``HH:MM:SS.mmm`` (``sep="."``, WebVTT); hours may exceed 99."""
    total = _ms(seconds)
    hours, rest = divmod(total, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def wrap_text(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    """Whitespace-normalise ``text`` and split it into one or two balanced lines."""
    flat = " ".join(text.split())
    if len(flat) <= max_chars:
        return [flat] if flat else []
    spaces = [i for i, ch in enumerate(flat) if ch == " "]
    if not spaces:
        mid = (len(flat) + 1) // 2
        return [flat[:mid], flat[mid:]]
    # Balance the two lines; on a tie prefer the shorter first line (the "bottom-heavy"
    # shape subtitle style guides favour).
    best = min(spaces, key=lambda i: (max(i, len(flat) - i - 1), i))
    return [flat[:best], flat[best + 1 :]]


def _layout(cues: Iterable[Cue]) -> list[tuple[int, int, str, str | None]]:
    """Sort, drop empty cues, clip overlaps; ``(start_ms, end_ms, text, speaker)`` tuples."""
    kept = [(_ms(c.start), _ms(c.end), " ".join(c.text.split()), c.speaker) for c in cues]
    kept = [k for k in kept if k[2]]
    kept.sort(key=lambda k: (k[0], k[1]))
    out: list[tuple[int, int, str, str | None]] = []
    for i, (start, end, text, speaker) in enumerate(kept):
        if i + 1 < len(kept):
            end = min(end, kept[i + 1][0])
        if end > start:
            out.append((start, end, text, speaker))
    return out


def to_srt(cues: Iterable[Cue], *, max_chars: int = MAX_CHARS, speaker_labels: bool = False) -> str:
    """SubRip text for ``cues`` (UTF-8 string, ``\\n`` line ends, blank line after each cue)."""
    blocks = []
    for number, (start, end, text, speaker) in enumerate(_layout(cues), start=1):
        body = text.replace("-->", "->")
        if speaker_labels and speaker:
            body = f"{' '.join(speaker.split())}: {body}"
        lines = wrap_text(body, max_chars)
        stamp = f"{format_timestamp(start / 1000)} --> {format_timestamp(end / 1000)}"
        blocks.append("\n".join([str(number), stamp, *lines]) + "\n")
    return "\n".join(blocks)


def escape_vtt(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` for WebVTT cue text (so ``-->`` cannot appear either)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Iterable[Cue], *, max_chars: int = MAX_CHARS, speaker_labels: bool = False) -> str:
    """WebVTT text for ``cues``: the ``WEBVTT`` header, then numbered cues."""
    blocks = ["WEBVTT\n"]
    for number, (start, end, text, speaker) in enumerate(_layout(cues), start=1):
        lines = [escape_vtt(line) for line in wrap_text(text, max_chars)]
        if speaker_labels and speaker and lines:
            name = escape_vtt(" ".join(speaker.split()))
            lines[0] = f"<v {name}>{lines[0]}"
        stamp = f"{format_timestamp(start / 1000, sep='.')} --> {format_timestamp(end / 1000, sep='.')}"
        blocks.append("\n".join([str(number), stamp, *lines]) + "\n")
    return "\n".join(blocks)


_TIMING = re.compile(
    r"^\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*-->\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})"
)


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return (int(h) * 3_600_000 + int(m) * 60_000 + int(s) * 1000 + int(ms.ljust(3, "0"))) / 1000.0


def parse_srt(text: str) -> list[Cue]:
    """Read SubRip text (BOM, CRLF and missing cue numbers tolerated); lines joined with ``\\n``.

    Blocks without a valid timing line are skipped. Speakers are not recovered (``None``).
    """
    cues: list[Cue] = []
    body = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    for block in re.split(r"\n\s*\n", body):
        lines = block.strip("\n").split("\n")
        for i, line in enumerate(lines[:2]):
            match = _TIMING.match(line)
            if match:
                g = match.groups()
                content = "\n".join(ln.strip() for ln in lines[i + 1 :] if ln.strip())
                cues.append(Cue(_seconds(*g[:4]), _seconds(*g[4:]), content, None))
                break
    return cues
