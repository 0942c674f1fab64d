"""``translate``: lines on standard input, their translations on standard output.

The translator is the one a dub would use (``make_translator`` with the same settings:
``DUBBING_TRANSLATOR``, ``DUBBING_GLOSSARY`` unless ``--glossary`` names a file). One output line
per input line, in order; an empty input line gives an empty output line. A line the translator
could not translate prints empty, and its reason goes to standard error with its line number;
flags (``foreign``, ``glossary``) go to standard error too. Exit status 0, or 1 when a line failed.
"""

from __future__ import annotations

import argparse
import sys

from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.translation.base import STATUS_FAILED, LineRequest
from dubbing_pipeline.translation.budget import count_words, normalize_language
from dubbing_pipeline.translation.factory import make_translator
from dubbing_pipeline.translation.glossary import GlossaryError, load_glossary


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "translate",
        help="translate lines from standard input with the translator a dub would use",
        description="Read lines on standard input and write their translations on standard output, one "
        "line each, with the translator the dub would use (DUBBING_TRANSLATOR).",
    )
    p.add_argument("--from", dest="source", default="en", help="source language (ISO 639-1), default en")
    p.add_argument("--to", dest="target", required=True, help="target language (ISO 639-1)")
    p.add_argument("--glossary", default=None, help='JSON glossary {"<lang>": {"source": "target"}}')
    p.set_defaults(func=cmd_translate)


def cmd_translate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    source, target = normalize_language(args.source), normalize_language(args.target)
    try:
        glossary = load_glossary(args.glossary if args.glossary is not None else settings.glossary, target)
    except GlossaryError as exc:
        raise BadInputError(str(exc)) from exc
    translator = make_translator(settings, source, target)
    texts = sys.stdin.read().splitlines()
    # no timing here: the budget is generous (the source's own length), so nothing is cut
    requests = [
        LineRequest(f"l{i}", text, max(1, 2 * count_words(text, source)), 0.0, glossary)
        for i, text in enumerate(texts)
    ]
    results = translator.translate(requests, source, target)
    failed = 0
    for number, result in enumerate(results, start=1):
        print(result.text)
        if result.status == STATUS_FAILED:
            failed += 1
            print(f"line {number}: not translated: {result.detail}", file=sys.stderr)
        elif result.flags:
            note = f" ({result.detail})" if result.detail else ""
            print(f"line {number}: flagged {', '.join(result.flags)}{note}", file=sys.stderr)
    sys.stdout.flush()
    return 1 if failed else 0
