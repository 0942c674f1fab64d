"""Catalog backfills: a file lists videos and languages; two schedules keep every dub up to date.

The catalog (YAML or JSON, a local path, ``file://`` or ``s3://`` URL in ``DUBBING_CATALOG_URL``)::

    languages: [es, fr]          # every video, unless it lists its own
    videos:
      - source: s3://media/talks/intro.mp4
      - id: keynote              # optional; default: from the source's file name
        source: s3://media/talks/keynote-2024.mov
        languages: [es, fr, ja]

Adding German to the whole catalog is one edit: ``languages: [es, fr, de]``.

On each tick (``DUBBING_CATALOG_CRON``, default ``@daily``) both schedules compute one plan:

* ``catalog_source_schedule`` (job ``source_half``): one run per video whose source half is missing or
  stale, or whose source object changed (S3 ETag; size+mtime for local files) since the source half
  was made. Tagged with the video's languages, so ``dub_after_source_half`` dubs it afterwards.
* ``catalog_dub_schedule`` (job ``dub``): one run per ``video × language`` partition whose source
  half is fresh but whose target half is missing or stale (a new language, a changed code version).

Nothing is requested for partitions that are up to date or already have a run queued or in
progress. Staleness is read from the instance with public API only: the latest materialization of
each asset partition (``fetch_materializations``), its ``dagster/code_version`` against the asset's
current code version, and for each parent the event it consumed (``dagster/input_event_pointer``)
against the parent's latest event, compared by data version (``dagster/data_version``): a parent that
was re-materialised with the same data (a cache hit) does not make its children stale.

Run keys are stable: the partition, the source fingerprint (or data version) and a digest of all
code versions. There is no public API to launch an asset backfill from a schedule (dagster #13852),
hence one ``RunRequest`` per partition.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from dubbing_pipeline.errors import BadInputError, ConfigurationError
from dubbing_pipeline.hashing import canonical_json, sha256_bytes
from dubbing_pipeline.ids import sanitize_id, video_id_from_name
from dubbing_pipeline.orchestration.partitions import video_language, video_language_key, videos
from dubbing_pipeline.orchestration.registry import register_video, registry_key
from dubbing_pipeline.orchestration.sensors import (
    FINGERPRINT_TAG,
    LANGUAGES,
    LANGUAGES_TAG,
    PARTITION_TAG,
    SOURCE_URI_TAG,
    TRIGGER_TAG,
    VIDEOS,
    parse_languages,
    s3_client,
)
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage, parse_uri

CODE_VERSION_TAG = "dagster/code_version"
DATA_VERSION_TAG = "dagster/data_version"
INPUT_POINTER_PREFIX = "dagster/input_event_pointer/"
IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
FRESH, MISSING, STALE = "fresh", "missing", "stale"


# --- the catalog file ------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogVideo:
    video_id: str
    source_uri: str
    languages: tuple[str, ...]


def parse_catalog(text: str) -> list[CatalogVideo]:
    """YAML or JSON (JSON is YAML) → videos with their target languages."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not isinstance(data.get("videos", []), list):
        raise ConfigurationError("a catalog is a mapping with a 'videos' list")
    default = parse_languages(data.get("languages") or [])
    out: list[CatalogVideo] = []
    seen: set[str] = set()
    for entry in data.get("videos") or []:
        if isinstance(entry, str):
            entry = {"source": entry}
        source = str(entry.get("source") or "")
        if not source:
            raise ConfigurationError("every catalog video needs a 'source'")
        vid = sanitize_id(str(entry["id"])) if entry.get("id") else video_id_from_name(parse_uri(source)[2])
        if vid in seen:
            raise ConfigurationError(f"catalog video id {vid!r} appears twice")
        seen.add(vid)
        langs = parse_languages(entry["languages"]) if entry.get("languages") else default
        out.append(CatalogVideo(vid, source, tuple(langs)))
    return out


def read_text(url: str, settings: Settings) -> str:
    scheme, netloc, path = parse_uri(url)
    if scheme == "s3":
        body = s3_client(settings).get_object(Bucket=netloc, Key=path)["Body"].read()
        return str(body.decode("utf-8"))
    if scheme == "file":
        return Path(path).read_text(encoding="utf-8")
    raise ConfigurationError(f"unsupported catalog URL scheme {scheme!r}")


