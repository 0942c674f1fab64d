"""Voice matching on real synthetic speech, and speaker references for voice cloning."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dubbing_pipeline.dubbed_speech.cloning import CHATTERBOX_SR, prepare_reference
from dubbing_pipeline.dubbed_speech.voice import (
    FORMANT_SHIFT,
    formant_ratio,
    match_voice,
    median_f0,
    voice_for_speaker,
)
from dubbing_pipeline.errors import BadInputError

TEXT = "No sabía que estabas ahí. Bueno, no hay tanta diferencia."


@pytest.fixture(scope="module")
def voices() -> dict[str, tuple[np.ndarray, int]]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from dubbing_pipeline.dubbed_speech.tts import EspeakEngine

    engine = EspeakEngine()
    return {v: (engine.synthesize(TEXT, "es", voice=v), engine.sample_rate) for v in ("male", "female")}


def _tone(f0: float, seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    # a few harmonics so it looks like a voiced sound to the pitch tracker
    wave = np.sum([np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)], axis=0)
    return np.asarray(0.2 * wave, dtype=np.float32)


# --------------------------------------------------------------------------- F0


def test_median_f0_of_tones_and_silence() -> None:
    assert median_f0(_tone(150.0), 16000) == pytest.approx(150.0, rel=0.02)
    assert median_f0(_tone(230.0), 16000) == pytest.approx(230.0, rel=0.02)
    assert median_f0(np.zeros(16000, dtype=np.float32), 16000) is None
    assert median_f0(np.zeros(0, dtype=np.float32), 16000) is None
    assert median_f0(_tone(150.0, seconds=0.05), 16000) is None
    with pytest.raises(ValueError):
        median_f0(np.zeros((2, 100)), 16000)


def test_median_f0_of_the_engine_voices(voices: dict[str, tuple[np.ndarray, int]]) -> None:
    male = median_f0(*voices["male"])
    female = median_f0(*voices["female"])
    assert male is not None and female is not None
    assert 80 < male < 150 < female < 280
    assert voice_for_speaker(male) == "male"
    assert voice_for_speaker(female) == "female"


@pytest.mark.parametrize(
    ("voice", "target"),
    [("male", 210.0), ("male", 95.0), ("male", 140.0), ("female", 110.0), ("female", 250.0)],
)
def test_match_voice_moves_the_median_to_the_target(
    voices: dict[str, tuple[np.ndarray, int]], voice: str, target: float
) -> None:
    audio, sr = voices[voice]
    out = match_voice(audio, sr, target, gender_shift=True)
    assert out.dtype == np.float32
    assert out.size == audio.size  # duration kept exactly
    moved = median_f0(out, sr)
    assert moved is not None
    assert abs(moved - target) <= 0.10 * target, (voice, target, moved)
    assert float(np.max(np.abs(out))) == pytest.approx(float(np.max(np.abs(audio))), rel=1e-3)


def test_match_voice_is_deterministic(voices: dict[str, tuple[np.ndarray, int]]) -> None:
    audio, sr = voices["male"]
    first = match_voice(audio, sr, 200.0, gender_shift=True)
    assert np.array_equal(first, match_voice(audio, sr, 200.0, gender_shift=True))
    # without the formant shift the result differs but the pitch still moves
    plain = match_voice(audio, sr, 200.0, gender_shift=False)
    assert not np.array_equal(first, plain)
    moved = median_f0(plain, sr)
    assert moved is not None and abs(moved - 200.0) <= 20.0


def test_match_voice_leaves_audio_alone_when_there_is_nothing_to_do(
    voices: dict[str, tuple[np.ndarray, int]],
) -> None:
    audio, sr = voices["male"]
    source = median_f0(audio, sr)
    assert source is not None
    assert np.array_equal(match_voice(audio, sr, None, gender_shift=True), audio)
    assert np.array_equal(match_voice(audio, sr, source * 1.01, gender_shift=True), audio)
    silence = np.zeros(sr, dtype=np.float32)
    assert np.array_equal(match_voice(silence, sr, 200.0, gender_shift=True), silence)
    assert match_voice(np.zeros(0, dtype=np.float32), sr, 200.0, gender_shift=True).size == 0
    with pytest.raises(ValueError):
        match_voice(audio, sr, 20.0, gender_shift=True)
    with pytest.raises(ValueError):
        match_voice(audio, sr, float("nan"), gender_shift=True)


def test_formant_ratio_rule() -> None:
    assert formant_ratio(110.0, 220.0, gender_shift=True) == FORMANT_SHIFT
    assert formant_ratio(220.0, 110.0, gender_shift=True) == pytest.approx(1 / FORMANT_SHIFT)
    assert formant_ratio(110.0, 125.0, gender_shift=True) == 1.0
    assert formant_ratio(200.0, 180.0, gender_shift=True) == 1.0
    assert formant_ratio(110.0, 220.0, gender_shift=False) == 1.0


def test_voice_for_speaker_threshold() -> None:
    assert voice_for_speaker(100.0) == "male"
    assert voice_for_speaker(164.9) == "male"
    assert voice_for_speaker(165.0) == "female"
    assert voice_for_speaker(230.0) == "female"
    assert voice_for_speaker(None) == "male"
    assert voice_for_speaker(float("nan")) == "male"


# --------------------------------------------------------------------------- references


def test_prepare_reference_pads_a_short_stereo_clip_to_two_seconds() -> None:
    sr = 16000
    tone = _tone(200.0, seconds=1.0, sr=sr)
    stereo = np.stack([tone, 0.5 * tone], axis=1)
    ref, rate = prepare_reference(stereo, sr)
    assert rate == CHATTERBOX_SR == 24000
    assert ref.ndim == 1 and ref.dtype == np.float32
    assert ref.size == 2 * 24000
    assert np.all(ref[int(1.05 * 24000) :] == 0.0)  # the padding is silence
    assert float(np.max(np.abs(ref[:24000]))) > 0.1
    # channels-first input is recognised too
    assert prepare_reference(stereo.T, sr)[0].size == 2 * 24000


def test_prepare_reference_keeps_longer_clips_and_caps_them() -> None:
    ref, _ = prepare_reference(_tone(150.0, seconds=1.6, sr=24000), 24000)
    assert ref.size == int(1.6 * 24000)
    ref, _ = prepare_reference(_tone(150.0, seconds=12.0, sr=8000), 8000)
    assert ref.size == 10 * 24000


def test_prepare_reference_decodes_bytes_paths_and_integers(tmp_path: Path) -> None:
    tone = _tone(180.0, seconds=0.8, sr=22050)
    buffer = io.BytesIO()
    sf.write(buffer, tone, 22050, format="WAV", subtype="PCM_16")
    ref, rate = prepare_reference(buffer.getvalue())
    assert rate == 24000 and ref.size == 2 * 24000
    path = tmp_path / "ref.flac"
    sf.write(path, tone, 22050)
    assert prepare_reference(path)[0].size == 2 * 24000
    assert prepare_reference(str(path), target_sr=16000)[0].size == 2 * 16000
    ints = (tone * 32767).astype(np.int16)
    ref, _ = prepare_reference(ints, 22050)
    assert float(np.max(np.abs(ref))) == pytest.approx(float(np.max(np.abs(tone))), rel=0.02)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(24000, dtype=np.float32),  # silent
        _tone(200.0, seconds=0.3, sr=24000),  # not more than 0.3 s
        np.full(24000, np.nan, dtype=np.float32),
        np.array(["a", "b"] * 12000),
        np.zeros((2, 2, 24000), dtype=np.float32),
        b"definitely not audio",
    ],
)
def test_prepare_reference_rejects_unusable_audio(bad: object) -> None:
    with pytest.raises(BadInputError):
        prepare_reference(bad, 24000)


def test_prepare_reference_needs_a_rate_for_arrays() -> None:
    with pytest.raises(ValueError):
        prepare_reference(_tone(150.0))
