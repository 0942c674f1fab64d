"""What ``dubbing-pipeline bench`` runs: the default bench (``bench``) or, instead, the catalog at
scale (``--scale``, ``scale``), a daemon's backfill (``--backfill``, ``backfill``) or the production
providers on a GPU (``--gpu``, ``gpucheck``). Imported only when the command runs (``commands``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dubbing_pipeline.tooling import backfill, gpucheck
from dubbing_pipeline.tooling.bench import run_bench
from dubbing_pipeline.tooling.scale import run_scale, summary


def run(args: argparse.Namespace) -> int:
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
    result = run_scale(args.scale, new=args.new)
    print(json.dumps(result, indent=1) if args.json else summary(result))
    return 0 if result["ok"] else 1
