"""Catalog backfills: a file lists videos and languages; two schedules keep every dub up to date.

The catalog (YAML or JSON, a local path, ``file://`` or ``s3://`` URL in ``DUBBING_CATALOG_URL``)::

    languages: [es, fr]          # every video, unless it lists its own
    videos:
      - source: s3://media/talks/intro.mp4
      - id: keynote              # optional; default: from the source's file name
        source: s3://media/talks/keynote-2024.mov
        languages: [es, fr, ja]

Adding German to the whole catalog is one edit: ``languages: [es, fr, de]``.

Video ids follow the registry's one rule (``registry.claim_video_id``): an entry without ``id:``
gets the id of its file name, or that id with a short hash of its source URI when the registry
already holds it for another source (an ``intro.mp4`` in two folders is two videos); an ``id:`` is
used as given and points the registry entry at the entry's source.

On each tick (``DUBBING_CATALOG_CRON``, default ``@daily``) both schedules share one plan (computed
once per tick in the code server):

* ``catalog_source_schedule`` (job ``source_half``): one run per video whose source half is missing or
  stale, or whose source object changed (S3 ETag; size+mtime for local files) since the source half
  was made. Tagged with the video's languages, so ``dub_after_source_half`` dubs it afterwards.
* ``catalog_dub_schedule`` (job ``dub``): one run per ``video × language`` partition whose source
  half is fresh but whose target half is missing or stale (a new language, a changed code version).

Nothing is requested for partitions that are up to date or already have a run queued or in
progress. A catalog entry that cannot be dubbed (no source, an id used twice, a language that is not
a language code) is refused on its own, with a ``bad_input`` reason in the schedule's log; the rest
of the catalog goes on.

What a tick costs: one indexed query per asset for the latest data version of every partition, one
query for the runs in flight, a ``stat`` per local source or one S3 listing per 1,000 sources of a
folder (not one HEAD per source), and one read of the catalog's registry index; registry reads (an
id to claim), registry writes and partition adds only for what changed.

Staleness is judged from the project's own key chain, carried in each materialization's data
version (``kit.Version``: cache key, lineage digest, code version): a partition is fresh when its
code version is the asset's current one and its lineage digest is the digest of its parents'
*current* cache keys (each parent fresh itself); the source half's root is fresh when it was made
from the source object version the catalog sees now. A parent re-materialised with the same data
(a cache hit) keeps its key, so its children stay fresh. (Dagster's ``dagster/input_event_pointer``
tag is no use here: it points at the parent asset's latest materialization of *any* partition.)

Run keys are stable: the partition, the source fingerprint (or data version) and a digest of all
code versions. There is no public API to launch an asset backfill from a schedule (dagster #13852),
hence one ``RunRequest`` per partition.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from dubbing_pipeline.common.hashing import canonical_json, sha256_bytes
from dubbing_pipeline.common.ids import sanitize_id, video_id_from_name
from dubbing_pipeline.errors import BadInputError, ConfigurationError, DubbingError
from dubbing_pipeline.freshness import stat_stamp
from dubbing_pipeline.orchestration.fresh import (
    FRESH,
    FRESH_STATUS,
    STALE,
    AssetGraph,
    Freshness,
    Status,
    source_lineage,
)
from dubbing_pipeline.orchestration.partitions import (
    partition_tags,
    video_language,
    video_language_key,
    videos,
)
from dubbing_pipeline.orchestration.registry import claim_video_id, hashed_video_id, register_video
from dubbing_pipeline.orchestration.resources import storage_resource
from dubbing_pipeline.orchestration.sensors import (
    FINGERPRINT_TAG,
    LANGUAGES,
    LANGUAGES_TAG,
    PARTITION_TAG,
    SOURCE_RUN_TAG,
    SOURCE_URI_TAG,
    TRIGGER_TAG,
    VIDEOS,
    Job,
    in_threads,
    parse_languages,
    s3_client,
)
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage, parse_uri, s3_service

IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


# --- the catalog file ------------------------------------------------------------------------


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


def _entry_name(index: int, entry: object) -> str:
    label = entry.get("id") or entry.get("source") if isinstance(entry, dict) else None
    return f"videos[{index}]" + (f" ({str(label)[:80]})" if label else "")


def _parse_entry(entry: object, default: Sequence[str]) -> CatalogVideo:
    if isinstance(entry, str):
        entry = {"source": entry}
    if not isinstance(entry, dict):
        raise BadInputError("a catalog video is a source URL or a mapping with 'source'")
    source = str(entry.get("source") or "")
    if not source:
        raise BadInputError("no 'source'")
    explicit = bool(entry.get("id"))
    vid = sanitize_id(str(entry["id"])) if explicit else video_id_from_name(_source_name(source))
    langs = parse_languages(entry["languages"]) if entry.get("languages") else list(default)
    if not langs:
        raise BadInputError("no target languages (the catalog has no default 'languages')")
    return CatalogVideo(vid, source, tuple(langs), explicit)


def _source_name(source: str) -> str:
    """The name a derived id comes from: the source's path (its file name, without extension)."""
    return parse_uri(source)[2]


