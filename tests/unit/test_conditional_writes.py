"""Conditional writes: ``put_if`` on the local directory and on S3 (moto's server), the retry loop
that makes a change land over someone else's, the glossary refused before it is stored, and what
``edit`` prints and observes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dubbing_pipeline import cli
from dubbing_pipeline.cli import review
from dubbing_pipeline.errors import BadInputError, ConflictError
from dubbing_pipeline.review.edits import (
    NO_EDITS,
    Dub,
    Edits,
    check_edits,
    edits_key,
    edits_version,
    load_edits,
    parse_edits,
    update_edits,
    with_change,
)
from dubbing_pipeline.storage import LocalStorage, MediaStorage, WriteConflict, update_json
from dubbing_pipeline.storage import base as storage_base

DUB = Dub(line_ids=["s0000", "s0001", "s0002"], speakers=["S1", "S2"], voices=["male", "female"])


@pytest.fixture
def storage(local_or_s3: MediaStorage) -> MediaStorage:
    return local_or_s3


def test_put_if_writes_only_over_the_version_it_names(storage: MediaStorage) -> None:
    key = "edits/demo/es.json"
    assert storage.get_versioned(key) == (None, None)
    with pytest.raises(WriteConflict):  # a version of an object that does not exist
        storage.put_if(key, b"0", "a-version-that-never-was")
    first = storage.put_if(key, b"1", None)  # None: only if absent
    assert storage.get_versioned(key) == (b"1", first)
    with pytest.raises(WriteConflict):
        storage.put_if(key, b"x", None)
    second = storage.put_if(key, b"2", first)
    assert second != first and storage.get_versioned(key) == (b"2", second)
    with pytest.raises(WriteConflict):  # stale: someone wrote since
        storage.put_if(key, b"3", first)
    assert storage.get_bytes(key) == b"2"
    assert storage.list_keys("edits") == [key]  # no lock or temporary file is a key
    storage.delete(key)
    assert storage.get_versioned(key) == (None, None)
    with pytest.raises(WriteConflict):  # deleted since it was read
        storage.put_if(key, b"4", second)
    assert storage.put_if(key, b"5", None) and storage.get_bytes(key) == b"5"


def test_no_local_lock_file_is_left_behind(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_if("feedback/demo/es.json", b"{}", None)
    folder = tmp_path / "feedback" / "demo"
    assert [p.name for p in folder.iterdir()] == ["es.json"]
    storage.delete("feedback/demo/es.json")
    storage.delete("feedback/other/es.json")  # nothing there: no folder made for its lock
    assert list(folder.iterdir()) == [] and not (tmp_path / "feedback" / "other").exists()
    assert storage.put_if("feedback/demo/es.json", b"{}", None)


class AlwaysConflicting(LocalStorage):
    """Someone else always writes first."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.tries = 0

    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        self.tries += 1
        raise WriteConflict(key)


def test_update_json_gives_up_with_a_conflict_error_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_base, "UPDATE_PAUSE", (0.0, 0.0))
    storage = AlwaysConflicting(tmp_path)
    calls: list[Edits] = []

    def change(stored: Edits) -> Edits:
        calls.append(stored)
        return with_change(stored, line="s0001", skip=True)

    with pytest.raises(ConflictError) as caught:
        update_edits(storage, "demo", "es", change)
    assert storage.tries == storage_base.UPDATE_TRIES == len(calls)
    message = caught.value.one_line()
    assert message.startswith("conflict: edits of demo × es changed 50 times while this edit was being saved")
    assert "nothing was stored; try again" in message and caught.value.exit_code == 12
    assert not storage.exists(edits_key("demo", "es"))


