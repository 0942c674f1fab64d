"""Edits: the stored schema, validation that names the line and field, and applying them to lines."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.review.edits import (
    MIN_SLOT,
    NO_EDITS,
    Dub,
    Edits,
    LineEdit,
    apply_edits,
    check_edits,
    edits_version,
    load_edits,
    parse_edits,
    save_edits,
    split_pairs,
    with_change,
)
from dubbing_pipeline.storage import LocalStorage
from dubbing_pipeline.translation.asset import edited_record, video_glossary
from dubbing_pipeline.translation.glossary import make_glossary
from dubbing_pipeline.translation.records import TranslationRecord

DUB = Dub(line_ids=["s0000", "s0001", "s0002"], speakers=["S1", "S2"], voices=["male", "female"])


def lines() -> list[dict[str, Any]]:
    return [
        {"id": f"s000{i}", "start": float(i), "end": i + 0.8, "speaker": "S1" if i % 2 == 0 else "S2",
         "source_text": f"line {i}", "target_text": f"línea {i}", "status": "ok", "flags": []}
        for i in range(3)
    ]  # fmt: skip


def test_the_stored_form_round_trips_and_is_canonical() -> None:
    edits = Edits(
        lines={"s0002": LineEdit(skip=True), "s0001": LineEdit(text="Hola, Ana.", speaker="S1")},
        voices={"S2": "female"},
        glossary={"Ana": "Ana"},
    )
    stored = edits.to_json()
    assert list(stored["lines"]) == ["s0001", "s0002"]
    assert stored["lines"]["s0001"] == {"text": "Hola, Ana.", "speaker": "S1"}
    assert parse_edits(stored) == edits
    # the same edits typed differently are the same version; a different edit is another version
    again = Edits(lines={"s0001": LineEdit(text="Hola, Ana.", speaker="S1"), "s0002": LineEdit(skip=True)},
                  voices={"S2": "female"}, glossary={"Ana": "Ana"})  # fmt: skip
    assert edits_version(again) == edits_version(edits)
    assert edits_version(with_change(edits, line="s0001", text="Hola Ana.")) != edits_version(edits)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ([], "must be a JSON object"),
        ({"schema": "other/2"}, "schema"),
        ({"colour": 1}, "unknown field 'colour'"),
        ({"lines": {"s0001": {"txt": "x"}}}, "line s0001, field 'txt'"),
        ({"lines": {"s0001": {"text": 3}}}, "line s0001, field 'text': must be text"),
        ({"lines": {"s0001": {"text": "  "}}}, "line s0001, field 'text': is empty"),
        ({"lines": {"s0001": {"text": "x" * 1001}}}, "at most 1000"),
        ({"lines": {"s0001": {"skip": "yes"}}}, "field 'skip'"),
        ({"lines": {"s0001": "x"}}, "edit of line s0001"),
        ({"voices": {"S1": ""}}, "voice of speaker S1"),
        ({"glossary": {"Ana": " "}}, "glossary term 'Ana'"),
        ({"lines": []}, "'lines' must be an object"),
        ({"lines": {"s0001": {"start": "8"}}}, "line s0001, field 'start': must be a number"),
        ({"lines": {"s0001": {"end": True}}}, "line s0001, field 'end': must be a number"),
        ({"lines": {"s0001": {"start": -1}}}, "field 'start': -1 is not a time"),
        ({"lines": {"s0001": {"start": 2.0, "end": 2.1}}}, "line s0001, field 'end': 2.1 s is less than"),
    ],
)
def test_an_invalid_edit_names_its_line_and_field(raw: Any, words: str) -> None:
    with pytest.raises(BadInputError, match=words.replace("(", r"\(")):
        parse_edits(raw)


def test_edits_are_checked_against_the_dub() -> None:
    check_edits(Edits(lines={"s0001": LineEdit(speaker="S1")}, voices={"S2": "male"}), DUB)
    for edits, words in (
        (Edits(lines={"s0009": LineEdit(text="x")}), "edit of line s0009: not a line of this dub"),
        (Edits(lines={"s0001": LineEdit(speaker="S7")}), "line s0001, field 'speaker'"),
        (Edits(voices={"S7": "male"}), "voice of speaker S7: not a speaker"),
        (Edits(voices={"S1": "robot"}), "'robot' is not a voice of the engine"),
    ):
        with pytest.raises(BadInputError, match=words):
            check_edits(edits, DUB)


def test_changes_accumulate_and_undo() -> None:
    edits = with_change(NO_EDITS, line="s0001", text="  Hola,\n Ana. ")
    assert edits.lines["s0001"] == LineEdit(text="Hola, Ana.")
    edits = with_change(edits, line="s0001", skip=True, voices={"S1": "female"}, glossary={"Ana": "Ana"})
    assert edits.lines["s0001"] == LineEdit(text="Hola, Ana.", skip=True)
    assert (dict(edits.voices), dict(edits.glossary)) == ({"S1": "female"}, {"Ana": "Ana"})
    assert with_change(with_change(NO_EDITS, line="s0002", skip=True), line="s0002", skip=False).lines == {}
    with pytest.raises(BadInputError, match="need --line"):
        with_change(NO_EDITS, text="Hola")
    assert split_pairs(["S1=female", " Ana = Ana "], "--voice") == {"S1": "female", "Ana": "Ana"}
    with pytest.raises(BadInputError, match="--voice 'S1': expected NAME=VALUE"):
        split_pairs(["S1"], "--voice")


def test_apply_edits_changes_only_the_edited_lines() -> None:
    edits = Edits(lines={"s0001": LineEdit(text="Otra.", speaker="S1"), "s0002": LineEdit(skip=True)})
    out = apply_edits(lines(), edits)
    assert out[0] == lines()[0]
    assert out[1]["target_text"] == "Otra." and out[1]["machine_text"] == "línea 1"
    assert out[1]["speaker"] == "S1" and out[1]["machine_speaker"] == "S2"
    assert out[1]["status"] == "edited" and out[1]["flags"] == ["edited", "speaker"]
    assert out[2]["skip"] is True and out[2]["flags"] == ["skip"] and out[2]["target_text"] == "línea 2"
    # an "edit" that says what the machine said changes nothing
    same = apply_edits(lines(), Edits(lines={"s0000": LineEdit(text="línea 0")}))
    assert same[0]["status"] == "ok" and same[0]["flags"] == []


def test_edited_record_keeps_an_unedited_key_and_changes_an_edited_one() -> None:
    record = TranslationRecord.from_json(
        {
            "cache_key": "k" * 64, "source_language": "en", "target_language": "es", "provider": {},
            "lines": [
                {**ln, "condensed_text": None, "budget": 3, "attempts": 1, "stricter_retry": False}
                for ln in lines()
            ],
        }
    )  # fmt: skip
    assert edited_record(record, NO_EDITS) is record
    assert edited_record(record, Edits(glossary={"Ana": "Ana"})) is record  # the glossary keys the step
    one = edited_record(record, Edits(lines={"s0001": LineEdit(text="Otra.")}))
    two = edited_record(record, Edits(lines={"s0001": LineEdit(text="Otra más.")}))
    assert len({record.cache_key, one.cache_key, two.cache_key}) == 3
    voiced = edited_record(record, Edits(voices={"S2": "female"}))
    assert voiced.voices == {"S2": "female"} and voiced.lines == record.lines


def test_a_video_glossary_adds_to_and_overrides_the_catalog() -> None:
    catalog = make_glossary({"pipeline": "canalización", "Ana": "Anita"})
    merged = video_glossary(catalog, Edits(glossary={"ana": "Ana", "Dagster": "Dagster"}))
    assert {(t.source, t.target) for t in merged} == {
        ("pipeline", "canalización"), ("ana", "Ana"), ("Dagster", "Dagster"),
    }  # fmt: skip
    assert video_glossary(catalog, NO_EDITS) is catalog


def test_stored_with_the_media(tmp_path: Any) -> None:
    storage = LocalStorage(tmp_path)
    assert load_edits(storage, "demo", "es") == NO_EDITS
    edits = with_change(NO_EDITS, line="s0001", text="Otra.")
    version = save_edits(storage, "demo", "es", edits)
    assert (tmp_path / "edits" / "demo" / "es.json").is_file()
    assert load_edits(storage, "demo", "es") == edits and version == edits_version(edits)
    (tmp_path / "edits" / "demo" / "es.json").write_text('{"lines": {"s0001": {"text": ""}}}')
    with pytest.raises(BadInputError, match="line s0001, field 'text'"):
        load_edits(storage, "demo", "es")


TIMED = Dub(
    line_ids=["s0000", "s0001", "s0002"], speakers=["S1", "S2"], voices=["male"],
    slots={"s0000": (0.5, 2.0), "s0001": (2.5, 4.0), "s0002": (5.0, 6.0)}, duration=7.0,
)  # fmt: skip


def test_a_timing_edit_moves_a_slot_between_its_neighbours() -> None:
    moved = with_change(NO_EDITS, line="s0001", start=2.2, end=4.6004)
    assert moved.lines["s0001"] == LineEdit(start=2.2, end=4.6)  # to the millisecond
    assert parse_edits(moved.to_json()) == moved
    check_edits(moved, TIMED)
    check_edits(with_change(NO_EDITS, line="s0002", end=7.0), TIMED)
    for change, words in (
        ({"start": 1.9}, "line s0001, field 'start': 1.900 s is before line s0000 ends"),
        ({"end": 5.2}, "line s0001, field 'end': 5.200 s is after line s0002 starts"),
        ({"start": 3.9}, f"shorter than {MIN_SLOT} s"),
        ({"end": 2.6}, f"shorter than {MIN_SLOT} s"),
    ):
        with pytest.raises(BadInputError, match=re.escape(words)):
            check_edits(with_change(NO_EDITS, line="s0001", **change), TIMED)
    with pytest.raises(BadInputError, match=r"line s0002, field 'end': 7.500 s is after the video ends"):
        check_edits(with_change(NO_EDITS, line="s0002", end=7.5), TIMED)
    with pytest.raises(BadInputError, match="skipped line keeps the original speech"):
        check_edits(with_change(moved, line="s0001", skip=True), TIMED)
    # two moved neighbours are judged against each other's new slots
    both = with_change(with_change(NO_EDITS, line="s0000", end=2.4), line="s0001", start=2.3)
    with pytest.raises(
        BadInputError, match=r"line s0000, field .end.: 2.400 s is after line s0001 starts \(2.300 s\)"
    ):
        check_edits(both, TIMED)
    # back to the source's slot: no edit left
    assert with_change(moved, line="s0001", source_timing=True).lines == {}


def test_apply_edits_keeps_a_moved_lines_source_slot() -> None:
    timed = lines()
    out = apply_edits(timed, Edits(lines={"s0001": LineEdit(start=1.2)}))
    assert (out[1]["start"], out[1]["end"]) == (1.2, 1.8)
    assert (out[1]["source_start"], out[1]["source_end"]) == (1.0, 1.8)
    assert out[1]["flags"] == ["timing"] and out[1]["status"] == "ok" and out[0] == timed[0]
    # a "move" to where the line already is changes nothing
    assert apply_edits(timed, Edits(lines={"s0001": LineEdit(start=1.0)}))[1] == timed[1]
