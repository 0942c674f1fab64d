"""``chatterbox``: Chatterbox multilingual zero-shot voice cloning (GPU; CPU works but is very slow).

The model directory, the speakers' references and the sampling settings are ``cloning``'s; this
module imports torch, chatterbox-tts and resemble-perth (which chatterbox marks everything with) at
its top: ``tts`` imports it only when voice cloning is chosen, after the directory is checked.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import perth
import soundfile as sf
import torch
from chatterbox.models.tokenizers import tokenizer as tokenizer_module
from chatterbox.mtl_tts import ChatterboxMultilingualTTS

from dubbing_pipeline.common.offline import keep_hub_offline
from dubbing_pipeline.dubbed_speech.cloning import (
    BUILTIN_CONDS,
    CFG_WEIGHT,
    CHATTERBOX_LANGUAGES,
    CHATTERBOX_SR,
    EXAGGERATION,
    TEMPERATURE,
    Reference,
    chatterbox_model_dir,
    model_fingerprint,
    prepare_reference,
)
from dubbing_pipeline.dubbed_speech.engine import TTSEngine, version_of
from dubbing_pipeline.errors import ModelMissingError, ProviderError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings


@dataclass
class _Speaker:
    reference: np.ndarray
    digest: str
    conds: object = None  # the model's conditionals of this voice, once computed


class VoiceCloningTTS(TTSEngine):
    """Chatterbox multilingual zero-shot voice cloning (GPU; CPU works but is very slow)."""

    name = "chatterbox"
    languages = CHATTERBOX_LANGUAGES
    supports_rate = False
    sample_rate = CHATTERBOX_SR
    voices = ("builtin",)

    def __init__(self, settings: Settings) -> None:
        self.model_dir = chatterbox_model_dir(settings)
        self.device = settings.device or "cpu"
        self.cpu_threads = max(1, int(settings.cpu_threads))
        self.model_id = f"chatterbox-mtl-{model_fingerprint(self.model_dir)}"
        self.has_builtin = (self.model_dir / BUILTIN_CONDS).is_file()
        self._model: ChatterboxMultilingualTTS | None = None
        self._builtin: object = None
        self._speakers: dict[str, _Speaker] = {}
        self._lock = threading.RLock()

    # -- identity

    def describe(self) -> JsonObject:
        return {
            "engine": self.name,
            "model": self.model_id,
            "chatterbox_tts": version_of("chatterbox-tts"),
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

    def register_speaker(self, speaker: str, audio: Reference, sr: int | None = None) -> str:
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

    def _load(self) -> ChatterboxMultilingualTTS:
        with self._lock:
            if self._model is None:
                self._model = self._loaded_model()
                self._builtin = self._model.conds
            return self._model

    def _loaded_model(self) -> ChatterboxMultilingualTTS:
        keep_hub_offline()
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
            torch.set_num_threads(self.cpu_threads)
        try:
            return ChatterboxMultilingualTTS.from_local(str(self.model_dir), self.device)
        except Exception as exc:
            # Not only OSError/RuntimeError: a damaged t3 file raises safetensors'
            # SafetensorError, a damaged .pt an UnpicklingError, a tokenizer JSON without
            # [START]/[STOP] an AssertionError: all plain Exception subclasses. Weights that
            # do not load will not load on a retry: model_missing, as for the other providers.
            raise ModelMissingError(
                f"chatterbox could not load {self.model_id}: {type(exc).__name__}: {exc}"
            ) from exc

    def _keep_offline(self) -> None:
        """Point chatterbox's one hub download (the Chinese Cangjie table) at the model directory.

        ``MTLTokenizer`` calls ``hf_hub_download(..., "Cangjie5_TC.json")`` whenever it is
        built, for every language; here it resolves to ``<model dir>/Cangjie5_TC.json`` or
        fails (chatterbox logs a warning and goes on), and never touches the network.
        """
        folder = self.model_dir

        def local_only(repo_id: str = "", filename: str = "", **_: object) -> str:
            path = folder / Path(filename).name
            if not path.is_file():
                raise FileNotFoundError(f"{filename} is not in the chatterbox model directory")
            return str(path)

        tokenizer_module.hf_hub_download = local_only

    def _conditionals(self, model: ChatterboxMultilingualTTS, voice: str | None) -> object:
        """The cached conditionals of ``voice`` (computed once per speaker)."""
        speaker = self._speakers.get(voice or "")
        if speaker is None:
            if voice not in (None, "", "builtin", "male", "female") or self._builtin is None:
                raise ValueError(f"no reference registered for speaker {voice!r} (register_speaker first)")
            return self._builtin
        if speaker.conds is None:
            with tempfile.TemporaryDirectory(prefix="dubbing-ref-") as tmp:
                path = Path(tmp) / "reference.wav"
                sf.write(path, speaker.reference, self.sample_rate, subtype="FLOAT")
                model.prepare_conditionals(str(path), exaggeration=EXAGGERATION)
            speaker.conds = model.conds
        return speaker.conds

    def _synthesize(self, text: str, language: str, voice: str | None, rate: float) -> np.ndarray:
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
