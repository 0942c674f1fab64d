"""Apertium: offline, rule-based, deterministic translation (the default for en→es).

Apertium runs as a Unix pipeline (``apertium <mode>``) installed from Debian
(``apertium`` + one data package per pair, e.g. ``apertium-eng-spa``). Pairs are discovered
from ``apertium -l`` (falling back to the installed ``modes/*.mode`` files) and mapped to
ISO 639-1 codes: the mode ``eng-spa`` is the pair ``("en", "es")``.

All lines of one call go through **one** ``apertium`` process. They are sent in Apertium's
HTML format, one ``<p id="dpN">…</p>`` block per line: the text is HTML-escaped, the tags are
format (never translated or reordered), and a block boundary is a sentence boundary for
Apertium's transfer rules, so lines cannot bleed into each other. The reply is parsed back by
id; should ids ever be missing, duplicated or out of order, every line is translated on its
own (one process each) instead, and a line whose own process fails is ``"failed"``.

Apertium cannot shorten a translation: a line longer than 1.5 × its word budget is returned
with status ``"over_budget"`` for the isochrony stage to handle.
"""

from __future__ import annotations

import functools
import glob
import html
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from dubbing_pipeline.common.tool_env import tool_env
from dubbing_pipeline.errors import ModelMissingError, ProviderError, UnsupportedError, sanitize
from dubbing_pipeline.translation.base import (
    APERTIUM_HOWTO,
    STATUS_FAILED,
    STATUS_OK,
    LineRequest,
    LineResult,
    Translator,
    glossary_flags,
    status_for,
)
from dubbing_pipeline.translation.budget import normalize_language
from dubbing_pipeline.translation.glossary import Term, protect, restore
from dubbing_pipeline.translation.names import analyser_of, keep_as_written

_MODE_DIRS = ("/usr/share/apertium/modes", "/usr/local/share/apertium/modes")
_BLOCK_RE = re.compile(r'<p id="dp(\d+)">(.*?)</p>', re.DOTALL)
_TAG_RE = re.compile(r"<[^>]*>")
_ISO3 = {
    "en": "eng", "es": "spa", "ca": "cat", "gl": "glg", "pt": "por", "fr": "fra", "it": "ita",
    "de": "deu", "nl": "nld", "ro": "ron", "eu": "eus", "oc": "oci", "an": "arg", "ast": "ast",
    "eo": "epo", "sv": "swe", "da": "dan", "nb": "nob", "nn": "nno", "is": "isl", "pl": "pol",
    "ru": "rus", "uk": "ukr", "cy": "cym", "br": "bre", "mt": "mlt", "ar": "ara", "sc": "srd",
    "kk": "kaz", "tt": "tat", "hi": "hin", "ur": "urd", "ms": "msa", "id": "ind",
}  # fmt: skip
_MODE_ALIASES = {"arg": "an", "eus": "eu", "oci": "oc", "epo": "eo", "nno": "nn", "isl": "is", "cym": "cy",
                 "bre": "br", "mlt": "mt", "srd": "sc", "kaz": "kk", "tat": "tt", "urd": "ur"}  # fmt: skip


def find_apertium() -> str | None:
    """Path of the ``apertium`` binary on ``PATH``, or ``None``."""
    return shutil.which("apertium")


def debian_package(source: str, target: str) -> str:
    """The Debian data package name a pair would have (``apertium-eng-spa``)."""
    src, tgt = normalize_language(source), normalize_language(target)
    return f"apertium-{_ISO3.get(src, src)}-{_ISO3.get(tgt, tgt)}"


def _lang_of(code: str) -> str:
    code = code.lower()
    return _MODE_ALIASES.get(code.split("_", 1)[0], normalize_language(code))


def _parse_modes(names: Sequence[str]) -> dict[tuple[str, str], str]:
    """``{(src, tgt): mode}`` from mode names; plain modes win over variants (``spa-eng_US``)."""
    found: dict[tuple[str, str], str] = {}
    for name in sorted(set(names), key=lambda m: ("_" in m, m)):
        parts = name.split("-")
        if len(parts) != 2 or not all(parts):
            continue  # debugging modes such as eng-spa-tagger
        pair = (_lang_of(parts[0]), _lang_of(parts[1]))
        if pair[0] != pair[1]:
            found.setdefault(pair, name)
    return found


