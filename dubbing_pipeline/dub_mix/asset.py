"""``dub_mix`` (video × language): the background stem with every dubbed line placed at its time."""

import dagster as dg
import numpy as np
import soundfile as sf
import soxr

from dubbing_pipeline.audio_stems.records import AudioStemsRecord
from dubbing_pipeline.common.audio import write_wav
from dubbing_pipeline.dub_mix.core import (
    PEAK_CEILING_DBFS,
    Audio,
    PlacedLine,
    default_target_lufs,
    line_gain_db,
    mix_lines,
)
from dubbing_pipeline.dub_mix.loudness import dbfs, integrated_loudness, sample_peak_dbfs
from dubbing_pipeline.dub_mix.records import DubMixRecord
from dubbing_pipeline.dubbed_speech.records import DubbedLine, DubbedSpeechRecord
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.orchestration.kit import (
    Step,
    StepResult,
    classified,
    run_step,
    stage_asset,
    stage_output,
)
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.records import SourceVideoRecord

CODE_VERSION = recipe("dub_mix").code[0]


def mix_dub(
    storage: StorageResource, stems: AudioStemsRecord, speech: DubbedSpeechRecord
) -> StepResult[DubMixRecord]:
    """The background stem with every dubbed line placed at its time, loudness-matched (cached)."""

    def compute(step: Step) -> JsonObject:
        background, sr = read_audio(step, stems.background_uri)
        vocals, _ = read_audio(step, stems.vocals_uri)
        original, _ = read_audio(step, stems.mix_uri)
        placed, gains = place_lines(step, speech.lines, vocals.mean(axis=0), sr)
        out, _bus = mix_lines(background, sr, placed, peak_ceiling_dbfs=PEAK_CEILING_DBFS)
        wav = write_wav(step.tmp / "mix.wav", out.T, sr)
        return {
            "sample_rate": int(sr),
            "frames": int(out.shape[1]),
            "mix_uri": step.put("mix.wav", wav),
            "target_lufs": round(float(default_target_lufs(original, sr)), 2),  # the source's loudness
            "loudness_lufs": round(float(integrated_loudness(out, sr)), 2),
            "peak_dbfs": round(float(sample_peak_dbfs(out)), 2),
            "line_gains_db": gains,
        }

    inputs = {"upstream": [stems.cache_key, speech.cache_key], "code": CODE_VERSION}
    return run_step(storage, "mix", inputs=inputs, compute=compute, record=DubMixRecord)


def read_audio(step: Step, uri: str) -> tuple[Audio, int]:
    """``(channels, frames)`` float32 audio of a stored WAV and its rate."""
    with step.local(uri) as path:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.T, int(sr)


def place_lines(
    step: Step, lines: list[DubbedLine], vocals: Audio, sr: int
) -> tuple[list[PlacedLine], dict[str, float]]:
    """Each spoken line at its dub start, its gain matched to the source speech in its source slot."""
    placed, gains = [], {}
    for line in lines:
        start, end = source_slot(line)  # where the source speaker spoke it (a moved line is elsewhere)
        a, b = int(round(start * sr)), int(round(end * sr))
        if line.status == "original":  # a skipped line (edits): the source speech, as it was
            placed.append(PlacedLine(start=a / sr, audio=vocals[a:b].astype(np.float32), gain_db=0.0))
            gains[line.id] = 0.0
            continue
        if not line.uri or line.dub_start is None:  # not spoken (or, never, not placed)
            continue
        with step.local(line.uri) as path:
            audio, line_sr = sf.read(str(path), dtype="float32")
        if line_sr != sr:
            audio = soxr.resample(audio, line_sr, sr, quality="HQ").astype(np.float32)
        gain = line_gain_db(dbfs(vocals[a:b]), dbfs(audio))
        gains[line.id] = round(float(gain), 3)
        placed.append(PlacedLine(start=line.dub_start, audio=audio, gain_db=gain))
    return placed, gains


def source_slot(line: DubbedLine) -> tuple[float, float]:
    """Where the source speaker says a line (``review.edits.source_slot``, of the typed line)."""
    start = line.start if line.source_start is None else line.source_start
    return start, line.end if line.source_end is None else line.source_end


def mixed(
    storage: StorageResource,
    source_video: SourceVideoRecord,
    audio_stems: AudioStemsRecord,
    dubbed_speech: DubbedSpeechRecord,
) -> dg.Output[DubMixRecord]:
    """The stage's output: the mix step's record, with what every stage reports."""
    with classified("dub_mix"):
        result = mix_dub(storage, audio_stems, dubbed_speech)
    record = result.record
    return stage_output(
        record,
        upstream={"source_video": source_video, "audio_stems": audio_stems, "dubbed_speech": dubbed_speech},
        code_version=storage.code_version("dub_mix"),
        seconds=result.seconds,
        cached=result.cached,
        media_seconds=source_video.duration,
        provider={"name": "mix", "model": "BS.1770 loudness match"},
        counts={"lines": len(record.line_gains_db), "loudness_lufs": record.loudness_lufs},
    )


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``dub_mix`` asset (mixing runs where the run does: ``settings`` place nothing here)."""

    def dub_mix(
        storage: StorageResource,
        source_video: SourceVideoRecord,
        audio_stems: AudioStemsRecord,
        dubbed_speech: DubbedSpeechRecord,
    ) -> dg.Output[DubMixRecord]:
        return mixed(storage, source_video, audio_stems, dubbed_speech)

    return stage_asset(
        dub_mix,
        settings=settings,
        kinds={"numpy"},
        description="Background stem + dubbed lines (gain matched to the source speech, 100 ms fades, "
        "turned down only where the sum would pass -1 dBFS): one line's edit changes only its span.",
    )


dub_mix = build(Settings())  # the embedded default
