"""``dubbed_speech`` (video × language): every line spoken again, fitted to its slot (a per-batch fan-out).

A batch of lines is four kinds of cached step: a line's *take* (spoken once at the rate its
predicted duration needs, fitted; keyed by its text, voice, engine, fit geometry, settings and
code version), the judge's *window* (up to ~28 s of takes heard in one Whisper pass; keyed by its
takes), the line's *record* (the verdict, and the one repair of an unintelligible line; keyed
by its take and window) and, with ``DUBBING_WATERMARK=on``, its *mark* (the line with Perth's
audio watermark, keyed by the record and the watermarker). A re-run or a resumed run redoes only
what is not stored yet.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np

from dubbing_pipeline.audio import write_wav
from dubbing_pipeline.dubbed_speech.isochrony import ORIGINAL
from dubbing_pipeline.dubbed_speech.speak import (
    check_line,
    judge_groups,
    judge_together,
    plan_slots,
    profile_spans,
    require_enough_spoken,
    synthesize_line,
)
from dubbing_pipeline.edits import SOURCE_SLOT_KEYS, is_edited, source_slot
from dubbing_pipeline.errors import DubbingError
from dubbing_pipeline.freshness import recipe, stage_code
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.hooks import pause_point
from dubbing_pipeline.orchestration.kit import (
    Step,
    StepResult,
    Timer,
    classified,
    model_op,
    run_step,
    stage_output,
)
from dubbing_pipeline.orchestration.partitions import video_language
from dubbing_pipeline.orchestration.resources import (
    ASRResource,
    QualityResource,
    SafetyResource,
    StorageResource,
    TranslatorResource,
    TTSResource,
)
from dubbing_pipeline.settings import Settings

CODE_VERSION = recipe("dubbed_speech").code[0]
BATCH = 16  # lines per fan-out step (production batches ~32 per GPU step)
PROFILE_SECONDS = 20.0  # seconds of each speaker's speech used to measure their pitch


def speaker_profiles(
    storage_res: StorageResource, speech_segments: dict[str, Any], speakers: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Median F0 and a voice family (male/female) per speaker, measured on the vocals stem."""

    def compute(step: Step) -> dict[str, Any]:
        from dubbing_pipeline.dubbed_speech.voice import median_f0, voice_for_speaker
        from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono

        profiles: dict[str, dict[str, Any]] = {}
        with step.local(speech_segments["asr_audio_uri"]) as path:
            for spk in speakers["speakers"]:
                spans = profile_spans(speakers["segments"], spk["id"], PROFILE_SECONDS)
                parts = [read_wav_16k_mono(path, s, e) for s, e in spans]
                f0 = median_f0(np.concatenate(parts), 16000) if parts else None
                profiles[spk["id"]] = {
                    "f0": None if f0 is None else round(float(f0), 2),
                    "voice": voice_for_speaker(f0),
                }
        return {"profiles": profiles}

    inputs = {"upstream": [speech_segments["cache_key"], speakers["cache_key"]], "code": CODE_VERSION}
    return dict(run_step(storage_res, "profiles", inputs=inputs, compute=compute).record["profiles"])


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
    voices = translation.get("voices", {})  # the person's voice choices (edits)
    planned = []
    for line in plan_slots(lines, float(source_video["duration"])):
        profile = profiles.get(line["speaker"], {})
        if line["speaker"] in voices:
            profile = {**profile, "voice": voices[line["speaker"]]}
        if not line.get("skip"):  # a skipped line keeps the original speech: nothing to speak
            planned.append({**line, "profile": profile})
    for b in range(0, len(planned), BATCH):
        yield dg.DynamicOutput(
            {
                "lines": planned[b : b + BATCH],
                "source_language": translation["source_language"],
                "target_language": translation["target_language"],
            },
            mapping_key=f"b{b // BATCH:04d}",
        )


