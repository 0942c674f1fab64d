"""Glossary terms: the pure core, and Apertium honouring them for real."""

import json
from pathlib import Path

import pytest

from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.orchestration.resources import SettingsResource, TranslatorResource
from dubbing_pipeline.speakers.records import SpeakerSegment
from dubbing_pipeline.translation import LineRequest
from dubbing_pipeline.translation.apertium import ApertiumTranslator
from dubbing_pipeline.translation.asset import line_requests, translated_lines
from dubbing_pipeline.translation.glossary import (
    GlossaryError,
    Term,
    load_glossary,
    make_glossary,
    prompt_lines,
    protect,
    restore,
    terms_in,
    violations,
)

GLOSSARY = make_glossary(
    {"pipeline": "canalización", "data pipeline": "flujo de datos", "Dagster": "Dagster"}
)
PIPELINE, DATA_PIPELINE = Term("pipeline", "canalización"), Term("data pipeline", "flujo de datos")


def test_make_glossary_normalises_orders_and_rejects_bad_entries() -> None:
    assert [t.source for t in GLOSSARY] == ["data pipeline", "pipeline", "Dagster"]  # longest first
    assert make_glossary([("  big   cat ", "gato\u0301n ")]) == (Term("big cat", "gatón"),)  # NFC, spaces
    with pytest.raises(GlossaryError, match="empty"):
        make_glossary({"cat": " "})
    with pytest.raises(GlossaryError, match="two targets"):
        make_glossary([("Cat", "gato"), ("cat", "felino")])
    with pytest.raises(GlossaryError, match="reserved"):
        make_glossary({"Zqx0qz": "x"})


def test_terms_match_whole_words_case_insensitively_longest_first() -> None:
    text = "Our DATA  pipeline feeds the pipeline; pipelines and Dagsters are not terms."
    assert terms_in(text, GLOSSARY) == [DATA_PIPELINE, PIPELINE]
    assert terms_in("nothing here", GLOSSARY) == []


def test_protect_and_restore_round_trip() -> None:
    masked, used = protect("Dagster runs the data pipeline and the pipeline.", GLOSSARY)
    assert "pipeline" not in masked and "Dagster" not in masked
    assert len(used) == 3
    # Apertium marks unknown words with '*'; the mark goes with the placeholder
    restored = restore(masked.replace("Zqx", "*Zqx"), used)
    assert restored == "Dagster runs the flujo de datos and the canalización."


def test_violations_and_prompt_lines() -> None:
    source = "Dagster runs the pipeline."
    assert violations(source, "Dagster ejecuta la canalización.", GLOSSARY) == []
    assert violations(source, "Dagster ejecuta la tubería.", GLOSSARY) == [PIPELINE]
    expected = ['"pipeline" -> "canalización"', '"Dagster" -> "Dagster"']
    assert prompt_lines([source, "no terms"], GLOSSARY) == expected


def test_apertium_honours_the_glossary() -> None:
    translator = ApertiumTranslator()
    text = "The pipeline talks to the data pipeline of Dagster."
    plain, with_terms = translator.translate(
        [LineRequest("a", text, 20, 4.0), LineRequest("b", text, 20, 4.0, GLOSSARY)], "en", "es"
    )
    assert "canalización" not in plain.text and "flujo de datos" not in plain.text
    for term in ("canalización", "flujo de datos", "Dagster"):
        assert term in with_terms.text, with_terms.text
    assert "Zqx" not in with_terms.text and "*" not in with_terms.text
    assert with_terms.flags == () and plain.flags == ()
    assert violations(text, with_terms.text, GLOSSARY) == []


def test_glossary_file_per_language_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "glossary.json"
    path.write_text(json.dumps({"es": {"pipeline": "canalización"}, "ca": {"pipeline": "canonada"}}))
    assert load_glossary(str(path), "ca") == (Term("pipeline", "canonada"),)
    assert load_glossary(str(path), "gl") == ()
    assert load_glossary("", "es") == ()
    for content, problem in (
        ("{not json", "not readable JSON"),
        ('["es"]', "expected"),
        ('{"es": {"pipeline": 3}}', "needs a text"),
        ('{"es": {"pipeline": ""}}', "empty"),
    ):
        path.write_text(content)
        with pytest.raises(GlossaryError, match=problem):
            load_glossary(str(path), "es")
    # through the translator resource a bad file is a configuration error that names the setting
    resource = TranslatorResource(config=SettingsResource(values={"glossary": str(path)}))
    with pytest.raises(ConfigurationError, match="DUBBING_GLOSSARY"):
        resource.glossary("es")


def test_line_requests_carry_the_terms_each_line_uses_and_records_keep_the_flags() -> None:
    segments = [
        SpeakerSegment(id="s0000", start=0.0, end=3.0, speaker="S1", text="The pipeline is ready."),
        SpeakerSegment(id="s0001", start=3.0, end=6.0, speaker="S2", text="Good morning."),
    ]
    requests = line_requests(segments, "en", "es", GLOSSARY)
    assert [r.glossary for r in requests] == [(PIPELINE,), ()]
    results = ApertiumTranslator().translate(requests, "en", "es")
    lines = translated_lines(segments, requests, results)
    assert "canalización" in lines[0].target_text and lines[0].flags == []
    assert lines[1].flags == []
