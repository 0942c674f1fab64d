"""The review page's check badges: what each shows beside its verdict."""

from dubbing_pipeline.review.page import _check


def test_the_watermark_badge_shows_its_confidences_and_a_marked_source() -> None:
    check = {"passed": True, "enabled": True, "dub_confidence": 0.83, "source_confidence": 0.16, "lines": 2}
    plain = _check("watermark", {**check, "source_marked": False})
    assert "dub_confidence 0.83, source_confidence 0.16</small>" in plain and "lines" not in plain
    marked = _check("watermark", {**check, "source_confidence": 0.86, "source_marked": True})
    assert "the source carries the mark too (AI speech)" in marked and 'class="check pass"' in marked


def test_a_watermark_that_is_off_says_so() -> None:
    assert "<small>off</small>" in _check("watermark", {"passed": True, "enabled": False})
