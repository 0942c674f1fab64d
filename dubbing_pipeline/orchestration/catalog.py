"""Catalog backfills: a file lists videos and languages; one sensor keeps every dub up to date.

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

One sensor, ``catalog_sensor``, ticks every ``DUBBING_CATALOG_INTERVAL_S`` seconds (default 60)
and plans for two jobs:

* ``source_half``: one run per video whose source half is missing or stale, or whose source object
  changed (S3 ETag; size+mtime for local files) since the source half was made. Tagged with the
  video's languages, so ``dub_after_source_half`` dubs it afterwards.
* ``dub``: one run per ``video × language`` partition whose source half is fresh but whose target
  half is missing or stale (a new language, a changed code version).

Nothing is requested for partitions that are up to date or already have a run queued or in
progress. A catalog entry that cannot be dubbed (no source, an id used twice, a language that is not
a language code) is refused on its own, with a ``bad_input`` reason in the sensor's log; the rest
of the catalog goes on.

What a tick costs (``catalog_cursor``): it plans what changed since its cursor, never the whole
catalog unless the whole catalog changed:

* the events after the cursor's event-log storage id: one indexed query per asset (materializations,
  observations) and per run end (success, failure, cancel), at most ``EVENTS_PAGE`` records each;
  each event names a video to plan again;
* the catalog file: read and hashed; parsed, resolved and diffed against the previous
  :class:`Snapshot` only when its text changed (entries known keep their ids: no registry read and
  no S3 request for a new language); the entries that differ are planned;
* a slice of ``DUBBING_CATALOG_SWEEP`` videos of the background sweep (sorted ids, wrapping): every
  video is judged again within ``ceil(videos / DUBBING_CATALOG_SWEEP)`` ticks, which finds what no
  event shows (a source replaced in place, an event committed out of storage-id order);
* a first tick, a new code version of any asset, or more than ``PENDING_MAX`` changed videos start a
  full pass (all videos in id order, the sweep paused) that goes on across ticks; when the change is
  only languages added to catalog entries the pass is *narrow*: each video's source half and only
  the added languages' pairs are judged;
* the videos with failed partitions (``quarantine.Gate``), so that a backoff that ends is acted on.

For the videos it plans, chunk by chunk (``CHUNK_VIDEOS``): a ``stat`` per local source, a HEAD per
S3 source or one listing of the S3 key range of the chunk (a full pass keeps the fingerprint each
source was registered with: the sweep and the events read them afresh); registry writes, and
partition adds for the videos new to the index only; one query per asset for the latest data
versions of the chunk's partitions of its kind; and the runs in flight of the partitions not fresh
only (so the cost does not follow the run queue), read before and after the chain sensor's pairs,
then the data versions again of the videos with a run whose status changed since the first read
(a run that ended meanwhile is fresh, not asked twice).
The registry index (``INDEX_PREFIX``, 256 shards by a hash of the video id) is read once per code
server; a tick that changed it writes only the shards it changed.

The deadline: before each chunk the tick checks that the chunk would still end within
``DUBBING_CATALOG_TICK_BUDGET_S`` (default 40 s; Dagster's limit is 60 s); if not it stops, returns
what it planned, and its cursor names where the next tick goes on (the changed videos not planned,
the full pass's position). The catalog file's read and parse count in the budget; new entries are
resolved 5,000 at a time within it (the rest wait in the snapshot); reading the events is not split
(one query per asset, at most ``EVENTS_PAGE`` records each). Run keys are stable, so a split loses
nothing and repeats nothing (and the daemon skips a run key the sensor already used).

Staleness is judged from the project's own key chain, carried in each materialization's data
version (``kit.Version``: cache key, lineage digest, code version): a partition is fresh when its
code version is the asset's current one and its lineage digest is the digest of its parents'
*current* cache keys (each parent fresh itself); the source half's root is fresh when it was made
from the source object version the catalog sees now. A parent re-materialised with the same data
(a cache hit) keeps its key, so its children stay fresh. (Dagster's ``dagster/input_event_pointer``
tag is no use here: it points at the parent asset's latest materialization of *any* partition.)

Run keys are stable: the partition, the source fingerprint (or data version) and a digest of all
code versions. A catalog-wide change is not one Dagster backfill: no schedule can launch one
(dagster #13852), and a sensor only through ``RunRequest.for_asset_graph_subset``, which Dagster 1.13
keeps private ("AssetGraphSubset is not part of the public API"); hence one ``RunRequest`` per
partition, paced by the run queue.
"""

from __future__ import annotations

import datetime as dt
import json
import os
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
from dubbing_pipeline.orchestration.catalog_cursor import (
    PENDING_MAX,
    Catalog,
    CatalogCursor,
    CatalogVideo,
    Deadline,
    Snapshot,
    entry_key,
    read_changes,
    rush_rest,
    sweep_slice,
    video_of,
)
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
    videos,
)
from dubbing_pipeline.orchestration.quarantine import Gate, RetryPolicy
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
    partitions_with_runs,
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


