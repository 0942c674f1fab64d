"""An unchanged re-run of ``dub``, told from the records without starting model code.

Whether a part is done is the same question the catalog and the UI ask, and it gets the same
answer: :class:`~dubbing_pipeline.orchestration.fresh.Freshness` over every asset of the part,
against the code versions the stages' recipes give now (``freshness``: settings rows, model
content, library and tool versions) and the latest observed edits and feedback. On top of that,
the CLI keeps ``done/<video>.json`` and ``done/<video>/<language>.json`` after each success:

* the source file it was made from, by content (SHA-256, remembered by ``stat``: a file replaced
  in place with the same size and modification time still changes its ``ctime``);
* every output it left in storage, with its size (a deleted or truncated output is not done);
* for a dub, the edits version the run *read* (``translation``'s record): an edit saved while the
  run was going leaves the part stale, and the next ``dub`` applies it.

A part that is fresh, whose record names this source and whose outputs are all stored does not
run: a second language skips the source half's run, an unchanged dub runs no stage. The CLI
records one small ``up_to_date`` Dagster run naming what it found unchanged. Anything else runs
the jobs, where every step's cache (keyed by the same recipes) decides what is redone. A dub whose
blocking quality check failed is never done (its data version says so).
"""

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import dagster as dg

from dubbing_pipeline.common.ids import dub_file_key, join_key, sanitize_id
from dubbing_pipeline.freshness import stage_codes
from dubbing_pipeline.orchestration import feedback_asset
from dubbing_pipeline.orchestration.fresh import (
    FRESH,
    MISSING,
    STALE,
    UNOBSERVED,
    Freshness,
    StageGraph,
    Status,
)
from dubbing_pipeline.orchestration.kit import DATA_VERSION_TAG
from dubbing_pipeline.orchestration.partitions import video_language_key
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.stages import EDITS, FEEDBACK, SOURCE_HALF, TARGET_HALF
from dubbing_pipeline.storage import MediaStorage
from dubbing_pipeline.translation import edits_asset

SCHEMA = "dubbing_pipeline.done/2"


class DoneRecord(TypedDict):
    """``done/<video>.json`` or ``done/<video>/<language>.json``: what the last success was made from."""

    schema: str  # SCHEMA
    source: list[str]  # [the source file's SHA-256, the source URI it is registered under]
    outputs: dict[str, int | None]  # each output's storage key → its size in bytes
    edits_read: NotRequired[str | None]  # a dub's: the edits version its run read


def done_key(video_id: str, language: str) -> str:
    """``done/<video>/<language>.json``: what the last dub into ``language`` was made from."""
    return dub_file_key("done", video_id, language)


def source_done_key(video_id: str) -> str:
    """``done/<video>.json``: what the last source half of ``video_id`` was made from."""
    return join_key("done", sanitize_id(video_id) + ".json")


Observe = Callable[[dg.DagsterInstance, MediaStorage, str, str], str]
"""Record the observation of an observable source's stored content (``edits``, ``feedback``)."""


def observe_sources(
    instance: dg.DagsterInstance, storage: MediaStorage, video_id: str, language: str
) -> None:
    """Make the latest observation of the partition's edits and feedback the stored ones (a file
    written by hand, or an ``edit`` whose observation lost a race), so the judgement below and the
    UI see what the next run will read."""
    pk = str(video_language_key(video_id, language))
    sources: tuple[tuple[str, Callable[[MediaStorage, str, str], dg.AssetObservation], Observe], ...] = (
        (EDITS, edits_asset.stored_observation, edits_asset.observe_stored),
        (FEEDBACK, feedback_asset.stored_observation, feedback_asset.observe_stored_feedback),
    )
    for asset, stored, observe in sources:
        latest = instance.event_log_storage.get_latest_tags_by_partition(
            dg.AssetKey(asset), dg.DagsterEventType.ASSET_OBSERVATION, [DATA_VERSION_TAG], [pk]
        )
        seen = latest.get(pk, {}).get(DATA_VERSION_TAG, UNOBSERVED[asset])
        if seen != stored(storage, video_id, language).tags[DATA_VERSION_TAG]:
            observe(instance, storage, video_id, language)


