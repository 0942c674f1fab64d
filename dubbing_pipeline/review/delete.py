"""Deleting a dub (one ``video × language``) or a whole video: its outputs, records and Dagster history.

What goes, for a dub: the stage records of the target half, the report folder, the finished video
and subtitles with the cache entry that made them (so the next dub makes them again instead of
pointing at deleted files), the dub's edits and feedback, its runs' step records, and its runs with
their events, so its materialisations (Dagster's OSS event logs cannot wipe one partition of an
asset; deleting the runs that made it removes its events). The ``edit`` command's run-less
observations of the edits stay in the event log: the next translation observes the edits it reads
(none), so the partition is judged against that. For a whole video, every dub of it,
then the same for the source half, its registration and its ``videos`` partition.

What stays: the content-addressed step cache of intermediate work (stems, transcripts, takes,
mixes), which is shared by content, not owned by a partition; a following ``dub`` reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from dubbing_pipeline.common.ids import join_key, sanitize_id
from dubbing_pipeline.orchestration.io_manager import record_key
from dubbing_pipeline.orchestration.partitions import video_language_key
from dubbing_pipeline.orchestration.registry import registry_key
from dubbing_pipeline.orchestration.up_to_date import done_key, source_done_key
from dubbing_pipeline.review.edits import edits_key
from dubbing_pipeline.review.feedback import feedback_key
from dubbing_pipeline.stages import SOURCE_HALF, TARGET_HALF
from dubbing_pipeline.storage.base import MediaStorage


@dataclass
class Deleted:
    """What a delete removed (for the CLI's summary and the tests)."""

    keys: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.keys)} stored files, {len(self.runs)} runs, {len(self.partitions)} partitions"


def _drop(storage: MediaStorage, key: str, out: Deleted) -> None:
    if storage.exists(key):
        storage.delete(key)
        out.keys.append(key)


def _drop_prefix(storage: MediaStorage, folder: str, out: Deleted) -> None:
    for key in storage.keys_in(folder):
        _drop(storage, key, out)


def _drop_runs(instance: dg.DagsterInstance, storage: MediaStorage, partition: str, out: Deleted) -> None:
    """The runs of ``partition`` with their step records (``records/steps/<run id>/``)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": partition}))
    for run in runs:
        _drop_prefix(storage, join_key("records", "steps", run.run_id), out)
        instance.delete_run(run.run_id)
        out.runs.append(run.run_id)


def _cache_folder(storage: MediaStorage, uri: str) -> str:
    """``cache/<step>/<xx>/<key>`` of an artifact URI."""
    key: str = storage.key_of(uri)
    return key.rsplit("/", 1)[0]


def delete_dub(instance: dg.DagsterInstance, storage: MediaStorage, video_id: str, language: str) -> Deleted:
    """Remove one dub; a later ``dub`` of the pair rebuilds it."""
    out = Deleted()
    partition = str(video_language_key(video_id, language))
    finished = record_key("dubbed_video", partition)
    if storage.exists(finished):
        record = storage.get_json(finished)
        uris = [*record.get("outputs", {}).values(), record.get("report_uri")]
        for folder in sorted({_cache_folder(storage, u) for u in uris if u}):
            if folder.startswith("cache/"):
                _drop_prefix(storage, folder, out)
    for asset in TARGET_HALF:
        _drop(storage, record_key(asset, partition), out)
    _drop_prefix(storage, join_key("reports", sanitize_id(video_id), sanitize_id(language)), out)
    _drop(storage, edits_key(video_id, language), out)
    _drop(storage, feedback_key(video_id, language), out)
    _drop(storage, done_key(video_id, language), out)
    _drop_runs(instance, storage, partition, out)  # with its runs go their materialisations
    out.partitions.append(partition)
    return out


def dubbed_languages(storage: MediaStorage, video_id: str) -> list[str]:
    """The languages ``video_id`` has any dub record, edits or feedback in."""
    found = set()
    for asset in TARGET_HALF:
        for key in storage.keys_in(join_key("records", asset)):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == f"{sanitize_id(video_id)}.json":
                found.add(parts[2])
    for kind in ("edits", "feedback", "done"):
        for key in storage.keys_in(join_key(kind, sanitize_id(video_id))):
            found.add(key.rsplit("/", 1)[1].removesuffix(".json"))
    return sorted(found)


def delete_video(instance: dg.DagsterInstance, storage: MediaStorage, video_id: str) -> Deleted:
    """Remove every dub of ``video_id``, then its source half, registration and partition."""
    out = Deleted()
    for language in dubbed_languages(storage, video_id):
        one = delete_dub(instance, storage, video_id, language)
        out.keys += one.keys
        out.runs += one.runs
        out.partitions += one.partitions
    for asset in SOURCE_HALF:
        _drop(storage, record_key(asset, video_id), out)
    _drop_prefix(storage, join_key("reports", sanitize_id(video_id)), out)
    _drop(storage, registry_key(video_id), out)
    _drop(storage, source_done_key(video_id), out)
    _drop_runs(instance, storage, video_id, out)
    if instance.has_dynamic_partition("videos", video_id):
        instance.delete_dynamic_partition("videos", video_id)
    out.partitions.append(video_id)
    return out
