"""Speaking one dubbed line: the policy between the TTS engine, the isochrony core and the judge.

``synthesize_line`` speaks a line and fits it to its slot (borrow silence, speak faster, stretch,
re-translate shorter once, then a faded cut); ``speak_and_check`` judges the result with the
project's own ASR and repairs an unintelligible line once, keeping the clearer take;
``require_enough_spoken`` is the partition's silence gate; ``profile_spans`` picks the speech a
speaker's voice profile is measured on. Plain functions of an engine, a translator and a judge:
tested with recorded doubles (``tests/unit/test_stage_policies.py``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from dubbing_pipeline.errors import ProviderError


class Translators(Protocol):
    """Where a shorter translation comes from (the ``translator`` resource in a run)."""

    def get(self, source: str, target: str) -> Any: ...


JUDGE_PAD = 0.5  # seconds of silence around a line for the round-trip ASR (measured: CER of "Hola." 0.75 → 0)


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


def synthesize_line(
    line: dict[str, Any], language: str, source_language: str, tts: Any, translator_res: Translators,
    voice_match: bool,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Speak one line and fit it: borrow silence, raise the rate, stretch, re-translate shorter once."""
    from dubbing_pipeline.dubbed_speech.isochrony import (
        capacity,
        plan_fit,
        render_fit,
        replan_after_synthesis,
    )
    from dubbing_pipeline.dubbed_speech.voice import match_voice
    from dubbing_pipeline.translation.base import LineRequest
    from dubbing_pipeline.translation.budget import word_budget

    start, end, nxt = float(line["start"]), float(line["end"]), float(line["next_start"])
    text = line["target_text"]
    voice = line["profile"].get("voice")
    sr = int(tts.sample_rate)
    retranslated = False

    def speak(words: str, rate: float = 1.0) -> np.ndarray:
        return np.asarray(tts.synthesize(words, language, voice=voice, rate=rate), dtype=np.float32)

    def fit(
        words: str, final: bool, audio: np.ndarray | None = None, rate: float = 1.0
    ) -> tuple[np.ndarray, Any, float]:
        """Plan (re-speaking at the planned rate); ``final``: no re-translation is left.

        Returns the audio, its plan and the rate the audio was actually spoken at.
        """
        if audio is None:
            audio, rate = speak(words), 1.0
        if rate == 1.0:
            plan = plan_fit(
                start, end, nxt, len(audio) / sr, supports_rate=tts.supports_rate, retranslated=final
            )
            if plan.status == "retranslate" or not plan.needs_resynthesis:
                return audio, plan, 1.0
            audio, rate = speak(words, plan.rate), plan.rate
        # the engine's rate is approximate: measure, then stretch exactly (or re-translate / trim)
        plan = replan_after_synthesis(start, end, nxt, len(audio) / sr, rate=rate, retranslated=final)
        return audio, plan, rate

    audio, plan, spoken_rate = fit(text, final=False)
    if plan.status == "retranslate":  # even at 1.2× and 1.1× it overflows: ask once for a shorter line
        seconds = capacity(start, end, nxt, supports_rate=tts.supports_rate)
        request = LineRequest(
            line["id"], line["source_text"], max(1, word_budget(seconds, language)), end - start
        )
        translator = translator_res.get(source_language, language)
        shorter = translator.shorten(
            request, request.budget, source=source_language, target=language, previous=text
        )
        if shorter.text.strip() and shorter.text.strip() != text.strip():
            text, retranslated = shorter.text, True
            audio, plan, _ = fit(text, final=True)
        else:  # nothing shorter to say (e.g. Apertium): finish with the audio we have
            audio, plan, _ = fit(text, final=True, audio=audio, rate=spoken_rate)
    audio = render_fit(audio, sr, plan)
    target_f0 = line["profile"].get("f0")
    if voice_match and target_f0:
        audio = match_voice(audio, sr, target_f0, gender_shift=True)
    return audio, {
        "target_text": text,
        "retranslated": retranslated,
        "sample_rate": sr,
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


def round_trip_cer(judge: Any, audio: np.ndarray, sample_rate: int, text: str, language: str) -> float:
    """Character error rate of the project's own ASR on a dubbed line against the text it should say."""
    import soxr

    from dubbing_pipeline.quality.metrics import char_error_rate

    if audio.size == 0:
        return 1.0
    pad = np.zeros(int(JUDGE_PAD * 16000), dtype=np.float32)  # Whisper misreads clips with no lead-in
    audio16k = np.concatenate(
        [pad, soxr.resample(audio, sample_rate, 16000, quality="HQ").astype(np.float32), pad]
    )
    words = judge.transcribe(audio16k, language=language, regions=[(0.0, len(audio16k) / 16000)])
    return float(char_error_rate(text, " ".join(w.text for w in words)))


def speak_and_check(
    line: dict[str, Any], language: str, source_language: str, tts: Any, translator_res: Translators,
    judge: Any, voice_match: bool, max_line_cer: float,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Synthesise and fit a line; if the round trip is unintelligible, repair it once (shorter, re-spoken)."""
    from dubbing_pipeline.translation.base import LineRequest
    from dubbing_pipeline.translation.budget import word_budget

    audio, fit = synthesize_line(line, language, source_language, tts, translator_res, voice_match)
    cer = round_trip_cer(judge, audio, fit["sample_rate"], fit["target_text"], language)
    fit = {**fit, "cer": round(cer, 4), "repaired": False}
    if cer <= max_line_cer:
        return audio, fit
    # automatic repair: a tighter length budget, spoken again; keep whichever is more intelligible
    duration = float(line["end"]) - float(line["start"])
    budget = max(1, int(word_budget(duration, language) * 0.75))
    request = LineRequest(line["id"], line["source_text"], budget, duration)
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
        }
    return audio, {**fit, "repair_tried": True}
