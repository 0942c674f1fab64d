"""``dubbing-pipeline bench --scale N``: the catalog path at N videos × 8 languages, without media.

Everything is real except the media: a real PostgreSQL instance (started here), moto's S3 and
SQS in a child process, the project's own sensors and catalog schedules evaluated as the daemon
evaluates them. The objects are tiny placeholders and the materializations are written in
batches with exactly the data versions the stage kit writes (no stage runs), so what is measured
is the orchestration: registering partitions, one drop-sensor tick in each mode, and catalog ticks.

Measured, in order (seconds of wall time unless named otherwise):

* ``partitions_register_s``: N videos and 8 languages added (8·N ``video × language`` partitions);
* ``sensor_list_tick_s``: one listing-mode tick over N objects of which ``new`` are new;
* ``sensor_queue_tick_s``: one queue-mode tick with ``new`` S3 event notifications waiting;
* ``catalog_tick_s``: one catalog tick (both schedules) after a new language is added to every
  video: exactly N dub requests and nothing else;
* ``catalog_tick_noop_s``: the tick after those dubs are done: no request;
* ``peak_rss_mb``: the peak resident memory of this process (moto and PostgreSQL not included).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline import numerics
from dubbing_pipeline.orchestration.catalog import source_lineage
from dubbing_pipeline.orchestration.fresh import UNOBSERVED
from dubbing_pipeline.orchestration.kit import Version, lineage_digest
from dubbing_pipeline.settings import Settings

LANGUAGES = ("es", "fr", "de", "it", "pt", "ja", "zh", "ko")  # the last one is added during the bench
BUCKET, PREFIX = "catalog-media", "videos/"
EVENT_BATCH = 2000


class Clock:
    """Named wall-clock measurements."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def video_ids(n: int, start: int = 0) -> list[str]:
    return [f"v{i:07d}" for i in range(start, start + n)]


def _etag(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def put_objects(client: Any, keys: Sequence[str], threads: int = 16) -> dict[str, str]:
    """Tiny placeholder objects (their key is their body); returns key → ETag."""

    def put(key: str) -> tuple[str, str]:
        body = key.encode()
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
        return key, _etag(body)

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(put, keys))


