"""The scale bench's bulk path stores what Dagster's own ``store_event`` would: the same rows and
the same answers from the public read APIs as ``store_event`` and ``store_event_batch``.

One PostgreSQL server, three databases. The bench's bulk path (``BulkStore``: the events built and
made into rows in a worker, ``COPY``, the secondary indexes dropped and rebuilt for the first load)
stores 4 videos (source halves and 7 languages; then an 8th language after the partition status
cache was read, as the bench does); the entries it stored are read back and given, in storage-id
order, to ``store_event`` (one at a time) and ``store_event_batch`` in the other two databases.
The storage ids come from each database's sequence in the same order, so even they agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from contextlib import ExitStack, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
from dagster._core.events.log import EventLogEntry
from dagster._serdes import deserialize_value

from dubbing_pipeline.definitions import build_definitions
from dubbing_pipeline.tooling.devservers import postgres_instance_yaml, postgres_server
from dubbing_pipeline.tooling.scale_events import (
    BulkStore,
    Materializations,
    indexes_rebuilt,
    store_batched,
    store_videos,
    worker_pool,
)

VIDEOS = ["v0000000", "v0000001", "v0000002", "v0000003"]
FIRST = ["es", "fr", "de", "it", "pt", "ja", "zh"]
WAYS = ("bulk", "single", "batch")


def _bulk(
    instance: dg.DagsterInstance, store: BulkStore, pool: Executor, langs: Sequence[str], first: bool
) -> None:
    etags = {v: f"etag-{v}" for v in VIDEOS}
    with indexes_rebuilt(instance) if first else nullcontext():
        store_videos(store, pool, VIDEOS, langs, etags, size=3)  # chunks of 3 videos: two of them


def _stored_since(instance: dg.DagsterInstance, after: int) -> list[EventLogEntry]:
    with instance.event_log_storage.index_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.exec_driver_sql(
            "SELECT event FROM event_logs WHERE id > %s ORDER BY id", (after,)
        ).fetchall()
    return [deserialize_value(r[0], EventLogEntry) for r in rows]


def _write(way: str, instance: dg.DagsterInstance, events: list[EventLogEntry]) -> None:
    if way == "single":
        for event in events:
            instance.event_log_storage.store_event(event)
    else:
        store_batched(instance, events)


def _rows(instance: dg.DagsterInstance) -> dict[str, list[tuple[Any, ...]]]:
    """The stored rows of the event tables (``asset_keys`` without its own id and creation time)."""
    queries = {
        "event_logs": "SELECT id, run_id, event, dagster_event_type, timestamp, step_key, asset_key,"
        " partition FROM event_logs ORDER BY id",
        "asset_event_tags": "SELECT event_id, asset_key, key, value, event_timestamp FROM asset_event_tags"
        " ORDER BY event_id, key",
        "asset_keys": "SELECT asset_key, last_materialization, last_run_id, asset_details, wipe_timestamp,"
        " last_materialization_timestamp, tags FROM asset_keys ORDER BY asset_key",
    }
    with instance.event_log_storage.index_connection() as conn:  # type: ignore[attr-defined]
        return {table: [tuple(r) for r in conn.exec_driver_sql(q).fetchall()] for table, q in queries.items()}


def _answers(instance: dg.DagsterInstance, graph: Any, keys: Sequence[dg.AssetKey]) -> dict[str, Any]:
    """What the public read APIs say of every materialised asset."""
    storage = instance.event_log_storage
    out: dict[str, Any] = {}
    for key in keys:
        name, pdef = key.to_user_string(), graph.get(key).partitions_def
        records = instance.fetch_materializations(key, limit=10_000).records
        latest = instance.get_latest_materialization_event(key)
        kind = dg.DagsterEventType.ASSET_MATERIALIZATION
        keys_now = pdef.get_partition_keys(dynamic_partitions_store=instance)
        out[name] = {
            "tags": storage.get_latest_tags_by_partition(key, kind, ["dagster/data_version"]),
            "materialized": sorted(instance.get_materialized_partitions(key)),
            "records": [(r.storage_id, r.partition_key, r.event_log_entry) for r in records],
            "latest": None if latest is None else (latest.timestamp, latest.get_dagster_event().partition),
            "storage_ids": storage.get_latest_storage_id_by_partition(key, kind),
            "status": dict(instance.get_status_by_partition(key, keys_now, pdef) or {}),
        }
    return out


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[dict[str, dg.DagsterInstance]]:
    with postgres_server("dagster_bulk") as pg, ExitStack() as stack:
        conn = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for way in WAYS:
                cur.execute(f'CREATE DATABASE "bulk_{way}"')
        conn.close()
        out = {}
        for way in WAYS:
            home = tmp_path / way
            home.mkdir()
            (home / "dagster.yaml").write_text(postgres_instance_yaml(replace(pg, db_name=f"bulk_{way}")))
            out[way] = stack.enter_context(dg.DagsterInstance.from_config(str(home)))
            out[way].add_dynamic_partitions("videos", VIDEOS)
            out[way].add_dynamic_partitions("languages", [*FIRST, "ko"])
        yield out


def test_the_bulk_path_stores_what_store_event_stores(instances: dict[str, dg.DagsterInstance]) -> None:
    graph = build_definitions().resolve_asset_graph()
    mats = Materializations(graph)
    bulk = instances["bulk"]
    store = BulkStore(bulk, mats)
    with worker_pool(bulk, 1) as pool:  # one worker process, as the bench's
        _bulk(bulk, store, pool, FIRST, first=True)
        first = _stored_since(bulk, 0)
        keys = sorted({e.get_dagster_event().asset_key or dg.AssetKey("?") for e in first}, key=str)
        for way in ("single", "batch"):
            _write(way, instances[way], first)
        before = {
            way: _answers(instance, graph, keys) for way, instance in instances.items()
        }  # fills the cache
        _bulk(bulk, store, pool, ["ko"], first=False)
    second = _stored_since(bulk, len(first))
    for way in ("single", "batch"):
        _write(way, instances[way], second)
    assert (
        len(first) == len(VIDEOS) * 40 and len(second) == len(VIDEOS) * 5 and store.stored == len(VIDEOS) * 45
    )
    after = {way: _answers(instance, graph, keys) for way, instance in instances.items()}
    rows = {way: _rows(instance) for way, instance in instances.items()}
    assert before["bulk"] == before["single"] and after["bulk"] == after["single"]
    for table in ("event_logs", "asset_event_tags", "asset_keys"):
        assert rows["bulk"][table] == rows["single"][table], table
    # store_event_batch: the same events, tags and partition answers; but it updates ``asset_keys``
    # with a batch's last event only (a Dagster shortcut), so an asset whose events were never last
    # in a batch has no asset record: no latest materialisation, no partition status (the old
    # setup's instance looked like that; the bulk path's looks like production's, event by event)
    assert _partition_answers(before["bulk"]) == _partition_answers(before["batch"])
    assert _partition_answers(after["bulk"]) == _partition_answers(after["batch"])
    assert rows["bulk"]["event_logs"] == rows["batch"]["event_logs"]
    assert rows["bulk"]["asset_event_tags"] == rows["batch"]["asset_event_tags"]
    assert (
        len(rows["bulk"]["event_logs"]) == len(first) + len(second) == len(rows["bulk"]["asset_event_tags"])
    )
    statuses = after["bulk"]["dubbed_video"]["status"]
    assert len(statuses) == len(VIDEOS) * 8
    assert {str(s) for s in statuses.values()} == {"AssetPartitionStatus.MATERIALIZED"}


def _partition_answers(answers: dict[str, Any]) -> dict[str, Any]:
    """The answers that do not read the asset's record (``asset_keys``)."""
    return {
        name: {k: v for k, v in a.items() if k not in ("latest", "status")} for name, a in answers.items()
    }
