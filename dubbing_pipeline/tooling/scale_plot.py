"""``bench --scale-series 10000,30000,100000 [--plot FILE.png]``: the scale bench at several sizes
in one invocation, and a plot of tick time against catalog size.

Each size is a fresh ``run_scale`` (its own PostgreSQL and moto), one after the other, so the sizes
share the machine as it is. The plot (matplotlib's ``Figure``, no pyplot: no display) draws each
measured tick's seconds against the catalog's ``video × language`` partitions, with the budgets the
issue holds them to: 5 s (no-op and one change), 10 s (drop ticks), 40 s (the tick's deadline) and Dagster's
60 s limit on a tick.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.tooling.scale import run_scale

TICKS = (
    ("catalog_tick_s", "catalog: a new language for every video"),
    ("catalog_tick_noop_s", "catalog: nothing changed"),
    ("catalog_tick_one_change_s", "catalog: one source changed"),
    ("catalog_tick_after_dubs_s", "catalog: after N dubs were stored"),
    ("sensor_list_tick_s", "drop sensor: listing mode"),
    ("sensor_queue_tick_s", "drop sensor: queue mode"),
    ("ui_partitions_page_s", "UI: the dub's partitions view"),
)  # (not the sweep: its seconds are many ticks' summed)
BUDGETS = ((5, "5 s"), (10, "10 s"), (40, "40 s deadline"), (60, "Dagster's 60 s"))


def parse_sizes(text: str) -> list[int]:
    """``"10000,30k,1e5"`` → ``[10000, 30000, 100000]``."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        if part:
            sizes.append(int(float(part[:-1]) * 1000) if part.endswith("k") else int(float(part)))
    return sizes


def run_series(sizes: Sequence[int], *, new: int = 100, ui: bool = False) -> JsonObject:
    """``run_scale`` at each size, in order; every result and whether all asked for what they should."""
    results = []
    for n in sizes:
        results.append(run_scale(n, new=new, ui=ui))
        print(
            f"scale-series: {n:,} videos: setup {results[-1]['setup_s']:.0f} s", file=sys.stderr, flush=True
        )
    return {"ok": all(r["ok"] for r in results), "sizes": list(sizes), "series": results}


def plot(series: Sequence[JsonObject], dest: Path) -> Path:
    """Tick seconds against ``video × language`` partitions, one line per tick, as a PNG."""
    fig = Figure(figsize=(9, 5.5), dpi=110)  # no pyplot: no backend, no display
    ax = fig.add_subplot()
    x = [int(r["video_language_partitions"]) for r in series]
    for key, label in TICKS:
        values = [r.get(key) for r in series]
        if all(isinstance(v, int | float) for v in values):
            ax.plot(x, [float(v) for v in values if isinstance(v, int | float)], marker="o", label=label)
    for seconds, label in BUDGETS:
        ax.axhline(seconds, color="grey", linestyle=":", linewidth=1)
        ax.annotate(label, (x[0] if x else 0, seconds), textcoords="offset points", xytext=(2, 2),
                    fontsize=7, color="grey")  # fmt: skip
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("video × language partitions (8 languages a video)")
    ax.set_ylabel("seconds")
    first = series[0] if series else {}
    ax.set_title(f"tick time against catalog size ({first.get('cpu', '?')}, {first.get('cores', '?')} cores)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    return dest


def table(series: Sequence[JsonObject]) -> str:
    """The series as a markdown table (seconds; setup in minutes)."""
    keys = [k for k, _ in TICKS if not k.startswith("ui_")]
    keys += ["catalog_sweep_s", "ui_asset_page_s", "ui_partitions_page_s"]
    head = "| videos | partitions | setup min | " + " | ".join(keys) + " | events/tick | peak RSS MB |"
    rows = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in series:
        cells = [f"{r[k]:.2f}" if isinstance(r.get(k), int | float) else "–" for k in keys]
        rows.append(
            f"| {r['n']:,} | {r['video_language_partitions']:,} | {r['setup_s'] / 60:.1f} | "
            + " | ".join(cells)
            + f" | {r.get('events_per_tick', '–')} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(rows) + "\n"
