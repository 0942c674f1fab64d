"""The audio watermark's loader against the library it replaces: ``perth.StftProcessor`` is
bit-for-bit torchaudio's ``Spectrogram``/``InverseSpectrogram`` with Perth's own parameters
(torchaudio 2.8's pure-Python transforms, installed by ``.ci/install-providers`` for pyannote),
so the network sees exactly what Perth's ``AudioProcessor`` would give it."""

from __future__ import annotations

import numpy as np
import pytest

from dubbing_pipeline.demo import DEMO_VIDEO
from dubbing_pipeline.provenance.perth import StftProcessor
from dubbing_pipeline.provenance.watermark import MARK_RATE, PerthWatermarker


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    import subprocess

    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", "6", "-t", "8", "-i", str(DEMO_VIDEO), "-ac", "1",
         "-ar", str(MARK_RATE), "-f", "f32le", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.float32).copy()


def test_the_stft_pair_is_torchaudios(speech: np.ndarray) -> None:
    import torch
    from torchaudio.transforms import InverseSpectrogram, Spectrogram

    marker = PerthWatermarker("cpu", 2)
    net = marker.engine().net
    hp = net.hp
    assert isinstance(net.ap, StftProcessor)
    common = {"n_fft": hp.n_fft, "win_length": hp.window_size, "hop_length": hp.hop_size}
    theirs = Spectrogram(**common, power=None, window_fn=torch.hann_window, normalized=False)
    inverse = InverseSpectrogram(**common, window_fn=torch.hann_window, normalized=False)
    x = torch.from_numpy(speech)
    spec = theirs(x)
    ours = torch.stft(
        x, n_fft=hp.n_fft, hop_length=hp.hop_size, win_length=hp.window_size, window=net.ap.window,
        center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
    )  # fmt: skip
    assert torch.equal(spec, ours)
    mag, phase = net.ap.signal_to_magphase(x)
    assert torch.equal(
        net.ap.magphase_to_signal(mag, phase), inverse(net.ap._utils.magphase_to_cx(hp, mag, phase))
    )


def test_marked_speech_is_detected_and_deterministic(speech: np.ndarray) -> None:
    marker = PerthWatermarker("cpu", 2)
    marked = marker.embed(speech, MARK_RATE)
    assert marked.shape == speech.shape and np.array_equal(marked, marker.embed(speech, MARK_RATE))
    snr = 10 * np.log10(float(np.sum(speech**2)) / float(np.sum((marked - speech) ** 2)))
    found, clean = marker.detect(marked, MARK_RATE), marker.detect(speech, MARK_RATE)
    print(f"perth: SNR {snr:.1f} dB; marked {found.confidence}, unmarked {clean.confidence}")
    assert found.detected and found.confidence >= 0.9 and clean.confidence <= 0.35
    # at another rate (the engines' 24 kHz): resampled in and out, still detected
    import soxr

    at24 = np.asarray(soxr.resample(speech, MARK_RATE, 24000), dtype=np.float32)
    assert marker.detect(marker.embed(at24, 24000), 24000).detected
