"""New videos start themselves: an S3 drop sensor (production), an inbox folder sensor (embedded).

What a drop launches
--------------------
A dub needs the video's source half (``videos`` partition) and then one target half per language
(``video_language`` partition, ``"es|talk"``). The two halves have different partitions
definitions, so they are two jobs, and one run cannot carry both:

1. the drop sensor requests one ``source_half`` run per new object version, tagged with the
   languages it is to be dubbed into (``dubbing/languages``);
2. ``dub_after_source_half``, a run-status sensor on ``source_half`` successes, reads that tag and
   requests one ``dub`` run per language (``run_key`` = source run id + language).

Why not ``AutomationCondition.eager()`` on the target half: ``video_language`` is the full product
videos × languages, so eager would dub *every* video into *every* language any video ever asked
for (one German request would dub the whole library into German), and it ignores updates made
before its first evaluation. The explicit chain dubs exactly what was asked; the catalog schedules
(``catalog.py``) are the safety net that re-requests anything missing or stale.

Exactly once per object version
-------------------------------
``run_key`` = object key + ETag (S3) or relative path + SHA-256 (inbox): a re-upload with new
content gets a new key and runs again, a re-upload of the same bytes does not (the daemon never
launches a ``run_key`` twice, and the sensor also skips keys the instance already ran).

Two S3 modes. **Listing** (default): every tick lists the prefix and handles each object version
not seen yet whose LastModified is within ``DUBBING_DROP_LOOKBACK`` of the newest seen (a
multipart upload is stamped with the time it *started*, so a long upload that completes after a
short one is listed behind it: a time cursor alone would skip it forever). A tick costs one
request per 1,000 objects: fine up to about 100,000. **Queue** (``DUBBING_DROP_QUEUE_URL``): the
bucket's S3 event notifications go to SQS and the sensor consumes them, so a tick costs O(new
objects) whatever the bucket holds; a message is deleted only once its run is recorded. The queue may be
fed by S3 directly, through SNS (raw or enveloped) or through EventBridge (``drop_events.py`` reads
them all); a malformed message is logged and left for the queue's dead-letter queue, never failing the
tick (``docs/production.md``, "Drops").

A drop that cannot be dubbed (languages that are not language codes) is refused on its own: no
run, and a ``source_video`` observation on its partition says why.

Languages per object: S3 object metadata ``x-amz-meta-languages`` (``es,de``; set at upload time,
so it arrives atomically with the video), else ``DUBBING_TARGET_LANGUAGES``. In the inbox, a
sidecar ``<file>.json`` ``{"languages": [...]}`` (files have no metadata).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import dagster as dg

from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.common.ids import video_id_from_name
from dubbing_pipeline.errors import BadInputError, ConfigurationError, DubbingError
from dubbing_pipeline.freshness import stat_stamp
from dubbing_pipeline.orchestration.drop_events import parse_message
from dubbing_pipeline.orchestration.partitions import languages, partition_tags, video_language_key, videos
from dubbing_pipeline.orchestration.registry import claim_video_id, register_video
from dubbing_pipeline.orchestration.resources import storage_resource
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage, s3_service

if TYPE_CHECKING:  # what ``dg.define_asset_job`` returns (Dagster does not export its name)
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

LANGUAGES_TAG = "dubbing/languages"
SOURCE_URI_TAG = "dubbing/source_uri"
FINGERPRINT_TAG = "dubbing/source_fingerprint"
TRIGGER_TAG = "dubbing/trigger"
SOURCE_RUN_TAG = "dubbing/source_run"  # on a dub run the chain sensor asked for: its source_half run
RUN_KEY_TAG = "dagster/run_key"
PARTITION_TAG = "dagster/partition"

Job: TypeAlias = "dg.JobDefinition | UnresolvedAssetJobDefinition"
"""A job a sensor or schedule requests runs of (``definitions.source_half_job``, ``dub_job``)."""

MAX_PER_TICK = 500
VIDEOS, LANGUAGES = "videos", "languages"  # the dynamic partitions definitions' names
_LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


# --- small pure helpers -------------------------------------------------------------------


def parse_languages(spec: str | Iterable[object] | None) -> list[str]:
    """``"es, de"`` or ``["es", "DE"]`` → ``["es", "de"]``.

    Anything that is not a language code is a :class:`BadInputError` naming it, never dropped
    silently: a typo must not quietly dub into the default languages instead.
    """
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    out: list[str] = []
    bad: list[str] = []
    for item in items:
        code = item.strip().lower().replace("_", "-")
        if not code:
            continue
        if not _LANG.match(code):
            bad.append(item.strip()[:20])
        elif code not in out:
            out.append(code)
    if bad:
        raise BadInputError(
            f"not a language code: {', '.join(repr(b) for b in bad)} (use ISO 639 codes: es, de, pt-br)"
        )
    return out


def suffixes(settings: Settings) -> tuple[str, ...]:
    return tuple(s.strip().lower() for s in settings.drop_suffixes.split(",") if s.strip())


def _drop_name(relative_key: str) -> str:
    """The drop-relative key with its folders folded into the name (``shows/ep1.mp4`` → ``shows-ep1.mp4``)."""
    return relative_key.replace("\\", "/").strip("/").replace("/", "-")


def drop_video_id(relative_key: str) -> str:
    """The base video id of an object key relative to the drop prefix (before the registry's rule).

    Folders are kept (``shows/ep1.mp4`` → ``shows-ep1``) so equal file names in different folders do
    not collide; ``..``, slashes and anything outside ``[a-z0-9._-]`` never survive.
    """
    return video_id_from_name(_drop_name(relative_key))


def resolve_video_id(storage: MediaStorage, relative_key: str, source_uri: str) -> str:
    """The id of a dropped object, claimed in the registry by the one id rule
    (:func:`~dubbing_pipeline.orchestration.registry.claim_video_id`): :func:`drop_video_id`, or
    that id with a short hash of the source URI when another source already holds it."""
    return claim_video_id(storage, _drop_name(relative_key), source_uri)


@dataclass(frozen=True)
class Drop:
    """One video object version: where it is, its version and when it arrived."""

    key: str  # object key / path relative to the inbox
    version: str  # S3 ETag, or the file's SHA-256
    modified: int  # whole seconds
    source_uri: str
    relative_key: str
    languages: tuple[str, ...] = ()
    refused: str = ""  # why this object cannot be dubbed (a classified, one-line reason)

    @property
    def run_key(self) -> str:
        return f"{self.key}@{self.version}"


def _short(run_key: str) -> str:
    return hashlib.sha256(run_key.encode("utf-8")).hexdigest()[:16]


@dataclass
class DropCursor:
    """What the listing sensor has handled, bounded by a look-back window.

    ``newest``: the newest LastModified second handled. ``seen``: a short hash of the key+version of
    every object handled whose LastModified is within ``lookback`` seconds of ``newest``, with that
    second. An object is new when it is within the window and not seen, *whatever its
    LastModified*: S3 stamps a multipart upload with the time it *started*, so a long upload that
    completes after a short one is listed behind it. The window bounds the state (at most the drops
    of ``lookback`` seconds); an object that appears more than ``lookback`` after its stamp is not
    seen by the listing mode (use the queue mode for buckets where that can happen).

    ``after``: a tick lists a slice of the bucket within ``DUBBING_DROP_LIST_BUDGET_S`` and the next
    goes on after its last key, so a lap of a large bucket spans ticks; an object waits at most one
    lap (ceil(objects / objects listed a tick) ticks), which must stay well under ``lookback``.
    """

    newest: int = -1
    seen: dict[str, int] = field(default_factory=dict)
    after: str = ""  # the listing goes on after this key ("": from the first, a lap begins)

    @classmethod
    def parse(cls, raw: str | None) -> DropCursor:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(
            newest=int(data.get("newest", -1)),
            seen={str(k): int(v) for k, v in data.get("seen", {}).items()},
            after=str(data.get("after") or ""),
        )

    def dump(self) -> str:
        data: dict[str, object] = {"newest": self.newest, "seen": self.seen}
        data |= {"after": self.after} if self.after else {}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def horizon(self, lookback: int) -> int:
        return self.newest - lookback if self.newest >= 0 else -1


def select_new(
    drops: Iterable[Drop], cursor: DropCursor, lookback: int, limit: int = MAX_PER_TICK
) -> tuple[list[Drop], DropCursor]:
    """Drops within the look-back window not handled yet, oldest first, at most ``limit`` a tick."""
    horizon = cursor.horizon(lookback)
    fresh = sorted(
        (d for d in drops if d.modified >= horizon and _short(d.run_key) not in cursor.seen),
        key=lambda d: (d.modified, d.key, d.version),
    )[:limit]
    seen = dict(cursor.seen)
    newest = max([cursor.newest, *(d.modified for d in fresh)])
    for drop in fresh:
        seen[_short(drop.run_key)] = drop.modified
    kept = {h: m for h, m in seen.items() if m >= newest - lookback}
    return fresh, DropCursor(newest=newest, seen=kept)


# --- turning drops into registrations, partitions and run requests --------------------------


def already_ran(instance: dg.DagsterInstance, run_keys: Sequence[str]) -> set[str]:
    """Which of ``run_keys`` the instance already has a run for (one query per 500 keys)."""
    found: set[str] = set()
    keys = sorted(set(run_keys))
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        for record in instance.get_run_records(dg.RunsFilter(tags={RUN_KEY_TAG: part})):
            found.add(record.dagster_run.tags.get(RUN_KEY_TAG, ""))
    return found


T = TypeVar("T")
U = TypeVar("U")


def in_threads(fn: Callable[[T], U], items: Sequence[T], threads: int = 8) -> list[U]:
    """``fn`` over ``items`` in a few threads (S3 round trips), results in order."""
    if len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        return list(pool.map(fn, items))


@dataclass
class DropPlan:
    """What a tick asks the daemon for: runs, partition adds, and the refusals it reports."""

    requests: list[dg.RunRequest] = field(default_factory=list)
    adds: list[dg.AddDynamicPartitionsRequest] = field(default_factory=list)
    refusals: list[dg.AssetObservation] = field(default_factory=list)

    def result(self, cursor: str, empty: str) -> dg.SensorResult:
        return dg.SensorResult(
            run_requests=self.requests,
            dynamic_partitions_requests=self.adds,
            asset_events=self.refusals,
            cursor=cursor,
            skip_reason=None if self.requests or self.refusals else dg.SkipReason(empty),
        )


def refusal(video_id: str, drop: Drop) -> dg.AssetObservation:
    """A refused drop, shown on its own ``source_video`` partition: code, reason and object."""
    code, _, message = drop.refused.partition(": ")
    return dg.AssetObservation(
        asset_key="source_video",
        partition=video_id,
        description=f"refused: {drop.refused}",
        metadata={
            "error_code": dg.MetadataValue.text(code),
            "error": dg.MetadataValue.text(message),
            "source_uri": dg.MetadataValue.text(drop.source_uri),
            "version": dg.MetadataValue.text(drop.version),
        },
    )


def plan_drops(
    instance: dg.DagsterInstance,
    storage: MediaStorage,
    drops: Sequence[Drop],
    default_languages: Sequence[str],
    trigger: str,
) -> DropPlan:
    """Register each new version's source; one ``source_half`` request per version; batched adds.

    A refused drop (say, ``x-amz-meta-languages: spanish``) gets no run: its partition is added and
    a ``source_video`` observation says why, so it shows in the UI on its own partition.
    """
    plan = DropPlan()
    ran = already_ran(instance, [d.run_key for d in drops])
    todo = [d for d in drops if d.run_key not in ran]  # a duplicate of a run already launched: skip
    if not todo:
        return plan
    # claims are atomic: two new sources that map to one id in the same tick get two ids
    ids = in_threads(lambda d: resolve_video_id(storage, d.relative_key, d.source_uri), todo)
    have = set(instance.get_dynamic_partitions(VIDEOS))
    have_langs = set(instance.get_dynamic_partitions(LANGUAGES))
    new_videos = [vid for vid in dict.fromkeys(ids) if vid not in have]
    wanted_langs: list[str] = []
    registrations: list[tuple[str, Drop, list[str]]] = []  # (video id, drop, its languages)
    for drop, vid in zip(todo, ids, strict=True):
        if drop.refused:
            plan.refusals.append(refusal(vid, drop))
            continue
        langs = list(drop.languages) or list(default_languages)
        registrations.append((vid, drop, langs))
        wanted_langs += [lang for lang in langs if lang not in wanted_langs]
        plan.requests.append(
            dg.RunRequest(
                run_key=drop.run_key,
                partition_key=vid,
                tags={
                    **partition_tags(vid),
                    LANGUAGES_TAG: ",".join(langs),
                    SOURCE_URI_TAG: drop.source_uri,
                    FINGERPRINT_TAG: drop.version,
                    TRIGGER_TAG: trigger,
                },
            )
        )
    now = time.time()
    in_threads(
        lambda r: register_video(
            storage, r[0], r[1].source_uri,
            fingerprint=r[1].version, fingerprint_since=now, languages=r[2], drop_key=r[1].key,
        ),
        registrations,
    )  # fmt: skip
    new_langs = [lang for lang in wanted_langs if lang not in have_langs]
    if new_videos:
        plan.adds.append(videos.build_add_request(new_videos))
    if new_langs:
        plan.adds.append(languages.build_add_request(new_langs))
    return plan


def with_languages(drop: Drop, spec: str | Iterable[object] | None) -> Drop:
    """The drop with its own languages, or refused when they are not language codes."""
    try:
        return replace(drop, languages=tuple(parse_languages(spec)))
    except DubbingError as exc:
        return replace(drop, refused=f"{exc.code}: {exc.message}")


def default_languages(settings: Settings) -> list[str]:
    try:
        return parse_languages(settings.target_languages)
    except BadInputError as exc:
        raise ConfigurationError(f"DUBBING_TARGET_LANGUAGES: {exc.message}") from None


# --- S3 ------------------------------------------------------------------------------------


def s3_client(settings: Settings, service: str = "s3") -> Any:
    """A boto3 client of ``service`` (``s3``, ``sqs``) at the settings' S3 endpoint and region."""
    return s3_service(settings.s3_endpoint_url, settings.s3_region).client(service)


def listing_client(settings: Settings) -> Any:
    """An S3 client for big listings: timestamps stay text (``S3Service.listing_client``);
    :func:`seconds` reads them."""
    return s3_service(settings.s3_endpoint_url, settings.s3_region).listing_client()


def seconds(stamp: object) -> int:
    """Whole seconds since the epoch of an S3 timestamp (a datetime, or its ISO 8601 text)."""
    if isinstance(stamp, datetime):
        return int(stamp.timestamp())
    return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp())


