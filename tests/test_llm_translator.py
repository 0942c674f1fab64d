"""The llm translator against a real OpenAI-compatible server on 127.0.0.1 (no mocked client).

The server is llama.cpp's ``llama-server`` running SmolLM2-135M-Instruct (both from PyPI wheels,
see ``tests/servers/llm_server.py``), or any server named by ``DUBBING_TEST_LLM_URL``. A
135M-parameter model translates badly, so these tests check the protocol and the control flow
(windows, context, budgets, schema, retries, the stricter retry), not translation quality.

To make "a malformed reply is retried" and "a line over budget gets a stricter retry"
deterministic, a small proxy between client and server corrupts chosen replies and records
every exchange; the answers themselves still come from the real model.
"""

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dubbing_pipeline.errors import ConfigurationError, ProviderError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.translation import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_OVER_BUDGET,
    LineRequest,
    count_words,
    make_translator,
    over_budget,
)
from dubbing_pipeline.translation.llm import (
    RETRY_NOTE,
    LLMTranslator,
    max_text_chars,
    response_schema,
    validate_reply,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))
import llm_server
from llm_server import FaultProxy, edit_lines, free_port, http_error, truncate_reply
from testmedia import TestMedia

API_KEY = "test-secret-key-5f1c0b"
DEMO = [
    "Hello?",
    "Oh, hello.",
    "I didn't know you were there.",
    "Neither did I.",
    "This is Diane in New Jersey.",
    "And I'm Sheila in Texas, originally from Chicago.",
    "Oh, I'm originally from Chicago also.",
]


# --------------------------------------------------------------------------- pure checks


def test_validate_reply_accepts_a_complete_reply() -> None:
    content = json.dumps({"lines": [{"id": "a", "text": " Hola  amigo "}, {"id": "b", "text": "Adiós"}]})
    assert validate_reply(content, ["a", "b"]) == ({"a": "Hola amigo", "b": "Adiós"}, None)
    fenced = "```json\n" + content + "\n```"
    assert validate_reply(fenced, ["a", "b"])[1] is None


@pytest.mark.parametrize(
    ("content", "usable", "problem"),
    [
        ('{"lines": [{"id": "a", "text": "Hola"}', {}, "not JSON"),
        ("[]", {}, '"lines" array'),
        ('{"lines": [{"id": 1, "text": "x"}]}', {}, "not {"),
        ('{"lines": [{"id": "a", "text": "x"}, {"id": "zz", "text": "y"}]}', {}, "unexpected id"),
        ('{"lines": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}', {}, "twice"),
        ('{"lines": [{"id": "a", "text": "Hola"}]}', {"a": "Hola"}, "missing ids 'b'"),
        ('{"lines": [{"id": "a", "text": "Hola"}, {"id": "b", "text": "  "}]}', {"a": "Hola"}, "empty text"),
    ],
)
def test_validate_reply_rejects_what_is_wrong(content: str, usable: dict[str, str], problem: str) -> None:
    good, issue = validate_reply(content, ["a", "b"])
    assert good == usable
    assert issue is not None and problem in issue


def test_response_schema_names_the_ids_and_bounds_the_text() -> None:
    fmt = response_schema(["x1", "x2"], 80)
    assert fmt["type"] == "json_schema"
    lines = fmt["json_schema"]["schema"]["properties"]["lines"]
    assert lines["minItems"] == lines["maxItems"] == 2
    assert lines["items"]["properties"]["id"]["enum"] == ["x1", "x2"]
    assert lines["items"]["properties"]["text"] == {"type": "string", "minLength": 1, "maxLength": 80}
    # room above 1.5 × budget, so over-long lines are still seen
    assert max_text_chars(10, "es") >= 1.5 * 10 * 8
    assert max_text_chars(10, "ja") >= 1.5 * 10 * 2


