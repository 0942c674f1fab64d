"""Throwaway servers for the test suite and ``bench --scale``: PostgreSQL and moto's S3/SQS.

PostgreSQL: ``initdb`` in a temp dir, trust auth, 127.0.0.1, a free port, fsync off (a throwaway
cluster). As root it runs as the ``postgres`` system user (PostgreSQL refuses to run as root).
moto: S3 and SQS on one port, in a thread of the caller (the test suite's endpoint) or a child
process (the bench's seeded one, ``serve_moto``); either way with S3's writes made atomic
(``AtomicWrites``), which moto's threaded server does not guarantee.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    db_name: str


def find_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live (Debian keeps them out of PATH)."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server(db_name: str = "dagster_test") -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="pgtest-", dir="/tmp"))
    if as_root:
        pw = pwd.getpwnam("postgres")  # KeyError: no such user
        os.chown(data, pw.pw_uid, pw.pw_gid)
        prefix = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
    port = _free_port()
    log = data / "server.log"
    started = False
    try:
        subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-o", opts, "-l", str(log), "-w",
             "-t", "60", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        started = True
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db_name}"')
        conn.close()
        yield PostgresServer("127.0.0.1", port, "postgres", db_name)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "-w", "stop"],
                check=False, capture_output=True,
            )  # fmt: skip
        shutil.rmtree(data, ignore_errors=True)


class AtomicWrites:
    """WSGI middleware: one S3 write at a time (PUT, DELETE, and any request with a write
    condition), so a conditional write's check and its write are one step, as they are on S3.

    moto checks ``If-Match``/``If-None-Match`` and then stores, with nothing in between held: two
    writers naming the same version can both pass the check on its threaded server, and the second
    silently overwrites the first (seen once in CI: one of fifteen concurrent ``edit`` processes
    lost). Reads and SQS's long polls (POST without a condition) are not held."""

    WRITES = frozenset({"PUT", "DELETE"})

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method = environ.get("REQUEST_METHOD", "GET")
        conditional = "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ
        if method not in self.WRITES and not (conditional and method == "POST"):
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))  # the whole response inside the lock


def moto_http_server(host: str, port: int) -> BaseWSGIServer:
    """moto's threaded HTTP server with ``AtomicWrites`` on ``host:port`` (not yet serving)."""
    app = AtomicWrites(DomainDispatcherApplication(create_backend_app))
    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)


class AtomicMotoServer(ThreadedMotoServer):
    """moto's threaded server (a thread of this process) with ``AtomicWrites``."""

    def _server_entry(self) -> None:
        self._server = moto_http_server(self._ip_address, self._port)
        self._server_ready_event.set()
        self._server.serve_forever()


def serve_moto(port: int) -> None:
    """moto's server with ``AtomicWrites`` on 127.0.0.1:``port`` until SIGTERM or SIGINT (handled
    here, as moto's own ``main`` does: a parent that ignores SIGTERM passes that on to its
    children, and then ``terminate`` would not stop this one)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit)
    moto_http_server("127.0.0.1", port).serve_forever()


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def postgres_instance_yaml(server: PostgresServer) -> str:
    """A ``dagster.yaml`` whose run, event-log and schedule storage are ``server``'s database."""
    return (
        "storage:\n  postgres:\n    postgres_db:\n"
        f"      username: {server.user}\n      password: unused-trust-auth\n"
        f"      hostname: {server.host}\n      port: {server.port}\n      db_name: {server.db_name}\n"
        "      scheme: postgresql+psycopg2\n"
        "telemetry:\n  enabled: false\n"
    )
