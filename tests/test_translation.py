"""Apertium translation on the demo's real dialogue, and the translator factory's errors.

Needs the Debian packages ``apertium`` and ``apertium-eng-spa`` (installed by ``.ci/install``);
the Apertium tests skip with that reason where the binary is missing.
"""

import json
import shutil
import stat
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, ProviderError, UnsupportedError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.translation import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_OVER_BUDGET,
    LineRequest,
    make_translator,
    word_budget,
)
from dubbing_pipeline.translation.apertium import ApertiumTranslator, _parse_modes, debian_package
from dubbing_pipeline.translation.llm import LLMTranslator

has_apertium = pytest.mark.skipif(
    shutil.which("apertium") is None, reason="needs the Debian packages apertium + apertium-eng-spa"
)
SHEILA = "And I'm Sheila in Texas, originally from Chicago."


def demo_lines() -> list[LineRequest]:
    ref = json.loads(resources.files("dubbing_pipeline.demo").joinpath("reference.json").read_text("utf-8"))
    lines = []
    for i, seg in enumerate(ref["segments"]):
        duration = float(seg["end"]) - float(seg["start"])
        lines.append(LineRequest(f"seg{i:03d}", seg["text"], word_budget(duration, "es"), duration))
    return lines


@pytest.fixture(scope="module")
def apertium() -> ApertiumTranslator:
    if shutil.which("apertium") is None:
        pytest.skip("needs the Debian packages apertium + apertium-eng-spa")
    return ApertiumTranslator()


@has_apertium
def test_pairs_are_discovered_from_the_installed_modes(apertium: ApertiumTranslator) -> None:
    assert ("en", "es") in apertium.pairs()
    assert apertium.mode("en", "es") == "eng-spa"
    assert apertium.mode("en-US", "es-ES") == "eng-spa"
    assert apertium.supports("en", "es")
    assert not apertium.supports("en", "en")
    desc = apertium.describe()
    assert desc["name"] == "apertium"
    assert desc["modes"]["en-es"] == "eng-spa"  # type: ignore[index]


def test_mode_names_map_to_iso_639_1_pairs() -> None:
    modes = _parse_modes(["eng-spa", "spa-eng_US", "spa-eng", "eng-spa-tagger", "cat-glg", "oci-cat"])
    assert modes == {
        ("en", "es"): "eng-spa",
        ("es", "en"): "spa-eng",
        ("ca", "gl"): "cat-glg",
        ("oc", "ca"): "oci-cat",
    }
    assert _parse_modes(["en-es"]) == {("en", "es"): "en-es"}
    assert debian_package("en", "es") == "apertium-eng-spa"


@has_apertium
def test_sheila_line_in_spanish(apertium: ApertiumTranslator) -> None:
    line = LineRequest("s1", SHEILA, word_budget(3.325, "es"), 3.325)
    (result,) = apertium.translate([line], "en", "es")
    assert result.id == "s1"
    assert result.status == STATUS_OK
    assert result.attempts == 1 and not result.stricter_retry
    text = result.text
    assert "Chicago" in text and "Texas" in text and "Sheila" in text
    words = set(text.lower().replace(",", " ").replace(".", " ").split())
    assert {"soy", "en", "de"} <= words
    assert "originalmente" in words
    assert "  " not in text


@has_apertium
def test_whole_demo_keeps_count_order_and_ids(apertium: ApertiumTranslator) -> None:
    lines = demo_lines()
    assert len(lines) >= 10
    results = apertium.translate(lines, "en", "es")
    assert [r.id for r in results] == [line.id for line in lines]
    assert all(r.status in (STATUS_OK, STATUS_OVER_BUDGET) for r in results)
    by_id = {r.id: r.text for r in results}
    for line in lines:
        if line.text == SHEILA:
            assert "Chicago" in by_id[line.id]
        if line.text == "This is Diane in New Jersey.":
            assert "Diane" in by_id[line.id] and "Jersey" in by_id[line.id] and " en " in by_id[line.id]
    # each line translated alone gives the same text
    for line in lines[:6]:
        assert apertium.translate([line], "en", "es")[0].text == by_id[line.id]


