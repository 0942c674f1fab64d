"""``dubbing-pipeline``: one-off jobs from the command line, materialised in the Dagster instance.

One module per command group, each with ``register(sub)`` (its subcommands) beside their handlers:
``dub`` (transcribe, dub, demo), ``review`` (lines, feedback, edit, delete), ``verify``,
``config``, ``translate`` and ``retry`` (the catalog's quarantine); what they share is in
``common``. Commands of other packages (the developer tooling's ``bench``) come from the
``dubbing_pipeline.commands`` entry points, each a ``register(sub)`` of the same kind: this
package never names them.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

import dubbing_pipeline.cli.quiet  # noqa: F401  (first: before the stage modules apply Dagster's decorators)
from dubbing_pipeline.cli import config, dub, retry, review, translate, verify
from dubbing_pipeline.cli.common import fail, own_process, settle
from dubbing_pipeline.errors import DubbingError

COMMANDS_GROUP = "dubbing_pipeline.commands"
"""The entry-point group of the commands other packages add: each entry is a ``register(sub)``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dubbing-pipeline",
        description="Dub videos: stems, transcript, speakers, translation, speech, mix and mux, on Dagster.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (dub, review, verify, config, translate, retry):
        group.register(sub)
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        entry.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except DubbingError as err:
        return fail(err)
    except KeyboardInterrupt:
        print("error: cancelled", file=sys.stderr)
        return 130
    return code


def run() -> None:
    """The console script ``dubbing-pipeline`` (and ``python -m dubbing_pipeline.cli``): ``main``
    as the whole life of a process, which then exits without collecting its heap (``settle``)."""
    own_process()
    code = main()
    settle()
    sys.exit(code)
