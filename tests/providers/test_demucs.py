"""Demucs through demucs's own loader and ``apply_model``, with a structural htdemucs.

The repository is written by ``dubbing_pipeline.tooling.structural.demucs`` in the released layout
(``htdemucs.yaml`` + ``955717e8-<sha>.th``, float16 state, the real ``HTDemucs`` class) and
loaded by ``DemucsSeparator`` exactly as a mounted production volume would be. The model is the
reduced build: same classes, same 7.8 s segment (so ``apply_model`` chunks, pads and trims the
way it does for the real one), fewer channels.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dubbing_pipeline.audio_stems import clear_separator_cache, make_separator, separate_file
from dubbing_pipeline.audio_stems.asset import BLOCK_SECONDS, OVERLAP_SECONDS
from dubbing_pipeline.demo import DEMO_VIDEO
from dubbing_pipeline.errors import ModelMissingError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.tooling.structural.demucs import SEGMENT, SIGNATURE, SOURCES, build_htdemucs_repo

pytestmark = pytest.mark.production_provider

SR = 44100


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_htdemucs_repo(tmp_path_factory.mktemp("demucs-repo"), seed=0)


@pytest.fixture(scope="module")
def separator(repo: Path):  # type: ignore[no-untyped-def]
    clear_separator_cache()
    yield make_separator(Settings(separator="demucs", demucs_repo=str(repo), cpu_threads=2))
    clear_separator_cache()


def _stereo_speech(dest: Path, seconds: float, extra_samples: int = 0) -> Path:
    """The demo's speech, 44.1 kHz stereo with different channels (right: delayed and quieter)."""
    raw = dest.with_suffix(".raw.wav")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(DEMO_VIDEO),
         "-t", f"{seconds + 1:.3f}",
         "-filter_complex", "[0:a]aresample=44100,pan=mono|c0=c0,asplit[l][r];"
         "[r]adelay=300,volume=0.6[rd];[l][rd]join=inputs=2:channel_layout=stereo[out]",
         "-map", "[out]", "-c:a", "pcm_f32le", str(raw)],
        check=True,
    )  # fmt: skip
    audio, rate = sf.read(str(raw), dtype="float32", always_2d=True)
    assert rate == SR
    n = round(seconds * SR) + extra_samples
    assert audio.shape[0] >= n
    sf.write(str(dest), audio[:n], SR, subtype="FLOAT")
    raw.unlink()
    return dest


def test_the_repository_loads_like_the_released_one(repo: Path, separator) -> None:  # type: ignore[no-untyped-def]
    (weights,) = sorted(repo.glob(f"{SIGNATURE}-*.th"))
    # save_with_checksum names the file after the first 8 hex digits of its sha256, as released
    assert weights.stem.split("-")[1] == hashlib.sha256(weights.read_bytes()).hexdigest()[:8]
    assert (separator.name, separator.model) == ("demucs", "htdemucs")
    assert (separator.sample_rate, separator.channels) == (SR, 2)
    info = separator.describe()
    assert info["sources"] == list(SOURCES)
    assert weights.name in info["weights"] and "htdemucs.yaml" in info["weights"]  # type: ignore[operator]
    bag = separator._net  # a yaml names a bag of models, even of one, as the released htdemucs
    assert type(bag).__name__ == "BagOfModels" and len(bag.models) == 1
    net = bag.models[0]
    assert type(net).__name__ == "HTDemucs" and float(net.segment) == float(SEGMENT)
    # the float16 checkpoint is loaded into a float32 model on the CPU
    assert {p.dtype for p in net.parameters()} == {__import__("torch").float32}
    assert {p.device.type for p in net.parameters()} == {"cpu"}


def test_a_short_odd_length_block_keeps_its_length(separator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """3 s + 123 samples is less than one 7.8 s segment: apply_model pads it and trims it back."""
    clip = _stereo_speech(tmp_path / "clip.wav", 3.0, extra_samples=123)
    mix, _ = sf.read(str(clip), dtype="float32", always_2d=True)
    block = np.ascontiguousarray(mix.T)
    vocals, background = separator.separate(block)
    assert vocals.shape == background.shape == block.shape == (2, 3 * SR + 123)
    assert vocals.dtype == background.dtype == np.float32
    assert np.isfinite(vocals).all() and np.isfinite(background).all()
    assert float(np.abs(vocals).max()) > 0 and float(np.abs(background).max()) > 0
    mono_v, mono_b = separator.separate(block[:1])  # dual mono in, averaged back to mono
    assert mono_v.shape == mono_b.shape == (1, block.shape[1])


def test_a_20_second_clip_is_exactly_as_long_and_identical_twice(separator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """20 s + 5 samples: several segments, the last one padded and centre-trimmed."""
    clip = _stereo_speech(tmp_path / "clip.wav", 20.0, extra_samples=5)
    frames = 20 * SR + 5
    digests = []
    for run in ("a", "b"):
        vocals, background = tmp_path / f"vocals-{run}.wav", tmp_path / f"background-{run}.wav"
        stats = separate_file(clip, vocals, background, separator.separate, SR)
        assert stats == {"frames": frames, "sample_rate": SR, "channels": 2, "blocks": 1}
        for stem in (vocals, background):
            info = sf.info(str(stem))
            assert (info.frames, info.samplerate, info.channels, info.subtype) == (frames, SR, 2, "FLOAT")
        digests.append((_sha(vocals), _sha(background)))
    assert digests[0] == digests[1]
    data, _ = sf.read(str(tmp_path / "vocals-a.wav"), dtype="float32")
    assert np.isfinite(data).all() and float(np.abs(data).max()) > 0


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_clip_longer_than_one_block_streams_through_two(separator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The stage's own block size (60 s): a 61 s clip is two blocks, crossfaded, exactly as long."""
    clip = _stereo_speech(tmp_path / "long.wav", BLOCK_SECONDS + 1.0, extra_samples=7)
    vocals, background = tmp_path / "vocals.wav", tmp_path / "background.wav"
    stats = separate_file(
        clip,
        vocals,
        background,
        separator.separate,
        SR,
        block_seconds=BLOCK_SECONDS,
        overlap_seconds=OVERLAP_SECONDS,
    )
    frames = round((BLOCK_SECONDS + 1.0) * SR) + 7
    assert stats == {"frames": frames, "sample_rate": SR, "channels": 2, "blocks": 2}
    for stem in (vocals, background):
        info = sf.info(str(stem))
        assert (info.frames, info.samplerate, info.channels) == (frames, SR, 2)
        data, _ = sf.read(str(stem), dtype="float32")
        assert np.isfinite(data).all()


def test_a_corrupt_checkpoint_is_a_clear_error_at_start(repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "htdemucs.yaml").write_text((repo / "htdemucs.yaml").read_text())
    (weights,) = sorted(repo.glob(f"{SIGNATURE}-*.th"))
    (broken / weights.name).write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _refused_at_start(broken)


def test_a_repository_without_the_weights_is_a_clear_error_at_start(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "htdemucs.yaml").write_text((repo / "htdemucs.yaml").read_text())
    _refused_at_start(tmp_path)


def _refused_at_start(folder: Path) -> None:
    clear_separator_cache()
    try:
        with pytest.raises(ModelMissingError, match="htdemucs"):
            make_separator(Settings(separator="demucs", demucs_repo=str(folder)))
    finally:
        clear_separator_cache()