def parse_catalog(text: str) -> Catalog:
    """YAML or JSON (JSON is YAML) → videos with their target languages.

    A catalog that is not a mapping with a ``videos`` list, or whose default ``languages`` are
    invalid, is a configuration error; a bad entry is refused on its own and the rest go on.
    """
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    if not isinstance(data, dict) or not isinstance(data.get("videos", []), list):
        raise ConfigurationError("a catalog is a mapping with a 'videos' list")
    try:
        default = parse_languages(data.get("languages") or [])
    except BadInputError as exc:
        raise ConfigurationError(f"catalog 'languages': {exc.message}") from None
    out = Catalog()
    seen: dict[str, str] = {}
    for index, entry in enumerate(data.get("videos") or []):
        name = _entry_name(index, entry)
        try:
            video = _parse_entry(entry, default)
            # an explicit id is the user's choice: one given twice is a mistake; derived ids that
            # coincide are told apart by the id rule when the catalog registers them
            if video.explicit and video.video_id in seen:
                raise BadInputError(f"video id {video.video_id!r} already used by {seen[video.video_id]}")
        except DubbingError as exc:
            out.refused[name] = f"{exc.code}: {exc.message}"
            continue
        seen.setdefault(video.video_id, f"videos[{index}]")
        out.videos.append(video)
    return out


def read_text(url: str, settings: Settings) -> str:
    scheme, netloc, path = parse_uri(url)
    if scheme == "s3":
        body = s3_client(settings).get_object(Bucket=netloc, Key=path)["Body"].read()
        return str(body.decode("utf-8"))
    if scheme == "file":
        return Path(path).read_text(encoding="utf-8")
    raise ConfigurationError(f"unsupported catalog URL scheme {scheme!r}")


