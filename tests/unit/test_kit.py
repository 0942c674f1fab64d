"""The stage kit: the step cache, record-last writes, classification and retry policy."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dubbing_pipeline.errors import BadInputError, ProviderError, classify
from dubbing_pipeline.orchestration.kit import (
    Step,
    Version,
    classified,
    lineage_digest,
    run_step,
    stage_output,
)
from dubbing_pipeline.orchestration.resources import StorageResource, storage_resource
from dubbing_pipeline.settings import Settings


@pytest.fixture
def storage(tmp_path: Path) -> StorageResource:
    return storage_resource(Settings(storage_url=str(tmp_path / "media"), work_dir=str(tmp_path / "work")))


def test_a_step_runs_once_then_comes_from_the_cache(storage: StorageResource, tmp_path: Path) -> None:
    calls: list[str] = []

    def compute(step: Step) -> dict[str, Any]:
        calls.append(step.key)
        art = step.tmp / "a.txt"
        art.write_text("hello")
        return {"uri": step.put("a.txt", art), "n": 1}

    first = run_step(storage, "mix", inputs={"upstream": "k0", "code": "demo-1"}, compute=compute)
    again = run_step(storage, "mix", inputs={"code": "demo-1", "upstream": "k0"}, compute=compute)
    other = run_step(storage, "mix", inputs={"upstream": "k1", "code": "demo-1"}, compute=compute)
    assert not first.cached and again.cached and not other.cached
    assert len(calls) == 2 and first.record == again.record
    assert next(iter(first.record)) == "cache_key" and first.record["cache_key"] == calls[0]
    assert Path(storage.get().key_of(first.record["uri"])).name == "a.txt"
    assert not list((tmp_path / "work").iterdir())  # scratch folders are removed


def test_a_failing_step_leaves_no_record(storage: StorageResource) -> None:
    def compute(step: Step) -> dict[str, Any]:
        (step.tmp / "x").write_text("x")
        step.put("x", step.tmp / "x")
        raise ProviderError("model crashed")

    with pytest.raises(ProviderError):
        run_step(storage, "mix", inputs={"upstream": "k"}, compute=compute)
    calls: list[int] = []
    result = run_step(storage, "mix", inputs={"upstream": "k"}, compute=lambda s: calls.append(1) or {})
    assert not result.cached and calls == [1]  # the half-done step is simply redone


def _raise_inside(module: str, exc: Exception) -> BaseException:
    scope: dict[str, Any] = {"__name__": module, "exc": exc}
    exec("def boom():\n    raise exc\n", scope)
    try:
        scope["boom"]()
    except Exception as caught:
        return caught
    raise AssertionError("unreachable")


def test_our_own_bugs_are_internal_and_provider_errors_are_not() -> None:
    assert classify(KeyError("lines")).code == "internal"
    assert classify(TypeError("bad call")).code == "internal"
    assert classify(subprocess.CalledProcessError(1, ["ffmpeg"])).code == "provider_failure"
    assert classify(ConnectionResetError("peer")).code == "provider_failure"
    assert (
        classify(_raise_inside("onnxruntime.capi.session", RuntimeError("kernel"))).code == "provider_failure"
    )
    assert classify(_raise_inside("dubbing_pipeline.dub_mix", ValueError("shape"))).code == "internal"
    assert classify(BadInputError("not a video")).code == "bad_input"
    assert classify(MemoryError()).code == "resources_exhausted"


@pytest.mark.parametrize(
    ("exc", "code", "retried"),
    [
        (KeyError("speaker"), "internal", False),
        (ProviderError("timeout"), "provider_failure", True),
        (BadInputError("truncated"), "bad_input", False),
    ],
)
def test_classified_failures_say_whether_a_retry_can_help(exc: Exception, code: str, retried: bool) -> None:
    with pytest.raises(dg.Failure) as info, classified("demo"):
        raise exc
    failure = info.value
    assert failure.metadata["error_code"].value == code
    assert failure.allow_retries is retried
    assert failure.description is not None and failure.description.startswith(f"demo: {code}: ")
    # our own bugs keep their traceback (the cause); classified errors are already one clear line
    assert (failure.__cause__ is exc) is (code == "internal")


def test_stage_output_carries_the_metadata_every_stage_has() -> None:
    out = stage_output(
        {"cache_key": "abc", "x": 1}, upstream={"b": {"cache_key": "kb"}, "a": {"cache_key": "ka"}},
        code_version="c-1", seconds=1.5, cached=False, media_seconds=3.0,
        provider={"name": "p", "model": "m"}, counts={"lines": 2, "ratio": 0.5},
    )  # fmt: skip
    meta = out.metadata
    assert meta["cache_key"].value == "abc" and meta["cached"].value is False
    assert meta["real_time_factor"].value == 0.5 and meta["lines"].value == 2
    assert meta["provider"].value == "p" and meta["model"].value == "m"
    assert meta["upstream_cache_keys"].value == {"a": "ka", "b": "kb"}
    # the data version carries the key chain: own key, digest of the parents' keys, code version
    version = Version.parse(out.data_version.value if out.data_version else None)
    assert version == Version("abc", lineage_digest({"a": "ka", "b": "kb"}), "c-1")
    assert lineage_digest({"a": "ka", "b": "kb"}) == lineage_digest({"b": "kb", "a": "ka"})
    assert lineage_digest({"a": "ka", "b": "kb"}) != lineage_digest({"a": "ka", "b": "kc"})


@pytest.mark.parametrize("text", [None, "", "abc", "abc.def", ".x.c", "a..c"])
def test_a_data_version_without_the_key_chain_is_not_parsed(text: str | None) -> None:
    assert Version.parse(text) is None


def test_code_versions_may_contain_dots() -> None:
    assert Version.parse("k.l.v1.2") == Version("k", "l", "v1.2")


@pytest.mark.parametrize(
    ("record", "upstream"),
    [({"cache_key": ""}, {}), ({"cache_key": "k"}, {"parent": {"cache_key": ""}})],
)
def test_a_stage_output_without_a_key_is_our_own_bug(
    record: dict[str, Any], upstream: dict[str, Any]
) -> None:
    from dubbing_pipeline.errors import InternalError

    with pytest.raises(InternalError, match="breaks the key chain"):
        stage_output(
            record, upstream=upstream, code_version="c", seconds=0.0, cached=False, media_seconds=1.0
        )
