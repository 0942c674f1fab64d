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

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from dubbing_pipeline.edits import is_edited, source_slot
from dubbing_pipeline.errors import ProviderError


class Translators(Protocol):
    """Where a shorter translation comes from (the ``translator`` resource in a run)."""

    def get(self, source: str, target: str) -> Any: ...


JUDGE_PAD = 0.5  # seconds of silence around a line for the round-trip ASR (measured: CER of "Hola." 0.75 → 0)
JUDGE_WINDOW = 28.0
"""Seconds of padded lines judged together: one Whisper window (30 s) holds them, so a batch of
lines costs one encoder pass instead of one per line."""
PREDICTION_MARGIN = 1.04
"""The predicted duration is taken this much longer, so that a miss is more often a take a little
faster than it had to be (kept) than one too slow (spoken again)."""
FASTER_TOLERANCE = 0.01
SLOWER_TOLERANCE = 0.06


def rate_missed(spoken: float, needed: float) -> bool:
    """Whether a take spoken at ``spoken`` must be spoken again at ``needed``: when it turns out to
    need more than 1 % more speed (the engine's own rate sounds better than stretching afterwards),
    or when it was hurried by more than 6 % in a slot that had room."""
    return needed > spoken * (1 + FASTER_TOLERANCE) or needed < spoken * (1 - SLOWER_TOLERANCE)


def source_duration(line: dict[str, Any]) -> float:
    """How long the source speaker spoke the line (a moved line's slot may differ)."""
    start, end = source_slot(line)
    return end - start


def translated_from(line: dict[str, Any]) -> str:
    """The source text a line was translated from: condensed where the translation step condensed it."""
    return str(line.get("condensed_text") or line["source_text"])


def profile_spans(segments: list[dict[str, Any]], speaker: str, seconds: float) -> list[tuple[float, float]]:
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


def line_slots(line: dict[str, Any]) -> tuple[Slot, Slot]:
    """A planned line's slot and the slot its speaking rate is planned in (``rate_slot``: the
    source's slot, where a timing edit moved the line; otherwise the same slot)."""
    slot = Slot(
        float(line["start"]),
        float(line["end"]),
        float(line["next_start"]),
        float(line.get("room_before", 0.0)),
    )
    rate = line.get("rate_slot")
    return slot, (Slot(*(float(v) for v in rate)) if rate else slot)


def plan_slots(lines: Sequence[dict[str, Any]], end_of_video: float) -> list[dict[str, Any]]:
    """Each line (sorted by start) with its next line's start and the silence it may borrow, and,
    where a timing edit moved it or a neighbour, the ``rate_slot`` the same computed from the
    source's slots (``source_start``/``source_end``): the rate a line is spoken at never depends
    on an edited timing, so moving lines synthesises nothing."""
    from dubbing_pipeline.dubbed_speech.isochrony import room_before

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


