"""``dubbed_speech`` (video × language): every line spoken again, fitted to its slot (a per-batch fan-out).

A batch of lines is four kinds of cached step: a line's *take* (spoken once at the rate its
predicted duration needs, fitted; keyed by its text, voice, engine, fit geometry, settings and
code version), the judge's *window* (up to ~28 s of takes heard in one Whisper pass; keyed by its
takes), the line's *record* (the verdict, and the one repair of an unintelligible line; keyed
by its take and window) and, with ``DUBBING_WATERMARK=on``, its *mark* (the line with Perth's
audio watermark, keyed by the record and the watermarker). A re-run or a resumed run redoes only
what is not stored yet.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import soundfile as sf

from dubbing_pipeline.common.audio import write_wav
from dubbing_pipeline.common.hashing import cache_key
from dubbing_pipeline.dubbed_speech.engine import TTSEngine
from dubbing_pipeline.dubbed_speech.isochrony import ORIGINAL, SILENT
from dubbing_pipeline.dubbed_speech.records import (
    DubbedLine,
    DubbedSpeechRecord,
    JudgeRecord,
    PlannedLine,
    ProfilesRecord,
    SpeechBatch,
    SpeechJob,
    SpokenLineRecord,
    TakeRecord,
    VoiceProfile,
    VoiceRecord,
)
from dubbing_pipeline.dubbed_speech.speak import (
    Judge,
    LineLike,
    Synth,
    Translators,
    check_line,
    judge_groups,
    judge_together,
    plan_slots,
    profile_spans,
    require_enough_spoken,
    synthesize_line,
)
from dubbing_pipeline.dubbed_speech.voice import median_f0, voice_for_speaker
from dubbing_pipeline.errors import DubbingError
from dubbing_pipeline.freshness import recipe, stage_code
from dubbing_pipeline.orchestration.hooks import pause_point
from dubbing_pipeline.orchestration.kit import (
    Step,
    StepResult,
    Timer,
    classified,
    model_op,
    run_step,
    stage_asset,
    stage_output,
)
from dubbing_pipeline.orchestration.resources import (
    ASRResource,
    QualityResource,
    SafetyResource,
    StorageResource,
    TranslatorResource,
    TTSResource,
)
from dubbing_pipeline.provenance.watermark import PerthWatermarker
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.review.edits import SOURCE_SLOT_KEYS, source_slot
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.records import SourceVideoRecord
from dubbing_pipeline.speakers.records import SpeakerSegment, SpeakersRecord
from dubbing_pipeline.speech_segments.records import SpeechSegmentsRecord
from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono
from dubbing_pipeline.translation.records import TranslatedLine, TranslationRecord

CODE_VERSION = recipe("dubbed_speech").code[0]
BATCH = 16  # lines per fan-out step (production batches ~32 per GPU step)
PROFILE_SECONDS = 20.0  # seconds of each speaker's speech used to measure their pitch


def speaker_profiles(
    storage_res: StorageResource, speech_segments: SpeechSegmentsRecord, speakers: SpeakersRecord
) -> dict[str, VoiceProfile]:
    """Median F0 and a voice family (male/female) per speaker, measured on the vocals stem."""

    def compute(step: Step) -> JsonObject:
        with step.local(speech_segments.asr_audio_uri) as path:
            profiles = {s.id: measure_profile(path, speakers.segments, s.id) for s in speakers.speakers}
        return {"profiles": profiles}

    inputs = {"upstream": [speech_segments.cache_key, speakers.cache_key], "code": CODE_VERSION}
    result = run_step(storage_res, "profiles", inputs=inputs, compute=compute, record=ProfilesRecord)
    return result.record.profiles


def measure_profile(path: Path, segments: Sequence[SpeakerSegment], speaker: str) -> VoiceProfile:
    """A speaker's median F0 over their longest segments, and the engine voice it picks."""
    parts = [read_wav_16k_mono(path, s, e) for s, e in profile_spans(segments, speaker, PROFILE_SECONDS)]
    f0 = median_f0(np.concatenate(parts), 16000) if parts else None
    return VoiceProfile(f0=None if f0 is None else round(float(f0), 2), voice=voice_for_speaker(f0))


