"""The packaged frontal-face cascades ``faces.FaceDetector`` runs (see ``faces``).

OpenCV's Haar cascade where the installed OpenCV ships it (the 4.x wheels), else OpenCV's LBP
cascade from the scikit-image wheel, run by ``skimage.feature.Cascade``. Each library is optional
on its own and imported here, at the top: ``faces`` imports this module only when it makes a
detector, so a process that never tracks a face never loads either.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dubbing_pipeline.errors import ModelMissingError

try:
    import cv2

    HAVE_OPENCV = True
except ImportError:  # scikit-image's cascade serves instead
    HAVE_OPENCV = False
try:
    import skimage
    from skimage import data as skimage_data
    from skimage.feature import Cascade  # type: ignore[import-untyped,unused-ignore]

    HAVE_SKIMAGE = True
except ImportError:
    HAVE_SKIMAGE = False

Box = tuple[int, int, int, int]  # x, y, w, h, as ``faces.Box`` (which imports this module lazily)
Grey = npt.NDArray[np.uint8]  # one grey frame, (height, width)
Detect = Callable[[Grey, int], list[Box]]  # (grey frame, smallest face side) -> face boxes


def load() -> tuple[str, Detect]:
    """The detector's name (with its library's version: part of the cache key) and its function."""
    haar = _haar() if HAVE_OPENCV else None
    if haar is not None:
        return haar
    if not HAVE_SKIMAGE:
        raise ModelMissingError(
            "face detection needs OpenCV with Haar cascades (opencv-python-headless<5) or scikit-image"
        )
    return _lbp()


def _haar() -> tuple[str, Detect] | None:
    """OpenCV's Haar frontal-face cascade, where this OpenCV still ships it."""
    classifier = getattr(cv2, "CascadeClassifier", None)
    xml = (
        Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / "haarcascade_frontalface_default.xml"
    )
    if classifier is None or not xml.is_file():
        return None
    cascade = classifier(str(xml))

    def haar(gray: Grey, min_size: int) -> list[Box]:
        found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size,) * 2)
        return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in found]

    return f"opencv-haar-frontalface-default {cv2.__version__}", haar


def _lbp() -> tuple[str, Detect]:
    """OpenCV's LBP frontal-face cascade as scikit-image packages and runs it."""
    lbp = Cascade(skimage_data.lbp_frontal_face_cascade_filename())  # type: ignore[no-untyped-call]

    def detect_lbp(gray: Grey, min_size: int) -> list[Box]:
        img = gray.astype(np.float64) / 255.0
        side = min(img.shape[:2])
        found = lbp.detect_multi_scale(
            img=img, scale_factor=1.25, step_ratio=1, min_size=(min_size, min_size), max_size=(side, side)
        )
        return [(int(d["c"]), int(d["r"]), int(d["width"]), int(d["height"])) for d in found]

    return f"skimage-lbp-frontalface {getattr(skimage, '__version__', '')}", detect_lbp
