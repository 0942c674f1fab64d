"""What ``dubbing-pipeline bench`` runs: the default bench (``bench``) or, instead, the catalog at
scale (``--scale``, ``scale``; ``--scale-series``, ``scale_plot``), a daemon's backfill
(``--backfill``, ``backfill``) or the production
providers on a GPU (``--gpu``, ``gpucheck``). Imported only when the command runs (``commands``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dubbing_pipeline.tooling import backfill, gpucheck, scale_plot
from dubbing_pipeline.tooling.bench import run_bench
from dubbing_pipeline.tooling.scale import run_scale, summary


def run(args: argparse.Namespace) -> int:
    if args.scale_series:
        return scale_series(args)
    if args.scale:
        return scale(args)
    if args.backfill:
        return backfill.main_json(args.backfill)
    if args.gpu:
        return gpucheck.main_json(
            device=args.device, seconds=args.seconds, reduced=args.reduced, providers=args.providers, out=""
        )
    return default(args)


def default(args: argparse.Namespace) -> int:
    """The demo and the long clip dubbed and timed; the table printed, non-zero if a dub failed."""
    out = Path(args.out)
    result = run_bench(out, long_seconds=args.long_seconds, keep_home=args.keep)
    print((out / "bench.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}", file=sys.stderr)
    failed = [m["name"] for m in result["measurements"] if m["exit_code"] != 0]
    if failed:
        print(f"error: bench commands failed: {', '.join(failed)} (see {out / 'bench.log'})", file=sys.stderr)
        return 1
    return 0


def scale(args: argparse.Namespace) -> int:
    result = run_scale(args.scale, new=args.new, ui=args.ui)
    if args.plot:
        result["plot"] = str(scale_plot.plot([result], Path(args.plot)))
    print(json.dumps(result, indent=1) if args.json else summary(result))
    return 0 if result["ok"] else 1


def scale_series(args: argparse.Namespace) -> int:
    """``--scale`` at each size in turn; the table (or the JSON) and the plot of all of them."""
    result = scale_plot.run_series(scale_plot.parse_sizes(args.scale_series), new=args.new, ui=args.ui)
    if args.plot:
        result["plot"] = str(scale_plot.plot(result["series"], Path(args.plot)))
    print(json.dumps(result, indent=1) if args.json else scale_plot.table(result["series"]))
    return 0 if result["ok"] else 1
