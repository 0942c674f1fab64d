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

import json
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.cache import StepCache, scratch
from dubbing_pipeline.errors import classify
from dubbing_pipeline.hashing import cache_key, sha256_file
from dubbing_pipeline.orchestration.partitions import video_language
from dubbing_pipeline.orchestration.resources import StorageResource, _ProviderResource
from dubbing_pipeline.orchestration.stage import Timer, stage_metadata
from dubbing_pipeline.settings import Settings

CODE_VERSION = "lipsync-1"
STAGE = "lip_sync"


class LipSyncResource(_ProviderResource):
    """The lip-sync engine (``DUBBING_LIPSYNC``, ``DUBBING_LATENTSYNC_*``, ``DUBBING_LIPSYNC_MAX_WINDOW``)."""

    lipsync: str = "none"
    latentsync_dir: str = ""
    latentsync_steps: int = 20
    latentsync_guidance: float = 1.5
    latentsync_seed: int = 1247
    musetalk_dir: str = ""
    lipsync_max_window: float = 0.0

    def get(self) -> Any:
        from dubbing_pipeline.lipsync.providers import make_lipsync

        return make_lipsync(self.settings())


def lipsync_resource(settings: Settings) -> LipSyncResource:
    return LipSyncResource(
        lipsync=settings.lipsync,
        latentsync_dir=settings.latentsync_dir,
        latentsync_steps=settings.latentsync_steps,
        latentsync_guidance=settings.latentsync_guidance,
        latentsync_seed=settings.latentsync_seed,
        musetalk_dir=settings.musetalk_dir,
        lipsync_max_window=settings.lipsync_max_window,
        device=settings.device,
        cpu_threads=settings.cpu_threads,
        model_cache=settings.model_cache,
    )


def engine_uses_gpu(settings: Settings) -> bool:
    """Production with a GPU engine (LatentSync, MuseTalk): the window steps go to the GPU pool."""
    from dubbing_pipeline.lipsync.providers import make_lipsync

    try:
        gpu = bool(make_lipsync(settings).gpu)
    except Exception:  # an unknown engine fails at run time, classified
        gpu = False
    return gpu and settings.deployment == "production"


def gpu_tags(settings: Settings) -> tuple[dict[str, str], str | None]:
    """``(op_tags, pool)`` of ``sync_window``: empty and ``None`` unless the engine uses a GPU.

    The ``dagster-k8s/config`` tag (an ``nvidia.com/gpu`` limit, the GPU pool's node selector and
    tolerations, from ``DUBBING_GPU_*``) is the JSON string dagster-k8s reads.
    """
    if not engine_uses_gpu(settings):
        return {}, None
    from dubbing_pipeline.orchestration.placement import K8S_CONFIG_TAG, gpu_k8s_config

    return {K8S_CONFIG_TAG: json.dumps(gpu_k8s_config(settings), sort_keys=True)}, settings.gpu_pool


# --- the face track ---------------------------------------------------------------------------


def face_track(
    storage_res: StorageResource, source: dict[str, Any], local: Path
) -> tuple[dict[str, Any], bool]:
    """The video's face track, cached by its content hash and the detector."""
    from dubbing_pipeline.lipsync.faces import CODE_VERSION as FACES_CODE
    from dubbing_pipeline.lipsync.faces import DETECT_WIDTH, FaceDetector, track_faces

    detector = FaceDetector()
    key = cache_key(
        "faces", sha256=source["sha256"], detector=detector.name, width=DETECT_WIDTH, code=FACES_CODE
    )
    cache = StepCache(storage_res.get(), "faces")
    hit = cache.get(key)
    if hit is not None:
        return hit, True
    track = track_faces(local, detector=detector)
    return cache.put(key, {"cache_key": key, **track.to_dict()}), False


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
    from dubbing_pipeline.lipsync.faces import FaceTrack
    from dubbing_pipeline.lipsync.windows import plan_windows

    timer = Timer()
    desc: dict[str, Any] = {"name": lipsync.lipsync}
    plan: dict[str, Any]
    try:
        engine = lipsync.get()
        desc = engine.describe()
        engine.check()
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
        plan = {
            "status": "ok",
            "provider": desc,
            "passthrough": bool(engine.passthrough),
            "detector": detector,
            "faces_cached": faces_cached,
            **wplan.to_dict(),
            "seconds": timer.seconds,
        }
    except Exception as err:  # the stage degrades to the original video, never fails the partition
        context.log.warning(f"lip_sync planning failed: {classify(err).one_line()}")
        plan = _failed_plan(source_video, desc, err)
    yield dg.Output(plan, output_name="plan")
    windows = plan["windows"] if plan["status"] == "ok" and not plan.get("passthrough") else []
    if not windows:
        yield dg.DynamicOutput({"skip": True}, output_name="jobs", mapping_key="none")
        return
    lines = placed_lines(dubbed_speech)
    for i, w in enumerate(windows):
        near = [ln for ln in lines if ln["dub_end"] > w["start"] and ln["dub_start"] < w["end"]]
        yield dg.DynamicOutput(
            {"index": i, "window": w, "lines": near, "provider": plan["provider"]},
            output_name="jobs",
            mapping_key=f"w{i:04d}",
        )


# --- one window -------------------------------------------------------------------------------