@dataclass
class Work:
    """One ``dub`` command's view of what is already done: the source half of ``video_id``
    (``language=None``) and each of its dubs, judged now."""

    instance: dg.DagsterInstance
    storage: MediaStorage
    settings: Settings
    source_sha256: str
    registered: str
    video_id: str

    def key(self, language: str | None) -> str:
        return source_done_key(self.video_id) if language is None else done_key(self.video_id, language)

    def partition(self, language: str | None) -> str:
        return self.video_id if language is None else str(video_language_key(self.video_id, language))

    @functools.cached_property
    def graph(self) -> StageGraph:
        """The stages' graph with the code versions their recipes give now (computed once a command)."""
        return StageGraph(stage_codes(self.settings))

    def status(self, language: str | None) -> Status:
        """Fresh when the last success was made from exactly what is here now, its outputs all
        stored; otherwise why not (the first reason found)."""
        key = self.key(language)
        if not self.storage.exists(key):
            return Status(MISSING, "no successful dub recorded")
        done: DoneRecord = self.storage.get_json(key)
        if done.get("schema") != SCHEMA:
            return Status(STALE, "recorded by another version of the CLI")
        if done.get("source") != [self.source_sha256, self.registered]:
            return Status(STALE, "the source file changed")
        for out, size in sorted(done.get("outputs", {}).items()):
            if self.storage.size(out) != size:
                return Status(STALE, f"output {out} is missing or changed")
        # read afresh (a run may have happened since), and only this video and this dub's partitions
        fresh = Freshness(self.instance, self.graph, [self.video_id, self.partition(language)])
        for asset in SOURCE_HALF if language is None else TARGET_HALF:
            status = fresh.status(dg.AssetKey(asset), self.partition(language))
            if status.state != FRESH:
                return status
        return Status(FRESH)

    def is_done(self, language: str | None) -> bool:
        return self.status(language).state == FRESH

    def record(self, language: str | None, outputs: Sequence[str], edits_read: str | None = None) -> None:
        """After a success: the source, each output and its size, and the edits version the run read."""
        sizes = {k: self.storage.size(k) for k in outputs}
        record = DoneRecord(schema=SCHEMA, source=[self.source_sha256, self.registered], outputs=sizes)
        if language is not None:
            record["edits_read"] = edits_read
        self.storage.put_json(self.key(language), record)

    def forget(self, language: str | None) -> None:
        """Drop the record (a run is starting): until it succeeds, the next ``dub`` runs the jobs."""
        if self.storage.exists(self.key(language)):
            self.storage.delete(self.key(language))


@dg.op(tags={"stage": "up_to_date"})
def confirm_up_to_date(context: dg.OpExecutionContext) -> None:
    """Says, in the run's log, that the dub was asked for and found unchanged."""
    tags = context.run.tags
    context.log.info(f"{tags.get('dubbing/partitions', '')}: unchanged since the last dub: no stage ran")


@dg.job(
    description="A `dub` that found nothing changed: every stage of the dub is fresh against its recipe "
    "(code, settings, models, libraries, tools), the source file, edits and feedback, and its outputs "
    "are stored (dubbing_pipeline.orchestration.up_to_date)."
)
def up_to_date() -> None:
    confirm_up_to_date()


def report_up_to_date(instance: dg.DagsterInstance, video_id: str, partitions: Sequence[str]) -> bool:
    """Record the ``up_to_date`` run (the partitions a ``dub`` found unchanged) in the instance."""
    result = up_to_date.execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        tags={"dubbing/video": video_id, "dubbing/partitions": ",".join(partitions)},
        raise_on_error=False,
    )
    return bool(result.success)


__all__ = [
    "DoneRecord",
    "Work",
    "done_key",
    "observe_sources",
    "report_up_to_date",
    "source_done_key",
    "up_to_date",
]
