"""S3 storage through boto3 (production). Every key lives under the configured prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dubbing_pipeline.ids import join_key
from dubbing_pipeline.storage.base import MediaStorage, WriteConflict

_MISSING = ("404", "NoSuchKey", "NotFound")
_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict")
"""412: the object is not (or no longer) the version named; 409: another conditional write to it
was in progress."""


def _error(exc: Any) -> tuple[str, int]:
    """A botocore ClientError's code and HTTP status."""
    response = exc.response
    return str(response.get("Error", {}).get("Code", "")), int(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    )


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
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region_name)
        self.client = client

    def _object_key(self, key: str) -> str:
        safe = join_key(key)
        return f"{self.prefix}/{safe}" if self.prefix else safe

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(key)}"

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _error(exc)[0] in _MISSING:
                return False
            raise
        return True

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
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _error(exc)[0] in _MISSING:
                return None
            raise
        return int(head["ContentLength"])

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _error(exc)[0] in _MISSING:
                return None, None
            raise
        data: bytes = response["Body"].read()
        return data, str(response["ETag"])

    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        """A conditional PUT (``If-Match: <ETag>``, or ``If-None-Match: *`` to create): S3 checks
        and writes in one request; the version token is the ETag."""
        from botocore.exceptions import ClientError

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