def synthesize_batch(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    tts: TTSResource,
    translator: TranslatorResource,
    asr: ASRResource,
    quality: QualityResource,
    safety: SafetyResource,
    job: dict[str, Any],
) -> dict[str, Any]:
    """A batch of lines in four cached steps: every line spoken and fitted (``speech_take``, spread
    over the engine's workers), the takes heard by the judge a Whisper window at a time
    (``speech_judge``), each line's verdict and repair (``speech_line``), then its watermark
    (``speech_mark``)."""
    timer = Timer()
    with classified("dubbed_speech"):
        language = job["target_language"]
        speaking = Speaking(
            engine=tts.get(language), judge=asr.get(), translator=translator, language=language,
            source_language=job["source_language"], voice_match=tts.settings().voice_match,
            max_line_cer=quality.thresholds().max_line_cer, warn=context.log.warning,
            marker=safety.watermarker(),
        )  # fmt: skip
        lines = job["lines"]
        takes = take_lines(storage, speaking, lines)
        heard = hear_takes(storage, speaking, takes)
        results, marking = [], 0.0
        for line, take, verdict in zip(lines, takes, heard, strict=True):
            spoken = speak_line(storage, speaking, line, take, verdict)
            results.append(mark_line(storage, speaking, spoken))
            marking += results[-1].seconds if results[-1] is not spoken else 0.0
            pause_point("speech_line")  # test hook, off by default (dubbing_pipeline/hooks.py)
    hits = sum(1 for r in results if r.cached)
    return {
        "index": lines[0]["id"] if lines else "",
        "lines": [r.record for r in results],
        "cached": hits == len(lines),
        "hits": hits,
        "takes_cached": sum(1 for t in takes if t.cached),  # lines not spoken again
        "spoken": [  # the lines this run synthesised (a take fitted again from stored voices is not)
            line["id"]
            for line, t in zip(lines, takes, strict=True)
            if not t.cached and int(t.record.get("syntheses", 0)) > 0
        ],
        "refitted": [line["id"] for line, t in zip(lines, takes, strict=True) if not t.cached],
        "seconds": timer.seconds,
        "provider": speaking.engine.describe(),
        "watermark": {**speaking.marker.describe(), "seconds": marking}
        if speaking.marker is not None
        else None,
    }


@dataclass(frozen=True)
class Speaking:
    """What every line of a batch is spoken with: the engine, the judge, the translator for repairs."""

    engine: Any
    judge: Any
    translator: TranslatorResource
    language: str
    source_language: str
    voice_match: str
    max_line_cer: float
    warn: Callable[[str], Any]
    marker: Any = None  # the watermarker (``None``: DUBBING_WATERMARK=off)


TAKE_ONLY = ("cache_key", "seconds", "uri")
"""What a take record holds besides the line's fit (``synthesize_line``'s fields)."""


@dataclass(frozen=True)
class Verdict:
    """What the judge heard of a take in a shared window: its CER (``None``: no audio to hear),
    whether the take had the window to itself, and the window step's key."""

    cer: float | None
    alone: bool
    judged: str | None


def take_lines(storage: StorageResource, speaking: Speaking, lines: list[dict[str, Any]]) -> list[StepResult]:
    """Every line spoken and fitted, each a cached ``speech_take``; the engine's workers speak
    several at once (each line's bytes do not depend on which worker spoke it)."""
    workers = max(1, min(int(speaking.engine.workers), len(lines)))
    if workers == 1:
        return [take_line(storage, speaking, line) for line in lines]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="speech") as pool:
        return list(pool.map(lambda line: take_line(storage, speaking, line), lines))


