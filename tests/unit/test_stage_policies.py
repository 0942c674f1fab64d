"""The stages' policy functions, with their providers replaced by recorded doubles.

These are the decisions between the pure cores and Dagster: the fit → re-speak → re-translate →
repair loop of a dubbed line, the partition's silence gate, speaker relabelling across chunks,
the speaker-profile sample and the scorecard's quiet mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from dubbing_pipeline.dubbed_speech.speak import profile_spans, require_enough_spoken, speak_and_check
from dubbing_pipeline.errors import ProviderError
from dubbing_pipeline.quality.scorecard import background_correlation, quiet_mask
from dubbing_pipeline.speakers.asset import assign_speakers
from dubbing_pipeline.speech_segments.sentences import Word
from dubbing_pipeline.translation.base import LineResult

SR = 16000


@dataclass
class RecordedTTS:
    """Speaks ``seconds_per_word`` per word at rate 1 (faster at higher rates); records every call."""

    seconds_per_word: float = 0.4
    supports_rate: bool = True
    sample_rate: int = SR
    calls: list[tuple[str, float]] = field(default_factory=list)

    def synthesize(self, text: str, language: str, *, voice: str | None = None, rate: float = 1.0) -> Any:
        self.calls.append((text, rate))
        seconds = len(text.split()) * self.seconds_per_word / rate
        t = np.arange(int(seconds * self.sample_rate)) / self.sample_rate
        return (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


@dataclass
class RecordedJudge:
    """Hears the texts it is told to, in order (the round-trip ASR of each synthesis)."""

    heard: list[str]

    def transcribe(self, audio: Any, *, language: str, regions: Any) -> list[Word]:
        text = self.heard.pop(0)
        return [Word(0.0, 0.1, w, 1.0) for w in text.split()]


@dataclass
class RecordedTranslator:
    shorter: str
    asked: list[int] = field(default_factory=list)

    def get(self, source: str, target: str) -> RecordedTranslator:
        return self

    def shorten(
        self, request: Any, budget: int, *, source: str, target: str, previous: str = ""
    ) -> LineResult:
        self.asked.append(budget)
        return LineResult(request.id, self.shorter, 1, True, "ok")


def _line(text: str, start: float = 1.0, end: float = 3.0, next_start: float = 6.0) -> dict[str, Any]:
    return {"id": "s0001", "start": start, "end": end, "next_start": next_start, "target_text": text,
            "source_text": "the source words", "profile": {}}  # fmt: skip


def test_a_line_that_fits_is_spoken_once_and_judged_once() -> None:
    tts, judge = RecordedTTS(), RecordedJudge(["hola a todos"])
    translator = RecordedTranslator("hola")
    audio, fit = speak_and_check(_line("hola a todos"), "es", "en", tts, translator, judge, False, 0.6)
    assert fit["status"] == "fits" and fit["cer"] == 0.0 and not fit["repaired"]
    assert tts.calls == [("hola a todos", 1.0)] and translator.asked == []
    assert abs(len(audio) / SR - 1.2) < 0.01


def test_an_unintelligible_line_is_repaired_once_and_the_clearer_take_kept() -> None:
    tts = RecordedTTS()
    judge = RecordedJudge(["algo muy distinto", "hola"])  # first take misheard, the shorter one clear
    translator = RecordedTranslator("hola")
    _, fit = speak_and_check(_line("hola a todos"), "es", "en", tts, translator, judge, False, 0.6)
    assert fit["repaired"] and fit["target_text"] == "hola" and fit["cer"] == 0.0
    assert fit["cer_before_repair"] > 0.6 and len(translator.asked) == 1
    assert [text for text, _ in tts.calls] == ["hola a todos", "hola"]


def test_a_repair_that_is_no_clearer_keeps_the_first_take() -> None:
    judge = RecordedJudge(["nada", "tampoco nada"])
    _, fit = speak_and_check(
        _line("hola a todos"), "es", "en", RecordedTTS(), RecordedTranslator("hola"), judge, False, 0.6
    )
    assert not fit["repaired"] and fit["repair_tried"] and fit["target_text"] == "hola a todos"


def test_a_line_far_too_long_for_its_slot_is_retranslated_shorter_once() -> None:
    tts = RecordedTTS(seconds_per_word=0.5)
    words = "uno dos tres cuatro cinco seis siete ocho"  # 4 s at rate 1 for a 2 s slot, next line at 3.5 s
    translator = RecordedTranslator("uno dos tres")
    judge = RecordedJudge(["uno dos tres"])
    _, fit = speak_and_check(_line(words, next_start=3.5), "es", "en", tts, translator, judge, False, 0.6)
    assert fit["retranslated"] and fit["target_text"] == "uno dos tres"
    # even at 1.2x and 1.1x stretch the first take overflows: no faster take of it, a shorter line instead
    assert tts.calls[0] == (words, 1.0) and [t for t, _ in tts.calls[1:]] == ["uno dos tres"] * (
        len(tts.calls) - 1
    )
    assert fit["rate"] <= 1.2 and fit["stretch"] <= 1.1
    assert fit["dub_start"] == 1.0 and fit["dub_end"] <= 3.5


def test_the_silence_gate_counts_only_silent_lines() -> None:
    require_enough_spoken(["fits", "trimmed", "trimmed", "failed", "rate"], 0.2)  # 1 of 5 silent: passes
    with pytest.raises(ProviderError, match="2 of 5 lines could not be dubbed"):
        require_enough_spoken(["fits", "failed", "failed", "rate", "stretch"], 0.2)


def test_speakers_are_numbered_by_first_appearance_across_chunks() -> None:
    a, b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    transcript = {"segments": [
        {"id": "s1", "start": 0.0, "end": 1.0, "text": "one"},
        {"id": "s2", "start": 1.0, "end": 2.0, "text": "two"},
        {"id": "s3", "start": 9.0, "end": 10.0, "text": "three"},
    ]}  # fmt: skip
    chunks = [  # local speaker 0 of chunk 0 speaks second; chunk 1's only speaker is chunk 0's speaker 0
        {"index": 0, "segment_ids": ["s1", "s2"], "labels": [1, 0], "embeddings": [a, b]},
        {"index": 1, "segment_ids": ["s3"], "labels": [0], "embeddings": [a]},
    ]
    speakers, segments, _ = assign_speakers(transcript, chunks, 0.8)
    assert [s["speaker"] for s in segments] == ["S1", "S2", "S2"]
    assert [(s["id"], s["segments"]) for s in speakers] == [("S1", 1), ("S2", 2)]


def test_a_line_a_little_too_long_is_spoken_faster_not_retranslated() -> None:
    tts = RecordedTTS(seconds_per_word=0.5)
    words = "uno dos tres cuatro cinco"  # 2.5 s at rate 1 for a 2 s slot with the next line at 3.0 s
    translator = RecordedTranslator("uno")
    judge = RecordedJudge([words])
    _, fit = speak_and_check(_line(words, next_start=3.0), "es", "en", tts, translator, judge, False, 0.6)
    assert not fit["retranslated"] and translator.asked == []
    assert tts.calls[0] == (words, 1.0) and tts.calls[1][0] == words and 1.0 < tts.calls[1][1] <= 1.2


def test_a_speaker_profile_uses_their_longest_segments_up_to_the_limit() -> None:
    segments = [
        {"speaker": "S1", "start": 0.0, "end": 2.0}, {"speaker": "S2", "start": 2.0, "end": 9.0},
        {"speaker": "S1", "start": 9.0, "end": 15.0}, {"speaker": "S1", "start": 15.0, "end": 17.0},
    ]  # fmt: skip
    assert profile_spans(segments, "S1", 7.0) == [(9.0, 15.0), (0.0, 2.0)]
    assert profile_spans(segments, "S3", 7.0) == []


def test_the_quiet_mask_leaves_room_around_every_dubbed_line() -> None:
    segs = [{"dub_start": 1.0, "dub_end": 2.0}, {"dub_start": None, "dub_end": None}]
    quiet = quiet_mask(segs, 100, 400, pad=0.15)
    assert quiet[:85].all() and not quiet[85:215].any() and quiet[215:].all()
    rng = np.random.default_rng(0)
    bed = rng.standard_normal((400, 2)).astype(np.float32)
    assert background_correlation(bed, bed, quiet, 100) == pytest.approx(1.0)
    assert background_correlation(bed, bed, np.zeros(400, dtype=bool), 100) is None
