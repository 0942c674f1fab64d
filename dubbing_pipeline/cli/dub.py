"""``transcribe``, ``dub`` and ``demo``: the source half of a video, then its target half per
language, with the outputs copied out of the media storage."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import dagster as dg

from dubbing_pipeline.cli.common import definitions, fail, local_instance, register_local
from dubbing_pipeline.common.ids import sanitize_id
from dubbing_pipeline.demo import DEMO_VIDEO
from dubbing_pipeline.dubbed_speech.tts import make_tts
from dubbing_pipeline.dubbed_video.report import stamp
from dubbing_pipeline.errors import BadInputError, ConfigurationError, DubbingError, QualityError
from dubbing_pipeline.freshness import file_digest
from dubbing_pipeline.orchestration import up_to_date
from dubbing_pipeline.orchestration.io_manager import load_asset_record, record_key
from dubbing_pipeline.orchestration.partitions import video_language_key
from dubbing_pipeline.orchestration.runner import run_job
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.core import require_video
from dubbing_pipeline.stages import ACCEPT_TAG, SOURCE_HALF, SOURCE_HALF_TAG, TARGET_HALF
from dubbing_pipeline.storage import MediaStorage


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "transcribe",
        help="materialise the source half of one video and print its transcript",
        description="Materialise source_video → audio_stems → speech_segments → transcript → "
        "speakers for VIDEO in the Dagster instance at $DAGSTER_HOME (default ./dagster_home).",
    )
    p.add_argument("video", metavar="VIDEO", help="path of the video file")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--id", help="video id (default: derived from the file name)")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser(
        "dub",
        help="dub videos into one or more languages",
        description="Dub each VIDEO into every language of --to; writes DIR/<video_id>/<lang>/ "
        "with <video_id>.<lang>.mp4, <lang>.srt, <lang>.vtt and report.json.",
    )
    p.add_argument("videos", metavar="VIDEO", nargs="+", help="video files")
    p.add_argument("--to", required=True, help="target languages, comma separated (e.g. es or es,fr)")
    p.add_argument("--out", default="out", help="output directory (default: ./out)")
    p.add_argument("--id", help="video id (only with one VIDEO; default: from the file name)")
    p.add_argument(
        "--accept",
        action="append",
        default=[],
        choices=["watermark", "failed_lines"],
        help="accept this blocking quality check failing (recorded in report.json; repeatable)",
    )
    p.set_defaults(func=cmd_dub)

    p = sub.add_parser(
        "demo",
        help="dub the bundled demo video into Spanish",
        description="Dub the bundled demo (two speakers over a music bed) into Spanish, offline.",
    )
    p.add_argument("--to", default="es", help="target language (default: es)")
    p.add_argument("--out", default="out", help="output directory (default: ./out)")
    p.set_defaults(func=cmd_demo)


# --- transcribe ------------------------------------------------------------------------------


class Line(TypedDict):
    start: float
    end: float
    speaker: str
    text: str


class Transcript(TypedDict):
    """What ``transcribe --json`` prints."""

    video_id: str
    language: str
    duration: float
    speakers: list[str]
    segments: list[Line]


def transcript_json(storage: MediaStorage, video_id: str) -> Transcript:
    source = load_asset_record(storage, "source_video", video_id)
    transcript = load_asset_record(storage, "transcript", video_id)
    speakers = load_asset_record(storage, "speakers", video_id)
    return {
        "video_id": video_id,
        "language": transcript["language"],
        "duration": source["duration"],
        "speakers": [s["id"] for s in speakers["speakers"]],
        "segments": [
            {"start": s["start"], "end": s["end"], "speaker": s["speaker"], "text": s["text"]}
            for s in speakers["segments"]
        ],
    }


def cmd_transcribe(args: argparse.Namespace) -> int:
    try:
        settings, storage, vid = register_local(args.video, args.id)
        defs = definitions(settings)
    except DubbingError as err:
        return fail(err)
    outcome = run_job(defs, "source_half", vid, stages=SOURCE_HALF, progress=sys.stderr)
    if not outcome.success:
        assert outcome.error is not None
        return fail(outcome.error, outcome.error_stage)
    data = transcript_json(storage, vid)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, sort_keys=True))
        return 0
    for name in SOURCE_HALF:
        meta = outcome.stages.get(name, {})
        flag = "cached" if meta.get("cached") else f"{meta.get('seconds', 0.0):.1f}s"
        print(f"  {name:<16} {flag}", file=sys.stderr)
    print(f"{vid}: {data['language']}, {data['duration']:.1f} s, speakers {', '.join(data['speakers'])}")
    for seg in data["segments"]:
        print(f"[{stamp(seg['start'])} → {stamp(seg['end'])}] {seg['speaker']}: {seg['text']}")
    return 0


# --- dub ---------------------------------------------------------------------------------------


class DubbedVideo(TypedDict, total=False):
    """The fields of a stored ``dubbed_video`` record that a dub's outputs are copied from."""

    outputs: dict[str, str]  # video, srt, vtt → URI
    video_name: str
    report_uri: str
    review_uri: str
    blocked: list[str]  # the blocking quality checks it failed