def _entry_name(index: int, entry: object) -> str:
    label = entry.get("id") or entry.get("source") if isinstance(entry, dict) else None
    return f"videos[{index}]" + (f" ({str(label)[:80]})" if label else "")


def _parse_entry(entry: object, default: tuple[str, ...]) -> CatalogVideo:
    if isinstance(entry, str):
        entry = {"source": entry}
    if not isinstance(entry, dict):
        raise BadInputError("a catalog video is a source URL or a mapping with 'source'")
    source = str(entry.get("source") or "")
    if not source:
        raise BadInputError("no 'source'")
    explicit = bool(entry.get("id"))
    vid = sanitize_id(str(entry["id"])) if explicit else video_id_from_name(_source_name(source))
    langs = tuple(parse_languages(entry["languages"])) if entry.get("languages") else default
    if not langs:
        raise BadInputError("no target languages (the catalog has no default 'languages')")
    return CatalogVideo(vid, source, langs, explicit)


def _source_name(source: str) -> str:
    """The name a derived id comes from: the source's path (its file name, without extension)."""
    return parse_uri(source)[2]


def _load(text: str) -> Any:
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # a YAML flow mapping that is not JSON
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def parse_catalog(text: str) -> Catalog:
    """YAML or JSON (JSON is YAML) → videos with their target languages.

    A catalog that is not a mapping with a ``videos`` list, or whose default ``languages`` are
    invalid, is a configuration error; a bad entry is refused on its own and the rest go on. A file
    that is JSON is read as JSON (100,000 entries: 0.04 s against 5 s through libyaml; with the
    entries checked, 0.4 s against 5.8 s, which a catalog tick pays whenever the file changes).
    """
    data = _load(text) or {}
    if not isinstance(data, dict) or not isinstance(data.get("videos", []), list):
        raise ConfigurationError("a catalog is a mapping with a 'videos' list")
    try:
        default = tuple(parse_languages(data.get("languages") or []))
    except BadInputError as exc:
        raise ConfigurationError(f"catalog 'languages': {exc.message}") from None
    out = Catalog(digest=sha256_bytes(text.encode("utf-8"))[:16])
    seen: dict[str, int] = {}  # explicit id → the entry that gave it first
    for index, entry in enumerate(data.get("videos") or []):
        try:
            video = _parse_entry(entry, default)
            # an explicit id is the user's choice: one given twice is a mistake; derived ids that
            # coincide are told apart by the id rule when the catalog registers them
            if video.explicit and video.video_id in seen:
                raise BadInputError(
                    f"video id {video.video_id!r} already used by videos[{seen[video.video_id]}]"
                )
        except DubbingError as exc:
            out.refused[_entry_name(index, entry)] = f"{exc.code}: {exc.message}"
            continue
        seen.setdefault(video.video_id, index)
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
    cursor: CatalogCursor = field(default_factory=CatalogCursor)  # where the next tick goes on
    events: int = 0  # events read since the previous tick's cursor
    changed: int = 0  # videos planned because something changed (events, the catalog, a split)
    swept: int = 0  # partitions judged by the background sweep (or a full pass)
    deadline_hit: bool = False  # planning stopped at the tick's budget: the cursor holds the rest


def _in_flight(
    instance: dg.DagsterInstance, job_names: Iterable[str], partitions: Collection[str]
) -> set[str]:
    """The ``partitions`` with a run of ``job_names`` not ended."""
    return partitions_with_runs(instance, job_names, partitions, statuses=IN_FLIGHT)


CLOCK_SKEW = 5.0  # seconds a run's clock (another pod's) may lag the sensor's


def _ended_since(
    instance: dg.DagsterInstance, job_names: Iterable[str], partitions: Collection[str], since: float
) -> set[str]:
    """The ``partitions`` with a run of ``job_names`` whose status changed after ``since`` (less
    ``CLOCK_SKEW``): the only ones a first read of data versions may have seen before their run ended."""
    after = dt.datetime.fromtimestamp(since - CLOCK_SKEW, tz=dt.UTC)
    return partitions_with_runs(instance, job_names, partitions, updated_after=after)


CHAIN_WINDOW = 900  # seconds after a source_half success within which its chained dubs are expected


