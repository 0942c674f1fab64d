"""``config``: every setting, its variable, its value now, its default and its meaning."""

from __future__ import annotations

import argparse

from dubbing_pipeline.settings import Settings, markdown_table, rows, shown_default


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "config",
        help="list every setting: its variable, value now, default and meaning",
        description="List every DUBBING_* environment variable with its current value (secrets masked), "
        "its default and its meaning.",
    )
    p.add_argument("--markdown", action="store_true", help="print docs/configuration.md's table")
    p.set_defaults(func=cmd_config)


def cmd_config(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table(), end="")
        return 0
    current = Settings.from_env().masked()
    for row in rows():
        value = str(current[row.name]) or "—"
        print(f"{row.metadata['env']:<32} {value:<28} (default {shown_default(row)}) {row.metadata['help']}")
    return 0
