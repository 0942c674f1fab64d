"""``bench --scale`` at a size CI can afford: the same code path, real PostgreSQL and moto."""

from __future__ import annotations

import json

from dubbing_pipeline.tooling.scale import run_scale


def test_scale_bench_asks_for_exactly_what_each_tick_should() -> None:
    result = run_scale(150, new=20)
    print("\nscale:", json.dumps({k: v for k, v in result.items() if k != "expected_requests"}))
    assert result["requests"] == result["expected_requests"] and result["ok"]
    assert result["video_language_partitions"] == 1200 and result["setup"]["materializations"] == 150 * 45
    for key in ("partitions_register_s", "sensor_list_tick_s", "sensor_queue_tick_s", "catalog_tick_s"):
        assert result[key] > 0
