"""Thin wrappers around ffmpeg/ffprobe (through ffmpeg-python). Bit-exact flags everywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dubbing_pipeline.common.tool_env import tool_env
from dubbing_pipeline.errors import BadInputError, ProviderError
from dubbing_pipeline.records import JsonObject

# the planar pixel formats decoded natively (lip-sync compose, the label): (bytes per sample,
# chroma x shift, chroma y shift)
PLANAR_FORMATS: dict[str, tuple[int, int, int]] = {
    "yuv420p": (1, 1, 1), "yuvj420p": (1, 1, 1), "yuv422p": (1, 1, 0), "yuvj422p": (1, 1, 0),
    "yuv444p": (1, 0, 0), "yuvj444p": (1, 0, 0), "yuv420p10le": (2, 1, 1), "yuv422p10le": (2, 1, 0),
}  # fmt: skip

BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]


def _tail(stderr: bytes | str | None, lines: int = 3) -> str:
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    kept = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)


def run_ffmpeg(args: list[str], *, what: str, bad_input: bool = False, timeout: float | None = None) -> None:
    """Run ``ffmpeg -nostdin -y -v error ARGS``; raise a classified error with stderr's tail."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-y", "-v", "error", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False, env=tool_env())
    except FileNotFoundError as exc:
        raise ProviderError("ffmpeg is not installed (apt-get install ffmpeg)") from exc
    if proc.returncode != 0:
        cls = BadInputError if bad_input else ProviderError
        raise cls(f"{what} failed: {_tail(proc.stderr) or f'ffmpeg exit {proc.returncode}'}")


def ffprobe(path: str | Path) -> JsonObject:
    """ffprobe's JSON (format + streams); BadInputError when it cannot read the file."""
    if not os.path.isfile(path):
        raise BadInputError("file not found")
    if os.path.getsize(path) == 0:
        raise BadInputError("file is empty (0 bytes)")
    # what ffmpeg.probe runs, with the tools' environment (ffmpeg-python passes no env)
    cmd = ["ffprobe", "-show_format", "-show_streams", "-of", "json", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False, env=tool_env())
    except FileNotFoundError as exc:
        raise ProviderError("ffprobe is not installed (apt-get install ffmpeg)") from exc
    if proc.returncode != 0:
        reason = _tail(proc.stderr, 1) or "unreadable container"
        reason = re.sub(r"^.*?: ", "", reason) if ": " in reason else reason
        raise BadInputError(f"not a readable media file ({reason})")
    data: JsonObject = json.loads(proc.stdout.decode("utf-8"))
    return data


def extract_audio(
    src: str | Path,
    dest: str | Path,
    *,
    sample_rate: int,
    channels: int,
    codec: str = "pcm_f32le",
    start: float | None = None,
    duration: float | None = None,
) -> None:
    """Decode the first audio stream to WAV, failing on decode errors (truncated input)."""
    args = ["-xerror"]
    if start is not None:
        args += ["-ss", f"{start:.6f}"]
    args += ["-i", str(src)]
    if duration is not None:
        args += ["-t", f"{duration:.6f}"]
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", str(channels), "-ar", str(sample_rate)]
    args += ["-af", "aresample=resampler=soxr", "-c:a", codec, *BITEXACT, str(dest)]
    run_ffmpeg(args, what="audio decode", bad_input=True)


def scene_changes(src: str | Path, threshold: float = 0.3, *, scale_width: int = 160) -> list[float]:
    """Timestamps (s) where the frame difference score exceeds ``threshold``."""
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "info", "-i", str(src), "-an", "-sn",
        "-vf", f"scale={scale_width}:-2,select='gt(scene,{threshold})',showinfo", "-f", "null", "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False, env=tool_env())
    if proc.returncode != 0:
        raise ProviderError(f"scene detection failed: {_tail(proc.stderr)}")
    text = proc.stderr.decode("utf-8", "replace")
    return [float(m) for m in re.findall(r"pts_time:([0-9.]+)", text)]


def raw_video_frames(path: str | Path, video_filter: str, frame_size: int, *, check: bool) -> Iterator[bytes]:
    """Decoded frames of the first video stream after ``video_filter``, ``frame_size`` raw bytes each.

    Closing the iterator early stops ffmpeg. ``check``: a decode that fails before the end
    raises ProviderError (otherwise the frames read so far are all there is).
    """
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", str(path), "-map", "0:v:0",
        "-vf", video_filter, "-vsync", "passthrough", "-f", "rawvideo", "-",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE if check else subprocess.DEVNULL, env=tool_env()
    )
    assert proc.stdout is not None
    finished = False
    try:
        while True:
            buf = proc.stdout.read(frame_size)
            if len(buf) < frame_size:
                finished = True
                break
            yield buf
    finally:
        proc.stdout.close()
        if proc.poll() is None and not finished:
            proc.kill()
        err = proc.stderr.read() if proc.stderr else b""
        code = proc.wait()
    if check and code != 0:
        raise ProviderError(f"frame decode failed: {_tail(err)}")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