@dg.op(out=dg.DynamicOut(SpeechJob), tags={"stage": "dubbed_speech"})
def plan_speech(
    storage: StorageResource,
    source_video: SourceVideoRecord,
    speech_segments: SpeechSegmentsRecord,
    speakers: SpeakersRecord,
    translation: TranslationRecord,
) -> Iterator[dg.DynamicOutput[SpeechJob]]:
    """One job per batch of lines, each line with its slot and the next line's start."""
    with classified("dubbed_speech"):
        profiles = speaker_profiles(storage, speech_segments, speakers)
    planned = planned_lines(translation, source_video.duration, profiles)
    for b in range(0, len(planned), BATCH):
        job = SpeechJob(
            lines=planned[b : b + BATCH],
            source_language=translation.source_language,
            target_language=translation.target_language,
        )
        yield dg.DynamicOutput(job, mapping_key=f"b{b // BATCH:04d}")


def planned_lines(
    translation: TranslationRecord, end_of_video: float, profiles: Mapping[str, VoiceProfile]
) -> list[PlannedLine]:
    """The lines to speak, by start, each with its slot and its speaker's voice (a person's voice
    choice, from the edits, over the measured one); a skipped line keeps the original speech."""
    lines = sorted((ln.model_dump() for ln in translation.lines), key=lambda ln: (ln["start"], ln["id"]))
    voices = translation.voices  # the person's voice choices (edits)
    planned = []
    for line in plan_slots(lines, end_of_video):
        profile = profiles.get(line["speaker"], VoiceProfile())
        if line["speaker"] in voices:
            profile = profile.model_copy(update={"voice": voices[line["speaker"]]})
        if not line.get("skip"):
            planned.append(PlannedLine.model_validate({**line, "profile": profile}))
    return planned


@dataclass(frozen=True)
class Speaking:
    """What every line of a batch is spoken with: the engine, the judge, the translator for repairs."""

    engine: TTSEngine
    judge: Judge
    translator: Translators
    language: str
    source_language: str
    voice_match: str
    max_line_cer: float
    warn: Callable[[str], object]
    marker: PerthWatermarker | None = None  # the watermarker (``None``: DUBBING_WATERMARK=off)


def synthesize_batch(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    tts: TTSResource,
    translator: TranslatorResource,
    asr: ASRResource,
    quality: QualityResource,
    safety: SafetyResource,
    job: SpeechJob,
) -> SpeechBatch:
    """A batch of lines in four cached steps: every line spoken and fitted (``speech_take``, spread
    over the engine's workers), the takes heard by the judge a Whisper window at a time
    (``speech_judge``), each line's verdict and repair (``speech_line``), then its watermark
    (``speech_mark``)."""
    timer = Timer()
    with classified("dubbed_speech"):
        language = job.target_language
        speaking = Speaking(
            engine=tts.get(language), judge=asr.get(), translator=translator, language=language,
            source_language=job.source_language, voice_match=tts.settings().voice_match,
            max_line_cer=quality.thresholds().max_line_cer, warn=context.log.warning,
            marker=safety.watermarker(),
        )  # fmt: skip
        takes = take_lines(storage, speaking, job.lines)
        heard = hear_takes(storage, speaking, takes)
        results, marking = [], 0.0
        for line, take, verdict in zip(job.lines, takes, heard, strict=True):
            spoken = speak_line(storage, speaking, line, take, verdict)
            results.append(mark_line(storage, speaking, spoken))
            marking += results[-1].seconds if results[-1] is not spoken else 0.0
            pause_point("speech_line")  # test hook, off by default (dubbing_pipeline/orchestration/hooks.py)
    return batch_record(job.lines, takes, results, speaking, marking, timer)


