"""Putting lip-synced windows back into the source video, re-encoding only what changed.

* **Cutting windows for the engine** (``cut_window``, ``window_speech``): the window's frames as a
  25 fps H.264 clip (near-lossless, CRF 12, source resolution) and its dubbed speech as 16 kHz
  mono 16-bit WAV, both exactly ``window.frames / 25`` seconds long.
* **Composing** (``compose``): the source's video stream is split at its keyframes (sync
  packets, found with ffprobe) into GOP-aligned segments; only the segments that contain a synced
  window are decoded, have the window's frames replaced and are re-encoded (libx264, CRF 22,
  preset fast, the source's pix_fmt, resolution and frame rate); every other segment is stream
  copied. The segments are joined with the concat demuxer (MPEG-TS intermediates carry each
  segment's SPS/PPS in band) into a video-only MP4 with the source's track timescale. If the split
  does not give back exactly the source's frames (an open GOP, an exotic codec or container), the
  whole stream is re-encoded the same way instead. With no synced window nothing is re-encoded: the
  stream is copied and every frame is bit-identical to the source.
* **Re-timing**: engine frames are at 25 fps; source frame ``j`` (shown at ``j/fps``) inside a
  synced window takes engine frame ``floor((j/fps − window.start)·25)`` (clamped to the clip), so
  the output keeps the source's frame rate, resolution and every frame.

Outputs are written under a temporary name and renamed into place.
"""

from __future__ import annotations

import math
import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from dubbing_pipeline.common.audio import write_wav
from dubbing_pipeline.common.media import BITEXACT, PLANAR_FORMATS, ffprobe, raw_video_frames, run_ffmpeg
from dubbing_pipeline.common.tool_env import tool_env
from dubbing_pipeline.errors import BadInputError, ProviderError
from dubbing_pipeline.lip_sync.records import ComposeRecord
from dubbing_pipeline.lip_sync.windows import MODEL_FPS, Window, source_frame_range
from dubbing_pipeline.provenance.label import PLANAR_8BIT, Label, apply, render
from dubbing_pipeline.records import JsonObject

CRF = 22
PRESET = "fast"
WINDOW_CRF = 12
AUDIO_RATE = 16000

SpeechLine = tuple[float, npt.NDArray[np.float32], int]  # a placed line: (dub start, samples, sample rate)


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    rate: Fraction  # frames per second
    frames: int
    codec: str
    pix_fmt: str
    timescale: int
    duration: float

    @property
    def fps(self) -> float:
        return float(self.rate)


