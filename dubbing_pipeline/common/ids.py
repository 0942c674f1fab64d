"""Identifiers and storage keys: everything that becomes a path is sanitised here."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

_ALLOWED = re.compile(r"[^A-Za-z0-9._-]+")
# an id already safe (what ``sanitize_id`` returns unchanged): a catalog of 100,000 entries names
# them this way, and sanitising each again cost 0.7 s of the tick that reads the file
_SAFE = re.compile(r"[a-z0-9](?:[-.]?[a-z0-9_])*(?<!_)")
MAX_ID_LEN = 64


def sanitize_id(raw: str, *, max_len: int = MAX_ID_LEN) -> str:
    """Turn any name (file name, object key) into a safe id: ``[a-z0-9._-]``, no dots first.

    Non-ASCII letters are transliterated where Unicode allows (é → e) and dropped otherwise;
    path separators and ``..`` never survive. The empty result becomes ``"video"``.
    """
    if len(raw) <= max_len and _SAFE.fullmatch(raw):
        return raw
    return _sanitized(raw, max_len)


def _sanitized(raw: str, max_len: int) -> str:
    text = unicodedata.normalize("NFKD", raw)
    text = text.encode("ascii", "ignore").decode("ascii")
    text = text.replace("/", "-").replace("\\", "-")
    text = _ALLOWED.sub("-", text).strip("-._").lower()
    text = re.sub(r"-{2,}", "-", text)
    text = re.sub(r"-*\.+-*", ".", text)
    text = text[:max_len].strip("-._")
    return text or "video"


def _loses_letters(text: str) -> bool:
    """Whether sanitising drops letters or digits that have no ASCII form (東京, ø, ß...)."""
    return any(
        ch.isalnum() and not unicodedata.normalize("NFKD", ch).encode("ascii", "ignore") for ch in text
    )


def video_id_from_name(name: str) -> str:
    """Video id from a file name or object key: its last component without extension.

    When letters without an ASCII form are dropped, a short hash of the name is appended, so
    ``東京.mp4`` and ``大阪.mp4`` get different ids (``video-1c5e…``) instead of both ``video``.
    """
    base = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if "." in base.strip("."):
        base = base.rsplit(".", 1)[0]
    vid = sanitize_id(base)
    if _loses_letters(base):
        digest = hashlib.sha256(base.encode("utf-8")).hexdigest()[:8]
        vid = sanitize_id(f"{vid[: MAX_ID_LEN - 9]}-{digest}")
    return vid


def is_safe_key_part(part: str) -> bool:
    return bool(part) and part not in (".", "..") and _ALLOWED.search(part) is None


def join_key(*parts: str) -> str:
    """Join already-sanitised key parts; refuse anything that could escape a root."""
    out: list[str] = []
    for part in parts:
        for piece in part.split("/"):
            if not is_safe_key_part(piece):
                raise ValueError(f"unsafe storage key component: {piece!r}")
            out.append(piece)
    if not out:
        raise ValueError("empty storage key")
    return "/".join(out)


def dub_file_key(kind: str, video_id: str, language: str) -> str:
    """``<kind>/<video>/<language>.json``: a file stored with the media for one dub (edits, feedback)."""
    return join_key(kind, sanitize_id(video_id), sanitize_id(language) + ".json")


def dub_file_partitions(keys: Sequence[str], kind: str) -> list[tuple[str, str]]:
    """``(video, language)`` of each ``<kind>/<video>/<language>.json`` among ``keys`` (the inverse of
    :func:`dub_file_key`), sorted."""
    out = []
    for key in keys:
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == kind and parts[2].endswith(".json"):
            out.append((parts[1], parts[2][: -len(".json")]))
    return sorted(out)


def some_ids(ids: Sequence[str], limit: int = 3) -> str:
    """The first ``limit`` ids, for a message (``s0000, s0001, s0002 ...``)."""
    return ", ".join(ids[:limit]) + (" ..." if len(ids) > limit else "")


def partition_key_parts(partition_key: str) -> list[str]:
    """Storage key parts for a Dagster partition key (``"es|demo"`` → ``["es", "demo"]``)."""
    return [sanitize_id(p) for p in partition_key.split("|")]
