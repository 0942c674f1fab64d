"""Publishing a dub's report: ``report.json`` and ``review.html`` under ``reports/<video>/<lang>/``,
with the viewers' feedback stored now; the report becomes JSON here (``report.DubReport``)."""

from __future__ import annotations

import json

from dubbing_pipeline.dubbed_speech.records import DubbedSpeechRecord
from dubbing_pipeline.dubbed_video.records import Pages
from dubbing_pipeline.dubbed_video.report import DubReport
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.review.clips import line_clips
from dubbing_pipeline.review.feedback import feedback_version, load_feedback
from dubbing_pipeline.review.page import publish_review_page
from dubbing_pipeline.stages import FEEDBACK


def publish(
    storage_res: StorageResource,
    video_id: str,
    report: DubReport,
    speech: DubbedSpeechRecord,
    video_name: str,
) -> tuple[Pages, dict[str, dict[str, str]]]:
    """The report and review page (with the feedback stored now, the dubbed video linked by its
    ``video_name``); and the version of that feedback as a parent of the output (the ``feedback``
    source asset): a later note makes the dub stale."""
    store = storage_res.get()
    notes = load_feedback(store, video_id, report.target_language)
    stored = report.to_json()
    text = json.dumps(stored, indent=1, ensure_ascii=False, sort_keys=True)
    report_uri = store.put_bytes(f"reports/{video_id}/{report.target_language}/report.json", text.encode())
    review_uri = publish_review_page(
        store,
        video_id,
        stored,
        video_name=video_name,
        line_audio=line_clips(storage_res, speech),
        feedback=notes,
    )
    pages = Pages(report_uri=report_uri, review_uri=review_uri)
    return pages, {FEEDBACK: {"cache_key": feedback_version(notes)}}