def take_line(storage: StorageResource, speaking: Speaking, line: dict[str, Any]) -> StepResult:
    """One line spoken and fitted to its slot (cached); a line that cannot be spoken has no audio."""
    sp = speaking

    def compute(step: Step) -> dict[str, Any]:
        if not line["target_text"].strip():
            return {"status": "failed", "detail": "no translation", "uri": None, "seconds": 0.0}
        try:
            audio, fit = synthesize_line(
                line, sp.language, sp.source_language, sp.engine, sp.translator, sp.voice_match == "on",
                synth=voice_cache(storage, sp, line["profile"].get("voice")),
            )  # fmt: skip
        except DubbingError as err:  # one line never fails the partition: it becomes silence
            sp.warn(f"line {line['id']}: {err.one_line()}")
            return {"status": "failed", "detail": err.one_line(), "uri": None, "seconds": 0.0}
        wav = write_wav(step.tmp / "take.wav", audio, fit["sample_rate"])
        return {**fit, "seconds": len(audio) / fit["sample_rate"], "uri": step.put("take.wav", wav)}

    inputs = {
        "text": line["target_text"], "source_text": line["source_text"],
        "condensed": line.get("condensed_text"), "language": sp.language,
        "provider": sp.engine.describe(), "voice": sp.engine.voice_key(line["profile"].get("voice")),
        "f0": line["profile"].get("f0"), "voice_match": sp.voice_match,
        "slot": [line["start"], line["end"], line["next_start"], line.get("room_before", 0.0)],
        **({"rate_slot": line["rate_slot"]} if line.get("rate_slot") else {}),  # a moved line (edits)
        "code": CODE_VERSION,
        **({"edited": True} if is_edited(line) else {}),  # a person's text is never re-translated
    }  # fmt: skip
    return run_step(storage, "speech_take", inputs=inputs, compute=compute)


def voice_cache(storage: StorageResource, speaking: Speaking, voice: str | None) -> Any:
    """A ``speak.Synth`` whose every synthesis is a cached ``speech_voice`` step keyed by what
    the voice depends on (text, language, engine, voice, rate) and nothing of the slot: a line
    whose slot moves is fitted again from the stored voice. The audio always comes back from the
    store (float WAV, exact), so a first run and a re-run fit the same samples."""
    import soundfile as sf

    sp = speaking

    def synth(words: str, rate: float) -> tuple[np.ndarray, bool]:
        def compute(step: Step) -> dict[str, Any]:
            audio = np.asarray(
                sp.engine.synthesize(words, sp.language, voice=voice, rate=rate), dtype=np.float32
            )
            wav = write_wav(step.tmp / "voice.wav", audio, int(sp.engine.sample_rate))
            return {"uri": step.put("voice.wav", wav), "samples": int(audio.size)}

        inputs = {
            "text": words, "language": sp.language, "provider": sp.engine.describe(),
            "voice": sp.engine.voice_key(voice), "rate": round(float(rate), 6), "code": CODE_VERSION,
        }  # fmt: skip
        result = run_step(storage, "speech_voice", inputs=inputs, compute=compute)
        store = storage.get()
        with store.open_local(store.key_of(result.record["uri"]), storage.work_dir or None) as path:
            audio, _ = sf.read(str(path), dtype="float32")
        return np.asarray(audio, dtype=np.float32).reshape(-1), not result.cached

    return synth


def _read_take(step: Step, take: dict[str, Any]) -> np.ndarray:
    import soundfile as sf

    with step.local(take["uri"]) as path:
        audio, _ = sf.read(str(path), dtype="float32")
    return np.asarray(audio, dtype=np.float32).reshape(-1)


def hear_takes(storage: StorageResource, speaking: Speaking, takes: list[StepResult]) -> list[Verdict]:
    """The judge's round-trip CER of every take, several takes per Whisper window (``judge_groups``),
    each window a cached ``speech_judge`` step keyed by its takes: the windows of a batch are fixed
    by its lines, so a resumed or re-run batch hears exactly the same windows."""
    sp = speaking
    verdicts = [Verdict(None, True, None) for _ in takes]
    durations = [float(t.record["seconds"]) if t.record.get("uri") else 0.0 for t in takes]
    for group in judge_groups(durations):
        members = [takes[i].record for i in group]

        def compute(step: Step, members: list[dict[str, Any]] = members) -> dict[str, Any]:
            clips = [(_read_take(step, m), int(m["sample_rate"]), str(m["target_text"])) for m in members]
            return {"cer": [round(c, 4) for c in judge_together(sp.judge, clips, sp.language)]}

        inputs = {
            "takes": [m["cache_key"] for m in members], "judge": sp.judge.describe(),
            "language": sp.language, "code": CODE_VERSION,
        }  # fmt: skip
        window = run_step(storage, "speech_judge", inputs=inputs, compute=compute).record
        for i, cer in zip(group, window["cer"], strict=True):
            verdicts[i] = Verdict(float(cer), len(group) == 1, str(window["cache_key"]))
    return verdicts