def _chained(instance: dg.DagsterInstance, source_job: str, dub_job: str, now: float) -> set[str]:
    """Pairs whose dub the chain sensor (``dub_after_source_half``) is about to request.

    A source half that just succeeded with languages is followed by one dub run per language from
    the run-status sensor, within a tick or two. Until that dub run exists the catalog must not ask
    for the same pair (two sensors do not share run keys: both would run). Only recent
    runs are read, so this costs O(runs of the last ``CHAIN_WINDOW`` seconds), not O(catalog).
    """
    since = dt.datetime.fromtimestamp(now - CHAIN_WINDOW, tz=dt.UTC)
    done = instance.get_run_records(
        dg.RunsFilter(job_name=source_job, statuses=[dg.DagsterRunStatus.SUCCESS], updated_after=since)
    )
    expected: dict[str, str] = {}
    for record in sorted(done, key=lambda r: (r.update_timestamp, r.storage_id)):  # the newest wins
        run = record.dagster_run
        video = run.tags.get(PARTITION_TAG)
        for lang in (run.tags.get(LANGUAGES_TAG) or "").split(","):
            if video and lang:
                expected[pair_key(video, lang)] = run.run_id
    if not expected:
        return set()
    launched = instance.get_run_records(dg.RunsFilter(job_name=dub_job, created_after=since))
    followed = {
        (r.dagster_run.tags.get(PARTITION_TAG), r.dagster_run.tags.get(SOURCE_RUN_TAG)) for r in launched
    }
    return {pk for pk, run_id in expected.items() if (pk, run_id) not in followed}


INDEX_PREFIX = "registry/catalog-index"  # one JSON object per shard: ``<2 hex digits>.json``
LEGACY_INDEX_KEY = "registry/catalog-index.json"  # the one-object index of earlier versions

CatalogIndex = dict[str, list[str]]
"""What the catalog registered (``INDEX_PREFIX``): video id → [source URI, fingerprint]."""


def index_shard(video_id: str) -> str:
    """The index shard of ``video_id`` (one of 256): a change rewrites ~1/256 of the index, not all."""
    return sha256_bytes(video_id.encode("utf-8"))[:2]


def read_index(storage: MediaStorage) -> CatalogIndex:
    """What the catalog registered: video id → [source URI, fingerprint] (every shard, and the
    one-object index of an earlier version, merged under them)."""
    index: CatalogIndex = storage.get_json(LEGACY_INDEX_KEY) if storage.exists(LEGACY_INDEX_KEY) else {}
    for shard in in_threads(storage.get_json, storage.keys_in(INDEX_PREFIX), threads=16):
        index.update(shard)
    return index


def write_index(storage: MediaStorage, index: CatalogIndex, changed: Collection[str]) -> None:
    """Store the shards of ``index`` holding the ids ``changed`` (all of them, once, where an index of
    an earlier version is still there: it is then removed)."""
    legacy = storage.exists(LEGACY_INDEX_KEY)
    shards = {index_shard(vid) for vid in (index if legacy else changed)}
    parts: dict[str, CatalogIndex] = {shard: {} for shard in shards}
    for vid, entry in index.items():
        shard = index_shard(vid)
        if shard in parts:
            parts[shard][vid] = entry
    in_threads(lambda s: storage.put_json(f"{INDEX_PREFIX}/{s}.json", parts[s]), sorted(parts), threads=16)
    if legacy:
        storage.delete(LEGACY_INDEX_KEY)


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
    changed = _register_changed(storage, videos_, fingerprints, index)
    if changed:
        write_index(storage, index, changed)


def _register_changed(
    storage: MediaStorage, videos_: Sequence[CatalogVideo], fingerprints: dict[str, str], index: CatalogIndex
) -> list[str]:
    """Write the registry entries of ``videos_`` that ``index`` does not hold as they are now, and
    update ``index`` (not stored: the caller stores it once); the ids changed."""
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
    index.update({v.video_id: [v.source_uri, fingerprints[v.video_id]] for v in changed})
    return [v.video_id for v in changed]


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
    """Where a tick's time went: the seconds since the previous lap, by step name (a step done
    several times in a tick, once per chunk of videos, adds up)."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self.clock, 3)
        self.clock = now


@dataclass(frozen=True)
class _Tick:
    """One tick's judgement of the catalog's videos, written into ``plan``."""

    plan: CatalogPlan
    fresh: Freshness
    halves: Halves
    busy: set[str]  # partitions with a run in flight
    chained: set[str]  # pairs the chain sensor is about to dub
    gate: Gate | None = None  # failed partitions back off, then wait in quarantine (``quarantine``)
    only: frozenset[str] | None = None  # judge only these languages' pairs (None: every language)

    def ask(self, requests: list[dg.RunRequest], request: dg.RunRequest) -> None:
        """Add ``request`` unless the retry gate holds its partition back (the reason is logged)."""
        why = self.gate.hold(request) if self.gate is not None else None
        if why:
            self.plan.skipped[str(request.partition_key)] = why
        else:
            requests.append(request)

    def video(self, video: CatalogVideo, fp: str) -> None:
        """Request the source half of ``video`` when it is not fresh, else its stale dubs."""
        vid = video.video_id
        status = self.plan.statuses[vid] = _source_status(self.fresh, self.halves.source, vid, fp)
        if (
            vid in self.busy
        ):  # its run has not ended (when its source half is fresh: the chain sensor dubs it)
            skipped = [vid] if status.state != FRESH else [pair_key(vid, x) for x in judged(video, self.only)]
            self.plan.skipped.update(dict.fromkeys(skipped, "source_half run in flight"))
        elif status.state != FRESH:
            self.ask(self.plan.source_requests, self.source_request(video, fp, status))
        else:
            source_dv = self.fresh.data_version(dg.AssetKey("source_video"), vid) or fp
            for lang in judged(video, self.only):
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
            self.ask(
                self.plan.dub_requests,
                dg.RunRequest(
                    run_key=f"catalog:{pk}:{source_dv[:16]}:{self.halves.code_digest}",
                    partition_key=pk,
                    tags={
                        **partition_tags(pk),
                        TRIGGER_TAG: "catalog",
                        "dubbing/reason": status.reason[:200],
                    },
                ),
            )


def judged(video: CatalogVideo, only: frozenset[str] | None) -> list[str]:
    """The languages of ``video`` whose pairs a pass judges (``only``: a pass narrowed to the
    languages the catalog added; its source half is judged, and asked for with all of them)."""
    return [x for x in video.languages if only is None or x in only]


def pair_key(video_id: str, language: str) -> str:
    """The ``video × language`` partition key (``"es|talk"``): the string Dagster makes of
    ``video_language_key`` (its dimensions in name order), built directly on the catalog's hot path."""
    return f"{language}|{video_id}"


