"""``dubbed_video`` (video × language): the finished MP4 with soft subtitles, SRT/VTT and report.json.

The recipe: mux the dub (``mux``), measure and judge its quality (``checks``), write its report
and review page (``report``, ``publish``), and report every check to Dagster.
"""

from collections.abc import Iterator

import dagster as dg

from dubbing_pipeline.audio_stems.records import AudioStemsRecord
from dubbing_pipeline.dub_mix.records import DubMixRecord
from dubbing_pipeline.dubbed_speech.records import DubbedSpeechRecord
from dubbing_pipeline.dubbed_video.checks import (
    CHECKS,
    Measured,
    accepted_checks,
    blocking_checks,
    check_results,
    judged,
    quality_step,
)
from dubbing_pipeline.dubbed_video.mux import Marks, mux_dub
from dubbing_pipeline.dubbed_video.publish import publish
from dubbing_pipeline.dubbed_video.records import DubbedVideoRecord, Parents
from dubbing_pipeline.dubbed_video.report import (
    ReportSegment,
    StageTime,
    dub_report,
    report_segments,
    stage_time,
)
from dubbing_pipeline.lip_sync.records import LipSyncRecord
from dubbing_pipeline.orchestration.fresh import BLOCKED
from dubbing_pipeline.orchestration.kit import Timer, classified, stage_asset, stage_output
from dubbing_pipeline.orchestration.partitions import split_video_language
from dubbing_pipeline.orchestration.resources import QualityResource, SafetyResource, StorageResource
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.core import require_video
from dubbing_pipeline.source_video.records import SourceVideoRecord
from dubbing_pipeline.speakers.records import SpeakersRecord
from dubbing_pipeline.stages import FEEDBACK, SOURCE_HALF_TAG, before, scope
from dubbing_pipeline.translation.records import TranslationRecord

__all__ = ["accepted_checks", "blocking_checks", "build", "dubbed_video"]  # the blocking checks: tests

MUX_PROVIDER = {"name": "ffmpeg", "model": "libx264/aac mux"}

Result = Iterator[dg.Output[DubbedVideoRecord] | dg.AssetCheckResult]


def made(
    context: dg.AssetExecutionContext,
    resources: tuple[StorageResource, QualityResource, SafetyResource],
    up: Parents,
) -> Result:
    """The recipe: mux, measure, judge, publish; then the output and one result per check."""
    storage, quality, safety = resources
    timer = Timer()
    video_id, _ = split_video_language(context)
    with classified("dubbed_video"):
        require_video(up.source_video.info)
        segments = report_segments(up.translation, up.dubbed_speech)
        muxed = mux_dub(storage, video_id, up, segments, Marks(safety.label(), safety.signer()))
        here = stage_time(timer.seconds, muxed.cached)
        stages = {**upstream_stages(context, video_id), "dubbed_video": here}
        dub = Measured.of(up, segments, muxed.record.outputs.video)
        measured = quality_step(storage, quality.thresholds(), dub, safety.watermarker())
        verdict = judged(measured, accepted_checks(context.run.tags))
        report = dub_report(video_id, stages, muxed.record, up, segments, verdict)
        pages, read = publish(storage, video_id, report, up.dubbed_speech, muxed.record.video_name)
    record = DubbedVideoRecord.of(muxed.record, pages, verdict.blocking)
    links = {"video": record.outputs.video, "review": record.review_uri}
    yield stage_output(
        record, upstream={**up.named(), **read},
        code_version=storage.code_version("dubbed_video") + (BLOCKED if verdict.blocking else ""),
        seconds=timer.seconds, cached=muxed.cached, media_seconds=float(up.source_video.duration),
        provider=MUX_PROVIDER, counts=segment_counts(segments),
        extra={name: dg.MetadataValue.url(uri) for name, uri in links.items()},
    )  # fmt: skip
    yield from check_results(verdict)


def upstream_stages(context: dg.AssetExecutionContext, video_id: str) -> dict[str, StageTime]:
    """Seconds and cache state of each upstream stage's latest materialisation of this partition;
    the source half as reused (cached, no seconds) when the CLI found it unchanged and did not run
    it for this dub (run tag ``dubbing/source_half``)."""
    stages: dict[str, StageTime] = {}
    reused = context.run.tags.get(SOURCE_HALF_TAG) == "unchanged"
    for name in before("dubbed_video"):
        if reused and scope(name) == "video":
            stages[name] = stage_time(0.0, True)
            continue
        partition = video_id if scope(name) == "video" else str(context.partition_key)
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[partition]), limit=1
        ).records
        mat = records[0].asset_materialization if records else None
        if mat is not None:
            meta = mat.metadata
            seconds = float(meta["seconds"].value) if "seconds" in meta else 0.0
            stages[name] = stage_time(seconds, bool(meta["cached"].value) if "cached" in meta else False)
    return stages


def segment_counts(segments: list[ReportSegment]) -> dict[str, int | float]:
    statuses = [s.status for s in segments]
    return {"segments": len(statuses), "failed": statuses.count("failed")}


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``dubbed_video`` asset, with its quality checks (muxing runs where the run does)."""

    def dubbed_video(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        quality: QualityResource,
        safety: SafetyResource,
        source_video: SourceVideoRecord,
        audio_stems: AudioStemsRecord,
        speakers: SpeakersRecord,
        translation: TranslationRecord,
        dubbed_speech: DubbedSpeechRecord,
        dub_mix: DubMixRecord,
        lip_sync: LipSyncRecord,
    ) -> Result:
        up = Parents(source_video, audio_stems, speakers, translation, dubbed_speech, dub_mix, lip_sync)
        yield from made(context, (storage, quality, safety), up)

    return stage_asset(
        dubbed_video,
        settings=settings,
        kinds={"ffmpeg"},
        description="The dubbed MP4 (video stream-copied, AAC, +faststart, soft subtitles), SRT/VTT and "
        "report.json.",
        check_specs=[dg.AssetCheckSpec(name, asset="dubbed_video") for name in CHECKS],
        deps=[FEEDBACK],
    )


dubbed_video = build(Settings())  # the embedded default
