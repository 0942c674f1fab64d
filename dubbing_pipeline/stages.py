"""The pipeline's stages, in order: the one list the definitions, the CLI, the report and the bench use.

Each stage is one Dagster asset. The source half is partitioned by video; the target half by
``video × language`` (a *pair*).
"""

from __future__ import annotations

from typing import Final, Literal

SOURCE_HALF: Final[tuple[str, ...]] = (
    "source_video",
    "audio_stems",
    "speech_segments",
    "transcript",
    "speakers",
)
TARGET_HALF: Final[tuple[str, ...]] = (
    "translation",
    "dubbed_speech",
    "dub_mix",
    "lip_sync",
    "dubbed_video",
)
STAGES: Final[tuple[str, ...]] = SOURCE_HALF + TARGET_HALF

Scope = Literal["video", "pair"]


def scope(stage: str) -> Scope:
    """``video`` for a source-half stage, ``pair`` (video × language) for a target-half one."""
    if stage in SOURCE_HALF:
        return "video"
    if stage in TARGET_HALF:
        return "pair"
    raise KeyError(f"unknown stage {stage!r}")


def before(stage: str) -> tuple[str, ...]:
    """The stages that come before ``stage``."""
    return STAGES[: STAGES.index(stage)]


SOURCE_HALF_TAG = "dubbing/source_half"
"""Run tag of a ``dub`` run whose source half the CLI found unchanged and did not run again."""
