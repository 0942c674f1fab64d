"""The bundled demo clip: a 30 s talking-head video with a two-speaker English dialogue.

``demo.mp4`` and ``reference.json`` are built by ``python -m dubbing_pipeline.tooling.demo_build``;
``PROVENANCE.md`` says where every byte comes from and under which licence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict

DEMO_DIR: Path = Path(__file__).resolve().parent
DEMO_VIDEO: Path = DEMO_DIR / "demo.mp4"
REFERENCE_JSON: Path = DEMO_DIR / "reference.json"


class Segment(TypedDict):
    """One transcribed utterance (from the source's ``.stm``)."""

    start: float
    end: float
    speaker: str
    text: str


class Turn(TypedDict):
    """One speaker turn (from the source's ``.rttm``); turns may overlap."""

    start: float
    end: float
    speaker: str


class Reference(TypedDict):
    """Ground truth for the demo clip. Times are seconds from the start of ``video``."""

    video: str
    duration: float
    language: str
    speakers: list[str]
    segments: list[Segment]
    turns: list[Turn]
    sources: dict[str, object]


def load_reference(path: Path | None = None) -> Reference:
    """Read ``reference.json`` (the bundled one unless ``path`` is given)."""
    with open(path or REFERENCE_JSON, encoding="utf-8") as handle:
        data: Reference = json.load(handle)
    return data


__all__ = ["DEMO_DIR", "DEMO_VIDEO", "REFERENCE_JSON", "Reference", "Segment", "Turn", "load_reference"]
