"""What the catalog sensor carries from one tick to the next: a cursor, the catalog it planned, a deadline.

A tick must not cost O(catalog) (``catalog.py``, "What a tick costs"). It plans what changed since
the previous tick, and a slice of the rest:

* **events** (:func:`read_changes`): the materializations and observations of the pipeline's assets
  and the ends of its runs (success, failure, cancel) after the event-log storage id in the cursor,
  through Dagster's public ``fetch_materializations`` / ``fetch_observations`` /
  ``fetch_run_status_changes`` with ``after_storage_id``: one indexed query per asset and per run
  status, each at most ``EVENTS_PAGE`` records (the rest next tick);
* **the catalog's own changes**: the catalog is kept as a :class:`Snapshot` (ids resolved, sorted)
  in the media storage under ``SNAPSHOTS`` and named in the cursor by its digest; the entries that
  differ from the previous snapshot are re-planned;
* **the sweep**: the next ``DUBBING_CATALOG_SWEEP`` videos after ``sweep`` in id order, wrapping
  around, so every video is judged again at least once every ``ceil(videos / sweep)`` ticks
  whatever the events say (a source object replaced without any event, an event committed out of
  storage-id order, a partition deleted by hand);
* **a full pass** (``rush``): after a catalog-wide change (more than ``PENDING_MAX`` entries, a new
  code version of any asset, a first tick) every video is planned in id order, as many per tick as
  the deadline allows, from where the previous tick stopped.

The cursor is small (a few ids and numbers; at most ``PENDING_MAX`` pending ids): Dagster stores it
with every tick. It is committed by Dagster together with the tick's run requests, so a tick that
fails plans the same work again, and a tick that stops at its deadline hands the rest on.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Final

import dagster as dg

from dubbing_pipeline.common.hashing import canonical_json, sha256_bytes
from dubbing_pipeline.common.ids import video_id_from_name
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.storage import MediaStorage, parse_uri

CURSOR_VERSION = 1
PENDING_MAX = 2000  # videos planned one by one across a split; more: a full pass (``rush``)
EVENTS_PAGE = 5000  # records per query and tick; the rest the next tick
PARTITION_TAG = "dagster/partition"
RUN_ENDS: Final = (
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
)


@dataclass
class CatalogCursor:
    """Where the catalog sensor stands (``context.cursor``, JSON)."""

    events: int | None = None  # every event up to this storage id is planned; None: no tick yet
    catalog: str = ""  # digest of the :class:`Snapshot` planned
    codes: str = ""  # digest of every asset's code version planned (``Halves.code_digest``)
    sweep: str = ""  # the sweep goes on after this video id ("": from the first)
    rush: str | None = None  # a full pass goes on after this id ("": from the first); None: none
    pending: list[str] = field(default_factory=list)  # videos changed but not planned (deadline)
    only: list[str] = field(default_factory=list)  # the full pass judges only these languages ([]: all)

    def dump(self) -> str:
        return json.dumps({"v": CURSOR_VERSION, **asdict(self)}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str | None) -> CatalogCursor:
        """The cursor of ``text``; none, or one of another version: a first tick (a full pass)."""
        data = json.loads(text) if text else None
        if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
            return cls()
        events = data.get("events")
        rush = data.get("rush")
        return cls(
            events=int(events) if events is not None else None,
            catalog=str(data.get("catalog") or ""),
            codes=str(data.get("codes") or ""),
            sweep=str(data.get("sweep") or ""),
            rush=str(rush) if rush is not None else None,
            pending=[str(v) for v in data.get("pending") or []],
            only=[str(x) for x in data.get("only") or []],
        )


class Deadline:
    """The tick's budget: planning goes on while the next step is expected to end within it.

    ``clock`` is injectable (tests count steps instead of timing real seconds). The expected cost
    of a step is the longest step so far, so a tick stops one step early rather than one late.
    """

    def __init__(self, budget_s: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s = budget_s
        self.clock = clock
        self.start = clock()
        self.longest = 0.0
        self.hit = False

    def allows_another(self) -> bool:
        if self.budget_s is None:
            return True
        if self.clock() - self.start + self.longest > self.budget_s:
            self.hit = True
        return not self.hit

    def step(self, began: float) -> None:
        self.longest = max(self.longest, self.clock() - began)


# --- the catalog: as the file says, and as planned -------------------------------------------------


@dataclass(frozen=True)
class CatalogVideo:
    video_id: str  # as parsed, an entry without ``id:`` has its base id: resolved by ``resolve_ids``
    source_uri: str
    languages: tuple[str, ...]
    explicit: bool = True  # the entry gave its ``id:``


@dataclass
class Catalog:
    """The catalog's videos, and the entries refused (entry → a classified, one-line reason)."""

    videos: list[CatalogVideo] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    digest: str = ""  # of the file's text (``parse_catalog``); "": of the videos, when asked

    def fingerprint(self) -> str:
        """What tells this catalog from another: the file's digest, else one of its content."""
        if not self.digest:
            rows = [[v.video_id, v.source_uri, list(v.languages), v.explicit] for v in self.videos]
            self.digest = digest_of({"videos": rows, "refused": self.refused})
        return self.digest