def sync_one(
    storage_res: StorageResource, engine: Any, source: dict[str, Any], job: dict[str, Any]
) -> dict[str, Any]:
    """Run the engine on one window (bisecting failures); cached by video, audio, engine and bounds."""
    import soundfile as sf

    from dubbing_pipeline.lipsync.compose import cut_window, probe_video, window_speech
    from dubbing_pipeline.lipsync.core import run_window
    from dubbing_pipeline.lipsync.windows import Window

    store = storage_res.get()
    window = Window.from_dict(job["window"])
    with scratch("lipsync", storage_res.work_dir or None) as tmp:
        loaded = []
        for line in job["lines"]:
            with store.open_local(store.key_of(line["uri"]), tmp) as path:
                data, sr = sf.read(str(path), dtype="float32", always_2d=False)
            loaded.append((float(line["dub_start"]), data, int(sr)))
        audio = window_speech(loaded, window, tmp / "window.wav", rate=engine.audio_rate)
        key = cache_key(
            "lipsync_window", video=source["sha256"], audio=sha256_file(audio), engine=engine.describe(),
            window=[window.start_frame, window.end_frame], code=CODE_VERSION,
        )  # fmt: skip
        cache = StepCache(store, "lipsync_window")
        hit = cache.get(key)
        if hit is not None:
            return {**hit, "cached": True}
        outputs: dict[int, str] = {}
        with store.open_local(store.key_of(source["media_uri"]), tmp) as local:
            info = probe_video(local)

            def sync(piece: Window) -> None:
                name = f"p{piece.start_frame:06d}-{piece.end_frame:06d}"
                clip, wav, out = tmp / f"{name}.in.mp4", tmp / f"{name}.wav", tmp / f"{name}.out.mp4"
                cut_window(local, piece, clip, info=info)
                window_speech(loaded, piece, wav, rate=engine.audio_rate)
                work = tmp / f"{name}.work"
                work.mkdir(exist_ok=True)
                engine.sync(clip, wav, out, work)
                outputs[piece.start_frame] = cache.put_artifact(key, f"{name}.mp4", out)

            pieces = run_window(window, sync)
        record = {
            "cache_key": key,
            "window": job["window"],
            "pieces": [
                {**p.to_dict(), "uri": outputs.get(p.start_frame) if p.status == "synced" else None}
                for p in pieces
            ],
        }
    return {**cache.put(key, record), "cached": False}


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
    from dubbing_pipeline.lipsync.compose import compose
    from dubbing_pipeline.lipsync.core import Piece, skipped
    from dubbing_pipeline.lipsync.windows import Window

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
            "cache_key": "",
            "video_uri": source["media_uri"],
            "changed": False,
            "compose": None,
        }, False
    key = cache_key(
        "lip_sync",
        video=source["sha256"],
        pieces=[[p["start_frame"], p["end_frame"], p["uri"]] for p in synced],
        code=CODE_VERSION,
    )
    store = storage_res.get()
    cache = StepCache(store, "lip_sync")
    hit = cache.get(key)
    if hit is not None:
        return {**hit, "lipsync": lipsync, "status": base["status"]}, True
    with scratch("lipsync-compose", storage_res.work_dir or None) as tmp:
        clips = []
        for p in synced:
            clips.append(
                (
                    Piece.from_dict(p).window,
                    store.download(store.key_of(p["uri"]), tmp / f"{p['start_frame']}.mp4"),
                )
            )
        with store.open_local(store.key_of(source["media_uri"]), tmp) as local:
            name = "video.lipsync.mp4"
            result = compose(local, clips, tmp / name, tmp)
        record = {
            **base,
            "cache_key": key,
            "video_uri": cache.put_artifact(key, name, tmp / name),
            "changed": result.changed,
            "compose": result.to_dict(),
        }
    return cache.put(key, record), False


@dg.op(tags={"stage": STAGE})
def compose_lipsync(
    context: dg.OpExecutionContext,
    storage: StorageResource,
    source_video: dict[str, Any],
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
    ls = record["lipsync"]
    statuses = [w["status"] for w in ls["windows"]]
    seconds = (
        sum(float(r.get("seconds", 0.0)) for r in results) + float(plan.get("seconds", 0.0)) + timer.seconds
    )
    return dg.Output(
        record,
        metadata=stage_metadata(
            seconds=seconds,
            media_seconds=float(source_video["duration"]),
            cached=cached and all(r.get("cached", True) for r in results),
            cache_key=record.get("cache_key", ""),
            provider=plan.get("provider") or {"name": ls["provider"]},
            counts={
                **{
                    k: ls[k]
                    for k in (
                        "frames_total",
                        "frames_to_model",
                        "frames_skipped_silence",
                        "frames_skipped_no_face",
                    )
                },
                "windows": len(statuses),
                "synced": statuses.count("synced"),
                "failed": statuses.count("failed"),
                "skipped": statuses.count("skipped"),
            },
            extra={
                "status": dg.MetadataValue.text(record["status"]),
                "changed": dg.MetadataValue.bool(bool(record["changed"])),
                **({"error": dg.MetadataValue.text(record["error"])} if record.get("error") else {}),
                **(
                    {"frames_reencoded": dg.MetadataValue.int(int(record["compose"]["frames_reencoded"]))}
                    if record.get("compose")
                    else {}
                ),
            },
        ),
    )


def build_lip_sync(settings: Settings) -> tuple[Any, Any]:
    """The ``lip_sync`` graph asset and its asset check, with GPU placement from ``settings``."""
    op_tags, pool = gpu_tags(settings)
    sync_window = _sync_window_op(op_tags, pool)

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
        return compose_lipsync(source_video, plan, results)

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


def _deployed() -> Settings:
    try:
        from dubbing_pipeline.orchestration.placement import DEPLOYED

        return DEPLOYED
    except ImportError:  # pragma: no cover
        return Settings.from_env()


lip_sync, lip_sync_succeeded = build_lip_sync(_deployed())
