"""``edits`` (video × language): a person's corrections, an observable source asset upstream of
``translation``.

Observing it (the UI's "Observe", ``dubbing-pipeline edit``) records each edited partition's data
version, the content hash of its edits (``edits.edits_version``); Dagster then shows the
``video × language`` partitions whose edits changed since their last dub as stale, and nothing else.
"""

from __future__ import annotations

import dagster as dg

from dubbing_pipeline.common.ids import dub_file_partitions
from dubbing_pipeline.orchestration.kit import DATA_VERSION_TAG, observe_until_stable
from dubbing_pipeline.orchestration.partitions import video_language, video_language_key
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.review.edits import NO_EDITS, Edits, edits_version, load_edits
from dubbing_pipeline.storage import MediaStorage

EDITS_ASSET = "edits"
UNEDITED = edits_version(NO_EDITS)
"""The data version of a partition without edits (what the catalog assumes of one never observed)."""


def stored_partitions(storage: MediaStorage) -> list[tuple[str, str]]:
    """``(video, language)`` of every stored edits file."""
    return dub_file_partitions(storage.keys_in(EDITS_ASSET), EDITS_ASSET)


@dg.observable_source_asset(
    name=EDITS_ASSET,
    partitions_def=video_language,
    group_name="target_half",
    description="A person's corrections of a dub (line texts, speakers, skips, voices, glossary), "
    "stored with the media under edits/<video>/<language>.json; data version = their content hash.",
)
def edits(storage: StorageResource) -> dg.DataVersionsByPartition:
    store = storage.get()
    versions = {}
    for video, lang in stored_partitions(store):
        versions[str(video_language_key(video, lang))] = dg.DataVersion(
            edits_version(load_edits(store, video, lang))
        )
    return dg.DataVersionsByPartition(versions)


def observation(video_id: str, language: str, edits: Edits) -> dg.AssetObservation:
    """The observation of one partition's edits: its data version is their content hash."""
    return dg.AssetObservation(
        asset_key=dg.AssetKey(EDITS_ASSET),
        partition=str(video_language_key(video_id, language)),
        tags={DATA_VERSION_TAG: edits_version(edits)},
        metadata={"lines": len(edits.lines), "voices": len(edits.voices), "glossary": len(edits.glossary)},
    )


def observe_stored(instance: dg.DagsterInstance, storage: MediaStorage, video_id: str, language: str) -> str:
    """Record the data version of the edits stored now, again while they changed in between
    (``kit.observe_until_stable``): what ``dubbing-pipeline edit`` does after storing, so the UI
    and the catalog mark the partition's dub stale at once. Returns the version observed last."""
    return observe_until_stable(instance, lambda: stored_observation(storage, video_id, language))


def stored_observation(storage: MediaStorage, video_id: str, language: str) -> dg.AssetObservation:
    """The observation of the edits stored now (not reported)."""
    return observation(video_id, language, load_edits(storage, video_id, language))
