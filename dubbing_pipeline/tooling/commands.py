"""The developer commands of ``dubbing-pipeline``, found by the CLI through the entry-point group
``dubbing_pipeline.commands`` (``pyproject.toml``): ``bench``, with its ``--scale``, ``--backfill``
and ``--gpu`` modes.

Every run of the CLI builds its parser, so this module stays light: what ``bench`` runs (torch,
the providers' libraries, the pipeline's graph) is imported when ``bench`` runs (``bench_modes``).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="time the embedded default on the demo and a longer clip",
        description="Dub the demo (es, then ca, then es again unchanged) and a longer clip built from it "
        "in a fresh temporary DAGSTER_HOME; write per-stage seconds, real-time factors, peak memory, "
        "second-language and re-run costs and the orchestration overhead to DIR/bench.json and "
        "DIR/bench.md.",
    )
    p.add_argument("--out", default="bench", help="output directory (default: ./bench)")
    p.add_argument(
        "--long-seconds", type=float, default=180.0,
        help="length of the looped long clip in seconds; 0 skips it (default: 180)",
    )  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the temporary DAGSTER_HOME")
    p.add_argument(
        "--scale", type=int, default=0, metavar="N",
        help="instead: the catalog path at N videos × 8 languages on a real PostgreSQL instance and "
        "moto's S3/SQS, no media (partition registration, drop-sensor ticks, catalog ticks, memory)",
    )  # fmt: skip
    p.add_argument("--new", type=int, default=100, help="--scale: new objects per sensor tick (default: 100)")
    p.add_argument(
        "--scale-series", default="", metavar="N,N,...",
        help="instead: --scale at each size in turn (e.g. 10000,30000,100000), one JSON for all",
    )  # fmt: skip
    p.add_argument(
        "--plot", default="", metavar="FILE.png",
        help="--scale/--scale-series: draw tick time against catalog size into FILE.png",
    )  # fmt: skip
    p.add_argument(
        "--ui", action="store_true",
        help="--scale/--scale-series: also time the target half's asset page and partitions view in "
        "headless Chromium against dagster-webserver (ui_asset_page_s, ui_partitions_page_s)",
    )  # fmt: skip
    p.add_argument(
        "--backfill", type=int, default=0, metavar="N",
        help="instead: a real catalog backfill of N short clips × 2 languages run by a real dagster-daemon "
        "(JSON: wall times, run throughput, enqueue rate, and whether every partition ran exactly once)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="--scale/--scale-series: print the result as JSON")
    p.add_argument(
        "--gpu", action="store_true",
        help="instead: the production providers built at full size with structural weights, timed on a CUDA "
        "device in float16 (JSON: per-provider RTF and peak GPU memory; see scripts/gpu-check)",
    )  # fmt: skip
    p.add_argument(
        "--device", default="cuda", help="--gpu: torch device (default: cuda; cpu for a smoke test)"
    )
    p.add_argument("--seconds", type=float, default=60.0, help="--gpu: seconds of audio (default: 60)")
    p.add_argument("--reduced", action="store_true", help="--gpu: the reduced CI sizes instead of full size")
    p.add_argument(
        "--providers",
        default="demucs,pyannote,chatterbox,latentsync",
        help="--gpu: comma-separated providers",
    )
    p.set_defaults(func=bench)


def bench(args: argparse.Namespace) -> int:
    """``bench``: the mode its flags ask for."""
    from dubbing_pipeline.tooling import bench_modes  # lazy: torch, providers, the graph

    return bench_modes.run(args)
