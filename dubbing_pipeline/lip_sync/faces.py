"""The face track: per source frame, is a face visible, and where is the speaking mouth.

Detector (packaged, deterministic, CPU): OpenCV's Haar frontal-face cascade
(``cv2.data.haarcascades``) where the installed OpenCV still ships it (4.x wheels); OpenCV 5
dropped the cascade classifier and its XML files, so there the same family of detector comes from
scikit-image: OpenCV's LBP frontal-face cascade shipped in the scikit-image wheel
(``skimage.data.lbp_frontal_face_cascade_filename()``), run by ``skimage.feature.Cascade``. Both
live in ``face_cascades``, imported when a detector is made; the detector's ``name`` says which one
it runs, and is part of the cache key.

Sampling: frames are decoded once by ffmpeg, downscaled to at most ``DETECT_WIDTH`` pixels wide
and converted to grey; detection runs on every ``stride``-th frame, ``stride = ceil(fps / 12.5)``
(every 2nd frame at ≤ 25 fps, every 3rd at 30 fps). Every frame takes the result of its nearest
sampled frame (ties go to the earlier one), then a face-less run of a single sample between two
detections is closed (a blink of the detector, not of the face).

Speaking face: when several faces are visible the largest box is chosen; ties go to the box whose
centre is nearest the frame centre, then to the top-most, left-most one. Mouth box: the central
half (horizontally) of the lower third of the chosen face box, in source pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dubbing_pipeline.common.media import ffprobe, raw_video_frames
from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.lip_sync.records import FaceTrackRecord
from dubbing_pipeline.records import JsonObject

DETECT_WIDTH = 160
SAMPLE_FPS = 12.5
MIN_FACE_FRACTION = 0.12  # of the frame's shorter side, in detection pixels
CODE_VERSION = recipe("lip_sync").code[1]

Box = tuple[int, int, int, int]  # x, y, w, h
Grey = npt.NDArray[np.uint8]  # one frame, grey, (height, width)


def sample_stride(fps: float) -> int:
    return max(1, math.ceil(fps / SAMPLE_FPS - 1e-9))


def choose_face(boxes: Sequence[Box], width: int, height: int) -> Box | None:
    """The speaking face: largest area; ties → nearest the centre, then top-most, left-most."""
    if not boxes:
        return None
    cx, cy = width / 2.0, height / 2.0

    def rank(b: Box) -> tuple[float, float, int, int]:
        x, y, w, h = b
        dist = (x + w / 2.0 - cx) ** 2 + (y + h / 2.0 - cy) ** 2
        return (-float(w * h), dist, y, x)

    return min(boxes, key=rank)


def mouth_box(face: Box) -> Box:
    """Lower third of the face box, central half horizontally."""
    x, y, w, h = face
    return (x + w // 4, y + (2 * h) // 3, w - 2 * (w // 4), h - (2 * h) // 3)


def fill_presence(samples: dict[int, bool], frames_total: int) -> list[bool]:
    """Per-frame presence from sampled frames: nearest sample (ties → earlier), single-sample gaps closed."""
    if frames_total <= 0:
        return []
    idx = sorted(samples)
    if not idx:
        return [False] * frames_total
    values = [samples[i] for i in idx]
    for k in range(1, len(values) - 1):  # close one-sample gaps between detections
        if not values[k] and values[k - 1] and values[k + 1]:
            values[k] = True
    out: list[bool] = []
    pos = 0
    for j in range(frames_total):
        while pos + 1 < len(idx) and abs(idx[pos + 1] - j) < abs(idx[pos] - j):
            pos += 1
        out.append(values[pos])
    return out


def runs(mask: Sequence[bool]) -> list[list[int]]:
    """``[start, end)`` runs of True."""
    out: list[list[int]] = []
    for j, v in enumerate(mask):
        if v and (not out or out[-1][1] != j):
            out.append([j, j + 1])
        elif v:
            out[-1][1] = j + 1
    return out


def from_runs(spans: Sequence[Sequence[int]], frames_total: int) -> list[bool]:
    out = [False] * frames_total
    for a, b in spans:
        for j in range(max(0, a), min(frames_total, b)):
            out[j] = True
    return out


@dataclass(frozen=True)
class FaceTrack:
    """Per source frame, whether a face is seen, and the speaking mouth of each sampled frame."""

    fps: float
    frames_total: int
    width: int
    height: int
    stride: int
    detector: str
    present: list[bool]
    mouths: dict[int, Box] = field(default_factory=dict)  # sampled frame -> mouth box (source px)

    @property
    def frames_with_face(self) -> int:
        return sum(self.present)

    def mouth_at(self, frame: int) -> Box | None:
        """The mouth box of the nearest sampled frame with a face (ties → earlier)."""
        if not self.mouths:
            return None
        best = min(self.mouths, key=lambda j: (abs(j - frame), j))
        return self.mouths[best]

    def to_dict(self) -> JsonObject:
        """The stored form: the ``faces`` step's record fields (``records.FaceTrackRecord``)."""
        return {
            "fps": self.fps,
            "frames_total": self.frames_total,
            "width": self.width,
            "height": self.height,
            "stride": self.stride,
            "detector": self.detector,
            "frames_with_face": self.frames_with_face,
            "present_runs": runs(self.present),
            "mouths": [[j, *box] for j, box in sorted(self.mouths.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaceTrack:
        n = int(data["frames_total"])
        return cls(
            fps=float(data["fps"]),
            frames_total=n,
            width=int(data["width"]),
            height=int(data["height"]),
            stride=int(data["stride"]),
            detector=str(data["detector"]),
            present=from_runs(data["present_runs"], n),
            mouths={int(m[0]): (int(m[1]), int(m[2]), int(m[3]), int(m[4])) for m in data["mouths"]},
        )

    @classmethod
    def from_record(cls, record: FaceTrackRecord) -> FaceTrack:
        """The track the ``faces`` step stored."""
        return cls.from_dict(dict(record))


class FaceDetector:
    """Frontal faces on a grey image: OpenCV Haar where packaged, else the scikit-image LBP cascade."""

    def __init__(self) -> None:
        from dubbing_pipeline.lip_sync import face_cascades  # lazy: OpenCV, scikit-image cascades

        self.name, self._detect = face_cascades.load()

    def __call__(self, gray: Grey) -> list[Box]:
        min_size = max(12, int(min(gray.shape[:2]) * MIN_FACE_FRACTION))
        return list(self._detect(np.ascontiguousarray(gray), min_size))


def _probe_video(path: Path) -> tuple[int, int, float, int]:
    info = ffprobe(path)
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "video"]
    if not streams:
        raise BadInputError("no video stream: nothing to lip-sync")
    s = streams[0]
    num, _, den = str(s.get("avg_frame_rate") or s.get("r_frame_rate") or "0/1").partition("/")
    fps = float(num) / float(den or 1) if float(den or 1) else 0.0
    if fps <= 0:
        num, _, den = str(s.get("r_frame_rate", "25/1")).partition("/")
        fps = float(num) / float(den or 1)
    frames = int(s.get("nb_frames") or 0) or round(float(s.get("duration") or 0.0) * fps)
    return int(s["width"]), int(s["height"]), fps, frames


def grey_frames(path: Path, width: int, height: int) -> Iterator[Grey]:
    """Decode every frame, downscaled to ``width``×``height`` grey (area filter)."""
    video_filter = f"scale={width}:{height}:flags=area,format=gray"
    for buf in raw_video_frames(path, video_filter, width * height, check=True):
        yield np.frombuffer(buf, dtype=np.uint8).reshape(height, width)


def track_faces(path: str | Path, *, detector: FaceDetector | None = None) -> FaceTrack:
    """Detect the speaking face through ``path``'s video (see the module docstring)."""
    path = Path(path)
    width, height, fps, _ = _probe_video(path)
    det = detector or FaceDetector()
    scale = min(1.0, DETECT_WIDTH / width)
    dw, dh = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
    sx, sy = width / dw, height / dh
    stride = sample_stride(fps)
    samples: dict[int, bool] = {}
    mouths: dict[int, Box] = {}
    n = 0
    for j, gray in enumerate(grey_frames(path, dw, dh)):
        n = j + 1
        if j % stride:
            continue
        face = choose_face(det(gray), dw, dh)
        samples[j] = face is not None
        if face is not None:
            x, y, w, h = face
            full = (round(x * sx), round(y * sy), round(w * sx), round(h * sy))
            mouths[j] = mouth_box(full)
    return FaceTrack(
        fps=fps,
        frames_total=n,
        width=width,
        height=height,
        stride=stride,
        detector=det.name,
        present=fill_presence(samples, n),
        mouths=mouths,
    )
