"""Partitions: ``videos`` (dynamic), ``languages`` (dynamic) and their product.

Per-segment work is never a partition: it is a dynamic fan-out inside an asset (a catalog has
millions of segment × language units; Dagster handles ~100k partitions per asset).
"""

from __future__ import annotations

import dagster as dg

videos = dg.DynamicPartitionsDefinition(name="videos")
languages = dg.DynamicPartitionsDefinition(name="languages")
# Dimension names sort as ("lang", "video"): the key string is "es|demo".
video_language = dg.MultiPartitionsDefinition({"video": videos, "lang": languages})


def video_language_key(video_id: str, language: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"video": video_id, "lang": language})


def split_video_language(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> tuple[str, str]:
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
    else:
        lang, video = str(key).split("|", 1)
        dims = {"lang": lang, "video": video}
    return dims["video"], dims["lang"]


def partition_tags(partition_key: str) -> dict[str, str]:
    """The partition tags Dagster puts on a run of ``partition_key`` (``"es|talk"`` or ``"talk"``).

    A run request that carries them is taken as already resolved, so Dagster does not check each
    request's partition against the instance (one query, and with dagster-postgres one new
    connection, per request: 17 ms each here, minutes for a catalog-wide tick). Only use them for
    partitions known to exist (the sensors and the catalog add them in the same tick).
    """
    tags = {"dagster/partition": partition_key}
    if "|" in partition_key:
        lang, video = partition_key.split("|", 1)
        tags |= {"dagster/partition/lang": lang, "dagster/partition/video": video}
    return tags
