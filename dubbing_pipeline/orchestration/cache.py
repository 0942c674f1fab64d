"""Content-addressed step cache on top of media storage.

A step's result lives under ``cache/<stage>/<key[:2]>/<key>/``: its artifacts first, then
``record.json`` last. A record that exists is therefore complete, so a step killed half way
is simply redone, and a finished step is never redone (resume = re-run).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dubbing_pipeline.common.ids import join_key
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.storage.base import MediaStorage

RECORD = "record.json"
ARTIFACTS = "_artifacts"
"""The record field naming each artifact the step stored and its size in bytes (``Step.put``)."""


class StepCache:
    def __init__(self, storage: MediaStorage, stage: str) -> None:
        self.storage = storage
        self.stage = stage

    def prefix(self, key: str) -> str:
        return join_key("cache", self.stage, key[:2], key)

    def artifact_key(self, key: str, name: str) -> str:
        return join_key(self.prefix(key), name)

    def get(self, key: str) -> JsonObject | None:
        """The step's record, when it and every artifact it names are stored as written (an
        artifact deleted or truncated since is a miss: the step is redone)."""
        record_key = self.artifact_key(key, RECORD)
        if not self.storage.exists(record_key):
            return None
        record: JsonObject = self.storage.get_json(record_key)
        for name, size in record.get(ARTIFACTS, {}).items():
            if self.storage.size(self.artifact_key(key, name)) != size:
                return None
        return record

    def put_artifact(self, key: str, name: str, local_path: str | Path) -> str:
        return self.storage.put_file(self.artifact_key(key, name), local_path)

    def put(self, key: str, record: JsonObject) -> JsonObject:
        self.storage.put_json(self.artifact_key(key, RECORD), record)
        return record


def work_dir(base: str | None = None) -> str | None:
    """The scratch base directory (``DUBBING_WORK_DIR``) or None for the system default."""
    if base:
        os.makedirs(base, exist_ok=True)
        return base
    return None


@contextmanager
def scratch(prefix: str, base: str | None = None) -> Iterator[Path]:
    """A private temporary directory, removed afterwards (parallel steps never collide)."""
    path = tempfile.mkdtemp(prefix=f"{prefix}-", dir=work_dir(base))
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)
