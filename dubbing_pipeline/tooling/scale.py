"""``dubbing-pipeline bench --scale N``: the catalog path at N videos × 8 languages, without media.

Everything is real except the media: a real PostgreSQL instance (started here), moto's S3 and
SQS in a child process, the project's own sensors and catalog ticks evaluated as the daemon
evaluates them. The objects are tiny placeholders and the materializations carry exactly the data
versions the stage kit writes (no stage runs), so what is measured is the orchestration.

The setup is bulk work (``setup_s``, at most 20 minutes for 100,000 videos on 2 cores): the source
objects and the catalog's registration are seeded into moto before it serves (``scale_seed``), the
materializations are copied into Dagster's event log tables with the rows its own storage makes of
them (``scale_events``; ``bulk=False``: ``store_event_batch``, the slow path). Every measured tick
goes through Dagster's public APIs (``scale_tick``).

Measured, in order (seconds of wall time unless named otherwise):

* ``partitions_register_s``: N videos and 8 languages added (8·N ``video × language`` partitions);
* ``sensor_list_tick_s``: the longest listing-mode tick over N objects of which ``new`` are new
  (a tick lists a slice within ``DUBBING_DROP_LIST_BUDGET_S``: ``sensor_list_lap_ticks`` ticks
  until the listing's lap found them, ``sensor_list_lap_s`` their seconds);
* ``sensor_queue_tick_s``: one queue-mode tick with ``new`` S3 event notifications waiting;
* ``catalog_tick_one_change_s``: the catalog tick after one video's source changed (the catalog
  names a new object for it): one source-half request;
* ``catalog_tick_s``: the catalog tick after a new language is added to every video: exactly N dub
  requests and nothing else (a tick its deadline stops is followed by up to 4 more: ``split_ticks``
  says how many it took, ``split_total_s`` their seconds; the requests are all of theirs);
* ``catalog_tick_after_dubs_s``: the tick that reads those N dubs' materialisations: no request
  (an incremental tick reads them a page a tick: ticked until one reads none, ``split_ticks``);
* ``catalog_tick_noop_s``: the tick after that, nothing changed: no request;
* ``catalog_sweep_s``: one full reconciliation of the catalog (today every tick is one: the no-op
  tick's seconds; a plan that reports ``swept`` partitions: the ticks until the sweep covered all);
* ``catalog_parse_s``: the catalog file of N entries parsed as JSON and as YAML (the bench's file is
  JSON; a tick parses the file again whenever it changed);
* ``events_per_tick``: the events the no-op tick read (``events_read``: every catalog tick's);
* ``peak_rss_mb``: the peak resident memory of this process during the catalog ticks (moto and
  PostgreSQL not included; ``process_peak_rss_mb``: over the whole run, setup included);
* with ``ui=True``: ``ui_asset_page_s`` and ``ui_partitions_page_s`` (``scale_ui``).
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import dagster as dg

from dubbing_pipeline.common import numerics
from dubbing_pipeline.definitions import build_definitions
from dubbing_pipeline.orchestration.catalog import parse_catalog
from dubbing_pipeline.orchestration.sensors import DropCursor, list_s3_drops, select_new
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.tooling import scale_ui
from dubbing_pipeline.tooling.devservers import PostgresServer, postgres_instance_yaml, postgres_server
from dubbing_pipeline.tooling.scale_events import (
    BulkStore,
    Chunk,
    Materializations,
    chunk_events,
    indexes_rebuilt,
    store_batched,
    store_videos,
    worker_pool,
)
from dubbing_pipeline.tooling.scale_seed import etag, registry_seed, seeded_moto, source_seed
from dubbing_pipeline.tooling.scale_tick import CatalogTicker, TickResult

LANGUAGES = ("es", "fr", "de", "it", "pt", "ja", "zh", "ko")  # the last one is added during the bench
BUCKET, PREFIX = "catalog-media", "videos/"
STORAGE_URL = "s3://pipeline/p"
CHUNK = 500  # videos per chunk of events written


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


def source_key(vid: str) -> str:
    return f"{PREFIX}{vid}.mp4"


def put_objects(client: Any, keys: Sequence[str], threads: int = 16, salt: str = "") -> dict[str, str]:
    """Tiny placeholder objects (their key, plus ``salt``, is their body); returns key → ETag."""

    def put(key: str) -> tuple[str, str]:
        body = (key + salt).encode()
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
        return key, etag(body)

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(put, keys))


def catalog_text(
    vids: Sequence[str], langs: Sequence[str], moved: dict[str, str] | None = None, *, yaml: bool = False
) -> str:
    """The catalog file: every video at its source object (``moved``: video → another key). JSON,
    as docs/production.md advises for a large catalog (``yaml``: the same catalog in YAML)."""
    moved = moved or {}
    if yaml:
        lines = [f"languages: [{', '.join(langs)}]", "videos:"]
        lines += [f"  - {{id: {v}, source: 's3://{BUCKET}/{moved.get(v, source_key(v))}'}}" for v in vids]
        return "\n".join(lines) + "\n"
    entries = [{"id": v, "source": f"s3://{BUCKET}/{moved.get(v, source_key(v))}"} for v in vids]
    return json.dumps({"languages": list(langs), "videos": entries}, indent=1) + "\n"


def parse_seconds(vids: Sequence[str]) -> dict[str, float]:
    """``catalog_parse_s``: seconds to parse the catalog of ``vids`` as JSON and as YAML (a tick
    parses the file again whenever it changed)."""
    out = {}
    for form in ("json", "yaml"):
        text = catalog_text(vids, LANGUAGES, yaml=form == "yaml")
        start = time.perf_counter()
        parse_catalog(text)
        out[form] = round(time.perf_counter() - start, 3)
    return out


@dataclass
class Bench:
    """The synthetic catalog being measured: the instance, moto's S3 and SQS, the settings and
    definitions of listing mode, the videos and the materializations written for them."""

    instance: dg.DagsterInstance
    s3: Any
    sqs: Any
    base: Settings
    catalog_file: Path
    defs: dg.Definitions
    mats: Materializations
    vids: list[str]
    etags: dict[str, str]
    bulk: bool = True
    clock: Clock = field(default_factory=Clock)
    stored: int = 0
    source_keys: dict[str, dict[str, str]] = field(default_factory=dict)  # the slow path's
    store: BulkStore | None = None
    pool: Executor | None = None
    ticker: CatalogTicker | None = None
    ticks: dict[str, TickResult] = field(default_factory=dict)
    parse_seconds: dict[str, float] = field(default_factory=dict)  # the catalog parsed as JSON / YAML

    def store_dubs(self, langs: Sequence[str]) -> None:
        """Every video's events for ``langs`` (and its source half, the first time) stored."""
        by_video = {v: self.etags[source_key(v)] for v in self.vids}
        if self.bulk:
            assert self.store is not None and self.pool is not None
            self.stored += store_videos(self.store, self.pool, self.vids, langs, by_video, size=CHUNK)
            return
        for start in range(0, len(self.vids), CHUNK):  # the slow path: store_event_batch
            vids = self.vids[start : start + CHUNK]
            known = {v: self.source_keys[v] for v in vids if v in self.source_keys}
            events, sources = chunk_events(self.mats, Chunk(vids, list(langs), by_video, known, []))
            self.source_keys.update(sources)
            store_batched(self.instance, events)
            self.stored += len(events)

    def tick(self, name: str, most: int = 1, drain: bool = False) -> dict[str, int]:
        """A catalog tick kept as ``name`` (``{name}_s``); a tick stopped by its deadline (or, with
        ``drain``, an incremental tick that read events: it reads a page a tick) is followed by
        more, up to ``most`` in all (``{name}_ticks``, ``{name}_total_s``). The requests of them
        all, by job."""
        assert self.ticker is not None
        result = self.ticks[name] = self.ticker.tick()
        self.clock.seconds[f"{name}_s"] = result.seconds
        requests, ticks, total = dict(result.requests), 1, result.seconds
        while (result.deadline_hit or (drain and result.incremental and result.events)) and ticks < most:
            result = self.ticker.tick()
            ticks, total = ticks + 1, total + result.seconds
            for job, count in result.requests.items():
                requests[job] = requests.get(job, 0) + count
        self.clock.seconds[f"{name}_ticks"], self.clock.seconds[f"{name}_total_s"] = ticks, round(total, 3)
        return requests


