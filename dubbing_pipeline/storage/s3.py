"""S3 through boto3 (production): the media storage, and the clients the drop sensors, the catalog
and the registry read S3 with. Only :func:`~dubbing_pipeline.storage.factory.s3_service` imports
this module, where S3 is used: boto3 never loads for a local storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.exceptions import ClientError

from dubbing_pipeline.common.ids import join_key
from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.storage.base import MediaStorage, WriteConflict

_MISSING = ("404", "NoSuchKey", "NotFound")
_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict")
"""412: the object is not (or no longer) the version named; 409: another conditional write to it
was in progress."""


def _error(exc: ClientError) -> tuple[str, int]:
    """A botocore ClientError's code and HTTP status."""
    response: Any = exc.response
    return str(response.get("Error", {}).get("Code", "")), int(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    )


def _missing(exc: ClientError) -> bool:
    return _error(exc)[0] in _MISSING


@dataclass(frozen=True)
class S3Service:
    """S3 at an endpoint (``None``: AWS) in a region (``None``: boto3's default)."""

    endpoint_url: str | None = None
    region_name: str | None = None

    def client(self, service: str = "s3") -> Any:
        """A boto3 client of ``service`` (``s3``, ``sqs``) here."""
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region_name)

    def listing_client(self) -> Any:
        """An S3 client for big listings: timestamps stay text (botocore's dateutil parse of every
        LastModified is most of a 10,000-object listing's time)."""
        core = botocore.session.Session()
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
        return boto3.Session(botocore_session=core).client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region_name
        )

    def storage(self, bucket: str, prefix: str = "") -> S3Storage:
        return S3Storage(bucket, prefix, endpoint_url=self.endpoint_url, region_name=self.region_name)

    @staticmethod
    def etag(client: Any, bucket: str, key: str) -> str | None:
        """The ETag of one object (a HEAD), or None when it cannot be read."""
        try:
            return str(client.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
        except ClientError:
            return None

    def etags(self, client: Any, bucket: str, keys: Sequence[str]) -> dict[str, str]:
        """ETags of ``keys`` in ``bucket`` (those that exist): one listing per folder (1,000 keys a
        request) of only the key range they span (the catalog's slice of a big folder lists the
        slice), not a HEAD each; a folder with only one or two of them gets a HEAD each (cheaper
        than listing a big folder). ``client``: :meth:`listing_client`'s."""
        found: dict[str, str] = {}
        folders: dict[str, set[str]] = {}
        for key in keys:
            folders.setdefault(key.rsplit("/", 1)[0] + "/" if "/" in key else "", set()).add(key)
        paginator = client.get_paginator("list_objects_v2")
        for folder, wanted in sorted(folders.items()):
            if len(wanted) < 3:
                heads = {key: self.etag(client, bucket, key) for key in sorted(wanted)}
                found.update({key: etag for key, etag in heads.items() if etag is not None})
                continue
            first, last = min(wanted), max(wanted)  # list only the key range they span
            pages = paginator.paginate(Bucket=bucket, Prefix=folder, Delimiter="/", StartAfter=first[:-1])
            for page in pages:
                contents = page.get("Contents", [])
                for obj in contents:
                    if obj["Key"] in wanted:
                        found[obj["Key"]] = str(obj["ETag"]).strip('"')
                if contents and contents[-1]["Key"] >= last:
                    break
        return found

    def download(self, bucket: str, key: str, dest: Path) -> Path:
        """Copy one object to ``dest``; an object that cannot be read is bad input."""
        try:
            self.client().download_file(bucket, key, str(dest))
        except ClientError as exc:
            raise BadInputError(f"source object not readable: {_error(exc)[0] or None}") from exc
        return dest


class S3Storage(MediaStorage):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = join_key(prefix.strip("/")) if prefix.strip("/") else ""
        if client is None:
            client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region_name)
        self.client = client

    def _object_key(self, key: str) -> str:
        safe = join_key(key)
        return f"{self.prefix}/{safe}" if self.prefix else safe

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(key)}"

    def _head(self, key: str) -> Any:
        """The object's HEAD response, or None when it does not exist."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def put_file(self, key: str, local_path: str | Path) -> str:
        # A single PUT (or a multipart upload completed in one call) is atomic on S3:
        # readers see the old object or the new one, never a part.
        self.client.upload_file(str(local_path), self.bucket, self._object_key(key))
        return self.uri(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._object_key(key), Body=data)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        data: bytes = response["Body"].read()
        return data

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _missing(exc):
                return None, None
            raise
        data: bytes = response["Body"].read()
        return data, str(response["ETag"])

    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        """A conditional PUT (``If-Match: <ETag>``, or ``If-None-Match: *`` to create): S3 checks
        and writes in one request; the version token is the ETag."""
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self._object_key(key), Body=data, **condition
            )
        except ClientError as exc:
            code, status = _error(exc)
            # a 404 to If-Match: the object was deleted since it was read
            if code in _CONFLICT or status in (409, 412) or (expected is not None and code in _MISSING):
                raise WriteConflict(f"{key}: stored version changed since it was read ({code})") from exc
            raise
        return str(response["ETag"])

    def download(self, key: str, local_path: str | Path) -> Path:
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(local_path) + ".part")
        self.client.download_file(self.bucket, self._object_key(key), str(tmp))
        tmp.replace(local_path)
        return Path(local_path)

    def list_keys(self, prefix: str) -> list[str]:
        full = self._object_key(prefix) if prefix else self.prefix
        start = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                keys.append(obj["Key"][start:])
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))
