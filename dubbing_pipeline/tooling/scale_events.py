"""The materialisations of ``bench --scale``: built as the stage kit writes them, stored in bulk.

Storing 45 events per video one ``store_event_batch`` at a time costs about 2,000 events a second
(the setup of 30,000 videos took 11 minutes), so the bench writes the rows of Dagster's event log
tables itself, with ``COPY``: the rows Dagster's own helpers make of each ``EventLogEntry``
(``_event_to_row`` serialises it with ``serialize_value``, ``_tags_for_asset_event`` picks the
indexed tags, ``_store_asset_event`` updates ``asset_keys``), so what is stored is what
``store_event`` would store, event for event (``tests/test_scale_bulk.py`` compares the two through
the public read APIs). The ticks that are measured read them through Dagster's public APIs.

The events and their rows are made in worker processes (``serialize_value`` is most of the cost:
about 0.2 ms an event), this process copies them; on 2 cores the two overlap.

For a big first load the secondary indexes of ``event_logs`` and ``asset_event_tags`` are dropped
and rebuilt afterwards from their own definitions (``pg_indexes``): one sort per index instead of
millions of insertions, the same indexes after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import multiprocessing as mp
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable
from dagster._serdes import deserialize_value
from dagster_postgres.event_log.event_log import PostgresEventLogStorage

from dubbing_pipeline.definitions import build_definitions
from dubbing_pipeline.orchestration.fresh import UNOBSERVED, source_lineage
from dubbing_pipeline.orchestration.kit import Version, lineage_digest
from dubbing_pipeline.orchestration.partitions import video_language, videos

EVENT_BATCH = 2000  # events per ``store_event_batch`` call (the slow path)

EVENT_COLUMNS = (
    "id",
    "run_id",
    "event",
    "dagster_event_type",
    "timestamp",
    "step_key",
    "asset_key",
    "partition",
)
TAG_COLUMNS = ("event_id", "asset_key", "key", "value", "event_timestamp")


class Materializations:
    """Materialization events with the data versions the stage kit writes."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.order = self._topological()

    def _topological(self) -> list[dg.AssetKey]:
        done: list[dg.AssetKey] = []
        keys = sorted(self.graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
        while len(done) < len(keys):
            for key in keys:
                if key not in done and all(p in done for p in self.graph.get(key).parent_keys):
                    done.append(key)
        return done

    @staticmethod
    def event(key: dg.AssetKey, pk: str, version: Version) -> EventLogEntry:
        """A runless materialisation of ``key`` at ``pk`` tagged with ``version`` (as the kit tags)."""
        event = dg.AssetMaterialization(key, partition=pk, tags={"dagster/data_version": str(version)})
        dagster_event = DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            event_specific_data=StepMaterializationData(event),
            job_name=RUNLESS_JOB_NAME,
        )
        return EventLogEntry(
            user_message="", level=20, job_name=RUNLESS_JOB_NAME, run_id=RUNLESS_RUN_ID,
            error_info=None, timestamp=time.time(), dagster_event=dagster_event,
        )  # fmt: skip

    def _upstream(self, node: Any, pk: str, video: str, keys: dict[str, str]) -> dict[str, str]:
        """The cache keys of ``node``'s parents at ``pk`` (a source-half parent at ``video``)."""
        upstream = {}
        for parent in node.parent_keys:
            name = parent.to_user_string()
            if not self.graph.get(parent).is_materializable:  # no edits, no feedback: none's version
                upstream[name] = UNOBSERVED[name]
                continue
            same = self.graph.get(parent).partitions_def == node.partitions_def
            upstream[name] = keys[f"{name}|{pk if same else video}"]
        return upstream

    def chain(self, partitions_def: Any, pk: str, video: str, keys: dict[str, str]) -> list[EventLogEntry]:
        """Events for every asset of one partitions definition at ``pk``; ``keys`` holds the cache
        keys of assets already written (``"asset|partition"``) and receives this partition's."""
        events = []
        for key in self.order:
            node = self.graph.get(key)
            if node.partitions_def != partitions_def or not node.is_materializable:  # edits: observed
                continue
            name = key.to_user_string()
            upstream = self._upstream(node, pk, video, keys)
            lineage = lineage_digest(upstream) if upstream else keys[f"source|{video}"]
            cache_key = hashlib.sha256(f"{name}|{pk}|{lineage}".encode()).hexdigest()[:32]
            keys[f"{name}|{pk}"] = cache_key
            events.append(self.event(key, pk, Version(cache_key, lineage, str(node.code_version))))
        return events


