"""Production voice cloning, the light half: the model directory and the speakers' references.

``DUBBING_TTS=chatterbox`` (or ``es=chatterbox,...``) with ``DUBBING_TTS_MODEL_DIR`` set to a
directory holding Resemble AI's multilingual checkpoint (MIT): ``ve.pt``,
``t3_mtl23ls_v2.safetensors``, ``s3gen.pt``, ``grapheme_mtl_merged_expanded_v1.json`` and
optionally ``conds.pt`` (a built-in voice). The ``chatterbox-tts`` package (GPU image only:
it pins its own torch) must be importable. Nothing is downloaded: chatterbox's one hub
call (the Chinese Cangjie table, ``Cangjie5_TC.json``) is pointed at the model directory,
so put that file there for Chinese; without it Chinese is read without Cangjie codes.

One cloned voice per global speaker: ``register_speaker(speaker, audio, sr)`` stores the
speaker's reference (``prepare_reference``: mono, 24 kHz, padded to 2 s when shorter than
1.5 s, at most 10 s); the model's conditionals are computed from it once, on the speaker's
first line, and reused for all of that speaker's lines (``synthesize(..., voice=speaker)``).
Sampling is seeded per line (sha256 of speaker reference, language and text), so a rerun
gives the same audio on the same device. There is no speaking-rate control: isochrony
uses Rubber Band only.

The engine itself, ``engines.chatterbox.VoiceCloningTTS``, imports torch and chatterbox-tts at its
top; this module is what is checked and prepared before either is imported.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from dubbing_pipeline.errors import BadInputError, ModelMissingError, require_dir
from dubbing_pipeline.settings import Settings

CHATTERBOX_SR = 24000
"""Chatterbox's output rate (S3Gen) and the rate references are prepared at."""
REQUIRED_FILES = ("ve.pt", "t3_mtl23ls_v2.safetensors", "s3gen.pt", "grapheme_mtl_merged_expanded_v1.json")
BUILTIN_CONDS = "conds.pt"
CHATTERBOX_LANGUAGES = frozenset({
    "ar", "da", "de", "el", "en", "es", "fi", "fr", "he", "hi", "it", "ja",
    "ko", "ms", "nl", "no", "pl", "pt", "ru", "sv", "sw", "tr", "zh",
})  # fmt: skip
REF_MIN_SECONDS = 0.3
REF_PAD_BELOW = 1.5
REF_PAD_TO = 2.0
REF_MAX_SECONDS = 10.0
"""Chatterbox conditions its decoder on at most the first 10 s of the reference."""
EXAGGERATION = 0.5
CFG_WEIGHT = 0.5
TEMPERATURE = 0.8

Reference = np.ndarray | bytes | bytearray | memoryview | str | os.PathLike[str]
"""A speaker reference: an array (with its sample rate), encoded audio, or the path of a file."""


def chatterbox_model_dir(settings: Settings) -> Path:
    """The checkpoint directory ``DUBBING_TTS_MODEL_DIR`` names, with every required file in it."""
    folder = Path(require_dir(settings.tts_model_dir, "chatterbox voice cloning", "DUBBING_TTS_MODEL_DIR"))
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelMissingError(
            f"chatterbox model directory lacks {', '.join(missing)} (DUBBING_TTS_MODEL_DIR)"
        )
    return folder


def model_fingerprint(folder: Path) -> str:
    """Names and sizes of the checkpoint files (hashing gigabytes on every start is too slow)."""
    digest = hashlib.sha256()
    for name in (*REQUIRED_FILES, BUILTIN_CONDS):
        path = folder / name
        if path.is_file():
            digest.update(f"{name}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def _decode(audio: Reference, sr: int | None) -> tuple[np.ndarray, int]:
    """Array (with ``sr``), WAV/FLAC/OGG bytes, or a path → (float array, rate)."""
    if isinstance(audio, (bytes, bytearray, memoryview, str, os.PathLike)):
        source = io.BytesIO(bytes(audio)) if isinstance(audio, (bytes, bytearray, memoryview)) else audio
        try:
            data, rate = sf.read(source, dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
            raise BadInputError(f"speaker reference could not be decoded: {exc}") from exc
        return np.asarray(data), int(rate)
    if sr is None:
        raise ValueError("prepare_reference needs the sample rate of an array")
    return np.asarray(audio), int(sr)


def prepare_reference(
    audio: Reference, sr: int | None = None, *, target_sr: int = CHATTERBOX_SR
) -> tuple[np.ndarray, int]:
    """A speaker reference ready for cloning: mono float32 at ``target_sr``.

    ``audio`` is an array (1-D, or 2-D with channels on the short axis) with its ``sr``, or
    encoded audio (bytes or a path). Raises BadInputError when it does not decode, has
    non-finite samples, is silent, or lasts 0.3 s or less. Longer than 10 s: the first 10 s.
    Shorter than 1.5 s: padded with trailing silence to 2.0 s.
    """
    data, rate = _decode(audio, sr)
    if rate <= 0:
        raise BadInputError(f"speaker reference has a bad sample rate {rate}")
    if data.ndim == 2:
        channels_axis = 1 if data.shape[1] <= data.shape[0] else 0
        data = data.mean(axis=channels_axis)
    elif data.ndim != 1:
        raise BadInputError(f"speaker reference must be mono or multi-channel audio, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.number):
        raise BadInputError("speaker reference is not numeric audio")
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float64) / float(np.iinfo(data.dtype).max)
    data = np.asarray(data, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise BadInputError("speaker reference has non-finite samples")
    seconds = data.size / rate
    if seconds <= REF_MIN_SECONDS:
        raise BadInputError(
            f"speaker reference is too short ({seconds:.2f} s; need more than {REF_MIN_SECONDS} s)"
        )
    if float(np.max(np.abs(data))) <= 1e-5:
        raise BadInputError("speaker reference is silent")
    if rate != target_sr:
        data = np.asarray(soxr.resample(data, rate, target_sr, quality="HQ"), dtype=np.float64)
    data = data[: int(REF_MAX_SECONDS * target_sr)]
    if data.size < REF_PAD_BELOW * target_sr:
        data = np.concatenate([data, np.zeros(round(REF_PAD_TO * target_sr) - data.size)])
    return np.ascontiguousarray(np.clip(data, -1.0, 1.0), dtype=np.float32), target_sr