def test_update_json_redoes_the_change_over_what_another_writer_stored(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_json("k.json", {"items": [1]})
    seen: list[Any] = []

    def change(stored: Any) -> Any:
        seen.append(stored)
        if len(seen) == 1:  # someone else appends between this read and this write
            storage.put_json("k.json", {"items": [1, 2]})
        return {"items": [*stored["items"], 3]}

    before, after, version = update_json(storage, "k.json", change, what="k")
    assert seen == [{"items": [1]}, {"items": [1, 2]}]
    assert before == {"items": [1, 2]} and after == {"items": [1, 2, 3]}
    assert storage.get_json("k.json") == after and storage.get_versioned("k.json")[1] == version
    # a change that returns None stores nothing (not even a file that was absent)
    assert update_json(storage, "absent.json", lambda stored: None, what="x") == (None, None, None)
    assert not storage.exists("absent.json")


def test_the_same_edits_store_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    before, after, version = update_edits(storage, "demo", "es", lambda e: e)
    assert before == after == NO_EDITS and version == edits_version(NO_EDITS)
    assert not storage.exists(edits_key("demo", "es"))
    checked: list[Edits] = []
    update_edits(storage, "demo", "es", lambda e: with_change(e, voices={"S1": "male"}), checked.append)
    assert len(checked) == 1
    _, stamp = storage.get_versioned(edits_key("demo", "es"))
    again = update_edits(
        storage, "demo", "es", lambda e: with_change(e, voices={"S1": "male"}), checked.append
    )
    assert again[0] == again[1] and len(checked) == 1  # no change: neither checked nor written
    assert storage.get_versioned(edits_key("demo", "es"))[1] == stamp


# --- the glossary: a term whose source differs only in case is refused before it is stored -----------


def test_a_glossary_term_twice_with_two_targets_is_refused_before_it_is_stored(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    update_edits(storage, "demo", "es", lambda e: with_change(e, glossary={"Ana": "Ana"}))
    stored = (tmp_path / "edits" / "demo" / "es.json").read_bytes()
    with pytest.raises(BadInputError) as caught:
        update_edits(storage, "demo", "es", lambda e: with_change(e, glossary={"ana": "ANA"}))
    assert "'Ana' → 'Ana'" in caught.value.message and "'ana' → 'ANA'" in caught.value.message
    assert "differ only in case" in caught.value.message
    assert (tmp_path / "edits" / "demo" / "es.json").read_bytes() == stored  # nothing was stored
    # check_edits says the same of edits made in memory
    with pytest.raises(BadInputError, match="'Ana' → 'Ana' and 'ana' → 'ANA'"):
        check_edits(Edits(glossary={"Ana": "Ana", "ana": "ANA"}), DUB)
    # the same source exactly is an update of the term, not a second one
    _, after, _ = update_edits(storage, "demo", "es", lambda e: with_change(e, glossary={"Ana": "Anita"}))
    assert after.glossary == {"Ana": "Anita"} and load_edits(storage, "demo", "es") == after
    check_edits(after, DUB)
    # the same target under another case of the source is one term: accepted
    check_edits(Edits(glossary={"Ana": "Anita", "ana": "Anita"}), DUB)


def test_a_stored_glossary_the_translation_cannot_use_is_refused_when_read(tmp_path: Path) -> None:
    raw = {"glossary": {"Ana": "Ana", "ana": "ANA"}}
    with pytest.raises(BadInputError, match="edit field 'glossary': terms 'Ana' → 'Ana' and 'ana' → 'ANA'"):
        parse_edits(raw)
    storage = LocalStorage(tmp_path)
    storage.put_json(edits_key("demo", "es"), raw)  # edited by hand
    with pytest.raises(BadInputError, match="differ only in case"):
        load_edits(storage, "demo", "es")
    with pytest.raises(BadInputError, match="reserved text"):
        parse_edits({"glossary": {"Zqx1qz": "x"}})


# --- edit: what it prints and observes -----------------------------------------------------------------


@pytest.fixture
def edit_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalStorage, Path]]:
    """``cli.main`` on a local storage and a temporary instance, against a small dub."""
    storage = LocalStorage(tmp_path / "media")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setattr(review, "media_storage", lambda: storage)
    monkeypatch.setattr(review, "dub_context", lambda *_: DUB)
    yield storage, home


def edit(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["dubbing-pipeline", "edit", "demo", "--to", "es", *args])
    return cli.main()