def test_a_server_that_is_down_raises_a_sanitised_provider_error() -> None:
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"
    translator = LLMTranslator(url, "m", API_KEY, max_retries=2, sleep=sleeps.append, timeout=5)
    with pytest.raises(ProviderError) as info:
        translator.translate([LineRequest("a", "Hello there.", 3, 1.0)], "en", "es")
    assert sleeps == [0.5, 1.0]
    assert API_KEY not in info.value.message and "Connection" in info.value.message
    assert API_KEY not in repr(translator) and API_KEY not in json.dumps(translator.describe())
    with pytest.raises(ValueError, match="unique"):
        translator.translate([LineRequest("a", "x", 1, 1.0), LineRequest("a", "y", 1, 1.0)], "en", "es")


# --------------------------------------------------------------------------- real server


@dataclass
class Backend:
    url: str
    model: str
    api_key: str
    origin: str


def _first_model(url: str, api_key: str) -> str:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with urllib.request.urlopen(urllib.request.Request(url.rstrip("/") + "/v1/models", headers=headers)) as r:
        return str(json.load(r)["data"][0]["id"])


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Backend]:
    url = os.environ.get("DUBBING_TEST_LLM_URL")
    if url:
        key = os.environ.get("DUBBING_TEST_LLM_API_KEY", "")
        model = os.environ.get("DUBBING_TEST_LLM_MODEL") or _first_model(url, key)
        yield Backend(url.rstrip("/"), model, key, "DUBBING_TEST_LLM_URL")
        return
    test_media: TestMedia = request.getfixturevalue("test_media")
    server = llm_server.start_llama_server(
        str(test_media.llama_server), str(test_media.gguf), tmp_path_factory.mktemp("llama"), api_key=API_KEY
    )
    try:
        yield Backend(server.url, server.model, API_KEY, "llama-server")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxy(backend: Backend) -> Iterator[FaultProxy]:
    with llm_server.running_proxy(backend.url) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def translator(backend: Backend, proxy: FaultProxy, sleeps: list[float]) -> LLMTranslator:
    proxy.reset()
    return LLMTranslator(proxy.url, backend.model, backend.api_key, max_retries=3, sleep=sleeps.append)


def _lines(texts: list[str], budget: int = 6) -> list[LineRequest]:
    return [LineRequest(f"L{i}", text, budget, budget / 2.5) for i, text in enumerate(texts)]


def _ids(exchange: llm_server.Exchange) -> list[str]:
    fmt = exchange.request["response_format"]
    return list(fmt["json_schema"]["schema"]["properties"]["lines"]["items"]["properties"]["id"]["enum"])


def _payload(exchange: llm_server.Exchange) -> dict[str, Any]:
    user = exchange.request["messages"][-1]["content"]
    return json.loads(user[user.index("{") :])


def _check_attempt_counts(results: list[Any], proxy: FaultProxy) -> None:
    for result in results:
        asked = sum(result.id in _ids(e) for e in proxy.posts())
        assert result.attempts == asked, result


@pytest.mark.slow
def test_windows_context_budgets_and_schema_reach_the_server(
    translator: LLMTranslator, proxy: FaultProxy, backend: Backend
) -> None:
    lines = _lines(DEMO)
    results = translator.translate(lines, "en", "es")
    assert [r.id for r in results] == [line.id for line in lines]
    assert all(r.status in (STATUS_OK, STATUS_OVER_BUDGET) and r.text for r in results), results

    posts = proxy.posts()
    first, second = [e for e in posts if e.request["temperature"] == 0.0][:2]
    assert _ids(first) == ["L0", "L1", "L2", "L3", "L4"]
    assert _ids(second) == ["L5", "L6"]
    assert _payload(first)["context_before"] == [] and _payload(first)["context_after"] == DEMO[5:7]
    assert _payload(second)["context_before"] == DEMO[3:5] and _payload(second)["context_after"] == []
    assert [item["max_words"] for item in _payload(first)["lines_to_translate"]] == [6] * 5
    assert _payload(first)["target_language"] == "Spanish"
    for exchange in posts:
        assert exchange.request["model"] == backend.model
        assert exchange.request["seed"] == 0
        assert exchange.request["response_format"]["type"] == "json_schema"
        if backend.api_key:
            assert exchange.headers["Authorization"] == f"Bearer {backend.api_key}"
        assert exchange.status == 200
    # a stricter retry is recorded exactly for the lines that were asked again with temperature 0.2
    strict_ids = {i for e in posts if e.request["temperature"] == 0.2 for i in _ids(e)}
    assert {r.id for r in results if r.stricter_retry} == strict_ids
    for exchange in posts:
        if exchange.request["temperature"] == 0.2:
            assert all("too_long_translation" in item for item in _payload(exchange)["lines_to_translate"])
    _check_attempt_counts(results, proxy)