def source_fingerprint(uri: str, settings: Settings) -> str | None:
    """A cheap version of a source: S3 ETag, or size+mtime of a local file; None if absent."""
    scheme, netloc, path = parse_uri(uri)
    if scheme == "s3":
        from botocore.exceptions import ClientError

        try:
            head = s3_client(settings).head_object(Bucket=netloc, Key=path)
        except ClientError:
            return None
        return str(head["ETag"]).strip('"')
    if scheme == "file":
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return f"{stat.st_size}-{stat.st_mtime_ns}"
    raise BadInputError(f"unsupported source URI scheme {scheme!r}")


# --- freshness from the instance -------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    state: str
    reason: str = ""


class Freshness:
    """Missing / stale / fresh per asset partition, from materialization records (public API)."""

    def __init__(self, instance: dg.DagsterInstance, graph: Any) -> None:
        self.instance = instance
        self.graph = graph
        self._latest: dict[tuple[dg.AssetKey, str], Any] = {}
        self._status: dict[tuple[dg.AssetKey, str], Status] = {}

    def prefetch(self, key: dg.AssetKey, partition_keys: Sequence[str], chunk: int = 500) -> None:
        """Latest record of many partitions of one asset in a few queries."""
        todo = [pk for pk in partition_keys if (key, pk) not in self._latest]
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            for pk in part:
                self._latest[(key, pk)] = None
            wanted, cursor = set(part), None
            while wanted:
                result = self.instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=part),
                    limit=1000,
                    cursor=cursor,
                    ascending=False,
                )
                for record in result.records:
                    event = record.asset_materialization
                    found = event.partition if event is not None else None
                    if found is not None and found in wanted:
                        self._latest[(key, found)] = record
                        wanted.discard(found)
                if not result.has_more:
                    break
                cursor = result.cursor

    def latest(self, key: dg.AssetKey, pk: str) -> Any:
        if (key, pk) not in self._latest:
            self.prefetch(key, [pk])
        return self._latest[(key, pk)]

    def _record_by_id(self, key: dg.AssetKey, storage_id: int) -> Any:
        result = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, storage_ids=[storage_id]), limit=1
        )
        return result.records[0] if result.records else None

    def parent_partition(self, parent: dg.AssetKey, child: dg.AssetKey, pk: str) -> str:
        parent_def = self.graph.get(parent).partitions_def
        child_def = self.graph.get(child).partitions_def
        if parent_def == child_def:
            return pk
        if isinstance(parent_def, dg.DynamicPartitionsDefinition) and parent_def.name == videos.name:
            return pk.split("|", 1)[1] if "|" in pk else pk
        raise ConfigurationError(f"no partition mapping from {child.to_user_string()} to {parent}")

    def status(self, key: dg.AssetKey, pk: str) -> Status:
        memo = self._status.get((key, pk))
        if memo is None:
            memo = self._status[(key, pk)] = self._compute(key, pk)
        return memo

    def _compute(self, key: dg.AssetKey, pk: str) -> Status:
        record = self.latest(key, pk)
        name = key.to_user_string()
        if record is None:
            return Status(MISSING, f"{name} never materialised")
        node = self.graph.get(key)
        tags = record.asset_materialization.tags or {}
        if node.code_version and tags.get(CODE_VERSION_TAG) != node.code_version:
            return Status(STALE, f"{name}: code version {tags.get(CODE_VERSION_TAG)} → {node.code_version}")
        for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string()):
            ppk = self.parent_partition(parent, key, pk)
            upstream = self.status(parent, ppk)
            if upstream.state != FRESH:
                return Status(STALE, f"{name}: upstream {upstream.reason}")
            current = self.latest(parent, ppk)
            pointer = tags.get(INPUT_POINTER_PREFIX + parent.to_user_string())
            if pointer is None:
                if current.timestamp > record.timestamp:
                    return Status(STALE, f"{name}: {parent.to_user_string()} is newer")
                continue
            if int(pointer) == current.storage_id:
                continue
            used = self._record_by_id(parent, int(pointer))
            used_version = (used.asset_materialization.tags or {}).get(DATA_VERSION_TAG) if used else None
            if used_version != (current.asset_materialization.tags or {}).get(DATA_VERSION_TAG):
                return Status(STALE, f"{name}: {parent.to_user_string()} data changed")
        return Status(FRESH)

    def data_version(self, key: dg.AssetKey, pk: str) -> str:
        record = self.latest(key, pk)
        return str((record.asset_materialization.tags or {}).get(DATA_VERSION_TAG, "")) if record else ""


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class CatalogPlan:
    source_requests: list[dg.RunRequest] = field(default_factory=list)
    dub_requests: list[dg.RunRequest] = field(default_factory=list)
    statuses: dict[str, Status] = field(default_factory=dict)  # "video" / "lang|video" → status
    skipped: dict[str, str] = field(default_factory=dict)


