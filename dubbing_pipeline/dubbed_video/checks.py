"""The dub's quality checks: measured once as the cached ``quality`` step (report.json's ``quality``
section), judged (a failed ERROR check blocks the dub unless the run accepts it) and reported to
Dagster as one asset check result each."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import soundfile as sf

from dubbing_pipeline.audio_stems.records import AudioStemsRecord
from dubbing_pipeline.common.media import extract_audio
from dubbing_pipeline.dub_mix.records import DubMixRecord
from dubbing_pipeline.dubbed_speech.records import DubbedSpeechRecord
from dubbing_pipeline.dubbed_video.core import probe_durations
from dubbing_pipeline.dubbed_video.mux import CODE_VERSION
from dubbing_pipeline.dubbed_video.records import Parents, QualityRecord
from dubbing_pipeline.dubbed_video.report import QualitySection, ReportSegment
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.orchestration.cache import scratch
from dubbing_pipeline.orchestration.kit import Step, run_step
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.provenance.perth_model import MARK_RATE
from dubbing_pipeline.provenance.watermark import PerthWatermarker, read_back, speech_spans
from dubbing_pipeline.quality.records import Checks, Thresholds, WatermarkOff, WatermarkRead
from dubbing_pipeline.quality.scorecard import (
    background_correlation,
    line_scores,
    markdown_table,
    quiet_mask,
    scorecard,
    toxicity_check,
)
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.source_video.records import SourceVideoRecord
from dubbing_pipeline.stages import ACCEPT_TAG

QUALITY_VERSION = recipe("dubbed_video").code[1]  # the quality step's own version (2: ``source_marked``)
CHECKS = ("intelligibility", "timing", "background", "failed_lines", "av_duration", "watermark", "toxicity")
ERROR_CHECKS = ("failed_lines", "watermark")  # the rest warn
CHECK_TEXT = {
    "intelligibility": "the dubbed speech heard back by Whisper: character-weighted mean CER",
    "timing": "every line starts on time, fits its slot and is not sped up beyond the limit",
    "background": "the background where nobody speaks is the source's (correlation)",
    "failed_lines": "the share of lines left silent",
    "av_duration": "audio and video as long as the source, within a frame",
    "watermark": "the audio watermark read back from the MP4's AAC track in the dubbed lines, and "
    "not found in the source recording at the same times",
    "toxicity": "no translation brings in offensive terms its source line lacks (term lists)",
}


@dataclass(frozen=True)
class Measured:
    """What the quality step measures: the finished video, the audio it was mixed from, the lines."""

    video_uri: str
    source: SourceVideoRecord
    stems: AudioStemsRecord
    speech: DubbedSpeechRecord
    mix: DubMixRecord
    segments: list[JsonObject]  # report.json's
    screen: JsonObject | None  # the translation's toxicity screen

    @classmethod
    def of(cls, up: Parents, segments: Sequence[ReportSegment], video_uri: str) -> Measured:
        """The dub of ``up`` whose lines are ``segments`` and whose finished video is ``video_uri``."""
        screen = up.translation.toxicity
        return cls(
            video_uri=video_uri,
            source=up.source_video,
            stems=up.audio_stems,
            speech=up.dubbed_speech,
            mix=up.dub_mix,
            segments=[s.to_json() for s in segments],
            screen=screen.to_json() if screen is not None else None,
        )


def quality_step(
    storage_res: StorageResource,
    thresholds: Thresholds,
    dub: Measured,
    marker: PerthWatermarker | None = None,
) -> QualityRecord:
    """The dub's quality, a cached ``quality`` step keyed by what it measures: an unchanged re-run
    reads it back instead of decoding the MP4 and loading the watermark decoder again."""
    inputs = {
        "video": dub.video_uri, "mix": dub.mix.cache_key, "stems": dub.stems.cache_key,
        "speech": dub.speech.cache_key, "source": dub.source.cache_key, "segments": dub.segments,
        "toxicity": dub.screen, "thresholds": thresholds.to_dict(),
        "watermark": marker.describe() if marker is not None else None, "code": CODE_VERSION,
        "checks": QUALITY_VERSION,
    }  # fmt: skip

    def compute(step: Step) -> JsonObject:  # per-line scores, background, A/V duration, watermark
        rows = line_scores(
            dub.segments, {line.id: line.cer for line in dub.speech.lines}, dub.source.duration, thresholds
        )
        card = scorecard(
            rows,
            background_corr=measure_background(step, dub),
            av_difference=av_difference(step, dub),
            frame_seconds=1.0 / dub.source.info.fps if dub.source.info.fps else 0.04,
            t=thresholds,
        )
        checks = Checks.of(
            card,
            watermark=watermark_check(storage_res, marker, dub),
            toxicity=toxicity_check(dub.segments, dub.screen),
        )
        return {"thresholds": thresholds, "checks": checks, "segments": rows}

    return run_step(storage_res, "quality", inputs=inputs, compute=compute, record=QualityRecord).record


def measure_background(step: Step, dub: Measured) -> float | None:
    """The mix's correlation with the background stem where no dubbed line sounds."""
    with step.local(dub.mix.mix_uri) as path:
        mixed, sr = sf.read(str(path), dtype="float32", always_2d=True)
    with step.local(dub.stems.background_uri) as path:
        background, _ = sf.read(str(path), dtype="float32", always_2d=True)
    quiet = quiet_mask(dub.segments, sr, min(len(mixed), len(background)))
    return background_correlation(mixed, background, quiet, sr)


