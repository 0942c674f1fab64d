"""The tools the pipeline runs never get a credential (issue 28: static keys are a fallback only)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import dubbing_pipeline
from dubbing_pipeline.common.tool_env import tool_env

PACKAGE = Path(dubbing_pipeline.__file__).parent
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIA...", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "tok",
    "DUBBING_LLM_API_KEY": "sk-1", "PGPASSWORD": "pw", "GITHUB_TOKEN": "gh",
}  # fmt: skip
KEPT = {"PATH": "/usr/bin:/bin", "HOME": "/home/x", "AWS_REGION": "eu-west-1", "LC_ALL": "C.UTF-8"}


def test_the_tools_environment_has_no_credential() -> None:
    env = tool_env(base={**SECRETS, **KEPT})
    assert env == KEPT
    assert tool_env({"LC_ALL": "C"}, base=KEPT)["LC_ALL"] == "C"


def test_a_real_tool_sees_none_of_them() -> None:
    out = subprocess.run(
        ["env"], capture_output=True, text=True, check=True, env=tool_env(base={**SECRETS, **KEPT})
    )
    names = {line.split("=", 1)[0] for line in out.stdout.splitlines()}
    assert not names & set(SECRETS) and "AWS_REGION" in names


def test_every_tool_the_runtime_starts_gets_the_tools_environment() -> None:
    """Every ``subprocess.run``/``Popen`` in the running pipeline (not the developer tooling) names
    its environment; ffprobe is run directly for the same reason (ffmpeg-python passes none)."""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "tooling" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "subprocess"
                and node.func.attr in {"run", "Popen", "check_output", "check_call", "call"}
                and not any(k.arg == "env" for k in node.keywords)
            ):
                missing.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
        assert "ffmpeg.probe(" not in path.read_text(encoding="utf-8"), path
    assert missing == []
