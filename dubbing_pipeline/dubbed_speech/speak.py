"""Speaking one dubbed line: the policy between the TTS engine, the isochrony core and the judge.

``synthesize_line`` speaks a line and fits it to its slot (borrow silence, speak faster, stretch,
re-translate shorter once, then a faded cut), speaking it once at the rate the engine's duration
model predicts and again only when the prediction missed; ``judge_together`` hears several
lines in one Whisper window; ``check_line`` turns that into a verdict and repairs an
unintelligible line once, keeping the clearer take (``speak_and_check``: all three for one line);
``require_enough_spoken`` is the partition's silence gate; ``profile_spans`` picks the speech a
speaker's voice profile is measured on. Plain functions of an engine, a translator and a judge:
tested with recorded doubles (``tests/unit/test_stage_policies.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import soxr

from dubbing_pipeline.dubbed_speech.isochrony import (
    SILENT,
    FitPlan,
    capacity,
    failure_gate,
    plan_fit,
    render_fit,
    replan_after_synthesis,
    room_before,
    tighten_pauses,
)
from dubbing_pipeline.dubbed_speech.records import CheckedFit, LineFit, PlannedLine
from dubbing_pipeline.dubbed_speech.voice import match_voice
from dubbing_pipeline.errors import ProviderError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.review.edits import source_slot
from dubbing_pipeline.speakers.records import SpeakerSegment
from dubbing_pipeline.speech_segments.sentences import Word
from dubbing_pipeline.translation.base import LineRequest, LineResult
from dubbing_pipeline.translation.budget import word_budget


class Shortener(Protocol):
    """A translator, as a line that does not fit asks it for one shorter line."""

    def shorten(
        self, line: LineRequest, budget: int, *, source: str, target: str, previous: str = ""
    ) -> LineResult: ...


class Translators(Protocol):
    """Where a shorter translation comes from (the ``translator`` resource in a run)."""

    def get(self, source: str, target: str) -> Shortener: ...


class Voice(Protocol):
    """What speaking a line needs of a TTS engine (``engine.TTSEngine`` is one)."""

    @property
    def sample_rate(self) -> int: ...

    @property
    def supports_rate(self) -> bool: ...

    def synthesize(
        self, text: str, language: str, *, voice: str | None = None, rate: float = 1.0
    ) -> np.ndarray: ...

    def predict_seconds(self, text: str, language: str, voice: str | None = None) -> float | None: ...


class Judge(Protocol):
    """The round-trip ASR a dubbed line is heard by (the ``asr`` resource's Whisper)."""

    def transcribe(
        self,
        audio16k: np.ndarray,
        *,
        language: str | None,
        regions: Sequence[tuple[float, float]] | None = None,
    ) -> Sequence[Word]: ...

    def describe(self) -> JsonObject: ...


LineLike = PlannedLine | Mapping[str, Any]
"""A planned line, or its fields (what the policy tests write)."""

JUDGE_PAD = 0.5  # seconds of silence around a line for the round-trip ASR (measured: CER of "Hola." 0.75 → 0)
JUDGE_WINDOW = 28.0
"""Seconds of padded lines judged together: one Whisper window (30 s) holds them, so a batch of
lines costs one encoder pass instead of one per line."""
PREDICTION_MARGIN = 1.04
"""The predicted duration is taken this much longer, so that a miss is more often a take a little
faster than it had to be (kept) than one too slow (spoken again)."""
FASTER_TOLERANCE = 0.01
SLOWER_TOLERANCE = 0.06
REPAIR_BUDGET = 0.75
"""The word budget of an unintelligible line's repair, as a share of its slot's budget."""


def rate_missed(spoken: float, needed: float) -> bool:
    """Whether a take spoken at ``spoken`` must be spoken again at ``needed``: when it turns out to
    need more than 1 % more speed (the engine's own rate sounds better than stretching afterwards),
    or when it was hurried by more than 6 % in a slot that had room."""
    return needed > spoken * (1 + FASTER_TOLERANCE) or needed < spoken * (1 - SLOWER_TOLERANCE)


def profile_spans(
    segments: Sequence[Mapping[str, Any] | SpeakerSegment], speaker: str, seconds: float
) -> list[tuple[float, float]]:
    """A speaker's longest segments (earliest first among equals) until ``seconds`` are reached."""
    mine = sorted(
        (s for s in segments if s["speaker"] == speaker), key=lambda s: (s["start"] - s["end"], s["start"])
    )
    spans, total = [], 0.0
    for seg in mine:
        if total >= seconds:
            break
        spans.append((seg["start"], seg["end"]))
        total += seg["end"] - seg["start"]
    return spans


class Slot(NamedTuple):
    """Where a line may sound: its start and end, the next line's start, the silence it may borrow."""

    start: float
    end: float
    next_start: float
    room_before: float


def line_slots(line: PlannedLine) -> tuple[Slot, Slot]:
    """A planned line's slot and the slot its speaking rate is planned in (``rate_slot``: the
    source's slot, where a timing edit moved the line; otherwise the same slot)."""
    slot = Slot(line.start, line.end, line.next_start, line.room_before)
    return slot, (Slot(*line.rate_slot) if line.rate_slot else slot)


def plan_slots(lines: Sequence[Mapping[str, Any]], end_of_video: float) -> list[JsonObject]:
    """Each line (sorted by start) with its next line's start and the silence it may borrow, and,
    where a timing edit moved it or a neighbour, the ``rate_slot`` the same computed from the
    source's slots (``source_start``/``source_end``): the rate a line is spoken at never depends
    on an edited timing, so moving lines synthesises nothing."""

    def slots(starts: list[float], ends: list[float]) -> list[Slot]:
        out = []
        for i in range(len(starts)):
            nxt = starts[i + 1] if i + 1 < len(starts) else end_of_video
            before, after = (starts[i - 1], ends[i - 1]) if i else (-1.0, -1.0)
            out.append(Slot(starts[i], ends[i], nxt, round(room_before(before, after, starts[i]), 6)))
        return out

    fit = slots([float(ln["start"]) for ln in lines], [float(ln["end"]) for ln in lines])
    spoken = [source_slot(ln) for ln in lines]
    rate = slots([s for s, _ in spoken], [e for _, e in spoken])
    return [
        {
            **ln,
            "next_start": f.next_start,
            "room_before": f.room_before,
            **({"rate_slot": list(r)} if r != f else {}),
        }
        for ln, f, r in zip(lines, fit, rate, strict=True)
    ]


Synth = Callable[[str, float], tuple[np.ndarray, bool]]
"""Speaks ``(words, rate)``: the audio, and whether it was synthesised now (False: from a cache)."""


class Take(NamedTuple):
    """A line's words as spoken: the audio, the plan it is placed by, the rate it was spoken at."""

    audio: np.ndarray
    plan: FitPlan
    rate: float


@dataclass
class LineVoice:
    """Speaks one line's words and fits every take to its slots, counting the texts synthesised.

    The rate is planned in ``rate_slot``, the slot the source speaker spoke in; a take is placed
    in ``slot``, the line's own: they differ only for a line a timing edit moved, whose voice
    therefore stays what it was.
    """

    line: PlannedLine
    language: str
    tts: Voice
    synth: Synth | None = None  # speaks a text at a rate (None: the engine, every time)
    syntheses: int = 0
    slot: Slot = field(init=False)
    rate_slot: Slot = field(init=False)
    sr: int = field(init=False)

    def __post_init__(self) -> None:
        self.slot, self.rate_slot = line_slots(self.line)
        self.sr = int(self.tts.sample_rate)

    def speak(self, words: str, rate: float) -> np.ndarray:
        if self.synth is None:
            self.syntheses += 1
            voice = self.line.profile.voice
            return np.asarray(
                self.tts.synthesize(words, self.language, voice=voice, rate=rate), dtype=np.float32
            )
        audio, now = self.synth(words, rate)
        self.syntheses += int(now)
        return audio

    def plan(self, natural: float, final: bool, *, supports_rate: bool) -> FitPlan:
        """The plan of ``natural`` seconds in the rate slot (``final``: no re-translation is left)."""
        start, end, nxt, room = self.rate_slot
        return plan_fit(
            start, end, nxt, natural, supports_rate=supports_rate, retranslated=final, room_before=room
        )

    def first_rate(self, words: str, final: bool) -> float:
        """The rate the plan needs for the engine's predicted duration (1.0 without a prediction)."""
        if not self.tts.supports_rate:
            return 1.0
        predicted = self.tts.predict_seconds(words, self.language, self.line.profile.voice)
        if predicted is None:
            return 1.0
        return self.plan(predicted * PREDICTION_MARGIN, final, supports_rate=True).rate

    def fit(self, words: str, final: bool, spoken: Take | None = None) -> Take:
        """Speak ``words`` once at the rate the plan predicts (or take them ``spoken`` already),
        speak them again only if the prediction missed; then place the measured take."""
        if spoken is None:
            rate = self.first_rate(words, final)
            audio = self.speak(words, rate)
        else:
            audio, rate = spoken.audio, spoken.rate
        # the rate this take shows the line really needs (its natural length ≈ take × rate); a
        # line that will be re-translated is not spoken again before its shorter text is known
        needed = self.plan(len(audio) / self.sr * rate, final, supports_rate=self.tts.supports_rate)
        if needed.status != "retranslate" and rate_missed(rate, needed.rate):
            audio, rate = self.speak(words, needed.rate), needed.rate
        return self.place(audio, rate, self.rate_slot, final)

    def place(self, audio: np.ndarray, rate: float, where: Slot, final: bool) -> Take:
        """The engine's rate is approximate: measure, then stretch exactly (or re-translate / trim)."""
        a, b, n, r = where

        def replan(take: np.ndarray) -> FitPlan:
            seconds = len(take) / self.sr
            return replan_after_synthesis(a, b, n, seconds, rate=rate, retranslated=final, room_before=r)

        plan = replan(audio)
        if plan.failed:  # before losing words, lose the long pauses between them
            tight = tighten_pauses(audio, self.sr)
            if tight.size < audio.size:
                audio, plan = tight, replan(tight)
        return Take(audio, plan, rate)


def synthesize_line(
    line: LineLike, language: str, source_language: str, tts: Voice, translator_res: Translators,
    voice_match: bool, synth: Synth | None = None,
) -> tuple[np.ndarray, LineFit]:  # fmt: skip
    """Speak one line and fit it: borrow silence, raise the rate, stretch, re-translate shorter once.

    ``synth`` speaks a text at a rate (default: the engine, every time); the stage passes one that
    caches each synthesis by text, voice, engine and rate, so a line whose slot moved but whose
    words and rate did not is fitted again without being spoken again. ``syntheses`` counts the
    texts spoken now. ``shorter_asked``: the translator was asked for the one shorter line (a line
    still too long at both caps; never a person's text), ``retranslated``: and its new text is the
    one spoken; with the fit's ``rate``, ``stretch``, ``lead`` and ``dub_end`` they show that a
    ``trimmed`` line was cut only after every other remedy was used up."""
    planned = PlannedLine.of(line)
    voice = LineVoice(planned, language, tts, synth)
    text = planned.target_text
    take = voice.fit(text, final=planned.edited)  # a person's text is spoken as written
    asked = take.plan.status == "retranslate"  # even at 1.2× and 1.1× it overflows
    if asked:
        text = shorter_to_fit(
            planned, voice.rate_slot, tts.supports_rate, language, source_language, translator_res
        )
        take = voice.fit(text, final=True, spoken=None if text != planned.target_text else take)
    if voice.slot != voice.rate_slot:  # a moved line: its voice, fitted to the slot the person gave it
        take = voice.place(take.audio, take.rate, voice.slot, final=True)
    fit = LineFit.model_validate({
        "target_text": text, "retranslated": text != planned.target_text, "shorter_asked": asked,
        "sample_rate": voice.sr, "syntheses": voice.syntheses, **take.plan.to_dict(),
    })  # fmt: skip
    return rendered(take, planned, voice.sr, voice_match), fit


def shorter_to_fit(
    line: PlannedLine, slot: Slot, supports_rate: bool, language: str, source_language: str,
    translators: Translators,
) -> str:  # fmt: skip
    """The one shorter translation of a line too long at both caps, sized to what ``slot`` holds;
    its own text where the translator has nothing shorter to say (e.g. Apertium)."""
    start, end, nxt, _ = slot
    budget = max(1, word_budget(capacity(start, end, nxt, supports_rate=supports_rate), language))
    shorter = ask_shorter(
        translators, line, budget, end - start, line.target_text, source=source_language, target=language
    )
    return line.target_text if shorter is None else shorter


def ask_shorter(
    translators: Translators, line: PlannedLine, budget: int, duration: float, previous: str, *,
    source: str, target: str,
) -> str | None:  # fmt: skip
    """The translator's shorter line for ``budget`` words, or None where it has nothing shorter
    than ``previous`` to say."""
    request = LineRequest(line.id, line.translated_from, budget, duration)
    translator = translators.get(source, target)
    text = translator.shorten(request, budget, source=source, target=target, previous=previous).text
    return text if text.strip() and text.strip() != previous.strip() else None


def rendered(take: Take, line: PlannedLine, sr: int, voice_match: bool) -> np.ndarray:
    """A take stretched and cut to its plan, its pitch moved to the speaker's (``voice_match``)."""
    audio = render_fit(take.audio, sr, take.plan)
    if voice_match and line.profile.f0:
        audio = match_voice(audio, sr, line.profile.f0, gender_shift=True)
    return audio


def require_enough_spoken(statuses: list[str], limit: float) -> None:
    """Fail the partition when more than ``limit`` of its lines are silent (``isochrony.failure_gate``)."""
    if failure_gate(statuses, limit):
        silent = statuses.count(SILENT)
        raise ProviderError(
            f"{silent} of {len(statuses)} lines could not be dubbed (more than {limit:.0%}): "
            "the partition fails"
        )


def _judge_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    return np.asarray(soxr.resample(audio, sample_rate, 16000, quality="HQ"), dtype=np.float32)


def judge_groups(durations: Sequence[float], window: float = JUDGE_WINDOW) -> list[list[int]]:
    """Consecutive takes packed into Whisper windows: each padded take (``JUDGE_PAD`` both sides)
    goes into the current group while it stays within ``window`` seconds. A take longer than the
    window is a group of its own. Takes without audio (duration 0) are left out."""
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0.0
    for i, seconds in enumerate(durations):
        if seconds <= 0:
            continue
        padded = seconds + 2 * JUDGE_PAD
        if current and used + padded > window:
            groups.append(current)
            current, used = [], 0.0
        current.append(i)
        used += padded
    if current:
        groups.append(current)
    return groups


def judge_together(judge: Judge, takes: Sequence[tuple[np.ndarray, int, str]], language: str) -> list[float]:
    """Round-trip CER of several dubbed lines heard in one Whisper pass.

    The lines are laid end to end, each with ``JUDGE_PAD`` seconds of silence on both sides
    (Whisper misreads a clip with no lead-in), transcribed once with the language forced, and
    each word goes to the line whose padded span holds its midpoint.
    """
    from dubbing_pipeline.quality.metrics import char_error_rate  # lazy: its scipy costs 0.5 s a run

    pad = np.zeros(int(JUDGE_PAD * 16000), dtype=np.float32)
    parts: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    at = 0
    for audio, sample_rate, _ in takes:
        clip = _judge_audio(audio, sample_rate) if audio.size else np.zeros(0, dtype=np.float32)
        parts += [pad, clip, pad]
        length = 2 * pad.size + clip.size
        spans.append((at / 16000, (at + length) / 16000))
        at += length
    if at == 0:
        return [1.0 for _ in takes]
    heard: list[list[str]] = [[] for _ in takes]
    words = judge.transcribe(np.concatenate(parts), language=language, regions=[(0.0, at / 16000)])
    for word in words:
        middle = (word.start + word.end) / 2
        nearest = min(range(len(spans)), key=lambda i: max(spans[i][0] - middle, middle - spans[i][1], 0.0))
        heard[nearest].append(word.text)
    return [
        float(char_error_rate(text, " ".join(said))) if audio.size else 1.0
        for (audio, _, text), said in zip(takes, heard, strict=True)
    ]


def round_trip_cer(judge: Judge, audio: np.ndarray, sample_rate: int, text: str, language: str) -> float:
    """Character error rate of the project's own ASR on one dubbed line against the text it should say."""
    if audio.size == 0:
        return 1.0
    return judge_together(judge, [(audio, sample_rate, text)], language)[0]


def check_line(
    line: LineLike, audio: np.ndarray, fit: LineFit, heard_cer: float | None, *, alone: bool,
    language: str, source_language: str, tts: Voice, translator_res: Translators, judge: Judge,
    voice_match: bool, max_line_cer: float,
) -> tuple[np.ndarray, CheckedFit]:  # fmt: skip
    """A synthesised line's verdict, and its one automatic repair when it is unintelligible.

    ``heard_cer`` is its round-trip CER from a window shared with other lines (``alone``: it had
    the window to itself; ``None``: not judged yet). A line over ``max_line_cer`` in a shared
    window is heard again on its own before anything is repaired: the shared window can only
    misjudge a line, never excuse one. A line still over the limit is re-translated to a tighter
    budget and spoken again once; the clearer take is kept.
    """
    planned = PlannedLine.of(line)
    cer = heard_cer
    if cer is None or (cer > max_line_cer and not alone):
        cer = round_trip_cer(judge, audio, fit.sample_rate, fit.target_text, language)
    checked = CheckedFit(**fit.model_dump(), cer=round(cer, 4), repaired=False)
    if cer <= max_line_cer or planned.edited:  # a person's text stays as written
        return audio, checked
    # automatic repair: a tighter length budget, spoken again; keep whichever is more intelligible
    duration = planned.source_duration()
    budget = max(1, int(word_budget(duration, language) * REPAIR_BUDGET))
    text = ask_shorter(
        translator_res, planned, budget, duration, fit.target_text, source=source_language, target=language
    )
    if text is None:  # nothing shorter to say (e.g. Apertium cannot shorten)
        return audio, checked.model_copy(update={"repair_tried": True})
    retry = planned.model_copy(update={"target_text": text})
    retry_audio, retry_fit = synthesize_line(
        retry, language, source_language, tts, translator_res, voice_match
    )
    retry_cer = round_trip_cer(judge, retry_audio, retry_fit.sample_rate, retry_fit.target_text, language)
    if retry_cer < cer:
        repaired = {"cer": round(retry_cer, 4), "repaired": True, "cer_before_repair": checked.cer}
        syntheses = fit.syntheses + retry_fit.syntheses
        return retry_audio, CheckedFit(**{**retry_fit.model_dump(), **repaired, "syntheses": syntheses})
    return audio, checked.model_copy(update={"repair_tried": True})


def speak_and_check(
    line: LineLike, language: str, source_language: str, tts: Voice, translator_res: Translators,
    judge: Judge, voice_match: bool, max_line_cer: float,
) -> tuple[np.ndarray, CheckedFit]:  # fmt: skip
    """One line on its own: synthesise and fit it, judge it, repair it once if it is unintelligible."""
    audio, fit = synthesize_line(line, language, source_language, tts, translator_res, voice_match)
    return check_line(
        line, audio, fit, None, alone=True, language=language, source_language=source_language, tts=tts,
        translator_res=translator_res, judge=judge, voice_match=voice_match, max_line_cer=max_line_cer,
    )  # fmt: skip
