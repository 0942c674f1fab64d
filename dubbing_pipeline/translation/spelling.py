"""Words a target language's dictionary does not know: the ``hunspell`` command (Debian).

Used to find Portuguese words a pivot translation left behind (``pivot``) and by the translation
evaluation (``tooling.translation_eval``). Dictionaries come from Debian: ``hunspell-es``
(``es_ES``), ``hunspell-ca`` (``ca_ES``), ``hunspell-gl`` (``gl_ES``). All words of one call go
through **one** ``hunspell -l`` process (one word a line in, the unknown ones out).

A "word" here is a run of letters (apostrophes and hyphens inside it kept, so "l'aixeta" and
"bem-vindo" stay whole); digits, placeholders and punctuation are not words.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable

from dubbing_pipeline.common.tool_env import tool_env
from dubbing_pipeline.errors import ModelMissingError, ProviderError

DICTIONARIES = {"es": "es_ES", "ca": "ca_ES", "gl": "gl_ES", "pt": "pt_BR", "en": "en_US"}
_DICT_DIRS = ("/usr/share/hunspell", "/usr/local/share/hunspell")
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’·-][^\W\d_]+)*")
HUNSPELL_HOWTO = "apt-get install hunspell hunspell-es hunspell-ca hunspell-gl"


def words(text: str) -> list[str]:
    """The words of ``text`` in order (letters, with inner apostrophes and hyphens)."""
    return _WORD_RE.findall(text)


def dictionary_path(language: str) -> str | None:
    """The ``.dic`` file (without extension) of ``language``'s dictionary, or ``None``."""
    name = DICTIONARIES.get(language)
    if name is None:
        return None
    for folder in _DICT_DIRS:
        base = os.path.join(folder, name)
        if os.path.isfile(base + ".dic") and os.path.isfile(base + ".aff"):
            return base
    return None


def has_dictionary(language: str) -> bool:
    """Whether ``hunspell`` and ``language``'s dictionary are installed."""
    return shutil.which("hunspell") is not None and dictionary_path(language) is not None


def unknown_words(candidates: Iterable[str], language: str) -> set[str]:
    """The words of ``candidates`` that ``language``'s dictionary does not know (one process).

    ``ModelMissingError`` when ``hunspell`` or the dictionary is not installed."""
    binary = shutil.which("hunspell")
    dic = dictionary_path(language)
    if binary is None or dic is None:
        raise ModelMissingError(f"no hunspell dictionary for {language!r}: {HUNSPELL_HOWTO}")
    unique = sorted({w for w in candidates if w})
    if not unique:
        return set()
    env = tool_env({"LC_ALL": "C.UTF-8"})
    try:
        proc = subprocess.run(
            [binary, "-i", "utf-8", "-d", dic, "-l"],
            input="\n".join(unique).encode("utf-8"),
            capture_output=True, timeout=120, env=env, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProviderError(f"hunspell could not run: {exc}") from exc
    if proc.returncode != 0:
        raise ProviderError(
            f"hunspell exited with {proc.returncode}: {proc.stderr.decode('utf-8', 'replace')[-300:]}"
        )
    unknown = set(proc.stdout.decode("utf-8", "replace").split()) & set(unique)
    return unknown - _known_with_enclitics(unknown, language)


ENCLITICS = {
    "es": sorted(
        "me te se le lo la nos os les los las melo mela telo tela selo sela selos selas".split(),  # noqa: SIM905
        key=len,
        reverse=True,
    ),
}
"""Pronouns Spanish writes onto a verb ("péguelo", "manténgalos", "certifíquese"), forms hunspell's
es_ES dictionary mostly lacks: a word is known when the verb under them is (its stress accent dropped)."""
_ACCENTS = str.maketrans("áéíóú", "aeiou")


def enclitic_stems(word: str, language: str) -> list[str]:
    """The verb forms ``word`` may be with pronouns written onto it (``"péguelo"`` → ``"pegue"``);
    none for a language without ``ENCLITICS`` or a stem shorter than 3 letters."""
    out: list[str] = []
    for suffix in ENCLITICS.get(language, ()):
        stem = word[: -len(suffix)] if word.lower().endswith(suffix) else ""
        if len(stem) >= 3:
            out.append(stem.translate(_ACCENTS))
    return out


def _known_with_enclitics(unknown: set[str], language: str) -> set[str]:
    stems = {w: enclitic_stems(w, language) for w in unknown}
    candidates = [s for forms in stems.values() for s in forms]
    if not candidates:
        return set()
    bad = unknown_words(candidates, language)
    return {w for w, forms in stems.items() if any(f not in bad for f in forms)}


def unknown_in(texts: Iterable[str], language: str) -> list[list[str]]:
    """Per text, its words ``language``'s dictionary does not know, in order (one process in all)."""
    split = [words(t) for t in texts]
    unknown = unknown_words((w for ws in split for w in ws), language)
    return [[w for w in ws if w in unknown] for ws in split]
