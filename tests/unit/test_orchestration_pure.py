"""Pure pieces of the catalog path: partition tags, lineage digests, the backfill's own checks."""

from __future__ import annotations

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