def run_scale(
    n: int, *, new: int = 100, bulk: bool = True, ui: bool = False, workers: int | None = None
) -> JsonObject:
    """Build the synthetic catalog and measure; see the module's docstring. ``workers``: processes
    that build the events (default: one a core; 0: in this process)."""
    started = time.perf_counter()
    vids = video_ids(n)
    with postgres_server("dagster_scale") as pg, tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        seed, etags = _seed(work, vids)
        endpoint = stack.enter_context(seeded_moto(seed, work))
        del seed
        home = _home(work, pg)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            bench = _setup(instance, endpoint, work, vids, etags, bulk)
            if bulk:
                cores = len(os.sched_getaffinity(0))
                bench.pool = stack.enter_context(worker_pool(instance, cores if workers is None else workers))
                bench.store = BulkStore(instance, bench.mats)
            bench.clock.seconds["servers_start_s"] = round(time.perf_counter() - started, 3)
            result = _measure(bench, n, new)
            if ui:
                result.update(scale_ui.measure_ui(home, n, len(LANGUAGES)))
            return result


def _seed(work: Path, vids: Sequence[str]) -> tuple[list[tuple[str, str, bytes]], dict[str, str]]:
    """moto's seed: the source objects and the registration of the catalog (7 languages) that
    names them; the catalog file is written as it stands."""
    sources, etags = source_seed(BUCKET, [source_key(v) for v in vids])
    text = catalog_text(vids, LANGUAGES[:-1])
    (work / "catalog.yaml").write_text(text, encoding="utf-8")
    fingerprints = {f"s3://{BUCKET}/{key}": tag for key, tag in etags.items()}
    return sources + registry_seed(text, STORAGE_URL, fingerprints), etags


