"""Names Apertium would read as words: which words are kept as written (on recorded analyser output)."""

from __future__ import annotations

from pathlib import Path

from dubbing_pipeline.translation.glossary import Term, protect, restore
from dubbing_pipeline.translation.names import analyser_of, keep_as_written, names_to_keep

# `lt-proc -w eng-spa.automorf.bin` (apertium-eng-spa 0.8.1) on two lines, after apertium-destxt
ANALYSED = (
    "^This/this<det><dem><sg>/this<prn><tn><mf><sg>$ ^is/be<vbser><pri><p3><sg>$ "
    "^Bill/bill<n><sg>/bill<vblex><inf>/bill<vblex><pres>/Bill<np><ant><m><sg>$ ^in/in<pr>$ "
    "^Texas/Texas<np><loc><sg>$^./.<sent>$ ^Mark/mark<n><sg>/Mark<np><ant><m><sg>$ "
    "^came/come<vblex><past>$^./.<sent>$[\n]"
    "^I/I<num><mf><sg>/prpers<prn><subj><p1><mf><sg>$ ^speak/speak<vblex><inf>$ "
    "^English/english<adj>/English<n><sg>$ ^on/on<pr>$ ^Monday/Monday<n><sg>$ ^with/with<pr>$ "
    '^"/"<lquot>$^Hope/hope<n><sg>/Hope<np><ant><f><sg>$^"/"<rquot>$ ^in/in<pr>$ '
    "^Nice/nice<adj>/Nice<np><loc><sg>$^,/,<cm>$ ^Zqx0qz/*Zqx0qz$ ^and/and<cnjcoo>$ "
    "^Bill/bill<n><sg>/Bill<np><ant><m><sg>$^./.<sent>$[][\n]"
)  # fmt: skip


def test_a_name_read_as_a_common_word_is_kept_mid_sentence_only() -> None:
    assert names_to_keep(ANALYSED, 2) == [
        ["Bill"],  # "Mark" starts a sentence: a capital says nothing there
        ["Hope", "Bill"],  # "I", "English", "Monday" are the language's own capitals; "Nice" is a place
    ]


def test_lines_that_do_not_come_back_one_for_one_keep_nothing() -> None:
    assert names_to_keep(ANALYSED, 3) == [[], [], []]


def test_kept_names_travel_as_placeholders_and_come_back() -> None:
    names, glossary = [Term("Bill", "Bill")], [Term("ACME", "ACME SA")]
    text, used = protect("Zqx0qz met Bill and paid the bill.", names, glossary, ignore_case=False)
    assert text == "Zqx0qz met Zqx1qz and paid the bill." and used[1] == Term("Bill", "Bill")
    assert (
        restore("Zqx0qz conoció a *Zqx1qz y pagó la factura.", used)
        == "ACME SA conoció a Bill y pagó la factura."
    )


def test_the_analyser_is_read_from_the_mode_file(tmp_path: Path) -> None:
    mode = tmp_path / "eng-spa.mode"
    mode.write_text("lt-proc -w '/x/eng-spa.automorf.bin' | apertium-tagger -g $2 '/x/eng-spa.prob'\n")
    assert analyser_of(str(mode)) == "/x/eng-spa.automorf.bin"
    assert analyser_of(str(tmp_path / "missing.mode")) is None


def test_an_analyser_that_cannot_run_protects_nothing(tmp_path: Path) -> None:
    assert keep_as_written(["This is Bill."], str(tmp_path / "no.automorf.bin")) == [[]]
    assert keep_as_written(["This is Bill."], None) == [[]]
