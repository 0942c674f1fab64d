"""The storage interface. Keys are relative POSIX paths made of sanitised parts."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from dubbing_pipeline.ids import join_key


def parse_uri(uri: str) -> tuple[str, str, str]:
    """Split ``scheme://netloc/path`` (a bare path counts as ``file``).

    ``file://`` URLs are percent-decoded (``Path.as_uri`` encodes spaces and non-ASCII names);
    S3 keys are returned as written.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return "file", "", unquote(parsed.path) if parsed.scheme else uri
    return parsed.scheme, parsed.netloc, parsed.path.lstrip("/")


class MediaStorage(ABC):
    """Artifacts by key. Writes are atomic: a reader never sees a half-written object."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """The URI of ``key`` (``file:///...`` or ``s3://bucket/prefix/key``)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def put_file(self, key: str, local_path: str | Path) -> str:
        """Store a local file under ``key`` atomically; return its URI."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> str: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def download(self, key: str, local_path: str | Path) -> Path:
        """Copy ``key`` to ``local_path``."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (sorted)."""

    def keys_in(self, folder: str) -> list[str]:
        """Keys inside ``folder`` (``"edits/demo"``: ``edits/demo/es.json``, never ``edits/demo2/…``)."""
        return [k for k in self.list_keys(folder) if k.startswith(folder.rstrip("/") + "/")]

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def key_of(self, uri: str) -> str:
        """The key of a URI that belongs to this storage (inverse of :meth:`uri`)."""
        base = self.uri("x")[:-1]
        if not uri.startswith(base):
            raise ValueError("URI does not belong to this storage")
        return join_key(uri[len(base) :])

    def local_path(self, key: str) -> Path | None:
        """A path on this machine where ``key`` can be read directly, if there is one."""
        return None

    @contextmanager
    def open_local(self, key: str, work_dir: str | Path | None = None) -> Iterator[Path]:
        """A readable local path for ``key`` for the duration of the block."""
        direct = self.local_path(key)
        if direct is not None:
            yield direct
            return
        tmp = tempfile.mkdtemp(prefix="dl-", dir=work_dir)
        try:
            yield self.download(key, Path(tmp) / os.path.basename(key))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def put_json(self, key: str, value: Any) -> str:
        text = json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False)
        return self.put_bytes(key, text.encode("utf-8"))

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key).decode("utf-8"))
