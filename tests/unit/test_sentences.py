"""Unit tests for dubbing_pipeline.speech_segments.sentences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dubbing_pipeline.speech_segments.chunks import Chunk
from dubbing_pipeline.speech_segments.sentences import (
    Segment,
    Word,
    ends_sentence,
    join_words,
    merge_chunk_words,
    split_sentences,
)


def words_from(text: str, start: float = 0.0, length: float = 0.3, gap: float = 0.1) -> list[Word]:
    """Whisper-style words (leading space) laid out evenly in time."""
    out = []
    t = start
    for token in text.split():
        out.append(Word(t, t + length, " " + token))
        t += length + gap
    return out


def texts(segments: list[Segment]) -> list[str]:
    return [s.text for s in segments]


def test_word_and_segment_dict_round_trip() -> None:
    word = Word(1.0, 1.5, " Hello", 0.9)
    assert word.to_json() == {"start": 1.0, "end": 1.5, "text": " Hello", "probability": 0.9}
    assert Word.from_dict(word.to_json()) == word
    assert Word.from_dict({"start": 1, "end": 2, "word": " hi"}) == Word(1.0, 2.0, " hi", 1.0)
    seg = Segment("s0001", 1.0, 2.0, "Hello there", (word, Word(1.6, 2.0, " there")))
    data = seg.to_json()
    assert isinstance(data["words"], list) and data["words"][1]["text"] == " there"
    assert Segment.from_json(data) == seg
    assert Segment.from_json({"id": "s0002", "start": 0, "end": 1, "text": "x"}).words == ()


def test_empty_input() -> None:
    assert split_sentences([]) == []
    assert split_sentences([Word(0.0, 0.5, " "), Word(0.5, 1.0, "")]) == []


def test_split_after_question_mark_not_after_mr() -> None:
    segs = split_sentences(words_from("Is Mr. Smith here? Yes, Dr. Jones said so."))
    assert texts(segs) == ["Is Mr. Smith here?", "Yes, Dr. Jones said so."]
    assert [s.id for s in segs] == ["s0001", "s0002"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Stop! Now.", ["Stop!", "Now."]),
        ("Wait… What", ["Wait…", "What"]),
        ("Well... fine", ["Well...", "fine"]),
        ('He said "go." Then left', ['He said "go."', "Then left"]),
        ("Use e.g. this one", ["Use e.g. this one"]),
        ("The U.S. team won", ["The U.S. team won"]),
        ("By J. R. R. Tolkien.", ["By J. R. R. Tolkien."]),
        ("It costs 3.5 euros. Cheap", ["It costs 3.5 euros.", "Cheap"]),
        ("¿Qué tal? Bien.", ["¿Qué tal?", "Bien."]),
    ],
)
def test_sentence_punctuation(text: str, expected: list[str]) -> None:
    assert texts(split_sentences(words_from(text))) == expected


def test_decimal_split_across_words_is_not_a_sentence_end() -> None:
    ws = [Word(0.0, 0.3, " It"), Word(0.4, 0.6, " 3."), Word(0.6, 0.8, "5"), Word(0.9, 1.2, " percent.")]
    assert texts(split_sentences(ws)) == ["It 3.5 percent."]
    assert ends_sentence(Word(0.4, 0.6, " 3."), Word(0.9, 1.0, " Then"))


def test_cjk_words_join_without_spaces() -> None:
    ws = [Word(0.0, 0.3, "你好"), Word(0.3, 0.6, "。"), Word(0.7, 1.0, "谢谢"), Word(1.0, 1.3, "！")]
    assert texts(split_sentences(ws)) == ["你好。", "谢谢！"]


def test_split_at_pause() -> None:
    ws = words_from("one two three", gap=0.1) + words_from("four five", start=2.0)
    segs = split_sentences(ws, pause=0.8)
    assert texts(segs) == ["one two three", "four five"]
    assert segs[0].start == 0.0
    assert segs[0].end == pytest.approx(1.1)
    assert segs[1].start == 2.0
    # A gap equal to the pause splits too; a shorter one does not.
    exact = [Word(0.0, 0.5, " a"), Word(1.3, 1.5, " b")]
    assert len(split_sentences(exact, pause=0.8)) == 2
    assert len(split_sentences(exact, pause=0.81)) == 1


def test_max_seconds_splits_at_largest_inner_pause() -> None:
    ws = words_from("a b c d e f g h i j", length=0.5, gap=0.1)  # 5.9 s
    ws[6] = Word(ws[6].start + 0.4, ws[6].end + 0.4, ws[6].text)  # 0.5 s pause before "g"
    segs = split_sentences(ws, max_seconds=5.0)
    assert texts(segs) == ["a b c d e f", "g h i j"]


def test_max_seconds_prefers_comma_over_slightly_longer_pause() -> None:
    ws = words_from("one two three, four five six", length=0.5, gap=0.1)
    ws[5] = Word(ws[5].start + 0.1, ws[5].end + 0.1, ws[5].text)  # 0.2 s before "six"
    assert texts(split_sentences(ws, max_seconds=3.0)) == ["one two three,", "four five six"]


def test_max_seconds_even_spacing_splits_near_middle_and_recurses() -> None:
    ws = words_from(" ".join(f"w{i}" for i in range(40)), length=0.4, gap=0.1)  # 19.9 s
    segs = split_sentences(ws, max_seconds=5.0)
    assert all(s.end - s.start <= 5.0 for s in segs)
    assert len(segs) == 4  # halves of ~10 s, then quarters of ~5 s
    assert [w for s in segs for w in s.words] == ws


def test_single_long_word_is_not_split() -> None:
    long_word = [Word(0.0, 20.0, " Ooooh")]
    segs = split_sentences(long_word, max_seconds=5.0)
    assert texts(segs) == ["Ooooh"] and segs[0].end == 20.0


def test_min_seconds_glues_short_sentence_to_closer_neighbour() -> None:
    ws = words_from("I see. Yes. Then we go.", gap=0.1)
    assert texts(split_sentences(ws)) == ["I see.", "Yes.", "Then we go."]
    shifted = ws[:3] + [Word(w.start + 0.3, w.end + 0.3, w.text) for w in ws[3:]]  # "Yes." leans left
    assert texts(split_sentences(shifted, min_seconds=1.0)) == ["I see. Yes.", "Then we go."]


def test_min_seconds_never_glues_across_a_pause_or_past_max() -> None:
    ws = words_from("Hello.") + words_from("Yes.", start=2.0) + words_from("Right.", start=4.0)
    assert texts(split_sentences(ws, min_seconds=1.0)) == ["Hello.", "Yes.", "Right."]
    close = words_from("Hello. Yes.")
    assert texts(split_sentences(close, min_seconds=1.0, max_seconds=0.6)) == ["Hello.", "Yes."]


def test_text_whitespace_is_normalised() -> None:
    ws = [Word(0.0, 0.2, "  Hello"), Word(0.3, 0.5, "\tbig "), Word(0.6, 0.8, " world")]
    assert join_words(ws) == "Hello big world"
    assert split_sentences(ws)[0].text == "Hello big world"


def test_unsorted_input_is_sorted() -> None:
    ws = words_from("Hello there. General Kenobi.")
    segs = split_sentences(list(reversed(ws)))
    assert texts(segs) == ["Hello there.", "General Kenobi."]


@pytest.mark.parametrize("kwargs", [{"pause": 0.0}, {"max_seconds": -1.0}, {"min_seconds": -0.5}])
def test_invalid_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        split_sentences(words_from("a b"), **kwargs)


def test_random_words_are_partitioned_in_order() -> None:
    rng = np.random.default_rng(11)
    vocab = ["hello", "world,", "fine.", "Mr.", "why?", "yes!", "3.5", "ok", "e.g.", "no."]
    for _ in range(200):
        ws = []
        t = 0.0
        for _ in range(int(rng.integers(1, 80))):
            t += float(rng.choice([0.0, rng.exponential(0.2), rng.exponential(1.0)]))
            length = float(rng.uniform(0.05, 0.8))
            ws.append(Word(t, t + length, " " + str(rng.choice(vocab))))
            t += length
        max_seconds = float(rng.uniform(2.0, 15.0))
        pause = float(rng.uniform(0.3, 1.5))
        segs = split_sentences(ws, pause=pause, max_seconds=max_seconds, min_seconds=float(rng.uniform(0, 2)))
        assert [w for s in segs for w in s.words] == ws
        assert [s.id for s in segs] == [f"s{i:04d}" for i in range(1, len(segs) + 1)]
        for seg in segs:
            assert seg.start == seg.words[0].start and seg.end == seg.words[-1].end
            assert seg.text == join_words(seg.words)
            assert seg.end - seg.start <= max_seconds or len(seg.words) == 1
            inner_gaps = [b.start - a.end for a, b in itertools.pairwise(seg.words)]
            assert all(g < pause for g in inner_gaps)
        for a, b in itertools.pairwise(segs):
            assert a.end <= b.start


def test_merge_chunk_words_keeps_each_word_once() -> None:
    chunks = [
        Chunk(0, 0.0, 12.0, 0.0, 10.0),
        Chunk(1, 8.0, 22.0, 10.0, 20.0),
        Chunk(2, 18.0, 25.0, 20.0, 25.0),
    ]
    first = [Word(-0.2, 0.1, " early"), Word(5.0, 5.5, " a"), Word(9.6, 10.2, " b"), Word(10.5, 11.0, " dup")]
    second = [Word(8.5, 9.0, " dup0"), Word(9.4, 10.4, " b2"), Word(10.5, 11.0, " c"), Word(19.9, 20.1, " d")]
    third = [Word(19.0, 19.9, " dup1"), Word(19.9, 20.1, " d2"), Word(24.8, 25.4, " late")]
    merged = merge_chunk_words(chunks, [first, second, third])
    assert [w.text for w in merged] == [" early", " a", " b", " c", " d2", " late"]


def test_merge_chunk_words_is_sorted_and_order_independent() -> None:
    chunks = [Chunk(0, 0.0, 12.0, 0.0, 10.0), Chunk(1, 8.0, 20.0, 10.0, 20.0)]
    first = [Word(3.0, 3.5, " y"), Word(1.0, 1.5, " x")]
    second = [Word(15.0, 15.5, " z"), Word(12.0, 12.5, " w")]
    merged = merge_chunk_words(chunks, [first, second])
    assert [w.text for w in merged] == [" x", " y", " w", " z"]
    assert merge_chunk_words(chunks[::-1], [second, first]) == merged


def test_merge_chunk_words_edge_cases() -> None:
    assert merge_chunk_words([], []) == []
    only = Chunk(0, 0.0, 5.0, 0.0, 5.0)
    assert merge_chunk_words([only], [[Word(4.8, 5.6, " tail")]]) == [Word(4.8, 5.6, " tail")]
    with pytest.raises(ValueError):
        merge_chunk_words([only], [])


def test_pronoun_i_ends_a_sentence() -> None:
    from dubbing_pipeline.speech_segments.sentences import Word, split_sentences

    words = [Word(0.0, 0.3, " Neither"), Word(0.3, 0.5, " did"), Word(0.5, 0.6, " I."),
             Word(0.7, 1.0, " Okay."), Word(1.0, 1.2, " J."), Word(1.2, 1.5, " Smith")]  # fmt: skip
    texts = [s.text for s in split_sentences(words)]
    assert texts == ["Neither did I.", "Okay.", "J. Smith"]
