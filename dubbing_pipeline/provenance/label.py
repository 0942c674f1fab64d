"""The visible label (``DUBBING_LABEL``): a line of text in a corner of the first seconds of the video.

The text is rendered once (Pillow's built-in scalable font, no font file needed) into an alpha
mask on a dark rounded box, sized from the frame height, in the bottom-right corner. It is laid
straight onto the decoded planar YUV frames (8-bit 4:2:0, 4:2:2, 4:4:4 or gray): white text on a
72 %-opaque black box, each chroma sample blended with the mean alpha of the luma samples it
covers. The composer (``lip_sync.compose``) applies it to the frames shown in the first
``seconds`` and re-encodes only the keyframe-aligned span those frames fall in; every other frame
of the video is the source's, bit for bit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dubbing_pipeline.common.media import PLANAR_FORMATS
from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.settings import Settings

BOX_OPACITY = 0.72
PLANAR_8BIT = {  # the 8-bit planar formats (chroma x shift, chroma y shift), and gray
    **{fmt: (sx, sy) for fmt, (size, sx, sy) in PLANAR_FORMATS.items() if size == 1},
    "gray": (0, 0),
}


@dataclass(frozen=True)
class Label:
    """The label's text and how long it shows (seconds from the start)."""

    text: str
    seconds: float

    def describe(self) -> dict[str, str | float]:
        return {"text": self.text, "seconds": self.seconds}

    def frames(self, fps: float, total: int) -> int:
        """How many of the first frames carry the label (frame ``j`` shows at ``j / fps``)."""
        return min(total, math.ceil(self.seconds * fps - 1e-9))


def make_label(settings: Settings) -> Label | None:
    """The label ``DUBBING_LABEL`` asks for, or ``None``; a bad duration is a configuration error."""
    text = " ".join(str(settings.label).split())
    if not text:
        return None
    if not 0 < float(settings.label_seconds) <= 600:
        raise ConfigurationError("DUBBING_LABEL_SECONDS must be between 0 and 600 seconds")
    if len(text) > 80:
        raise ConfigurationError("DUBBING_LABEL is longer than 80 characters")
    return Label(text, float(settings.label_seconds))


@dataclass(frozen=True)
class Stamp:
    """The rendered label: luma and alpha (0..1) of its box, and where its top-left corner goes."""

    luma: np.ndarray  # float32 (h, w), 0..255
    alpha: np.ndarray  # float32 (h, w)
    x: int
    y: int


@functools.lru_cache(maxsize=8)
def render(text: str, width: int, height: int) -> Stamp:
    """The label for a ``width`` × ``height`` frame: text ~4.5 % of the height, in the bottom-right."""
    size = max(10, round(height * 0.045))
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = (int(math.floor(v)) for v in font.getbbox(text))
    pad = max(4, size // 2)
    w = min(width, right - left + 2 * pad)
    h = min(height, bottom - top + 2 * pad)
    text_mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(text_mask).text((pad - left, pad - top), text, fill=255, font=font)
    box_mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(box_mask).rounded_rectangle((0, 0, w - 1, h - 1), radius=pad // 2, fill=255)
    ink = np.asarray(text_mask, dtype=np.float32) / 255.0
    box = np.asarray(box_mask, dtype=np.float32) / 255.0 * BOX_OPACITY
    alpha = np.maximum(ink, box)
    # white ink over a black box: where only the box shows, luma 16 (black); ink brings it to 235
    luma = np.where(alpha > 0, 16.0 + 219.0 * ink / np.maximum(alpha, 1e-6), 16.0).astype(np.float32)
    margin = max(2, round(height * 0.03))
    x = max(0, width - w - margin) & ~1  # even: chroma samples line up
    y = max(0, height - h - margin) & ~1
    return Stamp(luma, alpha.astype(np.float32), x, y)


def apply(frame: bytes, width: int, height: int, pix_fmt: str, stamp: Stamp) -> bytes:
    """``frame`` (raw planar YUV or gray) with the label laid on; other pixels untouched."""
    if pix_fmt not in PLANAR_8BIT:
        raise ValueError(f"the label is drawn on 8-bit planar frames, not {pix_fmt}")
    sx, sy = PLANAR_8BIT[pix_fmt]
    buf = np.frombuffer(frame, dtype=np.uint8).copy()
    h, w = stamp.alpha.shape
    y_plane = buf[: width * height].reshape(height, width)
    region = y_plane[stamp.y : stamp.y + h, stamp.x : stamp.x + w].astype(np.float32)
    y_plane[stamp.y : stamp.y + h, stamp.x : stamp.x + w] = _blend(region, stamp.luma, stamp.alpha)
    if pix_fmt != "gray":
        cw, ch = -(-width // (1 << sx)), -(-height // (1 << sy))
        alpha_c = _pool(stamp.alpha, sx, sy)
        x0, y0 = stamp.x >> sx, stamp.y >> sy
        hc, wc = alpha_c.shape
        for plane in range(2):
            start = width * height + plane * cw * ch
            chroma = buf[start : start + cw * ch].reshape(ch, cw)
            sub = chroma[y0 : y0 + hc, x0 : x0 + wc]
            a = alpha_c[: sub.shape[0], : sub.shape[1]]
            chroma[y0 : y0 + sub.shape[0], x0 : x0 + sub.shape[1]] = _blend(sub.astype(np.float32), 128.0, a)
    return buf.tobytes()


def _blend(under: np.ndarray, over: float | np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = under * (1.0 - alpha) + np.asarray(over, dtype=np.float32) * alpha
    return np.asarray(np.clip(np.rint(out), 0, 255), dtype=np.uint8)


def _pool(alpha: np.ndarray, sx: int, sy: int) -> np.ndarray:
    """Mean alpha over each chroma sample's luma block (edges padded by repetition)."""
    fy, fx = 1 << sy, 1 << sx
    h, w = alpha.shape
    padded = np.pad(alpha, ((0, (-h) % fy), (0, (-w) % fx)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // fy, fy, padded.shape[1] // fx, fx)
    return np.asarray(blocks.mean(axis=(1, 3)), dtype=np.float32)
