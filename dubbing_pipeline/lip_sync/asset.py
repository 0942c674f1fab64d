"""``lip_sync`` (video × language): the mouth follows the dub, only where a face is speaking.

A graph asset: ``plan_lipsync`` (face track, cached by the video's content hash; windows) →
one ``sync_window`` step per window (GPU-tagged in production when the engine runs on a GPU;
cached by the video, the window's speech audio, the engine and its settings, the bounds) →
``compose_lipsync`` (re-encode only the GOPs that changed, stream-copy the rest).

The stage never fails the partition: when it fails as a whole (a missing model, a compose
error), its record points at the original video (``changed: false``, ``status: failed``) so the
dub is muxed over the original frames, and the ``lip_sync_succeeded`` asset check (severity
WARN) records the failure.
"""

from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.cache import scratch
from dubbing_pipeline.errors import classify
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.hashing import cache_key, sha256_file
from dubbing_pipeline.orchestration.kit import Step, Timer, run_step, stage_output
from dubbing_pipeline.orchestration.partitions import video_language
from dubbing_pipeline.orchestration.placement import gpu_op_tags, gpu_pool
from dubbing_pipeline.orchestration.resources import LipSyncResource, StorageResource
from dubbing_pipeline.settings import Settings

CODE_VERSION = recipe("lip_sync").code[0]
STAGE = "lip_sync"


# --- the face track ---------------------------------------------------------------------------


def face_track(
    storage_res: StorageResource, source: dict[str, Any], local: Path
) -> tuple[dict[str, Any], bool]:
    """The video's face track, cached by its content hash and the detector."""
    from dubbing_pipeline.lip_sync.faces import CODE_VERSION as FACES_CODE
    from dubbing_pipeline.lip_sync.faces import DETECT_WIDTH, FaceDetector, track_faces

    detector = FaceDetector()
    inputs = {
        "sha256": source["sha256"],
        "detector": detector.name,
        "width": DETECT_WIDTH,
        "code": FACES_CODE,
    }
    result = run_step(
        storage_res,
        "faces",
        inputs=inputs,
        compute=lambda step: track_faces(local, detector=detector).to_dict(),
    )
    return result.record, result.cached


