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
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Thresholds:
    max_line_cer: float = 0.6
    max_mean_cer: float = 0.4
    max_start_offset: float = 0.05
    max_rate: float = 1.2
    max_stretch: float = 1.1
    min_background_corr: float = 0.99
    max_failed_share: float = 0.2

    @classmethod
    def from_env(cls) -> Thresholds:
        def get(name: str, default: float) -> float:
            value = os.environ.get(name)
            return float(value) if value else default

        return cls(
            max_line_cer=get("DUBBING_QC_MAX_LINE_CER", cls.max_line_cer),
            max_mean_cer=get("DUBBING_QC_MAX_MEAN_CER", cls.max_mean_cer),
            max_start_offset=get("DUBBING_QC_MAX_START_OFFSET", cls.max_start_offset),
            min_background_corr=get("DUBBING_QC_MIN_BACKGROUND_CORR", cls.min_background_corr),
            max_failed_share=get("DUBBING_QC_MAX_FAILED_SHARE", cls.max_failed_share),
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
