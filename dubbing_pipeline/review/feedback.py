"""Viewers' reports on the lines of a dub, stored with the media beside its report.

``feedback/<video_id>/<language>.json`` holds ``{"schema": "dubbing_pipeline.feedback/1",
"items": [{"line": "s0004", "note": "...", "at": "2026-11-30T12:00:00Z"}]}``, oldest first.
Feedback never changes the dub; ``dubbing-pipeline lines`` shows it next to each line. A report is
appended with a condition (``storage.update_json``): reports sent at the same time all land.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict

from dubbing_pipeline.common.hashing import cache_key
from dubbing_pipeline.common.ids import dub_file_key, some_ids
from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.storage.base import MediaStorage, update_json

SCHEMA = "dubbing_pipeline.feedback/1"
MAX_NOTE = 2000


class FeedbackItem(TypedDict):
    """One viewer's note on one line of a dub, and when it was sent (UTC, ``...Z``)."""

    line: str
    note: str
    at: str


def feedback_key(video_id: str, language: str) -> str:
    return dub_file_key("feedback", video_id, language)


def load_feedback(storage: MediaStorage, video_id: str, language: str) -> list[FeedbackItem]:
    """The stored items, oldest first; none when nobody has reported anything."""
    key = feedback_key(video_id, language)
    if not storage.exists(key):
        return []
    items: list[FeedbackItem] = storage.get_json(key).get("items", [])
    return items


def add_feedback(
    storage: MediaStorage,
    video_id: str,
    language: str,
    line: str,
    note: str,
    line_ids: list[str],
    now: datetime | None = None,
) -> FeedbackItem:
    """Append one report on ``line`` (which must be one of ``line_ids``), whatever others append
    at the same time; returns the stored item."""
    text = " ".join(note.split())
    if not text:
        raise BadInputError("feedback --note is empty")
    if len(text) > MAX_NOTE:
        raise BadInputError(f"feedback --note has {len(text)} characters; at most {MAX_NOTE}")
    if line not in line_ids:
        raise BadInputError(f"--line {line!r} is not a line of this dub (its lines: {some_ids(line_ids)})")
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    item = FeedbackItem(line=line, note=text, at=stamp)

    def append(stored: Any) -> JsonObject:
        stored = stored if isinstance(stored, dict) else {}
        return {**stored, "schema": SCHEMA, "items": [*stored.get("items", []), item]}

    key = feedback_key(video_id, language)
    update_json(storage, key, append, what=f"feedback on {video_id} × {language}", action="report")
    return item


def feedback_version(items: Sequence[FeedbackItem]) -> str:
    """The content hash of a dub's feedback items: the ``feedback`` asset's data version."""
    return cache_key("feedback", items=items)


NO_FEEDBACK = feedback_version([])
"""The data version of a partition without feedback (assumed of one never observed)."""