def placed_lines(dubbed_speech: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for line in dubbed_speech.get("lines", []):
        s, e = line.get("dub_start"), line.get("dub_end")
        if line.get("status") != "failed" and line.get("uri") and s is not None and e is not None and e > s:
            out.append({"id": line["id"], "dub_start": float(s), "dub_end": float(e), "uri": line["uri"]})
    return sorted(out, key=lambda ln: (ln["dub_start"], ln["id"]))


def _failed_plan(source: dict[str, Any], engine_desc: dict[str, Any], err: Exception) -> dict[str, Any]:
    e = classify(err)
    return {
        "status": "failed",
        "error": e.one_line(),
        "error_code": e.code,
        "provider": engine_desc,
        "windows": [],
    }


@dg.op(out={"plan": dg.Out(dict), "jobs": dg.DynamicOut(dict)}, tags={"stage": STAGE})
def plan_lipsync(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    lipsync: LipSyncResource,
    source_video: dict[str, Any],
    dubbed_speech: dict[str, Any],
) -> Any:
    """Face track and windows; one job per window (a single no-op job when there is nothing to run)."""
    timer = Timer()
    desc: dict[str, Any] = {"name": lipsync.settings().lipsync}
    try:
        engine = lipsync.get()
        desc = engine.describe()
        engine.check()
        plan = {**window_plan(storage, engine, source_video, dubbed_speech), "seconds": timer.seconds}
    except Exception as err:  # the stage degrades to the original video, never fails the partition
        context.log.warning(f"lip_sync planning failed: {classify(err).one_line()}")
        plan = _failed_plan(source_video, desc, err)
    yield dg.Output(plan, output_name="plan")
    jobs = window_jobs(plan, dubbed_speech)
    if not jobs:
        yield dg.DynamicOutput({"skip": True}, output_name="jobs", mapping_key="none")
    for mapping_key, job in jobs:
        yield dg.DynamicOutput(job, output_name="jobs", mapping_key=mapping_key)


def window_plan(
    storage: StorageResource, engine: Any, source_video: dict[str, Any], dubbed_speech: dict[str, Any]
) -> dict[str, Any]:
    """The windows the engine runs on: where dubbed speech sounds and a face is seen (face track cached)."""
    from dubbing_pipeline.lip_sync.faces import FaceTrack
    from dubbing_pipeline.lip_sync.windows import plan_windows

    info = source_video["info"]
    lines = placed_lines(dubbed_speech)
    face, faces_cached, detector = None, True, None
    frames_total = int(info.get("frame_count") or 0) or None
    if not engine.passthrough and lines:
        store = storage.get()
        with scratch("faces", storage.work_dir or None) as tmp:
            with store.open_local(store.key_of(source_video["media_uri"]), tmp) as local:
                record, faces_cached = face_track(storage, source_video, local)
        track = FaceTrack.from_dict(record)
        face, frames_total, detector = track.present, track.frames_total, track.detector
    wplan = plan_windows(
        [(ln["dub_start"], ln["dub_end"]) for ln in lines],
        duration=float(source_video["duration"]),
        fps=float(info["fps"]),
        frames_total=frames_total,
        face=face,
        max_window_seconds=engine.max_window_seconds,
    )
    return {
        "status": "ok",
        "provider": engine.describe(),
        "passthrough": bool(engine.passthrough),
        "detector": detector,
        "faces_cached": faces_cached,
        **wplan.to_dict(),
    }


def window_jobs(plan: dict[str, Any], dubbed_speech: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(mapping key, job)`` per window to run, each with the dubbed lines that sound in it."""
    windows = plan["windows"] if plan["status"] == "ok" and not plan.get("passthrough") else []
    lines = placed_lines(dubbed_speech)
    jobs = []
    for i, w in enumerate(windows):
        near = [ln for ln in lines if ln["dub_end"] > w["start"] and ln["dub_start"] < w["end"]]
        jobs.append((f"w{i:04d}", {"index": i, "window": w, "lines": near, "provider": plan["provider"]}))
    return jobs


# --- one window -------------------------------------------------------------------------------


def sync_one(
    storage_res: StorageResource, engine: Any, source: dict[str, Any], job: dict[str, Any]
) -> dict[str, Any]:
    """Run the engine on one window (bisecting failures); cached by video, audio, engine and bounds."""
    import soundfile as sf

    from dubbing_pipeline.lip_sync.compose import cut_window, probe_video, window_speech
    from dubbing_pipeline.lip_sync.core import run_window
    from dubbing_pipeline.lip_sync.windows import Window

    store = storage_res.get()
    window = Window.from_dict(job["window"])
    with scratch("lipsync", storage_res.work_dir or None) as tmp:
        loaded = []
        for line in job["lines"]:
            with store.open_local(store.key_of(line["uri"]), tmp) as path:
                data, sr = sf.read(str(path), dtype="float32", always_2d=False)
            loaded.append((float(line["dub_start"]), data, int(sr)))
        audio = window_speech(loaded, window, tmp / "window.wav", rate=engine.audio_rate)
        inputs = {
            "video": source["sha256"], "audio": sha256_file(audio), "engine": engine.describe(),
            "window": [window.start_frame, window.end_frame], "code": CODE_VERSION,
        }  # fmt: skip

        def compute(step: Step) -> dict[str, Any]:
            outputs: dict[int, str] = {}
            with step.local(source["media_uri"]) as local:
                info = probe_video(local)

                def sync(piece: Window) -> None:
                    name = f"p{piece.start_frame:06d}-{piece.end_frame:06d}"
                    clip, wav, out = tmp / f"{name}.in.mp4", tmp / f"{name}.wav", tmp / f"{name}.out.mp4"
                    cut_window(local, piece, clip, info=info)
                    window_speech(loaded, piece, wav, rate=engine.audio_rate)
                    work = tmp / f"{name}.work"
                    work.mkdir(exist_ok=True)
                    engine.sync(clip, wav, out, work)
                    outputs[piece.start_frame] = step.put(f"{name}.mp4", out)

                pieces = run_window(window, sync)
            return {
                "window": job["window"],
                "pieces": [
                    {**p.to_dict(), "uri": outputs.get(p.start_frame) if p.status == "synced" else None}
                    for p in pieces
                ],
            }

        result = run_step(storage_res, "lipsync_window", inputs=inputs, compute=compute)
    return {**result.record, "cached": result.cached}


def _sync_window_op(op_tags: dict[str, Any], pool: str | None) -> Any:
    @dg.op(name="sync_window", tags={"stage": STAGE, **op_tags}, pool=pool)
    def sync_window(
        context: dg.OpExecutionContext,
        storage: StorageResource,
        lipsync: LipSyncResource,
        source_video: dict[str, Any],
        job: dict[str, Any],
    ) -> dict[str, Any]:
        """One window through the engine; a failing window is bisected, a fatal error recorded."""
        timer = Timer()
        if job.get("skip"):
            return {"skip": True}
        try:
            record = sync_one(storage, lipsync.get(), source_video, job)
        except Exception as err:  # a fatal engine error: this window keeps its original frames
            e = classify(err)
            context.log.warning(f"window {job['window']['start']:.2f} s: {e.one_line()}")
            record = {
                "window": job["window"],
                "error": e.one_line(),
                "pieces": [{**job["window"], "status": "failed", "detail": e.one_line(), "uri": None}],
                "cached": False,
            }
        return {**record, "seconds": timer.seconds}

    return sync_window


# --- compose ----------------------------------------------------------------------------------


def compose_record(
    storage_res: StorageResource, source: dict[str, Any], plan: dict[str, Any], results: list[dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    from dubbing_pipeline.lip_sync.compose import compose
    from dubbing_pipeline.lip_sync.core import Piece, skipped
    from dubbing_pipeline.lip_sync.windows import Window

    counts = {
        k: int(plan.get(k, 0))
        for k in ("frames_total", "frames_to_model", "frames_skipped_silence", "frames_skipped_no_face")
    }
    if plan.get("status") != "ok":
        pieces: list[dict[str, Any]] = []
    elif plan.get("passthrough"):
        pieces = [p.to_dict() for p in skipped([Window.from_dict(w) for w in plan["windows"]], "engine none")]
    else:
        pieces = sorted(
            (p for r in results if not r.get("skip") for p in r["pieces"]), key=lambda p: p["start_frame"]
        )
    synced = [p for p in pieces if p["status"] == "synced" and p.get("uri")]
    lipsync = {
        "provider": plan.get("provider", {}).get("name", ""),
        "provider_config": plan.get("provider", {}),
        "detector": plan.get("detector"),
        **counts,
        "windows": [{k: p[k] for k in ("start", "end", "status")} for p in pieces],
    }
    base = {"status": plan.get("status", "failed"), "lipsync": lipsync}
    if plan.get("status") != "ok":
        base["error"] = plan.get("error", "")
    if not synced:
        return {
            **base,
            # the source's frames as they are: its identity is the source and what was (not) done
            "cache_key": cache_key("lip_sync", video=source["sha256"], base=base, code=CODE_VERSION),
            "video_uri": source["media_uri"],
            "changed": False,
            "compose": None,
        }, bool(plan.get("faces_cached", True))  # nothing composed: only the face track was work

    def compute(step: Step) -> dict[str, Any]:
        store = step.storage
        clips = [
            (
                Piece.from_dict(p).window,
                store.download(store.key_of(p["uri"]), step.tmp / f"{p['start_frame']}.mp4"),
            )
            for p in synced
        ]
        with step.local(source["media_uri"]) as local:
            name = "video.lipsync.mp4"
            result = compose(local, clips, step.tmp / name, step.tmp)
        return {
            **base,
            "video_uri": step.put(name, step.tmp / name),
            "changed": result.changed,
            "compose": result.to_dict(),
        }

    pieces_key = [[p["start_frame"], p["end_frame"], p["uri"]] for p in synced]
    inputs = {"video": source["sha256"], "pieces": pieces_key, "code": CODE_VERSION}
    done = run_step(storage_res, "lip_sync", inputs=inputs, compute=compute)
    return {**done.record, "lipsync": lipsync, "status": base["status"]}, done.cached


@dg.op(tags={"stage": STAGE})
def compose_lipsync(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    source_video: dict[str, Any],
    dubbed_speech: dict[str, Any],
    plan: dict[str, Any],
    results: list[dict[str, Any]],
) -> dg.Output[dict[str, Any]]:
    timer = Timer()
    try:
        record, cached = compose_record(storage, source_video, plan, results)
    except Exception as err:  # degrade: the dub goes over the original frames
        e = classify(err)
        context.log.warning(f"lip_sync compose failed: {e.one_line()}")
        record, _ = compose_record(
            storage, source_video, {**plan, "status": "failed", "error": e.one_line()}, []
        )
        record["lipsync"]["windows"] = [
            {"start": w["start"], "end": w["end"], "status": "failed"} for w in plan.get("windows") or []
        ]
        cached = False
    seconds = (
        sum(float(r.get("seconds", 0.0)) for r in results) + float(plan.get("seconds", 0.0)) + timer.seconds
    )
    return stage_output(
        record,
        upstream={"source_video": source_video, "dubbed_speech": dubbed_speech},
        code_version=storage.code_version("lip_sync"),
        seconds=seconds,
        cached=cached and all(r.get("cached", True) for r in results),
        media_seconds=float(source_video["duration"]),
        provider=plan.get("provider") or {"name": record["lipsync"]["provider"]},
        counts=lipsync_counts(record["lipsync"]),
        extra=lipsync_extra(record),
    )


def lipsync_counts(ls: dict[str, Any]) -> dict[str, int | float]:
    """Frame accounting and window outcomes, for the materialisation."""
    statuses = [w["status"] for w in ls["windows"]]
    frames = ("frames_total", "frames_to_model", "frames_skipped_silence", "frames_skipped_no_face")
    return {
        **{k: ls[k] for k in frames},
        "windows": len(statuses),
        "synced": statuses.count("synced"),
        "failed": statuses.count("failed"),
        "skipped": statuses.count("skipped"),
    }


def lipsync_extra(record: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "status": dg.MetadataValue.text(record["status"]),
        "changed": dg.MetadataValue.bool(bool(record["changed"])),
    }
    if record.get("error"):
        extra["error"] = dg.MetadataValue.text(record["error"])
    if record.get("compose"):
        extra["frames_reencoded"] = dg.MetadataValue.int(int(record["compose"]["frames_reencoded"]))
    return extra


def build_lip_sync(settings: Settings) -> tuple[Any, Any]:
    """The ``lip_sync`` graph asset and its asset check, with GPU placement from ``settings``."""
    sync_window = _sync_window_op(gpu_op_tags(settings, "lipsync"), gpu_pool(settings, "lipsync"))

    @dg.graph_asset(
        name="lip_sync",
        partitions_def=video_language,
        code_version=CODE_VERSION,
        group_name="target_half",
        kinds={"video"},
        description="The source video with the mouth re-animated where a face speaks the dub (or unchanged).",
    )
    def lip_sync(source_video: dict[str, Any], dubbed_speech: dict[str, Any]) -> Any:
        plan, jobs = plan_lipsync(source_video, dubbed_speech)
        results = jobs.map(lambda job: sync_window(source_video, job)).collect()
        return compose_lipsync(source_video, dubbed_speech, plan, results)

    @dg.asset_check(
        asset=lip_sync,
        name="lip_sync_succeeded",
        partitions_def=video_language,
        description="Warns when lip-sync failed as a whole or in some windows (original frames kept there).",
    )
    def lip_sync_succeeded(lip_sync: dict[str, Any]) -> dg.AssetCheckResult:
        ls = lip_sync.get("lipsync", {})
        failed = [w for w in ls.get("windows", []) if w.get("status") == "failed"]
        failed_seconds = round(sum(w["end"] - w["start"] for w in failed), 3)
        ok = lip_sync.get("status") == "ok" and not failed
        return dg.AssetCheckResult(
            passed=ok,
            severity=dg.AssetCheckSeverity.WARN,
            description=None
            if ok
            else (lip_sync.get("error") or f"{len(failed)} pieces kept their original frames"),
            metadata={
                "status": str(lip_sync.get("status")),
                "failed_pieces": len(failed),
                "failed_seconds": failed_seconds,
                "provider": str(ls.get("provider", "")),
            },
        )

    return lip_sync, lip_sync_succeeded


lip_sync, lip_sync_succeeded = build_lip_sync(Settings())  # the embedded default
