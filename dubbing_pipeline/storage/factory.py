"""Pick a storage backend from a URL: a path or ``file://`` → local, ``s3://bucket/prefix`` → S3."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.storage.base import MediaStorage, parse_uri
from dubbing_pipeline.storage.local import LocalStorage

if TYPE_CHECKING:
    from dubbing_pipeline.storage.s3 import S3Service


def s3_service(endpoint_url: str | None = None, region_name: str | None = None) -> S3Service:
    """S3 at ``endpoint_url`` (empty: AWS) in ``region_name`` (empty: boto3's default): its storages
    and the clients the sensors, the catalog and the registry use."""
    from dubbing_pipeline.storage.s3 import S3Service  # lazy: boto3 loads only for S3

    return S3Service(endpoint_url or None, region_name or None)


def make_storage(
    url: str, *, s3_endpoint_url: str | None = None, s3_region: str | None = None
) -> MediaStorage:
    scheme, netloc, path = parse_uri(url)
    if scheme == "file":
        return LocalStorage(path)
    if scheme == "s3":
        if not netloc:
            raise ConfigurationError("an s3:// storage URL needs a bucket: s3://BUCKET/PREFIX")
        return s3_service(s3_endpoint_url, s3_region).storage(netloc, path)
    raise ConfigurationError(f"unsupported storage URL scheme {scheme!r} (use a path, file:// or s3://)")