def list_s3_drops(client: Any, bucket: str, prefix: str, video_suffixes: Sequence[str]) -> list[Drop]:
    """Every video object under ``prefix`` (ListObjectsV2 has no server-side time filter)."""
    return list_s3_slice(client, bucket, prefix, video_suffixes)[0]


def list_s3_slice(
    client: Any,
    bucket: str,
    prefix: str,
    video_suffixes: Sequence[str],
    *,
    after: str = "",
    budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[Drop], str]:
    """The video objects under ``prefix`` after the key ``after``, page by page (1,000 keys) while
    ``budget_s`` allows another page (always one); and the last key listed when the budget stopped
    it ("": the listing reached the end of the prefix, a lap is over)."""
    out: list[Drop] = []
    paginator = client.get_paginator("list_objects_v2")
    start = previous = clock()
    longest, last = 0.0, ""
    pages = paginator.paginate(Bucket=bucket, Prefix=prefix, **({"StartAfter": after} if after else {}))
    for page in pages:  # (each page is requested as the loop asks for it)
        contents = page.get("Contents", [])
        out += [_drop(bucket, prefix, obj) for obj in contents if _is_video(obj["Key"], video_suffixes)]
        last = str(contents[-1]["Key"]) if contents else last
        now = clock()
        longest, previous = max(longest, now - previous), now
        if budget_s is not None and page.get("IsTruncated") and now - start + longest > budget_s:
            return out, last
    return out, ""