def frame_bytes(width: int, height: int, pix_fmt: str) -> int:
    if pix_fmt == "gray":
        return width * height
    bps, sx, sy = PLANAR_FORMATS.get(pix_fmt, (1, 1, 1))
    cw, ch = -(-width // (1 << sx)), -(-height // (1 << sy))
    return bps * (width * height + 2 * cw * ch)


def _packets(path: Path) -> list[tuple[float, bool]]:
    """``(pts_time, keyframe)`` of every video packet, in presentation order."""
    cmd = [
        "ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
        "-of", "csv=p=0", str(path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False, env=tool_env())
    if proc.returncode != 0:
        raise BadInputError(f"cannot list the video packets of {path.name!r}")
    out = []
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        parts = line.strip().split(",")
        if len(parts) >= 2 and parts[0] not in ("", "N/A"):
            out.append((float(parts[0]), "K" in parts[1]))
    out.sort()
    return out


def probe_video(path: str | Path) -> VideoInfo:
    info = ffprobe(Path(path))
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "video"]
    if not streams:
        raise BadInputError("no video stream")
    s = streams[0]
    rate = Fraction(str(s.get("r_frame_rate") or "0/1"))
    avg = str(s.get("avg_frame_rate") or "0/0")
    if avg not in ("0/0", "0") and Fraction(avg) > 0:
        rate = Fraction(avg).limit_denominator(1001 * 1000)
    if rate <= 0:
        raise BadInputError("the video has no frame rate")
    tb = Fraction(str(s.get("time_base") or "1/90000"))
    frames = int(s.get("nb_frames") or 0)
    duration = float(s.get("duration") or info.get("format", {}).get("duration") or 0.0)
    if frames <= 0:
        frames = round(duration * float(rate))
    return VideoInfo(
        width=int(s["width"]),
        height=int(s["height"]),
        rate=rate,
        frames=frames,
        codec=str(s.get("codec_name", "")),
        pix_fmt=str(s.get("pix_fmt", "yuv420p")),
        timescale=tb.denominator,
        duration=duration,
    )


def keyframe_indices(path: str | Path) -> tuple[list[int], int]:
    """Presentation indices of the keyframes (sync packets) and the number of frames."""
    packets = _packets(Path(path))
    return [j for j, (_t, key) in enumerate(packets) if key], len(packets)


def keyframe_times(path: str | Path) -> list[float]:
    """Presentation times (s) of the keyframes."""
    return [t for t, key in _packets(Path(path)) if key]


# --- cutting windows for the engine ------------------------------------------------------------


def cut_window(src: str | Path, window: Window, out: str | Path, *, info: VideoInfo | None = None) -> Path:
    """The window's frames as an H.264 clip at 25 fps, ``window.frames`` frames, source resolution."""
    out = Path(out)
    info = info or probe_video(src)
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.partial.mp4")
    w, h = info.width - info.width % 2, info.height - info.height % 2
    args = [
        "-ss", f"{window.start:.6f}", "-i", str(src), "-map", "0:v:0", "-an", "-sn",
        "-vf", f"fps={MODEL_FPS},scale={w}:{h},format=yuv420p", "-frames:v", str(window.frames),
        "-c:v", "libx264", "-crf", str(WINDOW_CRF), "-preset", PRESET, *BITEXACT, "-f", "mp4", str(tmp),
    ]  # fmt: skip
    try:
        run_ffmpeg(args, what="window cut")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def window_speech(
    lines: Sequence[SpeechLine], window: Window, out: str | Path, *, rate: int = AUDIO_RATE
) -> Path:
    """Speech-only audio of ``window``: each ``(dub_start, samples, sample_rate)`` line placed at its
    start, resampled to ``rate`` mono, summed, clipped; exactly ``window.frames / 25`` seconds."""
    n = round(window.seconds * rate)
    buf = np.zeros(n, dtype=np.float64)
    for start, samples, sr in lines:
        mono = np.asarray(samples, dtype=np.float64)
        if mono.ndim == 2:
            mono = mono.mean(axis=1)
        if sr != rate:
            mono = np.asarray(soxr.resample(mono, sr, rate, quality="HQ"), dtype=np.float64)
        offset = round((start - window.start) * rate)
        a, b = max(0, offset), min(n, offset + len(mono))
        if b > a:
            buf[a:b] += mono[a - offset : b - offset]
    out = Path(out)
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.partial.wav")
    write_wav(tmp, np.clip(buf, -1.0, 1.0).astype(np.float32), rate, subtype="PCM_16")
    os.replace(tmp, out)
    return out


# --- composing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposeResult:
    changed: bool
    mode: str  # "copy", "smart" or "full"
    frames_total: int
    frames_reencoded: int
    frames_replaced: int
    spans: list[tuple[int, int]] = field(default_factory=list)  # re-encoded source frames [a, b)
    frames_labelled: int = 0  # the first frames, carrying the visible label

    def record(self) -> ComposeRecord:
        return ComposeRecord(
            changed=self.changed,
            mode=self.mode,
            frames_total=self.frames_total,
            frames_reencoded=self.frames_reencoded,
            frames_copied=self.frames_total - self.frames_reencoded,
            frames_replaced=self.frames_replaced,
            spans=[list(s) for s in self.spans],
            frames_labelled=self.frames_labelled,
        )

    def to_dict(self) -> JsonObject:
        """The stored form of :meth:`record`."""
        return self.record().to_json()


def gop_spans(
    ranges: Sequence[tuple[int, int]], keyframes: Sequence[int], frames: int
) -> list[tuple[int, int]]:
    """The smallest keyframe-aligned spans ``[k, k')`` covering each source frame range, merged."""
    keys = sorted(set(keyframes) | {frames})
    spans: list[tuple[int, int]] = []
    for j0, j1 in sorted(ranges):
        if j1 <= j0:
            continue
        a = max((k for k in keys if k <= j0), default=0)
        b = min(k for k in keys if k >= j1)
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    return spans


def _raw_frames(path: Path, info: VideoInfo, pix_fmt: str) -> Iterator[bytes]:
    """Decoded frames of ``path`` at the source's size and ``pix_fmt``, as raw bytes."""
    video_filter = f"scale={info.width}:{info.height}:flags=bicubic,format={pix_fmt}"
    return raw_video_frames(path, video_filter, frame_bytes(info.width, info.height, pix_fmt), check=False)


class _Replacements:
    """Engine frames for source frames, read sequentially from each window's clip; and the
    visible label on the first ``labelled`` frames."""

    def __init__(
        self, synced: Sequence[tuple[Window, Path]], info: VideoInfo, pix_fmt: str, label: Label | None = None
    ) -> None:
        self.info, self.pix_fmt = info, pix_fmt
        self.ranges = [(source_frame_range(w, info.fps, info.frames), w, Path(p)) for w, p in synced]
        self._open: tuple[int, Iterator[bytes]] | None = None
        self._index, self._frame = -1, b""
        self.labelled = label.frames(info.fps, info.frames) if label is not None else 0
        self.stamp = render(label.text, info.width, info.height) if label is not None else None

    def edit(self, j: int, raw: bytes) -> tuple[bytes, bool]:
        """Source frame ``j`` as it goes out, and whether an engine frame replaced it."""
        swap = self.frame(j)
        out = swap if swap is not None else raw
        if j < self.labelled and self.stamp is not None:
            out = apply(out, self.info.width, self.info.height, self.pix_fmt, self.stamp)
        return out, swap is not None

    def covers(self, j: int) -> bool:
        return any(j0 <= j < j1 for (j0, j1), _w, _p in self.ranges)

    def frame(self, j: int) -> bytes | None:
        for n, ((j0, j1), w, path) in enumerate(self.ranges):
            if j0 <= j < j1:
                want = math.floor((j / self.info.fps - w.start) * MODEL_FPS + 1e-6)
                want = min(max(0, want), w.frames - 1)
                if self._open is None or self._open[0] != n:
                    self._open = (n, _raw_frames(path, self.info, self.pix_fmt))
                    self._index, self._frame = -1, b""
                while self._index < want:
                    nxt = next(self._open[1], None)
                    if nxt is None:  # a short clip: hold its last frame
                        break
                    self._index, self._frame = self._index + 1, nxt
                if not self._frame:
                    raise ProviderError(f"the engine's clip for {w.start:.2f}-{w.end:.2f} s has no frames")
                return self._frame
        return None


def _render(
    src: Path, first: int, count: int, repl: _Replacements, info: VideoInfo, pix_fmt: str, out: Path, fmt: str
) -> int:
    """Decode ``count`` frames of ``src`` (global indices from ``first``), swap in engine frames, encode."""
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-y", "-v", "error",
        "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{info.width}x{info.height}",
        "-framerate", f"{info.rate.numerator}/{info.rate.denominator}", "-i", "-",
        "-c:v", "libx264", "-crf", str(CRF), "-preset", PRESET, "-pix_fmt", pix_fmt, *BITEXACT,
    ]  # fmt: skip
    if fmt == "mp4":
        cmd += ["-video_track_timescale", str(info.timescale), "-movflags", "+faststart"]
    cmd += ["-f", fmt, str(out)]
    enc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=tool_env())
    assert enc.stdin is not None
    replaced = seen = 0
    try:
        for k, raw in enumerate(_raw_frames(src, info, pix_fmt)):
            if k >= count:
                break
            frame, swapped = repl.edit(first + k, raw)
            replaced += int(swapped)
            enc.stdin.write(frame)
            seen += 1
    finally:
        enc.stdin.close()
        err = enc.stderr.read() if enc.stderr else b""
        code = enc.wait()
    if code != 0:
        raise ProviderError(f"re-encode failed: {err.decode('utf-8', 'replace').strip()[-200:]}")
    if seen != count:
        raise ProviderError(f"re-encode read {seen} frames, expected {count}")
    return replaced


