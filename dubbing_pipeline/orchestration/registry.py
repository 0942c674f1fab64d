"""The video registry: a video id and where its source lives (local path, file:// or s3:// URL)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import NotRequired, TypedDict

from dubbing_pipeline.common.ids import MAX_ID_LEN, join_key, sanitize_id, video_id_from_name
from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.storage import MediaStorage, WriteConflict, parse_uri, s3_service
from dubbing_pipeline.storage.base import json_bytes

# --- the video registry: video id -> where its source lives ---------------------------------


def registry_key(video_id: str) -> str:
    return join_key("registry", "videos", sanitize_id(video_id)) + ".json"


class VideoEntry(TypedDict):
    """A video's registry entry (``registry/videos/<id>.json``): where its source lives and, from a
    sensor or the catalog, which version of it was seen and what to dub it into."""

    video_id: str
    source_uri: str
    fingerprint: NotRequired[str]  # the source's version when registered (ETag, stat stamp or SHA-256)
    fingerprint_since: NotRequired[float]  # when that version was seen (seconds since the epoch)
    languages: NotRequired[list[str]]  # the languages it is to be dubbed into
    drop_key: NotRequired[str]  # the dropped object's key (or inbox path) it came from


def register_video(
    storage: MediaStorage,
    video_id: str,
    source_uri: str,
    *,
    fingerprint: str | None = None,
    fingerprint_since: float | None = None,
    languages: list[str] | None = None,
    drop_key: str | None = None,
) -> VideoEntry:
    """Write the registry entry of ``video_id`` (what is not given is left out)."""
    entry = VideoEntry(video_id=video_id, source_uri=source_uri)
    if fingerprint is not None:
        entry["fingerprint"] = fingerprint
    if fingerprint_since is not None:
        entry["fingerprint_since"] = fingerprint_since
    if languages is not None:
        entry["languages"] = languages
    if drop_key is not None:
        entry["drop_key"] = drop_key
    storage.put_json(registry_key(video_id), entry)
    return entry


def lookup_video(storage: MediaStorage, video_id: str) -> VideoEntry:
    key = registry_key(video_id)
    if not storage.exists(key):
        raise BadInputError(f"video {video_id!r} is not registered (add it with the CLI or a sensor)")
    entry: VideoEntry = storage.get_json(key)
    return entry


# --- video ids: one rule for every entry point (CLI, sensors, catalog) -----------------------


def _holder(storage: MediaStorage, video_id: str) -> str | None:
    """The source URI the registry holds ``video_id`` for; None when the id is free.

    A record without a source (never written by this project) counts as held by another source.
    """
    data, _ = storage.get_versioned(registry_key(video_id))  # one read, whole or absent
    if data is None:
        return None
    record = json.loads(data.decode("utf-8"))
    return str(record.get("source_uri") or "") if isinstance(record, dict) else ""


def hashed_video_id(base: str, source_uri: str) -> str:
    """``base`` with the first 8 hex digits of SHA-256(source URI) appended, within ``MAX_ID_LEN``."""
    digest = hashlib.sha256(source_uri.encode("utf-8")).hexdigest()[:8]
    return sanitize_id(f"{base[: MAX_ID_LEN - 9]}-{digest}")


def _candidates(name: str, source_uri: str) -> tuple[str, str]:
    base = video_id_from_name(name)
    return base, hashed_video_id(base, source_uri)


def _held_for(
    storage: MediaStorage, base: str, hashed: str, source_uri: str, taken: Collection[str]
) -> tuple[str | None, bool]:
    """(the candidate the registry already holds for this source or None, whether ``base`` is free)."""
    holder = None if base in taken else _holder(storage, base)
    if base not in taken and holder == source_uri:
        return base, False
    if _holder(storage, hashed) == source_uri:
        return hashed, False
    return None, base not in taken and holder is None


def _create(storage: MediaStorage, video_id: str, source_uri: str) -> bool:
    """Register ``video_id`` for ``source_uri`` only if no one holds it yet (atomic); whether it did."""
    entry = VideoEntry(video_id=video_id, source_uri=source_uri)
    try:
        storage.put_if(registry_key(video_id), json_bytes(entry), None)
    except WriteConflict:
        return False
    return True


def _take(storage: MediaStorage, video_id: str, source_uri: str) -> bool:
    """Claim a free id for this source; whether it is this source's now (another process may have
    claimed it a moment before: for the same source, that is as good)."""
    return _create(storage, video_id, source_uri) or _holder(storage, video_id) == source_uri


def claim_video_id(
    storage: MediaStorage,
    name: str,
    source_uri: str,
    explicit: str | None = None,
    *,
    taken: Collection[str] = (),
) -> str:
    """The video id of the source at ``source_uri``, registered for it: THE rule, for every entry point.

    * ``explicit`` (``dub --id``, a catalog entry's ``id:``) is the user's choice: used as given
      (sanitised) and the registry entry is pointed at this source, whatever it held before (the
      video that had the id loses it; its dubs under that id are now this source's).
    * Otherwise the base id is ``video_id_from_name(name)``: the CLI passes the file's name, the
      drop sensors the key relative to the drop prefix with its folders (``shows/ep1.mp4`` →
      ``shows-ep1``), the catalog the source's path.
    * If the registry holds the base id for this source, or for no source, it is this video's id.
      If it holds it for *another* source, the id is the base id with ``-`` and 8 hex digits of
      SHA-256(source URI) appended (``intro-<8 hex>``, trimmed to ``MAX_ID_LEN``). So ``a/intro.mp4``
      and ``b/intro.mp4``, or ``My Video.mp4`` and ``my-video.mp4``, never share an id.
    * A source keeps its id: the same source again gets the id it has (its hashed id stays its id
      even once the base id is free again). If the hashed id is also held by another source, a
      :class:`BadInputError` says so (give the video an explicit id).

    ``taken``: ids to treat as held by another source (the catalog's explicit ids).

    Claiming is atomic: a free id is written with a create-if-absent write (``put_if`` with no
    expected version), so two processes claiming one base id for two sources at once get two ids.
    """
    if explicit:
        vid = sanitize_id(explicit)
        if _holder(storage, vid) != source_uri:
            register_video(storage, vid, source_uri)
        return vid
    base, hashed = _candidates(name, source_uri)
    found, base_free = _held_for(storage, base, hashed, source_uri, taken)
    if found is not None:
        return found
    if base_free and _take(storage, base, source_uri):
        return base
    if hashed not in taken and _take(storage, hashed, source_uri):
        return hashed
    raise BadInputError(
        f"video ids {base!r} and {hashed!r} are both registered for other sources: "
        "give this video an explicit id (--id, or 'id:' in the catalog)"
    )


def find_video_id(
    storage: MediaStorage,
    name: str,
    source_uri: str,
    explicit: str | None = None,
    *,
    taken: Collection[str] = (),
) -> str:
    """The id :func:`claim_video_id` gives (or gave) this source, without writing anything.

    For commands that only look a video up (``lines``, ``edit``, ``feedback``, ``delete``): the id
    the source is registered under, else the id a claim would give it now.
    """
    if explicit:
        return sanitize_id(explicit)
    base, hashed = _candidates(name, source_uri)
    found, base_free = _held_for(storage, base, hashed, source_uri, taken)
    return found if found is not None else (base if base_free else hashed)


def fetch_source(uri: str, dest_dir: Path, *, s3_endpoint_url: str | None = None) -> Path:
    """Bring a source (local path, file:// or s3://) to a local file under ``dest_dir``."""
    scheme, netloc, path = parse_uri(uri)
    if scheme == "file":
        src = Path(path)
        if not src.is_file():
            raise BadInputError(f"source file not found: {src.name}")
        return src
    if scheme == "s3":
        dest = dest_dir / ("source" + Path(path).suffix.lower()[:8])
        return s3_service(s3_endpoint_url).download(netloc, path, dest)
    raise BadInputError(f"unsupported source URI scheme {scheme!r}")


def copy_local(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    return dest
