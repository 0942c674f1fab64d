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
launches a ``run_key`` twice, and the sensor also skips keys the instance already ran). The S3
cursor keeps ``since`` (the newest LastModified second handled) and the key+ETag pairs seen *at*
that second, and lists with ``>=``: two objects dropped within one second are both seen even when
the tick ran between them (``dagster_aws.s3.sensor.get_objects`` compares with a strict ``>``).

Languages per object: S3 object metadata ``x-amz-meta-languages`` (``es,de``; set at upload time,
so it arrives atomically with the video), else ``DUBBING_TARGET_LANGUAGES``. In the inbox, a
sidecar ``<file>.json`` ``{"languages": [...]}`` (files have no metadata).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.hashing import sha256_file
from dubbing_pipeline.ids import sanitize_id, video_id_from_name
from dubbing_pipeline.orchestration.partitions import languages, video_language_key, videos
from dubbing_pipeline.orchestration.registry import register_video, registry_key
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage

LANGUAGES_TAG = "dubbing/languages"
SOURCE_URI_TAG = "dubbing/source_uri"
FINGERPRINT_TAG = "dubbing/source_fingerprint"
TRIGGER_TAG = "dubbing/trigger"
RUN_KEY_TAG = "dagster/run_key"
PARTITION_TAG = "dagster/partition"

MAX_PER_TICK = 500
VIDEOS, LANGUAGES = "videos", "languages"  # the dynamic partitions definitions' names
_LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


# --- small pure helpers -------------------------------------------------------------------


def parse_languages(spec: str | Iterable[str] | None) -> list[str]:
    """``"es, de"`` or ``["es", "DE"]`` → ``["es", "de"]``; anything that is not a code is dropped."""
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    out: list[str] = []
    for item in items:
        code = item.strip().lower().replace("_", "-")
        if _LANG.match(code) and code not in out:
            out.append(code)
    return out


def suffixes(settings: Settings) -> tuple[str, ...]:
    return tuple(s.strip().lower() for s in settings.drop_suffixes.split(",") if s.strip())


def drop_video_id(relative_key: str) -> str:
    """A safe video id from an object key relative to the drop prefix.

    Folders are kept (``shows/ep1.mp4`` → ``shows-ep1``) so equal file names in different folders do
    not collide; ``..``, slashes and anything outside ``[a-z0-9._-]`` never survive.
    """
    return video_id_from_name(relative_key.replace("\\", "/").strip("/").replace("/", "-"))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def resolve_video_id(storage: MediaStorage, relative_key: str, source_uri: str) -> str:
    """The id of a dropped object; disambiguated when another source already holds the id."""
    vid = drop_video_id(relative_key)
    key = registry_key(vid)
    if storage.exists(key):
        existing = storage.get_json(key).get("source_uri")
        if existing not in (None, source_uri):
            vid = sanitize_id(f"{vid[:55]}-{_short_hash(source_uri)}")
    return vid


@dataclass(frozen=True)
class Drop:
    """One video object version: where it is, its version and when it arrived."""

    key: str  # object key / path relative to the inbox
    version: str  # S3 ETag, or the file's SHA-256
    modified: int  # whole seconds
    source_uri: str
    relative_key: str
    languages: tuple[str, ...] = ()

    @property
    def run_key(self) -> str:
        return f"{self.key}@{self.version}"


@dataclass
class DropCursor:
    """``since``: newest LastModified second handled; ``seen``: key+version pairs at that second."""

    since: int = -1
    seen: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, raw: str | None) -> DropCursor:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(since=int(data.get("since", -1)), seen=set(data.get("seen", [])))

    def dump(self) -> str:
        return json.dumps({"since": self.since, "seen": sorted(self.seen)}, separators=(",", ":"))


def select_new(
    drops: Iterable[Drop], cursor: DropCursor, limit: int = MAX_PER_TICK
) -> tuple[list[Drop], DropCursor]:
    """Drops not handled yet (``>= since``, minus what was seen at ``since``), oldest first.

    At most ``limit`` per tick; the rest of a busy second is picked up next tick because the
    cursor remembers exactly which pairs of that second were handled.
    """
    fresh = sorted(
        (
            d
            for d in drops
            if d.modified > cursor.since or (d.modified == cursor.since and d.run_key not in cursor.seen)
        ),
        key=lambda d: (d.modified, d.key, d.version),
    )[:limit]
    since, seen = cursor.since, set(cursor.seen)
    for drop in fresh:
        if drop.modified > since:
            since, seen = drop.modified, set()
        seen.add(drop.run_key)
    return fresh, DropCursor(since=since, seen=seen)


