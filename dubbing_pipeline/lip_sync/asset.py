"""``lip_sync`` (video × language): the mouth follows the dub, only where a face is speaking.

A graph asset: ``plan_lipsync`` (face track, cached by the video's content hash; windows:
``planning``) → one ``sync_window`` step per window (GPU-tagged in production when the engine runs
on a GPU; cached by the video, the window's speech audio, the engine and its settings, the bounds:
``sync``) → ``compose_lipsync`` (re-encode only the GOPs that changed, stream-copy the rest).

The stage never fails the partition: when it fails as a whole (a missing model, a compose
error), its record points at the original video (``changed: false``, ``status: failed``) so the
dub is muxed over the original frames, and the ``lip_sync_succeeded`` asset check (severity
WARN) records the failure.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from dubbing_pipeline.common.hashing import cache_key
from dubbing_pipeline.dubbed_speech.records import DubbedSpeechRecord
from dubbing_pipeline.errors import classify
from dubbing_pipeline.lip_sync.compose import compose
from dubbing_pipeline.lip_sync.core import skipped
from dubbing_pipeline.lip_sync.planning import failed_plan, placed_lines, window_jobs, window_plan
from dubbing_pipeline.lip_sync.records import (
    LipSyncPlan,
    LipSyncRecord,
    LipSyncSummary,
    PieceOutcome,
    PlacedSpeech,
    WindowJob,
    WindowOutcome,
    WindowSpan,
    WindowStatus,
)
from dubbing_pipeline.lip_sync.sync import CODE_VERSION, sync_one
from dubbing_pipeline.lip_sync.windows import Window
from dubbing_pipeline.orchestration.kit import Step, Timer, model_op, run_step, stage_asset, stage_output
from dubbing_pipeline.orchestration.partitions import video_language
from dubbing_pipeline.orchestration.resources import LipSyncResource, StorageResource
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.records import SourceVideoRecord

STAGE = "lip_sync"
COMPOSED = "video.lipsync.mp4"


# --- plan -------------------------------------------------------------------------------------


@dg.op(out={"plan": dg.Out(LipSyncPlan), "jobs": dg.DynamicOut(WindowJob)}, tags={"stage": STAGE})
def plan_lipsync(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    lipsync: LipSyncResource,
    source_video: SourceVideoRecord,
    dubbed_speech: DubbedSpeechRecord,
) -> Iterator[dg.Output[LipSyncPlan] | dg.DynamicOutput[WindowJob]]:
    """Face track and windows; one job per window (a single no-op job when there is nothing to run)."""
    timer = Timer()
    desc: JsonObject = {"name": lipsync.settings().lipsync}
    lines: list[PlacedSpeech] = []
    try:
        engine = lipsync.get()
        desc = engine.describe()
        engine.check()
        lines = placed_lines(dubbed_speech)
        plan = window_plan(storage, engine, source_video, lines).model_copy(update={"seconds": timer.seconds})
    except Exception as err:  # the stage degrades to the original video, never fails the partition
        context.log.warning(f"lip_sync planning failed: {classify(err).one_line()}")
        plan = failed_plan(desc, err)
    yield dg.Output(plan, output_name="plan")
    jobs = window_jobs(plan, lines)
    if not jobs:
        yield dg.DynamicOutput(WindowJob(), output_name="jobs", mapping_key="none")
    for mapping_key, job in jobs:
        yield dg.DynamicOutput(job, output_name="jobs", mapping_key=mapping_key)


# --- one window -------------------------------------------------------------------------------


def sync_window(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    lipsync: LipSyncResource,
    source_video: SourceVideoRecord,
    job: WindowJob,
) -> WindowOutcome:
    """One window through the engine; a failing window is bisected, a fatal error recorded."""
    timer = Timer()
    if job.window is None:
        return WindowOutcome(skip=True)
    try:
        outcome = sync_one(storage, lipsync.get(), source_video, job.window, job.lines)
    except Exception as err:  # a fatal engine error: this window keeps its original frames
        outcome = failed_window(job.window, classify(err).one_line())
        context.log.warning(f"window {job.window.start:.2f} s: {outcome.error}")
    return outcome.model_copy(update={"seconds": timer.seconds})


def failed_window(window: WindowSpan, error: str) -> WindowOutcome:
    """A window the engine could not run at all: one failed piece, the original frames kept."""
    piece = PieceOutcome(**dict(window), status="failed", detail=error)
    return WindowOutcome(window=window, error=error, pieces=[piece], cached=False)


# --- compose ----------------------------------------------------------------------------------


@dg.op(tags={"stage": STAGE})
def compose_lipsync(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    source_video: SourceVideoRecord,
    dubbed_speech: DubbedSpeechRecord,
    plan: LipSyncPlan,
    results: list[JsonObject],
) -> dg.Output[LipSyncRecord]:
    """The synced pieces put back into the source video (or the source as it is), as the stage's record."""
    timer = Timer()
    outcomes = [WindowOutcome.from_json(r) for r in results]  # a fan-in's records arrive as stored
    try:
        record, cached = compose_record(storage, source_video, plan, outcomes)
    except Exception as err:  # degrade: the dub goes over the original frames
        error = classify(err).one_line()
        context.log.warning(f"lip_sync compose failed: {error}")
        record, cached = failed_record(storage, source_video, plan, error), False
    seconds = sum(r.seconds for r in outcomes) + plan.seconds + timer.seconds
    return stage_output(
        record,
        upstream={"source_video": source_video, "dubbed_speech": dubbed_speech},
        code_version=storage.code_version("lip_sync"),
        seconds=seconds,
        cached=cached and all(r.cached for r in outcomes),
        media_seconds=source_video.duration,
        provider=plan.provider or {"name": record.lipsync.provider},
        counts=lipsync_counts(record.lipsync),
        extra=lipsync_extra(record),
    )