def speak_line(
    storage: StorageResource, speaking: Speaking, line: dict[str, Any], take: StepResult, verdict: Verdict
) -> StepResult:
    """A line's final record (cached): its take with the judge's verdict, repaired once if unintelligible."""
    sp = speaking
    spoken = take.record

    def compute(step: Step) -> dict[str, Any]:
        base = {"id": line["id"]}
        if not spoken.get("uri"):
            return {**base, "status": "failed", "detail": spoken.get("detail", ""), "uri": None}
        fit = {k: v for k, v in spoken.items() if k not in TAKE_ONLY}
        try:
            audio, checked = check_line(
                line, _read_take(step, spoken), fit, verdict.cer, alone=verdict.alone,
                language=sp.language, source_language=sp.source_language, tts=sp.engine,
                translator_res=sp.translator, judge=sp.judge, voice_match=sp.voice_match == "on",
                max_line_cer=sp.max_line_cer,
            )  # fmt: skip
        except DubbingError as err:  # one line never fails the partition: it becomes silence
            sp.warn(f"line {line['id']}: {err.one_line()}")
            return {**base, "status": "failed", "detail": err.one_line(), "uri": None}
        if not checked.get("repaired"):
            return {**base, **checked, "uri": spoken["uri"]}  # the take itself is the line
        wav = write_wav(step.tmp / "line.wav", audio, checked["sample_rate"])
        return {**base, **checked, "uri": step.put("line.wav", wav)}

    inputs = {
        "take": spoken["cache_key"], "judged": verdict.judged, "judge": sp.judge.describe(),
        "max_line_cer": sp.max_line_cer, "code": CODE_VERSION,
    }  # fmt: skip
    return run_step(storage, "speech_line", inputs=inputs, compute=compute)


def mark_line(storage: StorageResource, speaking: Speaking, spoken: StepResult) -> StepResult:
    """A spoken line with the audio watermark (cached ``speech_mark``); unmarked when the mark is
    off or the line has no audio. The unmarked audio stays stored (``unmarked_uri``)."""
    marker, rec = speaking.marker, spoken.record
    if marker is None or not rec.get("uri"):
        return spoken

    def compute(step: Step) -> dict[str, Any]:
        rate = int(rec["sample_rate"])
        wav = write_wav(step.tmp / "marked.wav", marker.embed(_read_take(step, rec), rate), rate)
        fields = {k: v for k, v in rec.items() if k != "cache_key"}
        marked = {"uri": step.put("marked.wav", wav), "unmarked_uri": rec["uri"], "watermark": marker.name}
        return {**fields, **marked}

    inputs = {"line": rec["cache_key"], "watermark": marker.describe(), "code": CODE_VERSION}
    return run_step(storage, "speech_mark", inputs=inputs, compute=compute)