@dataclass(frozen=True)
class Failure:
    """A language whose dub failed: the error, and the stage it failed in."""

    error: DubbingError
    stage: str | None


@dataclass
class DubRun:
    """One video's dub in progress: what every step reads, and the parts found unchanged."""

    settings: Settings
    storage: MediaStorage
    video_id: str
    instance: dg.DagsterInstance
    work: up_to_date.Work
    out_dir: Path
    accept: Sequence[str]
    unchanged: list[str] = field(default_factory=list)

    @functools.cached_property
    def defs(self) -> dg.Definitions:
        """The graph (and its imports): only when a stage may run."""
        return definitions(self.settings)


def unspoken(settings: Settings, language: str) -> DubbingError | None:
    """Why no TTS engine here can speak ``language`` (e.g. a language without an espeak-ng voice),
    or None: asked before a dub into it runs, so it is refused in seconds rather than after the
    source half, the translation and a failed attempt at every line."""
    try:
        make_tts(settings, language)
    except DubbingError as err:
        return err
    return None


def dub_one(
    path: str, languages: list[str], out_dir: Path, video_id: str | None = None, accept: Sequence[str] = ()
) -> int:
    """Source half once, then the target half per language; write the outputs under out_dir. A part
    that is fresh (``up_to_date``: the same judgement as the catalog's and the UI's) does not run.
    ``accept``: blocking quality checks the person accepts failing (recorded in the report).
    Every language is tried; the first that fails is reported and gives the exit code."""
    run = start_dub(path, languages, out_dir, video_id, accept)
    code = source_half(run, languages)
    if code:
        return code
    worst = 0
    for lang in languages:
        failed = target_half(run, lang)
        if failed is not None and not worst:
            worst = fail(failed.error, failed.stage)
    if run.unchanged:
        up_to_date.report_up_to_date(run.instance, run.video_id, run.unchanged)
        print(f"unchanged since the last dub, not run: {', '.join(run.unchanged)}", file=sys.stderr)
    return worst


def start_dub(
    path: str, languages: Sequence[str], out_dir: Path, video_id: str | None, accept: Sequence[str]
) -> DubRun:
    """Register the video and the languages; judge what of them is done already."""
    settings, storage, vid = register_local(path, video_id)
    instance = local_instance()
    new = [lang for lang in languages if not instance.has_dynamic_partition("languages", lang)]
    if new:
        instance.add_dynamic_partitions("languages", new)
    work = up_to_date.Work(instance, storage, settings, file_digest(path), Path(path).resolve().as_uri(), vid)
    return DubRun(settings, storage, vid, instance, work, out_dir, accept)


def source_half(run: DubRun, languages: Sequence[str]) -> int:
    """The source half, unless it is done; then the video checked for a picture. Non-zero (and
    reported): the exit code of a failure, or of every language refused before any stage."""
    if run.work.is_done(None):
        run.unchanged.append(run.video_id)
    else:
        refused = [err for lang in languages if (err := unspoken(run.settings, lang)) is not None]
        if len(refused) == len(languages):  # nothing here could be dubbed: say so before any stage
            codes = [fail(err, "dubbed_speech") for err in refused]
            return codes[0]
        run.work.forget(None)
        outcome = run_job(
            run.defs, "source_half", run.video_id, stages=SOURCE_HALF, progress=sys.stderr,
            instance=run.instance,
        )  # fmt: skip
        if not outcome.success:
            assert outcome.error is not None
            return fail(outcome.error, outcome.error_stage)
        run.work.record(None, [record_key(asset, run.video_id) for asset in SOURCE_HALF])
    try:  # fail before any target-half work (dubbed_video checks again for runs not started here)
        require_video(load_asset_record(run.storage, "source_video", run.video_id)["info"])
    except DubbingError as err:
        return fail(err)
    return 0


