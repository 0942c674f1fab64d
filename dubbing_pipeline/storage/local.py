"""Local-directory storage (the embedded default)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from dubbing_pipeline.common.ids import join_key
from dubbing_pipeline.storage.base import MediaStorage, WriteConflict


def _version(data: bytes) -> str:
    """The version token of a local file: the SHA-256 of its content."""
    return hashlib.sha256(data).hexdigest()


def _lock_path(dest: Path) -> Path:
    """The lock file of ``dest``: ``.<name>.lock`` beside it (never listed as a key)."""
    return dest.with_name(f".{dest.name}.lock")


def _is_key_file(path: Path) -> bool:
    """Not a temporary file of a write in progress, nor a lock file."""
    return not (path.name.endswith(".part") or (path.name.startswith(".") and path.name.endswith(".lock")))


@contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``dest``'s lock file for the block: between processes and
    between threads (each holder opens the file itself). The holder unlinks the lock file as it
    leaves, so none is left at rest: a waiter that then gets the lock of an unlinked file has not
    got the lock, and opens (creates) the current one and waits again."""
    lock = _lock_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(lock)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the lock


class LocalStorage(MediaStorage):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / join_key(key)).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError("storage key escapes the storage root")
        return path

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def key_of(self, uri: str) -> str:
        prefix = self.root.as_uri() + "/"
        if not uri.startswith(prefix):
            raise ValueError("URI does not belong to this storage")
        return join_key(uri[len(prefix) :])

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _atomic_write(self, key: str, writer: Callable[[BinaryIO], object]) -> str:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                writer(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest.as_uri()

    def put_file(self, key: str, local_path: str | Path) -> str:
        def write(handle: BinaryIO) -> None:
            with open(local_path, "rb") as src:
                shutil.copyfileobj(src, handle, 1 << 20)

        return self._atomic_write(key, write)

    def put_bytes(self, key: str, data: bytes) -> str:
        return self._atomic_write(key, lambda handle: handle.write(data))

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        # writes replace the file atomically: a read sees one whole version, no lock needed
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None, None
        return data, _version(data)

    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        dest = self._path(key)
        with _locked(dest):
            try:
                current: str | None = _version(dest.read_bytes())
            except FileNotFoundError:
                current = None
            if current != expected:
                raise WriteConflict(f"{key}: stored version changed since it was read")
            self._atomic_write(key, lambda handle: handle.write(data))
        return _version(data)

    def download(self, key: str, local_path: str | Path) -> Path:
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(key), local_path)
        return Path(local_path)

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            return [join_key(prefix)]
        if not base.is_dir():
            return []
        keys = [
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and _is_key_file(p)
        ]
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not path.parent.is_dir():
            return
        with _locked(path):  # never between a conditional write's check and its write
            path.unlink(missing_ok=True)