def _home(work: Path, pg: PostgresServer) -> Path:
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(postgres_instance_yaml(pg), encoding="utf-8")
    return home


def _setup(
    instance: dg.DagsterInstance,
    endpoint: str,
    work: Path,
    vids: list[str],
    etags: dict[str, str],
    bulk: bool,
) -> Bench:
    """moto's clients, the settings of listing mode and their definitions; nothing stored yet."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    catalog_file = work / "catalog.yaml"
    base = replace(
        Settings(), storage_url=STORAGE_URL, s3_endpoint_url=endpoint, s3_region="us-east-1",
        drop_bucket=BUCKET, drop_prefix=PREFIX, target_languages="es", catalog_url=str(catalog_file),
    )  # fmt: skip
    defs = build_definitions(base)
    mats = Materializations(defs.resolve_asset_graph())
    bench = Bench(instance, s3, sqs, base, catalog_file, defs, mats, vids, etags, bulk=bulk)
    bench.ticker = CatalogTicker(defs, instance)
    return bench


def _prepare(bench: Bench) -> dict[str, int]:
    """The state before: partitions, every source half and 7 languages dubbed from the objects
    as they are; the first tick (the catalog already registered by the seed) finds nothing to do."""
    clock, instance = bench.clock, bench.instance
    with clock.measure("partitions_register_s"):
        instance.add_dynamic_partitions("videos", bench.vids)
        instance.add_dynamic_partitions("languages", list(LANGUAGES))
    with clock.measure("materializations_store_s"):
        if bench.bulk:
            with indexes_rebuilt(instance):
                bench.store_dubs(LANGUAGES[:-1])
        else:
            bench.store_dubs(LANGUAGES[:-1])
    return bench.tick("catalog_first_tick", most=1000)  # a first tick plans everything, maybe in parts


SPLIT_TICKS = 5  # a tick the deadline splits must have asked for everything within this many
DRAIN_TICKS = 50  # ticks that may read the events of N dubs before the no-op tick is measured


def _measure(bench: Bench, n: int, new: int) -> JsonObject:
    counts: JsonObject = {"catalog_first_tick": _prepare(bench)}
    counts["sensor_list_tick"], counts["sensor_queue_tick"] = _sensor_ticks(bench, n, new)
    counts["catalog_tick_one_change"] = _one_change_tick(bench)
    # a new language for the whole catalog (and the moved video back): exactly N dub requests
    bench.catalog_file.write_text(catalog_text(bench.vids, LANGUAGES), encoding="utf-8")
    counts["catalog_tick"] = bench.tick("catalog_tick", most=SPLIT_TICKS)
    with bench.clock.measure("materializations_store_last_s"):
        bench.store_dubs([LANGUAGES[-1]])  # those dubs done: the next tick asks for nothing
    # the ticks that read those N·5 materialisations (an incremental tick replans their videos,
    # a page of events a tick): until one reads none
    counts["catalog_tick_after_dubs"] = bench.tick("catalog_tick_after_dubs", most=DRAIN_TICKS, drain=True)
    counts["catalog_tick_noop"] = bench.tick("catalog_tick_noop")
    _sweep(bench)
    bench.parse_seconds = parse_seconds(bench.vids)
    return _result(bench, n, new, counts)


def _one_change_tick(bench: Bench) -> dict[str, int]:
    """One video's source changed: the catalog names a new object for it (a new URI and ETag,
    which an incremental tick sees as a change of the catalog, and a full tick as a new
    fingerprint). The tick asks for its source half and nothing else."""
    vid = bench.vids[len(bench.vids) // 2]
    moved = f"{PREFIX}{vid}-v2.mp4"
    put_objects(bench.s3, [moved])
    bench.catalog_file.write_text(catalog_text(bench.vids, LANGUAGES[:-1], {vid: moved}), encoding="utf-8")
    return bench.tick("catalog_tick_one_change", most=SPLIT_TICKS)


def _sweep(bench: Bench) -> None:
    """``catalog_sweep_s``: one full reconciliation of the catalog. A plan that does not report
    ``swept`` makes every tick one (the no-op tick's seconds); one that does is ticked until its
    sweep has judged every partition (N videos and 8·N pairs), and those ticks' seconds summed."""
    noop = bench.ticks["catalog_tick_noop"]
    seconds, ticks, swept = noop.seconds, 1, noop.swept
    partitions = len(bench.vids) * (1 + len(LANGUAGES))
    while swept is not None and swept < partitions and ticks < 1000 and bench.ticker is not None:
        result = bench.ticker.tick()
        if not result.swept:  # no progress: no sweep to wait for
            break
        swept, seconds, ticks = swept + result.swept, seconds + result.seconds, ticks + 1
    bench.clock.seconds["catalog_sweep_s"] = round(seconds, 3)
    bench.clock.seconds["catalog_sweep_ticks"] = ticks


def _tick_sensor(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return defs.resolve_sensor_def("s3_drop_sensor")(context)


LAP_TICKS = 100  # listing-mode ticks a lap of the bucket may take in the bench


def _sensor_ticks(bench: Bench, n: int, new: int) -> tuple[int, int]:
    """A lap of listing-mode ticks, then one queue-mode tick, each with ``new`` new objects; the
    runs each requested."""
    listed = _listing_lap(bench, n, new)
    # queue mode: S3 event notifications to SQS, `new` more objects
    queue = bench.sqs.create_queue(QueueName="drops")["QueueUrl"]
    attributes = bench.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    bench.s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": attributes["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    put_objects(bench.s3, [source_key(v) for v in video_ids(new, start=n + new)])
    queue_defs = build_definitions(replace(bench.base, drop_queue_url=queue))
    with bench.clock.measure("sensor_queue_tick_s"):
        queued = _tick_sensor(queue_defs, bench.instance, None)
    return listed, len(queued.run_requests or [])


def _listing_lap(bench: Bench, n: int, new: int) -> int:
    """Listing mode: N objects handled before, ``new`` new ones; ticked until the lap is over (the
    runs requested, summed)."""
    cursor: str | None = _tick_cursor(bench.s3)[0].dump()
    put_objects(bench.s3, [source_key(v) for v in video_ids(new, start=n)])
    listed, seconds = 0, []
    for _ in range(LAP_TICKS):
        with bench.clock.measure("sensor_list_tick_s"):
            tick = _tick_sensor(bench.defs, bench.instance, cursor)
        seconds.append(bench.clock.seconds["sensor_list_tick_s"])
        listed, cursor = listed + len(tick.run_requests or []), tick.cursor
        if not DropCursor.parse(cursor).after:
            break
    clock = bench.clock.seconds
    clock["sensor_list_tick_s"], clock["sensor_list_lap_ticks"] = max(seconds), len(seconds)
    clock["sensor_list_lap_s"] = round(sum(seconds), 3)
    return listed


def expected_requests(n: int, new: int) -> JsonObject:
    """What each tick must ask for: requests by job (the catalog's) or runs (the drop sensor's)."""
    return {
        "catalog_first_tick": {},
        "sensor_list_tick": new,
        "sensor_queue_tick": new,
        "catalog_tick_one_change": {"source_half": 1},
        "catalog_tick": {"dub": n},
        "catalog_tick_after_dubs": {},
        "catalog_tick_noop": {},
    }


SETUP = (  # what ``setup_s`` sums: everything but the measured ticks (the partitions are both)
    "servers_start_s",  # PostgreSQL, the seed built, moto seeded and serving, the instance
    "partitions_register_s",
    "materializations_store_s",
    "catalog_first_tick_s",
    "materializations_store_last_s",
)


def _result(bench: Bench, n: int, new: int, counts: JsonObject) -> JsonObject:
    seconds = bench.clock.seconds
    ticks = ("catalog_tick_one_change", "catalog_tick", "catalog_tick_after_dubs", "catalog_tick_noop")
    measured = (
        "partitions_register_s", "sensor_list_tick_s", "sensor_queue_tick_s", "catalog_tick_one_change_s",
        "catalog_tick_s", "catalog_tick_noop_s", "catalog_sweep_s",
    )  # fmt: skip
    expected = expected_requests(n, new)
    return {
        "ok": counts == expected,
        "n": n,
        "languages": len(LANGUAGES),
        "video_language_partitions": n * len(LANGUAGES),
        "new_objects": new,
        **{k: seconds[k] for k in measured},
        "catalog_sweep_ticks": int(seconds["catalog_sweep_ticks"]),
        "sensor_list_lap_ticks": int(seconds["sensor_list_lap_ticks"]),
        "sensor_list_lap_s": seconds["sensor_list_lap_s"],
        "catalog_tick_after_dubs_s": seconds["catalog_tick_after_dubs_s"],
        "split_ticks": {t: int(seconds[f"{t}_ticks"]) for t in ("catalog_first_tick", *ticks)},
        "split_total_s": {t: seconds[f"{t}_total_s"] for t in ("catalog_first_tick", *ticks)},
        "events_per_tick": bench.ticks["catalog_tick_noop"].events,
        "catalog_parse_s": bench.parse_seconds,
        "events_read": {t: bench.ticks[t].events for t in ticks},
        "peak_rss_mb": max(bench.ticks[t].peak_rss_mb for t in ticks),
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "setup_s": round(sum(seconds[k] for k in SETUP), 3),
        "requests": counts,
        "expected_requests": expected,
        "setup": {
            **{k: seconds[k] for k in SETUP},
            "bulk": bench.bulk,
            "materializations": bench.stored,
        },
        "catalog_plan_seconds": {t: bench.ticks[t].plan_seconds for t in ticks},
        "deadline_hit": {t: bench.ticks[t].deadline_hit for t in ticks},
        "cpu": numerics.cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
    }


def _tick_cursor(s3: Any) -> tuple[DropCursor, int]:
    """The listing sensor's cursor after it has handled every object now in the bucket."""
    drops = list_s3_drops(s3, BUCKET, PREFIX, (".mp4",))
    _, cursor = select_new(drops, DropCursor(), lookback=Settings().drop_lookback, limit=len(drops) + 1)
    return cursor, len(drops)


SUMMARY_KEYS = (
    "setup_s",
    "partitions_register_s",
    "sensor_list_tick_s",
    "sensor_queue_tick_s",
    "catalog_tick_one_change_s",
    "catalog_tick_s",
    "catalog_tick_noop_s",
    "catalog_sweep_s",
    "ui_asset_page_s",
    "ui_partitions_page_s",
)


def summary(result: JsonObject) -> str:
    """A few readable lines of a ``run_scale`` result."""
    lines = [
        f"catalog path at {result['n']:,} videos × {result['languages']} languages "
        f"({result['video_language_partitions']:,} video × language partitions) on {result['cpu']}, "
        f"{result['cores']} cores",
    ]
    for key in SUMMARY_KEYS:
        if isinstance(result.get(key), int | float):
            lines.append(f"  {key:<26} {result[key]:>9.2f}")
    if result.get("events_per_tick") is not None:
        lines.append(f"  {'events_per_tick':<26} {result['events_per_tick']:>9,}")
    lines.append(f"  {'peak_rss_mb':<26} {result['peak_rss_mb']:>9.1f}")
    lines.append("  requests as expected" if result["ok"] else f"  UNEXPECTED requests: {result['requests']}")
    return "\n".join(lines)