@pytest.mark.slow
def test_a_malformed_reply_is_retried_with_backoff(
    translator: LLMTranslator, proxy: FaultProxy, sleeps: list[float]
) -> None:
    proxy.reset([truncate_reply])
    lines = _lines(DEMO[:3], budget=8)
    results = translator.translate(lines, "en", "es")
    posts = proxy.posts()
    broken = llm_server.content_of(posts[0].reply) or ""
    assert (validate_reply(broken, ["L0", "L1", "L2"])[1] or "").startswith("not JSON")
    assert _ids(posts[1]) == ["L0", "L1", "L2"]
    note = RETRY_NOTE.split("(", 1)[0]
    assert note not in posts[0].request["messages"][-1]["content"]
    assert note in posts[1].request["messages"][-1]["content"]
    assert "not JSON" in posts[1].request["messages"][-1]["content"]
    assert sleeps[0] == 0.5
    assert all(r.status != STATUS_FAILED and r.attempts >= 2 for r in results), results
    _check_attempt_counts(results, proxy)


@pytest.mark.slow
def test_an_incomplete_reply_asks_only_for_the_missing_line(
    translator: LLMTranslator, proxy: FaultProxy, sleeps: list[float]
) -> None:
    proxy.reset([edit_lines(lambda items: [i for i in items if i.get("id") != "L1"])])
    results = translator.translate(_lines(DEMO[:3], budget=8), "en", "es")
    posts = proxy.posts()
    assert _ids(posts[0]) == ["L0", "L1", "L2"]
    assert _ids(posts[1]) == ["L1"]
    assert "missing ids 'L1'" in posts[1].request["messages"][-1]["content"]
    # the lines already answered are shown as context to the repeated request
    assert _payload(posts[1])["context_before"] == [DEMO[0], DEMO[2]]
    assert sleeps[0] == 0.5
    assert all(r.status != STATUS_FAILED for r in results)
    _check_attempt_counts(results, proxy)


@pytest.mark.slow
def test_an_extra_id_rejects_the_whole_reply(translator: LLMTranslator, proxy: FaultProxy) -> None:
    proxy.reset([edit_lines(lambda items: [*items, {"id": "intruder", "text": "hola"}])])
    results = translator.translate(_lines(DEMO[:2], budget=8), "en", "es")
    posts = proxy.posts()
    assert _ids(posts[1]) == ["L0", "L1"]
    assert "unexpected id" in posts[1].request["messages"][-1]["content"]
    assert all(r.status != STATUS_FAILED and r.attempts >= 2 for r in results)


@pytest.mark.slow
def test_a_line_over_budget_gets_one_stricter_retry(
    translator: LLMTranslator, proxy: FaultProxy, sleeps: list[float]
) -> None:
    inflated = " ".join(["muy"] * 40) + " largo"

    def inflate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**item, "text": inflated} for item in items]

    proxy.reset([edit_lines(inflate)])
    line = LineRequest("s", DEMO[5], 6, 2.5)
    (result,) = translator.translate([line], "en", "es")
    posts = proxy.posts()
    assert len(posts) == 2 and sleeps == []
    strict = posts[1]
    assert strict.request["temperature"] == 0.2 and strict.request["seed"] == 0
    assert "too long" in strict.request["messages"][-1]["content"]
    (item,) = _payload(strict)["lines_to_translate"]
    assert item == {"id": "s", "text": DEMO[5], "max_words": 6, "too_long_translation": inflated}
    assert result.stricter_retry and result.attempts == 2
    # the real model's stricter answer (shorter than 41 words) replaces the inflated one
    model_text = validate_reply(strict.upstream_content or "", ["s"])[0]["s"]
    assert result.text == model_text
    assert count_words(result.text, "es") < 41
    expected = STATUS_OVER_BUDGET if over_budget(model_text, 6, "es") else STATUS_OK
    assert result.status == expected