def _env() -> dict[str, str]:
    env = tool_env()
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


@functools.lru_cache(maxsize=8)
def discover_modes(binary: str) -> dict[tuple[str, str], str]:
    """Installed translation modes of ``binary``: ``{("en", "es"): "eng-spa", ...}``."""
    names: list[str] = []
    try:
        proc = subprocess.run([binary, "-l"], capture_output=True, timeout=30, env=_env(), check=False)
        names = proc.stdout.decode("utf-8", "replace").split()
    except (OSError, subprocess.SubprocessError):
        names = []
    if not names:
        for folder in _MODE_DIRS:
            names += [os.path.basename(p)[: -len(".mode")] for p in glob.glob(os.path.join(folder, "*.mode"))]
    return _parse_modes(names)


@functools.lru_cache(maxsize=8)
def _versions(binary: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        proc = subprocess.run([binary, "-V"], capture_output=True, timeout=30, env=_env(), check=False)
        out["apertium"] = proc.stdout.decode("utf-8", "replace").strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        out["apertium"] = "unknown"
    dpkg = shutil.which("dpkg-query")
    if dpkg:
        try:
            proc = subprocess.run(
                [dpkg, "-W", "-f", "${Package} ${Version}\\n", "apertium-*"],
                capture_output=True, timeout=30, check=False, env=_env(),
            )  # fmt: skip
            for row in proc.stdout.decode("utf-8", "replace").splitlines():
                name, _, version = row.partition(" ")
                if version.strip():
                    out[name] = version.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def _clean(text: str) -> str:
    return " ".join(text.split())


def _strip_marks(translated: str, source: str) -> str:
    """Drop Apertium's diagnostic marks (``#`` generation, ``@`` transfer) not in the source."""
    for mark in "#@":
        if mark not in source:
            translated = re.sub(re.escape(mark) + r"(?=\w)", "", translated)
    return _clean(translated)


EACH_WORKERS = 4  # Apertium processes at once in ``translate_each`` (each one is a pipe of 6 programs)


class ApertiumTranslator(Translator):
    """Translate with the ``apertium`` command: each line in a process of its own, deterministic."""

    name = "apertium"

    def __init__(self, binary: str | None = None, timeout: float = 300.0) -> None:
        path = binary or find_apertium()
        if not path or not os.path.exists(path):
            raise ModelMissingError(f"the apertium binary is missing; {APERTIUM_HOWTO}")
        self.binary = path
        self.timeout = timeout

    def pairs(self) -> list[tuple[str, str]]:
        return sorted(discover_modes(self.binary))

    def mode(self, source: str, target: str) -> str:
        """The Apertium mode for the pair (``eng-spa``); ``UnsupportedError`` if not installed."""
        src, tgt = normalize_language(source), normalize_language(target)
        modes = discover_modes(self.binary)
        if (src, tgt) not in modes:
            offered = ", ".join(f"{s}->{t}" for s, t in sorted(modes)) or "none"
            raise UnsupportedError(
                f"apertium has no {src}->{tgt} pair (installed: {offered}); "
                f"the data would be the Debian package {debian_package(src, tgt)}"
            )
        return modes[(src, tgt)]

    def analyser(self, mode: str) -> str | None:
        """The source-language analyser of ``mode`` (for ``names.keep_as_written``)."""
        for folder in _MODE_DIRS:
            path = os.path.join(folder, f"{mode}.mode")
            if os.path.isfile(path):
                return analyser_of(path)
        return None

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "format": "each-line-v1",
            "names": "kept where Apertium would read them as words (names-v1)",
            "modes": {f"{s}-{t}": m for (s, t), m in sorted(discover_modes(self.binary).items())},
            "versions": _versions(self.binary),
        }

    # ------------------------------------------------------------------ running apertium

    def _run(self, mode: str, payload: str, marks: bool = False) -> str:
        flags = ["-f", "html"] if marks else ["-u", "-f", "html"]
        try:
            proc = subprocess.run(
                [self.binary, *flags, mode],
                input=payload.encode("utf-8"),
                capture_output=True,
                timeout=self.timeout,
                env=_env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProviderError(f"apertium {mode} timed out after {self.timeout:.0f} s") from exc
        except OSError as exc:
            raise ProviderError(f"apertium {mode} could not run: {exc}") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            raise ProviderError(f"apertium {mode} exited with {proc.returncode}: {err}")
        return proc.stdout.decode("utf-8", "replace")

    def translate_texts(self, texts: Sequence[str], mode: str, *, marks: bool = False) -> list[str]:
        """Translate ``texts`` in one process; raises ``ProviderError`` if the reply's blocks
        do not match the request one-to-one. ``marks``: keep Apertium's ``*`` before each word
        it does not know (the pivot finds Portuguese words left behind by it)."""
        cleaned = [_clean(t) for t in texts]
        if not cleaned:
            return []
        payload = "".join(f'<p id="dp{i}">{html.escape(t, quote=False)}</p>\n' for i, t in enumerate(cleaned))
        out = self._run(mode, payload, marks)
        blocks = _BLOCK_RE.findall(out)
        ids = [int(i) for i, _ in blocks]
        if ids != list(range(len(cleaned))):
            raise ProviderError(f"apertium {mode} returned {len(ids)} blocks for {len(cleaned)} lines")
        bodies = [body for _, body in blocks]
        return [
            _strip_marks(html.unescape(_TAG_RE.sub(" ", body)), src)
            for body, src in zip(bodies, cleaned, strict=True)
        ]

    def translate_each(self, texts: Sequence[str], mode: str, *, marks: bool = False) -> list[str]:
        """Each text in a process of its own (``EACH_WORKERS`` at once), so that a translation
        depends on its line alone. Apertium's part-of-speech tagger carries state from one line to
        the next within a process: through the pt→es pair, 10 of 230 lines came out differently in
        one batch than alone, each of them worse ("Corte a cebola" read as "Corte *to* cebola"
        once earlier lines had passed), and a line's translation changed when another line of its
        video did (en→es: no line differed; en→gl: 2 of 230). Raises the first line's error."""
        out: list[str] = []
        for result in self._each(texts, mode, marks):
            if isinstance(result, ProviderError):
                raise result
            out.append(result)
        return out

    def _each(self, texts: Sequence[str], mode: str, marks: bool) -> list[str | ProviderError]:
        """``translate_each``, with each line's error in its place instead of raised."""

        def one(text: str) -> str | ProviderError:
            try:
                return self.translate_texts([text], mode, marks=marks)[0]
            except ProviderError as exc:
                return exc

        if not texts:
            return []
        with ThreadPoolExecutor(max_workers=min(EACH_WORKERS, len(texts))) as pool:
            return list(pool.map(one, texts))

    def translate(self, lines: Sequence[LineRequest], source: str, target: str) -> list[LineResult]:
        mode = self.mode(source, target)
        tgt = normalize_language(target)
        todo = [i for i, line in enumerate(lines) if _clean(line.text)]
        # glossary terms travel as placeholders Apertium leaves alone, then become the target terms;
        # so do names Apertium would read as words ("This is Bill" → "Esto es Factura": names.py)
        protected = {i: protect(lines[i].text, lines[i].glossary) for i in todo}
        names = keep_as_written([protected[i][0] for i in todo], self.analyser(mode))
        for i, kept in zip(todo, names, strict=True):  # as written: "Bill" is kept, "bill" is not
            text, used = protected[i]
            protected[i] = protect(text, [Term(n, n) for n in kept], used, ignore_case=False)
        # each line alone (``translate_each``): its translation depends on nothing else, and one
        # line Apertium cannot take fails alone
        outcomes = dict(zip(todo, self._each([protected[i][0] for i in todo], mode, False), strict=True))
        translated = {i: r for i, r in outcomes.items() if isinstance(r, str)}
        errors = {i: r.message for i, r in outcomes.items() if isinstance(r, ProviderError)}
        if todo and not translated:
            raise ProviderError(f"apertium failed on every line: {errors[todo[0]]}")

        results: list[LineResult] = []
        for i, line in enumerate(lines):
            if i not in outcomes:  # empty source line: nothing to say
                results.append(LineResult(line.id, "", 0, False, STATUS_OK))
                continue
            text = restore(translated.get(i, ""), protected[i][1])
            if not text:
                detail = sanitize(errors.get(i, "apertium returned no text"))
                results.append(LineResult(line.id, "", 1, False, STATUS_FAILED, detail))
                continue
            status = status_for(text, line.budget, tgt)
            flags = glossary_flags(line, text)
            results.append(LineResult(line.id, text, 1, False, status, flags=flags))
        return results
