"""``retry``: release a partition the catalog quarantined, or list the quarantined ones.

The catalog backs a failing partition off and, after ``DUBBING_QUARANTINE_AFTER`` consecutive
failed runs, stops asking for it (``orchestration/quarantine.py``). ``retry VIDEO`` releases the
video's source half and every dub of it; ``retry VIDEO --to LANG`` one dub. A release is a line in
``registry/quarantine.json`` of the media storage, which every pod reads: failures before it no
longer count, so the next catalog tick asks for the partition at once, with its backoff reset.
``retry --list`` prints each quarantined partition, its failure count and its last error, from the
Dagster instance (``$DAGSTER_HOME``).
"""

from __future__ import annotations

import argparse
import json
import time

import dagster as dg

from dubbing_pipeline.cli.common import local_instance, media_storage, resolve_video_id
from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.orchestration.partitions import video_language_key
from dubbing_pipeline.orchestration.quarantine import (
    History,
    RetryPolicy,
    change_ledger,
    find_quarantined,
    last_error,
    release_command,
    released_evaluation,
    report_checks,
)
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "retry",
        help="release a partition the catalog quarantined after repeated failures (or --list them)",
        description="Release VIDEO's source half and its dubs (or, with --to, one dub) from the catalog's "
        "quarantine and reset its backoff: the next catalog tick asks for it again. --list prints every "
        "quarantined partition with its failure count and last error.",
    )
    p.add_argument("video", metavar="VIDEO", nargs="?", help="a video id (or the file dubbed)")
    p.add_argument("--to", metavar="LANG", help="release only the dub of VIDEO into LANG")
    p.add_argument("--list", action="store_true", help="list the quarantined partitions")
    p.add_argument("--json", action="store_true", help="with --list: print the rows as JSON")
    p.set_defaults(func=cmd_retry)


def cmd_retry(args: argparse.Namespace) -> int:
    if args.list:
        return list_quarantined(args.json)
    if not args.video:
        raise BadInputError("retry: give VIDEO (and --to LANG for one dub), or --list")
    vid = resolve_video_id(args.video, None)
    storage, instance = media_storage(), local_instance()
    released = release(instance, storage, vid, args.to)
    for pk in released:
        print(f"released {pk}: the next catalog tick asks for it (backoff reset)")
    if not released:
        print(f"nothing to release: no failed run of {vid}" + (f" into {args.to}" if args.to else ""))
    return 0


def partitions_of(instance: dg.DagsterInstance, vid: str, lang: str | None) -> list[str]:
    """The partitions ``retry`` releases: the pair, or the video and each of its pairs that failed."""
    if lang:
        return [str(video_language_key(vid, lang.strip().lower()))]
    pairs = History.read(instance).failures
    return [vid, *sorted(pk for pk in pairs if pk.rpartition("|")[2] == vid and "|" in pk)]


def release(
    instance: dg.DagsterInstance, storage: MediaStorage, vid: str, lang: str | None = None
) -> list[str]:
    """Release ``vid`` (or its dub into ``lang``): in the ledger, then in the UI's asset check (of
    the partitions that have failed runs: the others have nothing to clear)."""
    partitions = partitions_of(instance, vid, lang)
    now = time.time()
    change_ledger(storage, release=dict.fromkeys(partitions, now))
    failing = History.read(instance, partitions=partitions).failures
    partitions = [pk for pk in partitions if pk in failing]
    report_checks(
        instance, [released_evaluation(pk, "released by 'dubbing-pipeline retry'") for pk in partitions]
    )
    return partitions


def list_quarantined(as_json: bool) -> int:
    """Print the quarantined partitions: failure count, when the last failed, its run and error."""
    policy = RetryPolicy.of(Settings.from_env())
    storage, instance = media_storage(), local_instance()
    rows: list[JsonObject] = []
    for found in find_quarantined(instance, storage, policy):
        last = found.failures[0]
        rows.append({
            "partition": found.partition,
            "failures": len(found.failures),
            "last_failed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last.at)),
            "last_run_id": last.run_id,
            "last_error": last_error(instance, last.run_id),
            "release": release_command(found.partition),
        })  # fmt: skip
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
    elif not rows:
        print("no partition is quarantined")
    for row in rows if not as_json else []:
        print(f"{row['partition']}: {row['failures']} failed runs, the last at {row['last_failed']} "
              f"(run {str(row['last_run_id'])[:8]}): {row['last_error']}")  # fmt: skip
        print(f"  release: {row['release']}")
    return 0
