"""What the catalog would say of one video and its dub, in a process of its own (the environment of
the ``dub`` beside it: its settings, PATH, PYTHONPATH).

``python tests/freshness_probe.py VIDEO LANGUAGE`` prints ``{"stage": "fresh" | "stale: why" |
"missing: why"}`` for every stage, judged as the catalog tick judges (``Freshness`` over the asset
graph of the definitions built from ``Settings.from_env()``).
"""

from __future__ import annotations

import json
import sys

import dubbing_pipeline  # noqa: F401  # isort: skip  (numerics pinned before numpy)


def main() -> int:
    import dagster as dg

    from dubbing_pipeline.definitions import build_definitions
    from dubbing_pipeline.orchestration.fresh import FRESH, Freshness
    from dubbing_pipeline.orchestration.partitions import video_language_key
    from dubbing_pipeline.orchestration.runner import ensure_dagster_home
    from dubbing_pipeline.settings import Settings
    from dubbing_pipeline.stages import SOURCE_HALF, STAGES

    video, language = sys.argv[1], sys.argv[2]
    ensure_dagster_home()
    graph = build_definitions(Settings.from_env()).resolve_asset_graph()
    with dg.DagsterInstance.get() as instance:
        fresh = Freshness(instance, graph)
        out = {}
        for stage in STAGES:
            pk = video if stage in SOURCE_HALF else str(video_language_key(video, language))
            status = fresh.status(dg.AssetKey(stage), pk)
            out[stage] = FRESH if status.state == FRESH else f"{status.state}: {status.reason}"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
