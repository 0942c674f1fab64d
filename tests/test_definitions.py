"""The code location loads from workspace.yaml; partitions and executors are what the design says."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from dubbing_pipeline.definitions import build_definitions
from dubbing_pipeline.orchestration.partitions import video_language, video_language_key
from dubbing_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_workspace_yaml_loads(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_assets_and_partitions(tmp_path: Path) -> None:
    defs = build_definitions(Settings(storage_url=str(tmp_path)))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"source_video", "audio_stems", "speech_segments", "transcript", "speakers"} <= keys
    for key in ("source_video", "transcript", "speakers"):
        partitions = graph.get(dg.AssetKey(key)).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name == "videos"
    assert video_language.partitions_defs[0].name == "lang"  # dimensions sort by name
    assert str(video_language_key("demo", "es")) == "es|demo"


def test_executor_follows_deployment(tmp_path: Path) -> None:
    embedded = build_definitions(Settings(storage_url=str(tmp_path)))
    production = build_definitions(Settings(storage_url=str(tmp_path), deployment="production"))
    assert embedded.resolve_job_def("source_half").executor_def.name == "in_process"
    assert production.resolve_job_def("source_half").executor_def.name == "k8s"