# --- one tick: what changed, a slice of the rest, within a deadline -----------------------------------

SWEEP_VIDEOS = 1000  # videos the background sweep judges per tick (``DUBBING_CATALOG_SWEEP``)
CHUNK_VIDEOS = 500  # videos judged at once (one query per asset); the deadline is checked between


@dataclass
class CatalogMemo:
    """What the code server keeps between ticks: a cache (every tick is right without it, only slower)."""

    text_digest: str = ""
    catalog: Catalog | None = None
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    index: CatalogIndex | None = None


def observed_keys(graph: AssetGraph) -> list[dg.AssetKey]:
    """The observable source assets (edits, feedback): their observations change what is fresh."""
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    return [k for k in keys if not graph.get(k).is_materializable]


def build_snapshot(
    storage: MediaStorage,
    catalog: Catalog,
    previous: Snapshot | None,
    found: dict[str, str | None],
    fingerprints: Callable[[Sequence[str]], dict[str, str | None]],
    index: CatalogIndex,
    budget: Deadline | None = None,
) -> Snapshot:
    """The catalog with its ids: an entry the previous snapshot holds keeps its id (no registry
    read, no fingerprint: a new language for every video costs no S3 request); a new entry whose
    source is there gets its id by the registry's rule (``resolve_ids``); one whose source is
    missing waits in ``missing``; new entries past the tick's ``budget`` wait in ``waiting`` for the
    next tick (a first tick of a large catalog spans ticks). ``found`` receives the fingerprints read."""
    resolved = previous.resolved() if previous is not None else {}
    known: list[CatalogVideo] = []
    new: list[CatalogVideo] = []
    for video in catalog.videos:
        vid = resolved.get(entry_key(video))
        if vid:
            known.append(video if video.video_id == vid else replace(video, video_id=vid))
        else:
            new.append(video)
    reserved = {v.video_id for v in catalog.videos if v.explicit}
    entries = _NewEntries(storage, index, reserved, found, fingerprints)
    entries.resolve(new, budget or Deadline(None))
    videos: dict[str, CatalogVideo] = {}
    for video in [*known, *entries.claimed]:
        if video.video_id in videos:
            entries.refused[video.source_uri] = f"bad_input: source listed twice ({video.video_id!r})"
        else:
            videos[video.video_id] = video
    return Snapshot(videos, entries.missing, entries.refused, catalog.fingerprint(), entries.waiting)


RESOLVE_CHUNK = 5000  # new catalog entries resolved at once; the tick's deadline is checked between


@dataclass
class _NewEntries:
    """New catalog entries resolved chunk by chunk (fingerprints, then ids) within a deadline."""

    storage: MediaStorage
    index: CatalogIndex
    reserved: set[str]
    found: dict[str, str | None]
    fingerprints: Callable[[Sequence[str]], dict[str, str | None]]
    claimed: list[CatalogVideo] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    missing: list[CatalogVideo] = field(default_factory=list)
    waiting: list[CatalogVideo] = field(default_factory=list)

    def resolve(self, new: Sequence[CatalogVideo], budget: Deadline) -> None:
        """In catalog order (derived ids are claimed in it), always one chunk, the rest waiting."""
        for start in range(0, len(new), RESOLVE_CHUNK):
            if start and not budget.allows_another():
                self.waiting = list(new[start:])
                return
            began, part = budget.clock(), new[start : start + RESOLVE_CHUNK]
            self.found.update(self.fingerprints([v.source_uri for v in part]))
            present = [v for v in part if self.found.get(v.source_uri) is not None]
            claimed, refused = resolve_ids(self.storage, present, self.index, self.reserved)
            self.claimed += claimed
            self.refused.update(refused)
            self.missing += [v for v in part if self.found.get(v.source_uri) is None]
            budget.step(began)