def _copy(src: Path, out: Path, info: VideoInfo) -> None:
    run_ffmpeg(
        ["-i", str(src), "-map", "0:v:0", "-c:v", "copy", *BITEXACT, "-video_track_timescale",
         str(info.timescale), "-movflags", "+faststart", "-f", "mp4", str(out)],
        what="video copy",
    )  # fmt: skip


def _smart(
    src: Path, info: VideoInfo, spans: list[tuple[int, int]], keys: list[int], repl: _Replacements,
    pix_fmt: str, out: Path, work: Path,
) -> int:  # fmt: skip
    """Split at every span boundary, re-encode the spans, concat. Raises ProviderError when not exact."""
    cuts = sorted({b for span in spans for b in span} - {0, info.frames})
    # split a hair before each keyframe's time: the segment muxer cuts at the next keyframe
    times = ",".join(f"{(j - 0.5) / info.fps:.6f}" for j in cuts)
    args = ["-i", str(src), "-map", "0:v:0", "-c:v", "copy", "-f", "segment", "-segment_format", "mpegts"]
    if times:
        args += ["-segment_times", times]
    run_ffmpeg([*args, "-reset_timestamps", "1", str(work / "seg%04d.ts")], what="keyframe split")
    bounds = [0, *cuts, info.frames]
    segments = sorted(work.glob("seg*.ts"))
    if len(segments) != len(bounds) - 1:
        raise ProviderError("keyframe split gave an unexpected number of segments")
    replaced = 0
    listing = []
    for i, seg in enumerate(segments):
        a, b = bounds[i], bounds[i + 1]
        if _count_frames(seg) != b - a:
            raise ProviderError("keyframe split is not frame exact")
        part = seg
        if any(s <= a and b <= e for s, e in spans):
            part = work / f"enc{i:04d}.ts"
            replaced += _render(seg, a, b - a, repl, info, pix_fmt, part, "mpegts")
        listing.append(f"file '{part.name}'\nduration {(b - a) / info.fps:.9f}\n")
    (work / "list.txt").write_text("".join(listing), encoding="utf-8")
    run_ffmpeg(
        ["-f", "concat", "-safe", "0", "-i", str(work / "list.txt"), "-map", "0:v:0", "-c:v", "copy",
         *BITEXACT, "-video_track_timescale", str(info.timescale), "-movflags", "+faststart",
         "-f", "mp4", str(out)],
        what="concat",
    )  # fmt: skip
    if _count_frames(out) != info.frames:
        raise ProviderError("concatenated video lost frames")
    return replaced


