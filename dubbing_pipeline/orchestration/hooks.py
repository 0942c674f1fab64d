"""A test hook: pause the pipeline at a named point so a test can kill it there deterministically.

Off unless ``DUBBING_TEST_PAUSE_AT`` is set (never set it in production). Its value is
``POINT`` or ``POINT:N``: the N-th time (default 1) this process reaches ``pause_point(POINT)``
it creates the file named by ``DUBBING_TEST_PAUSE_MARKER`` (if set) and sleeps
``DUBBING_TEST_PAUSE_SECONDS`` (default 600) before going on, or less once the file named by
``DUBBING_TEST_PAUSE_RELEASE`` exists (a test that acts mid-run, then lets the run go on). The
kill-and-resume tests wait for the marker, then send SIGKILL. Points:

* ``speech_line``: right after a newly synthesised line's cache record is written;
* ``mux``: after the dubbed MP4 is stored as a ``cache/mux`` artifact, before its ``record.json``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

PAUSE_AT = "DUBBING_TEST_PAUSE_AT"
PAUSE_MARKER = "DUBBING_TEST_PAUSE_MARKER"
PAUSE_SECONDS = "DUBBING_TEST_PAUSE_SECONDS"
PAUSE_RELEASE = "DUBBING_TEST_PAUSE_RELEASE"

_reached: Counter[str] = Counter()


def parse_pause(spec: str) -> tuple[str, int]:
    """``"speech_line:2"`` → ``("speech_line", 2)``; ``"mux"`` → ``("mux", 1)``."""
    point, _, count = spec.strip().partition(":")
    return point, int(count) if count.strip() else 1


def pause_point(point: str) -> None:
    spec = os.environ.get(PAUSE_AT)
    if not spec:
        return
    wanted, nth = parse_pause(spec)
    if wanted != point:
        return
    _reached[point] += 1
    if _reached[point] != nth:
        return
    marker = os.environ.get(PAUSE_MARKER)
    if marker:
        Path(marker).write_text(f"{point}:{nth} pid {os.getpid()}\n", encoding="utf-8")
    until = time.monotonic() + float(os.environ.get(PAUSE_SECONDS, "600"))
    release = os.environ.get(PAUSE_RELEASE)
    while time.monotonic() < until and not (release and Path(release).exists()):
        time.sleep(min(0.1, max(0.0, until - time.monotonic())))
