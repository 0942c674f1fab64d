"""Pure parsing and validation of ffprobe output."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from dubbing_pipeline.errors import BadInputError, UnsupportedError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.source_video.records import SourceInfo

MIN_DURATION = 0.5  # seconds of audio below which nothing can be dubbed


def _rate(text: str | None) -> float:
    if not text or text in ("0/0", "0"):
        return 0.0
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def _rotation(stream: JsonObject) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return int(tag) % 360 if tag not in (None, "") else 0


def _float(value: str | float | None, default: float = 0.0) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def parse_probe(probe: JsonObject) -> SourceInfo:
    """Read what the pipeline needs from ffprobe's JSON; raise BadInputError when unusable."""
    streams = probe.get("streams") or []
    fmt = probe.get("format") or {}
    videos = [
        s for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]  # fmt: skip
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not audios:
        raise BadInputError("no audio stream: there is no speech to dub")
    audio = audios[0]
    duration = _float(fmt.get("duration"), _float(audio.get("duration")))
    if duration <= 0:
        duration = _float(audio.get("duration"))
    if duration < MIN_DURATION:
        raise BadInputError(f"too short: {duration:.2f} s of media (at least {MIN_DURATION} s needed)")
    video = videos[0] if videos else {}
    avg = _rate(video.get("avg_frame_rate"))
    real = _rate(video.get("r_frame_rate"))
    fps = avg or real
    return SourceInfo(
        duration=round(duration, 6),
        format_name=str(fmt.get("format_name", "")),
        has_video=bool(videos),
        width=int(video.get("width", 0) or 0),
        height=int(video.get("height", 0) or 0),
        fps=round(fps, 6),
        variable_frame_rate=bool(videos) and avg > 0 and real > 0 and abs(avg - real) / real > 0.01,
        rotation=_rotation(video) if videos else 0,
        video_codec=str(video.get("codec_name", "")),
        frame_count=int(video.get("nb_frames", 0) or 0) if str(video.get("nb_frames", "")).isdigit() else 0,
        audio_codec=str(audio.get("codec_name", "")),
        sample_rate=int(audio.get("sample_rate", 0) or 0),
        channels=int(audio.get("channels", 0) or 0),
        audio_streams=len(audios),
    )


def check_decoded_length(info: SourceInfo, decoded_seconds: float, tolerance: float = 0.5) -> None:
    """A file whose audio decodes much shorter than its container says is truncated."""
    if decoded_seconds < MIN_DURATION:
        raise BadInputError("audio stream decodes to nothing: the file is truncated or corrupt")
    if decoded_seconds + tolerance < info.duration * 0.9:
        raise BadInputError(
            f"truncated file: audio decodes to {decoded_seconds:.2f} s of {info.duration:.2f} s"
        )


def require_video(info: SourceInfo | Mapping[str, object]) -> None:
    """Dubbing replaces a video's soundtrack: an audio-only input (cover art does not count) is
    transcribed fine but cannot be dubbed. ``info``: the record's, typed or as stored."""
    if not info["has_video"]:
        raise UnsupportedError("no video stream to dub (audio-only input; transcribe works on it)")
