"""Condensing a source line before translation: fillers out, content kept, only when over budget."""

from __future__ import annotations

import pytest

from dubbing_pipeline.translation.condense import condense, condense_over_budget


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Okay, I thought, you know, I heard a beep.", "I thought, I heard a beep."),
        ("Oh, I'm originally from Chicago also.", "I'm originally from Chicago also."),
        (
            "At least, you know, they all call me a Yankee down here.",
            "At least, they all call me a Yankee down here.",
        ),
        ("Oh, hello.", "Hello."),
        ("Um, uh, so what?", "So what?"),
        ("I mean, it's, um, fine. Well, ok.", "It's fine. Ok."),
        ("Hello. Oh, you are there.", "Hello. You are there."),
        ("I'm in New Jersey now though.", "I'm in New Jersey now."),
        ("It was fun, though. Then we left.", "It was fun. Then we left."),
        ("Nice though", "Nice"),
    ],
)
def test_fillers_and_openers_are_dropped(text: str, want: str) -> None:
    assert condense(text, "en") == want


@pytest.mark.parametrize(
    "text",
    [
        "I mean it.",  # "I mean" with content after it, not a filler
        "The umbrella is over there.",  # "um" inside a word
        "You know what I said?",
        "Oh.",  # nothing would be left
        "So it goes.",  # "so" opening a sentence without a comma is content
        "Though it rained, we went.",  # "though" opening a clause is content
        "We went, even though it rained.",
        "It looks as though it will rain.",
        "Though.",  # nothing would be left
    ],
)
def test_content_is_kept(text: str) -> None:
    assert condense(text, "en") == text


def test_only_english_sources_are_condensed() -> None:
    assert condense("Bueno, um, ya sabes.", "es") == "Bueno, um, ya sabes."


def test_a_line_within_its_budget_is_left_as_spoken() -> None:
    text = "Oh, you know, hello there."
    assert condense_over_budget(text, "en", budget=5) == text
    assert condense_over_budget(text, "en", budget=4) == "Hello there."