def target_half(run: DubRun, lang: str) -> Failure | None:
    """The dub into ``lang``, unless it is done; its outputs copied out either way."""
    key = str(video_language_key(run.video_id, lang))
    up_to_date.observe_sources(run.instance, run.storage, run.video_id, lang)
    if run.work.is_done(lang):
        run.unchanged.append(key)
    elif (refusal := unspoken(run.settings, lang)) is not None:
        return Failure(refusal, "dubbed_speech")
    else:
        run.work.forget(lang)  # until this dub succeeds, the next one runs its job
        tags = {SOURCE_HALF_TAG: "unchanged"} if run.video_id in run.unchanged else {}
        if run.accept:
            tags[ACCEPT_TAG] = ",".join(sorted(run.accept))
        result = run_job(
            run.defs, "dub", key, stages=TARGET_HALF, progress=sys.stderr, instance=run.instance, tags=tags
        )
        if not result.success:
            assert result.error is not None
            return Failure(result.error, result.error_stage)
    return deliver(run, lang, key)


def deliver(run: DubRun, lang: str, key: str) -> Failure | None:
    """Copy the dub's outputs out and print where its video is; a dub that ran is recorded as
    done unless it failed a blocking check (its outputs are there to look at, but it is not done)."""
    record: DubbedVideo = load_asset_record(run.storage, "dubbed_video", key)
    dest = run.out_dir / run.video_id / lang
    if key not in run.unchanged:
        if record.get("blocked"):
            print(copy_outputs(run.storage, record, dest, lang))
            return Failure(blocked_error(record["blocked"], lang), "dubbed_video")
        uris = [*record["outputs"].values(), record["report_uri"], record["review_uri"]]
        edits_read = load_asset_record(run.storage, "translation", key).get("edits_version")
        run.work.record(
            lang,
            [record_key(asset, key) for asset in TARGET_HALF] + [run.storage.key_of(u) for u in uris],
            edits_read,
        )
    print(copy_outputs(run.storage, record, dest, lang))
    return None


def blocked_error(checks: Sequence[str], language: str) -> DubbingError:
    """The error of a dub that failed a blocking quality check: not recorded as done."""
    names = ", ".join(checks)
    return QualityError(
        f"the {language} dub failed the blocking check {names}: it is not recorded as done and the "
        f"next 'dub' tries again (see report.json's quality section; accept it with --accept {names})"
    )


def _copy_out(storage: MediaStorage, uri: str, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.part")
    storage.download(storage.key_of(uri), tmp)
    tmp.replace(dest)


def copy_outputs(storage: MediaStorage, record: DubbedVideo, dest: Path, lang: str) -> Path:
    """A dub into ``lang`` (its ``dubbed_video`` record) copied into ``dest``; the video's path there."""
    dest.mkdir(parents=True, exist_ok=True)
    outputs = record["outputs"]
    _copy_out(storage, outputs["video"], dest / record["video_name"])
    _copy_out(storage, outputs["srt"], dest / f"{lang}.srt")
    _copy_out(storage, outputs["vtt"], dest / f"{lang}.vtt")
    _copy_out(storage, record["report_uri"], dest / "report.json")
    _copy_out(storage, record["review_uri"], dest / "review.html")
    return dest / str(record["video_name"])


def cmd_dub(args: argparse.Namespace) -> int:
    languages = [lang.strip().lower() for lang in args.to.split(",") if lang.strip()]
    if not languages:
        return fail(BadInputError("--to needs at least one language code, e.g. --to es,fr"))
    if args.id and len(args.videos) > 1:  # one id for several videos: each would overwrite the last
        return fail(ConfigurationError(f"--id names one video, but {len(args.videos)} were given"))
    out_dir = Path(args.out)
    worst = 0
    for video in args.videos:
        try:
            code = dub_one(video, [sanitize_id(lang) for lang in languages], out_dir, args.id, args.accept)
        except DubbingError as err:
            code = fail(err)
        worst = worst or code
    return worst


def cmd_demo(args: argparse.Namespace) -> int:
    return dub_one(str(DEMO_VIDEO), [args.to], Path(args.out))
