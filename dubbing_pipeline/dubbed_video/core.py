"""Muxing the finished video with ffmpeg, bit-exactly.

``mux_video`` writes an MP4 with

* the source's first video stream, stream-copied (``-c:v copy``: the compressed frames are the
  source's own bytes) or, with ``reencode=True``, re-encoded with libx264 (CRF 22, preset
  fast, yuv420p);
* the dubbed audio as AAC-LC, 192 kb/s, **48 kHz**. 48 kHz is the native rate of video
  production and broadcast (EBU R128 / ATSC deliverables, every NLE's default) and what
  streaming platforms re-encode to anyway; a 44.1 kHz mix is resampled once with soxr (very
  high quality) before encoding rather than shipping a rate that players resample on the fly.
  Before encoding the audio is padded with silence or trimmed to exactly ``duration`` seconds
  (``fit_audio_length``), so the audio track and the file end with the video, without
  ``-shortest`` (which cuts at packet boundaries and can drop the last video frames);
* each subtitle file as a soft ``mov_text`` track with its ISO 639-2 language code and a
  title (stored as the track's handler name, which is what MP4 players show). The MP4 muxer
  marks the first subtitle track as the default one, so list the dub's language first;
* ``-movflags +faststart`` (the ``moov`` index before the media data, for progressive
  playback) and the bit-exact flags: no encoder version strings, no copied metadata or
  chapters, so the same inputs give the same bytes.

The file is written under a temporary name in the output's directory and moved into place
with ``os.replace``, so a reader never sees a half-written video.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from dubbing_pipeline.common.media import BITEXACT, ffprobe, run_ffmpeg
from dubbing_pipeline.common.tool_env import tool_env
from dubbing_pipeline.errors import BadInputError, ConfigurationError, ProviderError

AUDIO_CODEC = "aac"
AUDIO_BITRATE = "192k"
AUDIO_SAMPLE_RATE = 48000
VIDEO_CRF = 22
VIDEO_PRESET = "fast"

# Video codecs the MP4 muxer carries and players play when stream-copied; anything else (VP8 from
# WebM, Theora, MPEG-2, ProRes, MJPEG...) is re-encoded with libx264.
MP4_COPY_CODECS = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"})

SubtitleTrack = tuple[str | os.PathLike[str], str, str]
_LANG_RE = re.compile(r"^[a-z]{3}$")


def needs_reencode(video_codec: str) -> bool:
    """Whether a source video stream must be re-encoded (not stream-copied) to go into the MP4."""
    return video_codec.lower() not in MP4_COPY_CODECS


def fit_audio_length(x: npt.ArrayLike, sample_rate: int, duration: float) -> npt.NDArray[Any]:
    """Pad with zeros or trim ``x`` (time on the last axis) to exactly ``round(duration*sr)`` samples.

    Works on ``(samples,)`` and ``(channels, samples)`` arrays and keeps the dtype; the kept
    samples are untouched.
    """
    arr = np.asarray(x)
    if duration < 0:
        raise ValueError(f"duration must be >= 0, got {duration}")
    target = round(duration * sample_rate)
    have = arr.shape[-1]
    if have >= target:
        return np.array(arr[..., :target], copy=True)
    pad = [(0, 0)] * (arr.ndim - 1) + [(0, target - have)]
    return np.pad(arr, pad)


def _read_audio(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise BadInputError(f"cannot read the mixed audio {path.name!r}: {exc}") from exc
    return np.ascontiguousarray(data.T), int(rate)


def _resample(x: npt.NDArray[np.float32], rate: int, target: int) -> npt.NDArray[np.float32]:
    if rate == target:
        return x
    out = soxr.resample(np.ascontiguousarray(x.T), rate, target, quality="VHQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


def _check_tracks(subtitles: Sequence[SubtitleTrack]) -> None:
    for path, lang, _title in subtitles:
        if not os.path.isfile(path):
            raise BadInputError(f"subtitle file {os.path.basename(str(path))!r} not found")
        if not _LANG_RE.match(lang):
            raise ConfigurationError(f"subtitle language must be an ISO 639-2 code like 'spa', got {lang!r}")


def build_mux_args(
    video_src: str | os.PathLike[str],
    audio_wav: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    subtitles: Sequence[SubtitleTrack] = (),
    reencode: bool = False,
    audio_language: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[str]:
    """The ffmpeg arguments ``mux_video`` runs (after ``ffmpeg -nostdin -y -v error``)."""
    args = ["-i", str(video_src), "-i", str(audio_wav)]
    for path, _lang, _title in subtitles:
        args += ["-i", str(path)]
    args += ["-map", "0:v:0", "-map", "1:a:0"]
    for index in range(len(subtitles)):
        args += ["-map", f"{index + 2}:s:0"]
    if reencode:
        args += [
            "-c:v", "libx264", "-crf", str(VIDEO_CRF), "-preset", VIDEO_PRESET, "-pix_fmt", "yuv420p",
            "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2",
        ]  # fmt: skip
    else:
        args += ["-c:v", "copy"]
    args += ["-c:a", AUDIO_CODEC, "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_SAMPLE_RATE)]
    if audio_language:
        args += ["-metadata:s:a:0", f"language={audio_language}"]
    if subtitles:
        args += ["-c:s", "mov_text"]
    for index, (_path, lang, title) in enumerate(subtitles):
        meta = f"-metadata:s:s:{index}"
        args += [meta, f"language={lang}", meta, f"handler_name={title}", meta, f"title={title}"]
    args += [*BITEXACT, "-map_chapters", "-1"]
    for key, value in sorted((tags or {}).items()):  # after -map_metadata -1: only these global tags
        args += ["-metadata", f"{key}={value}"]
    args += ["-movflags", "+faststart", "-f", "mp4", str(out_path)]
    return args


def mux_video(
    video_src: str | os.PathLike[str],
    audio_wav: str | os.PathLike[str],
    out_mp4: str | os.PathLike[str],
    *,
    duration: float,
    subtitles: Sequence[SubtitleTrack] = (),
    reencode: bool = False,
    audio_language: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Path:
    """Mux ``video_src``'s video, the dubbed ``audio_wav`` and soft subtitles into ``out_mp4``.

    ``duration`` is the source video's duration in seconds (e.g. ``probe_durations(src)["video"]``);
    the audio is fitted to it before encoding. ``subtitles`` lists ``(srt_path, iso639_2, title)``
    in display order; ``audio_language`` optionally tags the audio track (ISO 639-2); ``tags`` are
    the file's global metadata (``title``, ``comment``), nothing else is carried over.
    Returns the output path. Raises ``BadInputError`` for missing/unreadable inputs and
    ``ProviderError`` when ffmpeg fails (e.g. a codec MP4 cannot carry with ``-c:v copy``).
    """
    src, wav, out = Path(video_src), Path(audio_wav), Path(out_mp4)
    if not src.is_file():
        raise BadInputError(f"video {src.name!r} not found")
    if not wav.is_file():
        raise BadInputError(f"audio {wav.name!r} not found")
    if audio_language is not None and not _LANG_RE.match(audio_language):
        raise ConfigurationError(f"audio language must be an ISO 639-2 code, got {audio_language!r}")
    _check_tracks(subtitles)
    if not duration > 0:
        raise BadInputError(f"video duration must be positive, got {duration}")
    audio, rate = _read_audio(wav)
    audio = fit_audio_length(_resample(audio, rate, AUDIO_SAMPLE_RATE), AUDIO_SAMPLE_RATE, duration)

    out.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600) and os.replace would keep that mode.
    token = f"{os.getpid()}.{uuid.uuid4().hex[:12]}"
    tmp_wav = str(out.parent / f".{out.name}.{token}.audio.wav")
    tmp_mp4 = str(out.parent / f".{out.name}.{token}.partial.mp4")
    try:
        sf.write(tmp_wav, audio.T, AUDIO_SAMPLE_RATE, subtype="FLOAT", format="WAV")
        args = build_mux_args(
            src, tmp_wav, tmp_mp4, subtitles=subtitles, reencode=reencode, audio_language=audio_language,
            tags=tags,
        )  # fmt: skip
        run_ffmpeg(args, what="mux")
        os.replace(tmp_mp4, out)
    finally:
        for leftover in (tmp_wav, tmp_mp4):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return out


def video_frame_hashes(path: str | os.PathLike[str], *, packets: bool = False) -> list[str]:
    """MD5 of every frame of the first video stream (ffmpeg ``-f framemd5``), in order.

    By default the decoded pictures are hashed; with ``packets=True`` the compressed packets
    are (``-c:v copy``), which proves a stream copy is byte-for-byte the source's bitstream.
    """
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", str(path), "-map", "0:v:0"]
    if packets:
        cmd += ["-c:v", "copy"]
    cmd += ["-f", "framemd5", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False, env=tool_env())
    except FileNotFoundError as exc:
        raise ProviderError("ffmpeg is not installed (apt-get install ffmpeg)") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["ffmpeg failed"]
        raise BadInputError(f"frame hashing failed: {tail[0]}")
    hashes = []
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        if line and not line.startswith("#"):
            hashes.append(line.rsplit(",", 1)[-1].strip())
    return hashes


def _stream_duration(stream: Mapping[str, Any]) -> float | None:
    if stream.get("duration") not in (None, "N/A"):
        return float(stream["duration"])
    tag = (stream.get("tags") or {}).get("DURATION")  # Matroska keeps it as a tag
    if tag:
        h, m, s = tag.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    return None


def probe_durations(path: str | os.PathLike[str]) -> dict[str, float | None]:
    """``{"video", "audio", "format"}`` durations in seconds from ffprobe (first stream of each kind).

    For MP4 the stream durations honour edit lists, so the AAC encoder's priming samples are
    not counted. ``None`` where a stream (or the information) is missing.
    """
    info = ffprobe(Path(path))
    out: dict[str, float | None] = {"video": None, "audio": None}
    for stream in info.get("streams", []):
        kind = stream.get("codec_type")
        if kind in out and out[kind] is None:
            out[kind] = _stream_duration(stream)
    fmt = info.get("format", {}).get("duration")
    out["format"] = float(fmt) if fmt not in (None, "N/A") else None
    return out


def top_level_boxes(path: str | os.PathLike[str]) -> list[str]:
    """Types of the top-level ISO-BMFF boxes in file order (e.g. ``["ftyp", "moov", "mdat"]``)."""
    boxes = []
    size_total = os.path.getsize(path)
    with open(path, "rb") as fh:
        pos = 0
        while pos + 8 <= size_total:
            fh.seek(pos)
            header = fh.read(16)
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if size == 1:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                size = size_total - pos
            if size < 8:
                raise BadInputError(f"corrupt MP4 box {kind!r} at offset {pos}")
            boxes.append(kind)
            pos += size
    return boxes