def entry_key(video: CatalogVideo) -> tuple[str, str, bool]:
    """What a catalog entry names: its ``id:`` (or the base id of its source's name), its source and
    whether the id was given; a resolved video has the key of the entry it came from."""
    entry_id = video.video_id if video.explicit else video_id_from_name(parse_uri(video.source_uri)[2])
    return entry_id, video.source_uri, video.explicit


def _row(v: CatalogVideo) -> list[object]:
    return [v.video_id, v.source_uri, list(v.languages), v.explicit]


def _video(row: list[object]) -> CatalogVideo:
    vid, source, langs, explicit = row
    return CatalogVideo(str(vid), str(source), tuple(str(x) for x in langs or []), bool(explicit))  # type: ignore[attr-defined]


SNAPSHOTS = "registry/catalog-snapshots"


@dataclass
class Snapshot:
    """The catalog as planned: its videos under their resolved ids (sorted: the sweep's order), the
    entries whose source was missing (checked again each tick), the entries refused, and the digest
    of the catalog it was made from."""

    videos: dict[str, CatalogVideo]
    missing: list[CatalogVideo]
    refused: dict[str, str]
    catalog: str
    waiting: list[CatalogVideo] = field(default_factory=list)  # new entries not resolved yet (deadline)
    ids: list[str] = field(init=False)
    digest: str = field(init=False)
    text: bytes = field(init=False, repr=False)  # the stored form (canonical JSON), made once

    def __post_init__(self) -> None:
        # one serialisation names the snapshot and is what ``save`` stores: at 100,000 videos each
        # one costs about 0.3 s of a tick after a one-line catalog change
        self.ids = sorted(self.videos)
        self.text = canonical_json(self.to_json()).encode()
        self.digest = sha256_bytes(self.text)[:16]

    def to_json(self) -> JsonObject:
        return {
            "catalog": self.catalog,
            "videos": [_row(self.videos[vid]) for vid in self.ids],
            "missing": [_row(v) for v in self.missing],
            "refused": self.refused,
            **({"waiting": [_row(v) for v in self.waiting]} if self.waiting else {}),
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> Snapshot:
        videos = {str(row[0]): _video(row) for row in data["videos"]}
        missing, waiting = (
            [_video(row) for row in data["missing"]],
            [_video(r) for r in data.get("waiting", [])],
        )
        return cls(videos, missing, dict(data["refused"]), str(data["catalog"]), waiting)

    def resolved(self) -> dict[tuple[str, str, bool], str]:
        """Entry (:func:`entry_key`) → the id it was given."""
        return {entry_key(v): vid for vid, v in self.videos.items()}

    def changed_since(self, previous: Snapshot | None) -> list[str]:
        """The videos whose entry is new or differs (source, languages) from ``previous``."""
        if previous is None:
            return list(self.ids)
        return [vid for vid in self.ids if previous.videos.get(vid) != self.videos[vid]]

    def added_languages(self, previous: Snapshot | None, vids: Sequence[str]) -> list[str] | None:
        """The languages the catalog added to ``vids`` when that is all that changed for each (the
        same entry and source, languages gained or dropped); None when one is new or moved."""
        if previous is None:
            return None
        added: set[str] = set()
        for vid in vids:
            old, new = previous.videos.get(vid), self.videos[vid]
            if old is None or replace(old, languages=new.languages) != new:
                return None
            added |= set(new.languages) - set(old.languages)
        return sorted(added)

    def save(self, storage: MediaStorage, keep: str) -> None:
        """Store this snapshot (once) and drop the others but ``keep`` (the cursor's, until this
        tick's cursor is committed)."""
        key = f"{SNAPSHOTS}/{self.digest}.json"
        if not storage.exists(key):
            storage.put_bytes(key, self.text)
        for old in storage.keys_in(SNAPSHOTS):
            if old not in (key, f"{SNAPSHOTS}/{keep}.json"):
                storage.delete(old)

    @classmethod
    def load(cls, storage: MediaStorage, digest: str) -> Snapshot | None:
        key = f"{SNAPSHOTS}/{digest}.json"
        return cls.from_json(storage.get_json(key)) if digest and storage.exists(key) else None


def video_of(partition_key: str) -> str:
    """The video of a partition key (``"es|talk"`` → ``"talk"``, ``"talk"`` → ``"talk"``)."""
    return partition_key.rsplit("|", 1)[-1]


def sweep_slice(ids: Sequence[str], after: str, count: int) -> list[str]:
    """The ``count`` ids after ``after`` in the sorted ``ids``, wrapping around (each at most once)."""
    if count <= 0 or not ids:
        return []
    start = bisect_right(ids, after) if after else 0
    out = list(ids[start : start + count])
    if len(out) < count:
        out += ids[: min(count - len(out), start)]
    return out


def rush_rest(ids: Sequence[str], after: str) -> list[str]:
    """The ids a full pass has still to plan: every one after ``after`` ("": all)."""
    return list(ids[bisect_right(ids, after) :] if after else ids)


# --- what changed: events after a storage id --------------------------------------------------------


@dataclass
class Changes:
    """The videos the events after the cursor touch, how many events were read, and the new cursor."""

    videos: set[str] = field(default_factory=set)
    events: int = 0
    watermark: int | None = None


def _page(result: dg.EventRecordsResult, changes: Changes, capped: list[int]) -> list[dg.EventLogRecord]:
    records = list(result.records)
    changes.events += len(records)
    if records:
        changes.watermark = max(changes.watermark or 0, records[-1].storage_id)
        if result.has_more:
            capped.append(records[-1].storage_id)
    return records


def _latest(
    instance: dg.DagsterInstance, assets: Iterable[dg.AssetKey], observed: Iterable[dg.AssetKey]
) -> int:
    """The newest storage id of the events :func:`read_changes` reads (0: none yet)."""
    ids = [r.storage_id for k in assets for r in instance.fetch_materializations(k, limit=1).records]
    ids += [r.storage_id for k in observed for r in instance.fetch_observations(k, limit=1).records]
    for kind in RUN_ENDS:
        ids += [r.storage_id for r in instance.fetch_run_status_changes(kind, limit=1).records]
    return max(ids, default=0)


def read_changes(
    instance: dg.DagsterInstance,
    assets: Sequence[dg.AssetKey],
    observed: Sequence[dg.AssetKey],
    jobs: Sequence[str],
    after: int | None,
    page: int = EVENTS_PAGE,
) -> Changes:
    """The videos touched by events after storage id ``after``: materializations of ``assets``,
    observations of ``observed`` (edits, feedback), ends of runs of ``jobs`` (by the run's
    partition tag). ``after`` None (a first tick, which plans everything): nothing is touched and
    the watermark is the newest event now.

    Where a query has more than ``page`` records the watermark stops at its last one read, so the
    rest is read next tick (events of other queries read twice are planned twice: harmless).
    """
    if after is None:
        return Changes(watermark=_latest(instance, assets, observed))
    changes, capped = Changes(watermark=after), list[int]()
    for key in [*assets, *observed]:
        filt = dg.AssetRecordsFilter(asset_key=key, after_storage_id=after)
        fetch = instance.fetch_materializations if key in assets else instance.fetch_observations
        for record in _page(fetch(filt, limit=page, ascending=True), changes, capped):
            changes.videos.add(video_of(record.partition_key or ""))
    run_ids: set[str] = set()
    for kind in RUN_ENDS:
        ends = dg.RunStatusChangeRecordsFilter(kind, after_storage_id=after)  # (no job filter in OSS)
        records = _page(instance.fetch_run_status_changes(ends, limit=page, ascending=True), changes, capped)
        run_ids.update(r.run_id for r in records)
    for run in instance.get_runs(dg.RunsFilter(run_ids=sorted(run_ids))) if run_ids else []:
        if run.job_name in jobs:
            changes.videos.add(video_of(run.tags.get(PARTITION_TAG, "")))
    changes.videos.discard("")
    if capped:
        changes.watermark = min(capped)
    return changes


def digest_of(value: object) -> str:
    """A short digest of a JSON value (the snapshot's name)."""
    return sha256_bytes(canonical_json(value).encode())[:16]


__all__ = [
    "Catalog",
    "CatalogCursor",
    "CatalogVideo",
    "Changes",
    "Deadline",
    "Snapshot",
    "read_changes",
    "rush_rest",
    "sweep_slice",
]
