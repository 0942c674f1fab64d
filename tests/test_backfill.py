"""A real catalog backfill run by a real ``dagster-daemon`` (the CI size of ``bench --backfill``).

Five short clips × two languages on the embedded instance: the catalog schedules (every minute
here) and the ``dub_after_source_half`` run-status sensor drive real runs of the real pipeline.
Every partition runs exactly once, the next tick asks for nothing, and replacing one source brings
back exactly that video's three runs. ``dubbing-pipeline bench --backfill 50`` is the full size.
"""

from __future__ import annotations

import json

from dubbing_pipeline.tooling.backfill import check, run_backfill

CLIPS = 5


def test_a_catalog_backfill_runs_every_partition_once() -> None:
    result = run_backfill(CLIPS)
    print(
        "\nbackfill:",
        json.dumps(
            {k: v for k, v in result.items() if k != "backfill"}
            | {"backfill": {k: v for k, v in result["backfill"].items() if k != "runs"}}
        ),
    )
    assert check(result) == []
    assert len(result["backfill"]["runs"]["source_half"]) == CLIPS
    assert len(result["backfill"]["runs"]["dub"]) == 2 * CLIPS