def latest_observed(home: Path) -> str | None:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("edits"), asset_partitions=["es|demo"]), limit=1
        ).records
    if not records or records[0].asset_observation is None:
        return None
    return records[0].asset_observation.tags["dagster/data_version"]


def test_edit_show_prints_the_stored_edits_and_observes_what_it_stored(
    edit_cli: tuple[LocalStorage, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, home = edit_cli
    assert edit(monkeypatch, "--show") == 0  # nothing stored yet: no edits
    assert json.loads(capsys.readouterr().out) == NO_EDITS.to_json()
    assert not storage.exists(edits_key("demo", "es")) and latest_observed(home) is None

    assert edit(monkeypatch, "--line", "s0001", "--text", "Hola, Ana.") == 0
    out = capsys.readouterr().out
    stored = load_edits(storage, "demo", "es")
    assert out.strip() == f"demo es: edits {edits_version(stored)[:12]}"
    assert latest_observed(home) == edits_version(stored)

    assert edit(monkeypatch, "--show") == 0  # no change: the stored edits, not "no change"
    assert json.loads(capsys.readouterr().out) == stored.to_json()
    assert edit(monkeypatch, "--line", "s0001", "--text", "Hola, Ana.") == 0
    assert capsys.readouterr().out.strip() == "demo es: no change"

    assert edit(monkeypatch, "--voice", "S2=female", "--show") == 0  # a change and --show: the result
    shown = json.loads(capsys.readouterr().out)
    assert shown == load_edits(storage, "demo", "es").to_json() and shown["voices"] == {"S2": "female"}
    assert shown["lines"] == {"s0001": {"text": "Hola, Ana."}}
    assert latest_observed(home) == edits_version(parse_edits(shown))


def test_edit_refuses_a_glossary_conflict_and_stores_nothing(
    edit_cli: tuple[LocalStorage, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, _ = edit_cli
    assert edit(monkeypatch, "--glossary", "Ana=Ana") == 0
    before = storage.get_versioned(edits_key("demo", "es"))
    capsys.readouterr()
    assert edit(monkeypatch, "--glossary", "ana=ANA") == 3  # bad input
    err = capsys.readouterr().err
    assert "'Ana' → 'Ana' and 'ana' → 'ANA'" in err and "Traceback" not in err
    assert storage.get_versioned(edits_key("demo", "es")) == before
    assert edit(monkeypatch, "--glossary", "Ana=ANA", "--show") == 0  # the same source: an update
    assert json.loads(capsys.readouterr().out)["glossary"] == {"Ana": "ANA"}


# --- the test suite's S3 endpoint: a conditional write's check and write are one step, as on S3 ------


def test_two_writers_naming_the_same_version_on_the_s3_endpoint_one_lands(
    moto_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's server checks ``If-Match`` and then stores; with a slow store in between, two writers
    of the same version both passed its check (the second silently overwrote the first: an edit
    lost in CI). The suite's endpoint (``AtomicMotoServer``) makes the pair one step: one lands, the
    other is told of the conflict, whatever the timing."""
    import threading
    import time
    import uuid

    import boto3
    from moto.s3.models import S3Backend

    from dubbing_pipeline.storage.s3 import S3Storage

    bucket = f"atomic-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1").create_bucket(Bucket=bucket)
    storage = S3Storage(bucket, "media", endpoint_url=moto_s3)
    first = storage.put_if("edits/demo/es.json", b"{}", None)
    store = S3Backend.put_object

    def slow_store(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # the widest window between moto's check and its store
        return store(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_store)
    results: dict[str, str] = {}

    def write(body: str) -> None:
        try:
            storage.put_if("edits/demo/es.json", body.encode(), first)
            results[body] = "stored"
        except WriteConflict:
            results[body] = "conflict"

    writers = [threading.Thread(target=write, args=(body,)) for body in ('{"a": 1}', '{"b": 2}')]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert sorted(results.values()) == ["conflict", "stored"], results
    stored = next(body for body, result in results.items() if result == "stored")
    assert storage.get_bytes("edits/demo/es.json").decode() == stored