def synthesize_line(
    line: dict[str, Any], language: str, source_language: str, tts: Any, translator_res: Translators,
    voice_match: bool, synth: Synth | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Speak one line and fit it: borrow silence, raise the rate, stretch, re-translate shorter once.

    ``synth`` speaks a text at a rate (default: the engine, every time); the stage passes one that
    caches each synthesis by text, voice, engine and rate, so a line whose slot moved but whose
    words and rate did not is fitted again without being spoken again. ``syntheses`` counts the
    texts spoken now. ``shorter_asked``: the translator was asked for the one shorter line (a line
    still too long at both caps; never a person's text), ``retranslated``: and its new text is the
    one spoken; with the fit's ``rate``, ``stretch``, ``lead`` and ``dub_end`` they show that a
    ``trimmed`` line was cut only after every other remedy was used up."""
    from dubbing_pipeline.dubbed_speech.isochrony import (
        capacity,
        plan_fit,
        render_fit,
        replan_after_synthesis,
        tighten_pauses,
    )
    from dubbing_pipeline.dubbed_speech.voice import match_voice
    from dubbing_pipeline.translation.base import LineRequest
    from dubbing_pipeline.translation.budget import word_budget

    # the rate is planned in the slot the source speaker spoke in, the take fitted to the line's
    # slot: they differ only for a moved line (edits), whose voice therefore stays what it was
    slot, rate_slot = line_slots(line)
    start, end, nxt, room = rate_slot
    text = line["target_text"]
    voice = line["profile"].get("voice")
    sr = int(tts.sample_rate)
    retranslated = False
    shorter_asked = False  # the translator was asked for the one shorter line (a policy check reads it)

    syntheses = 0

    def engine(words: str, rate: float) -> tuple[np.ndarray, bool]:
        return np.asarray(tts.synthesize(words, language, voice=voice, rate=rate), dtype=np.float32), True

    def speak(words: str, rate: float = 1.0) -> np.ndarray:
        nonlocal syntheses
        audio, now = (synth or engine)(words, rate)
        syntheses += int(now)
        return audio

    def fit(
        words: str, final: bool, audio: np.ndarray | None = None, rate: float = 1.0
    ) -> tuple[np.ndarray, Any, float]:
        """Speak ``words`` once at the rate the plan predicts, re-speak only if the prediction
        missed; then plan from the measured take. ``final``: no re-translation is left.

        Returns the audio, its plan and the rate the audio was actually spoken at.
        """
        if audio is None:
            rate = first_rate(words, final)
            audio = speak(words, rate)
        # the rate this take shows the line really needs (its natural length ≈ take × rate); a
        # line that will be re-translated is not spoken again before its shorter text is known
        needed = plan_fit(
            start, end, nxt, len(audio) / sr * rate, supports_rate=tts.supports_rate, retranslated=final,
            room_before=room,
        )  # fmt: skip
        if needed.status != "retranslate" and rate_missed(rate, needed.rate):
            audio, rate = speak(words, needed.rate), needed.rate
        audio, plan = place(audio, rate, rate_slot, final)
        return audio, plan, rate

    def place(audio: np.ndarray, rate: float, where: Slot, final: bool) -> tuple[np.ndarray, Any]:
        """The engine's rate is approximate: measure, then stretch exactly (or re-translate / trim)."""
        a, b, n, r = where
        plan = replan_after_synthesis(a, b, n, len(audio) / sr, rate=rate, retranslated=final, room_before=r)
        if plan.failed:  # before losing words, lose the long pauses between them
            tight = tighten_pauses(audio, sr)
            if tight.size < audio.size:
                audio = tight
                plan = replan_after_synthesis(
                    a, b, n, len(audio) / sr, rate=rate, retranslated=final, room_before=r
                )
        return audio, plan

    def first_rate(words: str, final: bool) -> float:
        """The rate the plan needs for the engine's predicted duration (1.0 without a prediction)."""
        if not tts.supports_rate:
            return 1.0
        predicted = tts.predict_seconds(words, language, voice)
        if predicted is None:
            return 1.0
        return plan_fit(
            start, end, nxt, predicted * PREDICTION_MARGIN, supports_rate=True, retranslated=final,
            room_before=room,
        ).rate  # fmt: skip

    # a person's text (edits) is spoken as written: never re-translated shorter
    audio, plan, spoken_rate = fit(text, final=is_edited(line))
    if plan.status == "retranslate":  # even at 1.2× and 1.1× it overflows: ask once for a shorter line
        seconds = capacity(start, end, nxt, supports_rate=tts.supports_rate)
        request = LineRequest(
            line["id"],
            translated_from(line),
            max(1, word_budget(seconds, language)),
            end - start,
        )
        translator = translator_res.get(source_language, language)
        shorter = translator.shorten(
            request, request.budget, source=source_language, target=language, previous=text
        )
        shorter_asked = True
        if shorter.text.strip() and shorter.text.strip() != text.strip():
            text, retranslated = shorter.text, True
            audio, plan, spoken_rate = fit(text, final=True)
        else:  # nothing shorter to say (e.g. Apertium): finish with the audio we have
            audio, plan, spoken_rate = fit(text, final=True, audio=audio, rate=spoken_rate)
    if slot != rate_slot:  # a moved line: its voice, fitted to the slot the person gave it
        audio, plan = place(audio, spoken_rate, slot, True)
    audio = render_fit(audio, sr, plan)
    target_f0 = line["profile"].get("f0")
    if voice_match and target_f0:
        audio = match_voice(audio, sr, target_f0, gender_shift=True)
    return audio, {
        "target_text": text,
        "retranslated": retranslated,
        "shorter_asked": shorter_asked,
        "sample_rate": sr,
        "syntheses": syntheses,
        **plan.to_dict(),
    }


def require_enough_spoken(statuses: list[str], limit: float) -> None:
    """Fail the partition when more than ``limit`` of its lines are silent (``isochrony.failure_gate``)."""
    from dubbing_pipeline.dubbed_speech.isochrony import SILENT, failure_gate

    if failure_gate(statuses, limit):
        silent = statuses.count(SILENT)
        raise ProviderError(
            f"{silent} of {len(statuses)} lines could not be dubbed (more than {limit:.0%}): "
            "the partition fails"
        )


def _judge_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import soxr

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


def judge_together(judge: Any, takes: Sequence[tuple[np.ndarray, int, str]], language: str) -> list[float]:
    """Round-trip CER of several dubbed lines heard in one Whisper pass.

    The lines are laid end to end, each with ``JUDGE_PAD`` seconds of silence on both sides
    (Whisper misreads a clip with no lead-in), transcribed once with the language forced, and
    each word goes to the line whose padded span holds its midpoint.
    """
    from dubbing_pipeline.quality.metrics import char_error_rate

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


def round_trip_cer(judge: Any, audio: np.ndarray, sample_rate: int, text: str, language: str) -> float:
    """Character error rate of the project's own ASR on one dubbed line against the text it should say."""
    if audio.size == 0:
        return 1.0
    return judge_together(judge, [(audio, sample_rate, text)], language)[0]


def check_line(
    line: dict[str, Any], audio: np.ndarray, fit: dict[str, Any], heard_cer: float | None, *, alone: bool,
    language: str, source_language: str, tts: Any, translator_res: Translators, judge: Any,
    voice_match: bool, max_line_cer: float,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """A synthesised line's verdict, and its one automatic repair when it is unintelligible.

    ``heard_cer`` is its round-trip CER from a window shared with other lines (``alone``: it had
    the window to itself; ``None``: not judged yet). A line over ``max_line_cer`` in a shared
    window is heard again on its own before anything is repaired: the shared window can only
    misjudge a line, never excuse one. A line still over the limit is re-translated to a tighter
    budget and spoken again once; the clearer take is kept.
    """
    from dubbing_pipeline.translation.base import LineRequest
    from dubbing_pipeline.translation.budget import word_budget

    cer = heard_cer
    if cer is None or (cer > max_line_cer and not alone):
        cer = round_trip_cer(judge, audio, fit["sample_rate"], fit["target_text"], language)
    fit = {**fit, "cer": round(cer, 4), "repaired": False}
    if cer <= max_line_cer or is_edited(line):  # a person's text stays as written
        return audio, fit
    # automatic repair: a tighter length budget, spoken again; keep whichever is more intelligible
    duration = source_duration(line)
    budget = max(1, int(word_budget(duration, language) * 0.75))
    request = LineRequest(line["id"], translated_from(line), budget, duration)
    translator = translator_res.get(source_language, language)
    shorter = translator.shorten(
        request, budget, source=source_language, target=language, previous=fit["target_text"]
    )
    if not shorter.text.strip() or shorter.text.strip() == fit["target_text"].strip():
        return audio, {**fit, "repair_tried": True}  # nothing shorter to say (e.g. Apertium cannot shorten)
    retry_audio, retry_fit = synthesize_line(
        {**line, "target_text": shorter.text}, language, source_language, tts, translator_res, voice_match
    )
    retry_cer = round_trip_cer(
        judge, retry_audio, retry_fit["sample_rate"], retry_fit["target_text"], language
    )
    if retry_cer < cer:
        return retry_audio, {
            **retry_fit,
            "cer": round(retry_cer, 4),
            "repaired": True,
            "cer_before_repair": fit["cer"],
            "syntheses": int(fit.get("syntheses", 0)) + int(retry_fit.get("syntheses", 0)),
        }
    return audio, {**fit, "repair_tried": True}


def speak_and_check(
    line: dict[str, Any], language: str, source_language: str, tts: Any, translator_res: Translators,
    judge: Any, voice_match: bool, max_line_cer: float,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """One line on its own: synthesise and fit it, judge it, repair it once if it is unintelligible."""
    audio, fit = synthesize_line(line, language, source_language, tts, translator_res, voice_match)
    return check_line(
        line, audio, fit, None, alone=True, language=language, source_language=source_language, tts=tts,
        translator_res=translator_res, judge=judge, voice_match=voice_match, max_line_cer=max_line_cer,
    )  # fmt: skip
