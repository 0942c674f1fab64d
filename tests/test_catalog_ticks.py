"""Incremental catalog ticks on a real Dagster instance on PostgreSQL: a cursor, a sweep, a deadline.

Every tick here is ``plan_catalog`` from the cursor the previous tick left (through its JSON, as
the sensor stores it). The deadline's clock is injected (it advances one "second" per reading), so
no assertion depends on how fast this machine is. Materializations are real runs of stand-in assets
(``StandIns``), written by the stage kit as production writes them.
"""

from __future__ import annotations

import collections
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dubbing_pipeline import stages
from dubbing_pipeline.definitions import build_definitions
from dubbing_pipeline.orchestration import catalog as cat
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage, make_storage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standins import StandIns

SOURCE = stages.SOURCE_HALF


@pytest.fixture(scope="module")
def graph() -> Any:
    return build_definitions(Settings()).resolve_asset_graph()


def _fps(uris: Any) -> dict[str, str | None]:
    return {u: cat._local_fingerprint(u[len("file://") :]) for u in uris}


def _sources(folder: Path, prefix: str, n: int) -> list[cat.CatalogVideo]:
    """``n`` placeholder sources (the catalog reads only their size and mtime), ids ``prefix0000``…"""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"{prefix}{i:04d}.mp4"
        path.write_bytes(b"video" * 8)
        out.append(cat.CatalogVideo(f"{prefix}{i:04d}", path.as_uri(), ("es", "de")))
    return out


class FakeClock:
    """A clock that advances one second each time it is read: the deadline counts steps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class Ticks:
    """Ticks of one catalog, each from the cursor (as JSON) the previous one left."""

    def __init__(self, instance: dg.DagsterInstance, storage: MediaStorage, catalog: cat.Catalog) -> None:
        self.instance, self.storage, self.catalog = instance, storage, catalog
        self.cursor: str | None = None
        self.memo = cat.CatalogMemo()

    def __call__(self, graph: Any, **kwargs: Any) -> cat.CatalogPlan:
        plan = cat.plan_catalog(
            self.instance, graph, self.catalog, self.storage, _fps,
            cursor=cat.CatalogCursor.parse(self.cursor), memo=self.memo, **kwargs,
        )  # fmt: skip
        self.cursor = plan.cursor.dump()
        return plan


def test_a_tiny_budget_splits_the_plan_and_asks_for_each_partition_once(
    tmp_path: Path, pg: dg.DagsterInstance, graph: Any
) -> None:
    videos = _sources(tmp_path / "sources", "split", 300)
    ticks = Ticks(pg, make_storage(str(tmp_path / "media")), cat.Catalog(list(videos)))
    asked: list[str] = []
    plans = []
    while not plans or plans[-1].deadline_hit:
        plans.append(ticks(graph, budget_s=6.0, clock=FakeClock(), chunk=20))
        asked += [str(r.run_key) for r in plans[-1].source_requests]
        assert len(plans) < 50, "the split never ends"
    assert len(plans) >= 3 and all(p.deadline_hit for p in plans[:-1])
    assert all(0 < len(p.source_requests) < 300 for p in plans)
    # every video asked for exactly once across the split, none lost
    assert max(collections.Counter(asked).values()) == 1
    assert sorted(k.split(":")[1] for k in asked) == sorted(v.video_id for v in videos)
    assert cat.CatalogCursor.parse(ticks.cursor).rush is None  # the full pass is over
    # without a deadline the same catalog is one tick, with the same run keys (stable)
    whole = cat.plan_catalog(pg, graph, ticks.catalog, ticks.storage, _fps)
    assert sorted(str(r.run_key) for r in whole.source_requests) == sorted(asked)
    assert not whole.deadline_hit


Settled = tuple[Ticks, StandIns, list[cat.CatalogVideo]]


@pytest.fixture
def settled(
    tmp_path: Path, pg: dg.DagsterInstance, graph: Any
) -> tuple[Ticks, StandIns, list[cat.CatalogVideo]]:
    """20 videos in es and de after their first full pass; the source halves of the first two made
    (real runs), and a tick since that read those events."""
    prefix = f"s{time.monotonic_ns() % 10**6}-"
    videos = _sources(tmp_path / "sources", prefix, 20)
    storage = make_storage(str(tmp_path / "media"))
    ticks = Ticks(pg, storage, cat.Catalog(list(videos)))
    first = ticks(graph, sweep=5)
    assert len(first.source_requests) == 20 and first.swept == 20 and first.events == 0
    si = StandIns(graph, storage, tmp_path / "io")
    for video in videos[:2]:
        si.materialise(pg, SOURCE, video.video_id)
    after = ticks(graph, sweep=0)
    assert after.events > 0 and after.changed == 2 and after.swept == 0
    assert sorted(r.partition_key for r in after.dub_requests) == sorted(
        f"{lang}|{v.video_id}" for v in videos[:2] for lang in ("es", "de")
    )
    return ticks, si, videos


def test_a_quiet_tick_reads_no_event_and_judges_only_the_sweep_slice(settled: Settled, graph: Any) -> None:
    ticks, _, videos = settled
    seen: list[str] = []
    for _ in range(4):  # 20 videos, 5 a tick: each judged once in 4 ticks
        plan = ticks(graph, sweep=5)
        assert plan.events == 0 and plan.changed == 0 and not plan.deadline_hit
        judged = sorted({pk.rsplit("|", 1)[-1] for pk in plan.statuses})
        assert len(judged) == 5 and plan.swept == len(plan.statuses)
        seen += judged
    assert sorted(seen) == sorted(v.video_id for v in videos)
    quiet = ticks(graph, sweep=0)
    assert quiet.events == 0 and not quiet.statuses and quiet.swept == 0


def test_a_new_materialization_or_a_changed_entry_is_planned_at_the_next_tick(
    settled: Settled, graph: Any, tmp_path: Path
) -> None:
    ticks, si, videos = settled
    third = videos[2].video_id
    si.materialise(ticks.instance, SOURCE, third)
    moved = tmp_path / "moved.mp4"
    moved.write_bytes(b"another video" * 4)
    fourth = videos[3]
    ticks.catalog = cat.Catalog(
        [v if v is not fourth else cat.CatalogVideo(v.video_id, moved.as_uri(), v.languages) for v in videos]
    )
    plan = ticks(graph, sweep=0)  # no sweep: only what changed is planned
    assert plan.events > 0 and plan.changed == 2
    assert sorted({pk.rsplit("|", 1)[-1] for pk in plan.statuses}) == sorted([third, fourth.video_id])
    assert sorted(r.partition_key for r in plan.dub_requests) == [f"de|{third}", f"es|{third}"]
    assert [r.partition_key for r in plan.source_requests] == [fourth.video_id]
    assert plan.source_requests[0].tags["dubbing/source_uri"] == moved.as_uri()


def test_drift_the_events_do_not_show_is_found_by_the_sweep_within_its_bound(
    settled: Settled, graph: Any, tmp_path: Path
) -> None:
    ticks, _, videos = settled
    # a source replaced in place: no event says so; the sweep finds it within ceil(20 / 5) ticks
    first = Path(videos[0].source_uri[len("file://") :])
    first.write_bytes(b"replaced in place" * 9)
    os.utime(first, (time.time() + 60, time.time() + 60))
    found = []
    for _ in range(4):
        plan = ticks(graph, sweep=5)
        assert plan.events == 0
        found += [r for r in plan.source_requests if r.partition_key == videos[0].video_id]
    assert len(found) == 1 and found[0].tags["dubbing/reason"].startswith("source changed")
    # a new code version of one asset: no event either; the next tick plans every video again
    newer = StandIns(graph, ticks.storage, tmp_path / "io", code_versions={"dub_mix": "mix-bumped"})
    plan = ticks(newer.assets_graph(), sweep=5)
    assert plan.events == 0 and plan.swept == len(plan.statuses)
    assert {pk.rsplit("|", 1)[-1] for pk in plan.statuses} == {v.video_id for v in videos}
    assert cat.CatalogCursor.parse(ticks.cursor).rush is None  # that full pass is over


def test_a_language_added_to_the_whole_catalog_is_a_narrow_full_pass(
    settled: Settled, graph: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More entries changed than ``PENDING_MAX``, each only gaining a language: a full pass across
    ticks judges every video's source half and only the new language's pairs (the es and de pairs
    asked for before are not read again); a source half asked for carries all its languages."""
    ticks, _, videos = settled
    monkeypatch.setattr(cat, "PENDING_MAX", 5)
    ticks.catalog = cat.Catalog([replace(v, languages=(*v.languages, "fr")) for v in videos])
    plans = [ticks(graph, sweep=0, budget_s=6.0, clock=FakeClock(), chunk=4)]
    assert plans[0].deadline_hit and cat.CatalogCursor.parse(ticks.cursor).only == ["fr"]
    while plans[-1].deadline_hit:
        plans.append(ticks(graph, sweep=0, budget_s=6.0, clock=FakeClock(), chunk=4))
        assert len(plans) < 20, "the pass never ends"
    judged = [pk for p in plans for pk in p.statuses]
    made = {v.video_id for v in videos[:2]}  # their source halves are fresh: their fr pairs are judged
    assert sorted(judged) == sorted([v.video_id for v in videos] + [f"fr|{vid}" for vid in made])
    dubs = [r.partition_key for p in plans for r in p.dub_requests]
    assert sorted(dubs) == sorted(f"fr|{vid}" for vid in made)
    sources = [r for p in plans for r in p.source_requests]
    assert len(sources) == 18 and {r.tags["dubbing/languages"] for r in sources} == {"es,de,fr"}
    after = cat.CatalogCursor.parse(ticks.cursor)
    assert after.rush is None and after.only == []