def store_batched(instance: dg.DagsterInstance, events: Sequence[EventLogEntry]) -> None:
    """The slow path: Dagster's ``store_event_batch``, ``EVENT_BATCH`` events a call."""
    for start in range(0, len(events), EVENT_BATCH):
        instance.event_log_storage.store_event_batch(list(events[start : start + EVENT_BATCH]))


# --- the bulk path ---------------------------------------------------------------------------


def _copy_text(value: object) -> str:
    """One field of PostgreSQL's COPY text format (``\\N`` is NULL)."""
    if value is None:
        return "\\N"
    text = value.isoformat(sep=" ") if isinstance(value, dt.datetime) else str(value)
    if any(c in text for c in "\\\t\n\r"):
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def copy_lines(rows: Iterable[Sequence[object]]) -> str:
    return "".join("\t".join(_copy_text(v) for v in row) + "\n" for row in rows)


@dataclass
class Rows:
    """One chunk's rows as COPY text, each asset's latest event in it (serialised: it crosses a
    process), and the source-half cache keys of the chunk's videos (for their later dubs)."""

    events: str
    tags: str
    latest: dict[str, tuple[int, str]]
    source_keys: dict[str, dict[str, str]]
    count: int


def rows_of(storage: Any, events: Sequence[EventLogEntry], ids: Sequence[int]) -> Rows:
    """The rows ``store_event`` writes for ``events`` with the storage ids ``ids``, made by the
    storage's own helpers (``_event_to_row``: ``serialize_value``; ``_tags_for_asset_event``)."""
    event_rows, tag_rows, latest = [], [], {}
    for event_id, event in zip(ids, events, strict=True):
        row = storage._event_to_row(event)
        event_rows.append((event_id, *(row[c] for c in EVENT_COLUMNS[1:])))
        for key, value in storage._tags_for_asset_event(event).items():
            tag_rows.append((event_id, row["asset_key"], key, value, row["timestamp"]))
        latest[row["asset_key"]] = (event_id, row["event"])
    return Rows(copy_lines(event_rows), copy_lines(tag_rows), latest, {}, len(events))


@dataclass(frozen=True)
class Chunk:
    """Videos whose events one worker builds: their dubs into ``langs`` and, for those without
    ``source_keys``, their source halves (from the source object's ETag) first."""

    vids: list[str]
    langs: list[str]
    etags: dict[str, str]  # video → its source object's ETag
    source_keys: dict[str, dict[str, str]]  # video → its source half's cache keys, once written
    ids: list[int]


def chunk_events(
    mats: Materializations, chunk: Chunk
) -> tuple[list[EventLogEntry], dict[str, dict[str, str]]]:
    """The chunk's events in order, and the source-half cache keys of its videos."""
    events: list[EventLogEntry] = []
    sources: dict[str, dict[str, str]] = {}
    for vid in chunk.vids:
        known = chunk.source_keys.get(vid)
        keys = dict(known or {f"source|{vid}": source_lineage(chunk.etags[vid])})
        if known is None:
            events += mats.chain(videos, vid, vid, keys)
        sources[vid] = {k: v for k, v in keys.items() if k.split("|", 1)[1] == vid}
        for lang in chunk.langs:
            events += mats.chain(video_language, f"{lang}|{vid}", vid, keys)
    return events, sources


_WORKER: tuple[Materializations, Any] | None = None  # a worker process's graph and storage


def _init_worker(postgres_url: str) -> None:
    """A worker's own asset graph and event log storage (the storage is only asked to make rows)."""
    global _WORKER
    graph = build_definitions().resolve_asset_graph()
    _WORKER = Materializations(graph), PostgresEventLogStorage(postgres_url, should_autocreate_tables=False)


def build_rows(chunk: Chunk) -> Rows:
    """In a worker: the chunk's events built and made into rows."""
    assert _WORKER is not None, "_init_worker first"
    mats, storage = _WORKER
    events, sources = chunk_events(mats, chunk)
    rows = rows_of(storage, events, chunk.ids)
    rows.source_keys = sources
    return rows


