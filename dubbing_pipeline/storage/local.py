"""Local-directory storage (the embedded default)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dubbing_pipeline.ids import join_key
from dubbing_pipeline.storage.base import MediaStorage


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

    def _atomic_write(self, key: str, writer: object) -> str:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                writer(handle)  # type: ignore[operator]
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest.as_uri()

    def put_file(self, key: str, local_path: str | Path) -> str:
        def write(handle: object) -> None:
            with open(local_path, "rb") as src:
                shutil.copyfileobj(src, handle, 1 << 20)  # type: ignore[arg-type]

        return self._atomic_write(key, write)

    def put_bytes(self, key: str, data: bytes) -> str:
        return self._atomic_write(key, lambda handle: handle.write(data))

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

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
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".part")
        ]
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