@pytest.mark.slow
def test_persistent_garbage_ends_as_failed_lines_not_a_crash(
    backend: Backend, proxy: FaultProxy, sleeps: list[float]
) -> None:
    proxy.reset([truncate_reply] * 3)
    translator = LLMTranslator(proxy.url, backend.model, backend.api_key, max_retries=2, sleep=sleeps.append)
    lines = [
        LineRequest("x", "Hello?", 3, 1.0),
        LineRequest("blank", "  ", 1, 0.2),
        LineRequest("y", "Bye.", 3, 1.0),
    ]
    results = translator.translate(lines, "en", "es")
    assert len(proxy.posts()) == 3 and sleeps == [0.5, 1.0]
    x, blank, y = results
    for failed in (x, y):
        assert failed.status == STATUS_FAILED and failed.text == "" and failed.attempts == 3
        assert "not JSON" in failed.detail
    assert blank.status == STATUS_OK and blank.text == "" and blank.attempts == 0


@pytest.mark.slow
def test_a_server_error_is_retried_and_a_rejected_request_is_not(
    translator: LLMTranslator, proxy: FaultProxy, sleeps: list[float]
) -> None:
    proxy.reset([http_error(503)])
    results = translator.translate(_lines(DEMO[:1], budget=8), "en", "es")
    assert results[0].status != STATUS_FAILED and sleeps[0] == 0.5
    assert [e.status for e in proxy.posts()][:2] == [503, 200]

    proxy.reset([http_error(400)])
    with pytest.raises(ProviderError, match="HTTP 400"):
        translator.translate(_lines(DEMO[:1]), "en", "es")
    assert len(proxy.posts()) == 1


@pytest.mark.slow
def test_a_wrong_api_key_is_a_configuration_error_that_hides_the_key(
    backend: Backend, proxy: FaultProxy
) -> None:
    if not backend.api_key:
        pytest.skip("the server under test does not check API keys")
    proxy.reset()
    wrong = "wrong-key-abcdef123456"
    translator = LLMTranslator(proxy.url, backend.model, wrong, sleep=lambda s: None)
    with pytest.raises(ConfigurationError, match="DUBBING_LLM_API_KEY") as info:
        translator.translate(_lines(DEMO[:1]), "en", "es")
    assert wrong not in info.value.message and backend.api_key not in info.value.message
    assert proxy.posts()[0].status == 401 and len(proxy.posts()) == 1


@pytest.mark.slow
def test_shorten_asks_once_with_the_stricter_instruction(
    translator: LLMTranslator, proxy: FaultProxy
) -> None:
    previous = "Y yo soy Sheila, que vive en Texas, aunque en realidad soy originalmente de Chicago."
    line = LineRequest("s", DEMO[5], 10, 3.3)
    result = translator.shorten(line, 4, source="en", target="es", previous=previous)
    (post,) = proxy.posts()
    assert post.request["temperature"] == 0.2
    (item,) = _payload(post)["lines_to_translate"]
    assert item["max_words"] == 4 and item["too_long_translation"] == previous
    assert result.stricter_retry and result.attempts == 1 and result.text
    assert count_words(result.text, "es") <= count_words(previous, "es")
    assert result.status == (STATUS_OVER_BUDGET if over_budget(result.text, 4, "es") else STATUS_OK)


@pytest.mark.slow
def test_translation_is_deterministic(translator: LLMTranslator) -> None:
    lines = _lines(DEMO[4:6], budget=4)
    assert translator.translate(lines, "en", "es") == translator.translate(lines, "en", "es")


