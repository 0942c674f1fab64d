"""Chatterbox multilingual voice cloning, end to end through chatterbox-tts, with random weights.

The model directory is built by ``dubbing_pipeline.tooling.structural.chatterbox`` (the real T3, S3Gen and
voice encoder classes, seeded; T3 reduced to 14 layers, see ``chatterbox_size``) and loaded by
the production adapter ``VoiceCloningTTS`` through ``ChatterboxMultilingualTTS.from_local``.
The audio is noise by construction: these tests check loading, rates, shapes, padding,
determinism, offline loading and error classes, not quality.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dubbing_pipeline.dubbed_speech.cloning import CHATTERBOX_SR, REQUIRED_FILES, prepare_reference
from dubbing_pipeline.dubbed_speech.engines.chatterbox import VoiceCloningTTS
from dubbing_pipeline.errors import BadInputError, ModelMissingError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.tooling.structural.chatterbox import (
    MANIFEST_FILE,
    PLANTED_TOKENS,
    build_chatterbox_multilingual,
    chatterbox_size,
)

pytestmark = pytest.mark.production_provider

SAMPLES_PER_TOKEN = CHATTERBOX_SR // 25
"""S3Gen: 25 speech tokens per second of 24 kHz audio."""


def _tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    mono = 0.3 * np.sin(2 * np.pi * 180.0 * t) * (1.0 + 0.5 * np.sin(2 * np.pi * 3.0 * t))
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


class _NoNetwork:
    """Records and fails every name lookup and socket connection while installed.

    Both: an HTTP client resolves the host (``socket.getaddrinfo``) before it connects, and on a
    machine without DNS the lookup is where it fails.
    """

    def __init__(self) -> None:
        self.attempts: list[Any] = []

    def connect(self, sock: socket.socket, address: Any) -> None:
        self.attempts.append(address)
        raise OSError(f"network access attempted: {address!r}")

    def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        self.attempts.append(host)
        raise socket.gaierror(f"name lookup attempted: {host!r}")

    def install(self, patch: pytest.MonkeyPatch) -> None:
        patch.setattr(socket.socket, "connect", self.connect)
        patch.setattr(socket, "getaddrinfo", self.getaddrinfo)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    guard = _NoNetwork()
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        guard.install(patch)
        folder = build_chatterbox_multilingual(tmp_path_factory.mktemp("chatterbox"), seed=0)
    print(f"chatterbox fixture built in {time.monotonic() - started:.1f} s")
    assert guard.attempts == [], "building the fixture tried the network"
    return folder


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> Iterator[tuple[VoiceCloningTTS, _NoNetwork]]:
    """One adapter, its model loaded with every socket connection refused."""
    guard = _NoNetwork()
    with pytest.MonkeyPatch.context() as patch, chatterbox_size(False):
        import huggingface_hub.constants as hub_constants

        patch.delenv("HF_HUB_OFFLINE", raising=False)
        patch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # as if imported online; restored after
        guard.install(patch)
        engine = VoiceCloningTTS(Settings(tts_model_dir=str(model_dir), device="cpu", cpu_threads=1))
        started = time.monotonic()
        engine._load()
        print(f"chatterbox loaded in {time.monotonic() - started:.1f} s")
        yield engine, guard


def _synth(engine: VoiceCloningTTS, text: str, voice: str | None) -> np.ndarray:
    started = time.monotonic()
    audio = engine.synthesize(text, "es", voice=voice)
    print(f"chatterbox line ({voice}) in {time.monotonic() - started:.1f} s: {audio.size} samples")
    return audio


# -- reference clips (no model needed)


def test_short_stereo_reference_is_mono_resampled_and_padded_to_2s() -> None:
    reference, sr = prepare_reference(_tone(1.0, 16000, channels=2), 16000)
    assert sr == CHATTERBOX_SR == 24000
    assert reference.dtype == np.float32 and reference.ndim == 1
    # 1.0 s < 1.5 s: resampled to 24000 samples, then padded with silence to 2.0 s.
    assert reference.size == 48000
    assert np.all(reference[24000:] == 0.0)
    assert np.max(np.abs(reference[:24000])) > 0.2


def test_reference_rules_at_the_boundaries() -> None:
    # 1.5 s is not padded (the rule is "shorter than 1.5 s").
    assert prepare_reference(_tone(1.5, 24000), 24000)[0].size == 36000
    assert prepare_reference(_tone(1.49, 24000), 24000)[0].size == 48000
    # Longer than 10 s: the first 10 s; channels-first stereo is averaged too.
    assert prepare_reference(_tone(12.0, 48000, channels=2).T, 48000)[0].size == 240000
    # int16 is scaled to [-1, 1].
    pcm = (_tone(2.0, 24000) * 32767).astype(np.int16)
    assert np.max(np.abs(prepare_reference(pcm, 24000)[0])) == pytest.approx(0.45, abs=0.01)


@pytest.mark.parametrize(
    ("audio", "sr", "needle"),
    [
        (_tone(0.3, 24000), 24000, "too short"),
        (np.zeros(48000), 24000, "silent"),
        (np.full(48000, np.nan), 24000, "non-finite"),
        (b"not audio at all", None, "could not be decoded"),
        (np.zeros((2, 2, 2)), 24000, "mono or multi-channel"),
    ],
)
def test_unusable_reference_is_bad_input(audio: Any, sr: int | None, needle: str) -> None:
    with pytest.raises(BadInputError, match=needle):
        prepare_reference(audio, sr)


# -- configuration and model files


def test_missing_directory_is_model_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="DUBBING_TTS_MODEL_DIR"):
        VoiceCloningTTS(Settings(tts_model_dir=""))
    with pytest.raises(ModelMissingError, match="not found"):
        VoiceCloningTTS(Settings(tts_model_dir=str(tmp_path / "absent")))


def _partial_copy(model_dir: Path, dest: Path, *, without: str = "", damaged: str = "") -> Path:
    dest.mkdir()
    for path in model_dir.iterdir():
        if path.name == damaged:
            (dest / path.name).write_bytes(path.read_bytes()[:4096])
        elif path.name != without:
            (dest / path.name).symlink_to(path)
    return dest


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_missing_model_file_is_model_missing(model_dir: Path, tmp_path: Path, name: str) -> None:
    folder = _partial_copy(model_dir, tmp_path / "partial", without=name)
    with pytest.raises(ModelMissingError, match=name.replace(".", r"\.")):
        VoiceCloningTTS(Settings(tts_model_dir=str(folder)))


def test_damaged_checkpoint_is_a_provider_error(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    folder = _partial_copy(model_dir, tmp_path / "damaged", damaged="t3_mtl23ls_v2.safetensors")
    engine = VoiceCloningTTS(Settings(tts_model_dir=str(folder), cpu_threads=1))
    with chatterbox_size(False), pytest.raises(ModelMissingError, match="could not load"):
        engine._load()


def test_missing_watermarker_is_model_missing(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import perth

    monkeypatch.setattr(perth, "PerthImplicitWatermarker", None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    engine = VoiceCloningTTS(Settings(tts_model_dir=str(model_dir)))
    with pytest.raises(ModelMissingError, match="setuptools<82"):
        engine._load()


# -- the model


def test_fixture_layout(model_dir: Path) -> None:
    names = {path.name for path in model_dir.iterdir()}
    assert names == {*REQUIRED_FILES, "conds.pt", MANIFEST_FILE}


def test_loads_offline_from_the_directory(loaded: tuple[VoiceCloningTTS, _NoNetwork]) -> None:
    import os

    import chatterbox.models.tokenizers.tokenizer as tokenizer_module

    engine, guard = loaded
    assert guard.attempts == []
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    # huggingface_hub was imported (by the build) before the adapter set the variable.
    import huggingface_hub.constants as hub_constants

    assert hub_constants.HF_HUB_OFFLINE is True
    # The one hub download chatterbox makes resolves inside the model directory or fails.
    with pytest.raises(FileNotFoundError, match=r"Cangjie5_TC\.json"):
        tokenizer_module.hf_hub_download(repo_id="ResembleAI/chatterbox", filename="Cangjie5_TC.json")
    assert engine.has_builtin and engine._builtin is not None
    assert type(engine._model).__name__ == "ChatterboxMultilingualTTS"
    assert engine._model.sr == engine.sample_rate == CHATTERBOX_SR
    assert engine.describe()["chatterbox_tts"] == "0.1.7"


def test_cloned_line_and_determinism(loaded: tuple[VoiceCloningTTS, _NoNetwork]) -> None:
    engine, guard = loaded
    digest = engine.register_speaker("SPEAKER_00", _tone(1.0, 16000, channels=2), 16000)
    assert engine.voice_key("SPEAKER_00") == digest
    first = _synth(engine, "Hola, ¿cómo estás?", "SPEAKER_00")
    assert first.dtype == np.float32 and first.ndim == 1
    assert np.all(np.isfinite(first))
    # Between 1 and 2 x planted speech tokens (plus the forced stop), trimmed of silence.
    planted = PLANTED_TOKENS[False]
    assert 0 < first.size <= (2 * planted + 2) * SAMPLES_PER_TOKEN
    assert float(np.max(np.abs(first))) > 0.0
    # The speaker's conditionals are computed once and reused.
    conds = engine._speakers["SPEAKER_00"].conds
    assert conds is not None
    # Same line, same speaker: the same samples (sampling is seeded per line).
    again = _synth(engine, "Hola, ¿cómo estás?", "SPEAKER_00")
    assert engine._speakers["SPEAKER_00"].conds is conds
    assert again.tobytes() == first.tobytes()
    assert guard.attempts == []


def test_builtin_voice_and_unknown_speaker(loaded: tuple[VoiceCloningTTS, _NoNetwork]) -> None:
    engine, _ = loaded
    audio = _synth(engine, "Buenos días.", None)
    assert audio.dtype == np.float32 and audio.size > 0 and np.all(np.isfinite(audio))
    with pytest.raises(ValueError, match="register_speaker"):
        engine.synthesize("Hola.", "es", voice="SPEAKER_99")
