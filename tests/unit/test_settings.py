"""The settings table: one row per setting feeds Settings, `config`, docs/configuration.md and the
resources."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from dubbing_pipeline import settings as settings_module
from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.orchestration import resources
from dubbing_pipeline.settings import Settings, markdown_table, rows, setting

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_table_is_the_settings_table() -> None:
    assert markdown_table() in (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def test_every_row_has_a_variable_help_and_a_known_group() -> None:
    envs = [row.metadata["env"] for row in rows()]
    assert len(envs) == len(set(envs)) and all(e.startswith("DUBBING_") for e in envs)
    assert all(row.metadata["help"] for row in rows())
    assert {row.metadata["group"] for row in rows()} <= {None, *settings_module.GROUPS}
    # a secret row is a field of its own on the settings resource (an EnvVar, never in ``values``)
    secret = [row.name for row in rows() if row.metadata["secret"]]
    assert secret == ["llm_api_key"] and set(secret) <= set(resources.SettingsResource.model_fields)


def test_values_are_parsed_by_type_and_a_bad_one_names_its_variable() -> None:
    s = Settings.from_env(
        {"DUBBING_CPU_THREADS": "4", "DUBBING_CHUNK_SECONDS": "12.5", "DUBBING_TTS": "espeak"}
    )
    assert (s.cpu_threads, s.chunk_seconds, s.tts) == (4, 12.5, "espeak")
    assert Settings.from_env({"DUBBING_CPU_THREADS": ""}).cpu_threads == 2  # empty means the default
    with pytest.raises(ConfigurationError, match="DUBBING_CPU_THREADS"):
        Settings.from_env({"DUBBING_CPU_THREADS": "two"})


def test_secrets_are_masked_and_reach_the_resource_as_an_env_var() -> None:
    s = Settings(llm_api_key="sk-very-secret")
    assert s.masked()["llm_api_key"] == "***" and "sk-very-secret" not in repr(s)
    res = resources.settings_resource(s)
    assert "llm_api_key" not in res.values
    assert "sk-very-secret" not in repr(res.values)


def test_a_setting_added_as_one_row_reaches_config_the_readme_and_the_resources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = dataclasses.make_dataclass(
        "Settings",
        [
            (
                "qc_max_gap",
                float,
                setting(0.3, "DUBBING_QC_MAX_GAP", "largest silent gap, seconds", group="quality"),
            )
        ],
        bases=(Settings,),
        frozen=True,
    )
    monkeypatch.setattr(settings_module, "Settings", extra)
    monkeypatch.setattr(resources, "Settings", extra)
    monkeypatch.setenv("DUBBING_QC_MAX_GAP", "0.7")

    assert "| `DUBBING_QC_MAX_GAP` | `0.3` | largest silent gap, seconds |" in markdown_table()
    loaded = extra.from_env()
    assert loaded.qc_max_gap == 0.7
    res = resources.resources_from_settings(loaded)
    assert res["quality"].config.values["qc_max_gap"] == 0.7
    assert res["asr"].settings().qc_max_gap == 0.7  # every resource sees every setting

    from dubbing_pipeline import cli
    from dubbing_pipeline.cli import config as config_command

    monkeypatch.setattr(config_command, "Settings", extra)
    monkeypatch.setattr(sys, "argv", ["dubbing-pipeline", "config"])
    lines: list[str] = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert cli.main() == 0
    assert any(line.startswith("DUBBING_QC_MAX_GAP") and "0.7" in line for line in lines)


def test_config_prints_every_variable() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dubbing_pipeline.cli", "config"], capture_output=True, text=True, check=True
    ).stdout
    assert [line.split()[0] for line in out.splitlines()] == [row.metadata["env"] for row in rows()]
