"""What ``source_video`` hands on: the probed, content-hashed upload and its full-band audio."""

from __future__ import annotations

from dubbing_pipeline.records import Record, StageRecord


class SourceInfo(Record):
    """What ffprobe says about the upload, as far as the pipeline needs it."""

    duration: float  # seconds of media: the container's, else the audio stream's
    format_name: str
    has_video: bool  # a video stream that is not cover art
    width: int
    height: int
    fps: float  # average frame rate, else the stream's nominal one
    variable_frame_rate: bool
    rotation: int  # degrees, 0 / 90 / 180 / 270
    video_codec: str
    frame_count: int  # 0 where the container does not say
    audio_codec: str
    sample_rate: int
    channels: int
    audio_streams: int


class IngestRecord(StageRecord):
    """The cached ``source`` step: the upload hashed and probed, its full-band audio decoded once."""

    sha256: str  # of the uploaded file's bytes
    info: SourceInfo
    duration: float
    media_uri: str  # the upload as stored
    audio_uri: str  # the full-band WAV (the separators' rate, stereo)
    audio_frames: int
    audio_rate: int


class SourceVideoRecord(IngestRecord):
    """The ``source_video`` stage's output: the ingested upload and the registered video it is."""

    video_id: str
    source_uri: str  # where the video was registered from
    source_fingerprint: str | None  # the registered object version (ETag, stat stamp or sha256)
