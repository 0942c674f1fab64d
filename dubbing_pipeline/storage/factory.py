"""Pick a storage backend from a URL: a path or ``file://`` → local, ``s3://bucket/prefix`` → S3."""

from __future__ import annotations

from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.storage.base import MediaStorage, parse_uri
from dubbing_pipeline.storage.local import LocalStorage


def make_storage(
    url: str, *, s3_endpoint_url: str | None = None, s3_region: str | None = None
) -> MediaStorage:
    scheme, netloc, path = parse_uri(url)
    if scheme == "file":
        return LocalStorage(path)
    if scheme == "s3":
        if not netloc:
            raise ConfigurationError("an s3:// storage URL needs a bucket: s3://BUCKET/PREFIX")
        from dubbing_pipeline.storage.s3 import S3Storage

        return S3Storage(netloc, path, endpoint_url=s3_endpoint_url, region_name=s3_region)
    raise ConfigurationError(f"unsupported storage URL scheme {scheme!r} (use a path, file:// or s3://)")
