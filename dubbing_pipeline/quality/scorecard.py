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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dubbing_pipeline.dubbed_speech.isochrony import FAILURE_LIMIT, MAX_RATE, MAX_STRETCH


@dataclass(frozen=True)
class Thresholds:
    max_line_cer: float = 0.6
    max_mean_cer: float = 0.4
    max_start_offset: float = 0.05
    max_rate: float = MAX_RATE
    max_stretch: float = MAX_STRETCH
    min_background_corr: float = 0.99
    max_failed_share: float = FAILURE_LIMIT

    @classmethod
    def from_settings(cls, settings: Any) -> Thresholds:
        """The ``DUBBING_QC_*`` rows of the settings table."""
        return cls(
            max_line_cer=settings.qc_max_line_cer,
            max_mean_cer=settings.qc_max_mean_cer,
            max_start_offset=settings.qc_max_start_offset,
            min_background_corr=settings.qc_min_background_corr,
            max_failed_share=settings.qc_max_failed_share,
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def line_scores(
    segments: Sequence[Mapping[str, Any]], cer: Mapping[str, float | None], end_of_video: float, t: Thresholds
) -> list[dict[str, Any]]:
    """One row per segment: start offset, overflow past the next line, rate, stretch, CER, verdict."""
    ordered = sorted(segments, key=lambda s: (float(s["start"]), str(s["id"])))
    rows = []
    for i, seg in enumerate(ordered):
        nxt = float(ordered[i + 1]["start"]) if i + 1 < len(ordered) else end_of_video
        if seg.get("dub_start") is None:
            rows.append({"id": seg["id"], "status": "failed", "ok": False, "problems": ["silent"]})
            continue
        offset = abs(float(seg["dub_start"]) - float(seg["start"]))
        overflow = max(0.0, float(seg["dub_end"]) - nxt)
        rate, stretch = float(seg["rate"]), float(seg["stretch"])
        line_cer = cer.get(str(seg["id"]))
        problems = []
        if offset > t.max_start_offset + 1e-9:
            problems.append("start")
        if overflow > 1e-6:
            problems.append("overlap")
        if rate > t.max_rate + 1e-9 or stretch > t.max_stretch + 1e-9:
            problems.append("speed")
        if line_cer is not None and line_cer > t.max_line_cer:
            problems.append("unintelligible")
        rows.append(
            {
                "id": seg["id"],
                "status": seg.get("status", ""),
                "start_offset": round(offset, 4),
                "overflow": round(overflow, 4),
                "rate": round(rate, 4),
                "stretch": round(stretch, 4),
                "cer": None if line_cer is None else round(float(line_cer), 4),
                "chars": len(str(seg.get("target_text", "")).strip()),
                "ok": not problems,
                "problems": problems,
            }
        )
    return rows


def scorecard(
    rows: Sequence[Mapping[str, Any]],
    *,
    background_corr: float | None,
    av_difference: float,
    frame_seconds: float,
    t: Thresholds,
) -> dict[str, Any]:
    """The five checks with their values and verdicts."""
    spoken = [r for r in rows if r["status"] != "failed"]
    # corpus-style mean: weighted by each line's characters, so "Hola." weighs less than a sentence
    scored = [(float(r["cer"]), max(int(r.get("chars", 1)), 1)) for r in spoken if r.get("cer") is not None]
    weight = sum(w for _, w in scored)
    mean_cer = sum(c * w for c, w in scored) / weight if weight else 0.0
    failed_share = (len(rows) - len(spoken)) / len(rows) if rows else 0.0
    timing_bad = [r["id"] for r in spoken if {"start", "overlap", "speed"} & set(r["problems"])]
    unintelligible = [r["id"] for r in spoken if "unintelligible" in r["problems"]]
    corr_ok = background_corr is None or (
        math.isfinite(background_corr) and background_corr >= t.min_background_corr
    )
    return {
        "intelligibility": {
            "passed": mean_cer <= t.max_mean_cer,
            "mean_cer": round(mean_cer, 4),
            "unintelligible_lines": unintelligible,
        },
        "timing": {"passed": not timing_bad, "lines_out_of_bounds": timing_bad},
        "background": {
            "passed": corr_ok,
            "correlation": None if background_corr is None else round(float(background_corr), 5),
        },
        "failed_lines": {"passed": failed_share <= t.max_failed_share, "share": round(failed_share, 4)},
        "av_duration": {
            "passed": av_difference <= frame_seconds + 1e-6,
            "difference": round(av_difference, 4),
        },
    }


def toxicity_check(segments: Sequence[Mapping[str, Any]], screen: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``toxicity`` check: the lines flagged ``toxic`` (the translation brought in listed terms),
    and whether the target language had a list to screen with."""
    flagged = [str(s["id"]) for s in segments if "toxic" in s.get("flags", [])]
    return {
        "passed": not flagged,
        "flagged_lines": flagged,
        "screened": bool(screen and screen.get("available")),
        "list": (screen or {}).get("list"),
        "detail": (screen or {}).get("detail"),
    }


def quiet_mask(
    segments: Sequence[Mapping[str, Any]], sample_rate: int, frames: int, pad: float = 0.15
) -> Any:
    """``frames`` booleans: True where no dubbed line sounds (each line widened by ``pad`` seconds)."""
    import numpy as np

    quiet = np.ones(frames, dtype=bool)
    for seg in segments:
        if seg["dub_start"] is not None:
            a = int((seg["dub_start"] - pad) * sample_rate)
            b = int((seg["dub_end"] + pad) * sample_rate)
            quiet[max(a, 0) : max(b, 0)] = False
    return quiet


def background_correlation(mixed: Any, background: Any, quiet: Any, sample_rate: int) -> float | None:
    """Correlation of the mix with the background stem where nobody speaks (``None``: under 0.5 s of it,
    or a silent side)."""
    import numpy as np

    if quiet.sum() <= sample_rate // 2:
        return None
    x, y = mixed[: len(quiet)][quiet].ravel(), background[: len(quiet)][quiet].ravel()
    if float(np.std(x)) > 0 and float(np.std(y)) > 0:
        return float(np.corrcoef(x, y)[0, 1])
    return None


def markdown_table(rows: Sequence[Mapping[str, Any]], limit: int = 80) -> str:
    lines = [
        "| id | status | start Δ | overflow | rate | stretch | CER | ok |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows[:limit]:
        if r["status"] == "failed":
            lines.append(f"| {r['id']} | failed | | | | | | ✗ |")
            continue
        cer = "" if r.get("cer") is None else f"{r['cer']:.2f}"
        mark = "✓" if r["ok"] else "✗ " + ",".join(r["problems"])
        lines.append(
            f"| {r['id']} | {r['status']} | {r['start_offset']:.3f} | {r['overflow']:.3f} | {r['rate']:.2f} "
            f"| {r['stretch']:.2f} | {cer} | {mark} |"
        )
    return "\n".join(lines)