def _in_flight(instance: dg.DagsterInstance, job_names: Iterable[str]) -> set[str]:
    busy: set[str] = set()
    for job_name in job_names:
        for record in instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT)):
            pk = record.dagster_run.tags.get(PARTITION_TAG)
            if pk:
                busy.add(pk)
    return busy


def source_changed(
    instance: dg.DagsterInstance, record: Any, registered: dict[str, Any], fingerprint: str
) -> str | None:
    """Why the latest source materialization is not from the current source object, or None.

    A run launched by a sensor or schedule carries the fingerprint it was launched for; for any
    other materialization, it must be newer than the moment the current fingerprint was registered.
    """
    if record is None:
        return None
    if record.run_id:
        run = instance.get_run_by_id(record.run_id)
        if run is not None and FINGERPRINT_TAG in run.tags:
            made = run.tags[FINGERPRINT_TAG]
            return None if made == fingerprint else f"source changed ({made} → {fingerprint})"
    since = registered.get("fingerprint_since")
    if since is None or record.timestamp < float(since):
        return f"source changed (now {fingerprint})"
    return None


def plan_catalog(
    instance: dg.DagsterInstance,
    graph: Any,
    catalog: Sequence[CatalogVideo],
    storage: MediaStorage,
    fingerprint: Callable[[str], str | None],
    *,
    source_job: str = "source_half",
    dub_job: str = "dub",
) -> CatalogPlan:
    """Register the catalog's videos, add partitions (batched) and request what is missing or stale."""
    plan = CatalogPlan()
    source_keys = sorted(
        (k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def == videos),
        key=lambda k: k.to_user_string(),
    )
    target_keys = sorted(
        (k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def == video_language),
        key=lambda k: k.to_user_string(),
    )
    code_digest = sha256_bytes(
        canonical_json(
            {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}
        ).encode()
    )[:12]
    fresh = Freshness(instance, graph)
    busy = _in_flight(instance, [source_job, dub_job])

    # register, and add new partitions in one call per dimension
    current_fp: dict[str, str] = {}
    registered: dict[str, dict[str, Any]] = {}
    now = time.time()
    for video in catalog:
        fp = fingerprint(video.source_uri)
        if fp is None:
            plan.skipped[video.video_id] = f"source not found: {video.source_uri}"
            continue
        current_fp[video.video_id] = fp
        key = registry_key(video.video_id)
        old = storage.get_json(key) if storage.exists(key) else None
        if old is None or old.get("source_uri") != video.source_uri or old.get("fingerprint") != fp:
            old = register_video(
                storage, video.video_id, video.source_uri,
                fingerprint=fp, fingerprint_since=now, languages=list(video.languages),
            )  # fmt: skip
        registered[video.video_id] = old
    new_videos = [v for v in current_fp if not instance.has_dynamic_partition(VIDEOS, v)]
    all_langs = sorted({lang for v in catalog if v.video_id in current_fp for lang in v.languages})
    new_langs = [lang for lang in all_langs if not instance.has_dynamic_partition(LANGUAGES, lang)]
    if new_videos:
        instance.add_dynamic_partitions(VIDEOS, new_videos)
    if new_langs:
        instance.add_dynamic_partitions(LANGUAGES, new_langs)

    vids = [v for v in catalog if v.video_id in current_fp]
    for key in source_keys:
        fresh.prefetch(key, [v.video_id for v in vids])
    dub_pks = [str(video_language_key(v.video_id, lang)) for v in vids for lang in v.languages]
    for key in target_keys:
        fresh.prefetch(key, dub_pks)

    for video in vids:
        vid, fp = video.video_id, current_fp[video.video_id]
        source_status = Status(FRESH)
        for key in source_keys:
            status = fresh.status(key, vid)
            if status.state != FRESH:
                source_status = status
                break
        if source_status.state == FRESH:
            root = fresh.latest(dg.AssetKey("source_video"), vid)
            changed = source_changed(instance, root, registered[vid], fp)
            if changed:
                source_status = Status(STALE, changed)
        plan.statuses[vid] = source_status
        if source_status.state != FRESH:
            if vid in busy:
                plan.skipped[vid] = "source_half run in flight"
                continue
            plan.source_requests.append(
                dg.RunRequest(
                    run_key=f"catalog:{vid}:{fp}:{code_digest}",
                    partition_key=vid,
                    tags={
                        LANGUAGES_TAG: ",".join(video.languages),
                        SOURCE_URI_TAG: video.source_uri,
                        FINGERPRINT_TAG: fp,
                        TRIGGER_TAG: "catalog",
                        "dubbing/reason": source_status.reason[:200],
                    },
                )
            )
            continue
        source_dv = fresh.data_version(dg.AssetKey("source_video"), vid) or fp
        for lang in video.languages:
            pk = str(video_language_key(vid, lang))
            status = Status(FRESH)
            for key in target_keys:
                status = fresh.status(key, pk)
                if status.state != FRESH:
                    break
            plan.statuses[pk] = status
            if status.state == FRESH:
                continue
            if pk in busy:
                plan.skipped[pk] = "dub run in flight"
                continue
            plan.dub_requests.append(
                dg.RunRequest(
                    run_key=f"catalog:{pk}:{source_dv[:16]}:{code_digest}",
                    partition_key=pk,
                    tags={TRIGGER_TAG: "catalog", "dubbing/reason": status.reason[:200]},
                )
            )
    return plan