@dg.op(tags={"stage": "dubbed_speech"})
def assemble_speech(
    context: dg.OpExecutionContext,
    quality: QualityResource,
    source_video: dict[str, Any],
    speech_segments: dict[str, Any],
    speakers: dict[str, Any],
    translation: dict[str, Any],
    batches: list[dict[str, Any]],
) -> dg.Output[dict[str, Any]]:
    timer = Timer()
    failure_limit = quality.thresholds().max_failed_share
    lines = speech_lines(translation, batches)
    with classified("dubbed_speech"):
        require_enough_spoken([r["status"] for r in lines], failure_limit)
    provider = batches[0]["provider"] if batches else {}
    key = cache_key("dubbed_speech", lines=[r.get("cache_key") for r in lines], code=CODE_VERSION)
    record = {
        "cache_key": key,
        "target_language": translation["target_language"],
        "provider": provider,
        "watermark": watermarked(batches),  # what marked the lines, and the seconds it took
        "lines": lines,
        "spoken": sorted(str(i) for b in batches for i in b.get("spoken", [])),  # synthesised by this run
        "refitted": sorted(str(i) for b in batches for i in b.get("refitted", [])),  # fitted by this run
    }
    upstream = {"source_video": source_video, "speech_segments": speech_segments, "speakers": speakers}
    return stage_output(
        record,
        upstream={**upstream, "translation": translation},
        code_version=stage_code("dubbed_speech", quality.settings()),
        seconds=sum(float(b["seconds"]) for b in batches) + timer.seconds,
        cached=all(b["cached"] for b in batches),
        media_seconds=sum(r["end"] - r["start"] for r in lines) or 1.0,
        provider=provider,
        counts=speech_counts(lines, batches),
    )


def watermarked(batches: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The watermarker of the batches, with the seconds marking took this run (cached marks: none)."""
    marks = [b["watermark"] for b in batches if b.get("watermark")]
    return {**marks[0], "seconds": round(sum(float(m["seconds"]) for m in marks), 3)} if marks else None


NOT_SPOKEN = {"status": "failed", "detail": "not synthesised", "uri": None}


def speech_lines(translation: dict[str, Any], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every translated line's spoken record, in the translation's order (a skipped line: the original)."""
    by_id = {r["id"]: r for b in batches for r in b["lines"]}
    lines = []
    for line in translation["lines"]:
        rec = original_speech(line) if line.get("skip") else by_id.get(line["id"], NOT_SPOKEN)
        slot = {k: line[k] for k in ("start", "end", *SOURCE_SLOT_KEYS) if k in line}
        lines.append({**rec, "id": line["id"], "speaker": line["speaker"], **slot})
    return lines


def original_speech(line: dict[str, Any]) -> dict[str, Any]:
    """A skipped line's record: no dubbed audio; the mix keeps the source speech in its slot."""
    start, end = source_slot(line)
    return {
        "status": ORIGINAL, "uri": None, "target_text": line["target_text"],
        "dub_start": start, "dub_end": end, "rate": 1.0, "stretch": 1.0,
    }  # fmt: skip


def speech_counts(lines: list[dict[str, Any]], batches: list[dict[str, Any]]) -> dict[str, int | float]:
    """Materialisation counts: lines per status, cache hits, repairs, mean round-trip CER."""
    counts: dict[str, int | float] = {"lines": len(lines), "batches": len(batches)}
    for status in ("fits", "borrowed", "rate", "stretch", "trimmed", "failed", "original"):
        counts[f"status_{status}"] = sum(1 for r in lines if r["status"] == status)
    counts["cache_hits"] = sum(int(b["hits"]) for b in batches)
    counts["takes_cached"] = sum(int(b.get("takes_cached", 0)) for b in batches)
    counts["repaired"] = sum(1 for r in lines if r.get("repaired"))
    counts["syntheses"] = sum(int(r.get("syntheses", 0)) for r in lines)
    cers = [float(r["cer"]) for r in lines if r.get("cer") is not None]
    counts["mean_round_trip_cer"] = round(sum(cers) / len(cers), 4) if cers else 0.0
    return counts


def build_dubbed_speech(settings: Settings) -> dg.AssetsDefinition:
    """The ``dubbed_speech`` graph asset; its batch steps go to the GPU pool where ``settings`` say so."""
    batch_op = model_op(synthesize_batch, settings, stage="dubbed_speech", placement="speech")

    @dg.graph_asset(
        name="dubbed_speech",
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
        batches = jobs.map(batch_op).collect()
        return assemble_speech(source_video, speech_segments, speakers, translation, batches)

    return dubbed_speech


dubbed_speech = build_dubbed_speech(Settings())  # the embedded default; build_definitions builds its own