def batch_record(
    lines: Sequence[PlannedLine],
    takes: Sequence[StepResult[TakeRecord]],
    results: Sequence[StepResult[SpokenLineRecord]],
    speaking: Speaking,
    marking: float,
    timer: Timer,
) -> SpeechBatch:
    """What a batch hands the assembling op: its lines' records, how many were cache hits, which
    lines this run spoke (a take fitted again from stored voices is not) or fitted again."""
    hits = sum(1 for r in results if r.cached)
    marker = speaking.marker
    return SpeechBatch(
        index=lines[0].id if lines else "",
        lines=[r.record for r in results],
        cached=hits == len(lines),
        hits=hits,
        takes_cached=sum(1 for t in takes if t.cached),
        spoken=[
            ln.id
            for ln, t in zip(lines, takes, strict=True)
            if not t.cached and (t.record.syntheses or 0) > 0
        ],
        refitted=[ln.id for ln, t in zip(lines, takes, strict=True) if not t.cached],
        seconds=timer.seconds,
        provider=speaking.engine.describe(),
        watermark=None if marker is None else {**marker.describe(), "seconds": marking},
    )


@dataclass(frozen=True)
class Verdict:
    """What the judge heard of a take in a shared window: its CER (``None``: no audio to hear),
    whether the take had the window to itself, and the window step's key."""

    cer: float | None
    alone: bool
    judged: str | None


def take_lines(
    storage: StorageResource, speaking: Speaking, lines: Sequence[LineLike]
) -> list[StepResult[TakeRecord]]:
    """Every line spoken and fitted, each a cached ``speech_take``; the engine's workers speak
    several at once (each line's bytes do not depend on which worker spoke it)."""
    workers = max(1, min(int(speaking.engine.workers), len(lines)))
    if workers == 1:
        return [take_line(storage, speaking, line) for line in lines]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="speech") as pool:
        return list(pool.map(lambda line: take_line(storage, speaking, line), lines))


def silent(speaking: Speaking, line_id: str, err: DubbingError) -> str:
    """Why a line is silent, logged: one line never fails the partition, it becomes silence."""
    speaking.warn(f"line {line_id}: {err.one_line()}")
    return err.one_line()


def take_line(storage: StorageResource, speaking: Speaking, line: LineLike) -> StepResult[TakeRecord]:
    """One line spoken and fitted to its slot (cached); a line that cannot be spoken has no audio."""
    sp, planned = speaking, PlannedLine.of(line)

    def compute(step: Step) -> JsonObject:
        if not planned.target_text.strip():
            return {"status": SILENT, "detail": "no translation", "uri": None, "seconds": 0.0}
        try:
            audio, fit = synthesize_line(
                planned, sp.language, sp.source_language, sp.engine, sp.translator, sp.voice_match == "on",
                synth=voice_cache(storage, sp, planned.profile.voice),
            )  # fmt: skip
        except DubbingError as err:
            return {"status": SILENT, "detail": silent(sp, planned.id, err), "uri": None, "seconds": 0.0}
        wav = write_wav(step.tmp / "take.wav", audio, fit.sample_rate)
        return {**fit.model_dump(), "seconds": len(audio) / fit.sample_rate, "uri": step.put("take.wav", wav)}

    return run_step(
        storage, "speech_take", inputs=take_inputs(sp, planned), compute=compute, record=TakeRecord
    )


def take_inputs(speaking: Speaking, line: PlannedLine) -> JsonObject:
    """What a line's take depends on: its texts, voice, engine, slot geometry, settings and code."""
    sp, profile = speaking, line.profile
    return {
        "text": line.target_text, "source_text": line.source_text, "condensed": line.condensed_text,
        "language": sp.language, "provider": sp.engine.describe(),
        "voice": sp.engine.voice_key(profile.voice), "f0": profile.f0, "voice_match": sp.voice_match,
        "slot": [line.start, line.end, line.next_start, line.room_before],
        **({"rate_slot": list(line.rate_slot)} if line.rate_slot else {}),  # a moved line (edits)
        "code": CODE_VERSION,
        **({"edited": True} if line.edited else {}),  # a person's text is never re-translated
    }  # fmt: skip


