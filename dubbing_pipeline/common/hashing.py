"""Content hashes and cache keys. The same inputs and settings give the same key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: a stable text for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def cache_key(stage: str, **parts: Any) -> str:
    """A cache key for ``stage`` from everything its output depends on."""
    return sha256_bytes(canonical_json({"stage": stage, **parts}).encode("utf-8"))
