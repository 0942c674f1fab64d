"""The fingerprint of a dub: what changes it and what does not, and the ``done`` record it is kept in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dubbing_pipeline import up_to_date
from dubbing_pipeline.edits import NO_EDITS, save_edits, with_change
from dubbing_pipeline.feedback import add_feedback
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import LocalStorage


@pytest.fixture
def world(tmp_path: Path) -> Any:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance, LocalStorage(tmp_path / "media"), tmp_path


def work(world: Any, settings: Settings | None = None, sha: str = "a" * 64) -> up_to_date.Work:
    instance, storage, tmp = world
    settings = settings or Settings(model_cache=str(tmp / "models"))
    return up_to_date.Work(instance, storage, settings, sha, "file:///v/demo.mp4", "demo")


def fp(world: Any, settings: Settings | None = None, sha: str = "a" * 64, language: str | None = "es") -> str:
    return work(world, settings, sha).fingerprint(language)


def test_the_fingerprint_follows_every_input(world: Any) -> None:
    instance, storage, tmp = world
    first = fp(world)
    assert fp(world) == first  # the same inputs, the same fingerprint
    assert fp(world, sha="b" * 64) != first  # another source file
    assert fp(world, Settings(model_cache=str(tmp / "models"), label="AI")) != first  # a setting
    glossary = tmp / "terms.json"
    glossary.write_text('{"es": {"Ana": "Ana"}}')
    with_glossary = Settings(model_cache=str(tmp / "models"), glossary=str(glossary))
    before = fp(world, with_glossary)
    glossary.write_text('{"es": {"Ana": "Anita"}}  ')  # the file named by a setting changed
    assert fp(world, with_glossary) != before
    save_edits(storage, "demo", "es", with_change(NO_EDITS, line="s0001", text="Hola."))
    edited = fp(world)
    assert edited != first
    add_feedback(storage, "demo", "es", "s0001", "too fast", ["s0001"])
    assert fp(world) != edited
    # a materialisation of any stage of the dub (a run from the UI, a backfill) changes it too
    seen, source_half, other = fp(world), fp(world, language=None), fp(world, language="ca")
    instance.report_runless_asset_event(
        dg.AssetMaterialization("dub_mix", partition="es|demo", tags={"dagster/data_version": "v1"})
    )
    assert fp(world) != seen
    assert (fp(world, language=None), fp(world, language="ca")) == (source_half, other)  # not theirs
    instance.report_runless_asset_event(
        dg.AssetMaterialization("transcript", partition="demo", tags={"dagster/data_version": "v2"})
    )
    assert fp(world, language=None) != source_half and fp(world, language="ca") != other


def test_the_storage_it_writes_is_not_an_input(world: Any) -> None:
    """Files written into the media storage or the model cache (not the local signer) change nothing."""
    _, storage, tmp = world
    first = fp(world)
    storage.put_json("records/dub_mix/es/demo.json", {"x": 1})
    (tmp / "models").mkdir()
    (tmp / "models" / "whisper").mkdir()
    assert fp(world) == first
    (tmp / "models" / "c2pa" / "local").mkdir(parents=True)
    (tmp / "models" / "c2pa" / "local" / "cert.pem").write_text("x")
    assert fp(world) != first  # without a certificate, the local signer signs: its files count


def test_done_needs_the_same_fingerprint_and_every_output(world: Any) -> None:
    _, storage, _ = world
    video = storage.key_of(storage.put_bytes("cache/mux/ab/key/demo.es.mp4", b"mp4"))
    here = work(world)
    assert not here.is_done("es") and not here.is_done(None)
    here.record("es", [video])
    assert here.is_done("es") and not here.is_done("ca") and not here.is_done(None)
    assert storage.exists(up_to_date.done_key("demo", "es"))
    assert not work(world, sha="b" * 64).is_done("es")  # another source file
    here.record(None, [])
    assert storage.exists(up_to_date.source_done_key("demo")) and here.is_done(None)
    storage.delete(video)
    assert not here.is_done("es")  # an output is gone: run the job
    here.forget("es")
    assert not storage.exists(up_to_date.done_key("demo", "es")) and here.is_done(None)


def test_the_up_to_date_run_is_recorded(world: Any) -> None:
    instance, _, _ = world
    assert up_to_date.report_up_to_date(instance, "demo", ["demo", "es|demo"])
    (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="up_to_date"))
    assert run.tags["dubbing/partitions"] == "demo,es|demo" and run.is_success


def test_the_code_digest_covers_the_package() -> None:
    digest = up_to_date.code_digest()
    assert len(digest) == 64 and digest == up_to_date.code_digest()
    assert Path(up_to_date.__file__).suffix == ".py"