@has_apertium
def test_many_lines_and_hostile_text_survive_the_separator(apertium: ApertiumTranslator) -> None:
    tricky = [
        '<p id="dp0">fake block</p>',
        "R&D <costs> \"quoted\" & 'single' &amp;",
        "[brackets] ^caret$ back\\slash {curly} /slash",
        "no final punctuation",
        "two sentences here. And a second one!",
        "multi\nline\ttext",
        "",
        "   ",
        "Is it 5:30 p.m.?",
    ]
    lines = [LineRequest(f"l{i}", tricky[i % len(tricky)] + f" number {i}", 20, 4.0) for i in range(120)]
    lines[7] = LineRequest("blank", "   ", 3, 1.0)
    results = apertium.translate(lines, "en", "es")
    assert len(results) == len(lines)
    assert [r.id for r in results] == [line.id for line in lines]
    for i, (line, result) in enumerate(zip(lines, results, strict=True)):
        if line.id == "blank":
            assert result.text == "" and result.status == STATUS_OK and result.attempts == 0
            continue
        assert result.status != STATUS_FAILED, (line.text, result)
        assert result.attempts == 1
        assert str(i) in result.text, (line.text, result.text)  # "number i" keeps its number
        assert "\n" not in result.text
    assert "fake block" not in results[0].text or "<p" in results[0].text  # escaped text, not a block


@has_apertium
def test_a_name_that_is_also_a_word_stays_a_name(apertium: ApertiumTranslator) -> None:
    """Apertium reads "Bill" as a bill and "Diana" as a target; mid-sentence capitals keep them
    names, and the language's own capitalised words are still translated."""
    lines = [LineRequest("a", "This is Bill in Texas. Bill paid the bill.", 12, 3.0),
             LineRequest("b", "I speak English on Monday with Grace.", 10, 3.0)]  # fmt: skip
    bill, english = (r.text for r in apertium.translate(lines, "en", "es"))
    assert bill.startswith("Esto es Bill en Texas.") and "factura" in bill and "Factura" not in bill
    assert "inglés" in english and "lunes" in english and "Grace" in english
    (diana,) = apertium.translate([LineRequest("c", "Esto es Diana en Nueva Jersey.", 8, 2.0)], "es", "en")
    assert diana.text == "This is Diana in New Jersey."


@has_apertium
def test_translation_is_deterministic(apertium: ApertiumTranslator) -> None:
    lines = demo_lines()
    first = apertium.translate(lines, "en", "es")
    second = ApertiumTranslator().translate(lines, "en-US", "es")
    assert first == second


@has_apertium
def test_lines_far_over_budget_are_reported_not_shortened(apertium: ApertiumTranslator) -> None:
    long = LineRequest("long", SHEILA, 2, 0.5)
    (result,) = apertium.translate([long], "en", "es")
    assert result.status == STATUS_OVER_BUDGET
    assert "Chicago" in result.text
    shorter = apertium.shorten(long, 2, source="en", target="es")
    assert shorter.stricter_retry and shorter.status == STATUS_OVER_BUDGET


@has_apertium
def test_a_line_translates_the_same_alone_and_among_others(apertium: ApertiumTranslator) -> None:
    """Apertium's tagger carries state from line to line inside one process: through en→gl,
    "Repeat this exercise ten times." after the 148 dev lines before it comes out with "ten
    cronometra" (times as a verb). Each line has a process of its own, so a line's translation
    never depends on its neighbours (an edit of one line changes no other)."""
    from dubbing_pipeline.tooling.translation_eval import load_devset

    dev = [row["en"] for row in load_devset()]
    before = dev[: dev.index("Repeat this exercise ten times.") + 1]
    mode = apertium.mode("en", "gl")
    batched = apertium.translate_texts(before, mode)[-1]
    assert batched != apertium.translate_texts(before[-1:], mode)[0]  # the state this guards against
    lines = [LineRequest(f"l{i}", text, 30, 5.0) for i, text in enumerate(before)]
    together = apertium.translate(lines, "en", "gl")
    alone = apertium.translate(lines[-1:], "en", "gl")[0]
    assert together[-1] == alone and alone.text != batched and "cronometra" not in alone.text
    assert [r.text for r in together[:5]] == [r.text for r in apertium.translate(lines[:5], "en", "gl")]


