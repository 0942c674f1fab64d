"""Streaming voice/background separation around any block separator.

A separator model only ever sees one block of audio, so memory is bounded by the block
length, not by the length of the film. ``separate_file`` reads the mix block by block,
lets neighbouring blocks share ``overlap`` samples, crossfades the two estimates linearly
over that shared region and streams both stems to disk. The stems have exactly the
input's frame count, rate and channel layout, and no lag against it.

This module depends on numpy and soundfile only; the models live in ``providers``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf  # type: ignore[import-untyped,unused-ignore]

from dubbing_pipeline.common.audio import clear_peak_timestamp
from dubbing_pipeline.errors import BadInputError, ProviderError

AudioBlock = npt.NDArray[np.float32]
BlockSeparator = Callable[[AudioBlock], tuple[AudioBlock, AudioBlock]]

# A plain RIFF/WAVE file cannot describe more than 4 GiB of samples; beyond that (about
# 3.3 hours of 44.1 kHz stereo float32) the stems are written as RF64, WAV's 64-bit variant.
_WAV_DATA_LIMIT = 0xFFFFFFFF - 4096


def center_trim(x: npt.NDArray[Any], length: int) -> npt.NDArray[Any]:
    """Trim the last axis of ``x`` to ``length`` samples, removing as much from both ends.

    Models that pad their input symmetrically (Demucs) return ``(len - length) // 2`` extra
    samples before the signal; cutting only the end would delay the output by that much.
    With an odd difference the extra sample is removed from the end.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    delta = x.shape[-1] - length
    if delta < 0:
        raise ValueError(f"cannot trim {x.shape[-1]} samples to the longer length {length}")
    start = delta // 2
    return x[..., start : start + length]


