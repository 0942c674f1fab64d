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


ACCEPT_TAG = "dubbing/accept"
"""Run tag: the blocking quality checks a person accepted failing for this dub (``dub --accept``)."""

SOURCE_HALF_TAG = "dubbing/source_half"
"""Run tag of a ``dub`` run whose source half the CLI found unchanged and did not run again."""

EDITS: Final = "edits"
FEEDBACK: Final = "feedback"
OBSERVED: Final[tuple[str, ...]] = (EDITS, FEEDBACK)
"""The observable source assets of the target half: a person's edits (read by ``translation``) and
viewers' feedback (shown by ``dubbed_video``'s review page); their data version is their content's."""

PARENTS: Final[dict[str, tuple[str, ...]]] = {
    "source_video": (),
    "audio_stems": ("source_video",),
    "speech_segments": ("audio_stems", "source_video"),
    "transcript": ("speech_segments",),
    "speakers": ("speech_segments", "transcript"),
    "translation": (EDITS, "speakers", "transcript"),
    "dubbed_speech": ("source_video", "speakers", "speech_segments", "translation"),
    "dub_mix": ("audio_stems", "dubbed_speech", "source_video"),
    "lip_sync": ("dubbed_speech", "source_video"),
    "dubbed_video": (
        "audio_stems", "dub_mix", "dubbed_speech", FEEDBACK, "lip_sync", "source_video", "speakers",
        "translation",
    ),
}  # fmt: skip
"""Each stage's parents (assets it reads), sorted: the lineage its data version digests. The
definitions' asset graph has the same edges (a test keeps them so)."""

STEPS: Final[dict[str, str]] = {
    "source": "source_video",
    "stems": "audio_stems",
    "segments": "speech_segments",
    "language": "transcript",
    "asr_chunk": "transcript",
    "diarize_chunk": "speakers",
    "translation": "translation",
    "profiles": "dubbed_speech",
    "speech_take": "dubbed_speech",
    "speech_voice": "dubbed_speech",
    "speech_judge": "dubbed_speech",
    "speech_line": "dubbed_speech",
    "speech_mark": "dubbed_speech",
    "mix": "dub_mix",
    "faces": "lip_sync",
    "lip_sync": "lip_sync",
    "lipsync_window": "lip_sync",
    "mux": "dubbed_video",
    "quality": "dubbed_video",
    "review_clips": "dubbed_video",
}
"""Each cached step (``orchestration.kit.run_step``) and the stage whose recipe keys it."""
