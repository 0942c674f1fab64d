"""``bench --gpu`` on the CPU at the reduced sizes: the same code a lent GPU session runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from dubbing_pipeline.tooling.gpucheck import run_gpu_check, synthetic_speechlike

pytestmark = pytest.mark.production_provider


def test_one_failing_provider_is_reported_and_the_next_runs() -> None:
    # LatentSync is not importable in this virtualenv (its tests run in .venv-torchvision)
    result = run_gpu_check(device="cpu", seconds=2.0, full_size=False, providers=("latentsync", "demucs"))
    assert result["environment"]["device"] == "cpu" and result["environment"]["full_size"] is False
    latentsync, demucs = result["providers"]
    assert latentsync["provider"] == "latentsync" and latentsync["error"]
    assert demucs["provider"] == "demucs" and demucs["error"] == "", demucs
    assert demucs["media_seconds"] == 2.0 and demucs["run_s"] > 0 and demucs["build_s"] > 0
    assert math.isclose(demucs["rtf"], demucs["run_s"] / 2.0, rel_tol=1e-3, abs_tol=1e-4)
    assert demucs["detail"]["parameters"] > 100_000 and demucs["peak_gpu_mb"] == 0.0


def test_the_watermark_is_timed_and_read_back() -> None:
    result = run_gpu_check(device="cpu", seconds=40.0, full_size=False, providers=("perth",))
    (perth,) = result["providers"]
    assert perth["error"] == "" and 39.9 <= perth["media_seconds"] <= 40.0 and perth["run_s"] > 0, perth
    assert perth["detail"]["marked"] >= 0.9 and perth["detail"]["unmarked"] <= 0.35


def test_unknown_providers_are_refused() -> None:
    with pytest.raises(ValueError, match="whisperx"):
        run_gpu_check(device="cpu", providers=("whisperx",))


def test_the_synthetic_signal_is_deterministic_and_shaped() -> None:
    a = synthetic_speechlike(1.5, 16000, channels=2)
    assert a.shape == (2, 24000) and a.dtype.name == "float32"
    assert (a == synthetic_speechlike(1.5, 16000, channels=2)).all()
    assert 0.05 < float(abs(a).max()) < 1.0 and not (a[0] == a[1]).all()


def test_the_cli_prints_json_and_fails_when_a_provider_fails() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dubbing_pipeline.cli", "bench", "--gpu", "--device", "cpu", "--reduced",
         "--seconds", "1", "--providers", "latentsync"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert [p["provider"] for p in result["providers"]] == ["latentsync"] and result["providers"][0]["error"]
    assert "latentsync  FAILED" in proc.stderr
