"""Reviewing a dub: the lines table and viewers' feedback, stored with the media."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dubbing_pipeline.dubbed_video.report import lines_table, review_lines
from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.review.feedback import add_feedback, feedback_key, load_feedback
from dubbing_pipeline.storage.local import LocalStorage

REPORT = {
    "segments": [
        {"id": "s0000", "start": 0.5, "end": 2.0, "speaker": "S1", "source_text": "The pipeline.",
         "target_text": "La tubería.", "status": "fits", "flags": ["glossary"]},
        {"id": "s0001", "start": 62.0, "end": 63.5, "speaker": "S2", "source_text": "Hi.",
         "target_text": "", "status": "failed", "flags": []},
    ],
    "quality": {"segments": [
        {"id": "s0000", "cer": 0.5, "problems": []},
        {"id": "s0001", "problems": ["silent"]},
    ]},
}  # fmt: skip


def test_review_lines_join_the_report_its_scorecard_and_feedback() -> None:
    rows = review_lines(REPORT, [{"line": "s0001", "note": "no voice here"}])
    assert [(r["cer"], r["flags"], r["feedback"]) for r in rows] == [
        (0.5, ["glossary"], []),
        (None, ["silent"], ["no voice here"]),
    ]
    table = lines_table(rows).splitlines()
    assert len(table) == 3
    assert "00:00.50-00:02.00" in table[1] and "0.50" in table[1] and "glossary" in table[1]
    assert "01:02.00-01:03.50" in table[2] and "silent" in table[2]
    assert "[feedback: no voice here]" in table[2]


def test_feedback_is_appended_with_the_media_and_checked(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    ids = ["s0000", "s0001"]
    assert load_feedback(storage, "demo", "es") == []
    when = datetime(2026, 11, 30, tzinfo=UTC)
    first = add_feedback(storage, "demo", "es", "s0001", "  no voice\nhere ", ids, when)
    assert first == {"line": "s0001", "note": "no voice here", "at": "2026-11-30T00:00:00Z"}
    add_feedback(storage, "demo", "es", "s0000", "say 'canalización'", ids)
    assert [i["line"] for i in load_feedback(storage, "demo", "es")] == ["s0001", "s0000"]
    assert load_feedback(storage, "demo", "ca") == []  # per language
    assert (tmp_path / feedback_key("demo", "es")).is_file()
    before = (tmp_path / feedback_key("demo", "es")).read_bytes()
    for line, note, problem in (("s9999", "x", "not a line of this dub"), ("s0000", "  ", "empty")):
        with pytest.raises(BadInputError, match=problem):
            add_feedback(storage, "demo", "es", line, note, ids)
    assert (tmp_path / feedback_key("demo", "es")).read_bytes() == before  # a refused note changes nothing


def test_the_page_says_how_the_dub_is_marked_and_keeps_check_chips_short() -> None:
    from dubbing_pipeline.review.page import review_html

    checks = {
        "watermark": {"passed": True, "enabled": True, "dub_confidence": 0.89, "source_confidence": 0.17,
                      "lines": 14, "threshold": 0.5},
        "toxicity": {"passed": True, "flagged_lines": [], "screened": False, "list": None},
        "timing": {"passed": False, "lines_out_of_bounds": ["s0001"]},
    }  # fmt: skip
    provenance = {
        "watermark": {"name": "perth-implicit", "seconds": 0.3},
        "c2pa": {"name": "ACME signer", "local": False},
        "label": {"text": "AI-translated", "seconds": 4.0},
    }
    report = {**REPORT, "video_id": "v", "source_language": "en", "target_language": "es",
              "quality": {**REPORT["quality"], "checks": checks}, "provenance": provenance}  # fmt: skip
    page = review_html(report, video_name="v.es.mp4")
    assert (
        '<p class="provenance">AI dub · audio watermark perth-implicit · C2PA manifest signed by ACME signer '
        "· label “AI-translated”</p>"
    ) in page
    assert "<small>dub_confidence 0.89, source_confidence 0.17</small>" in page  # no flags, no counts
    assert "<small>not screened (no term list)</small>" in page
    assert 'class="check fail" data-check="timing"' in page
    bare = review_html({**report, "provenance": {}}, video_name="v.es.mp4")
    assert "AI dub · no audio watermark · no C2PA manifest · no visible label" in bare


def test_a_moved_line_shows_where_the_source_speaks_it() -> None:
    from dubbing_pipeline.review.page import review_html

    moved = {**REPORT["segments"][0], "start": 0.8, "end": 2.1, "source_start": 0.5, "source_end": 2.0,
             "flags": ["timing"]}  # fmt: skip
    report = {**REPORT, "segments": [moved, REPORT["segments"][1]], "video_id": "v", "source_language": "en",
              "target_language": "es"}  # fmt: skip
    rows = review_lines(report, [])
    assert (rows[0]["source_start"], rows[0]["source_end"]) == (0.5, 2.0) and "source_start" not in rows[1]
    page = review_html(report, video_name="v.es.mp4")
    assert '00:00.80–00:02.10<small class="moved"' in page and ">from 00:00.50–00:02.00</small>" in page
    assert page.count('class="moved"') == 1
