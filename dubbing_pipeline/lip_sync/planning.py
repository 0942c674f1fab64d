"""Planning ``lip_sync``: the dubbed lines that sound, the face track (a cached step) and the
windows the engine runs on, one job per window."""

from __future__ import annotations

from dubbing_pipeline.dubbed_speech.records import DubbedSpeechRecord
from dubbing_pipeline.errors import classify
from dubbing_pipeline.lip_sync.base import LipSyncEngine
from dubbing_pipeline.lip_sync.faces import CODE_VERSION as FACES_CODE
from dubbing_pipeline.lip_sync.faces import DETECT_WIDTH, FaceDetector, FaceTrack, track_faces
from dubbing_pipeline.lip_sync.records import (
    FaceTrackRecord,
    LipSyncPlan,
    PlacedSpeech,
    WindowJob,
    WindowSpan,
)
from dubbing_pipeline.lip_sync.windows import plan_windows
from dubbing_pipeline.orchestration.cache import scratch
from dubbing_pipeline.orchestration.kit import run_step
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.source_video.records import SourceVideoRecord


def placed_lines(dubbed_speech: DubbedSpeechRecord) -> list[PlacedSpeech]:
    """The dubbed lines that sound, by start: spoken, stored and placed over a span."""
    out = []
    for line in dubbed_speech.lines:
        s, e = line.dub_start, line.dub_end
        if line.status != "failed" and line.uri and s is not None and e is not None and e > s:
            out.append(PlacedSpeech(id=line.id, dub_start=s, dub_end=e, uri=line.uri))
    return sorted(out, key=lambda ln: (ln.dub_start, ln.id))


def face_track(storage: StorageResource, source_video: SourceVideoRecord) -> tuple[FaceTrack, bool]:
    """The video's face track, cached by its content hash and the detector; whether it was cached."""
    detector = FaceDetector()
    inputs = {
        "sha256": source_video.sha256,
        "detector": detector.name,
        "width": DETECT_WIDTH,
        "code": FACES_CODE,
    }
    store = storage.get()
    with scratch("faces", storage.work_dir or None) as tmp:
        with store.open_local(store.key_of(source_video.media_uri), tmp) as local:
            result = run_step(
                storage,
                "faces",
                inputs=inputs,
                compute=lambda step: track_faces(local, detector=detector).to_dict(),
                record=FaceTrackRecord,
            )
    return FaceTrack.from_record(result.record), result.cached


def window_plan(
    storage: StorageResource,
    engine: LipSyncEngine,
    source_video: SourceVideoRecord,
    lines: list[PlacedSpeech],
) -> LipSyncPlan:
    """The windows the engine runs on: where dubbed speech sounds and a face is seen."""
    face, faces_cached, detector = None, True, None
    frames_total = source_video.info.frame_count or None
    if not engine.passthrough and lines:
        track, faces_cached = face_track(storage, source_video)
        face, frames_total, detector = track.present, track.frames_total, track.detector
    planned = plan_windows(
        [(ln.dub_start, ln.dub_end) for ln in lines],
        duration=source_video.duration,
        fps=source_video.info.fps,
        frames_total=frames_total,
        face=face,
        max_window_seconds=engine.max_window_seconds,
    )
    return LipSyncPlan(
        status="ok",
        provider=engine.describe(),
        passthrough=bool(engine.passthrough),
        detector=detector,
        faces_cached=faces_cached,
        frames_total=planned.frames_total,
        frames_to_model=planned.frames_to_model,
        frames_skipped_silence=planned.frames_skipped_silence,
        frames_skipped_no_face=planned.frames_skipped_no_face,
        fps=planned.fps,
        duration=planned.duration,
        settings=planned.settings,
        windows=[WindowSpan.of(w) for w in planned.windows],
        speech_windows=[WindowSpan.of(w) for w in planned.speech_windows],
    )


def failed_plan(provider: JsonObject, err: Exception) -> LipSyncPlan:
    """The plan of a stage that cannot run: no windows, the error said once."""
    e = classify(err)
    return LipSyncPlan(status="failed", error=e.one_line(), error_code=e.code, provider=provider)


def window_jobs(plan: LipSyncPlan, lines: list[PlacedSpeech]) -> list[tuple[str, WindowJob]]:
    """``(mapping key, job)`` per window to run, each with the dubbed lines that sound in it."""
    windows = plan.windows if plan.status == "ok" and not plan.passthrough else []
    jobs = []
    for i, w in enumerate(windows):
        near = [ln for ln in lines if ln.dub_end > w.start and ln.dub_start < w.end]
        jobs.append((f"w{i:04d}", WindowJob(index=i, window=w, lines=near, provider=plan.provider)))
    return jobs