# --- schedules ----------------------------------------------------------------------------------


def build_catalog_schedules(
    settings: Settings, source_job: Any, dub_job: Any, asset_graph: Callable[[], Any]
) -> list[dg.ScheduleDefinition]:
    """The two catalog schedules (same cron); ``asset_graph()`` gives the graph to judge staleness
    (``Definitions.resolve_asset_graph()`` of the code location, resolved at the first tick)."""
    graph_cache: list[Any] = []

    def graph() -> Any:
        if not graph_cache:
            graph_cache.append(asset_graph())
        return graph_cache[0]

    def plan(context: dg.ScheduleEvaluationContext) -> CatalogPlan:
        from dubbing_pipeline.orchestration.resources import storage_resource

        catalog = parse_catalog(read_text(settings.catalog_url, settings))
        storage = storage_resource(settings).get()
        result = plan_catalog(
            context.instance,
            graph(),
            catalog,
            storage,
            lambda uri: source_fingerprint(uri, settings),
            source_job=source_job.name,
            dub_job=dub_job.name,
        )
        for name, why in result.skipped.items():
            context.log.info(f"catalog: skip {name}: {why}")
        return result

    @dg.schedule(
        name="catalog_source_schedule",
        cron_schedule=settings.catalog_cron,
        job=source_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Catalog videos whose source half is missing or stale (dubs follow via the sensor).",
    )
    def catalog_source_schedule(context: dg.ScheduleEvaluationContext) -> Any:
        requests = plan(context).source_requests
        return requests or dg.SkipReason("every catalog video's source half is up to date")

    @dg.schedule(
        name="catalog_dub_schedule",
        cron_schedule=settings.catalog_cron,
        job=dub_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Catalog video × language partitions whose dub is missing or stale.",
    )
    def catalog_dub_schedule(context: dg.ScheduleEvaluationContext) -> Any:
        requests = plan(context).dub_requests
        return requests or dg.SkipReason("every catalog dub is up to date")

    return [catalog_source_schedule, catalog_dub_schedule]


def catalog_enabled(settings: Settings) -> bool:
    return bool(settings.catalog_url)


__all__ = [
    "CatalogVideo",
    "Freshness",
    "build_catalog_schedules",
    "parse_catalog",
    "plan_catalog",
]