def _snapshot(
    storage: MediaStorage,
    catalog: Catalog,
    cursor: CatalogCursor,
    memo: CatalogMemo,
    planner: _Planner,
    budget: Deadline | None = None,
) -> tuple[Snapshot, CatalogChange]:
    """The catalog as this tick plans it, and the videos that changed since the cursor's snapshot
    (with the languages added to them, when that is all that changed).

    An unchanged catalog costs nothing but a check of the sources still missing; a changed one (or
    one with entries still waiting) is resolved again (entries known keep their ids) and stored
    (``Snapshot.save``).
    """
    previous = memo.snapshots.get(cursor.catalog) or Snapshot.load(storage, cursor.catalog)
    fingerprints, found = planner.fingerprints, planner.found
    if previous is not None and previous.catalog == catalog.fingerprint() and not previous.waiting:
        if previous.missing:
            found.update(fingerprints([v.source_uri for v in previous.missing]))
        if not any(found.get(v.source_uri) for v in previous.missing):
            memo.snapshots = {previous.digest: previous}
            return previous, CatalogChange()
    snapshot = build_snapshot(storage, catalog, previous, found, fingerprints, planner.index, budget)
    if snapshot.digest != cursor.catalog:
        snapshot.save(storage, keep=cursor.catalog)
    memo.snapshots = {snapshot.digest: snapshot}
    changed = snapshot.changed_since(previous)
    return snapshot, CatalogChange(changed, snapshot.added_languages(previous, changed))


@dataclass
class _Planner:
    """One tick's planning of chunks of videos into ``plan``: fingerprints, registration, partitions,
    the latest data versions of the chunk's partitions, the runs in flight of those not fresh."""

    instance: dg.DagsterInstance
    graph: AssetGraph
    storage: MediaStorage
    fingerprints: Callable[[Sequence[str]], dict[str, str | None]]
    jobs: tuple[str, str]  # the source and the dub job
    plan: CatalogPlan
    halves: Halves
    index: CatalogIndex
    gate: Gate | None = None
    found: dict[str, str | None] = field(default_factory=dict)  # source URI → fingerprint, this tick
    dirty: set[str] = field(default_factory=set)  # ids the index changed: their shards stored at the end
    languages: set[str] | None = None  # the language partitions there, read once a tick
    only: frozenset[str] | None = None  # the chunk being planned judges only these languages' pairs

    def present(self, videos_: Sequence[CatalogVideo], *, recheck: bool = True) -> list[CatalogVideo]:
        """The videos whose source is there (registered, partitions added); the others are refused.

        ``recheck`` off (a full pass): a video the index holds for the same source keeps the
        fingerprint it was registered with (no S3 request); the sweep and the changed videos
        read them again, so a source replaced in place is found within the sweep's bound."""
        if not recheck:
            for v in videos_:
                held = self.index.get(v.video_id)
                if held and held[0] == v.source_uri and v.source_uri not in self.found:
                    self.found[v.source_uri] = held[1]
        wanted = [v.source_uri for v in videos_ if v.source_uri not in self.found]
        self.found.update(self.fingerprints(wanted) if wanted else {})
        present = [v for v in videos_ if self.found.get(v.source_uri) is not None]
        for video in videos_:
            if self.found.get(video.source_uri) is None:
                self.plan.refused[video.video_id] = f"bad_input: source not found: {video.source_uri}"
        fps = {v.video_id: str(self.found[v.source_uri]) for v in present}
        new = [v.video_id for v in present if v.video_id not in self.index]
        self.dirty.update(_register_changed(self.storage, present, fps, self.index))
        self._add_partitions(new, {x for v in present for x in v.languages})
        return present

    def _add_partitions(self, new_videos: Sequence[str], languages: set[str]) -> None:
        """Partitions for the videos new to the index (one the index holds has them: the index is
        stored after them) and the languages not added yet (read once a tick)."""
        if self.languages is None:
            self.languages = set(self.instance.get_dynamic_partitions(LANGUAGES))
        if new_videos:
            self.instance.add_dynamic_partitions(VIDEOS, list(new_videos))
        if languages - self.languages:
            self.instance.add_dynamic_partitions(LANGUAGES, sorted(languages - self.languages))
            self.languages |= languages

    def unsettled(self, fresh: Freshness, videos_: Sequence[CatalogVideo]) -> set[str]:
        """The partitions a request may be made for (a video whose source half or any dub is not
        fresh, and those dubs): only their runs in flight are read."""
        out: set[str] = set()
        for video in videos_:
            vid = video.video_id
            fp = str(self.found[video.source_uri])
            if _source_status(fresh, self.halves.source, vid, fp).state != FRESH:
                out.add(vid)
                continue
            pairs = [pair_key(vid, x) for x in judged(video, self.only)]
            stale = [pk for pk in pairs if _half_status(fresh, self.halves.target, pk).state != FRESH]
            out.update([vid, *stale] if stale else [])
        return out

    def chunk(self, videos_: Sequence[CatalogVideo], lap: Laps, *, recheck: bool = True) -> int:
        """Judge ``videos_`` and request what is missing or stale; the partitions judged."""
        before = len(self.plan.statuses)
        present = self.present(videos_, recheck=recheck)
        lap("register")
        if not present:  # (an empty partition list would read every partition)
            return 0
        fresh = Freshness(self.instance, self.graph, partitions=_partitions_of(present, self.only))
        first_read = time.time()  # (the reads are lazy: they all follow this)
        unsettled = self.unsettled(fresh, present)
        lap("data_versions")
        busy: set[str] = set()
        again, reread = fresh, set()
        chained: set[str] = set()
        if unsettled:
            # the runs in flight, the chain's pairs, the runs in flight again: a source half that
            # ends during these reads is in flight at the first or chained at the second (so its
            # dubs are left to the chain sensor), and a dub the chain sensor starts in between is
            # in flight at the last
            busy = _in_flight(self.instance, self.jobs, unsettled)
            chained = _chained(self.instance, *self.jobs, time.time())
            busy |= _in_flight(self.instance, self.jobs, unsettled)
            reread = {video_of(pk) for pk in _ended_since(self.instance, self.jobs, unsettled, first_read)}
            again = self.reread(present, reread)
        lap("runs")
        settled_tick = _Tick(self.plan, fresh, self.halves, busy, chained, self.gate, self.only)
        unsettled_tick = _Tick(self.plan, again, self.halves, busy, chained, self.gate, self.only)
        for video in present:
            tick = unsettled_tick if video.video_id in reread else settled_tick
            tick.video(video, str(self.found[video.source_uri]))
        lap("statuses")
        return len(self.plan.statuses) - before

    def reread(self, present: Sequence[CatalogVideo], videos_: set[str]) -> Freshness:
        """The data versions of ``videos_`` (those with a run whose status changed since the first
        read) read again, *after* their runs in flight: a run that ended between the first read and
        the runs' read (the chain sensor's dub, done in seconds) is then seen fresh, not asked for a
        second time. No run changed: nothing is read again."""
        partitions = _partitions_of([v for v in present if v.video_id in videos_], self.only)
        return Freshness(self.instance, self.graph, partitions=partitions)


