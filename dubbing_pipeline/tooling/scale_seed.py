"""moto's S3 as ``bench --scale`` finds it: N source objects and the catalog already registered.

Through moto's HTTP server an object costs about 4 ms (7.5 s for 2,000 placeholders) and the
catalog's first tick registers a video in about 9 ms (19 s for 2,000): at 100,000 videos that is
21 minutes of setup before anything is measured. So the objects are put into moto's S3 backend
directly, in its own process, before its server starts (about 40,000 objects a second), and the
registry objects are the ones the catalog's own code writes (``resolve_ids`` and
``register_catalog`` run against an in-memory ``MediaStorage``): the first tick finds the catalog
registered, as it would after a first tick, and everything after goes through HTTP as before.

Run as ``python -m dubbing_pipeline.tooling.scale_seed SEED PORT`` (by :func:`seeded_moto`): it
loads the pickled ``[(bucket, key, body)]`` of ``SEED``, deletes the file, then serves.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from dubbing_pipeline.orchestration.catalog import parse_catalog, register_catalog, resolve_ids
from dubbing_pipeline.storage import MediaStorage, WriteConflict, parse_uri
from dubbing_pipeline.storage.s3 import S3Storage
from dubbing_pipeline.tooling.devservers import _free_port, serve_moto

Seed = list[tuple[str, str, bytes]]  # (bucket, key, body)


def etag(body: bytes) -> str:
    """S3's ETag of a single-part object: the MD5 of its body (what moto and the catalog report)."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


class MemoryStorage(MediaStorage):
    """A ``MediaStorage`` in a dict: what the registry writes, recorded (the versions are counters)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def uri(self, key: str) -> str:
        return f"memory:///{key}"

    def exists(self, key: str) -> bool:
        return key in self.objects

    def put_file(self, key: str, local_path: str | Path) -> str:
        return self.put_bytes(key, Path(local_path).read_bytes())

    def put_bytes(self, key: str, data: bytes) -> str:
        with self._lock:
            self.objects[key] = data
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        return self.objects[key]

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        data = self.objects.get(key)
        return data, None if data is None else etag(data)

    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        with self._lock:
            have = self.objects.get(key)
            if (None if have is None else etag(have)) != expected:
                raise WriteConflict(key)
            self.objects[key] = data
        return etag(data)

    def download(self, key: str, local_path: str | Path) -> Path:
        Path(local_path).write_bytes(self.objects[key])
        return Path(local_path)

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)


def registry_seed(catalog_text: str, storage_url: str, fingerprints: dict[str, str]) -> Seed:
    """The objects the catalog's registration writes for ``catalog_text`` (source URI →
    fingerprint in ``fingerprints``), as ``(bucket, key, body)`` in the storage of ``storage_url``."""
    memory = MemoryStorage()
    catalog = parse_catalog(catalog_text)
    reserved = {v.video_id for v in catalog.videos if v.explicit}
    vids, refused = resolve_ids(memory, catalog.videos, {}, reserved)
    if refused:
        raise RuntimeError(f"the synthetic catalog was refused: {dict(list(refused.items())[:3])}")
    register_catalog(memory, vids, {v.video_id: fingerprints[v.source_uri] for v in vids}, {})
    _, bucket, prefix = parse_uri(storage_url)
    s3 = S3Storage(bucket, prefix, client=object())
    out: Seed = []
    for key, body in memory.objects.items():
        _, _, object_key = parse_uri(s3.uri(key))
        out.append((bucket, object_key, body))
    return out


def source_seed(bucket: str, keys: Sequence[str]) -> tuple[Seed, dict[str, str]]:
    """Placeholder sources (their key is their body) and their ETags by key."""
    return [(bucket, k, k.encode()) for k in keys], {k: etag(k.encode()) for k in keys}


@contextmanager
def seeded_moto(seed: Seed, work: Path) -> Iterator[str]:
    """moto's server in a child process with ``seed`` already in its S3; yields its endpoint URL."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    path = work / "moto-seed.pickle"
    path.write_bytes(pickle.dumps(seed, protocol=pickle.HIGHEST_PROTOCOL))
    port = _free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dubbing_pipeline.tooling.scale_seed", str(path), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, proc, timeout=120 + len(seed) / 5000)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the seeded moto server did not start") from None
            time.sleep(0.2)


def serve(seed_path: Path, port: int) -> None:
    """The child: every seeded object put into moto's S3 backend, then moto's server."""
    seed: Seed = pickle.loads(seed_path.read_bytes())
    seed_path.unlink()
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for bucket in sorted({b for b, _, _ in seed}):
        backend.create_bucket(bucket, "us-east-1")
    for bucket, key, body in seed:
        backend.put_object(bucket, key, body)
    del seed
    serve_moto(port)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
