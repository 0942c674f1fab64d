"""Command-line arguments refused before any work starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dubbing_pipeline import cli
from dubbing_pipeline.cli import common


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


def test_the_heap_is_left_to_the_process_only_when_main_is_its_whole_life(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    gc.unfreeze()
    common.settle()  # imported, as here: the collector is left as it was
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(common, "_OWN_PROCESS", True)
    try:
        common.settle()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_console_script_exits_with_the_commands_code_and_owns_its_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    monkeypatch.setattr(common, "_OWN_PROCESS", False)  # restored after the test
    monkeypatch.setattr(cli, "main", lambda: 3)
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.run()
        assert exit_.value.code == 3
        assert common._OWN_PROCESS and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