def av_difference(step: Step, dub: Measured) -> float:
    """How far the finished video's video and audio streams are from the source's duration."""
    with step.local(dub.video_uri) as path:
        durations = probe_durations(path)
    duration = float(dub.source.duration)
    video_d = durations.get("video") or duration
    audio_d = durations.get("audio") or 0.0
    return max(abs(video_d - duration), abs(audio_d - video_d))


def watermark_check(
    storage_res: StorageResource, marker: PerthWatermarker | None, dub: Measured
) -> WatermarkOff | WatermarkRead:
    """The audio watermark read back from the finished MP4's AAC track (``watermark.read_back``)."""
    if marker is None:
        return WatermarkOff(
            passed=True, enabled=False, detail="DUBBING_WATERMARK=off: the speech is not marked"
        )
    storage = storage_res.get()
    with scratch("watermark", storage_res.work_dir or None) as tmp:
        with storage.open_local(storage.key_of(dub.video_uri), tmp) as path:
            extract_audio(path, tmp / "dub.wav", sample_rate=MARK_RATE, channels=1)
        with storage.open_local(storage.key_of(dub.source.audio_uri), tmp) as path:
            return read_back(marker, tmp / "dub.wav", path, speech_spans(dub.segments))


def accepted_checks(tags: Mapping[str, str]) -> list[str]:
    """The blocking checks the run's ``dubbing/accept`` tag accepts (unknown names are ignored)."""
    return sorted({c.strip() for c in tags.get(ACCEPT_TAG, "").split(",")} & set(ERROR_CHECKS))


def verdict(passed: Mapping[str, bool], accepted: Sequence[str]) -> tuple[list[str], list[str]]:
    """The blocking (ERROR) checks that failed: those ``accepted``, and those that block the dub."""
    failed = [name for name in ERROR_CHECKS if not passed[name]]
    return [name for name in failed if name in accepted], [name for name in failed if name not in accepted]


def judged(measured: QualityRecord, accepted: Sequence[str]) -> QualitySection:
    """The quality section of the report: the measures, and what the failed blocking checks do."""
    passed = {name: check.passed for name, check in measured.checks.by_name().items()}
    return QualitySection.judged(measured, *verdict(passed, accepted))


def blocking_checks(quality: MutableMapping[str, Any], accepted: Sequence[str]) -> list[str]:
    """:func:`verdict` on a quality section as stored (``checks`` by name, each with ``passed``),
    recording both lists in it; the blocking ones."""
    passed = {name: bool(quality["checks"][name]["passed"]) for name in ERROR_CHECKS}
    quality["accepted"], quality["blocking"] = verdict(passed, accepted)
    return list(quality["blocking"])


def check_results(quality: QualitySection) -> Iterator[dg.AssetCheckResult]:
    """One asset check result per scorecard check; the per-segment table rides on ``timing``."""
    checks = quality.checks.by_name()
    for name in CHECKS:
        result = checks[name].to_json()
        metadata: JsonObject = {
            k: dg.MetadataValue.json(v) if isinstance(v, list) else v
            for k, v in result.items()
            if k != "passed" and v is not None
        }
        if name in ("timing", "intelligibility"):
            metadata["segments"] = dg.MetadataValue.md(markdown_table(quality.segments))
        metadata["thresholds"] = dg.MetadataValue.json(quality.thresholds.to_dict())
        yield dg.AssetCheckResult(
            check_name=name,
            passed=bool(result["passed"]),
            severity=dg.AssetCheckSeverity.ERROR if name in ERROR_CHECKS else dg.AssetCheckSeverity.WARN,
            metadata=metadata,
            description=CHECK_TEXT[name],
        )
