"""Throwaway servers for the test suite and ``bench --scale``: PostgreSQL and moto's S3/SQS.

PostgreSQL: ``initdb`` in a temp dir, trust auth, 127.0.0.1, a free port, fsync off (a throwaway
cluster). As root it runs as the ``postgres`` system user (PostgreSQL refuses to run as root).
moto: its server in a child process (so its memory is not the caller's), S3 and SQS on one port.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2


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


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server (S3, SQS, …) in a child process on 127.0.0.1; yields its endpoint URL.

    moto accepts any credentials; dummy ones are set for this process where none are.
    """
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)

    port = _free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def postgres_instance_yaml(server: PostgresServer) -> str:
    """A ``dagster.yaml`` whose run, event-log and schedule storage are ``server``'s database."""
    return (
        "storage:\n  postgres:\n    postgres_db:\n"
        f"      username: {server.user}\n      password: unused-trust-auth\n"
        f"      hostname: {server.host}\n      port: {server.port}\n      db_name: {server.db_name}\n"
        "      scheme: postgresql+psycopg2\n"
        "telemetry:\n  enabled: false\n"
    )
