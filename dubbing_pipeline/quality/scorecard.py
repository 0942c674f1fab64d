"""The per-segment quality scorecard: pure scoring on measured values, thresholds from configuration.

Checks (each a Dagster asset check on ``dubbed_video``, and the ``quality`` section of report.json):

* ``intelligibility`` — round-trip ASR of every dubbed line against its target text (character
  error rate); the mean must stay under ``max_mean_cer`` and a line over ``max_line_cer`` is
  counted as unintelligible (such a line was already re-synthesised once, shorter, by the
  speech stage: the automatic repair).
* ``timing`` — every line starts within ``max_start_offset`` of its source line, ends before
  the next line, with rate ≤ 1.2 and stretch ≤ 1.1.
* ``background`` — where nobody speaks, the mix correlates with the background stem at least
  ``min_background_corr``.
* ``failed_lines`` — the share of lines that became silence is at most ``max_failed_share``.
* ``av_duration`` — the output's audio and video last as long as the source within one frame.

The values they produce are typed (``quality.records``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dubbing_pipeline.quality.records import (
    AvDurationCheck,
    BackgroundCheck,
    FailedLinesCheck,
    IntelligibilityCheck,
    LineScore,
    Score,
    Scorecard,
    SilentLine,
    TimingCheck,
    ToxicityCheck,
)
from dubbing_pipeline.quality.records import Thresholds as Thresholds  # where callers found it first

Segment = Mapping[str, Any]
"""A line of report.json's ``segments`` (its stored form: the scorecard also grades stored reports)."""


def line_scores(
    segments: Sequence[Segment], cer: Mapping[str, float | None], end_of_video: float, t: Thresholds
) -> list[Score]:
    """One row per segment: start offset, overflow past the next line, rate, stretch, CER, verdict."""
    ordered = sorted(segments, key=lambda s: (float(s["start"]), str(s["id"])))
    rows: list[Score] = []
    for i, seg in enumerate(ordered):
        nxt = float(ordered[i + 1]["start"]) if i + 1 < len(ordered) else end_of_video
        if seg.get("dub_start") is None:
            rows.append(SilentLine(id=seg["id"], status="failed", ok=False, problems=["silent"]))
        else:
            rows.append(line_score(seg, cer.get(str(seg["id"])), nxt, t))
    return rows


def line_score(seg: Segment, line_cer: float | None, next_start: float, t: Thresholds) -> LineScore:
    """A spoken line's measures: how far it starts from its source line, how far it runs into the
    next one (``next_start``), how much it was sped up, how well it was understood."""
    offset = abs(float(seg["dub_start"]) - float(seg["start"]))
    overflow = max(0.0, float(seg["dub_end"]) - next_start)
    rate, stretch = float(seg["rate"]), float(seg["stretch"])
    problems = []
    if offset > t.max_start_offset + 1e-9:
        problems.append("start")
    if overflow > 1e-6:
        problems.append("overlap")
    if rate > t.max_rate + 1e-9 or stretch > t.max_stretch + 1e-9:
        problems.append("speed")
    if line_cer is not None and line_cer > t.max_line_cer:
        problems.append("unintelligible")
    return LineScore(
        id=seg["id"],
        status=seg.get("status", ""),
        start_offset=round(offset, 4),
        overflow=round(overflow, 4),
        rate=round(rate, 4),
        stretch=round(stretch, 4),
        cer=None if line_cer is None else round(float(line_cer), 4),
        chars=len(str(seg.get("target_text", "")).strip()),
        ok=not problems,
        problems=problems,
    )


def mean_cer(spoken: Sequence[LineScore]) -> float:
    """The corpus-style mean CER: weighted by each line's characters, so "Hola." weighs less than a
    sentence."""
    scored = [(float(r.cer), max(r.chars, 1)) for r in spoken if r.cer is not None]
    weight = sum(w for _, w in scored)
    return sum(c * w for c, w in scored) / weight if weight else 0.0


