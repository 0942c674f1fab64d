"""Thin wrappers around ffmpeg/ffprobe (through ffmpeg-python). Bit-exact flags everywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from dubbing_pipeline.errors import BadInputError, ProviderError

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
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise ProviderError("ffmpeg is not installed (apt-get install ffmpeg)") from exc
    if proc.returncode != 0:
        cls = BadInputError if bad_input else ProviderError
        raise cls(f"{what} failed: {_tail(proc.stderr) or f'ffmpeg exit {proc.returncode}'}")


def ffprobe(path: str | Path) -> dict[str, Any]:
    """ffprobe's JSON (format + streams); BadInputError when it cannot read the file."""
    if not os.path.isfile(path):
        raise BadInputError("file not found")
    if os.path.getsize(path) == 0:
        raise BadInputError("file is empty (0 bytes)")
    import ffmpeg

    try:
        data: dict[str, Any] = ffmpeg.probe(str(path))
    except ffmpeg.Error as exc:
        reason = _tail(exc.stderr, 1) or "unreadable container"
        reason = re.sub(r"^.*?: ", "", reason) if ": " in reason else reason
        raise BadInputError(f"not a readable media file ({reason})") from exc
    except FileNotFoundError as exc:
        raise ProviderError("ffprobe is not installed (apt-get install ffmpeg)") from exc
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
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ProviderError(f"scene detection failed: {_tail(proc.stderr)}")
    text = proc.stderr.decode("utf-8", "replace")
    return [float(m) for m in re.findall(r"pts_time:([0-9.]+)", text)]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