def _is_video(key: str, video_suffixes: Sequence[str]) -> bool:
    return not key.endswith("/") and key.lower().endswith(tuple(video_suffixes))


def _drop(bucket: str, prefix: str, obj: Mapping[str, Any]) -> Drop:
    key = str(obj["Key"])
    return Drop(
        key=key,
        version=str(obj["ETag"]).strip('"'),
        modified=seconds(obj["LastModified"]),
        source_uri=f"s3://{bucket}/{key}",
        relative_key=key[len(prefix) :] if prefix and key.startswith(prefix) else key,
    )


def with_s3_languages(client: Any, bucket: str, drop: Drop) -> Drop:
    """Read ``x-amz-meta-languages`` (one HEAD per new object); invalid codes refuse the drop."""
    head = client.head_object(Bucket=bucket, Key=drop.key)
    return with_languages(drop, head.get("Metadata", {}).get("languages"))


SensorFn = Callable[[dg.SensorEvaluationContext], dg.SensorResult]


def running_sensor(
    name: str, job: Job, interval: int, description: str
) -> Callable[[SensorFn], dg.SensorDefinition]:
    """The decorator of a drop sensor: running by default, every ``interval`` seconds at most."""
    return dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )


def _storage(settings: Settings) -> MediaStorage:
    return storage_resource(settings).get()


