"""``dubbed_speech`` (video × language): every line spoken again, fitted to its slot (a per-batch fan-out).

Each line is cached by a content hash of its text, voice, engine, fit geometry, settings and
code version: a re-run or a resumed run synthesises only the lines that are not done yet.
"""

from typing import Any

import dagster as dg
import numpy as np

from dubbing_pipeline.audio import write_wav
from dubbing_pipeline.cache import StepCache, scratch
from dubbing_pipeline.errors import DubbingError, ProviderError
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.hooks import pause_point
from dubbing_pipeline.orchestration.partitions import video_language
from dubbing_pipeline.orchestration.placement import DEPLOYED, gpu_op_tags, gpu_pool
from dubbing_pipeline.orchestration.resources import (
    ASRResource,
    StorageResource,
    TranslatorResource,
    TTSResource,
)
from dubbing_pipeline.orchestration.stage import Timer, classified, stage_metadata

CODE_VERSION = "speech-2"
BATCH = 16  # lines per fan-out step (production batches ~32 per GPU step)
PROFILE_SECONDS = 20.0  # seconds of each speaker's speech used to measure their pitch
JUDGE_PAD = 0.5  # seconds of silence around a line for the round-trip ASR (measured: CER of "Hola." 0.75 → 0)
FAILURE_LIMIT = 0.2  # share of silent (failed) lines above which the partition fails
RETRY = dg.RetryPolicy(max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL)


