"""Unit tests of the streaming code around a separator (``dubbing_pipeline.audio_stems.core``).

The separator here is a test double with a known answer, so block planning, crossfading,
frame counts and alignment can be checked exactly; the real model is tested in
``tests/test_stems.py``.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import soundfile as sf

from dubbing_pipeline.audio_stems.core import center_trim, plan_blocks, separate_file
from dubbing_pipeline.errors import BadInputError, ProviderError

SR = 8000


# --------------------------------------------------------------------------- center_trim


def test_center_trim_even_difference_is_symmetric() -> None:
    x = np.arange(10)
    assert center_trim(x, 6).tolist() == [2, 3, 4, 5, 6, 7]


def test_center_trim_odd_difference_drops_the_extra_sample_at_the_end() -> None:
    x = np.arange(10)
    # 3 extra samples: 1 from the start, 2 from the end
    assert center_trim(x, 7).tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert center_trim(np.arange(5), 4).tolist() == [0, 1, 2, 3]


def test_center_trim_undoes_symmetric_padding_on_the_last_axis() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 101))
    for before, after in [(0, 0), (4, 4), (3, 4), (7, 8)]:
        padded = np.pad(x, [(0, 0), (0, 0), (before, after)])
        np.testing.assert_array_equal(center_trim(padded, 101), x)


def test_center_trim_refuses_to_lengthen() -> None:
    with pytest.raises(ValueError):
        center_trim(np.zeros(4), 5)


# --------------------------------------------------------------------------- plan_blocks


@pytest.mark.parametrize("n", [1, 7, 99, 100, 101, 250, 397, 1000, 1001, 12345])
@pytest.mark.parametrize(("block", "overlap"), [(100, 0), (100, 10), (100, 25), (64, 16), (1000, 3)])
def test_plan_blocks_covers_the_range_with_exact_overlaps(n: int, block: int, overlap: int) -> None:
    ranges = plan_blocks(n, block, overlap)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    lengths = [end - start for start, end in ranges]
    assert all(0 < length <= block for length in lengths)
    assert max(lengths) - min(lengths) <= 1  # no short leftover block
    for (s0, e0), (s1, e1) in itertools.pairwise(ranges):
        assert e0 - s1 == min(overlap, e0 - s0)  # neighbours share exactly `overlap`
        assert s1 > s0 and e1 > e0
    for (_, e0), (s2, _) in zip(ranges, ranges[2:], strict=False):
        assert s2 >= e0  # only neighbours overlap
    # fewest blocks: one block fewer could not cover n
    k = len(ranges)
    assert k == 1 or (k - 1) * block - (k - 2) * overlap < n


def test_plan_blocks_edge_cases() -> None:
    assert plan_blocks(0, 100, 10) == []
    assert plan_blocks(100, 100, 10) == [(0, 100)]
    assert plan_blocks(101, 100, 10) == [(0, 56), (46, 101)]
    with pytest.raises(ValueError):
        plan_blocks(100, 30, 10)  # block < 4 x overlap
    with pytest.raises(ValueError):
        plan_blocks(100, 0, 0)


# --------------------------------------------------------------------------- separate_file


def _write(path: str, audio: np.ndarray, sr: int = SR) -> None:
    sf.write(path, np.ascontiguousarray(audio.T), sr, subtype="FLOAT")


def _read(path: str) -> np.ndarray:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


class Recorder:
    """Fake separator: vocals = 0.25 * mix, background = 0.75 * mix; records the blocks."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert block.dtype == np.float32 and block.flags.c_contiguous
        self.shapes.append(block.shape)
        return 0.25 * block, 0.75 * block


def _lag(reference: np.ndarray, estimate: np.ndarray, max_lag: int) -> int:
    """Lag of the cross-correlation peak between two 1-D signals, within +-max_lag."""
    n = len(reference)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(estimate, size) * np.conj(np.fft.rfft(reference, size)), size)
    lags = np.arange(-max_lag, max_lag + 1)
    return int(lags[np.argmax(corr[lags % size])])