def plan_blocks(n_samples: int, block: int, overlap: int) -> list[tuple[int, int]]:
    """Split ``[0, n_samples)`` into ``[start, end)`` ranges of at most ``block`` samples.

    Neighbouring ranges share exactly ``overlap`` samples; ranges two apart never overlap.
    The fewest ranges are used and their lengths differ by at most one sample, so the last
    block is never a short leftover (a model sees as much context in every block).
    ``block`` must be at least ``4 * overlap`` (and positive).
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if block <= 0 or block < 4 * overlap:
        raise ValueError(f"block ({block}) must be positive and at least 4 x overlap ({overlap})")
    if n_samples == 0:
        return []
    if n_samples <= block:
        return [(0, n_samples)]
    count = math.ceil((n_samples - overlap) / (block - overlap))
    base, extra = divmod(n_samples + (count - 1) * overlap, count)
    ranges: list[tuple[int, int]] = []
    start = 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        ranges.append((start, end))
        start = end - overlap
    assert ranges[-1][1] == n_samples
    return ranges


def _fade_in(length: int) -> npt.NDArray[np.float32]:
    """Linear ramp strictly inside (0, 1); ``ramp + ramp[::-1] == 1`` sample by sample."""
    return ((np.arange(length, dtype=np.float64) + 0.5) / length).astype(np.float32)


def _checked(name: str, out: object, shape: tuple[int, ...]) -> AudioBlock:
    if not isinstance(out, np.ndarray) or out.shape != shape:
        got = getattr(out, "shape", type(out).__name__)
        raise ProviderError(f"separator returned {name} of shape {got}, expected {shape}")
    block = np.array(out, dtype=np.float32)  # a copy: the crossfade works in place
    if not np.isfinite(block).all():
        raise ProviderError(f"separator returned non-finite samples in {name}")
    return block


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def separate_file(
    mix_path: str | os.PathLike[str],
    vocals_path: str | os.PathLike[str],
    background_path: str | os.PathLike[str],
    separate: BlockSeparator,
    sample_rate: int,
    block_seconds: float = 60.0,
    overlap_seconds: float = 1.0,
) -> dict[str, int]:
    """Separate the WAV at ``mix_path`` into a vocals and a background WAV (float32).

    ``separate`` receives channels-first float32 blocks ``(C, n)`` at ``sample_rate`` (the
    mix must already be at that rate) and returns ``(vocals, background)`` of the same
    shape. The overlap is capped at a quarter of the block. Outputs are written to
    ``<path>.part`` and renamed into place at the end, so a reader never sees a half-written
    stem. Returns frames, sample rate, channels and the number of blocks processed.
    """
    if block_seconds <= 0 or overlap_seconds < 0:
        raise ValueError("block_seconds must be > 0 and overlap_seconds >= 0")
    with _open_mix(mix_path, sample_rate) as reader:
        frames, rate, channels = int(reader.frames), int(reader.samplerate), int(reader.channels)
        block = max(1, round(block_seconds * rate))
        overlap = min(round(overlap_seconds * rate), block // 4)
        ranges = plan_blocks(frames, block, overlap)
        fmt = "RF64" if frames * channels * 4 > _WAV_DATA_LIMIT else "WAV"
        targets = [os.fspath(vocals_path), os.fspath(background_path)]
        with _stem_writers(targets, rate, channels, fmt) as writers:
            _stream(reader, writers, ranges, separate)
    return {"frames": frames, "sample_rate": rate, "channels": channels, "blocks": len(ranges)}


def _open_mix(mix_path: str | os.PathLike[str], sample_rate: int) -> Any:
    """The mix opened for reading, checked to be at ``sample_rate`` and not empty."""
    try:
        reader = sf.SoundFile(os.fspath(mix_path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise BadInputError(f"cannot read the mix {os.path.basename(mix_path)!r}: {exc}") from exc
    rate = int(reader.samplerate)
    problem = (
        f"the mix is at {rate} Hz but the separator needs {sample_rate} Hz" if rate != sample_rate else ""
    )
    if not problem and int(reader.frames) <= 0:
        problem = "the mix has no audio frames"
    if problem:
        reader.close()
        raise BadInputError(problem)
    return reader


@contextlib.contextmanager
def _stem_writers(targets: list[str], rate: int, channels: int, fmt: str) -> Iterator[list[Any]]:
    """Float WAV writers on ``<target>.part``, renamed onto the targets when the body succeeds and
    removed when it fails."""
    parts = [f"{t}.part" for t in targets]
    writers: list[Any] = []
    try:
        for part in parts:
            writers.append(sf.SoundFile(part, "w", rate, channels, "FLOAT", format=fmt))
        yield writers
        for writer in writers:
            writer.close()
        for part, target in zip(parts, targets, strict=True):
            clear_peak_timestamp(part)
            os.replace(part, target)
    except BaseException:
        for writer in writers:
            writer.close()
        for part in parts:
            _remove_quietly(part)
        raise


def _stream(reader: Any, writers: list[Any], ranges: list[tuple[int, int]], separate: BlockSeparator) -> None:
    """Separate the planned blocks in order, crossfading each with the overlap its predecessor
    held back, and write every frame once."""
    frames = int(reader.frames)
    # Estimates for the region the previous block shares with the current one,
    # held back until the current block's estimates can be blended with them.
    pending: list[AudioBlock] | None = None
    written = 0
    for index, (start, end) in enumerate(ranges):
        stems = _separated(reader, start, end, frames, separate)
        head = 0 if pending is None else pending[0].shape[1]
        if pending is not None and head:
            ramp = _fade_in(head)
            for stem, old in zip(stems, pending, strict=True):
                stem[:, :head] = stem[:, :head] * ramp + old * (1.0 - ramp)
        tail = end - ranges[index + 1][0] if index + 1 < len(ranges) else 0
        keep = (end - start) - tail
        for writer, stem in zip(writers, stems, strict=True):
            writer.write(stem[:, :keep].T)
        written += keep
        pending = [np.array(stem[:, keep:]) for stem in stems]
    if written != frames:  # defensive: the plan covers every frame exactly once
        raise ProviderError(f"wrote {written} frames for a {frames}-frame mix")


def _separated(reader: Any, start: int, end: int, frames: int, separate: BlockSeparator) -> list[AudioBlock]:
    """The checked ``[vocals, background]`` of the mix's frames ``[start, end)``."""
    reader.seek(start)
    data = reader.read(end - start, dtype="float32", always_2d=True)
    if data.shape[0] != end - start:
        raise BadInputError(f"the mix ended early at frame {start + data.shape[0]} of {frames}")
    mix = np.ascontiguousarray(data.T)
    result = separate(mix)
    if not isinstance(result, tuple) or len(result) != 2:
        raise ProviderError("separator must return a (vocals, background) pair")
    return [
        _checked(name, out, mix.shape) for name, out in zip(("vocals", "background"), result, strict=True)
    ]
