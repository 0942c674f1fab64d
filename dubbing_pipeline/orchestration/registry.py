"""The video registry: a video id and where its source lives (local path, file:// or s3:// URL)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.ids import join_key, sanitize_id
from dubbing_pipeline.storage import MediaStorage, parse_uri

# --- the video registry: video id -> where its source lives ---------------------------------


def registry_key(video_id: str) -> str:
    return join_key("registry", "videos", sanitize_id(video_id)) + ".json"


def register_video(storage: MediaStorage, video_id: str, source_uri: str, **extra: Any) -> dict[str, Any]:
    record = {"video_id": video_id, "source_uri": source_uri, **extra}
    storage.put_json(registry_key(video_id), record)
    return record


def lookup_video(storage: MediaStorage, video_id: str) -> dict[str, Any]:
    key = registry_key(video_id)
    if not storage.exists(key):
        raise BadInputError(f"video {video_id!r} is not registered (add it with the CLI or a sensor)")
    record: dict[str, Any] = storage.get_json(key)
    return record


def fetch_source(uri: str, dest_dir: Path, *, s3_endpoint_url: str | None = None) -> Path:
    """Bring a source (local path, file:// or s3://) to a local file under ``dest_dir``."""
    scheme, netloc, path = parse_uri(uri)
    if scheme == "file":
        src = Path(path)
        if not src.is_file():
            raise BadInputError(f"source file not found: {src.name}")
        return src
    if scheme == "s3":
        import boto3
        from botocore.exceptions import ClientError

        dest = dest_dir / ("source" + Path(path).suffix.lower()[:8])
        client = boto3.client("s3", endpoint_url=s3_endpoint_url or None)
        try:
            client.download_file(netloc, path, str(dest))
        except ClientError as exc:
            raise BadInputError(
                f"source object not readable: {exc.response.get('Error', {}).get('Code')}"
            ) from exc
        return dest
    raise BadInputError(f"unsupported source URI scheme {scheme!r}")


def copy_local(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    return dest