def _local_fingerprint(path: str) -> str | None:
    """A local source's version without reading it (``freshness.stat_stamp``)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return "-".join(map(str, stat_stamp(stat))) if os.path.isfile(path) else None


def source_fingerprints(uris: Sequence[str], settings: Settings) -> dict[str, str | None]:
    """A cheap version of each source: S3 ETag, or size+mtime of a local file; None if absent."""
    out: dict[str, str | None] = dict.fromkeys(uris)
    by_bucket: dict[str, list[str]] = {}
    for uri in uris:
        scheme, netloc, path = parse_uri(uri)
        if scheme == "file":
            out[uri] = _local_fingerprint(path)
        elif scheme == "s3":
            by_bucket.setdefault(netloc, []).append(path)
        else:
            raise BadInputError(f"unsupported source URI scheme {scheme!r}")
    if by_bucket:
        service = s3_service(settings.s3_endpoint_url, settings.s3_region)
        client = service.listing_client()
        for bucket, keys in sorted(by_bucket.items()):
            for key, etag in service.etags(client, bucket, keys).items():
                out[f"s3://{bucket}/{key}"] = etag
    return out


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class CatalogPlan:
    source_requests: list[dg.RunRequest] = field(default_factory=list)
    dub_requests: list[dg.RunRequest] = field(default_factory=list)
    statuses: dict[str, Status] = field(default_factory=dict)  # "video" / "lang|video" → status
    skipped: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # catalog entry → classified reason
    seconds: dict[str, float] = field(default_factory=dict)  # where the tick's time went


def _in_flight(instance: dg.DagsterInstance, job_names: Iterable[str]) -> set[str]:
    busy: set[str] = set()
    for job_name in job_names:
        for record in instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT)):
            pk = record.dagster_run.tags.get(PARTITION_TAG)
            if pk:
                busy.add(pk)
    return busy


CHAIN_WINDOW = 900  # seconds after a source_half success within which its chained dubs are expected


def _chained(instance: dg.DagsterInstance, source_job: str, dub_job: str, now: float) -> set[str]:
    """Pairs whose dub the chain sensor (``dub_after_source_half``) is about to request.

    A source half that just succeeded with languages is followed by one dub run per language from
    the run-status sensor, within a tick or two. Until that dub run exists the catalog must not ask
    for the same pair (a schedule and a sensor do not share run keys: both would run). Only recent
    runs are read, so this costs O(runs of the last ``CHAIN_WINDOW`` seconds), not O(catalog).
    """
    since = dt.datetime.fromtimestamp(now - CHAIN_WINDOW, tz=dt.UTC)
    done = instance.get_run_records(
        dg.RunsFilter(job_name=source_job, statuses=[dg.DagsterRunStatus.SUCCESS], updated_after=since)
    )
    expected: dict[str, str] = {}
    for record in done:
        run = record.dagster_run
        video = run.tags.get(PARTITION_TAG)
        for lang in (run.tags.get(LANGUAGES_TAG) or "").split(","):
            if video and lang:
                expected[str(video_language_key(video, lang))] = run.run_id
    if not expected:
        return set()
    launched = instance.get_run_records(dg.RunsFilter(job_name=dub_job, created_after=since))
    followed = {
        (r.dagster_run.tags.get(PARTITION_TAG), r.dagster_run.tags.get(SOURCE_RUN_TAG)) for r in launched
    }
    return {pk for pk, run_id in expected.items() if (pk, run_id) not in followed}


INDEX_KEY = "registry/catalog-index.json"

CatalogIndex = dict[str, list[str]]
"""What the catalog registered (``INDEX_KEY``): video id → [source URI, fingerprint]."""


def read_index(storage: MediaStorage) -> CatalogIndex:
    """What the catalog registered: video id → [source URI, fingerprint]."""
    index: CatalogIndex = storage.get_json(INDEX_KEY) if storage.exists(INDEX_KEY) else {}
    return index


Claimed = CatalogVideo | DubbingError
"""A catalog video with the id the registry gives it, or why it got none."""


@dataclass(frozen=True)
class _Claims:
    """The registry's id rule applied to catalog entries, skipping what the index already holds."""

    storage: MediaStorage
    index: CatalogIndex
    reserved: Collection[str]  # every explicit id of the catalog: taken for derived ids

    def indexed(self, vid: str, uri: str) -> bool:
        entry = self.index.get(vid)
        return entry is not None and entry[:1] == [uri]

    def explicit(self, v: CatalogVideo) -> CatalogVideo:
        if self.indexed(v.video_id, v.source_uri):
            return v
        return replace(v, video_id=claim_video_id(self.storage, "", v.source_uri, v.video_id))

    def derived(self, v: CatalogVideo) -> Claimed:
        hashed = hashed_video_id(v.video_id, v.source_uri)
        if v.video_id not in self.reserved and self.indexed(v.video_id, v.source_uri):
            return v
        if self.indexed(hashed, v.source_uri):
            return replace(v, video_id=hashed)
        try:
            name = _source_name(v.source_uri)
            return replace(v, video_id=claim_video_id(self.storage, name, v.source_uri, taken=self.reserved))
        except DubbingError as exc:
            return exc

    def group(self, group: Sequence[CatalogVideo]) -> list[Claimed]:
        """Derived ids that share a base id, in catalog order: the first keeps the base id."""
        return [self.derived(v) for v in group]


