"""Production voice cloning: Chatterbox multilingual from a local model directory.

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
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dubbing_pipeline.dubbed_speech.engine import TTSEngine
from dubbing_pipeline.errors import BadInputError, ModelMissingError, ProviderError, require_dir
from dubbing_pipeline.offline import keep_hub_offline
from dubbing_pipeline.settings import Settings

log = logging.getLogger(__name__)

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


def _decode(audio: Any, sr: int | None) -> tuple[np.ndarray, int]:
    """Array (with ``sr``), WAV/FLAC/OGG bytes, or a path → (float array, rate)."""
    if isinstance(audio, (bytes, bytearray, memoryview, str, os.PathLike)):
        import soundfile as sf

        source: Any = io.BytesIO(bytes(audio)) if isinstance(audio, (bytes, bytearray, memoryview)) else audio
        try:
            data, rate = sf.read(source, dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
            raise BadInputError(f"speaker reference could not be decoded: {exc}") from exc
        return np.asarray(data), int(rate)
    if sr is None:
        raise ValueError("prepare_reference needs the sample rate of an array")
    return np.asarray(audio), int(sr)


def prepare_reference(
    audio: Any, sr: int | None = None, *, target_sr: int = CHATTERBOX_SR
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
        import soxr

        data = np.asarray(soxr.resample(data, rate, target_sr, quality="HQ"), dtype=np.float64)
    data = data[: int(REF_MAX_SECONDS * target_sr)]
    if data.size < REF_PAD_BELOW * target_sr:
        data = np.concatenate([data, np.zeros(round(REF_PAD_TO * target_sr) - data.size)])
    return np.ascontiguousarray(np.clip(data, -1.0, 1.0), dtype=np.float32), target_sr


@dataclass
class _Speaker:
    reference: np.ndarray
    digest: str
    conds: Any = None


def _fingerprint(folder: Path) -> str:
    """Names and sizes of the checkpoint files (hashing gigabytes on every start is too slow)."""
    digest = hashlib.sha256()
    for name in (*REQUIRED_FILES, BUILTIN_CONDS):
        path = folder / name
        if path.is_file():
            digest.update(f"{name}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:16]


class VoiceCloningTTS(TTSEngine):
    """Chatterbox multilingual zero-shot voice cloning (GPU; CPU works but is very slow)."""

    name = "chatterbox"
    languages = CHATTERBOX_LANGUAGES
    supports_rate = False
    sample_rate = CHATTERBOX_SR
    voices = ("builtin",)

    def __init__(self, settings: Settings) -> None:
        folder = require_dir(
            getattr(settings, "tts_model_dir", ""), "chatterbox voice cloning", "DUBBING_TTS_MODEL_DIR"
        )
        self.model_dir = Path(folder)
        missing = [name for name in REQUIRED_FILES if not (self.model_dir / name).is_file()]
        if missing:
            raise ModelMissingError(
                f"chatterbox model directory lacks {', '.join(missing)} (DUBBING_TTS_MODEL_DIR)"
            )
        if importlib.util.find_spec("chatterbox") is None:
            raise ModelMissingError("voice cloning needs the chatterbox-tts package (GPU image)")
        self.device = settings.device or "cpu"
        self.cpu_threads = max(1, int(getattr(settings, "cpu_threads", 2)))
        self.model_id = f"chatterbox-mtl-{_fingerprint(self.model_dir)}"
        self.has_builtin = (self.model_dir / BUILTIN_CONDS).is_file()
        self._model: Any = None
        self._builtin: Any = None
        self._speakers: dict[str, _Speaker] = {}
        self._lock = threading.RLock()

    # -- identity

    def describe(self) -> dict[str, Any]:
        try:
            version = metadata.version("chatterbox-tts")
        except metadata.PackageNotFoundError:
            version = "absent"
        return {
            "engine": self.name,
            "model": self.model_id,
            "chatterbox_tts": version,
            "device": self.device.partition(":")[0],
            "exaggeration": EXAGGERATION,
            "cfg_weight": CFG_WEIGHT,
            "temperature": TEMPERATURE,
            "seed": "sha256(reference|language|text)",
        }

    def voice_key(self, voice: str | None) -> str:
        """What a line's audio depends on besides the text: the speaker's reference hash."""
        with self._lock:
            speaker = self._speakers.get(voice or "")
        return speaker.digest if speaker is not None else "builtin"

    # -- speakers

    def register_speaker(self, speaker: str, audio: Any, sr: int | None = None) -> str:
        """Store ``speaker``'s reference (see ``prepare_reference``); returns its sha256 prefix.

        Registering the same reference again keeps the cloned voice; a different one
        replaces it.
        """
        reference, _ = prepare_reference(audio, sr, target_sr=self.sample_rate)
        digest = hashlib.sha256(reference.tobytes()).hexdigest()[:16]
        with self._lock:
            current = self._speakers.get(speaker)
            if current is None or current.digest != digest:
                self._speakers[speaker] = _Speaker(reference, digest)
        return digest

    def speakers(self) -> list[str]:
        with self._lock:
            return sorted(self._speakers)

    # -- model

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                keep_hub_offline()
                try:
                    import perth
                    from chatterbox.mtl_tts import ChatterboxMultilingualTTS
                except ImportError as exc:
                    raise ModelMissingError(f"chatterbox-tts is not importable: {exc}") from exc
                if getattr(perth, "PerthImplicitWatermarker", None) is None:
                    # resemble-perth 1.0.1 imports pkg_resources (gone from setuptools 82) inside a
                    # try/except that sets the class to None; chatterbox then fails with
                    # "TypeError: 'NoneType' object is not callable" after loading every weight.
                    raise ModelMissingError(
                        "chatterbox's watermarker (resemble-perth PerthImplicitWatermarker) is not "
                        "importable: it needs pkg_resources, i.e. setuptools<82"
                    )
                self._keep_offline()
                if self.device.partition(":")[0] == "cpu":
                    # Like every torch provider here: a fixed thread count (DUBBING_CPU_THREADS).
                    # torch's default (all cores) oversubscribes a shared CPU: OpenMP spin-waits
                    # made one line 8x slower on a loaded 2-core machine.
                    import torch

                    torch.set_num_threads(self.cpu_threads)
                try:
                    self._model = ChatterboxMultilingualTTS.from_local(str(self.model_dir), self.device)
                except Exception as exc:
                    # Not only OSError/RuntimeError: a damaged t3 file raises safetensors'
                    # SafetensorError, a damaged .pt an UnpicklingError, a tokenizer JSON without
                    # [START]/[STOP] an AssertionError: all plain Exception subclasses. Weights that
                    # do not load will not load on a retry: model_missing, as for the other providers.
                    raise ModelMissingError(
                        f"chatterbox could not load {self.model_id}: {type(exc).__name__}: {exc}"
                    ) from exc
                self._builtin = self._model.conds
            return self._model

    def _keep_offline(self) -> None:
        """Point chatterbox's one hub download (the Chinese Cangjie table) at the model directory.

        ``MTLTokenizer`` calls ``hf_hub_download(..., "Cangjie5_TC.json")`` whenever it is
        built, for every language; here it resolves to ``<model dir>/Cangjie5_TC.json`` or
        fails (chatterbox logs a warning and goes on), and never touches the network.
        """
        try:
            import chatterbox.models.tokenizers.tokenizer as tokenizer_module
        except ImportError:
            return
        folder = self.model_dir

        def local_only(repo_id: str = "", filename: str = "", **_: Any) -> str:
            path = folder / Path(filename).name
            if not path.is_file():
                raise FileNotFoundError(f"{filename} is not in the chatterbox model directory")
            return str(path)

        tokenizer_module.hf_hub_download = local_only

    def _conditionals(self, model: Any, voice: str | None) -> Any:
        """The cached conditionals of ``voice`` (computed once per speaker)."""
        speaker = self._speakers.get(voice or "")
        if speaker is None:
            if voice not in (None, "", "builtin", "male", "female") or self._builtin is None:
                raise ValueError(f"no reference registered for speaker {voice!r} (register_speaker first)")
            return self._builtin
        if speaker.conds is None:
            import soundfile as sf

            with tempfile.TemporaryDirectory(prefix="dubbing-ref-") as tmp:
                path = Path(tmp) / "reference.wav"
                sf.write(path, speaker.reference, self.sample_rate, subtype="FLOAT")
                model.prepare_conditionals(str(path), exaggeration=EXAGGERATION)
            speaker.conds = model.conds
        return speaker.conds

    def _synthesize(self, text: str, language: str, voice: str | None, rate: float) -> np.ndarray:
        import torch

        with self._lock:
            model = self._load()
            model.conds = self._conditionals(model, voice)
            seed_text = f"{self.voice_key(voice)}|{language}|{text}".encode()
            seed = int.from_bytes(hashlib.sha256(seed_text).digest()[:4], "little")
            torch.manual_seed(seed)
            try:
                wav = model.generate(
                    text,
                    language_id=language,
                    exaggeration=EXAGGERATION,
                    cfg_weight=CFG_WEIGHT,
                    temperature=TEMPERATURE,
                )
            except RuntimeError as exc:
                raise ProviderError(f"chatterbox synthesis failed: {exc}") from exc
        if hasattr(wav, "detach"):
            wav = wav.detach().cpu().numpy()
        return np.asarray(wav, dtype=np.float32).reshape(-1)
