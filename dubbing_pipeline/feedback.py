"""Viewers' reports on the lines of a dub, stored with the media beside its report.

``feedback/<video_id>/<language>.json`` holds ``{"schema": "dubbing_pipeline.feedback/1",
"items": [{"line": "s0004", "note": "...", "at": "2026-11-30T12:00:00Z"}]}``, oldest first.
Feedback never changes the dub; ``dubbing-pipeline lines`` shows it next to each line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.ids import dub_file_key, some_ids

SCHEMA = "dubbing_pipeline.feedback/1"
MAX_NOTE = 2000


def feedback_key(video_id: str, language: str) -> str:
    return dub_file_key("feedback", video_id, language)


def load_feedback(storage: Any, video_id: str, language: str) -> list[dict[str, Any]]:
    """The stored items, oldest first; none when nobody has reported anything."""
    key = feedback_key(video_id, language)
    if not storage.exists(key):
        return []
    items: list[dict[str, Any]] = storage.get_json(key).get("items", [])
    return items


def add_feedback(
    storage: Any,
    video_id: str,
    language: str,
    line: str,
    note: str,
    line_ids: list[str],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Append one report on ``line`` (which must be one of ``line_ids``); returns the stored item."""
    text = " ".join(note.split())
    if not text:
        raise BadInputError("feedback --note is empty")
    if len(text) > MAX_NOTE:
        raise BadInputError(f"feedback --note has {len(text)} characters; at most {MAX_NOTE}")
    if line not in line_ids:
        raise BadInputError(f"--line {line!r} is not a line of this dub (its lines: {some_ids(line_ids)})")
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    item = {"line": line, "note": text, "at": stamp}
    items = [*load_feedback(storage, video_id, language), item]
    storage.put_json(feedback_key(video_id, language), {"schema": SCHEMA, "items": items})
    return item
