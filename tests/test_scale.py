"""``bench --scale`` at a size CI can afford: the same code path, real PostgreSQL and moto.

The bulk setup (moto seeded, events copied by a worker process) and every key of the result; the
timings are only checked to be there and positive (this machine's seconds say nothing here). The UI's
two pages are loaded in Debian's headless ``chromium`` too and must render.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from dubbing_pipeline.tooling.scale import run_scale
from dubbing_pipeline.tooling.scale_seed import seeded_moto

TIMED = (
    "setup_s",
    "partitions_register_s",
    "sensor_list_tick_s",
    "sensor_queue_tick_s",
    "catalog_tick_one_change_s",
    "catalog_tick_s",
    "catalog_tick_noop_s",
    "catalog_sweep_s",
    "peak_rss_mb",
)


def test_scale_bench_asks_for_exactly_what_each_tick_should() -> None:
    result = run_scale(150, new=20, workers=1, ui=True)  # .ci/install puts Debian's chromium there
    print("\nscale:", json.dumps({k: v for k, v in result.items() if k != "expected_requests"}))
    assert result["requests"] == result["expected_requests"] and result["ok"]
    assert result["requests"]["catalog_tick_one_change"] == {"source_half": 1}
    assert result["requests"]["catalog_tick"] == {"dub": 150}
    assert result["video_language_partitions"] == 1200 and result["setup"]["materializations"] == 150 * 45
    assert result["setup"]["bulk"] is True
    for key in TIMED:
        assert result[key] > 0, key
    assert result["setup_s"] >= result["setup"]["materializations_store_s"]
    # events the ticks read: the tick after the last dubs reads at least their 150 × 5 materialisations
    ticks = {"catalog_tick_one_change", "catalog_tick", "catalog_tick_after_dubs", "catalog_tick_noop"}
    assert isinstance(result["events_per_tick"], int) and result["events_per_tick"] >= 0
    assert set(result["events_read"]) == ticks and result["events_read"]["catalog_tick_after_dubs"] >= 750
    assert result["catalog_sweep_ticks"] >= 1 and set(result["split_ticks"]) == {"catalog_first_tick", *ticks}
    assert result["ui_asset_page_rendered"] and result["ui_partitions_page_rendered"], result
    assert result["ui_asset_page_s"] > 0 and result["ui_partitions_page_s"] > 0


def test_the_seeded_moto_server_stops_when_its_parent_ignores_sigterm(tmp_path: Path) -> None:
    """An in-process Dagster run maps SIGTERM to SIGINT's handler, which can leave SIGTERM ignored
    in the test process; a child inherits that. The seeded server handles SIGTERM itself, so
    leaving ``seeded_moto`` stops it (before: ``terminate`` did nothing, 30 s, TimeoutExpired)."""
    import boto3

    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with seeded_moto([("seeded-bucket", "drops/a.mp4", b"x")], tmp_path) as url:
            s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
            assert s3.get_object(Bucket="seeded-bucket", Key="drops/a.mp4")["Body"].read() == b"x"
    finally:
        signal.signal(signal.SIGTERM, before)
