"""``dubbing-pipeline``: one-off jobs from the command line, materialised in the Dagster instance."""

from __future__ import annotations

import argparse
import functools
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dubbing_pipeline.errors import BadInputError, ConfigurationError, DubbingError
from dubbing_pipeline.ids import sanitize_id
from dubbing_pipeline.report import stamp
from dubbing_pipeline.stages import ACCEPT_TAG, SOURCE_HALF, SOURCE_HALF_TAG, TARGET_HALF

_OWN_PROCESS = False
"""True when ``main`` is the whole life of this process (the console script, ``python -m``; set by
``run``), False when a caller imports ``main``: only then is the heap left to the process (``settle``)."""


def settle() -> None:
    """Take everything alive now out of the garbage collector's sight (``gc.freeze``), when this
    process ends with the command. The modules, definitions and models a command loads live until
    then, yet every full collection walks them again, and so does the interpreter's own collection
    at exit: on the demo dub about 0.5 s of the run and 1.1 s at exit, on an unchanged re-run 0.3 s
    of its 2 s. A caller that imports ``main`` (the tests) keeps its collector as it was."""
    if _OWN_PROCESS:
        gc.freeze()


def _fail(err: DubbingError, stage: str | None = None) -> int:
    where = f" [{stage}]" if stage else ""
    print(f"error{where}: {err.one_line()}", file=sys.stderr)
    return err.exit_code


@functools.cache
def local_instance() -> Any:
    """This process's Dagster instance (``$DAGSTER_HOME``), opened once."""
    import dagster as dg

    return dg.DagsterInstance.get()


def register_local(path: str, video_id: str | None) -> tuple[Any, Any, str]:
    """Register a local video with the instance and storage; return (settings, storage, video_id)."""
    from dubbing_pipeline.orchestration.registry import claim_video_id, register_video
    from dubbing_pipeline.orchestration.resources import storage_resource
    from dubbing_pipeline.runner import ensure_dagster_home
    from dubbing_pipeline.settings import Settings

    src = Path(path)
    if not src.is_file():
        raise BadInputError(f"no such file: {src.name}")
    ensure_dagster_home()
    settings = Settings.from_env()
    storage = storage_resource(settings).get()
    uri = src.resolve().as_uri()
    vid = claim_video_id(storage, src.name, uri, video_id)  # the id rule: never another file's id
    register_video(storage, vid, uri)
    instance = local_instance()
    if not instance.has_dynamic_partition("videos", vid):
        instance.add_dynamic_partitions("videos", [vid])
    return settings, storage, vid


def definitions(settings: Any) -> Any:
    """The Dagster definitions a command runs its jobs from; built, then ``settle``d: the graph
    and its imports stay until the process ends."""
    from dubbing_pipeline.definitions import build_definitions

    defs = build_definitions(settings)
    settle()
    return defs


def prepare_video(path: str, video_id: str | None) -> tuple[Any, Any, str]:
    """Register a local video; return (defs, storage, video_id)."""
    settings, storage, vid = register_local(path, video_id)
    return definitions(settings), storage, vid


def transcript_json(storage: Any, video_id: str) -> dict[str, Any]:
    from dubbing_pipeline.orchestration.io_manager import load_asset_record

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
    from dubbing_pipeline.runner import run_job

    try:
        defs, storage, vid = prepare_video(args.video, args.id)
    except DubbingError as err:
        return _fail(err)
    outcome = run_job(defs, "source_half", vid, stages=SOURCE_HALF, progress=sys.stderr)
    if not outcome.success:
        assert outcome.error is not None
        return _fail(outcome.error, outcome.error_stage)
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