@pytest.mark.slow
def test_settings_build_an_llm_translator_for_any_pair(backend: Backend, proxy: FaultProxy) -> None:
    proxy.reset()
    settings = Settings(
        translator="auto", llm_url=proxy.url + "/v1/", llm_model=backend.model, llm_api_key=backend.api_key
    )
    translator = make_translator(settings, "en", "ja")
    assert isinstance(translator, LLMTranslator)
    assert backend.api_key not in json.dumps(translator.describe()) or not backend.api_key
    (result,) = translator.translate([LineRequest("j", "Hello?", 2, 0.8)], "en", "ja")
    assert result.status != STATUS_FAILED
    (first, *_) = proxy.posts()
    assert first.path == "/v1/chat/completions"
    (item,) = _payload(first)["lines_to_translate"]
    assert item["max_characters"] == 4 and _payload(first)["target_language"] == "Japanese"


@pytest.mark.slow
def test_glossary_terms_reach_the_prompt_and_a_reply_without_them_is_asked_again(
    translator: LLMTranslator, proxy: FaultProxy, sleeps: list[float]
) -> None:
    from dubbing_pipeline.translation.glossary import make_glossary, violations
    from dubbing_pipeline.translation.llm import GLOSSARY_NOTE

    glossary = make_glossary({"pipeline": "canalización"})

    def drop_term(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**item, "text": "Dagster ejecuta la tubería."} for item in items]

    def use_term(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**item, "text": "Dagster ejecuta la canalización."} for item in items]

    line = LineRequest("g", "Dagster runs the pipeline.", 8, 3.0, glossary)
    proxy.reset([edit_lines(drop_term), edit_lines(use_term)])
    (result,) = translator.translate([line], "en", "es")
    first, second = proxy.posts()[:2]
    (item,) = _payload(first)["lines_to_translate"]
    assert item["required_terms"] == {"pipeline": "canalización"}
    assert GLOSSARY_NOTE in first.request["messages"][-1]["content"]
    assert "must contain 'canalización'" in second.request["messages"][-1]["content"]
    assert result.text == "Dagster ejecuta la canalización." and result.flags == () and result.attempts == 2

    # a reply that never uses the term is kept, flagged for the reviewer, not dropped
    proxy.reset([edit_lines(drop_term)] * 4)
    (kept,) = translator.translate([line], "en", "es")
    assert kept.text == "Dagster ejecuta la tubería." and kept.flags == ("glossary",)
    assert kept.status != STATUS_FAILED and violations(line.text, kept.text, glossary)

    # lines without a glossary send no required_terms and no note
    proxy.reset()
    translator.translate(_lines(DEMO[:1]), "en", "es")
    plain = proxy.posts()[0]
    assert "required_terms" not in _payload(plain)["lines_to_translate"][0]
    assert GLOSSARY_NOTE not in plain.request["messages"][-1]["content"]


@pytest.mark.slow
def test_the_models_own_offensive_verdict_flags_the_line(
    translator: LLMTranslator, proxy: FaultProxy
) -> None:
    """Every reply line carries ``offensive`` (the schema requires it); a line the model marks so is
    flagged ``offensive`` and then ``toxic`` by the screen, whatever the term lists find."""
    from dubbing_pipeline.provenance.toxicity import screen_lines

    schema = response_schema(["a"])["json_schema"]["schema"]["properties"]["lines"]["items"]
    assert schema["required"] == ["id", "text", "offensive"]
    assert schema["properties"]["offensive"] == {"type": "boolean"}
    assert validate_reply('{"lines": [{"id": "a", "text": "x", "offensive": "yes"}]}', ["a"])[1] == (
        '"offensive" is not true or false'
    )
    proxy.reset([edit_lines(lambda items: [{**i, "offensive": i.get("id") == "L1"} for i in items])])
    results = translator.translate(_lines(DEMO[:2], budget=8), "en", "es")
    assert [r.flags for r in results] == [(), ("offensive",)]
    lines = [
        {"id": r.id, "source_text": DEMO[i], "target_text": r.text, "flags": list(r.flags)}
        for i, r in enumerate(results)
    ]
    screened, summary = screen_lines(lines, "en", "es")
    assert summary["flagged"] == ["L1"] and screened[1]["flags"] == ["offensive", "toxic"]