def compose_record(
    storage: StorageResource,
    source_video: SourceVideoRecord,
    plan: LipSyncPlan,
    outcomes: list[WindowOutcome],
) -> tuple[LipSyncRecord, bool]:
    """The stage's record and whether it was all cached: the composed video (a cached step), or
    the source's when no piece was synced."""
    pieces = final_pieces(plan, outcomes)
    summary = summarize(plan, pieces)
    said = stage_said(plan, summary)
    synced = [(p.window, p.uri) for p in pieces if p.status == "synced" and p.uri]
    if not synced:  # nothing composed: only the face track was work
        return unchanged(source_video, said), plan.faces_cached

    def compute(step: Step) -> JsonObject:
        return {**said, **composed(step, source_video, synced)}

    pieces_key = [[w.start_frame, w.end_frame, uri] for w, uri in synced]
    inputs = {"video": source_video.sha256, "pieces": pieces_key, "code": CODE_VERSION}
    done = run_step(storage, "lip_sync", inputs=inputs, compute=compute, record=LipSyncRecord)
    return done.record.model_copy(update={"lipsync": summary, "status": plan.status}), done.cached


def final_pieces(plan: LipSyncPlan, outcomes: list[WindowOutcome]) -> list[PieceOutcome]:
    """Every piece of every window in time order (none when the plan failed; all skipped by the
    ``none`` engine)."""
    if plan.status != "ok":
        return []
    if plan.passthrough:
        return [PieceOutcome.of_piece(p) for p in skipped([w.window for w in plan.windows], "engine none")]
    return sorted((p for r in outcomes if not r.skip for p in r.pieces), key=lambda p: p.start_frame)


def summarize(plan: LipSyncPlan, pieces: list[PieceOutcome]) -> LipSyncSummary:
    return LipSyncSummary(
        provider=str(plan.provider.get("name", "")),
        provider_config=plan.provider,
        detector=plan.detector,
        **plan.frame_counts(),
        windows=[WindowStatus(start=p.start, end=p.end, status=p.status) for p in pieces],
    )


def stage_said(plan: LipSyncPlan, summary: LipSyncSummary) -> JsonObject:
    """What every record of the stage says, stored form: its status, what lip-sync did and, when
    it failed as a whole, why."""
    said: JsonObject = {"status": plan.status, "lipsync": summary.to_json()}
    if plan.status != "ok":
        said["error"] = plan.error
    return said


