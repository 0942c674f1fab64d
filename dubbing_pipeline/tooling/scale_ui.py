"""The Dagster UI at catalog scale: does the target half's asset page render, and how fast?

Dagster's guidance is about 100,000 partitions per asset; 100,000 videos make 800,000
``video × language`` partitions of ``dubbed_video``. With the bench's instance (PostgreSQL, every
partition materialised), ``dagster-webserver`` serves the project's definitions and Debian's
headless ``chromium``, driven over the DevTools protocol (as ``tests/browser.py`` drives it, no
WebDriver, nothing downloaded), loads

* the asset's page (``/assets/dubbed_video``): rendered when its "Latest materialization" panel
  shows the latest materialisation (its time and its partition key, ``ko|v0000059``), not an
  empty panel (the page's frame comes first, that panel last);
* its partitions view (``?view=partitions``): rendered when the status counts are in: the
  "Materialized (8·N)" count, as the UI prints it (``Materialized (1,200)``): the asset's
  partition status over every partition, the expensive part.

Each time runs from the navigation to the first poll (every 100 ms) that sees the page rendered;
a page that is not rendered within ``TIMEOUT`` seconds is reported as ``None`` with
``..._rendered: False`` and the text it showed.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import websocket

from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.tooling.devservers import _free_port

ASSET = "dubbed_video"
TIMEOUT = 300.0
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def devtools_port(proc: subprocess.Popen[str]) -> int:
    """The DevTools port a Chromium started with ``--remote-debugging-port=0`` prints on stderr
    (also what ``tests/browser.py`` reads)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if found:
            return int(found.group(1))
        if not line and proc.poll() is not None:
            break
    raise RuntimeError("chromium did not start its DevTools endpoint")


class Page:
    """One headless Chromium tab over the DevTools protocol: navigate and evaluate, nothing else."""

    def __init__(self) -> None:
        if CHROMIUM is None:
            raise RuntimeError("Debian's chromium is not installed")
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             f"--user-data-dir={self.profile}", "--window-size=1400,1000", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        targets = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{devtools_port(self.proc)}/json", timeout=30).read()
        )
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params: object) -> Any:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def text(self) -> str:
        result = self.call(
            "Runtime.evaluate", expression="document.body ? document.body.innerText : ''", returnByValue=True
        )
        return str(result.get("result", {}).get("value") or "")

    def load(self, url: str, rendered: re.Pattern[str], timeout: float = TIMEOUT) -> tuple[float | None, str]:
        """Seconds from navigating to ``url`` until the page's text matches ``rendered`` (None: not
        within ``timeout``), and the page's text then."""
        self.call("Page.navigate", url="about:blank")
        start = time.perf_counter()
        self.call("Page.navigate", url=url)
        while time.perf_counter() - start < timeout:
            text = self.text()
            if rendered.search(text):
                return round(time.perf_counter() - start, 3), text
            time.sleep(0.1)
        return None, self.text()

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


@contextmanager
def webserver(home: Path) -> Iterator[str]:
    """``dagster-webserver`` on the project's definitions and ``home``'s instance; yields its URL
    once it answers GraphQL."""
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "dubbing_pipeline.definitions",
         "-a", "defs", "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_graphql(url, server)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_for_graphql(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    query = json.dumps({"query": "{ version }"}).encode()
    while True:
        try:
            request = urllib.request.Request(
                f"{url}/graphql", data=query, headers={"Content-Type": "application/json"}
            )
            urllib.request.urlopen(request, timeout=10).close()
            return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("dagster-webserver did not start") from None
            time.sleep(0.5)


def materialized_pattern(partitions: int) -> re.Pattern[str]:
    """The partitions view's count of materialised partitions as the UI prints it."""
    return re.compile(rf"Materialized \(({partitions:,}|{partitions})\)")


ASSET_PAGE = re.compile(r"Latest materialization\s*\n[^\n]+\n[a-z]{2}\|v\d{7}")


def measure_ui(home: Path, videos: int, languages: int) -> JsonObject:
    """``ui_asset_page_s`` and ``ui_partitions_page_s`` (None where a page did not render)."""
    started = time.perf_counter()
    out: JsonObject = {}
    with webserver(home) as url:
        out["ui_server_start_s"] = round(time.perf_counter() - started, 3)
        page = Page()
        try:
            page.load(url + "/assets", re.compile(ASSET))  # the app's scripts loaded once
            asset_s, asset_text = page.load(f"{url}/assets/{ASSET}", ASSET_PAGE)
            counts = materialized_pattern(videos * languages)
            partitions_s, partitions_text = page.load(f"{url}/assets/{ASSET}?view=partitions", counts)
        finally:
            page.close()
    out.update(ui_asset_page_s=asset_s, ui_partitions_page_s=partitions_s)
    out.update(
        ui_asset_page_rendered=asset_s is not None, ui_partitions_page_rendered=partitions_s is not None
    )
    if asset_s is None:
        out["ui_asset_page_text"] = asset_text[:2000]
    if partitions_s is None:
        out["ui_partitions_page_text"] = partitions_text[:2000]
    return out
