"""LLM translation through any OpenAI-compatible chat endpoint (vLLM in production).

Plain HTTP (``urllib.request``), no client library: ``POST {DUBBING_LLM_URL}/v1/chat/completions``
with ``DUBBING_LLM_MODEL``, temperature 0 and a fixed seed, and a ``response_format`` JSON
schema that asks for ``{"lines": [{"id": ..., "text": ...}]}`` with exactly the requested ids.

How a call is translated:

1. The lines are cut into windows of ``window`` (5) lines (``budget.context_windows``). Each
   request translates one window and shows up to ``context`` (2) source lines on either side
   as read-only context, plus each line's word budget (``max_words``; for Japanese and Chinese
   ``max_characters`` = 2 × budget, the unit ``budget.count_words`` uses).
2. Every reply is validated: JSON, the schema, every requested id present once, no other ids,
   non-empty text. A reply that fails (or an HTTP 429/5xx, a timeout, a dropped connection) is
   retried up to ``DUBBING_LLM_MAX_RETRIES`` times with exponential backoff; lines that came
   back valid are kept and only the missing ones are asked again, with a note saying what was
   wrong with the previous reply. Lines still missing end with status ``"failed"``.
3. Lines whose valid translation has more than 1.5 × budget words are asked once more, all
   together, with a stricter instruction (temperature 0.2, same seed) that shows the too-long
   translation. The shorter of the two is kept and the line records ``stricter_retry=True``;
   if it is still too long its status is ``"over_budget"``.

``shorten(line, budget, source=..., target=...)`` is that stricter request for one line, for
the isochrony stage's "re-translate shorter once".

A bad line never raises. The call raises ``ConfigurationError`` when the server rejects the
credentials (401/403) or does not know the URL/model (404), and ``ProviderError`` when not a
single line could be translated because the server kept failing. The API key is sent only as
``Authorization: Bearer`` and never appears in errors, logs or ``describe()``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dubbing_pipeline.errors import ConfigurationError, ProviderError, sanitize
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.translation.base import (
    STATUS_FAILED,
    STATUS_OK,
    LineRequest,
    LineResult,
    Translator,
    glossary_flags,
    status_for,
)
from dubbing_pipeline.translation.budget import (
    context_range,
    context_windows,
    count_words,
    normalize_language,
    over_budget,
)
from dubbing_pipeline.translation.glossary import terms_in, violations

log = logging.getLogger(__name__)

PROMPT_VERSION = "2"
TEMPERATURE = 0.0
STRICT_TEMPERATURE = 0.2
SEED = 0
_CHAR_UNIT_LANGS = frozenset({"ja", "zh"})

LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
    "pt": "Portuguese", "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "ar": "Arabic",
    "hi": "Hindi", "ru": "Russian", "uk": "Ukrainian", "pl": "Polish", "nl": "Dutch",
    "tr": "Turkish", "ca": "Catalan", "gl": "Galician", "sv": "Swedish", "da": "Danish",
    "no": "Norwegian", "nb": "Norwegian Bokmål", "fi": "Finnish", "cs": "Czech", "el": "Greek",
    "he": "Hebrew", "hu": "Hungarian", "id": "Indonesian", "ms": "Malay", "ro": "Romanian",
    "vi": "Vietnamese", "th": "Thai", "eu": "Basque",
}  # fmt: skip

SYSTEM_PROMPT = (
    "You are a professional dubbing translator. You translate lines of a video's dialogue from "
    "{source} into {target}. A voice actor will speak each translated line in the time the original "
    "took, so every line has a length limit ({unit}); stay within it while keeping the meaning, tone "
    "and register, and prefer short natural phrasing over literal completeness. Keep names, places "
    "and numbers. Lines under context_before and context_after are only there to help you understand "
    "the conversation: do not translate them. Reply with JSON only, of the form "
    '{{"lines": [{{"id": "<id>", "text": "<translation>", "offensive": false}}]}}, with exactly one '
    "entry for each line under lines_to_translate, in the same order and with the same ids. Set "
    '"offensive" to true only when your translation contains offensive, hateful or obscene words '
    "that the original line does not have."
)
STRICT_NOTE = (
    "These translations are too long to be spoken in time. Translate the lines again, much shorter: "
    "each line must respect its limit. Drop fillers, repetitions and secondary details; keep the core "
    "meaning. too_long_translation shows the previous attempt."
)
GLOSSARY_NOTE = (
    "Some lines have required_terms: their translation must contain each target term exactly as "
    "written there."
)
RETRY_NOTE = (
    "Your previous reply was not usable ({problem}). Reply again with valid JSON for exactly these ids."
)


# --------------------------------------------------------------------------- reply checking


def _strip_fences(content: str) -> str:
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def validate_reply(content: str, ids: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """Check a reply's content against the requested ``ids``.

    Returns the usable translations (id → text) and a description of what was wrong, or
    ``None`` when the reply is complete. A reply that is not JSON, does not follow the schema,
    repeats an id or names an id that was not asked for is rejected whole (nothing usable);
    one that only lacks ids or has empty texts keeps its good lines.
    """
    good, problem, _offensive = read_reply(content, ids)
    return good, problem


def read_reply(content: str, ids: Sequence[str]) -> tuple[dict[str, str], str | None, set[str]]:
    """``validate_reply``, and the ids of the usable lines the model says it translated with
    offensive words the original lacks."""
    try:
        data = json.loads(_strip_fences(content))
    except (json.JSONDecodeError, TypeError) as exc:
        return {}, f"not JSON ({exc.__class__.__name__} at char {getattr(exc, 'pos', '?')})", set()
    if not isinstance(data, dict) or not isinstance(data.get("lines"), list):
        return {}, 'not an object with a "lines" array', set()
    wanted = set(ids)
    seen: set[str] = set()
    good: dict[str, str] = {}
    empty: list[str] = []
    offensive: set[str] = set()
    for item in data["lines"]:
        if not (
            isinstance(item, dict) and isinstance(item.get("id"), str) and isinstance(item.get("text"), str)
        ):
            return {}, 'an entry is not {"id": string, "text": string}', set()
        if not isinstance(item.get("offensive", False), bool):
            return {}, '"offensive" is not true or false', set()
        line_id, text = item["id"], " ".join(item["text"].split())
        if line_id not in wanted:
            return {}, f"unexpected id {line_id[:40]!r}", set()
        if line_id in seen:
            return {}, f"id {line_id[:40]!r} appears twice", set()
        seen.add(line_id)
        if text:
            good[line_id] = text
            if item.get("offensive") is True:
                offensive.add(line_id)
        else:
            empty.append(line_id)
    missing = [i for i in ids if i not in seen]
    problems = []
    if missing:
        problems.append("missing ids " + ", ".join(repr(i[:40]) for i in missing[:10]))
    if empty:
        problems.append("empty text for ids " + ", ".join(repr(i[:40]) for i in empty[:10]))
    return good, ("; ".join(problems) or None), offensive


def max_text_chars(budget: int, target: str) -> int:
    """The ``maxLength`` a line's text may have in the schema: about three times the budget.

    It stops a looping model long before the token limit (so the reply stays valid JSON) yet
    leaves room above 1.5 × budget, so an over-long translation is still seen and retried.
    """
    per_unit = 6 if normalize_language(target) in _CHAR_UNIT_LANGS else 16
    return max(40, per_unit * max(1, budget))


def response_schema(ids: Sequence[str], max_chars: int | None = None) -> JsonObject:
    """The ``response_format`` for a request translating ``ids`` (texts of at most ``max_chars``)."""
    text: JsonObject = {"type": "string", "minLength": 1}
    if max_chars:
        text["maxLength"] = int(max_chars)
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "dubbing_translations",
            "strict": True,
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["lines"],
                "properties": {
                    "lines": {
                        "type": "array",
                        "minItems": len(ids),
                        "maxItems": len(ids),
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["id", "text", "offensive"],
                            "properties": {
                                "id": {"type": "string", "enum": list(ids)},
                                "text": text,
                                "offensive": {"type": "boolean"},  # the model's own toxicity verdict
                            },
                        },
                    }
                },
            },
        },
    }


# --------------------------------------------------------------------------- transport


class _Transient(Exception):
    """A failure worth retrying (timeouts, dropped connections, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Rejected(Exception):
    """The server refused this request (400, 413, 422): repeating it would not help."""


@dataclass
class _Line:
    request: LineRequest
    text: str = ""
    attempts: int = 0
    stricter: bool = False
    detail: str = ""
    offensive: set[str] = field(default_factory=set)  # texts the model said are offensive


@dataclass
class _CallState:
    """One ``translate`` call: the transport errors met (all lines failing on them is an error)."""

    transport_errors: list[str] = field(default_factory=list)


@dataclass
class _Asking:
    """One ``_ask``: the valid translations so far and what was wrong with the last reply."""

    got: dict[str, str] = field(default_factory=dict)
    best_effort: dict[str, str] = field(default_factory=dict)  # valid replies that missed a glossary term
    problem: str = ""
    retry_after: float = 0.0  # the server's Retry-After, seconds


def _max_tokens(items: list[JsonObject]) -> int:
    """A generous completion cap: ~6 tokens per allowed word plus JSON overhead per line."""
    total = 48
    for item in items:
        limit = item["max_words"] if "max_words" in item else item.get("max_characters", 3)
        total += 24 + 6 * max(3, int(limit))
    return total


def _language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


class LLMTranslator(Translator):
    """Translate with an OpenAI-compatible chat completions endpoint (any language pair)."""

    name = "llm"
    any_pair = True

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str = "",
        *,
        timeout: float = 120.0,
        max_retries: int = 3,
        window: int = 5,
        context: int = 2,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parsed = urllib.parse.urlsplit(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigurationError(f"DUBBING_LLM_URL={sanitize(url)!r} is not an http(s) URL")
        if not model:
            raise ConfigurationError("the llm translator needs DUBBING_LLM_MODEL (the served model name)")
        base = url.strip().rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        self.endpoint = base + "/v1/chat/completions"
        self.host = parsed.hostname or "?"
        self.model = model
        self._api_key = api_key
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.window = max(1, int(window))
        self.context = max(0, int(context))
        self.backoff = float(backoff)
        self.sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> LLMTranslator:
        return cls(
            settings.llm_url,
            settings.llm_model,
            settings.llm_api_key,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"LLMTranslator(host={self.host!r}, model={self.model!r})"

    def pairs(self) -> list[tuple[str, str]]:
        return []

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "model": self.model,
            "prompt_version": PROMPT_VERSION,
            "temperature": TEMPERATURE,
            "strict_temperature": STRICT_TEMPERATURE,
            "seed": SEED,
            "window": self.window,
            "context": self.context,
        }

    # ------------------------------------------------------------------ HTTP

    def _scrub(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return sanitize(text)

    def _post(self, body: JsonObject) -> JsonObject:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = ""
            with contextlib.suppress(OSError, http.client.HTTPException):
                detail = exc.read().decode("utf-8", "replace")[:200]
            detail = self._scrub(detail)
            if exc.code in (401, 403):
                raise ConfigurationError(
                    f"llm server {self.host} refused the request (HTTP {exc.code}): check DUBBING_LLM_API_KEY"
                ) from None
            if exc.code == 404:
                raise ConfigurationError(
                    f"llm server {self.host} answered 404 for model {self.model!r}: check DUBBING_LLM_URL "
                    f"and DUBBING_LLM_MODEL ({detail})"
                ) from None
            if exc.code in (408, 409, 425, 429) or exc.code >= 500:
                retry_after = None
                value = exc.headers.get("Retry-After") if exc.headers else None
                if value and value.strip().isdigit():
                    retry_after = min(float(value), 60.0)
                raise _Transient(f"HTTP {exc.code}: {detail}", retry_after) from None
            raise _Rejected(f"HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Transient(self._scrub(f"{type(exc).__name__}: {reason}")) from None
        try:
            reply = json.loads(raw.decode("utf-8", "replace"))
        except json.JSONDecodeError:
            raise _Transient("the reply body is not JSON") from None
        if not isinstance(reply, dict):
            raise _Transient("the reply body is not a JSON object")
        return reply

    @staticmethod
    def _content(reply: JsonObject) -> str | None:
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return None
        return content if isinstance(content, str) else None

    # ------------------------------------------------------------------ requests

    def _messages(
        self,
        items: list[JsonObject],
        before: list[str],
        after: list[str],
        source: str,
        target: str,
        note: str,
    ) -> list[dict[str, str]]:
        unit = (
            "max_characters: the most characters the translation may have"
            if target in _CHAR_UNIT_LANGS
            else "max_words: the most words the translation may have"
        )
        system = SYSTEM_PROMPT.format(source=_language_name(source), target=_language_name(target), unit=unit)
        payload: JsonObject = {
            "source_language": _language_name(source),
            "target_language": _language_name(target),
            "context_before": before,
            "lines_to_translate": items,
            "context_after": after,
        }
        user = json.dumps(payload, ensure_ascii=False, indent=1)
        if note:
            user = note + "\n\n" + user
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _item(self, line: _Line, target: str, budget: int, previous: str = "") -> JsonObject:
        item: JsonObject = {"id": line.request.id, "text": " ".join(line.request.text.split())}
        if target in _CHAR_UNIT_LANGS:
            item["max_characters"] = 2 * max(1, budget)
        else:
            item["max_words"] = max(1, budget)
        terms = terms_in(line.request.text, line.request.glossary)
        if terms:
            item["required_terms"] = {t.source: t.target for t in terms}
        if previous:
            item["too_long_translation"] = previous
        return item

    def _ask(
        self,
        todo: list[_Line],
        before: list[str],
        after: list[str],
        source: str,
        target: str,
        state: _CallState,
        *,
        strict: bool = False,
        budgets: dict[str, int] | None = None,
    ) -> dict[str, str]:
        """Ask for ``todo`` until every line has a valid translation or retries run out."""
        asking = _Asking()
        for attempt in range(self.max_retries + 1):
            pending = [line for line in todo if line.request.id not in asking.got]
            if not pending:
                break
            if attempt:
                self.sleep(max(min(self.backoff * (2 ** (attempt - 1)), 30.0), asking.retry_after))
                asking.retry_after = 0.0
            # the lines already answered stay visible as context for the ones asked again
            shown = before + [line.request.text for line in todo if line.request.id in asking.got]
            body = self._body(pending, shown, after, source, target, asking.problem, strict, budgets or {})
            for line in pending:
                line.attempts += 1
            try:
                reply = self._post(body)
            except _Transient as exc:
                self._transport_failed(asking, state, f"attempt {attempt + 1} failed", str(exc))
                asking.retry_after = exc.retry_after or 0.0
                continue
            except _Rejected as exc:
                self._transport_failed(asking, state, "request rejected", str(exc))
                break
            self._take_reply(reply, pending, asking)
            if asking.problem:
                log.warning("llm %s: attempt %d: %s", self.host, attempt + 1, asking.problem)
        for line in todo:
            if line.request.id not in asking.got and line.request.id in asking.best_effort:
                asking.got[line.request.id] = asking.best_effort[line.request.id]
            elif line.request.id not in asking.got:
                line.detail = self._scrub(asking.problem or "no valid translation")
        return asking.got

    def _body(
        self,
        pending: list[_Line],
        before: list[str],
        after: list[str],
        source: str,
        target: str,
        problem: str,
        strict: bool,
        budgets: dict[str, int],
    ) -> JsonObject:
        """The chat request for ``pending``: the lines with their limits, the notes that apply."""
        limits = [budgets.get(line.request.id, line.request.budget) for line in pending]
        items = [
            self._item(line, target, budget, line.text if strict else "")
            for line, budget in zip(pending, limits, strict=True)
        ]
        notes = (
            STRICT_NOTE if strict else "",
            GLOSSARY_NOTE if any("required_terms" in item for item in items) else "",
            RETRY_NOTE.format(problem=problem[:200]) if problem else "",
        )
        ids = [line.request.id for line in pending]
        return {
            "model": self.model,
            "messages": self._messages(items, before, after, source, target, " ".join(n for n in notes if n)),
            "temperature": STRICT_TEMPERATURE if strict else TEMPERATURE,
            "seed": SEED,
            "max_tokens": _max_tokens(items),
            "response_format": response_schema(ids, max(max_text_chars(b, target) for b in limits)),
            "stream": False,
        }

    def _transport_failed(self, asking: _Asking, state: _CallState, what: str, problem: str) -> None:
        asking.problem = problem
        state.transport_errors.append(problem)
        log.warning("llm %s: %s: %s", self.host, what, problem)

    def _take_reply(self, reply: JsonObject, pending: list[_Line], asking: _Asking) -> None:
        """Keep the reply's valid translations; one that misses a required glossary term is asked
        again, and kept (then flagged) only if no later reply does better."""
        content = self._content(reply)
        if content is None:
            asking.problem = "the reply has no message content"
            return
        good, issue, said = read_reply(content, [line.request.id for line in pending])
        asking.problem = issue or ""
        for line in pending:
            if line.request.id in said:
                line.offensive.add(good[line.request.id])
            text = good.get(line.request.id)
            missing = violations(line.request.text, text, line.request.glossary) if text else []
            if text and missing:
                asking.best_effort.setdefault(line.request.id, text)
                del good[line.request.id]
                asking.problem = asking.problem or (
                    f"line {line.request.id} must contain {missing[0].target!r} (required_terms)"
                )
        asking.got.update(good)

    # ------------------------------------------------------------------ public

    def translate(self, lines: Sequence[LineRequest], source: str, target: str) -> list[LineResult]:
        """Translate in windows (see the module docstring); ids must be unique."""
        src, tgt = normalize_language(source), normalize_language(target)
        if len({line.id for line in lines}) != len(lines):
            raise ValueError("line ids must be unique within one translate() call")
        state = _CallState()
        work = [_Line(line) for line in lines]
        texts = [" ".join(line.text.split()) for line in lines]
        active = [i for i, t in enumerate(texts) if t]
        for start, stop in context_windows(len(active), self.window):
            members = active[start:stop]
            lo, hi = context_range((members[0], members[-1] + 1), len(lines), self.context)
            before = [t for t in texts[lo : members[0]] if t]
            after = [t for t in texts[members[-1] + 1 : hi] if t]
            todo = [work[i] for i in members]
            got = self._ask(todo, before, after, src, tgt, state)
            for line in todo:
                if line.request.id in got:
                    line.text = got[line.request.id]
                    line.detail = ""
            long_lines = [x for x in todo if x.text and over_budget(x.text, x.request.budget, tgt)]
            if long_lines:
                self._stricter(long_lines, before, after, src, tgt, state)

        if active and not any(work[i].text for i in active) and state.transport_errors:
            raise ProviderError(
                f"llm server {self.host} failed for every line: {self._scrub(state.transport_errors[-1])}"
            )
        return [self._result(line, tgt) for line in work]

    def _stricter(
        self,
        long_lines: list[_Line],
        before: list[str],
        after: list[str],
        source: str,
        target: str,
        state: _CallState,
        budgets: dict[str, int] | None = None,
    ) -> None:
        got = self._ask(long_lines, before, after, source, target, state, strict=True, budgets=budgets)
        for line in long_lines:
            line.stricter = True
            new = got.get(line.request.id, "")
            if new:
                line.detail = ""
                if not line.text or count_words(new, target) <= count_words(line.text, target):
                    line.text = new
            elif line.text:
                line.detail = "stricter retry failed: " + line.detail

    def _result(self, line: _Line, target: str, budget: int | None = None) -> LineResult:
        if not " ".join(line.request.text.split()):
            return LineResult(line.request.id, "", 0, False, STATUS_OK)
        if not line.text:
            detail = line.detail or "no valid translation"
            return LineResult(line.request.id, "", line.attempts, line.stricter, STATUS_FAILED, detail)
        status = status_for(line.text, line.request.budget if budget is None else budget, target)
        flags = glossary_flags(line.request, line.text) + (
            ("offensive",) if line.text in line.offensive else ()
        )
        request = line.request
        return LineResult(request.id, line.text, line.attempts, line.stricter, status, line.detail, flags)

    def shorten(
        self, line: LineRequest, budget: int, *, source: str, target: str, previous: str = ""
    ) -> LineResult:
        """One stricter request for ``line`` with ``budget`` words; ``previous`` is the long text."""
        src, tgt = normalize_language(source), normalize_language(target)
        if not " ".join(line.text.split()):
            return LineResult(line.id, "", 0, False, STATUS_OK)
        item = _Line(line, text=" ".join(previous.split()))
        self._stricter([item], [], [], src, tgt, _CallState(), budgets={line.id: budget})
        return self._result(item, tgt, budget)