class BulkStore:
    """Videos' events stored with ``COPY``: workers build the events and their rows, this process
    takes storage ids from ``event_logs``' sequence (so a tag can name its event before it is
    stored), copies the rows and, last, updates ``asset_keys`` with each asset's latest event
    through Dagster's own upsert (``_store_asset_event``), as ``store_event`` leaves it."""

    def __init__(self, instance: dg.DagsterInstance, mats: Materializations) -> None:
        self.storage: Any = instance.event_log_storage
        self.per_video = {
            pdef: sum(1 for k in mats.order if _half(mats, k) is pdef) for pdef in (videos, video_language)
        }
        self.latest: dict[str, tuple[int, str]] = {}
        self.source_keys: dict[str, dict[str, str]] = {}
        self.stored = 0

    def _ids(self, n: int) -> list[int]:
        with self.storage.index_connection() as conn:
            rows = conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('event_logs', 'id')) FROM generate_series(1, %s)", (n,)
            ).fetchall()
        return sorted(int(r[0]) for r in rows)

    def chunk(self, vids: list[str], langs: Sequence[str], etags: dict[str, str]) -> Chunk:
        known = {v: self.source_keys[v] for v in vids if v in self.source_keys}
        n = (
            len(vids) * self.per_video[video_language] * len(langs)
            + (len(vids) - len(known)) * self.per_video[videos]
        )
        return Chunk(vids, list(langs), {v: etags[v] for v in vids}, known, self._ids(n))

    def copy(self, rows: Rows) -> None:
        with self.storage.index_connection() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
            cursor.copy_expert(
                f"COPY {SqlEventLogStorageTable.name} ({columns}) FROM STDIN", io.StringIO(rows.events)
            )
            cursor.copy_expert(
                f"COPY {AssetEventTagsTable.name} ({', '.join(TAG_COLUMNS)}) FROM STDIN",
                io.StringIO(rows.tags),
            )
            conn.connection.dbapi_connection.commit()
        self.latest.update(rows.latest)
        self.source_keys.update(rows.source_keys)
        self.stored += rows.count

    def finish(self) -> None:
        with self.storage.index_transaction() as conn:
            for event_id, event in sorted(self.latest.values()):
                self.storage._store_asset_event(conn, deserialize_value(event, EventLogEntry), event_id)
        self.latest.clear()


def _half(mats: Materializations, key: dg.AssetKey) -> Any:
    node = mats.graph.get(key)
    return node.partitions_def if node.is_materializable else None


def store_videos(
    store: BulkStore,
    pool: Executor,
    vids: Sequence[str],
    langs: Sequence[str],
    etags: dict[str, str],
    size: int = 500,
) -> int:
    """Every video's events for ``langs`` (its source half too, the first time) built in ``pool``
    (at most two chunks a worker ahead) and copied here in order; how many events."""
    before = store.stored
    pending: deque[Future[Rows]] = deque()
    ahead = 2 * max(1, getattr(pool, "_max_workers", 1))
    for start in range(0, len(vids), size):
        pending.append(pool.submit(build_rows, store.chunk(list(vids[start : start + size]), langs, etags)))
        while len(pending) >= ahead:
            store.copy(pending.popleft().result())
    while pending:
        store.copy(pending.popleft().result())
    store.finish()
    return store.stored - before


def worker_pool(instance: dg.DagsterInstance, workers: int) -> Executor:
    """Processes that build rows (``spawn``: a clean interpreter, nothing of this one's threads);
    ``workers=0``: one thread of this process (small catalogs, tests)."""
    url = instance.event_log_storage.postgres_url  # type: ignore[attr-defined]
    if workers <= 0:
        _init_worker(url)
        return ThreadPoolExecutor(1)
    return ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(url,)
    )


SECONDARY = ("event_logs", "asset_event_tags")


@contextmanager
def indexes_rebuilt(instance: dg.DagsterInstance) -> Iterator[None]:
    """The secondary indexes of the event tables dropped for the block, then created again from
    their own definitions and the tables analysed (the planner's statistics of a loaded table)."""
    storage: Any = instance.event_log_storage
    with storage.index_connection() as conn:
        found = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN %s AND indexname NOT LIKE %s",
            (SECONDARY, "%_pkey"),
        ).fetchall()
        for name, _ in found:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        with storage.index_connection() as conn:
            for _, definition in found:
                conn.exec_driver_sql(definition)
            for table in SECONDARY:
                conn.exec_driver_sql(f"ANALYZE {table}")