def build_s3_drop_sensor(
    settings: Settings, job: Job, *, name: str = "s3_drop_sensor", interval: int = 30
) -> dg.SensorDefinition:
    """The drop sensor: consumes the bucket's event queue when ``DUBBING_DROP_QUEUE_URL`` is set,
    else lists the prefix every ``interval`` seconds: a slice of it a tick, for at most
    ``DUBBING_DROP_LIST_BUDGET_S``, the next tick going on after the last key listed (a lap of a
    large bucket spans ticks: a new object waits at most one lap; past ~100,000 objects use the queue)."""
    if settings.drop_queue_url:
        return build_s3_queue_sensor(settings, job, name=name, interval=interval)
    bucket, prefix = settings.drop_bucket, settings.drop_prefix
    video_suffixes = suffixes(settings)
    langs = default_languages(settings)

    @running_sensor(
        name,
        job,
        interval,
        f"New video objects under s3://{bucket}/{prefix} start a source_half run each (listing mode).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        client, lister = s3_client(settings), listing_client(settings)
        cursor = DropCursor.parse(context.cursor)
        listed, after = list_s3_slice(
            lister, bucket, prefix, video_suffixes, after=cursor.after, budget_s=settings.drop_list_budget_s
        )
        drops, new_cursor = select_new(listed, cursor, settings.drop_lookback)
        # more new objects in this slice than a tick takes: the next tick lists it again
        new_cursor.after = cursor.after if len(drops) >= MAX_PER_TICK else after
        drops = in_threads(lambda d: with_s3_languages(client, bucket, d), drops)
        plan = plan_drops(context.instance, _storage(settings), drops, langs, "s3_drop")
        return plan.result(new_cursor.dump(), f"no new objects under s3://{bucket}/{prefix}")

    return _sensor


# --- S3 event notifications through SQS ------------------------------------------------------------


@dataclass(frozen=True)
class QueueMessage:
    """One SQS message as received: its id, receipt handle, body and how often it was received."""

    id: str
    receipt: str
    body: str
    receives: int = 1

    @classmethod
    def of(cls, message: Mapping[str, Any]) -> QueueMessage:
        """A message of a ``ReceiveMessage`` response."""
        receives = message.get("Attributes", {}).get("ApproximateReceiveCount", 1)
        return cls(
            str(message["MessageId"]), str(message["ReceiptHandle"]), str(message["Body"]), int(receives)
        )


@dataclass(frozen=True)
class Notification:
    """What one message asks for: the new videos it announces, or why it is malformed."""

    drops: tuple[Drop, ...] = ()
    poison: str = ""  # "kind: detail" (a drop_events.PoisonKind): left for the dead-letter queue


def parse_notification(body: str, bucket: str, prefix: str, video_suffixes: Sequence[str]) -> Notification:
    """The video objects a message announces: ``ObjectCreated`` under ``prefix`` with a video suffix,
    in any shape :func:`~dubbing_pipeline.orchestration.drop_events.parse_message` reads (S3 directly,
    SNS raw or enveloped, EventBridge). A test event, a removal, another prefix or suffix announce
    nothing; a malformed message says why (and announces nothing, whatever else it holds)."""
    parsed = parse_message(body, bucket)
    if parsed.poison is not None:
        return Notification(poison=parsed.reason)
    drops = tuple(
        Drop(obj.key, obj.version, obj.modified, f"s3://{bucket}/{obj.key}", obj.key[len(prefix) :])
        for obj in parsed.created
        if obj.key.startswith(prefix)
        and not obj.key.endswith("/")
        and obj.key.lower().endswith(tuple(video_suffixes))
    )
    return Notification(drops=drops)


@dataclass
class QueueCursor:
    """Messages whose run requests were returned by the previous tick: deleted once recorded."""

    pending: list[tuple[str, str]] = field(default_factory=list)  # (receipt handle, run key)

    @classmethod
    def parse(cls, raw: str | None) -> QueueCursor:
        return cls([(str(r), str(k)) for r, k in json.loads(raw).get("pending", [])]) if raw else cls()

    def dump(self) -> str:
        return json.dumps({"pending": self.pending}, separators=(",", ":"))


def receive(client: Any, queue_url: str, limit: int, visibility: int) -> list[QueueMessage]:
    """Up to ``limit`` messages, 10 per request, without waiting."""
    out: list[QueueMessage] = []
    while len(out) < limit:
        # AttributeNames rather than MessageSystemAttributeNames: every boto3 >= 1.34 knows it
        got = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=min(10, limit - len(out)), VisibilityTimeout=visibility,
            WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])  # fmt: skip
        if not got:
            break
        out += [QueueMessage.of(m) for m in got]
    return out