def _derived_groups(videos_: Sequence[CatalogVideo]) -> list[list[int]]:
    """The indexes of the videos without an ``id:``, grouped by base id (in catalog order)."""
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(videos_):
        if not v.explicit:
            groups.setdefault(v.video_id, []).append(i)
    return list(groups.values())


def _unique(
    videos_: Sequence[CatalogVideo], claimed: Sequence[Claimed]
) -> tuple[list[CatalogVideo], dict[str, str]]:
    """The claimed videos, each id once, and the entries refused (by source URI)."""
    out: list[CatalogVideo] = []
    refused: dict[str, str] = {}
    used: set[str] = set()
    for video, got in zip(videos_, claimed, strict=True):
        if isinstance(got, DubbingError):
            refused[video.source_uri] = f"{got.code}: {got.message}"
        elif got.video_id in used:  # the same source listed twice without an id
            refused[video.source_uri] = f"bad_input: source listed twice ({got.video_id!r})"
        else:
            used.add(got.video_id)
            out.append(got)
    return out, refused


def resolve_ids(
    storage: MediaStorage,
    videos_: Sequence[CatalogVideo],
    index: CatalogIndex,
    reserved: Collection[str] = (),
) -> tuple[list[CatalogVideo], dict[str, str]]:
    """The catalog's videos with the ids the registry's rule gives them, and the entries refused.

    Explicit ids are claimed first (they re-point the registry), then derived ids, with the
    ``reserved`` ids (every explicit id of the catalog) counted as taken. A video the index already
    holds under its id (or its hashed id) for its source costs no registry read. Derived ids that
    share a base id are claimed in catalog order (the first keeps the base id); different base ids
    in threads.
    """
    claims = _Claims(storage, index, reserved)
    resolved: dict[int, Claimed] = {}
    explicit = [i for i, v in enumerate(videos_) if v.explicit]
    claimed = in_threads(lambda i: claims.explicit(videos_[i]), explicit, threads=16)
    resolved.update(zip(explicit, claimed, strict=True))
    groups = _derived_groups(videos_)
    done = in_threads(lambda ix: claims.group([videos_[i] for i in ix]), groups, threads=16)
    for ix, results in zip(groups, done, strict=True):
        resolved.update(zip(ix, results, strict=True))
    return _unique(videos_, [resolved[i] for i in range(len(videos_))])


def register_catalog(
    storage: MediaStorage,
    videos_: Sequence[CatalogVideo],
    fingerprints: dict[str, str],
    index: CatalogIndex | None = None,
) -> None:
    """Write the registry entry of each video whose source or version changed since the last tick.

    The catalog keeps an index of what it registered (one object), so an unchanged catalog reads
    one object per tick instead of one per video.
    """
    index = read_index(storage) if index is None else index
    changed = [v for v in videos_ if index.get(v.video_id) != [v.source_uri, fingerprints[v.video_id]]]
    now = time.time()
    in_threads(
        lambda v: register_video(
            storage, v.video_id, v.source_uri, fingerprint=fingerprints[v.video_id],
            fingerprint_since=now, languages=list(v.languages),
        ),
        changed,
        threads=16,
    )  # fmt: skip
    if changed:
        index.update({v.video_id: [v.source_uri, fingerprints[v.video_id]] for v in changed})
        storage.put_json(INDEX_KEY, index)