def voice_cache(storage: StorageResource, speaking: Speaking, voice: str | None) -> Synth:
    """A ``speak.Synth`` whose every synthesis is a cached ``speech_voice`` step keyed by what
    the voice depends on (text, language, engine, voice, rate) and nothing of the slot: a line
    whose slot moves is fitted again from the stored voice. The audio always comes back from the
    store (float WAV, exact), so a first run and a re-run fit the same samples."""
    sp = speaking

    def synth(words: str, rate: float) -> tuple[np.ndarray, bool]:
        def compute(step: Step) -> JsonObject:
            audio = np.asarray(
                sp.engine.synthesize(words, sp.language, voice=voice, rate=rate), dtype=np.float32
            )
            wav = write_wav(step.tmp / "voice.wav", audio, int(sp.engine.sample_rate))
            return {"uri": step.put("voice.wav", wav), "samples": int(audio.size)}

        inputs = {
            "text": words, "language": sp.language, "provider": sp.engine.describe(),
            "voice": sp.engine.voice_key(voice), "rate": round(float(rate), 6), "code": CODE_VERSION,
        }  # fmt: skip
        result = run_step(storage, "speech_voice", inputs=inputs, compute=compute, record=VoiceRecord)
        store = storage.get()
        with store.open_local(store.key_of(result.record.uri), storage.work_dir or None) as path:
            return _float_wav(Path(path)), not result.cached

    return synth


def _float_wav(path: Path) -> np.ndarray:
    audio, _ = sf.read(str(path), dtype="float32")
    return np.asarray(audio, dtype=np.float32).reshape(-1)


def _read_audio(step: Step, uri: str) -> np.ndarray:
    with step.local(uri) as path:
        return _float_wav(path)


def hear_takes(
    storage: StorageResource, speaking: Speaking, takes: Sequence[StepResult[TakeRecord]]
) -> list[Verdict]:
    """The judge's round-trip CER of every take, several takes per Whisper window (``judge_groups``),
    each window a cached ``speech_judge`` step keyed by its takes: the windows of a batch are fixed
    by its lines, so a resumed or re-run batch hears exactly the same windows."""
    verdicts = [Verdict(None, True, None) for _ in takes]
    durations = [t.record.seconds if t.record.uri else 0.0 for t in takes]
    for group in judge_groups(durations):
        window = judge_window(storage, speaking, [takes[i].record for i in group])
        for i, cer in zip(group, window.cer, strict=True):
            verdicts[i] = Verdict(float(cer), len(group) == 1, window.cache_key)
    return verdicts


def judge_window(storage: StorageResource, speaking: Speaking, members: Sequence[TakeRecord]) -> JudgeRecord:
    """The round-trip CER of the takes of one Whisper window (cached ``speech_judge``)."""
    sp = speaking

    def compute(step: Step) -> JsonObject:
        clips = [
            (_read_audio(step, str(m.uri)), int(m.sample_rate or 0), str(m.target_text)) for m in members
        ]
        return {"cer": [round(c, 4) for c in judge_together(sp.judge, clips, sp.language)]}

    inputs = {
        "takes": [m.cache_key for m in members], "judge": sp.judge.describe(),
        "language": sp.language, "code": CODE_VERSION,
    }  # fmt: skip
    return run_step(storage, "speech_judge", inputs=inputs, compute=compute, record=JudgeRecord).record