def _partitions_of(videos_: Sequence[CatalogVideo], only: frozenset[str] | None = None) -> list[str]:
    """The partitions of ``videos_``: each video's, then its pairs' (``only``: of these languages)."""
    return [p for v in videos_ for p in (v.video_id, *(pair_key(v.video_id, x) for x in judged(v, only)))]


@dataclass
class _Work:
    """What a tick has to plan, in order: the videos that changed, then a full pass or the sweep."""

    changed: list[str]
    rush: str | None  # a full pass goes on after this id; None: none
    sweep: list[str]
    only: list[str] = field(default_factory=list)  # the full pass judges only these languages ([]: all)


@dataclass(frozen=True)
class CatalogChange:
    """The videos whose catalog entry changed this tick, and the languages added to them when that
    is all that changed (None: an entry is new or names another source)."""

    videos: list[str] = field(default_factory=list)
    added: list[str] | None = None


def _work(
    cursor: CatalogCursor,
    snapshot: Snapshot,
    touched: Collection[str],
    code_digest: str,
    sweep: int,
    catalog: CatalogChange = CatalogChange(),
) -> _Work:
    """The work of a tick: a first tick, a new code version or more than ``PENDING_MAX`` changed
    videos start a full pass from the first id; otherwise the changed videos one by one, the full
    pass where the previous tick left it, or (none in progress) the sweep's next slice.

    A catalog change of more than ``PENDING_MAX`` videos that only adds languages (a new language
    for the whole catalog) starts a *narrow* full pass: every video's source half and only the
    added languages' pairs are judged (the others did not change), which is what keeps such a tick
    within its budget; the videos touched otherwise are planned whole beside it."""
    others = sorted({*cursor.pending, *touched} & snapshot.videos.keys())
    edited = sorted(set(catalog.videos) & snapshot.videos.keys())
    if catalog.added == []:  # entries that only dropped languages: nothing to ask for
        edited = []
    rush, only = cursor.rush, list(cursor.only) if cursor.rush is not None else []
    codes_changed = bool(cursor.codes) and cursor.codes != code_digest
    if cursor.events is None or codes_changed or len(others) > PENDING_MAX:
        rush, only = "", []
    elif len({*others, *edited}) > PENDING_MAX:
        if catalog.added is not None and (rush is None or only):  # none, or a narrow one: narrow
            rush, only, edited = "", sorted({*only, *catalog.added}), []
        else:
            rush, only = "", []
    changed = sorted({*others, *edited})
    if rush is not None and only:  # a narrow pass: the changed videos are planned whole now
        return _Work(changed, rush, [], only)
    if rush is not None:
        changed = [vid for vid in changed if vid <= rush]  # the full pass plans the others
        return _Work(changed, rush, [])
    return _Work(changed, None, sweep_slice(snapshot.ids, cursor.sweep, sweep))