def _half_status(fresh: Freshness, keys: Sequence[dg.AssetKey], pk: str) -> Status:
    for key in keys:
        status = fresh.status(key, pk)
        if status is not FRESH_STATUS:
            return status
    return FRESH_STATUS


def _source_status(fresh: Freshness, keys: Sequence[dg.AssetKey], vid: str, fp: str) -> Status:
    status = _half_status(fresh, keys, vid)
    root = fresh.version(dg.AssetKey("source_video"), vid)
    if status.state == FRESH and root is not None and root.lineage != source_lineage(fp):
        return Status(STALE, f"source changed (now {fp})")
    return status


@dataclass(frozen=True)
class Halves:
    """The materialisable assets of each half, and a digest of every asset's code version (part of
    every run key: a new code version asks again)."""

    source: list[dg.AssetKey]
    target: list[dg.AssetKey]
    code_digest: str

    @classmethod
    def of(cls, graph: AssetGraph) -> Halves:
        keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())

        def half(pdef: dg.PartitionsDefinition[Any]) -> list[dg.AssetKey]:
            return [k for k in keys if graph.get(k).partitions_def == pdef and graph.get(k).is_materializable]

        codes = {k.to_user_string(): graph.get(k).code_version for k in keys}
        return cls(half(videos), half(video_language), sha256_bytes(canonical_json(codes).encode())[:12])


