"""Muxing the finished video: video (stream-copied), dubbed AAC audio, soft subtitle tracks.

``subtitles`` writes SRT/WebVTT from cues (pure); ``core.mux_video`` runs ffmpeg, bit-exactly.
"""

from dubbing_pipeline.dubbed_video.core import (
    AUDIO_BITRATE,
    AUDIO_SAMPLE_RATE,
    fit_audio_length,
    mux_video,
    probe_durations,
    top_level_boxes,
    video_frame_hashes,
)
from dubbing_pipeline.dubbed_video.subtitles import (
    Cue,
    format_timestamp,
    parse_srt,
    to_srt,
    to_vtt,
    wrap_text,
)

__all__ = [
    "AUDIO_BITRATE",
    "AUDIO_SAMPLE_RATE",
    "Cue",
    "fit_audio_length",
    "format_timestamp",
    "mux_video",
    "parse_srt",
    "probe_durations",
    "to_srt",
    "to_vtt",
    "top_level_boxes",
    "video_frame_hashes",
    "wrap_text",
]