def scorecard(
    rows: Sequence[Score],
    *,
    background_corr: float | None,
    av_difference: float,
    frame_seconds: float,
    t: Thresholds,
) -> Scorecard:
    """The five checks with their values and verdicts."""
    spoken = [r for r in rows if isinstance(r, LineScore) and r.status != "failed"]
    mean = mean_cer(spoken)
    failed_share = (len(rows) - len(spoken)) / len(rows) if rows else 0.0
    timing_bad = [r.id for r in spoken if {"start", "overlap", "speed"} & set(r.problems)]
    corr_ok = background_corr is None or (
        math.isfinite(background_corr) and background_corr >= t.min_background_corr
    )
    return Scorecard(
        intelligibility=IntelligibilityCheck(
            passed=mean <= t.max_mean_cer,
            mean_cer=round(mean, 4),
            unintelligible_lines=[r.id for r in spoken if "unintelligible" in r.problems],
        ),
        timing=TimingCheck(passed=not timing_bad, lines_out_of_bounds=timing_bad),
        background=BackgroundCheck(
            passed=corr_ok,
            correlation=None if background_corr is None else round(float(background_corr), 5),
        ),
        failed_lines=FailedLinesCheck(
            passed=failed_share <= t.max_failed_share, share=round(failed_share, 4)
        ),
        av_duration=AvDurationCheck(
            passed=av_difference <= frame_seconds + 1e-6, difference=round(av_difference, 4)
        ),
    )


def toxicity_check(segments: Sequence[Segment], screen: Mapping[str, Any] | None) -> ToxicityCheck:
    """The ``toxicity`` check: the lines flagged ``toxic`` (the translation brought in listed terms),
    and whether the target language had a list to screen with (``screen``: the translation's
    ``toxicity`` summary)."""
    flagged = [str(s["id"]) for s in segments if "toxic" in s.get("flags", [])]
    found = screen or {}
    fields = {"flagged_lines": flagged, "screened": bool(found.get("available")), "list": found.get("list")}
    return ToxicityCheck.model_validate({"passed": not flagged, **fields, "detail": found.get("detail")})


def quiet_mask(
    segments: Sequence[Segment], sample_rate: int, frames: int, pad: float = 0.15
) -> npt.NDArray[np.bool_]:
    """``frames`` booleans: True where no dubbed line sounds (each line widened by ``pad`` seconds)."""
    quiet = np.ones(frames, dtype=bool)
    for seg in segments:
        if seg["dub_start"] is not None:
            a = int((seg["dub_start"] - pad) * sample_rate)
            b = int((seg["dub_end"] + pad) * sample_rate)
            quiet[max(a, 0) : max(b, 0)] = False
    return quiet


def background_correlation(
    mixed: npt.NDArray[np.float32],
    background: npt.NDArray[np.float32],
    quiet: npt.NDArray[np.bool_],
    sample_rate: int,
) -> float | None:
    """Correlation of the mix with the background stem where nobody speaks (``None``: under 0.5 s of it,
    or a silent side)."""
    if quiet.sum() <= sample_rate // 2:
        return None
    x, y = mixed[: len(quiet)][quiet].ravel(), background[: len(quiet)][quiet].ravel()
    if float(np.std(x)) > 0 and float(np.std(y)) > 0:
        return float(np.corrcoef(x, y)[0, 1])
    return None


def markdown_table(rows: Sequence[Score], limit: int = 80) -> str:
    """The scores as a markdown table (the ``timing`` and ``intelligibility`` checks' metadata)."""
    lines = [
        "| id | status | start Δ | overflow | rate | stretch | CER | ok |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows[:limit]:
        if isinstance(r, SilentLine) or r.status == "failed":
            lines.append(f"| {r.id} | failed | | | | | | ✗ |")
            continue
        cer = "" if r.cer is None else f"{r.cer:.2f}"
        mark = "✓" if r.ok else "✗ " + ",".join(r.problems)
        lines.append(
            f"| {r.id} | {r.status} | {r.start_offset:.3f} | {r.overflow:.3f} | {r.rate:.2f} "
            f"| {r.stretch:.2f} | {cer} | {mark} |"
        )
    return "\n".join(lines)