class Laps:
    """Where a tick's time went: the seconds since the previous lap, by step name."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.clock, 3)
        self.clock = now


def _busy_and_chained(
    instance: dg.DagsterInstance, source_job: str, dub_job: str
) -> tuple[set[str], set[str]]:
    """The partitions with a run in flight, and the pairs the chain sensor is about to dub."""
    busy = _in_flight(instance, [source_job, dub_job])
    chained = _chained(instance, source_job, dub_job, time.time())
    # read the runs in flight again: a dub the chain sensor created between the two reads is in
    # neither the first read nor the chained set (it is already launched), and would run twice
    busy |= _in_flight(instance, [source_job, dub_job])
    return busy, chained


def _register(
    instance: dg.DagsterInstance,
    storage: MediaStorage,
    catalog: Catalog,
    found: dict[str, str | None],
    plan: CatalogPlan,
) -> list[CatalogVideo]:
    """Claim the ids of the videos whose source is there, register them and add their partitions;
    the refused go to the plan. Returns the videos with their ids (each id once)."""
    present: list[CatalogVideo] = []
    for video in catalog.videos:
        if found.get(video.source_uri) is None:
            plan.refused[video.video_id] = f"bad_input: source not found: {video.source_uri}"
        else:
            present.append(video)
    index = read_index(storage)
    reserved = {v.video_id for v in catalog.videos if v.explicit}
    vids, refused = resolve_ids(storage, present, index, reserved)
    plan.refused.update(refused)
    register_catalog(storage, vids, {v.video_id: str(found[v.source_uri]) for v in vids}, index)
    _add_partitions(instance, vids)
    return vids


@dataclass(frozen=True)
class _Tick:
    """One tick's judgement of the catalog's videos, written into ``plan``."""

    plan: CatalogPlan
    fresh: Freshness
    halves: Halves
    busy: set[str]  # partitions with a run in flight
    chained: set[str]  # pairs the chain sensor is about to dub

    def video(self, video: CatalogVideo, fp: str) -> None:
        """Request the source half of ``video`` when it is not fresh, else its stale dubs."""
        vid = video.video_id
        status = self.plan.statuses[vid] = _source_status(self.fresh, self.halves.source, vid, fp)
        if (
            vid in self.busy
        ):  # its run has not ended (when its source half is fresh: the chain sensor dubs it)
            skipped = [vid] if status.state != FRESH else [pair_key(vid, lang) for lang in video.languages]
            self.plan.skipped.update(dict.fromkeys(skipped, "source_half run in flight"))
        elif status.state != FRESH:
            self.plan.source_requests.append(self.source_request(video, fp, status))
        else:
            source_dv = self.fresh.data_version(dg.AssetKey("source_video"), vid) or fp
            for lang in video.languages:
                self.dub(pair_key(vid, lang), source_dv)

    def source_request(self, video: CatalogVideo, fp: str, status: Status) -> dg.RunRequest:
        vid = video.video_id
        return dg.RunRequest(
            run_key=f"catalog:{vid}:{fp}:{self.halves.code_digest}",
            partition_key=vid,
            tags={
                **partition_tags(vid),
                LANGUAGES_TAG: ",".join(video.languages),
                SOURCE_URI_TAG: video.source_uri,
                FINGERPRINT_TAG: fp,
                TRIGGER_TAG: "catalog",
                "dubbing/reason": status.reason[:200],
            },
        )

    def dub(self, pk: str, source_dv: str) -> None:
        """Request the dub of the pair ``pk`` when it is not fresh and no run is on its way."""
        status = self.plan.statuses[pk] = _half_status(self.fresh, self.halves.target, pk)
        if status.state == FRESH:
            return
        if pk in self.busy:
            self.plan.skipped[pk] = "dub run in flight"
        elif pk in self.chained:
            self.plan.skipped[pk] = "its source half just succeeded: the chain sensor dubs it"
        else:
            self.plan.dub_requests.append(
                dg.RunRequest(
                    run_key=f"catalog:{pk}:{source_dv[:16]}:{self.halves.code_digest}",
                    partition_key=pk,
                    tags={
                        **partition_tags(pk),
                        TRIGGER_TAG: "catalog",
                        "dubbing/reason": status.reason[:200],
                    },
                )
            )


def pair_key(video_id: str, language: str) -> str:
    """The ``video × language`` partition key (``"es|talk"``)."""
    return str(video_language_key(video_id, language))


def plan_catalog(
    instance: dg.DagsterInstance,
    graph: AssetGraph,
    catalog: Catalog,
    storage: MediaStorage,
    fingerprints: Callable[[Sequence[str]], dict[str, str | None]],
    *,
    source_job: str = "source_half",
    dub_job: str = "dub",
) -> CatalogPlan:
    """Register the catalog's videos, add partitions (batched) and request what is missing or stale.

    The steps, timed in ``plan.seconds``: the runs in flight, the sources' fingerprints, the
    registration, the latest data version of every asset, then each video's judgement.
    """
    plan = CatalogPlan(refused=dict(catalog.refused))
    halves = Halves.of(graph)
    lap = Laps(plan.seconds)
    busy, chained = _busy_and_chained(instance, source_job, dub_job)
    lap("runs")
    found = fingerprints([v.source_uri for v in catalog.videos])
    lap("fingerprints")
    vids = _register(instance, storage, catalog, found, plan)
    lap("register")
    fresh = Freshness(instance, graph)
    for key in (*halves.source, *halves.target):
        fresh.versions(key)
    lap("data_versions")
    tick = _Tick(plan, fresh, halves, busy, chained)
    for video in vids:
        tick.video(video, str(found[video.source_uri]))
    lap("statuses")
    return plan


def _add_partitions(instance: dg.DagsterInstance, vids: Sequence[CatalogVideo]) -> None:
    """Add the catalog's new videos and languages, one call per dimension."""
    have_videos = set(instance.get_dynamic_partitions(VIDEOS))
    have_langs = set(instance.get_dynamic_partitions(LANGUAGES))
    new_videos = [v.video_id for v in vids if v.video_id not in have_videos]
    new_langs = sorted({lang for v in vids for lang in v.languages} - have_langs)
    if new_videos:
        instance.add_dynamic_partitions(VIDEOS, new_videos)
    if new_langs:
        instance.add_dynamic_partitions(LANGUAGES, new_langs)


# --- schedules ----------------------------------------------------------------------------------