def speak_line(
    storage: StorageResource,
    speaking: Speaking,
    line: LineLike,
    take: StepResult[TakeRecord],
    verdict: Verdict,
) -> StepResult[SpokenLineRecord]:
    """A line's final record (cached): its take with the judge's verdict, repaired once if unintelligible."""
    sp, planned, spoken = speaking, PlannedLine.of(line), take.record

    def compute(step: Step) -> JsonObject:
        fit = spoken.fit()
        if fit is None or spoken.uri is None:
            return {"id": planned.id, "status": SILENT, "detail": spoken.detail or "", "uri": None}
        try:
            audio, checked = check_line(
                planned, _read_audio(step, spoken.uri), fit, verdict.cer, alone=verdict.alone,
                language=sp.language, source_language=sp.source_language, tts=sp.engine,
                translator_res=sp.translator, judge=sp.judge, voice_match=sp.voice_match == "on",
                max_line_cer=sp.max_line_cer,
            )  # fmt: skip
        except DubbingError as err:
            return {"id": planned.id, "status": SILENT, "detail": silent(sp, planned.id, err), "uri": None}
        if not checked.repaired:
            return {
                "id": planned.id,
                **checked.model_dump(),
                "uri": spoken.uri,
            }  # the take itself is the line
        wav = write_wav(step.tmp / "line.wav", audio, checked.sample_rate)
        return {"id": planned.id, **checked.model_dump(), "uri": step.put("line.wav", wav)}

    inputs = {
        "take": spoken.cache_key, "judged": verdict.judged, "judge": sp.judge.describe(),
        "max_line_cer": sp.max_line_cer, "code": CODE_VERSION,
    }  # fmt: skip
    return run_step(storage, "speech_line", inputs=inputs, compute=compute, record=SpokenLineRecord)


STEP_FIELDS = {"cache_key", "artifacts", "schema_version"}
"""A step record's own fields, which the kit writes: not a line's sound."""


def mark_line(
    storage: StorageResource, speaking: Speaking, spoken: StepResult[SpokenLineRecord]
) -> StepResult[SpokenLineRecord]:
    """A spoken line with the audio watermark (cached ``speech_mark``); unmarked when the mark is
    off or the line has no audio. The unmarked audio stays stored (``unmarked_uri``)."""
    marker, rec = speaking.marker, spoken.record
    if marker is None or rec.uri is None or rec.sample_rate is None:
        return spoken
    uri, rate = rec.uri, rec.sample_rate

    def compute(step: Step) -> JsonObject:
        wav = write_wav(step.tmp / "marked.wav", marker.embed(_read_audio(step, uri), rate), rate)
        marked = {"uri": step.put("marked.wav", wav), "unmarked_uri": uri, "watermark": marker.name}
        return {**rec.model_dump(exclude=STEP_FIELDS), **marked}

    inputs = {"line": rec.cache_key, "watermark": marker.describe(), "code": CODE_VERSION}
    return run_step(storage, "speech_mark", inputs=inputs, compute=compute, record=SpokenLineRecord)


@dg.op(tags={"stage": "dubbed_speech"})
def assemble_speech(
    quality: QualityResource,
    source_video: SourceVideoRecord,
    speech_segments: SpeechSegmentsRecord,
    speakers: SpeakersRecord,
    translation: TranslationRecord,
    batches: list[SpeechBatch],
) -> dg.Output[DubbedSpeechRecord]:
    """The stage's record: every translated line's dubbed speech, failing the partition where too
    many lines are silent."""
    timer = Timer()
    failure_limit = quality.thresholds().max_failed_share
    lines = speech_lines(translation, batches)
    with classified("dubbed_speech"):
        require_enough_spoken([r.status for r in lines], failure_limit)
    record = speech_record(translation, batches, lines)
    return stage_output(
        record,
        upstream={
            "source_video": source_video,
            "speech_segments": speech_segments,
            "speakers": speakers,
            "translation": translation,
        },
        code_version=stage_code("dubbed_speech", quality.settings()),
        seconds=sum(b.seconds for b in batches) + timer.seconds,
        cached=all(b.cached for b in batches),
        media_seconds=sum(r.end - r.start for r in lines) or 1.0,
        provider=record.provider,
        counts=speech_counts(lines, batches),
    )