class Materializations:
    """Materialization events with the data versions the stage kit writes, stored in batches."""

    def __init__(self, instance: dg.DagsterInstance, graph: Any) -> None:
        self.instance = instance
        self.graph = graph
        self.stored = 0
        self.order = self._topological()

    def _topological(self) -> list[dg.AssetKey]:
        done: list[dg.AssetKey] = []
        keys = sorted(self.graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
        while len(done) < len(keys):
            for key in keys:
                if key not in done and all(p in done for p in self.graph.get(key).parent_keys):
                    done.append(key)
        return done

    def _event(self, key: dg.AssetKey, pk: str, version: Version) -> Any:
        from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
        from dagster._core.events.log import EventLogEntry
        from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

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

    def chain(self, partitions_def: Any, pk: str, video: str, keys: dict[str, str]) -> list[Any]:
        """Events for every asset of one partitions definition at ``pk``; ``keys`` holds the cache
        keys of assets already written (``"asset|partition"``) and receives this partition's."""
        events = []
        for key in self.order:
            node = self.graph.get(key)
            if node.partitions_def != partitions_def:
                continue
            if not node.is_materializable:  # the edits source: observed, never materialised
                continue
            name = key.to_user_string()
            upstream = {}
            for parent in node.parent_keys:
                if not self.graph.get(parent).is_materializable:  # no edits, no feedback: none's version
                    upstream[parent.to_user_string()] = UNOBSERVED[parent.to_user_string()]
                    continue
                same = self.graph.get(parent).partitions_def == partitions_def
                upstream[parent.to_user_string()] = keys[f"{parent.to_user_string()}|{pk if same else video}"]
            lineage = lineage_digest(upstream) if upstream else keys[f"source|{video}"]
            cache_key = hashlib.sha256(f"{name}|{pk}|{lineage}".encode()).hexdigest()[:32]
            keys[f"{name}|{pk}"] = cache_key
            events.append(self._event(key, pk, Version(cache_key, lineage, str(node.code_version))))
        return events

    def store(self, events: list[Any]) -> None:
        for start in range(0, len(events), EVENT_BATCH):
            self.instance.event_log_storage.store_event_batch(events[start : start + EVENT_BATCH])
        self.stored += len(events)


PLAN_SECONDS: list[dict[str, float]] = []  # the catalog plan's own breakdown, one per tick


def _tick_schedules(defs: dg.Definitions, instance: dg.DagsterInstance, when: dt.datetime) -> dict[str, int]:
    """One catalog tick as the daemon runs it: both schedules at one scheduled time."""
    from dubbing_pipeline.orchestration import catalog

    real = catalog.plan_catalog

    def recorded(*args: Any, **kwargs: Any) -> catalog.CatalogPlan:
        plan = real(*args, **kwargs)
        PLAN_SECONDS.append(plan.seconds)
        return plan

    catalog.plan_catalog = recorded  # type: ignore[assignment]
    try:
        return _evaluate_both(defs, instance, when)
    finally:
        catalog.plan_catalog = real  # type: ignore[assignment]


def _evaluate_both(defs: dg.Definitions, instance: dg.DagsterInstance, when: dt.datetime) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in ("catalog_source_schedule", "catalog_dub_schedule"):
        context = dg.build_schedule_context(
            instance=instance, repository_def=defs.get_repository_def(), scheduled_execution_time=when
        )
        data = defs.resolve_schedule_def(name).evaluate_tick(context)
        counts[name] = len(data.run_requests or [])
    return counts


def _tick_sensor(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return defs.resolve_sensor_def("s3_drop_sensor")(context)


def _catalog(path: Path, vids: Sequence[str], langs: Sequence[str]) -> None:
    lines = [f"languages: [{', '.join(langs)}]", "videos:"]
    lines += [f"  - {{id: {v}, source: 's3://{BUCKET}/{PREFIX}{v}.mp4'}}" for v in vids]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_scale(n: int, *, new: int = 100) -> dict[str, Any]:
    """Build the synthetic catalog and measure; see the module's docstring."""
    from dubbing_pipeline.devservers import moto_server, postgres_instance_yaml, postgres_server

    with (
        postgres_server("dagster_scale") as pg,
        moto_server() as endpoint,
        tempfile.TemporaryDirectory() as tmp,
    ):
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(postgres_instance_yaml(pg), encoding="utf-8")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            return _measure(instance, endpoint, Path(tmp), n, new)


def _measure(instance: dg.DagsterInstance, endpoint: str, tmp: Path, n: int, new: int) -> dict[str, Any]:
    import boto3

    from dubbing_pipeline.definitions import build_definitions
    from dubbing_pipeline.orchestration.partitions import video_language, videos

    clock = Clock()
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket="pipeline")
    catalog_file = tmp / "catalog.yaml"
    base = replace(
        Settings(), storage_url="s3://pipeline/p", s3_endpoint_url=endpoint, s3_region="us-east-1",
        drop_bucket=BUCKET, drop_prefix=PREFIX, target_languages="es", catalog_url=str(catalog_file),
    )  # fmt: skip
    listing_defs = build_definitions(base)
    graph = listing_defs.resolve_asset_graph()
    vids = video_ids(n)

    with clock.measure("objects_put_s"):
        etags = put_objects(s3, [f"{PREFIX}{v}.mp4" for v in vids])
    with clock.measure("partitions_register_s"):
        instance.add_dynamic_partitions("videos", vids)
        instance.add_dynamic_partitions("languages", list(LANGUAGES))

    # the state before: every source half and 7 languages dubbed, from the objects as they are
    mats = Materializations(instance, graph)
    source_keys: dict[str, dict[str, str]] = {}

    def video_events(vid: str, langs: Sequence[str]) -> list[Any]:
        keys = dict(source_keys.get(vid) or {f"source|{vid}": source_lineage(etags[f"{PREFIX}{vid}.mp4"])})
        events = [] if vid in source_keys else mats.chain(videos, vid, vid, keys)
        source_keys[vid] = {k: v for k, v in keys.items() if "|" in k and k.split("|", 1)[1] == vid}
        for lang in langs:
            events += mats.chain(video_language, f"{lang}|{vid}", vid, keys)
        return events

    with clock.measure("materializations_store_s"):
        for start in range(0, n, 500):
            mats.store([e for vid in vids[start : start + 500] for e in video_events(vid, LANGUAGES[:-1])])

    # the catalog as it stands: one tick registers it (a one-off) and finds nothing to do
    _catalog(catalog_file, vids, LANGUAGES[:-1])
    when = iter(dt.datetime(2026, 1, 1, 3, tzinfo=dt.UTC) + dt.timedelta(days=d) for d in range(10))
    with clock.measure("catalog_first_tick_s"):
        first = _tick_schedules(listing_defs, instance, next(when))

    # listing mode: N objects handled before, `new` new ones
    listed, _ = _tick_cursor(s3)
    cursor = listed.dump()
    new_vids = video_ids(new, start=n)
    put_objects(s3, [f"{PREFIX}{v}.mp4" for v in new_vids])
    with clock.measure("sensor_list_tick_s"):
        list_result = _tick_sensor(listing_defs, instance, cursor)

    # queue mode: S3 event notifications to SQS, `new` more objects
    queue = sqs.create_queue(QueueName="drops")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    put_objects(s3, [f"{PREFIX}{v}.mp4" for v in video_ids(new, start=n + new)])
    queue_defs = build_definitions(replace(base, drop_queue_url=queue))
    with clock.measure("sensor_queue_tick_s"):
        queue_result = _tick_sensor(queue_defs, instance, None)

    # a new language for the whole catalog: exactly N dub requests
    _catalog(catalog_file, vids, LANGUAGES)
    with clock.measure("catalog_tick_s"):
        added = _tick_schedules(listing_defs, instance, next(when))
    # those dubs done: the next tick asks for nothing
    lang = LANGUAGES[-1]
    for start in range(0, n, 500):
        mats.store([e for vid in vids[start : start + 500] for e in video_events(vid, [lang])])
    with clock.measure("catalog_tick_noop_s"):
        noop = _tick_schedules(listing_defs, instance, next(when))

    counts = {
        "catalog_first_tick": first,
        "sensor_list_tick": len(list_result.run_requests or []),
        "sensor_queue_tick": len(queue_result.run_requests or []),
        "catalog_tick": added,
        "catalog_tick_noop": noop,
    }
    expected = {
        "catalog_first_tick": {"catalog_source_schedule": 0, "catalog_dub_schedule": 0},
        "sensor_list_tick": new,
        "sensor_queue_tick": new,
        "catalog_tick": {"catalog_source_schedule": 0, "catalog_dub_schedule": n},
        "catalog_tick_noop": {"catalog_source_schedule": 0, "catalog_dub_schedule": 0},
    }
    return {
        "ok": counts == expected,
        "n": n,
        "languages": len(LANGUAGES),
        "video_language_partitions": n * len(LANGUAGES),
        "new_objects": new,
        **{
            k: clock.seconds[k]
            for k in ("partitions_register_s", "sensor_list_tick_s", "sensor_queue_tick_s")
        },
        "catalog_tick_s": clock.seconds["catalog_tick_s"],
        "catalog_tick_noop_s": clock.seconds["catalog_tick_noop_s"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "requests": counts,
        "expected_requests": expected,
        "setup": {
            "objects_put_s": clock.seconds["objects_put_s"],
            "materializations_store_s": clock.seconds["materializations_store_s"],
            "materializations": mats.stored,
            "catalog_first_tick_s": clock.seconds["catalog_first_tick_s"],
        },
        "catalog_plan_seconds": {"catalog_tick": PLAN_SECONDS[-2], "catalog_tick_noop": PLAN_SECONDS[-1]},
        "cpu": numerics.cpu_model(),
        "cores": _cores(),
    }


def _tick_cursor(s3: Any) -> tuple[Any, int]:
    """The listing sensor's cursor after it has handled every object now in the bucket."""
    from dubbing_pipeline.orchestration.sensors import DropCursor, list_s3_drops, select_new

    drops = list_s3_drops(s3, BUCKET, PREFIX, (".mp4",))
    _, cursor = select_new(drops, DropCursor(), lookback=Settings().drop_lookback, limit=len(drops) + 1)
    return cursor, len(drops)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def summary(result: dict[str, Any]) -> str:
    """A few readable lines of a ``run_scale`` result."""
    lines = [
        f"catalog path at {result['n']:,} videos × {result['languages']} languages "
        f"({result['video_language_partitions']:,} video × language partitions) on {result['cpu']}, "
        f"{result['cores']} cores",
    ]
    for key in (
        "partitions_register_s",
        "sensor_list_tick_s",
        "sensor_queue_tick_s",
        "catalog_tick_s",
        "catalog_tick_noop_s",
    ):
        lines.append(f"  {key:<24} {result[key]:>9.2f}")
    lines.append(f"  {'peak_rss_mb':<24} {result['peak_rss_mb']:>9.1f}")
    lines.append("  requests as expected" if result["ok"] else f"  UNEXPECTED requests: {result['requests']}")
    return "\n".join(lines)