def unchanged(source_video: SourceVideoRecord, said: JsonObject) -> LipSyncRecord:
    """The source's frames as they are: its identity is the source and what was (not) done."""
    key = cache_key("lip_sync", video=source_video.sha256, base=said, code=CODE_VERSION)
    video_uri = source_video.media_uri
    return LipSyncRecord.model_validate({**said, "cache_key": key, "video_uri": video_uri, "changed": False})


def composed(step: Step, source_video: SourceVideoRecord, synced: list[tuple[Window, str]]) -> JsonObject:
    """The source with the synced clips' frames (``compose``), stored."""
    store = step.storage
    clips = [
        (window, store.download(store.key_of(uri), step.tmp / f"{window.start_frame}.mp4"))
        for window, uri in synced
    ]
    with step.local(source_video.media_uri) as local:
        result = compose(local, clips, step.tmp / COMPOSED, step.tmp)
    return {
        "video_uri": step.put(COMPOSED, step.tmp / COMPOSED),
        "changed": result.changed,
        "compose": result.record(),
    }


def failed_record(
    storage: StorageResource, source_video: SourceVideoRecord, plan: LipSyncPlan, error: str
) -> LipSyncRecord:
    """The source's frames, every planned window failed (the key names the failure, not the windows)."""
    failed = plan.model_copy(update={"status": "failed", "error": error})
    record, _ = compose_record(storage, source_video, failed, [])
    windows = [WindowStatus(start=w.start, end=w.end, status="failed") for w in plan.windows]
    return record.model_copy(update={"lipsync": record.lipsync.model_copy(update={"windows": windows})})


def lipsync_counts(ls: LipSyncSummary) -> dict[str, int | float]:
    """Frame accounting and window outcomes, for the materialisation."""
    statuses = [w.status for w in ls.windows]
    return {
        **ls.frame_counts(),
        "windows": len(statuses),
        "synced": statuses.count("synced"),
        "failed": statuses.count("failed"),
        "skipped": statuses.count("skipped"),
    }


def lipsync_extra(record: LipSyncRecord) -> dict[str, dg.MetadataValue[Any]]:
    """The outcome and what was re-encoded, for the materialisation."""
    extra: dict[str, dg.MetadataValue[Any]] = {
        "status": dg.MetadataValue.text(record.status),
        "changed": dg.MetadataValue.bool(record.changed),
    }
    if record.error:
        extra["error"] = dg.MetadataValue.text(record.error)
    if record.compose is not None:
        extra["frames_reencoded"] = dg.MetadataValue.int(record.compose.frames_reencoded)
    return extra


# --- the asset and its check ------------------------------------------------------------------


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``lip_sync`` graph asset, its window op on the GPU pool where ``settings`` run the
    engine on a GPU."""
    sync_op = model_op(sync_window, settings, stage=STAGE, placement="lipsync")

    def lip_sync(source_video: SourceVideoRecord, dubbed_speech: DubbedSpeechRecord) -> Any:
        plan, jobs = plan_lipsync(source_video, dubbed_speech)
        results = jobs.map(lambda job: sync_op(source_video, job)).collect()
        return compose_lipsync(source_video, dubbed_speech, plan, results)

    return stage_asset(
        lip_sync,
        graph=True,
        settings=settings,
        kinds={"video"},
        description="The source video with the mouth re-animated where a face speaks the dub (or unchanged).",
    )


@dg.asset_check(
    asset=STAGE,
    name="lip_sync_succeeded",
    partitions_def=video_language,
    description="Warns when lip-sync failed as a whole or in some windows (original frames kept there).",
)
def lip_sync_succeeded(lip_sync: LipSyncRecord) -> dg.AssetCheckResult:
    failed = [w for w in lip_sync.lipsync.windows if w.status == "failed"]
    ok = lip_sync.status == "ok" and not failed
    return dg.AssetCheckResult(
        passed=ok,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if ok else (lip_sync.error or f"{len(failed)} pieces kept their original frames"),
        metadata={
            "status": lip_sync.status,
            "failed_pieces": len(failed),
            "failed_seconds": round(sum(w.end - w.start for w in failed), 3),
            "provider": lip_sync.lipsync.provider,
        },
    )


def build_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """The stage's asset checks (the same under every ``settings``)."""
    return [lip_sync_succeeded]


lip_sync = build(Settings())  # the embedded default
