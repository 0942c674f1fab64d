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
