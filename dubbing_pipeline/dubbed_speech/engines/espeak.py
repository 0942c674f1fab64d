"""``espeak``: the Debian ``espeak-ng`` program (GPL-3.0, run as a separate process).

Every language espeak-ng knows; speaking rate through ``-s`` (words per minute, 175 × rate,
rounded to an integer). Voices: ``male`` (the language's default voice) and ``female`` (the ``f2``
variant, the most intelligible female variant measured); any espeak-ng variant name (``m3``,
``f5``, ``klatt``...) also works. Its IPA (``espeak_ipa``) is Kokoro's phonemizer too.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np

from dubbing_pipeline.common.tool_env import tool_env
from dubbing_pipeline.dubbed_speech.engine import TTSEngine, language_code, parse_wav
from dubbing_pipeline.errors import ModelMissingError, ProviderError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings

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


def _spoken(args: list[str], text: str, what: str, timeout: float) -> bytes:
    """What espeak-ng writes for ``text`` (read from stdin, never argv: a text may look like an option)."""
    proc = subprocess.run(
        args, input=text.encode("utf-8"), capture_output=True, check=False, timeout=timeout, env=tool_env()
    )
    if proc.returncode != 0:
        raise ProviderError(f"{what} failed: {proc.stderr.decode('utf-8', 'replace').strip()[:200]}")
    return proc.stdout


def espeak_ipa(text: str, voice: str) -> str:
    """espeak-ng's IPA for ``text`` with ``^`` tying multi-letter phonemes; one line."""
    args = [_espeak_binary(), "-q", "-b", "1", "--ipa", "--tie=^", "-v", voice, "--stdin"]
    return " ".join(_spoken(args, text, "espeak-ng --ipa", 120).decode("utf-8", "replace").split())


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
        proc = subprocess.run(
            [self.binary, "--version"], capture_output=True, check=False, timeout=30, env=tool_env()
        )
        text = proc.stdout.decode("utf-8", "replace")
        match = re.search(r"text-to-speech:\s*(\S+)", text)
        self.version = match.group(1) if match else "unknown"
        listing = subprocess.run(
            [self.binary, "--voices"], capture_output=True, check=False, timeout=30, env=tool_env()
        )
        installed = espeak_voice_names(listing.stdout.decode("utf-8", "replace"))
        self.languages = frozenset(iso for iso, voice in ESPEAK_LANGUAGES.items() if voice in installed)

    def unsupported(self, language: str) -> str:
        if language_code(language) in ESPEAK_LANGUAGES:
            return f"espeak-ng {self.version} here has no {ESPEAK_LANGUAGES[language_code(language)]!r} voice"
        return super().unsupported(language)

    def describe(self) -> JsonObject:
        return {
            "engine": self.name,
            "espeak_ng": self.version,
            "wpm": ESPEAK_WPM,
            "variants": ESPEAK_VARIANTS,
        }

    def voice_id(self, language: str, voice: str | None) -> str:
        base = ESPEAK_LANGUAGES[language_code(language)]
        variant = ESPEAK_VARIANTS.get(voice or "male", voice or "")
        if variant and not _VARIANT_RE.match(variant):
            raise ValueError(f"bad espeak-ng voice variant {voice!r}")
        return f"{base}+{variant}" if variant else base

    def _synthesize(self, text: str, language: str, voice: str | None, rate: float) -> np.ndarray:
        wpm = round(ESPEAK_WPM * rate)
        cmd = [self.binary, "-b", "1", "-z", "-v", self.voice_id(language, voice), "-s", str(wpm)]
        audio, sr = parse_wav(_spoken([*cmd, "--stdout", "--stdin"], text, "espeak-ng", 300))
        if sr != self.sample_rate:
            raise ProviderError(f"espeak-ng produced {sr} Hz audio, expected {self.sample_rate}")
        return audio
