"""An edit saved while a dub of that partition is running is never lost, and never hidden.

The dub pauses right after its first newly spoken line (its translation has read the edits by
then: ``hooks.pause_point("speech_line")``); an ``edit`` of another line is stored meanwhile; the
run goes on and succeeds with the edits it read. Afterwards the partition is stale for the catalog
and for ``dub``, the next ``dub`` speaks exactly the edited line, and the one after is up to date.
And one ``edit`` process per line at once, with a voice and a glossary edit: all stored, all spoken.
Locally and on moto's S3 server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_freshness_matrix import UNCHANGED, catalog_view, cli, environment

from dubbing_pipeline.demo import DEMO_VIDEO

TEXT = "Esta línea la corrigió alguien durante el doblaje."


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "local":
        return {"DUBBING_STORAGE_URL": str(tmp_path / "media")}
    import boto3

    endpoint = request.getfixturevalue("moto_s3")
    bucket = f"midrun-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return {"DUBBING_STORAGE_URL": f"s3://{bucket}/media", "DUBBING_S3_ENDPOINT_URL": endpoint}


def test_an_edit_saved_during_a_dub_is_applied_by_the_next(where: dict[str, str], tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    marker, release = tmp_path / "paused", tmp_path / "release"
    env = {**where, "DUBBING_MODEL_CACHE": str(tmp_path / "models")}
    paused = {
        **env, "DUBBING_TEST_PAUSE_AT": "speech_line", "DUBBING_TEST_PAUSE_MARKER": str(marker),
        "DUBBING_TEST_PAUSE_RELEASE": str(release), "DUBBING_TEST_PAUSE_SECONDS": "600",
    }  # fmt: skip
    dub_args = ("dub", str(DEMO_VIDEO), "--to", "es", "--out", str(out))
    running = subprocess.Popen(
        [sys.executable, "-m", "dubbing_pipeline.cli", *dub_args], env=environment(home, paused),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not marker.exists():
            assert running.poll() is None, running.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the dub never reached its pause"
            time.sleep(0.2)
        edit = cli(home, "edit", "demo", "--to", "es", "--line", "s0002", "--text", TEXT, extra=env)
        assert edit.returncode == 0, edit.stderr[-2000:]
        assert catalog_view(home, env)["translation"].startswith("stale")
    finally:
        release.write_text("go", encoding="utf-8")
        _, err = running.communicate(timeout=900)
    assert running.returncode == 0, err[-3000:]
    report = json.loads((out / "demo" / "es" / "report.json").read_text())
    line = next(s for s in report["segments"] if s["id"] == "s0002")
    assert line["target_text"] != TEXT  # the run spoke the edits it read...
    view = catalog_view(home, env)
    assert view["translation"].startswith("stale"), view  # ...and the edit it did not read is not hidden

    after = cli(home, *dub_args, extra=env)
    assert after.returncode == 0 and "es|demo" not in after.stderr, after.stderr[-3000:]  # the dub ran
    report = json.loads((out / "demo" / "es" / "report.json").read_text())
    edited: dict[str, Any] = next(s for s in report["segments"] if s["id"] == "s0002")
    assert edited["target_text"] == TEXT
    assert report["rerender"]["spoken"] == ["s0002"], report["rerender"]
    again = cli(home, *dub_args, extra=env)
    assert again.returncode == 0 and f"{UNCHANGED} demo, es|demo" in again.stderr, again.stderr[-2000:]
    assert set(catalog_view(home, env).values()) == {"fresh"}


def edit_process(home: Path, env: dict[str, str], args: tuple[str, ...]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dubbing_pipeline.cli", "edit", "demo", "--to", "es", *args],
        env=environment(home, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_an_edit_process_per_line_at_once_all_reach_the_next_dub(
    where: dict[str, str], tmp_path: Path
) -> None:
    """One ``edit`` process per line of the demo, a voice edit and a glossary edit, all started at
    once: every one exits 0, every one is stored, and the next ``dub`` speaks every one."""
    home, out = tmp_path / "home", tmp_path / "out"
    env = {**where, "DUBBING_MODEL_CACHE": str(tmp_path / "models")}
    dub_args = ("dub", str(DEMO_VIDEO), "--to", "es", "--out", str(out))
    first = cli(home, *dub_args, extra=env)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = [s["id"] for s in json.loads((out / "demo" / "es" / "report.json").read_text())["segments"]]
    texts = {line: f"Línea {line[1:].lstrip('0') or '0'}, corregida a la vez." for line in lines}
    edits = [("--line", line, "--text", text) for line, text in texts.items()]
    edits += [("--voice", "S1=female"), ("--glossary", "Ana=Ana")]
    procs = [edit_process(home, env, args) for args in edits]
    for proc, args in zip(procs, edits, strict=True):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, (args, err[-2000:])
    shown = cli(home, "edit", "demo", "--to", "es", "--show", extra=env)
    stored = json.loads(shown.stdout)
    assert {k: v["text"] for k, v in stored["lines"].items()} == texts
    assert stored["voices"] == {"S1": "female"} and stored["glossary"] == {"Ana": "Ana"}

    after = cli(home, *dub_args, extra=env)
    assert after.returncode == 0, after.stderr[-3000:]
    report = json.loads((out / "demo" / "es" / "report.json").read_text())
    assert {s["id"]: s["target_text"] for s in report["segments"]} == texts
    assert sorted(report["rerender"]["spoken"]) == sorted(lines)
