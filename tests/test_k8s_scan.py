"""The checkov scan of the deployment (``k8s/``): its plain manifests and the image's Dockerfile.

The same scan ``.ci/test`` runs before the test suite, here with JSON output so that it can be read:
no failed check, nothing it could not parse, every manifest scanned, and every waiver (a
``checkov.io/skipN`` annotation, a ``checkov:skip=`` comment in the Dockerfile) carrying its
reason and listed in docs/production.md. checkov lives in its own virtualenv, ``.venv-checkov``
(its dependencies conflict with the project's), which ``.ci/install`` creates.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SCAN = ["-d", "k8s", "--framework", "kubernetes", "dockerfile", "--skip-download", "--compact"]
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


def _pinned_checkov() -> str:
    pins = re.findall(r"\bcheckov==([0-9][\w.]*)", (ROOT / ".ci" / "install").read_text())
    assert len(set(pins)) == 1, f".ci/install pins checkov once: {pins}"
    return pins[0]


@functools.cache
def _scan() -> dict[str, dict[str, Any]]:
    """checkov's report per framework (kubernetes, dockerfile)."""
    if not CHECKOV.exists():
        pytest.fail(
            f"{CHECKOV} is missing: run .ci/install, or "
            f"python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov=={_pinned_checkov()}"
        )
    proc = subprocess.run(
        [str(CHECKOV), *SCAN, "--output", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    # exit status 1 is "some check failed", reported below check by check
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    return {r["check_type"]: r for r in reports}


def test_checkov_is_the_pinned_release() -> None:
    for framework, report in _scan().items():
        assert report["summary"]["checkov_version"] == _pinned_checkov(), framework


def test_every_manifest_and_the_dockerfile_are_scanned() -> None:
    """checkov passes over a file it cannot read without a word (no parsing error either): count
    what it saw. It reports each object, plus one pod per workload whose template it checks."""
    scan = _scan()
    assert set(scan) == {"kubernetes", "dockerfile"}
    for framework, report in scan.items():
        assert report["summary"]["parsing_errors"] == 0, (framework, report["results"]["parsing_errors"])
    objects = [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "values.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    workloads = [doc for doc in objects if doc["kind"] in WORKLOADS]
    assert workloads, "k8s/vllm.yaml's Deployment at least"
    assert scan["kubernetes"]["summary"]["resource_count"] == len(objects) + len(workloads)
    assert scan["dockerfile"]["summary"]["resource_count"] == 1


def test_no_check_fails() -> None:
    failed = [
        f"{r['check_id']} {r['check_name']}: {r['resource']} ({r['file_path']})"
        for report in _scan().values()
        for r in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)


def test_every_waiver_has_a_reason_and_is_documented() -> None:
    docs = (ROOT / "docs" / "production.md").read_text()
    skipped = [r for report in _scan().values() for r in report["results"]["skipped_checks"]]
    for r in skipped:
        reason = (r["check_result"].get("suppress_comment") or "").strip(" :")
        where = f"{r['check_id']} on {r['resource']} ({r['file_path']})"
        assert reason and reason != "No comment provided", f"{where}: a waiver needs its reason"
        assert len(reason.split()) >= 5, f"{where}: say why, not just that ({reason!r})"
        assert r["check_id"] in docs, f"{where}: list it among the waivers in docs/production.md"
