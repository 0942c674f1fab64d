"""The ``translation`` stage's cores and providers: word budgets, Apertium and an LLM translator.

* ``budget``: words-per-second table, word budgets, word counting, request windows (pure).
* ``base``: ``LineRequest`` / ``LineResult`` and the ``Translator`` interface.
* ``factory``: ``make_translator``, the translator the settings ask for.
* ``apertium``: offline rule-based en→es (Debian ``apertium`` + ``apertium-eng-spa``).
* ``llm``: any OpenAI-compatible chat endpoint (vLLM, llama-server).
* ``asset``, ``records``, ``edits_asset``: the stage, its record, the person's edits upstream of it.

Importing this package starts no process and opens no connection.
"""

from dubbing_pipeline.translation.base import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_OVER_BUDGET,
    LineRequest,
    LineResult,
    Translator,
)
from dubbing_pipeline.translation.budget import (
    WPS,
    context_windows,
    count_words,
    over_budget,
    word_budget,
)
from dubbing_pipeline.translation.factory import make_translator

__all__ = [
    "STATUS_FAILED",
    "STATUS_OK",
    "STATUS_OVER_BUDGET",
    "WPS",
    "LineRequest",
    "LineResult",
    "Translator",
    "context_windows",
    "count_words",
    "make_translator",
    "over_budget",
    "word_budget",
]
