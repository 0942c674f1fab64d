"""One truth about freshness: each stage's identity (``freshness``) flips with every component of
every provider identity, and the step cache key and the unchanged-run answer flip with it; the
``done`` record holds the source and every output by size."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dubbing_pipeline import freshness
from dubbing_pipeline.orchestration import up_to_date
from dubbing_pipeline.orchestration.fresh import FRESH, StageGraph
from dubbing_pipeline.orchestration.kit import step_key
from dubbing_pipeline.settings import Settings, rows
from dubbing_pipeline.stages import PARENTS, STAGES, STEPS
from dubbing_pipeline.storage import LocalStorage


@pytest.fixture
def world(tmp_path: Path) -> Any:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance, LocalStorage(tmp_path / "media"), tmp_path


def test_every_stage_has_one_recipe_and_every_step_a_stage() -> None:
    assert tuple(freshness.RECIPES) == STAGES == tuple(PARENTS)
    assert set(STEPS.values()) <= set(STAGES)
    names = {row.name for row in rows()}
    for r in freshness.RECIPES.values():
        assert set(r.settings) <= names and set(r.files) <= names, r.stage


def test_the_stage_graph_is_the_definitions_graph() -> None:
    from dubbing_pipeline.definitions import build_definitions

    settings = Settings()
    graph = build_definitions(settings).resolve_asset_graph()
    ours = StageGraph(freshness.stage_codes(settings))
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        k.to_user_string() for k in ours.get_all_asset_keys()
    }
    for key in ours.get_all_asset_keys():
        mine, theirs = ours.get(key), graph.get(key)
        assert mine.parent_keys == theirs.parent_keys, key
        assert mine.code_version == theirs.code_version, key  # the UI's stale marks agree
        assert mine.partitions_def == theirs.partitions_def, key


def _tree(root: Path) -> Path:
    (root / "segmentation-3.0").mkdir(parents=True)
    (root / "segmentation-3.0" / "pytorch_model.bin").write_bytes(b"weights-a" * 100)
    (root / "config.yaml").write_text("a: 1\n")
    return root


def test_a_file_replaced_in_place_in_a_nested_folder_changes_the_identity(tmp_path: Path) -> None:
    root = _tree(tmp_path / "pyannote")
    settings = Settings(pyannote_dir=str(root), model_cache=str(tmp_path / "cache"))
    before = freshness.stage_digest("speakers", settings)
    assert freshness.stage_digest("speakers", settings) == before
    target = root / "segmentation-3.0" / "pytorch_model.bin"
    st_before = target.stat()
    with open(target, "r+b") as handle:  # in place, as cp does: same size, same mtime
        handle.write(b"weights-b")
    os.utime(target, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
    assert target.stat().st_size == st_before.st_size and target.stat().st_mtime_ns == st_before.st_mtime_ns
    assert freshness.stage_digest("speakers", settings) != before
    assert freshness.stage_digest("translation", settings) == freshness.stage_digest("translation", settings)


def test_an_unchanged_tree_is_not_read_again(tmp_path: Path) -> None:
    root = _tree(tmp_path / "models")
    first = freshness.tree_digest(root)
    target = root / "segmentation-3.0" / "pytorch_model.bin"
    target.chmod(0)  # unreadable now: only a stat can answer
    try:
        if os.geteuid() != 0:
            assert freshness.tree_digest(root) == first
    finally:
        target.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert freshness.tree_digest(root) == first


COMPONENTS = ("settings", "files", "packages", "tools", "code")


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stage=st.sampled_from(STAGES),
    component=st.sampled_from(COMPONENTS),
    salt=st.text(min_size=1, max_size=8),
)
def test_every_identity_component_flips_the_step_key_and_the_answer(
    monkeypatch: pytest.MonkeyPatch, stage: str, component: str, salt: str
) -> None:
    """Perturb one component of a stage's identity: the recipe digest, every step key of that stage
    and the stage's effective code version (what the CLI, the catalog and the UI compare) all change."""
    settings = Settings()
    base = freshness.stage_identity(stage, settings)
    perturbed: dict[str, Any] = {**base}
    part = base[component]
    if isinstance(part, dict) and part:
        name = sorted(part)[0]
        perturbed[component] = {**part, name: f"{part[name]}~{salt}"}
    elif isinstance(part, dict):
        perturbed[component] = {"extra": salt}
    else:
        perturbed[component] = [*part, salt]
    old, new = freshness.digest_of(base), freshness.digest_of(perturbed)
    assert old != new
    for step in (s for s, owner in STEPS.items() if owner == stage):
        assert step_key(step, {"upstream": "k"}, old) != step_key(step, {"upstream": "k"}, new)
    assert freshness.effective_code(stage, old) != freshness.effective_code(stage, new)


def test_a_library_version_and_a_tool_version_flip_the_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(model_cache=str(tmp_path / "cache"))
    before = freshness.stage_digest("dubbed_speech", settings)
    real = freshness.package_version
    monkeypatch.setattr(freshness, "package_version", lambda d: "9.9.9" if d == "onnxruntime" else real(d))
    assert freshness.stage_digest("dubbed_speech", settings) != before
    monkeypatch.undo()
    assert freshness.stage_digest("dubbed_speech", settings) == before
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "espeak-ng"
    wrapper.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "eSpeak NG 9.99"; exit 0; fi\n'
                       'exec /usr/bin/espeak-ng "$@"\n')  # fmt: skip
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert freshness.tool_identity("espeak-ng") == "eSpeak NG 9.99"
    assert freshness.stage_digest("dubbed_speech", settings) != before


def test_a_setting_a_stage_does_not_read_leaves_it_alone() -> None:
    settings = Settings()
    louder = replace(settings, label="AI VOICE")
    assert freshness.stage_digest("dubbed_video", louder) != freshness.stage_digest("dubbed_video", settings)
    assert freshness.stage_digest("transcript", louder) == freshness.stage_digest("transcript", settings)


def test_done_needs_the_same_source_and_every_output_as_stored(world: Any) -> None:
    instance, storage, tmp = world
    settings = Settings(model_cache=str(tmp / "models"))
    work = up_to_date.Work(instance, storage, settings, "a" * 64, "file:///v/demo.mp4", "demo")
    assert work.status("es").state == "missing"
    video = "outputs/demo.es.mp4"
    storage.put_bytes(video, b"x" * 100)
    work.record("es", [video], edits_read="e1")
    done = storage.get_json(up_to_date.done_key("demo", "es"))
    assert done["outputs"] == {video: 100} and done["edits_read"] == "e1"
    # nothing was ever materialised: the record alone never makes a dub done
    assert work.status("es").state != FRESH
    other = up_to_date.Work(instance, storage, settings, "b" * 64, "file:///v/demo.mp4", "demo")
    assert other.status("es").reason == "the source file changed"
    storage.put_bytes(video, b"x" * 99)  # truncated
    assert "missing or changed" in work.status("es").reason
    storage.delete(video)
    assert "missing or changed" in work.status("es").reason
    work.forget("es")
    assert work.status("es").state == "missing"


def test_the_up_to_date_run_is_recorded(world: Any) -> None:
    instance, _, _ = world
    assert up_to_date.report_up_to_date(instance, "demo", ["demo", "es|demo"])
    (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="up_to_date"))
    assert run.tags["dubbing/partitions"] == "demo,es|demo" and run.is_success
