"""``report.json``: one documented, stable summary per dubbed video × language.

Schema (version 1; fields are only ever added):

```
{
  "schema": "dubbing_pipeline.report/1",
  "video_id": str, "source_language": str, "target_language": str,
  "duration": float,                      # seconds of the source (and of the output)
  "stages": {name: {"seconds": float, "cached": bool}},
  "segments": [{"id", "start", "end", "speaker", "source_text", "target_text",
                "dub_start", "dub_end", "rate", "stretch", "status"}],
  "speakers": [{"id", "f0", "voice"}],
  "outputs": {"video": str, "srt": str, "vtt": str, "source_srt": str, "source_vtt": str},
  "providers": {stage: {...}},
  "mix": {"target_lufs": float, "loudness_lufs": float}
}
```

``status`` per segment: fits, borrowed (used the silence after its slot), rate (spoken
faster, ≤ 1.2×), stretch (time-stretched, ≤ 1.1×), trimmed (cut at the next line after the
one shorter re-translation), failed (silence: no translation or no synthesis).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCHEMA = "dubbing_pipeline.report/1"
SEGMENT_FIELDS = (
    "id", "start", "end", "speaker", "source_text", "target_text",
    "dub_start", "dub_end", "rate", "stretch", "status",
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
