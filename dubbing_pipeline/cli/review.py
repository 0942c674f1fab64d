"""``lines``, ``feedback``, ``edit`` and ``delete``: the commands on one dub (or one video) that
is stored already."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

import dagster as dg

from dubbing_pipeline.cli.common import local_instance, media_storage, resolve_video_id
from dubbing_pipeline.common.ids import sanitize_id
from dubbing_pipeline.dubbed_speech.tts import make_tts
from dubbing_pipeline.dubbed_video.report import lines_table, review_lines
from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.orchestration.feedback_asset import observe_stored_feedback
from dubbing_pipeline.orchestration.io_manager import load_asset_record, record_key
from dubbing_pipeline.orchestration.partitions import video_language_key
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.review.delete import delete_dub, delete_video
from dubbing_pipeline.review.edits import (
    Dub,
    Edits,
    check_edits,
    source_slot,
    split_pairs,
    update_edits,
    with_change,
)
from dubbing_pipeline.review.feedback import add_feedback, load_feedback
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage
from dubbing_pipeline.translation.edits_asset import observe_stored


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lines",
        help="list the lines of a dub: time, speaker, status, round-trip CER, flags, source and target",
        description="List every line of the latest dub of VIDEO (a file or a video id) into --to: its "
        "slot, speaker, fit status, round-trip CER, flags (glossary, unintelligible, timing) and texts.",
    )
    one_dub_arguments(p)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=cmd_lines)

    p = sub.add_parser(
        "feedback",
        help="record a viewer's report on one line of a dub (shown by 'lines')",
        description="Record a note on one line of the latest dub of VIDEO into --to, stored with the "
        "media beside report.json; the dub itself does not change.",
    )
    one_dub_arguments(p)
    p.add_argument("--line", required=True, help="line id, as 'lines' shows it (e.g. s0004)")
    p.add_argument("--note", required=True, help="what is wrong with the line")
    p.set_defaults(func=cmd_feedback)

    register_edit(sub)

    p = sub.add_parser(
        "delete",
        help="delete a dub (--to) or a whole video: outputs, records and Dagster history",
        description="Delete the dub of VIDEO into --to (or, without --to, every dub of VIDEO and its "
        "source half): outputs, records, edits, feedback, runs and materialisations. The shared step "
        "cache stays; a following 'dub' rebuilds from it.",
    )
    one_dub_arguments(p, to_required=False, to_help="only this language's dub")
    p.set_defaults(func=cmd_delete)


def register_edit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "edit",
        help="correct a dub: a line's text, speaker, timing or skip, a speaker's voice, a glossary term",
        description="Store a correction of the dub of VIDEO into --to with the media "
        "(edits/<video>/<lang>.json); the next 'dub' re-renders only what it changes. An invalid "
        "edit names its line and field and stores nothing.",
    )
    one_dub_arguments(p)
    p.add_argument("--line", help="line id, as 'lines' shows it (e.g. s0004)")
    p.add_argument("--text", help="--line: the translation to speak instead")
    p.add_argument("--speaker", help="--line: the speaker whose voice says it (e.g. S2)")
    p.add_argument("--skip", action="store_true", help="--line: keep the original speech there")
    p.add_argument("--unskip", action="store_true", help="--line: dub it again")
    p.add_argument("--start", type=float, metavar="SECONDS",
                   help="--line: move the line's slot to start here (its voice is kept)")  # fmt: skip
    p.add_argument("--end", type=float, metavar="SECONDS", help="--line: end the line's slot here")
    p.add_argument("--source-timing", action="store_true",
                   help="--line: put the line back where the source speaks it")  # fmt: skip
    p.add_argument("--voice", action="append", default=[], metavar="SPEAKER=VOICE",
                   help="a speaker's voice, one of the TTS engine's (repeatable)")  # fmt: skip
    p.add_argument("--glossary", action="append", default=[], metavar="SOURCE=TARGET",
                   help="a term of this video's glossary (repeatable)")  # fmt: skip
    p.add_argument("--show", action="store_true", help="print the stored edits")
    p.set_defaults(func=cmd_edit)


def one_dub_arguments(
    p: argparse.ArgumentParser, to_required: bool = True, to_help: str = "target language (e.g. es)"
) -> None:
    """VIDEO, --to and --id: the arguments naming one dub (or, without --to, a video)."""
    p.add_argument("video", metavar="VIDEO", help="video file or video id")
    p.add_argument("--to", required=to_required, help=to_help)
    p.add_argument("--id", help="video id (default: from the file name, or VIDEO itself)")


def dub_record(storage: MediaStorage, asset: str, video_id: str, language: str) -> Any:
    """The stored record of ``asset`` for the dub of ``video_id`` into ``language``; a clear error
    when there is no such dub yet."""
    key = str(video_language_key(video_id, language))
    if not storage.exists(record_key(asset, key)):
        raise BadInputError(f"no dub of {video_id} into {language} yet: run 'dubbing-pipeline dub'")
    return load_asset_record(storage, asset, key)


def load_report(video_id: str, language: str) -> tuple[JsonObject, MediaStorage]:
    """The report.json of the latest ``dubbed_video`` of ``video_id`` × ``language``, and the storage."""
    storage = media_storage()
    record = dub_record(storage, "dubbed_video", video_id, language)
    report: JsonObject = json.loads(storage.get_bytes(storage.key_of(record["report_uri"])))
    return report, storage


def cmd_lines(args: argparse.Namespace) -> int:
    vid, lang = resolve_video_id(args.video, args.id), sanitize_id(args.to)
    report, storage = load_report(vid, lang)
    rows = review_lines(report, load_feedback(storage, vid, lang))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, sort_keys=True))
    else:
        print(lines_table(rows), end="")
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    vid, lang = resolve_video_id(args.video, args.id), sanitize_id(args.to)
    report, storage = load_report(vid, lang)
    item = add_feedback(storage, vid, lang, args.line, args.note, [str(s["id"]) for s in report["segments"]])
    # observed at once: the UI and the catalog see the dub's review page is out of date
    observe_stored_feedback(local_instance(), storage, vid, lang)
    print(f"{vid} {lang} {item['line']}: feedback recorded ({item['at']})")
    return 0


def dub_context(storage: MediaStorage, video_id: str, language: str) -> Dub:
    """What an edit of ``video_id`` × ``language`` is checked against (its lines, speakers, voices)."""
    lines = dub_record(storage, "translation", video_id, language)["lines"]
    speakers = load_asset_record(storage, "speakers", video_id)["speakers"]
    engine = make_tts(Settings.from_env(), language)
    return Dub(
        line_ids=[str(ln["id"]) for ln in lines],
        speakers=[str(s["id"]) for s in speakers],
        voices=[str(v) for v in engine.voices],
        slots={str(ln["id"]): source_slot(ln) for ln in lines},  # the record may hold moved lines
        duration=float(load_asset_record(storage, "source_video", video_id)["duration"]),
    )


def cmd_edit(args: argparse.Namespace) -> int:
    vid, lang = resolve_video_id(args.video, args.id), sanitize_id(args.to)
    storage = media_storage()
    skip = True if args.skip else (False if args.unskip else None)
    voices, glossary = split_pairs(args.voice, "--voice"), split_pairs(args.glossary, "--glossary")
    dub = functools.cache(lambda: dub_context(storage, vid, lang))  # only when something changes

    def change(stored: Edits) -> Edits:
        return with_change(
            stored, line=args.line, text=args.text, speaker=args.speaker, skip=skip, start=args.start,
            end=args.end, source_timing=args.source_timing, voices=voices, glossary=glossary,
        )  # fmt: skip

    # stored only if all of it holds, and only over the edits it was made to (a concurrent 'edit'
    # stores first: this one is made again over theirs)
    before, after, version = update_edits(
        storage, vid, lang, change, check=lambda edits: check_edits(edits, dub())
    )
    shown = json.dumps(after.to_json(), ensure_ascii=False, indent=1)
    if after == before:
        print(shown if args.show else f"{vid} {lang}: no change")
        return 0
    observe_stored(dg.DagsterInstance.get(), storage, vid, lang)
    print(shown if args.show else f"{vid} {lang}: edits {version[:12]}")
    print(f"run 'dubbing-pipeline dub VIDEO --to {lang}' to re-render what changed", file=sys.stderr)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    vid = resolve_video_id(args.video, args.id)
    storage = media_storage()
    instance = dg.DagsterInstance.get()
    if args.to:
        gone = delete_dub(instance, storage, vid, sanitize_id(args.to))
        print(f"deleted the dub of {vid} into {sanitize_id(args.to)}: {gone.summary()}")
    else:
        gone = delete_video(instance, storage, vid)
        print(f"deleted {vid} and its dubs: {gone.summary()}")
    return 0
