"""``review.html``: one page to review a dub, beside its ``report.json``.

Self-contained: inline style and script, each line's dubbed audio inline (a ``data:`` URI), no
network. The dubbed video and its subtitles are linked by their file names, so the page plays
them when it sits beside them (the output folder of ``dubbing-pipeline dub``), from ``file://``.

The page shows the quality checks at the top, the video, and every line as a row of a table:
time, speaker, source, target, status, rate and stretch, round-trip CER, flags and the viewers'
feedback. A click on a row seeks the video to that line; each row's button plays the line's
dubbed audio on its own. The rows are rendered here, not by the script, so the page reads the
same with scripts off.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from dubbing_pipeline.dubbed_video.report import ReviewLine, review_lines, stamp
from dubbing_pipeline.storage.base import MediaStorage

CHECK_TITLES = {
    "intelligibility": "Intelligibility",
    "timing": "Timing",
    "background": "Background",
    "failed_lines": "Failed lines",
    "av_duration": "A/V duration",
    "watermark": "Watermark",
    "toxicity": "Toxicity screen",
}

CHECK_VALUES = {"watermark": ("dub_confidence", "source_confidence")}  # the rest: every number

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fafafa}
h1{font-size:1.3rem;margin:0 0 .8rem}
.checks{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:1rem}
.check{padding:.35rem .6rem;border-radius:6px;font-weight:600}
.check.pass{background:#e3f5e6;color:#1e6b2f}.check.fail{background:#fde6e4;color:#9b1c13}
.check small{font-weight:400;margin-left:.3rem}
.provenance{color:#555;font-size:.9rem;margin:0 0 .8rem}
video{width:100%;max-width:720px;background:#000;border-radius:6px}
table{border-collapse:collapse;width:100%;margin-top:1rem;background:#fff}
th,td{border-bottom:1px solid #e5e5e5;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
tr.line{cursor:pointer}tr.line:hover{background:#f5f9ff}tr.line.now{background:#fff6d6}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
small.moved{display:block;color:#8a5a00}
.flag{display:inline-block;background:#fde6e4;color:#9b1c13;border-radius:4px;
  padding:0 .3rem;margin:0 .2rem .2rem 0}
.note{display:block;color:#6b4d00}
button.play{border:1px solid #bbb;border-radius:4px;background:#fff;cursor:pointer}
"""

SCRIPT = """
(function () {
  "use strict";
  var video = document.getElementById("video");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.line"));
  var playing = null;
  rows.forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("button")) { return; }
      video.currentTime = parseFloat(row.dataset.start);
      rows.forEach(function (r) { r.classList.toggle("now", r === row); });
    });
    var button = row.querySelector("button.play");
    if (button) {
      button.addEventListener("click", function () {
        var audio = document.getElementById("audio-" + row.dataset.id);
        if (playing && playing !== audio) { playing.pause(); }
        playing = audio;
        audio.currentTime = 0;
        audio.play().catch(function () {});
      });
    }
  });
  // the rows' times are written to the millisecond and the player may report a seek to a row's
  // start a hair before it (its own sample grid): compare within that millisecond
  var EPS = 0.001;
  video.addEventListener("timeupdate", function () {
    var t = video.currentTime;
    rows.forEach(function (r) {
      var start = parseFloat(r.dataset.start) - EPS, end = parseFloat(r.dataset.end) - EPS;
      r.classList.toggle("now", t >= start && t < end);
    });
  });
})();
"""


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 2) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def _provenance(provenance: Mapping[str, Any]) -> str:
    """One line saying how the dub says it is AI-made: watermark, C2PA signer, label."""
    parts = []
    mark = provenance.get("watermark")
    parts.append(f"audio watermark {mark['name']}" if isinstance(mark, Mapping) else "no audio watermark")
    signer = provenance.get("c2pa")
    if isinstance(signer, Mapping):
        trust = " (local, untrusted)" if signer.get("local") else ""
        parts.append(f"C2PA manifest signed by {signer.get('name', '?')}{trust}")
    else:
        parts.append("no C2PA manifest")
    label = provenance.get("label")
    parts.append(f"label “{label['text']}”" if isinstance(label, Mapping) else "no visible label")
    return f'<p class="provenance">AI dub · {" · ".join(_text(p) for p in parts)}</p>'


