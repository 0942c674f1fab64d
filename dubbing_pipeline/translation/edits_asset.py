"""``edits`` (video × language): a person's corrections, an observable source asset upstream of
``translation``.

Observing it (the UI's "Observe", ``dubbing-pipeline edit``) records each edited partition's data
version, the content hash of its edits (``edits.edits_version``); Dagster then shows the
``video × language`` partitions whose edits changed since their last dub as stale, and nothing else.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from dubbing_pipeline.edits import NO_EDITS, Edits, edits_version, load_edits
from dubbing_pipeline.orchestration.partitions import video_language, video_language_key
from dubbing_pipeline.orchestration.resources import StorageResource

EDITS_ASSET = "edits"
UNEDITED = edits_version(NO_EDITS)
"""The data version of a partition without edits (what the catalog assumes of one never observed)."""


def stored_partitions(storage: Any) -> list[tuple[str, str]]:
    """``(video, language)`` of every stored edits file."""
    out = []
    for key in storage.keys_in("edits"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2].endswith(".json"):
            out.append((parts[1], parts[2][: -len(".json")]))
    return sorted(out)


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
    from dubbing_pipeline.orchestration.kit import DATA_VERSION_TAG

    return dg.AssetObservation(
        asset_key=dg.AssetKey(EDITS_ASSET),
        partition=str(video_language_key(video_id, language)),
        tags={DATA_VERSION_TAG: edits_version(edits)},
        metadata={"lines": len(edits.lines), "voices": len(edits.voices), "glossary": len(edits.glossary)},
    )


def report_observation(instance: dg.DagsterInstance, video_id: str, language: str, edits: Edits) -> None:
    """Record one partition's new data version in the instance (what ``dubbing-pipeline edit`` does
    after storing the edits), so the UI marks that partition's dub stale at once."""
    instance.report_runless_asset_event(observation(video_id, language, edits))


OBSERVE_ROUNDS = 10


def observe_stored(
    instance: dg.DagsterInstance, storage: Any, video_id: str, language: str, rounds: int = OBSERVE_ROUNDS
) -> str:
    """Record the data version of the edits stored now (what ``dubbing-pipeline edit`` does after
    storing), and again while they changed in between: read, observe, read again until the stored
    version is the one just observed. Of several ``edit``s at once, the last observation recorded
    is therefore that of the stored edits (each writer checks after its own observation), not of
    whichever edit happened to report last. Returns the version observed last."""
    observed = ""
    for _ in range(rounds):
        edits = load_edits(storage, video_id, language)
        version = edits_version(edits)
        if version == observed:
            break
        instance.report_runless_asset_event(observation(video_id, language, edits))
        observed = version
    return observed