class SharedPlan:
    """One plan per tick for both schedules: the second schedule of a tick reuses the first's plan.

    Keyed by the tick's scheduled time; both schedules are evaluated by the same code server, so
    the plan is computed once (a second process would compute the same plan again, never a different
    one: the run keys are stable).
    """

    def __init__(self, compute: Callable[[dg.ScheduleEvaluationContext], CatalogPlan]) -> None:
        self.compute = compute
        self.computed = 0
        self._lock = threading.Lock()
        self._tick: dt.datetime | None = None
        self._plan: CatalogPlan | None = None

    def __call__(self, context: dg.ScheduleEvaluationContext) -> CatalogPlan:
        tick = context.scheduled_execution_time
        with self._lock:
            if self._plan is None or tick is None or tick != self._tick:
                self._plan, self._tick = self.compute(context), tick
                self.computed += 1
            return self._plan


@dataclass
class CatalogTick:
    """One tick's plan of the catalog named by ``settings``, logged in the schedule's log; the asset
    graph is resolved at the first tick (``asset_graph()``) and kept."""

    settings: Settings
    source_job: str
    dub_job: str
    asset_graph: Callable[[], AssetGraph]
    _graph: AssetGraph | None = field(default=None, init=False)

    def graph(self) -> AssetGraph:
        if self._graph is None:
            self._graph = self.asset_graph()
        return self._graph

    def __call__(self, context: dg.ScheduleEvaluationContext) -> CatalogPlan:
        settings = self.settings
        catalog = parse_catalog(read_text(settings.catalog_url, settings))
        result = plan_catalog(
            context.instance,
            self.graph(),
            catalog,
            storage_resource(settings).get(),
            lambda uris: source_fingerprints(uris, settings),
            source_job=self.source_job,
            dub_job=self.dub_job,
        )
        for name, why in result.refused.items():
            context.log.warning(f"catalog: refused {name}: {why}")
        context.log.info(f"catalog: {len(catalog.videos)} videos planned; seconds: {result.seconds}")
        for name, why in result.skipped.items():
            context.log.info(f"catalog: skip {name}: {why}")
        return result


def _schedule(
    cron: str,
    plan: SharedPlan,
    name: str,
    job: Job,
    description: str,
    wanted: Callable[[CatalogPlan], list[dg.RunRequest]],
    done: str,
) -> dg.ScheduleDefinition:
    """A catalog schedule of ``job``: the ``wanted`` requests of the tick's shared plan, or ``done``."""

    @dg.schedule(
        name=name,
        cron_schedule=cron,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def requests(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        return wanted(plan(context)) or dg.SkipReason(done)

    return requests


def build_catalog_schedules(
    settings: Settings, source_job: Job, dub_job: Job, asset_graph: Callable[[], AssetGraph]
) -> list[dg.ScheduleDefinition]:
    """The two catalog schedules (same cron, one shared plan per tick); ``asset_graph()`` gives the
    graph to judge staleness (``Definitions.resolve_asset_graph()`` of the code location, resolved
    at the first tick)."""
    plan = SharedPlan(CatalogTick(settings, source_job.name, dub_job.name, asset_graph))
    return [
        _schedule(
            settings.catalog_cron, plan, "catalog_source_schedule", source_job,
            "Catalog videos whose source half is missing or stale (dubs follow via the sensor).",
            lambda p: p.source_requests, "every catalog video's source half is up to date",
        ),
        _schedule(
            settings.catalog_cron, plan, "catalog_dub_schedule", dub_job,
            "Catalog video × language partitions whose dub is missing or stale.",
            lambda p: p.dub_requests, "every catalog dub is up to date",
        ),
    ]  # fmt: skip


def catalog_enabled(settings: Settings) -> bool:
    return bool(settings.catalog_url)


__all__ = [
    "CatalogVideo",
    "Freshness",
    "build_catalog_schedules",
    "parse_catalog",
    "plan_catalog",
]