def speaker_profiles(
    storage_res: StorageResource, speech_segments: dict[str, Any], speakers: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Median F0 and a voice family (male/female) per speaker, measured on the vocals stem."""
    from dubbing_pipeline.segments.vad import read_wav_16k_mono
    from dubbing_pipeline.speech.voice import median_f0, voice_for_speaker

    storage = storage_res.get()
    key = cache_key(
        "profiles", upstream=[speech_segments["cache_key"], speakers["cache_key"]], code=CODE_VERSION
    )
    cache = StepCache(storage, "profiles")
    hit = cache.get(key)
    if hit is not None:
        return dict(hit["profiles"])
    profiles: dict[str, dict[str, Any]] = {}
    with scratch("profiles", storage_res.work_dir or None) as tmp:
        with storage.open_local(storage.key_of(speech_segments["asr_audio_uri"]), tmp) as path:
            for spk in speakers["speakers"]:
                segs = sorted(
                    (s for s in speakers["segments"] if s["speaker"] == spk["id"]),
                    key=lambda s: (s["start"] - s["end"], s["start"]),
                )
                parts, total = [], 0.0
                for seg in segs:
                    if total >= PROFILE_SECONDS:
                        break
                    parts.append(read_wav_16k_mono(path, seg["start"], seg["end"]))
                    total += seg["end"] - seg["start"]
                f0 = median_f0(np.concatenate(parts), 16000) if parts else None
                profiles[spk["id"]] = {
                    "f0": None if f0 is None else round(float(f0), 2),
                    "voice": voice_for_speaker(f0),
                }
    cache.put(key, {"profiles": profiles})
    return profiles


@dg.op(out=dg.DynamicOut(dict), tags={"stage": "dubbed_speech"})
def plan_speech(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    source_video: dict[str, Any],
    speech_segments: dict[str, Any],
    speakers: dict[str, Any],
    translation: dict[str, Any],
) -> Any:
    """One job per batch of lines, each line with its slot and the next line's start."""
    with classified("dubbed_speech"):
        profiles = speaker_profiles(storage, speech_segments, speakers)
    lines = sorted(translation["lines"], key=lambda ln: (ln["start"], ln["id"]))
    end_of_video = float(source_video["duration"])
    planned = []
    for i, line in enumerate(lines):
        next_start = lines[i + 1]["start"] if i + 1 < len(lines) else end_of_video
        planned.append({**line, "next_start": next_start, "profile": profiles.get(line["speaker"], {})})
    for b in range(0, len(planned), BATCH):
        yield dg.DynamicOutput(
            {
                "lines": planned[b : b + BATCH],
                "source_language": translation["source_language"],
                "target_language": translation["target_language"],
            },
            mapping_key=f"b{b // BATCH:04d}",
        )


def synthesize_line(
    line: dict[str, Any], language: str, source_language: str, tts: Any, translator_res: TranslatorResource,
    voice_match: bool,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Speak one line and fit it: borrow silence, raise the rate, stretch, re-translate shorter once."""
    from dubbing_pipeline.speech.isochrony import capacity, plan_fit, render_fit, replan_after_synthesis
    from dubbing_pipeline.speech.voice import match_voice
    from dubbing_pipeline.translation.budget import word_budget
    from dubbing_pipeline.translation.providers import LineRequest

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
    line: dict[str, Any], language: str, source_language: str, tts: Any, translator_res: TranslatorResource,
    judge: Any, voice_match: bool, max_line_cer: float,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Synthesise and fit a line; if the round trip is unintelligible, repair it once (shorter, re-spoken)."""
    from dubbing_pipeline.translation.budget import word_budget
    from dubbing_pipeline.translation.providers import LineRequest

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


@dg.op(
    retry_policy=RETRY,
    tags={"stage": "dubbed_speech", **gpu_op_tags(DEPLOYED, "speech")},
    pool=gpu_pool(DEPLOYED, "speech"),
)
def synthesize_batch(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    tts: TTSResource,
    translator: TranslatorResource,
    asr: ASRResource,
    job: dict[str, Any],
) -> dict[str, Any]:
    from dubbing_pipeline.quality.scorecard import Thresholds

    timer = Timer()
    language = job["target_language"]
    thresholds = Thresholds.from_env()
    with classified("dubbed_speech"):
        store = storage.get()
        engine = tts.get(language)
        judge = asr.get()
        provider = engine.describe()
        cache = StepCache(store, "speech_line")
        results, hits = [], 0
        for line in job["lines"]:
            voice = line["profile"].get("voice")
            key = cache_key(
                "speech_line", text=line["target_text"], source_text=line["source_text"], language=language,
                provider=provider, voice=engine.voice_key(voice), f0=line["profile"].get("f0"),
                voice_match=tts.voice_match, slot=[line["start"], line["end"], line["next_start"]],
                judge=judge.describe(), max_line_cer=thresholds.max_line_cer, code=CODE_VERSION,
            )  # fmt: skip
            hit = cache.get(key)
            if hit is not None:
                results.append(hit)
                hits += 1
                continue
            base = {"id": line["id"], "cache_key": key}
            if not line["target_text"].strip():
                record = {**base, "status": "failed", "detail": "no translation", "uri": None}
            else:
                try:
                    audio, fit = speak_and_check(
                        line, language, job["source_language"], engine, translator, judge,
                        tts.voice_match == "on", thresholds.max_line_cer,
                    )  # fmt: skip
                except DubbingError as err:  # one line never fails the partition: it becomes silence
                    context.log.warning(f"line {line['id']}: {err.one_line()}")
                    record = {**base, "status": "failed", "detail": err.one_line(), "uri": None}
                else:
                    with scratch("line", storage.work_dir or None) as tmp:
                        wav = tmp / "line.wav"
                        write_wav(wav, audio, fit["sample_rate"])
                        record = {**base, **fit, "uri": cache.put_artifact(key, "line.wav", wav)}
            results.append(cache.put(key, record))
            pause_point("speech_line")  # test hook, off by default (dubbing_pipeline/hooks.py)
    return {
        "index": job["lines"][0]["id"] if job["lines"] else "",
        "lines": results,
        "cached": hits == len(job["lines"]),
        "hits": hits,
        "seconds": timer.seconds,
        "provider": provider,
    }


@dg.op(tags={"stage": "dubbed_speech"})
def assemble_speech(
    context: dg.OpExecutionContext, translation: dict[str, Any], batches: list[dict[str, Any]]
) -> dg.Output[dict[str, Any]]:
    timer = Timer()
    by_id = {r["id"]: r for b in batches for r in b["lines"]}
    lines = []
    for line in translation["lines"]:
        rec = by_id.get(line["id"], {"status": "failed", "detail": "not synthesised", "uri": None})
        lines.append(
            {**rec, "id": line["id"], "speaker": line["speaker"], "start": line["start"], "end": line["end"]}
        )
    # A trimmed line was spoken (cut by a few hundredths at the next line): only lines that
    # could not be spoken at all (silence) count against the 20 % gate.
    failed = sum(1 for r in lines if r["status"] == "failed")
    with classified("dubbed_speech"):
        if lines and failed / len(lines) > FAILURE_LIMIT:
            raise ProviderError(
                f"{failed} of {len(lines)} lines could not be dubbed (more than 20 %): the partition fails"
            )
    provider = batches[0]["provider"] if batches else {}
    key = cache_key("dubbed_speech", lines=[r.get("cache_key") for r in lines], code=CODE_VERSION)
    record = {
        "cache_key": key,
        "target_language": translation["target_language"],
        "provider": provider,
        "lines": lines,
    }
    counts: dict[str, int | float] = {"lines": len(lines), "batches": len(batches)}
    for status in ("fits", "borrowed", "rate", "stretch", "trimmed", "failed"):
        counts[f"status_{status}"] = sum(1 for r in lines if r["status"] == status)
    counts["cache_hits"] = sum(int(b["hits"]) for b in batches)
    counts["repaired"] = sum(1 for r in lines if r.get("repaired"))
    cers = [float(r["cer"]) for r in lines if r.get("cer") is not None]
    counts["mean_round_trip_cer"] = round(sum(cers) / len(cers), 4) if cers else 0.0
    duration = sum(r["end"] - r["start"] for r in lines) or 1.0
    return dg.Output(
        record,
        metadata=stage_metadata(
            seconds=sum(float(b["seconds"]) for b in batches) + timer.seconds,
            media_seconds=duration,
            cached=all(b["cached"] for b in batches),
            cache_key=key,
            provider=provider,
            counts=counts,
        ),
    )


@dg.graph_asset(
    partitions_def=video_language,
    code_version=CODE_VERSION,
    group_name="target_half",
    kinds={"tts"},
    description="Each translated line spoken in a voice matched to its speaker and fitted to its slot.",
)
def dubbed_speech(
    source_video: dict[str, Any],
    speech_segments: dict[str, Any],
    speakers: dict[str, Any],
    translation: dict[str, Any],
) -> Any:
    jobs = plan_speech(source_video, speech_segments, speakers, translation)
    return assemble_speech(translation, jobs.map(synthesize_batch).collect())
