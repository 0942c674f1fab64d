"""What a catalog tick plans (``_work``), from its cursor and what changed: pure, no instance."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dubbing_pipeline.orchestration import catalog as cat
from dubbing_pipeline.orchestration.catalog_cursor import SNAPSHOTS, CatalogCursor, CatalogVideo, Snapshot
from dubbing_pipeline.storage import LocalStorage


def _snapshot(n: int, langs: tuple[str, ...] = ("es",)) -> Snapshot:
    videos = {f"v{i:02d}": CatalogVideo(f"v{i:02d}", f"file:///s/v{i:02d}.mp4", langs) for i in range(n)}
    return Snapshot(videos, [], {}, "catalog")


def test_added_languages_only_when_nothing_else_changed() -> None:
    before = _snapshot(4)
    wider = _snapshot(4, ("es", "fr"))
    assert wider.added_languages(before, wider.ids) == ["fr"]
    assert before.added_languages(wider, before.ids) == []  # a language dropped: nothing to add
    moved = Snapshot(
        {**wider.videos, "v01": replace(wider.videos["v01"], source_uri="file:///x.mp4")}, [], {}, "c"
    )
    assert moved.added_languages(before, moved.ids) is None
    assert _snapshot(5, ("es", "fr")).added_languages(before, [f"v{i:02d}" for i in range(5)]) is None
    assert wider.added_languages(None, wider.ids) is None


def test_a_snapshot_is_stored_as_it_is_named_and_read_back_the_same(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    waiting = [CatalogVideo("w", "file:///s/w.mp4", ("fr",), explicit=False)]
    snap = Snapshot(
        _snapshot(3).videos, [CatalogVideo("m", "file:///s/m.mp4", ("es",))], {"x": "bad"}, "c", waiting
    )
    snap.save(storage, keep="")
    stored = (tmp_path / f"{SNAPSHOTS}/{snap.digest}.json").read_bytes()
    assert stored == snap.text and b" " not in stored  # one compact serialisation, named by its digest
    back = Snapshot.load(storage, snap.digest)
    assert back is not None and back.digest == snap.digest
    assert (back.videos, back.missing, back.waiting, back.refused) == (
        snap.videos, snap.missing, snap.waiting, snap.refused,
    )  # fmt: skip
    other = _snapshot(2)
    other.save(storage, keep=snap.digest)  # the cursor's snapshot is kept until the next one is committed
    assert sorted(storage.keys_in(SNAPSHOTS)) == sorted(
        f"{SNAPSHOTS}/{d}.json" for d in (snap.digest, other.digest)
    )
    _snapshot(1).save(storage, keep=other.digest)
    assert Snapshot.load(storage, snap.digest) is None


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cat, "PENDING_MAX", 3)


def test_a_few_changes_are_planned_one_by_one(small: None) -> None:
    snap = _snapshot(10)
    cursor = CatalogCursor(events=5, codes="c")
    work = cat._work(cursor, snap, {"v01"}, "c", 2, cat.CatalogChange(["v02"], ["fr"]))
    assert (work.changed, work.rush, work.only, work.sweep) == (["v01", "v02"], None, [], ["v00", "v01"])


def test_a_language_for_many_videos_is_a_narrow_pass_beside_the_others(small: None) -> None:
    snap = _snapshot(10, ("es", "fr"))
    cursor = CatalogCursor(events=5, codes="c")
    work = cat._work(cursor, snap, {"v09"}, "c", 2, cat.CatalogChange(snap.ids, ["fr"]))
    assert (work.changed, work.rush, work.only, work.sweep) == (["v09"], "", ["fr"], [])
    # a narrow pass goes on where it stood; its changed videos are planned whole beside it
    going = replace(cursor, rush="v04", only=["fr"])
    work = cat._work(going, snap, {"v01"}, "c", 2)
    assert (work.changed, work.rush, work.only) == (["v01"], "v04", ["fr"])
    # another language while it runs: the pass starts again for both
    work = cat._work(going, snap, set(), "c", 2, cat.CatalogChange(snap.ids, ["de"]))
    assert (work.rush, work.only) == ("", ["de", "fr"])


def test_a_language_dropped_from_many_videos_plans_nothing(small: None) -> None:
    snap = _snapshot(10)
    cursor = CatalogCursor(events=5, codes="c", sweep="v03")
    work = cat._work(cursor, snap, {"v09"}, "c", 2, cat.CatalogChange(snap.ids, []))
    assert (work.changed, work.rush, work.only, work.sweep) == (["v09"], None, [], ["v04", "v05"])


def test_what_needs_every_pair_is_a_whole_pass(small: None) -> None:
    snap = _snapshot(10)
    cursor = CatalogCursor(events=5, codes="c")
    # a new code version, a first tick, many events, or many entries that moved: every language
    assert cat._work(replace(cursor, codes="old"), snap, set(), "c", 2).only == []
    assert cat._work(CatalogCursor(), snap, set(), "c", 2).rush == ""
    many = cat._work(cursor, snap, set(snap.ids), "c", 2, cat.CatalogChange(snap.ids, ["fr"]))
    assert (many.rush, many.only) == ("", [])
    assert cat._work(cursor, snap, set(), "c", 2, cat.CatalogChange(snap.ids, None)).only == []
    # a whole pass in progress is not narrowed by a language added meanwhile: it starts again whole
    whole = cat._work(replace(cursor, rush="v04"), snap, set(), "c", 2, cat.CatalogChange(snap.ids, ["fr"]))
    assert (whole.rush, whole.only) == ("", [])


def test_the_cursor_keeps_the_narrow_languages_until_the_pass_ends() -> None:
    cursor = CatalogCursor(events=5, rush="v04", only=["fr"])
    assert CatalogCursor.parse(cursor.dump()) == cursor
    work = cat._Work([], "", [], ["fr"])
    budget = cat.Deadline(None)
    ended = cat._next_cursor(cursor, work, {"changed": [], "rush": ["v00", "v09"], "sweep": []}, budget)
    assert (ended.rush, ended.only) == (None, [])
    budget.hit = True
    split = cat._next_cursor(cursor, work, {"changed": [], "rush": ["v00", "v05"], "sweep": []}, budget)
    assert (split.rush, split.only) == ("v05", ["fr"])