def _copy_out(storage: Any, uri: str, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.part")
    storage.download(storage.key_of(uri), tmp)
    tmp.replace(dest)


def unspoken(settings: Any, language: str) -> DubbingError | None:
    """Why no TTS engine here can speak ``language`` (e.g. a language without an espeak-ng voice),
    or None: asked before a dub into it runs, so it is refused in seconds rather than after the
    source half, the translation and a failed attempt at every line."""
    from dubbing_pipeline.dubbed_speech.tts import make_tts

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
    ``accept``: blocking quality checks the person accepts failing (recorded in the report)."""
    from dubbing_pipeline import up_to_date
    from dubbing_pipeline.freshness import file_digest
    from dubbing_pipeline.orchestration.io_manager import load_asset_record, record_key
    from dubbing_pipeline.orchestration.partitions import video_language_key
    from dubbing_pipeline.runner import run_job
    from dubbing_pipeline.source_video.core import require_video

    settings, storage, vid = register_local(path, video_id)
    instance = local_instance()
    new = [lang for lang in languages if not instance.has_dynamic_partition("languages", lang)]
    if new:
        instance.add_dynamic_partitions("languages", new)
    work = up_to_date.Work(instance, storage, settings, file_digest(path), Path(path).resolve().as_uri(), vid)
    unchanged: list[str] = []

    @functools.cache
    def defs() -> Any:  # the graph (and its imports): only when a stage may run
        return definitions(settings)

    if work.is_done(None):
        unchanged.append(vid)
    else:
        refused = [err for lang in languages if (err := unspoken(settings, lang)) is not None]
        if len(refused) == len(languages):  # nothing here could be dubbed: say so before any stage
            codes = [_fail(err, "dubbed_speech") for err in refused]
            return codes[0]
        work.forget(None)
        outcome = run_job(
            defs(), "source_half", vid, stages=SOURCE_HALF, progress=sys.stderr, instance=instance
        )
        if not outcome.success:
            assert outcome.error is not None
            return _fail(outcome.error, outcome.error_stage)
        work.record(None, [record_key(asset, vid) for asset in SOURCE_HALF])
    try:  # fail before any target-half work (dubbed_video checks again for runs not started here)
        require_video(load_asset_record(storage, "source_video", vid)["info"])
    except DubbingError as err:
        return _fail(err)
    worst = 0
    for lang in languages:
        key = str(video_language_key(vid, lang))
        up_to_date.observe_sources(instance, storage, vid, lang)
        if work.is_done(lang):
            unchanged.append(key)
        elif (refusal := unspoken(settings, lang)) is not None:
            worst = worst or _fail(refusal, "dubbed_speech")
            continue
        else:
            work.forget(lang)  # until this dub succeeds, the next one runs its job
            tags = {SOURCE_HALF_TAG: "unchanged"} if vid in unchanged else {}
            if accept:
                tags[ACCEPT_TAG] = ",".join(sorted(accept))
            result = run_job(
                defs(), "dub", key, stages=TARGET_HALF, progress=sys.stderr, instance=instance, tags=tags
            )
            if not result.success:
                assert result.error is not None
                worst = worst or _fail(result.error, result.error_stage)
                continue
        record = load_asset_record(storage, "dubbed_video", key)
        if key not in unchanged:
            if record.get("blocked"):  # outputs are there to look at, but the dub is not done
                print(copy_outputs(storage, record, out_dir / vid / lang, lang))
                worst = worst or _fail(blocked_error(record["blocked"], lang), "dubbed_video")
                continue
            uris = [*record["outputs"].values(), record["report_uri"], record["review_uri"]]
            edits_read = load_asset_record(storage, "translation", key).get("edits_version")
            work.record(
                lang,
                [record_key(asset, key) for asset in TARGET_HALF] + [storage.key_of(u) for u in uris],
                edits_read,
            )
        print(copy_outputs(storage, record, out_dir / vid / lang, lang))
    if unchanged:
        up_to_date.report_up_to_date(instance, vid, unchanged)
        print(f"unchanged since the last dub, not run: {', '.join(unchanged)}", file=sys.stderr)
    return worst


def blocked_error(checks: Sequence[str], language: str) -> DubbingError:
    """The error of a dub that failed a blocking quality check: not recorded as done."""
    from dubbing_pipeline.errors import QualityError

    names = ", ".join(checks)
    return QualityError(
        f"the {language} dub failed the blocking check {names}: it is not recorded as done and the "
        f"next 'dub' tries again (see report.json's quality section; accept it with --accept {names})"
    )


def copy_outputs(storage: Any, record: dict[str, Any], dest: Path, lang: str) -> Path:
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
        return _fail(BadInputError("--to needs at least one language code, e.g. --to es,fr"))
    if args.id and len(args.videos) > 1:  # one id for several videos: each would overwrite the last
        return _fail(ConfigurationError(f"--id names one video, but {len(args.videos)} were given"))
    out_dir = Path(args.out)
    worst = 0
    for video in args.videos:
        try:
            code = dub_one(video, [sanitize_id(lang) for lang in languages], out_dir, args.id, args.accept)
        except DubbingError as err:
            code = _fail(err)
        worst = worst or code
    return worst


def cmd_demo(args: argparse.Namespace) -> int:
    from dubbing_pipeline.demo import DEMO_VIDEO

    return dub_one(str(DEMO_VIDEO), [args.to], Path(args.out))


def cmd_bench(args: argparse.Namespace) -> int:
    if args.scale:
        return cmd_bench_scale(args)
    if args.backfill:
        from dubbing_pipeline.backfill import main_json

        return main_json(args.backfill)
    if args.gpu:
        from dubbing_pipeline import gpucheck

        return gpucheck.main_json(
            device=args.device, seconds=args.seconds, reduced=args.reduced, providers=args.providers, out=""
        )
    from dubbing_pipeline.bench import run_bench

    out = Path(args.out)
    result = run_bench(out, long_seconds=args.long_seconds, keep_home=args.keep)
    print((out / "bench.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}", file=sys.stderr)
    failed = [m["name"] for m in result["measurements"] if m["exit_code"] != 0]
    if failed:
        print(f"error: bench commands failed: {', '.join(failed)} (see {out / 'bench.log'})", file=sys.stderr)
        return 1
    return 0


def cmd_bench_scale(args: argparse.Namespace) -> int:
    from dubbing_pipeline.scale import run_scale, summary

    result = run_scale(args.scale, new=args.new)
    print(json.dumps(result, indent=1) if args.json else summary(result))
    return 0 if result["ok"] else 1


def _video_id(video: str, explicit: str | None) -> str:
    """The id of VIDEO: ``--id``, else the id ``dub`` gave that file (the registry's id rule, read
    only: ``find_video_id``), else VIDEO itself as an id."""
    if explicit:
        return sanitize_id(explicit)
    src = Path(video)
    if not src.is_file():
        return sanitize_id(video)
    from dubbing_pipeline.orchestration.registry import find_video_id

    return find_video_id(media_storage(), src.name, src.resolve().as_uri())


def media_storage() -> Any:
    """The media storage of the settings, with ``$DAGSTER_HOME`` set up (the commands on one dub)."""
    from dubbing_pipeline.orchestration.resources import storage_resource
    from dubbing_pipeline.runner import ensure_dagster_home
    from dubbing_pipeline.settings import Settings

    ensure_dagster_home()
    return storage_resource(Settings.from_env()).get()


def dub_record(storage: Any, asset: str, video_id: str, language: str) -> Any:
    """The stored record of ``asset`` for the dub of ``video_id`` into ``language``; a clear error
    when there is no such dub yet."""
    from dubbing_pipeline.orchestration.io_manager import load_asset_record, record_key
    from dubbing_pipeline.orchestration.partitions import video_language_key

    key = str(video_language_key(video_id, language))
    if not storage.exists(record_key(asset, key)):
        raise BadInputError(f"no dub of {video_id} into {language} yet: run 'dubbing-pipeline dub'")
    return load_asset_record(storage, asset, key)


def load_report(video_id: str, language: str) -> tuple[dict[str, Any], Any]:
    """The report.json of the latest ``dubbed_video`` of ``video_id`` × ``language``, and the storage."""
    storage = media_storage()
    record = dub_record(storage, "dubbed_video", video_id, language)
    report: dict[str, Any] = json.loads(storage.get_bytes(storage.key_of(record["report_uri"])))
    return report, storage


def cmd_lines(args: argparse.Namespace) -> int:
    from dubbing_pipeline.feedback import load_feedback
    from dubbing_pipeline.report import lines_table, review_lines

    vid, lang = _video_id(args.video, args.id), sanitize_id(args.to)
    report, storage = load_report(vid, lang)
    rows = review_lines(report, load_feedback(storage, vid, lang))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, sort_keys=True))
    else:
        print(lines_table(rows), end="")
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from dubbing_pipeline.feedback import add_feedback
    from dubbing_pipeline.orchestration.feedback_asset import observe_stored_feedback

    vid, lang = _video_id(args.video, args.id), sanitize_id(args.to)
    report, storage = load_report(vid, lang)
    item = add_feedback(storage, vid, lang, args.line, args.note, [str(s["id"]) for s in report["segments"]])
    # observed at once: the UI and the catalog see the dub's review page is out of date
    observe_stored_feedback(local_instance(), storage, vid, lang)
    print(f"{vid} {lang} {item['line']}: feedback recorded ({item['at']})")
    return 0


def dub_context(storage: Any, video_id: str, language: str) -> Any:
    """What an edit of ``video_id`` × ``language`` is checked against (its lines, speakers, voices)."""
    from dubbing_pipeline.dubbed_speech.tts import make_tts
    from dubbing_pipeline.edits import Dub, source_slot
    from dubbing_pipeline.orchestration.io_manager import load_asset_record
    from dubbing_pipeline.settings import Settings

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
    import dagster as dg

    from dubbing_pipeline.edits import Edits, check_edits, split_pairs, update_edits, with_change
    from dubbing_pipeline.translation.edits_asset import observe_stored

    vid, lang = _video_id(args.video, args.id), sanitize_id(args.to)
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
    import dagster as dg

    from dubbing_pipeline.delete import delete_dub, delete_video

    vid = _video_id(args.video, args.id)
    storage = media_storage()
    instance = dg.DagsterInstance.get()
    if args.to:
        gone = delete_dub(instance, storage, vid, sanitize_id(args.to))
        print(f"deleted the dub of {vid} into {sanitize_id(args.to)}: {gone.summary()}")
    else:
        gone = delete_video(instance, storage, vid)
        print(f"deleted {vid} and its dubs: {gone.summary()}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Print a file's C2PA manifest and its validation state; non-zero unless it is valid."""
    from dubbing_pipeline.provenance import read_manifest, summary

    try:
        trust = Path(args.trust).read_bytes() if args.trust else None
    except OSError as exc:
        raise BadInputError(f"--trust: cannot read {Path(args.trust).name}") from exc
    mark = None if args.no_watermark else file_watermark(Path(args.file))
    if not (args.no_watermark or args.json):
        print(watermark_line(mark))
    verified = read_manifest(Path(args.file), trust)
    found = summary(verified)
    if args.json:
        print(json.dumps({**found, "watermark": mark}, indent=1, ensure_ascii=False))
    else:
        print(f"{Path(args.file).name}: C2PA manifest {verified.state}")
        print(f"  signed by {found['signed_by']} ({found['issuer']})")
        for action in found["actions"]:
            source_type = str(action.get("digitalSourceType", "")).rsplit("/", 1)[-1]
            print(f"  action {action['action']}" + (f" [{source_type}]" if source_type else ""))
        for ingredient in found["ingredients"]:
            made_from = f"{ingredient['relationship']}, {ingredient['instance_id']}"
            print(f"  ingredient {ingredient['title']} ({made_from})")
        for problem in verified.problems:
            print(f"  problem: {problem}")
    if "signingCredential.untrusted" in verified.problems and verified.ok and not args.json:
        print("the signer is not trusted here (a local signer?): --trust ROOT.pem names a root to trust")
    return 0 if verified.ok else 1


def file_watermark(path: Path) -> dict[str, Any] | None:
    """The audio watermark read from a dubbed file (see ``watermark.read_file``), or ``None``."""
    from dubbing_pipeline.settings import Settings
    from dubbing_pipeline.watermark import get_watermarker, read_file

    if not path.is_file():
        raise BadInputError(f"no such file: {path.name}")
    settings = Settings.from_env()
    return read_file(get_watermarker(settings.device, settings.cpu_threads), path)


def watermark_line(mark: dict[str, Any] | None) -> str:
    if mark is None:
        return "audio watermark: not read (the file has no subtitle track to say where the dub speaks)"
    verdict = "found" if mark["detected"] else "NOT found"
    return (
        f"audio watermark: {verdict} ({mark['watermarker']} score {mark['confidence']:.2f} over "
        f"{mark['seconds']:.1f} s of dubbed speech; {mark['cues_detected']}/{mark['cues']} cues alone)"
    )


def cmd_config(args: argparse.Namespace) -> int:
    from dubbing_pipeline.settings import Settings, markdown_table, rows, shown_default

    if args.markdown:
        print(markdown_table(), end="")
        return 0
    current = Settings.from_env().masked()
    for row in rows():
        value = str(current[row.name]) or "—"
        print(f"{row.metadata['env']:<32} {value:<28} (default {shown_default(row)}) {row.metadata['help']}")
    return 0


def _one_dub_arguments(
    p: argparse.ArgumentParser, to_required: bool = True, to_help: str = "target language (e.g. es)"
) -> None:
    """VIDEO, --to and --id: the arguments naming one dub (or, without --to, a video)."""
    p.add_argument("video", metavar="VIDEO", help="video file or video id")
    p.add_argument("--to", required=to_required, help=to_help)
    p.add_argument("--id", help="video id (default: from the file name, or VIDEO itself)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dubbing-pipeline",
        description="Dub videos: stems, transcript, speakers, translation, speech, mix and mux, on Dagster.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        "--backfill", type=int, default=0, metavar="N",
        help="instead: a real catalog backfill of N short clips × 2 languages run by a real dagster-daemon "
        "(JSON: wall times, run throughput, enqueue rate, and whether every partition ran exactly once)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="--scale: print the result as JSON")
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
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "lines",
        help="list the lines of a dub: time, speaker, status, round-trip CER, flags, source and target",
        description="List every line of the latest dub of VIDEO (a file or a video id) into --to: its "
        "slot, speaker, fit status, round-trip CER, flags (glossary, unintelligible, timing) and texts.",
    )
    _one_dub_arguments(p)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=cmd_lines)

    p = sub.add_parser(
        "feedback",
        help="record a viewer's report on one line of a dub (shown by 'lines')",
        description="Record a note on one line of the latest dub of VIDEO into --to, stored with the "
        "media beside report.json; the dub itself does not change.",
    )
    _one_dub_arguments(p)
    p.add_argument("--line", required=True, help="line id, as 'lines' shows it (e.g. s0004)")
    p.add_argument("--note", required=True, help="what is wrong with the line")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser(
        "edit",
        help="correct a dub: a line's text, speaker, timing or skip, a speaker's voice, a glossary term",
        description="Store a correction of the dub of VIDEO into --to with the media "
        "(edits/<video>/<lang>.json); the next 'dub' re-renders only what it changes. An invalid "
        "edit names its line and field and stores nothing.",
    )
    _one_dub_arguments(p)
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

    p = sub.add_parser(
        "delete",
        help="delete a dub (--to) or a whole video: outputs, records and Dagster history",
        description="Delete the dub of VIDEO into --to (or, without --to, every dub of VIDEO and its "
        "source half): outputs, records, edits, feedback, runs and materialisations. The shared step "
        "cache stays; a following 'dub' rebuilds from it.",
    )
    _one_dub_arguments(p, to_required=False, to_help="only this language's dub")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser(
        "verify",
        help="print a file's C2PA manifest and whether it is valid (exit 0 only then)",
        description="Read the C2PA manifest of FILE (a dubbed MP4): who signed it, its actions (AI-generated "
        "speech and translation), the source video it was made from, and its validation state. Exits 0 "
        "when the manifest is Valid or Trusted, 1 when it no longer matches the file's bytes, 3 for a "
        "file without one.",
    )
    p.add_argument("file", metavar="FILE", help="the MP4 to verify")
    p.add_argument(
        "--trust", metavar="PEM", help="a root certificate to trust (e.g. the local signer's root.pem)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--no-watermark", action="store_true", help="do not read the audio watermark (it is read where the "
        "file's first subtitle track says the dub speaks; it does not change the exit code)",
    )  # fmt: skip
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "config",
        help="list every setting: its variable, value now, default and meaning",
        description="List every DUBBING_* environment variable with its current value (secrets masked), "
        "its default and its meaning.",
    )
    p.add_argument("--markdown", action="store_true", help="print the README's configuration table")
    p.set_defaults(func=cmd_config)
    return parser


def _quiet_dagster_warnings() -> None:
    """Dagster's beta/preview notices are for pipeline authors, not for people running a dub."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview).*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"dagster.*")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_dagster_warnings()
    try:
        code: int = args.func(args)
    except DubbingError as err:
        return _fail(err)
    except KeyboardInterrupt:
        print("error: cancelled", file=sys.stderr)
        return 130
    return code


def run() -> None:
    """The console script ``dubbing-pipeline`` (and ``python -m dubbing_pipeline.cli``): ``main``
    as the whole life of a process, which then exits without collecting its heap (``settle``)."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    code = main()
    settle()
    sys.exit(code)


if __name__ == "__main__":
    run()