def _run_work(
    planner: _Planner, snapshot: Snapshot, work: _Work, cursor: CatalogCursor, budget: Deadline, chunk: int
) -> CatalogCursor:
    """Plan ``work`` chunk by chunk while the deadline allows (always one chunk: a tick makes
    progress); the cursor says where the next tick goes on."""
    lap = Laps(planner.plan.seconds)
    phases = [("changed", work.changed)]
    phases += [("rush", rush_rest(snapshot.ids, work.rush))] if work.rush is not None else []
    phases += [("sweep", work.sweep)]
    done: dict[str, list[str]] = {name: [] for name, _ in phases}
    planned: set[str] = set()  # the changed videos planned: the full pass or the sweep skips them
    first = True
    for name, ids in phases:
        for start in range(0, len(ids), chunk):
            if not first and not budget.allows_another():
                return _next_cursor(cursor, work, done, budget)
            first, began, part = False, budget.clock(), ids[start : start + chunk]
            todo = [snapshot.videos[v] for v in part if v not in planned]
            planner.only = frozenset(work.only) if name == "rush" and work.only else None
            count = planner.chunk(todo, lap, recheck=name != "rush")
            planner.plan.swept += count if name != "changed" else 0
            planner.plan.changed += len(part) if name == "changed" else 0
            done[name] += part
            planned.update(part if name == "changed" else [])
            budget.step(began)
    return _next_cursor(cursor, work, done, budget)


def _next_cursor(
    cursor: CatalogCursor, work: _Work, done: dict[str, list[str]], budget: Deadline
) -> CatalogCursor:
    """Where the next tick goes on: the changed videos not planned, the full pass's or the sweep's
    last id planned (a full pass that ended: none) and the languages it is narrowed to."""
    planned = set(done["changed"])
    pending = [vid for vid in work.changed if vid not in planned]
    rush = work.rush
    if rush is not None:
        rush = max([rush, *done["rush"]])
        if not budget.hit:
            rush = None
    sweep = done["sweep"][-1] if done["sweep"] else cursor.sweep
    only = work.only if rush is not None else []
    if len(pending) > PENDING_MAX:
        pending, rush, only = [], "", []
    return replace(cursor, pending=pending, rush=rush, sweep=sweep, only=only)


def _gated(gate: Gate | None, snapshot: Snapshot) -> set[str]:
    """The videos with partitions whose runs failed: judged every tick, so a backoff that ends is
    followed by a request at the next tick (their number follows the failures, not the catalog)."""
    if gate is None:
        return set()
    return {video_of(pk) for pk in gate.history.failures} & snapshot.videos.keys()


def plan_catalog(
    instance: dg.DagsterInstance,
    graph: AssetGraph,
    catalog: Catalog,
    storage: MediaStorage,
    fingerprints: Callable[[Sequence[str]], dict[str, str | None]],
    *,
    source_job: str = "source_half",
    dub_job: str = "dub",
    retry: RetryPolicy | None = None,
    now: float | None = None,
    cursor: CatalogCursor | None = None,
    budget_s: float | None = None,
    sweep: int = SWEEP_VIDEOS,
    chunk: int = CHUNK_VIDEOS,
    clock: Callable[[], float] = time.monotonic,
    memo: CatalogMemo | None = None,
) -> CatalogPlan:
    """One tick: register the videos it plans, add their partitions and request what is missing or
    stale, starting from ``cursor`` (None: a first tick, which plans the whole catalog); the plan's
    ``cursor`` is the next tick's.

    The steps, timed in ``plan.seconds``: the events since the cursor, the catalog's changes, then
    by chunks of ``chunk`` videos (the changed ones, then a full pass or the sweep's ``sweep``
    videos) the registration, the data versions, the runs in flight and the judgement, while
    ``budget_s`` (seconds of ``clock``; None: no limit) allows. A request for a partition whose runs
    failed waits for its backoff or its release (``quarantine.Gate``, judged at ``now``).
    """
    cursor, memo = cursor or CatalogCursor(), memo or CatalogMemo()
    budget = Deadline(budget_s, clock)
    plan = CatalogPlan(refused=dict(catalog.refused))
    halves, lap, jobs = Halves.of(graph), Laps(plan.seconds), (source_job, dub_job)
    changes = read_changes(
        instance, [*halves.source, *halves.target], observed_keys(graph), jobs, cursor.events
    )
    plan.events = changes.events
    lap("events")
    memo.index = read_index(storage) if memo.index is None else memo.index
    planner = _Planner(instance, graph, storage, fingerprints, jobs, plan, halves, memo.index)
    snapshot, changed = _snapshot(storage, catalog, cursor, memo, planner, budget)
    _refuse(plan, snapshot)
    planner.gate = Gate.read(instance, storage, retry or RetryPolicy(), jobs, now)
    lap("catalog")
    touched = {*changes.videos, *_gated(planner.gate, snapshot)}
    work = _work(cursor, snapshot, touched, halves.code_digest, sweep, changed)
    plan.cursor = _run_work(planner, snapshot, work, cursor, budget, chunk)
    plan.cursor = replace(
        plan.cursor, events=changes.watermark, catalog=snapshot.digest, codes=halves.code_digest
    )
    plan.deadline_hit = budget.hit
    if planner.dirty:
        write_index(storage, memo.index, planner.dirty)
    planner.gate.report(instance, storage)
    lap("report")
    return plan


