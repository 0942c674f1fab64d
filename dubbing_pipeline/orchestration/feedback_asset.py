"""``feedback`` (video × language): viewers' reports on a dub's lines, an observable source asset
upstream of ``dubbed_video`` (its review page shows them).

Its data version is the content hash of the stored items (``feedback.feedback_version``): a new
note marks exactly that partition's ``dubbed_video`` stale, and the next ``dub`` rebuilds its
review page and report (every model step is a cache hit).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from dubbing_pipeline.common.ids import dub_file_partitions
from dubbing_pipeline.orchestration.kit import DATA_VERSION_TAG, observe_until_stable
from dubbing_pipeline.orchestration.partitions import video_language, video_language_key
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.review.feedback import FeedbackItem, feedback_version, load_feedback
from dubbing_pipeline.stages import FEEDBACK
from dubbing_pipeline.storage import MediaStorage


@dg.observable_source_asset(
    name=FEEDBACK,
    partitions_def=video_language,
    group_name="target_half",
    description="Viewers' reports on the lines of a dub, stored with the media under "
    "feedback/<video>/<language>.json; data version = their content hash.",
)
def feedback(storage: StorageResource) -> dg.DataVersionsByPartition:
    store = storage.get()
    return dg.DataVersionsByPartition(
        {
            str(video_language_key(video, lang)): dg.DataVersion(
                feedback_version(load_feedback(store, video, lang))
            )
            for video, lang in dub_file_partitions(store.keys_in(FEEDBACK), FEEDBACK)
        }
    )


def observation(video_id: str, language: str, items: Sequence[FeedbackItem]) -> dg.AssetObservation:
    """The observation of one partition's feedback: its data version is their content hash."""
    return dg.AssetObservation(
        asset_key=dg.AssetKey(FEEDBACK),
        partition=str(video_language_key(video_id, language)),
        tags={DATA_VERSION_TAG: feedback_version(items)},
        metadata={"notes": len(items)},
    )


def observe_stored_feedback(
    instance: dg.DagsterInstance, storage: MediaStorage, video_id: str, language: str
) -> str:
    """Record the data version of the feedback stored now, again while it changed in between
    (``kit.observe_until_stable``); returns the version observed last."""
    return observe_until_stable(instance, lambda: stored_observation(storage, video_id, language))


def stored_observation(storage: MediaStorage, video_id: str, language: str) -> dg.AssetObservation:
    """The observation of the feedback stored now (not reported)."""
    return observation(video_id, language, load_feedback(storage, video_id, language))
