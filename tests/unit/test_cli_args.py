"""Command-line arguments refused before any work starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dubbing_pipeline import cli


def test_one_id_for_several_videos_is_refused_before_any_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    argv = ["dubbing-pipeline", "dub", "a.mp4", "b.mp4", "--to", "es", "--id", "x", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    assert cli.main() == 2  # configuration
    err = capsys.readouterr().err
    assert "--id names one video, but 2 were given" in err and "Traceback" not in err
    assert not (tmp_path / "home").exists()  # no instance was touched
