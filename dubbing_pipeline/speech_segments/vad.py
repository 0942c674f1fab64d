"""Voice activity detection and 16 kHz mono audio reading.

The detector is the Silero VAD v6 ONNX graph that ships inside faster-whisper
(``faster_whisper/assets/silero_vad_v6.onnx``), driven through faster-whisper's own
``VadOptions`` / ``get_speech_timestamps``; onnxruntime runs it with one thread, so
results are deterministic and torch is never imported.

Long audio is processed in blocks of at most ``block_seconds`` so that the model's
per-call memory (it scores every 32 ms window of its input at once) stays bounded.
Every block after the first is scored together with ~2 s of the audio before it (a
warm-up for the model's recurrent state; regions in that pre-roll are cut away). Each
block yields raw speech regions (no padding, no minimum length); the regions of all
blocks are then post-processed globally, so a region cut by a block join is stitched
back together exactly like a region interrupted by a short pause:

1. regions separated by less than ``min_silence`` are merged;
2. every region is widened by ``pad`` on both sides (clamped to the audio) and
   regions that now touch are merged;
3. regions shorter than ``min_speech`` *after padding* are dropped.

Step 3 measures the padded length on purpose. Silero scores a short, quiet
utterance at the start of a phone call ("Hello?" at 6.69 s in the pyannote sample)
above 0.5 for only ~0.13 s; measured on the raw region it would be discarded as a
click, losing a real word. With ``pad=0.1`` the rule still drops isolated blips
under ~0.05 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

Samples = npt.NDArray[np.float32]

SAMPLE_RATE = 16000
_WINDOW = 512  # samples per Silero frame at 16 kHz
# audio before a block join that is scored again as warm-up for the model's recurrent state
_PREROLL = 64 * _WINDOW


def _raw_regions(audio: Samples, threshold: float, min_silence: float) -> list[tuple[int, int]]:
    """Unpadded speech regions of one block, in samples relative to the block."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # lazy: faster_whisper loads ctranslate2

    if audio.size == 0:
        return []
    options = VadOptions(
        threshold=threshold,
        min_speech_duration_ms=0,
        min_silence_duration_ms=round(min_silence * 1000),
        speech_pad_ms=0,
    )
    stamps = get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
    return [(int(s["start"]), int(s["end"])) for s in stamps]


def _clip(regions: Iterable[tuple[int, int]], base: int, first: int) -> list[tuple[int, int]]:
    """Shift block-relative regions by ``base`` and cut away the pre-roll before ``first``."""
    out = []
    for s, e in regions:
        s, e = max(base + s, first), base + e
        if e > s:
            out.append((s, e))
    return out


def _postprocess(
    raw: Iterable[tuple[int, int]],
    total: int,
    *,
    min_speech: float,
    min_silence: float,
    pad: float,
) -> list[tuple[float, float]]:
    gap = round(min_silence * SAMPLE_RATE)
    pad_n = round(pad * SAMPLE_RATE)
    min_n = round(min_speech * SAMPLE_RATE)
    merged = merge_regions([(s, e) for s, e in raw if e > s], gap)
    # widened regions that now touch are joined: ``< 1`` between whole samples is ``<= 0``
    padded = merge_regions([(max(0, s - pad_n), min(total, e + pad_n)) for s, e in merged], 1)
    return [(round(s / SAMPLE_RATE, 3), round(e / SAMPLE_RATE, 3)) for s, e in padded if e - s >= min_n]


def _block_samples(block_seconds: float) -> int:
    if block_seconds <= 0:
        raise ValueError("block_seconds must be positive")
    n = int(block_seconds * SAMPLE_RATE) // _WINDOW * _WINDOW
    return max(n, _WINDOW)


def speech_regions(
    audio: npt.ArrayLike,
    *,
    threshold: float = 0.5,
    min_speech: float = 0.25,
    min_silence: float = 0.3,
    pad: float = 0.1,
    block_seconds: float = 300.0,
) -> list[tuple[float, float]]:
    """Speech regions ``[(start, end), ...]`` in seconds of 16 kHz mono float32 ``audio``.

    Regions are sorted, disjoint and lie inside ``[0, len(audio) / 16000]``; silence
    (or an empty array) gives ``[]``.
    """
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"speech_regions expects 1-D mono audio, got shape {samples.shape}")
    block = _block_samples(block_seconds)
    raw: list[tuple[int, int]] = []
    for first in range(0, samples.shape[0], block):
        lead = min(first, _PREROLL)
        chunk = np.ascontiguousarray(samples[first - lead : first + block])
        raw.extend(_clip(_raw_regions(chunk, threshold, min_silence), first - lead, first))
    return _postprocess(raw, samples.shape[0], min_speech=min_speech, min_silence=min_silence, pad=pad)


def speech_regions_from_file(
    path: str | os.PathLike[str],
    *,
    threshold: float = 0.5,
    min_speech: float = 0.25,
    min_silence: float = 0.3,
    pad: float = 0.1,
    block_seconds: float = 300.0,
) -> list[tuple[float, float]]:
    """Like :func:`speech_regions` on a sound file, reading one block at a time."""
    block = _block_samples(block_seconds)
    info = sf.info(str(path))
    duration = info.frames / float(info.samplerate)
    block_s = block / SAMPLE_RATE
    raw: list[tuple[int, int]] = []
    total = 0
    start = 0.0
    while start < duration:
        lead_s = min(start, _PREROLL / SAMPLE_RATE)
        chunk = read_wav_16k_mono(path, start - lead_s, min(duration, start + block_s))
        lead = round(lead_s * SAMPLE_RATE)
        if chunk.shape[0] <= lead:
            break
        raw.extend(_clip(_raw_regions(chunk, threshold, min_silence), total - lead, total))
        total += chunk.shape[0] - lead
        start += block_s
    return _postprocess(raw, total, min_speech=min_speech, min_silence=min_silence, pad=pad)


def read_wav_16k_mono(path: str | os.PathLike[str], start: float = 0, end: float | None = None) -> Samples:
    """Read ``[start, end)`` seconds of a sound file as 16 kHz mono float32.

    Multi-channel audio is averaged; other sample rates are resampled with soxr
    (high quality, deterministic). Only the requested range is read from disk.
    """
    if start < 0:
        raise ValueError("start must be >= 0")
    with sf.SoundFile(str(path)) as f:
        rate = int(f.samplerate)
        first = min(round(start * rate), f.frames)
        last = f.frames if end is None else min(f.frames, round(end * rate))
        if last <= first:
            return np.zeros(0, dtype=np.float32)
        f.seek(first)
        data = f.read(last - first, dtype="float32", always_2d=True)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def merge_regions(regions: Iterable[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    """Join regions separated by less than ``gap`` (sorted first; a region's end is the latest)."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(regions):
        if out and start - out[-1][1] < gap:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
