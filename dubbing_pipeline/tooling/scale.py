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
import os
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

from dubbing_pipeline.common import numerics
from dubbing_pipeline.definitions import build_definitions
from dubbing_pipeline.orchestration import catalog
from dubbing_pipeline.orchestration.fresh import UNOBSERVED, source_lineage
from dubbing_pipeline.orchestration.kit import Version, lineage_digest
from dubbing_pipeline.orchestration.partitions import video_language, videos
from dubbing_pipeline.orchestration.sensors import DropCursor, list_s3_drops, select_new
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.tooling.devservers import moto_server, postgres_instance_yaml, postgres_server

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


def run_scale(n: int, *, new: int = 100) -> JsonObject:
    """Build the synthetic catalog and measure; see the module's docstring."""
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


@dataclass
class Bench:
    """The synthetic catalog being measured: the instance, moto's S3 and SQS, the settings and
    definitions of listing mode, the videos and the materializations written for them."""

    instance: dg.DagsterInstance
    endpoint: str
    s3: Any
    sqs: Any
    base: Settings
    catalog_file: Path
    defs: dg.Definitions
    mats: Materializations
    vids: list[str]
    clock: Clock = field(default_factory=Clock)
    etags: dict[str, str] = field(default_factory=dict)
    source_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    when: Iterator[dt.datetime] = field(
        default_factory=lambda: iter(
            dt.datetime(2026, 1, 1, 3, tzinfo=dt.UTC) + dt.timedelta(days=d) for d in range(10)
        )
    )

    def video_events(self, vid: str, langs: Sequence[str]) -> list[Any]:
        """The events of ``vid``'s source half (once) and of its dubs into ``langs``."""
        keys = dict(
            self.source_keys.get(vid) or {f"source|{vid}": source_lineage(self.etags[f"{PREFIX}{vid}.mp4"])}
        )
        events = [] if vid in self.source_keys else self.mats.chain(videos, vid, vid, keys)
        self.source_keys[vid] = {k: v for k, v in keys.items() if "|" in k and k.split("|", 1)[1] == vid}
        for lang in langs:
            events += self.mats.chain(video_language, f"{lang}|{vid}", vid, keys)
        return events

    def store_dubs(self, langs: Sequence[str]) -> None:
        for start in range(0, len(self.vids), 500):
            self.mats.store(
                [e for vid in self.vids[start : start + 500] for e in self.video_events(vid, langs)]
            )

    def tick(self) -> dict[str, int]:
        return _tick_schedules(self.defs, self.instance, next(self.when))


def _setup(instance: dg.DagsterInstance, endpoint: str, tmp: Path, n: int) -> Bench:
    """moto's buckets, the settings of listing mode and their definitions; nothing stored yet."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket="pipeline")
    catalog_file = tmp / "catalog.yaml"
    base = replace(
        Settings(), storage_url="s3://pipeline/p", s3_endpoint_url=endpoint, s3_region="us-east-1",
        drop_bucket=BUCKET, drop_prefix=PREFIX, target_languages="es", catalog_url=str(catalog_file),
    )  # fmt: skip
    defs = build_definitions(base)
    mats = Materializations(instance, defs.resolve_asset_graph())
    return Bench(instance, endpoint, s3, sqs, base, catalog_file, defs, mats, video_ids(n))


def _measure(instance: dg.DagsterInstance, endpoint: str, tmp: Path, n: int, new: int) -> JsonObject:
    bench = _setup(instance, endpoint, tmp, n)
    clock = bench.clock
    with clock.measure("objects_put_s"):
        bench.etags = put_objects(bench.s3, [f"{PREFIX}{v}.mp4" for v in bench.vids])
    with clock.measure("partitions_register_s"):
        instance.add_dynamic_partitions("videos", bench.vids)
        instance.add_dynamic_partitions("languages", list(LANGUAGES))
    # the state before: every source half and 7 languages dubbed, from the objects as they are
    with clock.measure("materializations_store_s"):
        bench.store_dubs(LANGUAGES[:-1])
    # the catalog as it stands: one tick registers it (a one-off) and finds nothing to do
    _catalog(bench.catalog_file, bench.vids, LANGUAGES[:-1])
    with clock.measure("catalog_first_tick_s"):
        first = bench.tick()
    listed, queued = _sensor_ticks(bench, n, new)
    # a new language for the whole catalog: exactly N dub requests
    _catalog(bench.catalog_file, bench.vids, LANGUAGES)
    with clock.measure("catalog_tick_s"):
        added = bench.tick()
    bench.store_dubs([LANGUAGES[-1]])  # those dubs done: the next tick asks for nothing
    with clock.measure("catalog_tick_noop_s"):
        noop = bench.tick()
    counts = {
        "catalog_first_tick": first,
        "sensor_list_tick": listed,
        "sensor_queue_tick": queued,
        "catalog_tick": added,
        "catalog_tick_noop": noop,
    }
    return _result(bench, n, new, counts)


def _sensor_ticks(bench: Bench, n: int, new: int) -> tuple[int, int]:
    """One drop-sensor tick in listing mode, then one in queue mode, each with ``new`` new
    objects; the runs each requested."""
    # listing mode: N objects handled before, `new` new ones
    cursor = _tick_cursor(bench.s3)[0].dump()
    put_objects(bench.s3, [f"{PREFIX}{v}.mp4" for v in video_ids(new, start=n)])
    with bench.clock.measure("sensor_list_tick_s"):
        listed = _tick_sensor(bench.defs, bench.instance, cursor)
    # queue mode: S3 event notifications to SQS, `new` more objects
    queue = bench.sqs.create_queue(QueueName="drops")["QueueUrl"]
    attributes = bench.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    bench.s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": attributes["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    put_objects(bench.s3, [f"{PREFIX}{v}.mp4" for v in video_ids(new, start=n + new)])
    queue_defs = build_definitions(replace(bench.base, drop_queue_url=queue))
    with bench.clock.measure("sensor_queue_tick_s"):
        queued = _tick_sensor(queue_defs, bench.instance, None)
    return len(listed.run_requests or []), len(queued.run_requests or [])


def _result(bench: Bench, n: int, new: int, counts: JsonObject) -> JsonObject:
    seconds = bench.clock.seconds
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
        **{k: seconds[k] for k in ("partitions_register_s", "sensor_list_tick_s", "sensor_queue_tick_s")},
        "catalog_tick_s": seconds["catalog_tick_s"],
        "catalog_tick_noop_s": seconds["catalog_tick_noop_s"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "requests": counts,
        "expected_requests": expected,
        "setup": {
            "objects_put_s": seconds["objects_put_s"],
            "materializations_store_s": seconds["materializations_store_s"],
            "materializations": bench.mats.stored,
            "catalog_first_tick_s": seconds["catalog_first_tick_s"],
        },
        "catalog_plan_seconds": {"catalog_tick": PLAN_SECONDS[-2], "catalog_tick_noop": PLAN_SECONDS[-1]},
        "cpu": numerics.cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
    }


def _tick_cursor(s3: Any) -> tuple[DropCursor, int]:
    """The listing sensor's cursor after it has handled every object now in the bucket."""
    drops = list_s3_drops(s3, BUCKET, PREFIX, (".mp4",))
    _, cursor = select_new(drops, DropCursor(), lookback=Settings().drop_lookback, limit=len(drops) + 1)
    return cursor, len(drops)


def summary(result: JsonObject) -> str:
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
