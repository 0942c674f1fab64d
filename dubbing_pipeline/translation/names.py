"""Names Apertium would translate as words: "This is Bill" → "Esto es Factura".

Apertium's tagger chooses one reading per word, and a name that is also a common word (Bill,
Will, Grace in English; Diana, Rosa in Spanish) is often read as the common word, even where the
transcript wrote it with a capital in the middle of a sentence. Such a word is kept as written:
it travels to Apertium as a placeholder, like a glossary term.

A word is kept when all of these hold:

* it starts with a capital and is not all capitals ("I", "NASA": left to Apertium);
* it does not start a sentence (there a capital says nothing);
* the source analyser (``lt-proc -w``, dictionary case) knows the same word in lower case as a
  common word it could become ("bill" for "Bill"; "I'm" is a pronoun and a verb, never "i'm");
* no reading is a capitalised common word ("Monday", "English": words the target language spells
  its own way) and no reading is a place name (``<np><loc>``: "Nice" → "Niza" is right).

A name only Apertium's proper-noun list knows ("Texas", "Sheila") needs nothing: Apertium already
passes it through, or gives the target language's own spelling of a place.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Sequence

from dubbing_pipeline.common.tool_env import tool_env

log = logging.getLogger(__name__)

_UNIT_RE = re.compile(r"(?<!\\)\^((?:[^/$\\]|\\.)*)/((?:[^$\\]|\\.)*)\$|(?<!\\)\[((?:[^\]\\]|\\.)*)\]")
_READING_SPLIT = re.compile(r"(?<!\\)/")


def names_to_keep(analysed: str, lines: int) -> list[list[str]]:
    """From ``lt-proc -w`` output of ``lines`` texts separated by newlines: each line's words to
    keep as written (see the module docstring), in order, without repeats."""
    kept: list[list[str]] = [[] for _ in range(max(lines, 0))]
    line, initial = 0, True
    for match in _UNIT_RE.finditer(analysed):
        surface, readings, blank = match.groups()
        if blank is not None:
            if "\n" in blank:
                line, initial = line + 1, True
            continue
        parts = _READING_SPLIT.split(readings)
        if any("<sent>" in r for r in parts):
            initial = True
            continue
        if not any(ch.isalpha() for ch in surface):
            continue  # commas, quotes, brackets, numbers neither start nor end a sentence
        if not initial and line < len(kept) and _keep(surface, parts) and surface not in kept[line]:
            kept[line].append(surface)
        initial = False
    if line != len(kept):  # the lines did not come back one for one: keep nothing rather than misplace
        log.warning("names not protected: %d lines analysed as %d", len(kept), line)
        return [[] for _ in kept]
    return kept


def _keep(surface: str, readings: Sequence[str]) -> bool:
    if not surface[:1].isupper() or surface.isupper() or " " in surface:
        return False
    if any(r.startswith("*") for r in readings):  # unknown: Apertium passes it through as it is
        return False
    # the word itself, in lower case, as a dictionary word ("bill" for "Bill"; not "prpers" for "I'm")
    common_lower = any(r.split("<", 1)[0] == surface.lower() for r in readings)
    capital_common = any("<np>" not in r and r[:1].isupper() for r in readings)
    place = any("<np><loc>" in r for r in readings)
    return common_lower and not capital_common and not place


def analyse(texts: Sequence[str], analyser: str, timeout: float = 60.0) -> str:
    """``texts`` (one per line) through Apertium's text deformatter and the source analyser."""
    payload = "\n".join(t.replace("\n", " ") for t in texts) + "\n"
    deformatted = subprocess.run(
        ["apertium-destxt"],
        input=payload.encode("utf-8"),
        capture_output=True,
        timeout=timeout,
        check=True,
        env=tool_env(),
    ).stdout
    return subprocess.run(
        ["lt-proc", "-w", analyser],
        input=deformatted,
        capture_output=True,
        timeout=timeout,
        check=True,
        env=tool_env(),
    ).stdout.decode("utf-8", "replace")


def keep_as_written(texts: Sequence[str], analyser: str | None) -> list[list[str]]:
    """Each text's names to keep (``names_to_keep``); none where the analyser cannot run: the
    texts are then translated as before, never failed for it."""
    if not analyser or not texts:
        return [[] for _ in texts]
    try:
        return names_to_keep(analyse(texts, analyser), len(texts))
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("names not protected (the analyser %s did not run: %s)", analyser, exc)
        return [[] for _ in texts]


def analyser_of(mode_file: str) -> str | None:
    """The source analyser (``….automorf.bin``) an Apertium mode file runs first."""
    try:
        with open(mode_file, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return None
    found = re.search(r"lt-proc\s+(?:-\S+\s+)*'([^']+\.automorf\.bin)'", text)
    return found.group(1) if found else None
