"""The llm translator's real request bodies against vLLM's own OpenAI-server request model.

``LLMTranslator`` builds each body in ``_ask`` and hands it to ``_post`` (the HTTP transport). Here
``_post`` is replaced by a recorder that answers like a server, so every body the real code builds
(first windows, a retry after a bad reply, the stricter re-ask for an over-long line, ``shorten``)
is captured as vLLM would receive it (a JSON round trip) and then:

* validated by ``vllm.entrypoints.openai.chat_completion.protocol.ChatCompletionRequest`` (vLLM
  0.33.0, the newest release, allowed by the ``gpu`` extra's ``vllm>=0.6``; its request model
  imports without a GPU);
* converted by vLLM into ``SamplingParams`` (``to_sampling_params``), checking that
  ``response_format`` becomes the structured-output JSON schema and ``max_tokens``, the seed and
  temperature arrive as sent;
* compiled by the structured-output backend vLLM picks for it (``auto`` = xgrammar unless the
  schema has features it cannot do): ``validate_xgrammar_grammar`` turns the schema into an
  xgrammar grammar, as the server does before it accepts the request.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from dubbing_pipeline.translation.base import LineRequest
from dubbing_pipeline.translation.llm import LLMTranslator

pytestmark = pytest.mark.production_provider

# vLLM imports torchvision: these tests run in .venv-torchvision (tests/providers/conftest.py).


class _Recording(LLMTranslator):
    """The real translator with the transport replaced: records bodies, answers from a script."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        super().__init__("http://127.0.0.1:9/v1", "served-model", window=3, context=1, sleep=lambda _s: None)
        self.bodies: list[dict[str, Any]] = []
        self.answers = answers  # id -> texts, one per time it is asked; the last repeats

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        sent = json.loads(json.dumps(body, ensure_ascii=False))
        self.bodies.append(sent)
        ids = sent["response_format"]["json_schema"]["schema"]["properties"]["lines"]["items"]["properties"][
            "id"
        ]
        lines = []
        for line_id in ids["enum"]:
            texts = self.answers[line_id]
            lines.append({"id": line_id, "text": texts.pop(0) if len(texts) > 1 else texts[0]})
        if len(self.bodies) == 1:  # the first reply is not JSON: the retry path builds a body too
            return {"choices": [{"message": {"role": "assistant", "content": "not json"}}]}
        content = json.dumps({"lines": lines}, ensure_ascii=False)
        return {"choices": [{"message": {"role": "assistant", "content": content}}]}


@pytest.fixture(scope="module")
def bodies() -> list[dict[str, Any]]:
    lines = [LineRequest(f"seg-{i:03d}", f"This is line number {i}, spoken.", 6, 2.0) for i in range(5)]
    answers = {line.id: [f"Das ist Zeile {n}."] for n, line in enumerate(lines)}
    # an over-long translation first: the stricter re-ask (temperature, budgets, previous text)
    answers["seg-001"] = [
        "Das ist eine viel zu lange Zeile mit sehr vielen Wörtern darin, viel zu lang.",
        "Zeile eins.",
    ]
    translator = _Recording(answers)
    results = translator.translate(lines, "en", "de")
    assert [r.text for r in results][1] == "Zeile eins."
    translator.answers["seg-004"] = ["Kurz."]
    translator.shorten(lines[4], 2, source="en", target="de", previous="Das ist Zeile vier, zu lang.")
    return translator.bodies


def _request_model() -> Any:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    return ChatCompletionRequest


def test_bodies_cover_every_kind_of_request(bodies: list[dict[str, Any]]) -> None:
    assert len(bodies) >= 4  # two windows, a retry after the non-JSON reply, the stricter asks
    temperatures = {b["temperature"] for b in bodies}
    assert len(temperatures) == 2  # normal and stricter
    assert any("too_long_translation" in b["messages"][-1]["content"] for b in bodies)


def test_vllm_accepts_every_body(bodies: list[dict[str, Any]]) -> None:
    request_model = _request_model()
    for body in bodies:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # max_tokens: see below
            request = request_model.model_validate(body)
        assert request.model == "served-model"
        assert request.response_format.type == "json_schema"
        assert request.response_format.json_schema.name == "dubbing_translations"
        assert request.response_format.json_schema.strict is True
        assert request.max_tokens == body["max_tokens"]
        assert request.seed == body["seed"]
        assert request.stream is False
        assert [m["role"] for m in body["messages"]] == [m["role"] for m in request.messages]


def test_vllm_turns_response_format_into_the_json_schema_it_enforces(bodies: list[dict[str, Any]]) -> None:
    request_model = _request_model()
    for body in bodies:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            request = request_model.model_validate(body)
            params = request.to_sampling_params(body["max_tokens"], default_sampling_params={})
        schema = body["response_format"]["json_schema"]["schema"]
        assert params.structured_outputs is not None
        assert params.structured_outputs.json == schema
        assert params.max_tokens == body["max_tokens"]
        assert params.temperature == body["temperature"]
        assert params.seed == body["seed"]
        texts = schema["properties"]["lines"]["items"]["properties"]["text"]
        assert texts["maxLength"] >= 40 and texts["minLength"] == 1


def test_xgrammar_compiles_every_schema(bodies: list[dict[str, Any]]) -> None:
    """vLLM's ``auto`` backend is xgrammar for a schema without its unsupported features; the
    server compiles the schema to a grammar before accepting the request."""
    from vllm.v1.structured_output.backend_xgrammar import (
        has_xgrammar_unsupported_json_features,
        validate_xgrammar_grammar,
    )

    request_model = _request_model()
    for body in bodies:
        schema = body["response_format"]["json_schema"]["schema"]
        assert not has_xgrammar_unsupported_json_features(schema)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            params = request_model.model_validate(body).to_sampling_params(body["max_tokens"], {})
        validate_xgrammar_grammar(params)  # raises VLLMValidationError when it cannot


def test_xgrammar_enforces_the_length_and_id_constraints(bodies: list[dict[str, Any]]) -> None:
    """The compiled grammar accepts a reply within the schema and rejects one past ``maxLength``,
    with a foreign id or without the ``offensive`` verdict: the limits reach the decoder, not only
    the request."""
    import xgrammar as xgr

    schema = bodies[-1]["response_format"]["json_schema"]["schema"]
    line_id = schema["properties"]["lines"]["items"]["properties"]["id"]["enum"][0]
    limit = schema["properties"]["lines"]["items"]["properties"]["text"]["maxLength"]
    grammar = xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False)

    def reply(line: str, text: str, **more: Any) -> str:
        return json.dumps({"lines": [{"id": line, "text": text, **more}]})

    assert xgr.testing._is_grammar_accept_string(grammar, reply(line_id, "Kurz.", offensive=False))
    too_long = reply(line_id, "x" * (limit + 1), offensive=False)
    assert not xgr.testing._is_grammar_accept_string(grammar, too_long)
    foreign = reply("seg-999", "Kurz.", offensive=False)
    assert not xgr.testing._is_grammar_accept_string(grammar, foreign)
    # the model's own toxicity verdict is required, and a boolean
    assert not xgr.testing._is_grammar_accept_string(grammar, reply(line_id, "Kurz."))
    assert not xgr.testing._is_grammar_accept_string(grammar, reply(line_id, "Kurz.", offensive="no"))