@pytest.mark.parametrize("seconds", [1.0, 3.0, 2.5, 7.0, 7.123])
@pytest.mark.parametrize("channels", [1, 2])
def test_separate_file_keeps_frames_rate_channels_and_alignment(
    tmp_path, seconds: float, channels: int
) -> None:
    n = round(seconds * SR)
    rng = np.random.default_rng(1)
    mix = (0.1 * rng.standard_normal((channels, n))).astype(np.float32)
    _write(str(tmp_path / "mix.wav"), mix)
    fake = Recorder()
    info = separate_file(
        tmp_path / "mix.wav", tmp_path / "v.wav", tmp_path / "b.wav", fake, SR,
        block_seconds=1.0, overlap_seconds=0.125,
    )  # fmt: skip
    expected_blocks = len(plan_blocks(n, SR, SR // 8))
    assert info == {"frames": n, "sample_rate": SR, "channels": channels, "blocks": expected_blocks}
    assert len(fake.shapes) == expected_blocks and all(s[0] == channels for s in fake.shapes)
    assert max(s[1] for s in fake.shapes) <= SR
    for name, gain in (("v.wav", 0.25), ("b.wav", 0.75)):
        stem_info = sf.info(str(tmp_path / name))
        assert (stem_info.frames, stem_info.samplerate, stem_info.channels) == (n, SR, channels)
        assert stem_info.subtype == "FLOAT"
        stem = _read(str(tmp_path / name))
        # a linear separator through linear crossfades gives back the linear result
        np.testing.assert_allclose(stem, gain * mix, atol=1e-6)
        assert _lag(mix[0].astype(np.float64), stem[0].astype(np.float64), SR // 2) == 0
    assert sorted(os.listdir(tmp_path)) == ["b.wav", "mix.wav", "v.wav"]  # no .part left


def test_separate_file_crossfade_preserves_a_constant_signal(tmp_path) -> None:
    n = 5 * SR + 17
    mix = np.full((2, n), 0.5, dtype=np.float32)
    _write(str(tmp_path / "mix.wav"), mix)

    def separate(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # output does not depend on the input at all: ones and twos
        return np.ones_like(block), np.full_like(block, 2.0)

    info = separate_file(
        tmp_path / "mix.wav", tmp_path / "v.wav", tmp_path / "b.wav", separate, SR, 1.0, 0.25
    )
    assert info["blocks"] > 1
    np.testing.assert_allclose(_read(str(tmp_path / "v.wav")), 1.0, atol=1e-6)
    np.testing.assert_allclose(_read(str(tmp_path / "b.wav")), 2.0, atol=1e-6)


def test_separate_file_blends_linearly_across_the_overlap(tmp_path) -> None:
    n = 2 * SR
    _write(str(tmp_path / "mix.wav"), np.zeros((1, n), dtype=np.float32))
    calls: list[int] = []

    def separate(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(calls))
        value = float(len(calls) - 1)  # block 0 -> 0.0, block 1 -> 1.0
        return np.full_like(block, value), np.full_like(block, value)

    separate_file(tmp_path / "mix.wav", tmp_path / "v.wav", tmp_path / "b.wav", separate, SR, 1.5, 0.25)
    ranges = plan_blocks(n, int(1.5 * SR), SR // 4)
    assert len(ranges) == 2
    out = _read(str(tmp_path / "v.wav"))[0]
    start, end = ranges[1][0], ranges[0][1]
    assert np.all(out[:start] == 0.0) and np.all(out[end:] == 1.0)
    ramp = out[start:end]
    assert np.all(np.diff(ramp) > 0) and 0.0 < ramp[0] < 0.01 and 0.99 < ramp[-1] < 1.0
    np.testing.assert_allclose(ramp + ramp[::-1], 1.0, atol=1e-6)


def test_separate_file_rejects_a_wrong_rate_and_empty_input(tmp_path) -> None:
    _write(str(tmp_path / "mix.wav"), np.zeros((2, 100), dtype=np.float32), sr=16000)
    with pytest.raises(BadInputError, match="16000"):
        separate_file(tmp_path / "mix.wav", tmp_path / "v.wav", tmp_path / "b.wav", Recorder(), 44100)
    _write(str(tmp_path / "empty.wav"), np.zeros((2, 0), dtype=np.float32))
    with pytest.raises(BadInputError):
        separate_file(tmp_path / "empty.wav", tmp_path / "v.wav", tmp_path / "b.wav", Recorder(), SR)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(BadInputError):
        separate_file(tmp_path / "junk.wav", tmp_path / "v.wav", tmp_path / "b.wav", Recorder(), SR)


def test_separate_file_cleans_up_when_the_separator_misbehaves(tmp_path) -> None:
    _write(str(tmp_path / "mix.wav"), np.zeros((2, 3 * SR), dtype=np.float32))
    (tmp_path / "v.wav").write_bytes(b"previous result")

    def short(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return block[:, :-1], block[:, :-1]

    with pytest.raises(ProviderError, match="shape"):
        separate_file(tmp_path / "mix.wav", tmp_path / "v.wav", tmp_path / "b.wav", short, SR, 1.0, 0.1)

    def boom(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        separate_file(tmp_path / "mix.wav", tmp_path / "v.wav", tmp_path / "b.wav", boom, SR)
    # the old output is untouched and no partial file is left behind
    assert (tmp_path / "v.wav").read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["mix.wav", "v.wav"]


def test_separate_file_writes_no_timestamp_into_the_stems(tmp_path) -> None:
    """libsndfile stamps float WAVs with the time (PEAK chunk); equal audio must give equal bytes."""
    _write(str(tmp_path / "mix.wav"), np.full((2, SR), 0.25, dtype=np.float32))
    separate_file(tmp_path / "mix.wav", tmp_path / "v.wav", tmp_path / "b.wav", Recorder(), SR)
    for name in ("v.wav", "b.wav"):
        data = (tmp_path / name).read_bytes()
        peak = data.find(b"PEAK", 12, data.find(b"data"))
        if peak >= 0:  # chunk id, size, version, then the timestamp
            assert data[peak + 12 : peak + 16] == b"\0\0\0\0"
    np.testing.assert_allclose(_read(str(tmp_path / "v.wav")), 0.0625, atol=1e-7)


def test_separate_file_copes_with_a_separator_returning_its_input(tmp_path) -> None:
    """The crossfade must not be applied twice when both stems are the very same array."""
    n = 4 * SR + 5
    mix = np.sin(np.arange(n) / 7.0).astype(np.float32)[None, :]
    _write(str(tmp_path / "mix.wav"), mix)

    def passthrough(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return block, block

    info = separate_file(
        tmp_path / "mix.wav", tmp_path / "v.wav", tmp_path / "b.wav", passthrough, SR, 1.0, 0.2
    )
    assert info["blocks"] > 1
    np.testing.assert_allclose(_read(str(tmp_path / "v.wav")), mix, atol=1e-6)
    np.testing.assert_allclose(_read(str(tmp_path / "b.wav")), mix, atol=1e-6)