def test_a_first_tick_of_a_large_catalog_resolves_its_entries_across_ticks(
    tmp_path: Path, pg: dg.DagsterInstance, graph: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolving new entries (fingerprints, ids) is inside the deadline too: 300 new entries, 50 at a
    time, a tiny budget: the first tick leaves most waiting, later ticks resolve and plan them, and
    every video is asked for exactly once."""
    monkeypatch.setattr(cat, "RESOLVE_CHUNK", 50)
    videos = _sources(tmp_path / "sources", "wait", 300)
    ticks = Ticks(pg, make_storage(str(tmp_path / "media")), cat.Catalog(list(videos)))
    plans = [ticks(graph, budget_s=6.0, clock=FakeClock(), chunk=20)]
    first = cat.Snapshot.load(ticks.storage, cat.CatalogCursor.parse(ticks.cursor).catalog)
    assert first is not None and 0 < len(first.videos) < 300 and len(first.videos) + len(first.waiting) == 300
    while plans[-1].deadline_hit:
        plans.append(ticks(graph, budget_s=6.0, clock=FakeClock(), chunk=20))
        assert len(plans) < 60, "the split never ends"
    asked = [str(r.partition_key) for p in plans for r in p.source_requests]
    assert sorted(asked) == sorted(v.video_id for v in videos)  # each once, none lost
    last = cat.Snapshot.load(ticks.storage, cat.CatalogCursor.parse(ticks.cursor).catalog)
    assert last is not None and not last.waiting and len(last.videos) == 300