def _count_frames(path: Path) -> int:
    return len(_packets(path))


def compose(
    src: str | Path,
    synced: Sequence[tuple[Window, str | Path]],
    out: str | Path,
    work_dir: str | Path,
    *,
    label: Label | None = None,
) -> ComposeResult:
    """Write ``out`` (video-only MP4): ``src`` with the synced windows' frames from their engine
    clips, and ``label`` drawn on its first seconds."""
    src, out, work = Path(src), Path(out), Path(work_dir)
    info = probe_video(src)
    keys, frames = keyframe_indices(src)
    if frames:
        info = VideoInfo(**{**info.__dict__, "frames": frames})
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.partial.mp4")
    native = PLANAR_8BIT if label is not None else {*PLANAR_FORMATS, "gray"}  # the label: 8-bit planes only
    pix_fmt = info.pix_fmt if info.pix_fmt in native else "yuv420p"
    windows = [(w, Path(p)) for w, p in sorted(synced, key=lambda item: item[0])]
    labelled = label.frames(info.fps, info.frames) if label is not None else 0
    try:
        if not windows and not labelled:
            _copy(src, tmp, info)
            os.replace(tmp, out)
            return ComposeResult(False, "copy", info.frames, 0, 0)
        ranges = [source_frame_range(w, info.fps, info.frames) for w, _p in windows]
        spans = gop_spans([*ranges, *([(0, labelled)] if labelled else [])], keys, info.frames)
        mode, replaced = "smart", 0
        smart_dir = work / f"smart-{uuid.uuid4().hex[:8]}"
        smart_dir.mkdir(parents=True)
        try:
            if info.codec not in ("h264",) or pix_fmt != info.pix_fmt or not keys:
                raise ProviderError("stream is not splittable here")
            replaced = _smart(
                src, info, spans, keys, _Replacements(windows, info, pix_fmt, label), pix_fmt, tmp, smart_dir
            )
        except ProviderError:
            mode, spans = "full", [(0, info.frames)]
            replaced = _render(
                src, 0, info.frames, _Replacements(windows, info, pix_fmt, label), info, pix_fmt, tmp, "mp4"
            )
        finally:
            for leftover in sorted(smart_dir.glob("*")):
                leftover.unlink()
            smart_dir.rmdir()
        os.replace(tmp, out)
        reencoded = sum(b - a for a, b in spans)
        return ComposeResult(True, mode, info.frames, reencoded, replaced, spans, labelled)
    finally:
        if tmp.exists():
            tmp.unlink()