def _batched(call: Callable[..., Any], queue_url: str, receipts: Sequence[str], **extra: object) -> list[str]:
    """``call`` (an SQS ``*_batch`` method) over ``receipts``, 10 a request: the receipts it refused."""
    failed: list[str] = []
    for start in range(0, len(receipts), 10):
        part = list(receipts[start : start + 10])
        entries = [{"Id": str(i), "ReceiptHandle": r, **extra} for i, r in enumerate(part)]
        response = call(QueueUrl=queue_url, Entries=entries)
        failed += [part[int(f["Id"])] for f in response.get("Failed", [])]
    return failed


def delete_messages(client: Any, queue_url: str, receipts: Sequence[str]) -> list[str]:
    """Delete by receipt handle; the receipts SQS refused (an old handle of a message received again
    since: it comes back, asks again under the same run key, and is deleted then)."""
    return _batched(client.delete_message_batch, queue_url, receipts)


def release_messages(client: Any, queue_url: str, receipts: Sequence[str]) -> list[str]:
    """Make messages visible again now: a malformed one is received again at the next tick, so it
    reaches the dead-letter queue after ``maxReceiveCount`` ticks, not that many visibility timeouts."""
    return _batched(client.change_message_visibility_batch, queue_url, receipts, VisibilityTimeout=0)


