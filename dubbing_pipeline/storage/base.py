"""The storage interface. Keys are relative POSIX paths made of sanitised parts."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from dubbing_pipeline.common.ids import join_key
from dubbing_pipeline.errors import ConflictError

UPDATE_TRIES = 50
"""How many times ``update_json`` reads, changes and conditionally writes before it gives up."""
UPDATE_PAUSE = (0.005, 0.05)
"""The random pause (seconds) after a lost conditional write, so racing writers spread out."""


class WriteConflict(Exception):
    """A conditional write (:meth:`MediaStorage.put_if`) found another version than expected:
    someone else wrote (or deleted) the object since it was read. Nothing was written."""


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

    def size(self, key: str) -> int | None:
        """The stored size of ``key`` in bytes (None: not stored), without reading it where the
        backend can say (a ``stat``, a HEAD)."""
        return len(self.get_bytes(key)) if self.exists(key) else None

    @abstractmethod
    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """The content of ``key`` and an opaque token of that version; ``(None, None)`` when absent."""

    @abstractmethod
    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        """Store ``data`` under ``key`` only while the stored version is still ``expected`` (a token
        of :meth:`get_versioned`; ``None``: only while ``key`` does not exist), atomically with that
        check; otherwise raise :class:`WriteConflict` and write nothing. Returns the new token."""

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
        return self.put_bytes(key, json_bytes(value))

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key).decode("utf-8"))


def json_bytes(value: Any) -> bytes:
    """The stored form of a JSON value (sorted keys: the same value, the same bytes)."""
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8")


def update_json(
    storage: MediaStorage,
    key: str,
    change: Callable[[Any], Any],
    *,
    what: str,
    action: str = "change",
    tries: int = UPDATE_TRIES,
) -> tuple[Any, Any, str | None]:
    """Read the JSON object at ``key``, change it and write it back only if nobody wrote it in
    between (:meth:`MediaStorage.put_if`); when someone did, read it again and redo the change, up
    to ``tries`` times with a short random pause, so concurrent changes all land and none is lost.

    ``change`` gets the stored value (``None`` when there is none) and returns the value to store,
    or ``None`` to store nothing; it may run several times and must not act outside its result (an
    exception from it stores nothing and is raised as it is). Returns ``(before, after, version)``:
    the stored value the change was made to, the value stored (``before`` when nothing was) and
    the storage's version token of what is stored now. After ``tries`` lost writes a
    ``ConflictError`` says that nothing was stored (``what``: the object, ``action``: the change)."""
    rng = random.Random(os.urandom(16))
    for attempt in range(tries):
        if attempt:
            time.sleep(rng.uniform(*UPDATE_PAUSE))
        data, version = storage.get_versioned(key)
        before = None if data is None else json.loads(data.decode("utf-8"))
        after = change(before)
        if after is None:
            return before, before, version
        try:
            return before, after, storage.put_if(key, json_bytes(after), version)
        except WriteConflict:
            continue
    raise ConflictError(
        f"{what} changed {tries} times while this {action} was being saved; nothing was stored; try again"
    )
