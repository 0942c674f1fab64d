"""``report.json``: one documented, stable summary per dubbed video × language.

Schema (version 1; fields are only ever added):

```
{
  "schema": "dubbing_pipeline.report/1",
  "video_id": str, "source_language": str, "target_language": str,
  "duration": float,                      # seconds of the source (and of the output)
  "stages": {name: {"seconds": float, "cached": bool}},
  "segments": [{"id", "start", "end", "speaker", "source_text", "target_text",
                "dub_start", "dub_end", "rate", "stretch", "status", "flags",
                "source_start"?, "source_end"?}],  # the last two: a line moved by an edit
  "speakers": [{"id", "f0", "voice"}],
  "outputs": {"video": str, "srt": str, "vtt": str, "source_srt": str, "source_vtt": str},
  "providers": {stage: {...}},
  "mix": {"target_lufs": float, "loudness_lufs": float}
}
```

``status`` per segment: fits, borrowed (used the silence after its slot), rate (spoken
faster, ≤ 1.2×), stretch (time-stretched, ≤ 1.1×), trimmed (cut at the next line after the
one shorter re-translation), failed (silence: no translation or no synthesis). ``flags`` name
what a reviewer should check (``glossary``: a glossary term is missing from the translation;
``edited``, ``speaker``, ``skip``, ``timing``: a person's edits). A line whose slot an edit moved
has ``start``/``end`` where it is dubbed and ``source_start``/``source_end`` where it was spoken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dubbing_pipeline.edits import SOURCE_SLOT_KEYS

SCHEMA = "dubbing_pipeline.report/1"
SEGMENT_FIELDS = (
    "id", "start", "end", "speaker", "source_text", "target_text",
    "dub_start", "dub_end", "rate", "stretch", "status", "flags",
)  # fmt: skip


def report_segments(translation: Mapping[str, Any], speech: Mapping[str, Any]) -> list[dict[str, Any]]:
    by_id = {line["id"]: line for line in speech["lines"]}
    out = []
    for line in translation["lines"]:
        dub = by_id.get(line["id"], {})
        failed = dub.get("status", "failed") == "failed"
        out.append(
            {
                "id": line["id"],
                "start": line["start"],
                "end": line["end"],
                "speaker": line["speaker"],
                "source_text": line["source_text"],
                "target_text": dub.get("target_text", line["target_text"]),
                "dub_start": None if failed else round(float(dub["dub_start"]), 4),
                "dub_end": None if failed else round(float(dub["dub_end"]), 4),
                "rate": None if failed else round(float(dub["rate"]), 4),
                "stretch": None if failed else round(float(dub["stretch"]), 4),
                "status": dub.get("status", "failed"),
                "flags": list(line.get("flags", [])),
                # a moved line (edits): where the source speaker spoke it
                **{k: line[k] for k in SOURCE_SLOT_KEYS if k in line},
            }
        )
    return out


def build_report(
    *,
    video_id: str,
    duration: float,
    translation: Mapping[str, Any],
    speech: Mapping[str, Any],
    stages: Mapping[str, Mapping[str, Any]],
    outputs: Mapping[str, str],
    speakers: list[dict[str, Any]] | None = None,
    providers: Mapping[str, Any] | None = None,
    mix: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "video_id": video_id,
        "source_language": translation["source_language"],
        "target_language": translation["target_language"],
        "duration": round(float(duration), 4),
        "stages": {
            name: {"seconds": round(float(v.get("seconds", 0.0)), 3), "cached": bool(v.get("cached", False))}
            for name, v in stages.items()
        },
        "segments": report_segments(translation, speech),
        "speakers": speakers or [],
        "outputs": dict(outputs),
        "providers": dict(providers or {}),
        "mix": dict(mix or {}),
    }
    report.update(extra or {})
    return report


def review_lines(
    report: Mapping[str, Any], feedback: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """One row per line of a report: its slot, speaker, texts, fit, round-trip CER, flags and the
    viewers' feedback notes on it.

    Flags are the translation's (``glossary``) and the scorecard's problems (``unintelligible``,
    ``start``, ``overlap``, ``speed``, ``silent``).
    """
    scores = {str(r["id"]): r for r in report.get("quality", {}).get("segments", [])}
    notes: dict[str, list[str]] = {}
    for item in feedback:
        notes.setdefault(str(item["line"]), []).append(str(item["note"]))
    rows = []
    for seg in report["segments"]:
        score = scores.get(str(seg["id"]), {})
        flags = [*seg.get("flags", []), *score.get("problems", [])]
        rows.append(
            {
                "id": seg["id"],
                "start": seg["start"],
                "end": seg["end"],
                "speaker": seg["speaker"],
                "status": seg["status"],
                "dub_start": seg.get("dub_start"),
                "dub_end": seg.get("dub_end"),
                "rate": seg.get("rate"),
                "stretch": seg.get("stretch"),
                "cer": score.get("cer"),
                "flags": flags,
                "source": seg["source_text"],
                "target": seg["target_text"],
                "feedback": notes.get(str(seg["id"]), []),
                **{k: seg[k] for k in SOURCE_SLOT_KEYS if k in seg},  # moved by an edit
            }
        )
    return rows


def stamp(seconds: float) -> str:
    """``mm:ss.ss``, the time of a line as the CLI prints it."""
    minutes, secs = divmod(float(seconds), 60.0)
    return f"{int(minutes):02d}:{secs:05.2f}"


def lines_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of ``review_lines`` as a plain-text table, one line of the dub per row."""
    out = [f"{'id':<6} {'time':<17} {'spk':<4} {'status':<8} {'cer':>5}  {'flags':<14} source → target"]
    for r in rows:
        cer = "" if r["cer"] is None else f"{float(r['cer']):.2f}"
        flags = ",".join(r["flags"]) or "-"
        time = f"{stamp(r['start'])}-{stamp(r['end'])}"
        out.append(
            f"{r['id']:<6} {time:<17} {r['speaker']:<4} {r['status']:<8} {cer:>5}  {flags:<14} "
            f"{r['source']} → {r['target']}" + "".join(f"  [feedback: {n}]" for n in r.get("feedback", []))
        )
    return "\n".join(out) + "\n"