def _refuse(plan: CatalogPlan, snapshot: Snapshot) -> None:
    """The entries refused when the catalog was resolved, and those whose source is missing."""
    plan.refused.update(snapshot.refused)
    for video in snapshot.missing:
        plan.refused[video.video_id] = f"bad_input: source not found: {video.source_uri}"


# --- the sensor ---------------------------------------------------------------------------------------

CATALOG_SENSOR = "catalog_sensor"


@dataclass
class CatalogTick:
    """One tick's plan of the catalog named by ``settings``, from the sensor's cursor, logged in the
    sensor's log; the asset graph is resolved at the first tick (``asset_graph()``) and kept, and so
    are the parsed catalog and its snapshot while the file does not change (``CatalogMemo``)."""

    settings: Settings
    source_job: str
    dub_job: str
    asset_graph: Callable[[], AssetGraph]
    clock: Callable[[], float] = time.monotonic  # the deadline's (tests count steps)
    memo: CatalogMemo = field(default_factory=CatalogMemo)
    _graph: AssetGraph | None = field(default=None, init=False)

    def graph(self) -> AssetGraph:
        if self._graph is None:
            self._graph = self.asset_graph()
        return self._graph

    def catalog(self) -> Catalog:
        """The catalog file, parsed again only when its text changed."""
        text = read_text(self.settings.catalog_url, self.settings)
        digest = sha256_bytes(text.encode("utf-8"))[:16]
        if self.memo.catalog is None or digest != self.memo.text_digest:
            self.memo.catalog, self.memo.text_digest = parse_catalog(text), digest
        return self.memo.catalog

    def __call__(self, context: dg.SensorEvaluationContext) -> CatalogPlan:
        settings = self.settings
        started = self.clock()
        catalog = self.catalog()  # (parsed again when the file changed: its seconds count in the budget)
        budget_s = settings.catalog_tick_budget_s - (self.clock() - started)
        result = plan_catalog(
            context.instance, self.graph(), catalog, storage_resource(settings).get(),
            lambda uris: source_fingerprints(uris, settings),
            source_job=self.source_job, dub_job=self.dub_job, retry=RetryPolicy.of(settings),
            cursor=CatalogCursor.parse(context.cursor), budget_s=budget_s,
            sweep=settings.catalog_sweep, clock=self.clock, memo=self.memo,
        )  # fmt: skip
        for name, why in result.refused.items():
            context.log.warning(f"catalog: refused {name}: {why}")
        context.log.info(
            f"catalog: {result.events} events, {result.changed} changed videos, {result.swept} partitions "
            f"swept, deadline hit: {result.deadline_hit}; seconds: {result.seconds}"
        )
        for name, why in result.skipped.items():
            context.log.info(f"catalog: skip {name}: {why}")
        return result


def _for_job(request: dg.RunRequest, job_name: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=request.run_key, job_name=job_name, partition_key=request.partition_key, tags=request.tags
    )


def build_catalog_sensor(
    settings: Settings,
    source_job: Job,
    dub_job: Job,
    asset_graph: Callable[[], AssetGraph],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> dg.SensorDefinition:
    """The catalog sensor: every ``DUBBING_CATALOG_INTERVAL_S`` seconds one tick (``plan_catalog``)
    from its cursor; source-half requests go to ``source_job``, dubs to ``dub_job``.
    ``asset_graph()`` gives the graph to judge staleness (``Definitions.resolve_asset_graph()`` of
    the code location, resolved at the first tick)."""
    tick = CatalogTick(settings, source_job.name, dub_job.name, asset_graph, clock)

    @dg.sensor(
        name=CATALOG_SENSOR,
        jobs=[source_job, dub_job],
        minimum_interval_seconds=settings.catalog_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Catalog videos and video × language partitions missing or stale (incremental ticks).",
    )
    def catalog_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        plan = tick(context)
        requests = [_for_job(r, source_job.name) for r in plan.source_requests]
        requests += [_for_job(r, dub_job.name) for r in plan.dub_requests]
        skip = None if requests else "nothing missing or stale among the partitions planned this tick"
        return dg.SensorResult(run_requests=requests, cursor=plan.cursor.dump(), skip_reason=skip)

    return catalog_sensor


def catalog_enabled(settings: Settings) -> bool:
    return bool(settings.catalog_url)


__all__ = [
    "CatalogCursor",
    "CatalogVideo",
    "Freshness",
    "build_catalog_sensor",
    "parse_catalog",
    "plan_catalog",
]