def speech_record(
    translation: TranslationRecord, batches: Sequence[SpeechBatch], lines: list[DubbedLine]
) -> DubbedSpeechRecord:
    """The stage's record of its lines, keyed by every line's last step."""
    return DubbedSpeechRecord(
        schema_version=DubbedSpeechRecord.SCHEMA_VERSION,
        cache_key=cache_key("dubbed_speech", lines=[r.cache_key for r in lines], code=CODE_VERSION),
        target_language=translation.target_language,
        provider=batches[0].provider if batches else {},
        watermark=watermarked(batches),  # what marked the lines, and the seconds it took
        lines=lines,
        spoken=sorted(i for b in batches for i in b.spoken),  # synthesised by this run
        refitted=sorted(i for b in batches for i in b.refitted),  # fitted by this run
    )


def watermarked(batches: Sequence[SpeechBatch]) -> JsonObject | None:
    """The watermarker of the batches, with the seconds marking took this run (cached marks: none)."""
    marks = [b.watermark for b in batches if b.watermark]
    return {**marks[0], "seconds": round(sum(float(m["seconds"]) for m in marks), 3)} if marks else None


NOT_SPOKEN: JsonObject = {"status": SILENT, "detail": "not synthesised", "uri": None}


def speech_lines(translation: TranslationRecord, batches: Sequence[SpeechBatch]) -> list[DubbedLine]:
    """Every translated line's spoken record, in the translation's order (a skipped line: the original)."""
    by_id = {r.id: r.model_dump(exclude={"schema_version"}) for b in batches for r in b.lines}
    return [
        dubbed_line(line, original_speech(line) if line.skip else by_id.get(line.id, NOT_SPOKEN))
        for line in translation.lines
    ]


def dubbed_line(line: TranslatedLine, sound: Mapping[str, Any]) -> DubbedLine:
    """A translated line's ``sound`` (its last step's record) in its slot."""
    slot = {k: line[k] for k in ("start", "end", *SOURCE_SLOT_KEYS) if k in line}
    return DubbedLine.model_validate({**sound, "id": line.id, "speaker": line.speaker, **slot})


def original_speech(line: TranslatedLine) -> JsonObject:
    """A skipped line's record: no dubbed audio; the mix keeps the source speech in its slot."""
    start, end = source_slot(line.model_dump())
    return {
        "status": ORIGINAL, "uri": None, "target_text": line.target_text,
        "dub_start": start, "dub_end": end, "rate": 1.0, "stretch": 1.0,
    }  # fmt: skip


def speech_counts(lines: Sequence[DubbedLine], batches: Sequence[SpeechBatch]) -> dict[str, int | float]:
    """Materialisation counts: lines per status, cache hits, repairs, mean round-trip CER."""
    counts: dict[str, int | float] = {"lines": len(lines), "batches": len(batches)}
    for status in ("fits", "borrowed", "rate", "stretch", "trimmed", SILENT, ORIGINAL):
        counts[f"status_{status}"] = sum(1 for r in lines if r.status == status)
    counts["cache_hits"] = sum(b.hits for b in batches)
    counts["takes_cached"] = sum(b.takes_cached for b in batches)
    counts["repaired"] = sum(1 for r in lines if r.repaired)
    counts["syntheses"] = sum(r.syntheses or 0 for r in lines)
    cers = [r.cer for r in lines if r.cer is not None]
    counts["mean_round_trip_cer"] = round(sum(cers) / len(cers), 4) if cers else 0.0
    return counts


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``dubbed_speech`` graph asset; its batch steps go to the GPU pool where ``settings`` say so."""
    batch_op = model_op(synthesize_batch, settings, stage="dubbed_speech", placement="speech")

    def dubbed_speech(
        source_video: SourceVideoRecord,
        speech_segments: SpeechSegmentsRecord,
        speakers: SpeakersRecord,
        translation: TranslationRecord,
    ) -> Any:
        jobs = plan_speech(source_video, speech_segments, speakers, translation)
        batches = jobs.map(batch_op).collect()
        return assemble_speech(source_video, speech_segments, speakers, translation, batches)

    return stage_asset(
        dubbed_speech,
        graph=True,
        kinds={"tts"},
        description="Each translated line spoken in a voice matched to its speaker and fitted to its slot.",
    )


dubbed_speech = build(Settings())  # the embedded default; build_definitions builds its own