@dataclass(frozen=True)
class Looked:
    """A drop after its HEAD: with its languages (or refused), gone, or not readable for now."""

    drop: Drop
    gone: bool = False  # deleted since it was announced: nothing to run
    error: str = ""  # the HEAD failed (403, 5xx…): its messages are received again after the timeout


def look_up(client: Any, bucket: str, drop: Drop) -> Looked:
    """HEAD one announced object (:func:`with_s3_languages`); its failure is this object's alone."""
    from botocore.exceptions import ClientError  # lazy: boto3 loads only for S3

    try:
        return Looked(with_s3_languages(client, bucket, drop))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return Looked(drop, gone=True)
        return Looked(drop, error=f"HEAD s3://{bucket}/{drop.key} failed: {code or exc}")


def settled(pending: Sequence[tuple[str, str]], ran: Collection[str]) -> list[str]:
    """The receipts all of whose run keys ran (a message of two objects waits for both runs)."""
    keys: dict[str, set[str]] = {}
    for receipt, key in pending:
        keys.setdefault(receipt, set()).add(key)
    done = set(ran)
    return [receipt for receipt, its in keys.items() if its <= done]


@dataclass
class QueueTick:
    """What a tick does with the messages it received."""

    pending: list[tuple[str, str]] = field(default_factory=list)  # (receipt, run key): wait for the run
    done: list[str] = field(default_factory=list)  # nothing to run (test event, not a video…): deleted
    poison: list[str] = field(default_factory=list)  # malformed: released, for the dead-letter queue
    warnings: list[str] = field(default_factory=list)  # one line per message left on the queue


def sort_messages(
    found: Sequence[tuple[QueueMessage, Notification]], looked: Mapping[str, Looked]
) -> QueueTick:
    """Each message on its own: a malformed one is left (named, with its reason), one whose object
    could not be read waits, one with runs to ask for waits for them, any other is done."""
    tick = QueueTick()
    for message, note in found:
        if note.poison:
            tick.poison.append(message.receipt)
            tick.warnings.append(
                f"drop queue: message {message.id} (receive {message.receives}) left for the dead-letter "
                f"queue: {note.poison}"
            )
            continue
        views = [looked[d.run_key] for d in note.drops]
        errors = [v.error for v in views if v.error]
        if errors:
            tick.warnings.append(f"drop queue: message {message.id} waits for a retry: {errors[0]}")
            continue
        targets = dict.fromkeys(v.drop.run_key for v in views if not v.gone and not v.drop.refused)
        tick.pending += [(message.receipt, key) for key in targets]
        if not targets:
            tick.done.append(message.receipt)
    return tick