# --- turning drops into registrations, partitions and run requests --------------------------


def _already_ran(instance: dg.DagsterInstance, run_key: str) -> bool:
    return bool(instance.get_run_records(dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1))


def plan_drops(
    instance: dg.DagsterInstance,
    storage: MediaStorage,
    drops: Sequence[Drop],
    default_languages: Sequence[str],
    trigger: str,
) -> tuple[list[dg.RunRequest], list[Any]]:
    """Register each new version's source; one ``source_half`` request per version; batched adds."""
    requests: list[dg.RunRequest] = []
    new_videos: list[str] = []
    wanted_langs: list[str] = []
    for drop in drops:
        if _already_ran(instance, drop.run_key):
            continue  # same key and content as a run already launched: a duplicate
        vid = resolve_video_id(storage, drop.relative_key, drop.source_uri)
        langs = list(drop.languages) or list(default_languages)
        register_video(
            storage, vid, drop.source_uri,
            fingerprint=drop.version, fingerprint_since=time.time(), languages=langs, drop_key=drop.key,
        )  # fmt: skip
        if vid not in new_videos and not instance.has_dynamic_partition(VIDEOS, vid):
            new_videos.append(vid)
        wanted_langs += [lang for lang in langs if lang not in wanted_langs]
        requests.append(
            dg.RunRequest(
                run_key=drop.run_key,
                partition_key=vid,
                tags={
                    LANGUAGES_TAG: ",".join(langs),
                    SOURCE_URI_TAG: drop.source_uri,
                    FINGERPRINT_TAG: drop.version,
                    TRIGGER_TAG: trigger,
                },
            )
        )
    new_langs = [lang for lang in wanted_langs if not instance.has_dynamic_partition(LANGUAGES, lang)]
    adds: list[Any] = []
    if new_videos:
        adds.append(videos.build_add_request(new_videos))
    if new_langs:
        adds.append(languages.build_add_request(new_langs))
    return requests, adds


# --- S3 ------------------------------------------------------------------------------------


def s3_client(settings: Settings) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=settings.s3_endpoint_url or None, region_name=settings.s3_region or None
    )


def list_s3_drops(client: Any, bucket: str, prefix: str, video_suffixes: Sequence[str]) -> list[Drop]:
    """Every video object under ``prefix`` (ListObjectsV2 has no server-side time filter)."""
    out: list[Drop] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/") or not key.lower().endswith(tuple(video_suffixes)):
                continue
            out.append(
                Drop(
                    key=key,
                    version=str(obj["ETag"]).strip('"'),
                    modified=int(obj["LastModified"].timestamp()),
                    source_uri=f"s3://{bucket}/{key}",
                    relative_key=key[len(prefix) :] if prefix and key.startswith(prefix) else key,
                )
            )
    return out


def with_s3_languages(client: Any, bucket: str, drop: Drop) -> Drop:
    """Read ``x-amz-meta-languages`` (one HEAD per new object)."""
    head = client.head_object(Bucket=bucket, Key=drop.key)
    langs = parse_languages(head.get("Metadata", {}).get("languages"))
    return replace(drop, languages=tuple(langs))


def build_s3_drop_sensor(
    settings: Settings, job: Any, *, name: str = "s3_drop_sensor", interval: int = 30
) -> dg.SensorDefinition:
    bucket, prefix = settings.drop_bucket, settings.drop_prefix
    video_suffixes = suffixes(settings)
    default_languages = parse_languages(settings.target_languages)

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New video objects under s3://{bucket}/{prefix} start a source_half run each.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        from dubbing_pipeline.orchestration.resources import storage_resource

        client = s3_client(settings)
        cursor = DropCursor.parse(context.cursor)
        drops, new_cursor = select_new(list_s3_drops(client, bucket, prefix, video_suffixes), cursor)
        if not drops:
            return dg.SkipReason(f"no new objects under s3://{bucket}/{prefix}")
        drops = [with_s3_languages(client, bucket, d) for d in drops]
        storage = storage_resource(settings).get()
        requests, adds = plan_drops(context.instance, storage, drops, default_languages, "s3_drop")
        return dg.SensorResult(
            run_requests=requests, dynamic_partitions_requests=adds, cursor=new_cursor.dump()
        )

    return _sensor


