"""The review page's line clips: each spoken line's dubbed audio as a ``data:`` URI (Ogg Opus,
24 kb/s mono, bit-exact), so the page plays any line on its own with no file beside it; cached
by the lines' records (the ``review_clips`` step)."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Sequence

from dubbing_pipeline.common.media import BITEXACT, run_ffmpeg
from dubbing_pipeline.dubbed_speech.records import DubbedLine, DubbedSpeechRecord
from dubbing_pipeline.dubbed_video.records import ReviewClipsRecord
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.orchestration.kit import Step, run_step
from dubbing_pipeline.orchestration.resources import StorageResource

CODE_VERSION = recipe("dubbed_video").code[0]
CLIPS_PER_FFMPEG = 32
"""Review clips encoded by one ffmpeg process (a process per line cost ~90 ms of start-up each)."""
OPUS = ["-ac", "1", "-c:a", "libopus", "-b:a", "24k", *BITEXACT, "-f", "ogg"]


def line_clips(storage_res: StorageResource, speech: DubbedSpeechRecord) -> dict[str, str]:
    """Each spoken line's audio as a ``data:`` URI, by line id."""
    lines = [ln for ln in speech.lines if ln.uri]

    def compute(step: Step) -> dict[str, str]:
        clips: dict[str, str] = {}
        for first in range(0, len(lines), CLIPS_PER_FFMPEG):  # one ffmpeg process per batch of lines
            clips |= encode_batch(step, lines[first : first + CLIPS_PER_FFMPEG])
        out = step.tmp / "clips.json"
        out.write_text(json.dumps(clips, sort_keys=True), encoding="utf-8")
        return {"clips_uri": step.put("clips.json", out)}

    inputs = {"lines": [[ln.id, ln.cache_key, ln.uri] for ln in lines], "code": CODE_VERSION}
    record = run_step(
        storage_res, "review_clips", inputs=inputs, compute=compute, record=ReviewClipsRecord
    ).record
    store = storage_res.get()
    clips: dict[str, str] = json.loads(store.get_bytes(store.key_of(record.clips_uri)))
    return clips


def encode_batch(step: Step, batch: Sequence[DubbedLine]) -> dict[str, str]:
    """The clips of ``batch``, encoded by one ffmpeg process."""
    with contextlib.ExitStack() as stack:
        paths = [stack.enter_context(step.local(str(line.uri))) for line in batch]
        args = [a for path in paths for a in ("-i", str(path))]
        for i, _ in enumerate(batch):
            args += ["-map", f"{i}:a", *OPUS, str(step.tmp / f"line{i}.ogg")]
        run_ffmpeg(args, what="review clips")
    clips = {}
    for i, line in enumerate(batch):
        data = base64.b64encode((step.tmp / f"line{i}.ogg").read_bytes()).decode("ascii")
        clips[line.id] = "data:audio/ogg;base64," + data
    return clips
