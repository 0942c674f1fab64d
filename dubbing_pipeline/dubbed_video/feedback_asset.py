"""``feedback`` (video × language): viewers' reports on a dub's lines, an observable source asset
upstream of ``dubbed_video`` (its review page shows them).

Its data version is the content hash of the stored items (``feedback.feedback_version``): a new
note marks exactly that partition's ``dubbed_video`` stale, and the next ``dub`` rebuilds its
review page and report (every model step is a cache hit).
"""

from __future__ import annotations

import dagster as dg

from dubbing_pipeline.feedback import feedback_version, load_feedback
from dubbing_pipeline.orchestration.kit import DATA_VERSION_TAG
from dubbing_pipeline.orchestration.partitions import video_language, video_language_key
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.stages import FEEDBACK


def stored_partitions(storage: object) -> list[tuple[str, str]]:
    """``(video, language)`` of every stored feedback file."""
    out = []
    for key in storage.keys_in("feedback"):  # type: ignore[attr-defined]
        parts = key.split("/")
        if len(parts) == 3 and parts[2].endswith(".json"):
            out.append((parts[1], parts[2][: -len(".json")]))
    return sorted(out)


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
            for video, lang in stored_partitions(store)
        }
    )


def observe_stored_feedback(
    instance: dg.DagsterInstance, storage: object, video_id: str, language: str
) -> str:
    """Record the data version of the feedback stored now, again while it changed in between (as
    ``edits_asset.observe_stored`` does for edits); returns the version observed last."""
    observed = ""
    for _ in range(10):
        version = feedback_version(load_feedback(storage, video_id, language))
        if version == observed:
            break
        instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=dg.AssetKey(FEEDBACK),
                partition=str(video_language_key(video_id, language)),
                tags={DATA_VERSION_TAG: version},
            )
        )
        observed = version
    return observed