# --- local inbox (embedded default) ----------------------------------------------------------


def _sidecar_languages(path: Path) -> tuple[str, ...]:
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return ()
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    return tuple(parse_languages(data.get("languages") if isinstance(data, dict) else None))


def scan_inbox(
    inbox: Path, video_suffixes: Sequence[str], memo: dict[str, list[Any]], settle_seconds: float
) -> tuple[list[Drop], dict[str, list[Any]]]:
    """Files under ``inbox`` with a content hash; a file is re-hashed only when size or mtime change.

    ``memo`` (the cursor) maps relative path → ``[size, mtime_ns, sha256]``. Files younger than
    ``settle_seconds`` may still be being written and wait for the next tick.
    """
    found: list[Drop] = []
    new_memo: dict[str, list[Any]] = {}
    now = time.time()
    if not inbox.is_dir():
        return found, new_memo
    for path in sorted(inbox.rglob("*")):
        if not path.is_file() or path.is_symlink() or not path.name.lower().endswith(tuple(video_suffixes)):
            continue
        rel = path.relative_to(inbox).as_posix()
        stat = path.stat()
        if now - stat.st_mtime < settle_seconds:
            continue
        prev = memo.get(rel)
        if prev and prev[0] == stat.st_size and prev[1] == stat.st_mtime_ns:
            sha = prev[2]
        else:
            sha = sha256_file(path)
        new_memo[rel] = [stat.st_size, stat.st_mtime_ns, sha]
        found.append(
            Drop(
                key=rel,
                version=sha,
                modified=int(stat.st_mtime),
                source_uri=path.resolve().as_uri(),
                relative_key=rel,
                languages=_sidecar_languages(path),
            )
        )
    return found, new_memo


def build_inbox_sensor(
    settings: Settings,
    job: Any,
    *,
    name: str = "inbox_sensor",
    interval: int = 15,
    settle_seconds: float = 2.0,
) -> dg.SensorDefinition:
    inbox = Path(settings.inbox_dir).expanduser()
    video_suffixes = suffixes(settings)
    default_languages = parse_languages(settings.target_languages)

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New videos in {inbox} start a source_half run each (languages: <file>.json).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        from dubbing_pipeline.orchestration.resources import storage_resource

        memo: dict[str, list[Any]] = json.loads(context.cursor) if context.cursor else {}
        found, new_memo = scan_inbox(inbox, video_suffixes, memo, settle_seconds)
        known = {rel: entry[2] for rel, entry in memo.items()}
        drops = [d for d in found if known.get(d.key) != d.version]
        cursor = json.dumps(new_memo, sort_keys=True, separators=(",", ":"))
        if not drops:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"no new files in {inbox}"), cursor=cursor)
        storage = storage_resource(settings).get()
        requests, adds = plan_drops(context.instance, storage, drops, default_languages, "inbox")
        return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=adds, cursor=cursor)

    return _sensor


# --- source half done → one dub run per language ----------------------------------------------


def build_dub_chain_sensor(
    source_job: Any, dub_job: Any, *, name: str = "dub_after_source_half"
) -> dg.RunStatusSensorDefinition:
    @dg.run_status_sensor(
        name=name,
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[source_job],
        request_job=dub_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A successful source_half run tagged dubbing/languages: one dub run per language.",
    )
    def _sensor(context: dg.RunStatusSensorContext) -> Any:
        run = context.dagster_run
        video = run.tags.get(PARTITION_TAG)
        langs = parse_languages(run.tags.get(LANGUAGES_TAG))
        if not video or not langs:
            yield dg.SkipReason(f"run {run.run_id} names no languages to dub")
            return
        for lang in langs:
            yield dg.RunRequest(
                run_key=f"{run.run_id}:{lang}",
                partition_key=str(video_language_key(video, lang)),
                tags={
                    TRIGGER_TAG: run.tags.get(TRIGGER_TAG, "source_half"),
                    "dubbing/source_run": run.run_id,
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
    "build_dub_chain_sensor",
    "build_inbox_sensor",
    "build_s3_drop_sensor",
    "drop_video_id",
    "parse_languages",
    "plan_drops",
    "select_new",
]
