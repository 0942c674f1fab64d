"""What every stage shell shares: classified failures, timing, metadata, the video registry."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.errors import BadInputError, DubbingError, classify
from dubbing_pipeline.ids import join_key, sanitize_id
from dubbing_pipeline.storage import MediaStorage, parse_uri


@contextmanager
def classified(stage: str) -> Iterator[None]:
    """Turn any exception into a ``dg.Failure`` with a one-line, sanitised, classified message."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        err = classify(exc)
        retriable = err.code in ("provider_failure", "resources_exhausted")
        raise dg.Failure(
            description=f"{stage}: {err.one_line()}",
            metadata={"error_code": err.code, "error_stage": stage, "error": err.message},
            allow_retries=retriable,
        ) from (exc if not isinstance(exc, DubbingError) else None)


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def stage_metadata(
    *,
    seconds: float,
    media_seconds: float,
    cached: bool,
    cache_key: str,
    provider: Mapping[str, Any] | None = None,
    counts: Mapping[str, int | float] | None = None,
    preview: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Materialisation metadata every stage carries."""
    meta: dict[str, Any] = {
        "seconds": dg.MetadataValue.float(round(seconds, 3)),
        "real_time_factor": dg.MetadataValue.float(
            round(seconds / media_seconds, 4) if media_seconds else 0.0
        ),
        "cached": dg.MetadataValue.bool(cached),
        "cache_key": dg.MetadataValue.text(cache_key),
    }
    if provider:
        meta["provider"] = dg.MetadataValue.text(str(provider.get("name", "")))
        meta["model"] = dg.MetadataValue.text(str(provider.get("model", "")))
        meta["provider_config"] = dg.MetadataValue.json(dict(provider))
    for name, value in (counts or {}).items():
        meta[name] = dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(value)
    if preview:
        meta["preview"] = dg.MetadataValue.md(preview)
    for name, value in (extra or {}).items():
        meta[name] = value
    return meta


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
