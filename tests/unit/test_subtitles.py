"""SRT / WebVTT writing: timestamps, numbering, wrapping, overlap clipping, escaping, round trip."""

from __future__ import annotations

import itertools

from dubbing_pipeline.dubbed_video.subtitles import (
    Cue,
    escape_vtt,
    format_timestamp,
    parse_srt,
    to_srt,
    to_vtt,
    wrap_text,
)


def test_timestamps_carry_hours_and_the_right_separator() -> None:
    assert format_timestamp(0.0) == "00:00:00,000"
    assert format_timestamp(1.5) == "00:00:01,500"
    assert format_timestamp(61.001) == "00:01:01,001"
    assert format_timestamp(3723.456) == "01:02:03,456"
    assert format_timestamp(3723.456, sep=".") == "01:02:03.456"
    assert format_timestamp(59.9996) == "00:01:00,000"  # rounds to the millisecond, carries
    assert format_timestamp(100 * 3600 + 0.25) == "100:00:00,250"
    assert format_timestamp(-0.2) == "00:00:00,000"


def test_srt_layout_and_numbering() -> None:
    cues = [Cue(1.0, 2.5, "Hola.", None), Cue(3723.4567, 3725.0, "¿Qué tal?", "SPEAKER_01")]
    assert to_srt(cues) == (
        "1\n00:00:01,000 --> 00:00:02,500\nHola.\n\n2\n01:02:03,457 --> 01:02:05,000\n¿Qué tal?\n"
    )


def test_vtt_header_dot_timestamps_and_escaping() -> None:
    cues = [Cue(0.5, 1.0, "Tom & Jerry <3 --> forever", None)]
    out = to_vtt(cues)
    assert out.startswith("WEBVTT\n\n")
    assert out == ("WEBVTT\n\n1\n00:00:00.500 --> 00:00:01.000\nTom &amp; Jerry &lt;3 --&gt; forever\n")
    # Only the timing line contains an arrow.
    assert sum("-->" in line for line in out.splitlines()) == 1
    assert escape_vtt("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_srt_has_no_arrow_inside_text() -> None:
    out = to_srt([Cue(0.0, 1.0, "left --> right", None)])
    assert out.splitlines()[2] == "left -> right"
    assert parse_srt(out)[0].text == "left -> right"


def test_speaker_labels_are_opt_in() -> None:
    cues = [Cue(0.0, 1.0, "Hi", "Ana <1>")]
    assert "Ana" not in to_srt(cues) and "Ana" not in to_vtt(cues)
    assert to_srt(cues, speaker_labels=True).splitlines()[2] == "Ana <1>: Hi"
    assert to_vtt(cues, speaker_labels=True).splitlines()[4] == "<v Ana &lt;1&gt;>Hi"


def test_wrapping_into_two_balanced_lines() -> None:
    short = "A short line."
    assert wrap_text(short) == [short]
    text = "Esta es una frase bastante larga que no cabe en una sola línea de subtítulo."
    lines = wrap_text(text)
    assert len(lines) == 2
    assert all(len(line) <= 42 for line in lines)
    assert " ".join(lines) == text
    assert abs(len(lines[0]) - len(lines[1])) <= 10
    # Whitespace (including newlines) is normalised before wrapping.
    assert wrap_text("  two\n\nwords  ") == ["two words"]
    # Too long for two lines of 42: still two lines, never three.
    very_long = " ".join(["palabra"] * 20)
    assert len(wrap_text(very_long)) == 2
    # No spaces (CJK): broken in the middle.
    cjk = "这是一个非常长的中文句子没有任何空格所以必须在中间断开才能显示在屏幕上好的好的好的好的"
    assert len(cjk) > 42
    halves = wrap_text(cjk)
    assert len(halves) == 2 and "".join(halves) == cjk
    assert wrap_text("") == []


def test_every_written_cue_has_at_most_two_lines() -> None:
    cues = [Cue(i * 5.0, i * 5.0 + 4.0, " ".join(["word"] * (3 * i + 1)), None) for i in range(10)]
    for block in to_srt(cues).strip().split("\n\n"):
        assert 1 <= len(block.splitlines()) - 2 <= 2
    for block in to_vtt(cues).strip().split("\n\n")[1:]:
        assert 1 <= len(block.splitlines()) - 2 <= 2


def test_overlapping_cues_are_clipped_to_the_next_start() -> None:
    cues = [
        Cue(4.0, 6.0, "third", None),
        Cue(0.0, 2.5, "first", None),  # out of order on purpose
        Cue(2.0, 4.5, "second", None),
        Cue(4.0, 5.0, "same start as third: dropped", None),
        Cue(7.0, 8.0, "   ", None),  # empty text: dropped
    ]
    parsed = parse_srt(to_srt(cues))
    assert [(c.start, c.end, c.text) for c in parsed] == [
        (0.0, 2.0, "first"),
        (2.0, 4.0, "second"),
        (4.0, 6.0, "third"),
    ]
    for a, b in itertools.pairwise(parsed):
        assert a.end <= b.start
    vtt = to_vtt(cues)
    assert "00:00:00.000 --> 00:00:02.000" in vtt and "00:00:02.000 --> 00:00:04.000" in vtt


def test_srt_round_trip() -> None:
    cues = [
        Cue(0.0, 1.2, "Uno.", None),
        Cue(1.25, 3.999, "Una frase un poco más larga que cuarenta y dos caracteres, sin duda.", None),
        Cue(3723.001, 3724.5, "Ça va? «Très bien» — merci!", None),
    ]
    srt = to_srt(cues)
    parsed = parse_srt(srt)
    assert len(parsed) == 3
    for want, got in zip(cues, parsed, strict=True):
        assert got.start == want.start and got.end == want.end
        assert " ".join(got.text.split()) == want.text
    assert "\n" in parsed[1].text  # the wrapped layout survives
    assert to_srt(parsed) == srt  # writing what was read gives the same file


def test_parse_srt_tolerates_bom_crlf_and_missing_numbers() -> None:
    text = (
        "\ufeff1\r\n00:00:01,000 --> 00:00:02,000\r\nHello\r\nthere\r\n\r\n"
        "00:00:03.5 --> 00:00:04,000\r\nBye\r\n"
    )
    cues = parse_srt(text)
    assert [(c.start, c.end, c.text) for c in cues] == [(1.0, 2.0, "Hello\nthere"), (3.5, 4.0, "Bye")]
    assert parse_srt("garbage\n\nmore garbage") == []
