"""Pure pieces of the catalog path: partition tags, lineage digests, the backfill's own checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dubbing_pipeline.orchestration.kit import lineage_digest, lineage_of_lines
from dubbing_pipeline.orchestration.partitions import partition_tags
from dubbing_pipeline.orchestration.sensors import in_threads, parse_languages
from dubbing_pipeline.tooling.backfill import LANGUAGES, check
from dubbing_pipeline.tooling.scale import summary, video_ids


def test_partition_tags_are_the_ones_dagster_would_resolve() -> None:
    assert partition_tags("talk") == {"dagster/partition": "talk"}
    assert partition_tags("es|talk") == {
        "dagster/partition": "es|talk", "dagster/partition/lang": "es", "dagster/partition/video": "talk",
    }  # fmt: skip


def test_the_catalogs_pair_key_is_dagsters() -> None:
    from dubbing_pipeline.orchestration.catalog import pair_key
    from dubbing_pipeline.orchestration.partitions import video_language_key

    assert pair_key("talk", "es") == str(video_language_key("talk", "es")) == "es|talk"
    assert pair_key("a-b_c", "zh-hant") == str(video_language_key("a-b_c", "zh-hant"))


def test_the_catalogs_hot_path_digests_like_the_kit() -> None:
    keys = {"transcript": "k1", "speakers": "k2"}
    assert lineage_of_lines(["speakers\tk2", "transcript\tk1"]) == lineage_digest(keys)
    assert lineage_of_lines(["transcript\tk1", "speakers\tk2"]) != lineage_digest(keys)  # order matters there


def test_in_threads_keeps_order_and_raises() -> None:
    assert in_threads(lambda x: x * 2, list(range(50))) == [x * 2 for x in range(50)]
    with pytest.raises(ZeroDivisionError):
        in_threads(lambda x: 1 / x, [1, 0, 2])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(None, []), ("", []), ("es, DE ,es", ["es", "de"]), (["pt_BR", "ca"], ["pt-br", "ca"])],
)
def test_parse_languages(spec: Any, expected: list[str]) -> None:
    assert parse_languages(spec) == expected


@pytest.mark.parametrize("spec", ["spanish", "es,de;fr", ["es", "e"], "12"])
def test_parse_languages_refuses_what_is_not_a_code(spec: Any) -> None:
    from dubbing_pipeline.errors import BadInputError

    with pytest.raises(BadInputError, match="not a language code"):
        parse_languages(spec)


def _result(**changes: Any) -> dict[str, Any]:
    clips = ["clip000", "clip001"]
    result: dict[str, Any] = {
        "clips": 2,
        "backfill": {
            "runs": {"source_half": clips, "dub": [f"{lang}|{c}" for c in clips for lang in LANGUAGES]}
        },
        "quiet_tick": {
            "ticks": ["catalog_sensor"],
            "runs_requested": 0,
            "new_runs": 0,
        },
        "replaced": {
            "video": "clip000",
            "runs": {"source_half": ["clip000"], "dub": ["ca|clip000", "es|clip000"]},
        },
    }
    result.update(changes)
    return result


def test_the_backfill_check_accepts_exactly_once_and_names_what_is_wrong() -> None:
    assert check(_result()) == []
    twice = _result()
    twice["backfill"]["runs"]["dub"].append("es|clip000")
    assert check(twice)[0].startswith("dub runs:")
    noisy = _result(quiet_tick={"ticks": [], "runs_requested": 0, "new_runs": 0})
    assert check(noisy)[0].startswith("the tick after the backfill")
    extra = _result(replaced={"video": "clip000", "runs": {"source_half": ["clip000", "clip001"], "dub": []}})
    assert check(extra)[0].startswith("after replacing clip000")


def test_scale_summary_reads_a_result() -> None:
    assert video_ids(2, start=9) == ["v0000009", "v0000010"]
    result = {
        "n": 10, "languages": 8, "video_language_partitions": 80, "cpu": "X", "cores": 2, "ok": False,
        "partitions_register_s": 0.1, "sensor_list_tick_s": 1.0, "sensor_queue_tick_s": 1.0,
        "catalog_tick_s": 2.0, "catalog_tick_noop_s": 1.5, "peak_rss_mb": 100.0, "requests": {"x": 1},
    }  # fmt: skip
    text = summary(result)
    assert "10 videos × 8 languages (80 video × language partitions)" in text
    assert "UNEXPECTED requests: {'x': 1}" in text


STAMP = "2026-12-05T10:00:00Z"


class _Pages:
    """A stand-in for boto3's ListObjectsV2 paginator (the real one is exercised against moto in
    tests/test_production.py): pages of 2 keys after ``StartAfter``, each read costing a tick of the clock."""

    def __init__(self, keys: list[str], clock: list[float]) -> None:
        self.keys, self.clock = keys, clock
        self.asked: list[dict[str, Any]] = []

    def get_paginator(self, _name: str) -> _Pages:
        return self

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.asked.append(kwargs)
        rest = [k for k in self.keys if k > kwargs.get("StartAfter", "")]
        for i in range(0, len(rest), 2):
            self.clock[0] += 1.0
            page = [{"Key": k, "ETag": '"e"', "LastModified": STAMP} for k in rest[i : i + 2]]
            yield {"Contents": page, "IsTruncated": i + 2 < len(rest)}


def test_a_listing_slice_stops_at_its_budget_and_goes_on_after_its_last_key() -> None:
    from dubbing_pipeline.orchestration.sensors import list_s3_slice

    now = [0.0]
    client = _Pages([f"in/{c}.mp4" for c in "abcdefg"] + ["in/notes.txt"], now)
    drops, after = list_s3_slice(client, "b", "in/", (".mp4",), budget_s=2.5, clock=lambda: now[0])
    assert [d.key for d in drops] == ["in/a.mp4", "in/b.mp4", "in/c.mp4", "in/d.mp4"] and after == "in/d.mp4"
    drops, after = list_s3_slice(
        client, "b", "in/", (".mp4",), after=after, budget_s=100, clock=lambda: now[0]
    )
    assert [d.key for d in drops] == ["in/e.mp4", "in/f.mp4", "in/g.mp4"] and after == ""
    assert client.asked[1]["StartAfter"] == "in/d.mp4" and "StartAfter" not in client.asked[0]
    # no budget: every page, in one call
    assert len(list_s3_slice(client, "b", "in/", (".mp4",))[0]) == 7