def build_s3_queue_sensor(
    settings: Settings, job: Job, *, name: str = "s3_drop_sensor", interval: int = 30
) -> dg.SensorDefinition:
    """Queue mode: S3 event notifications → SQS → this sensor; a tick costs O(new objects).

    A message is deleted only at the next tick, once the run its drop asked for is recorded in the
    instance (or the drop needed none: a duplicate, a refusal, not a video). Until then it stays
    invisible (``VisibilityTimeout`` = 10 × the interval); if a tick's requests were lost, the
    message comes back and asks again, and the run key makes the repeat harmless. A malformed
    message is logged, never deleted and made visible again at once: the queue's redrive policy
    moves it to the dead-letter queue after ``maxReceiveCount`` receives; it never fails the tick.
    """
    bucket, prefix, queue_url = settings.drop_bucket, settings.drop_prefix, settings.drop_queue_url
    video_suffixes = suffixes(settings)
    langs = default_languages(settings)

    @running_sensor(
        name,
        job,
        interval,
        f"New video objects under s3://{bucket}/{prefix}, announced on {queue_url}, start a "
        "source_half run each (queue mode).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        sqs, s3 = s3_client(settings, "sqs"), s3_client(settings)
        pending = QueueCursor.parse(context.cursor).pending
        recorded = set(settled(pending, already_ran(context.instance, [key for _, key in pending])))
        refused = delete_messages(sqs, queue_url, sorted(recorded))
        still = [(r, k) for r, k in pending if r not in recorded]
        messages = receive(sqs, queue_url, MAX_PER_TICK, visibility=10 * interval)
        found = [(m, parse_notification(m.body, bucket, prefix, video_suffixes)) for m in messages]
        unique = list({d.run_key: d for _, note in found for d in note.drops}.values())
        looked = {v.drop.run_key: v for v in in_threads(lambda d: look_up(s3, bucket, d), unique)}
        tick = sort_messages(found, looked)
        for line in tick.warnings:
            context.log.warning(line)
        usable = [v.drop for v in looked.values() if not v.gone and not v.error]
        plan = plan_drops(context.instance, _storage(settings), usable, langs, "s3_drop")
        pending = still + tick.pending
        requested = {r.run_key for r in plan.requests}
        ran = already_ran(context.instance, [key for _, key in pending if key not in requested])
        done = set(tick.done + settled(pending, ran))
        refused += delete_messages(sqs, queue_url, sorted(done))
        release_messages(sqs, queue_url, tick.poison)
        if refused:  # an old receipt of a message received again since: deleted when it comes back
            context.log.info(f"drop queue: SQS refused {len(refused)} deletions; they come back and go then")
        pending = [(r, k) for r, k in pending if r not in done]
        empty = f"no new notifications on {queue_url}" + (
            f" ({len(tick.poison)} malformed, left for the dead-letter queue)" if tick.poison else ""
        )
        return plan.result(QueueCursor(pending).dump(), empty)

    return _sensor


# --- local inbox (embedded default) ----------------------------------------------------------


def _sidecar_languages(path: Path) -> str | list[object] | None:
    """The ``languages`` of ``<file>.json`` beside a video (None without one); unreadable → refused."""
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{sidecar.name} is not JSON") from exc
    langs = data.get("languages") if isinstance(data, dict) else None
    return langs if isinstance(langs, (str, list)) else None


@dataclass(frozen=True)
class Hashed:
    """A file the inbox sensor has read: its ``freshness.stat_stamp`` and the SHA-256 of its content."""

    stamp: list[int]
    sha256: str


@dataclass
class InboxCursor:
    """What the inbox sensor has hashed, by path relative to the inbox.

    Stored as ``{path: [size, mtime_ns, ctime_ns, inode, sha256]}`` (sorted keys, no spaces): a file
    is hashed again only when its ``stat`` changed.
    """

    files: dict[str, Hashed] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> InboxCursor:
        data = json.loads(raw) if raw else {}
        return cls({rel: Hashed([int(v) for v in entry[:-1]], str(entry[-1])) for rel, entry in data.items()})

    def dump(self) -> str:
        files = {rel: [*seen.stamp, seen.sha256] for rel, seen in self.files.items()}
        return json.dumps(files, sort_keys=True, separators=(",", ":"))

    def sha256(self, path: Path, rel: str, stamp: list[int]) -> str:
        """The content hash of ``path``: remembered while its ``stat`` is unchanged, else read."""
        seen = self.files.get(rel)
        return seen.sha256 if seen is not None and seen.stamp == stamp else sha256_file(path)


def _inbox_videos(inbox: Path, video_suffixes: Sequence[str]) -> Iterator[Path]:
    for path in sorted(inbox.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name.lower().endswith(tuple(video_suffixes)):
            yield path


def scan_inbox(
    inbox: Path, video_suffixes: Sequence[str], memo: InboxCursor, settle_seconds: float
) -> tuple[list[Drop], InboxCursor]:
    """Files under ``inbox`` with a content hash; a file is re-hashed only when its ``stat`` changed.

    ``memo`` is the cursor (``freshness.stat_stamp``: a file replaced in place with its old size and
    mtime is read again). Files younger than ``settle_seconds`` may still be being written and wait
    for the next tick.
    """
    found: list[Drop] = []
    new_memo = InboxCursor()
    now = time.time()
    if not inbox.is_dir():
        return found, new_memo
    for path in _inbox_videos(inbox, video_suffixes):
        rel = path.relative_to(inbox).as_posix()
        stat = path.stat()
        if now - stat.st_mtime < settle_seconds:
            continue
        stamp = stat_stamp(stat)
        sha = memo.sha256(path, rel, stamp)
        new_memo.files[rel] = Hashed(stamp, sha)
        drop = Drop(
            key=rel, version=sha, modified=int(stat.st_mtime), source_uri=path.resolve().as_uri(),
            relative_key=rel,
        )  # fmt: skip
        try:
            found.append(with_languages(drop, _sidecar_languages(path)))
        except BadInputError as exc:
            found.append(replace(drop, refused=f"{exc.code}: {exc.message}"))
    return found, new_memo


def build_inbox_sensor(
    settings: Settings,
    job: dg.JobDefinition | dg.UnresolvedAssetJobDefinition,
    *,
    name: str = "inbox_sensor",
    interval: int = 15,
    settle_seconds: float = 2.0,
) -> dg.SensorDefinition:
    inbox = Path(settings.inbox_dir).expanduser()
    video_suffixes = suffixes(settings)
    langs = default_languages(settings)

    @running_sensor(
        name,
        job,
        interval,
        f"New videos in {inbox} start a source_half run each (languages: <file>.json).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        memo = InboxCursor.parse(context.cursor)
        found, new_memo = scan_inbox(inbox, video_suffixes, memo, settle_seconds)
        drops = [d for d in found if d.key not in memo.files or memo.files[d.key].sha256 != d.version]
        plan = (
            plan_drops(context.instance, _storage(settings), drops, langs, "inbox") if drops else DropPlan()
        )
        return plan.result(new_memo.dump(), f"no new files in {inbox}")

    return _sensor


# --- source half done → one dub run per language ----------------------------------------------


RUNS_QUERY = 2000  # partitions named per runs query


def partitions_with_runs(
    instance: dg.DagsterInstance, job_names: Iterable[str], partitions: Collection[str], **filters: Any
) -> set[str]:
    """The ``partitions`` (only those: the cost follows them, not the run queue) with a run of
    ``job_names`` that ``filters`` (more ``RunsFilter`` fields) select; one query per 2,000."""
    found: set[str] = set()
    wanted = sorted(partitions)
    for job_name in job_names:
        for start in range(0, len(wanted), RUNS_QUERY):
            tags = {PARTITION_TAG: wanted[start : start + RUNS_QUERY]}
            runs = instance.get_runs(dg.RunsFilter(job_name=job_name, tags=tags, **filters))
            found.update(str(run.tags[PARTITION_TAG]) for run in runs if run.tags.get(PARTITION_TAG))
    return found


ENDED_BADLY = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
DUBBED = [s for s in dg.DagsterRunStatus if s not in ENDED_BADLY]  # a run in flight or succeeded


def dubbed_since(
    instance: dg.DagsterInstance, dub_job: str, source_run_id: str, video: str, langs: Sequence[str]
) -> set[str]:
    """The ``langs`` of ``video`` whose dub run (in flight or succeeded) was created after the
    source run ``source_run_id`` ended: it reads that run's source half, so a second would repeat it.

    The catalog sensor leaves a pair whose source half just succeeded to this chain; this is the
    same guard from the other side, so two triggers never dub one pair for one source twice.
    """
    record = instance.get_run_record_by_id(source_run_id)
    if record is None or record.end_time is None:
        return set()
    ended = datetime.fromtimestamp(record.end_time, tz=UTC)
    pairs = {str(video_language_key(video, lang)): lang for lang in langs}
    dubbed = partitions_with_runs(instance, [dub_job], pairs, statuses=DUBBED, created_after=ended)
    return {pairs[pk] for pk in dubbed}


def build_dub_chain_sensor(
    source_job: Job, dub_job: Job, *, name: str = "dub_after_source_half"
) -> dg.RunStatusSensorDefinition:
    @dg.run_status_sensor(
        name=name,
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[source_job],
        request_job=dub_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A successful source_half run tagged dubbing/languages: one dub run per language.",
    )
    def _sensor(context: dg.RunStatusSensorContext) -> Iterator[dg.SkipReason | dg.RunRequest]:
        run = context.dagster_run
        video = run.tags.get(PARTITION_TAG)
        langs = parse_languages(run.tags.get(LANGUAGES_TAG))  # written by this module: valid
        if not video or not langs:
            yield dg.SkipReason(f"run {run.run_id} names no languages to dub")
            return
        taken = dubbed_since(context.instance, dub_job.name, run.run_id, video, langs)
        if taken:  # another trigger (the catalog) already asked for these pairs' dubs
            context.log.info(f"{video}: a dub run exists since run {run.run_id} ended for {sorted(taken)}")
        if not set(langs) - taken:
            yield dg.SkipReason(f"every dub of {video} was asked for since run {run.run_id} ended")
            return
        for lang in (x for x in langs if x not in taken):
            yield dg.RunRequest(
                run_key=f"{run.run_id}:{lang}",
                partition_key=str(video_language_key(video, lang)),
                tags={
                    TRIGGER_TAG: run.tags.get(TRIGGER_TAG, "source_half"),
                    SOURCE_RUN_TAG: run.run_id,
                    **({FINGERPRINT_TAG: run.tags[FINGERPRINT_TAG]} if FINGERPRINT_TAG in run.tags else {}),
                },
            )

    return _sensor


def inbox_enabled(settings: Settings) -> bool:
    return settings.deployment != "production" and bool(settings.inbox_dir)


def drops_enabled(settings: Settings) -> bool:
    return bool(settings.drop_bucket)


__all__ = [
    "Drop",
    "DropCursor",
    "QueueCursor",
    "build_dub_chain_sensor",
    "build_inbox_sensor",
    "build_s3_drop_sensor",
    "build_s3_queue_sensor",
    "drop_video_id",
    "parse_languages",
    "parse_notification",
    "partitions_with_runs",
    "plan_drops",
    "select_new",
]