def _check(name: str, check: Mapping[str, Any]) -> str:
    passed = bool(check.get("passed"))
    shown = CHECK_VALUES.get(name)
    detail = ", ".join(
        f"{k} {v}"
        for k, v in sorted(check.items())
        if k != "passed"
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and (shown is None or k in shown)
    )
    if name == "toxicity" and check.get("screened") is False:
        detail = "not screened (no term list)"
    elif name == "watermark" and check.get("source_marked"):  # a dub of an AI dub: no unmarked control
        detail += ", the source carries the mark too (AI speech)"
    elif check.get("enabled") is False:
        detail = "off"
    title = CHECK_TITLES.get(name, name)
    mark = "✓" if passed else "✗"
    return (
        f'<span class="check {"pass" if passed else "fail"}" data-check="{_text(name)}">'
        f"{mark} {_text(title)}<small>{_text(detail)}</small></span>"
    )


def _moved(row: ReviewLine) -> str:
    """Where the source speaks a line an edit moved (nothing for a line in its source slot)."""
    if "source_start" not in row:
        return ""
    was = f"{stamp(row['source_start'])}–{stamp(row['source_end'])}"
    return f'<small class="moved" title="moved by an edit; the source speaks it at {was}">from {was}</small>'


def _row(row: ReviewLine, audio_uri: str | None, lang: str) -> str:
    start = row["dub_start"] if row["dub_start"] is not None else row["start"]
    end = row["dub_end"] if row["dub_end"] is not None else row["end"]
    flags = "".join(f'<span class="flag">{_text(f)}</span>' for f in row["flags"])
    notes = "".join(f'<span class="note">💬 {_text(n)}</span>' for n in row["feedback"])
    fit = " / ".join(x for x in (_number(row["rate"]), _number(row["stretch"])) if x)
    play = (
        f'<button class="play" title="play this line">▶</button><audio id="audio-{_text(row["id"])}" '
        f'preload="none" src="{_text(audio_uri)}"></audio>'
        if audio_uri
        else ""
    )
    return (
        f'<tr class="line" data-id="{_text(row["id"])}" data-start="{float(start):.3f}" '
        f'data-end="{float(end):.3f}">'
        f"<td>{play}</td><td>{_text(row['id'])}</td>"
        f'<td class="num">{stamp(row["start"])}–{stamp(row["end"])}{_moved(row)}</td>'
        f"<td>{_text(row['speaker'])}</td><td>{_text(row['source'])}</td>"
        f'<td lang="{_text(lang)}">{_text(row["target"])}</td><td>{_text(row["status"])}</td>'
        f'<td class="num">{fit}</td><td class="num">{_number(row["cer"])}</td>'
        f"<td>{flags}{notes}</td></tr>"
    )


def review_html(
    report: Mapping[str, Any],
    *,
    video_name: str,
    subtitles_name: str | None = None,
    line_audio: Mapping[str, str] | None = None,
    feedback: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The review page of a dub: ``report`` (``report.json``), the dubbed video's file name (and
    its subtitles' ``.vtt``), each line's audio as a ``data:`` URI by line id, and the feedback."""
    audio = dict(line_audio or {})
    lang = str(report["target_language"])
    rows = [_row(row, audio.get(str(row["id"])), lang) for row in review_lines(report, feedback)]
    checks = report.get("quality", {}).get("checks", {})
    track = (
        f'<track kind="subtitles" srclang="{_text(lang)}" label="{_text(lang)}" '
        f'src="{_text(subtitles_name)}" default>'
        if subtitles_name
        else ""
    )
    title = f"{report['video_id']}: {report['source_language']} → {lang}"
    summary = json.dumps(
        {"video_id": report["video_id"], "target_language": lang, "lines": len(rows)}, ensure_ascii=True
    ).replace("</", "<\\/")
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>Review · {_text(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # no network: nothing but this file, its inline data and the files beside it
        '<meta http-equiv="Content-Security-Policy" content="default-src \'self\' data: blob:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Review · {_text(title)}</h1>"
        f'<div class="checks">{"".join(_check(n, c) for n, c in checks.items())}</div>'
        f"{_provenance(report.get('provenance') or {})}"
        f'<video id="video" controls preload="metadata" src="{_text(video_name)}">{track}</video>'
        "<table><thead><tr><th></th><th>line</th><th>time</th><th>speaker</th><th>source</th>"
        "<th>target</th><th>status</th><th>rate / stretch</th><th>CER</th><th>flags · feedback</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<script type="application/json" id="summary">{summary}</script>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def publish_review_page(
    storage: MediaStorage,
    video_id: str,
    report: Mapping[str, Any],
    *,
    video_name: str,
    line_audio: Mapping[str, str],
    feedback: Sequence[Mapping[str, Any]],
) -> str:
    """``review.html`` beside ``report.json`` (``reports/<video>/<lang>/``); its URI."""
    lang = str(report["target_language"])
    page = review_html(
        report, video_name=video_name, subtitles_name=f"{lang}.vtt", line_audio=line_audio, feedback=feedback
    )
    return storage.put_bytes(f"reports/{video_id}/{lang}/review.html", page.encode("utf-8"))