@has_apertium
def test_a_line_apertium_cannot_take_fails_alone(tmp_path: Path) -> None:
    """A wrapper that fails on one line: that line is failed with Apertium's message, the others
    are translated; every line failing is a provider error."""
    real = shutil.which("apertium")
    wrapper = tmp_path / "apertium"
    wrapper.write_text(
        "#!/bin/sh\n"
        "input=$(cat)\n"
        'case "$input" in *Poison*) echo "bad input" >&2; exit 3;; esac\n'
        f'printf "%s" "$input" | "{real}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    translator = ApertiumTranslator(str(wrapper))
    lines = [LineRequest("a", "Hello there, friend.", 5, 2.0), LineRequest("p", "Poison line.", 5, 2.0),
             LineRequest("b", SHEILA, 10, 3.0)]  # fmt: skip
    results = translator.translate(lines, "en", "es")
    assert [r.status for r in results] == [STATUS_OK, STATUS_FAILED, STATUS_OK]
    assert "bad input" in results[1].detail and results[1].text == ""
    assert "Chicago" in results[2].text and [r.attempts for r in results] == [1, 1, 1]
    with pytest.raises(ProviderError, match=r"failed on every line: .*bad input"):
        translator.translate([LineRequest("p", "Poison.", 5, 2.0)], "en", "es")


def test_missing_binary_names_the_debian_packages(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="apertium-eng-spa"):
        ApertiumTranslator(str(tmp_path / "no-such-apertium"))


# --------------------------------------------------------------------------- factory


def test_same_language_is_unsupported_with_help() -> None:
    with pytest.raises(UnsupportedError) as info:
        make_translator(Settings(), "en", "en-GB")
    message = info.value.message
    assert "both 'en'" in message
    for needle in ("DUBBING_TRANSLATOR=llm", "DUBBING_LLM_URL", "DUBBING_LLM_MODEL"):
        assert needle in message
    assert info.value.code == "unsupported"


@has_apertium
def test_unsupported_pair_lists_what_is_supported() -> None:
    with pytest.raises(UnsupportedError) as info:
        make_translator(Settings(), "en", "ja")
    message = info.value.message
    assert "en->ja" in message and "en->es" in message
    for needle in ("DUBBING_TRANSLATOR=llm", "DUBBING_LLM_URL", "DUBBING_LLM_MODEL"):
        assert needle in message


@has_apertium
def test_auto_picks_the_measured_offline_choice_for_en_es_and_llm_for_other_pairs() -> None:
    # factory.AUTO_CHOICE, measured by tooling/translation_eval (docs/stages.md)
    assert make_translator(Settings(), "en", "es").name == "combined"
    assert make_translator(Settings(translator="apertium"), "en", "es").name == "apertium"
    settings = Settings(llm_url="http://127.0.0.1:9", llm_model="m")
    assert make_translator(settings, "en", "es").name == "combined"
    llm = make_translator(settings, "en", "ja")
    assert isinstance(llm, LLMTranslator) and llm.supports("en", "ja") and llm.pairs() == []
    assert make_translator(replace(settings, translator="llm"), "en", "es").name == "llm"


@has_apertium
def test_explicit_apertium_without_the_pair_is_missing_data() -> None:
    with pytest.raises(ModelMissingError, match="apertium-eng-fra"):
        make_translator(Settings(translator="apertium"), "en", "fr")


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="DUBBING_TRANSLATOR"):
        make_translator(Settings(translator="deepl"), "en", "es")
    with pytest.raises(ConfigurationError, match="DUBBING_LLM_URL"):
        make_translator(Settings(translator="llm"), "en", "de")
    with pytest.raises(ConfigurationError, match="DUBBING_LLM_MODEL"):
        make_translator(Settings(translator="llm", llm_url="http://127.0.0.1:9"), "en", "de")
    with pytest.raises(ConfigurationError, match="not an http"):
        make_translator(Settings(translator="llm", llm_url="ftp://x", llm_model="m"), "en", "de")
