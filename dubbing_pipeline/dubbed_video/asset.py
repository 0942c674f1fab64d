"""``dubbed_video`` (video × language): the finished MP4 with soft subtitles, SRT/VTT and report.json."""

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.cache import scratch
from dubbing_pipeline.edits import source_slot
from dubbing_pipeline.feedback import feedback_version, load_feedback
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.hooks import pause_point
from dubbing_pipeline.orchestration.fresh import BLOCKED
from dubbing_pipeline.orchestration.kit import Step, StepResult, Timer, classified, run_step, stage_output
from dubbing_pipeline.orchestration.partitions import split_video_language, video_language
from dubbing_pipeline.orchestration.resources import QualityResource, SafetyResource, StorageResource
from dubbing_pipeline.report import build_report, report_segments
from dubbing_pipeline.source_video.core import require_video
from dubbing_pipeline.stages import ACCEPT_TAG, FEEDBACK, SOURCE_HALF_TAG, before, scope

CODE_VERSION = recipe("dubbed_video").code[0]
QUALITY_VERSION = recipe("dubbed_video").code[
    1
]  # the quality step's own version (2: a marked source, ``source_marked``)
CLIPS_PER_FFMPEG = 32
"""Review clips encoded by one ffmpeg process (a process per line cost ~90 ms of start-up each)."""
MUX_PROVIDER = {"name": "ffmpeg", "model": "libx264/aac mux"}
CHECKS = ("intelligibility", "timing", "background", "failed_lines", "av_duration", "watermark", "toxicity")
ISO639_2 = {
    "ar": "ara", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu", "el": "ell", "en": "eng", "es": "spa",
    "eu": "eus", "fi": "fin", "fr": "fra", "gl": "glg", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "ko": "kor", "nl": "nld", "no": "nor", "pl": "pol", "pt": "por", "ro": "ron",
    "ru": "rus", "sv": "swe", "th": "tha", "tr": "tur", "uk": "ukr", "vi": "vie", "zh": "zho",
}  # fmt: skip


ERROR_CHECKS = ("failed_lines", "watermark")  # the rest warn
CHECK_TEXT = {
    "intelligibility": "the dubbed speech heard back by Whisper: character-weighted mean CER",
    "timing": "every line starts on time, fits its slot and is not sped up beyond the limit",
    "background": "the background where nobody speaks is the source's (correlation)",
    "failed_lines": "the share of lines left silent",
    "av_duration": "audio and video as long as the source, within a frame",
    "watermark": "the audio watermark read back from the MP4's AAC track in the dubbed lines, and "
    "not found in the source recording at the same times",
    "toxicity": "no translation brings in offensive terms its source line lacks (term lists)",
}


def iso3(code: str) -> str:
    return ISO639_2.get(code.split("-")[0].lower(), "und")


def cues(lines: list[dict[str, Any]], text_key: str, start_key: str, end_key: str) -> list[Any]:
    from dubbing_pipeline.dubbed_video import Cue

    out = []
    for line in lines:
        text = (line.get(text_key) or "").strip()
        start, end = line.get(start_key), line.get(end_key)
        if text and start is not None and end is not None and end > start:
            out.append(Cue(float(start), float(end), text, line.get("speaker")))
    return out


@dataclass(frozen=True)
class Marks:
    """What the mux adds to say the dub is AI-made: the visible label and the C2PA signer (each
    ``None`` when off; ``SafetyResource``)."""

    label: Any = None
    signer: Any = None

    def key(self) -> dict[str, Any]:
        return {
            "label": self.label.describe() if self.label is not None else None,
            "c2pa": self.signer.fingerprint if self.signer is not None else None,
        }


def mux_dub(
    storage_res: StorageResource,
    video_id: str,
    up: dict[str, dict[str, Any]],
    marks: Marks = Marks(),
) -> StepResult:
    """The dubbed MP4 with soft subtitle tracks (labelled and signed as ``marks`` say), and the
    SRT/VTT files (cached)."""
    from dubbing_pipeline.dubbed_video.core import needs_reencode

    source, translation, speech = up["source_video"], up["translation"], up["dubbed_speech"]
    mix, lipsync = up["dub_mix"], up["lip_sync"]
    src, tgt = translation["source_language"], translation["target_language"]
    reencode = needs_reencode(str(source["info"].get("video_codec", "")))

    def compute(step: Step) -> dict[str, Any]:
        files = subtitle_files(report_segments(translation, speech), src, tgt)
        for name, text in files.items():
            (step.tmp / name).write_text(text, encoding="utf-8")
        name = f"{video_id}.{tgt}.mp4"
        with step.local(lipsync["video_uri"]) as media, step.local(mix["mix_uri"]) as audio:
            media, labelled = label_video(media, step.tmp, marks.label)
            mux_to(media, audio, step.tmp, name, source, src, tgt, reencode)
        signed = sign_dub(step, marks, step.tmp / name, up)
        outputs = {"video": step.put(name, step.tmp / name)}
        pause_point("mux")  # test hook (off by default): the MP4 is stored, its record.json not yet
        for sub in files:
            label = ("source_" if ".source." in sub else "") + sub.rsplit(".", 1)[1]
            outputs[label] = step.put(sub, step.tmp / sub)
        made = {"outputs": outputs, "video_name": name, "reencoded": reencode}
        return {**made, "label": labelled, "c2pa": signed}

    upstream = [
        source["cache_key"], translation["cache_key"], speech["cache_key"], mix["cache_key"],
        lipsync.get("cache_key") or lipsync["video_uri"],
    ]  # fmt: skip
    inputs = {"upstream": upstream, "video_id": video_id, **marks.key(), "code": CODE_VERSION}
    return run_step(storage_res, "mux", inputs=inputs, compute=compute)


def label_video(media: Path, tmp: Path, label: Any) -> tuple[Path, dict[str, Any] | None]:
    """The video with the visible label drawn on its first seconds (only the keyframe-aligned
    span it touches re-encoded), and what was re-encoded; unchanged without a label."""
    if label is None:
        return media, None
    from dubbing_pipeline.lip_sync.compose import compose

    out = tmp / "labelled.mp4"
    result = compose(media, [], out, tmp, label=label)
    return out, {**label.describe(), **result.to_dict()}


def sign_dub(step: Step, marks: Marks, video: Path, up: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Embed the dub's signed C2PA manifest in ``video`` (in place); what signed it."""
    signer = marks.signer
    if signer is None:
        return None
    from dubbing_pipeline import __version__
    from dubbing_pipeline.provenance import dub_manifest, sign_mp4

    source, translation, speech = up["source_video"], up["translation"], up["dubbed_speech"]
    src, tgt = translation["source_language"], translation["target_language"]
    models = {
        "translation": model_name(translation.get("provider")),
        "speech": model_name(speech.get("provider")),
        "lipsync": str(up["lip_sync"].get("lipsync", {}).get("provider", "none")),
    }
    name = source_name(source)
    manifest = dub_manifest({
        "title": dub_tags(source, src, tgt)["title"], "source_name": name,
        "source_sha256": source["sha256"], "source_language": src, "target_language": tgt,
        "models": models, "providers": sorted(set(models.values()) - {"none"}),
        "watermark": (speech.get("watermark") or {}).get("name"),
        "label": marks.label.text if marks.label is not None else None,
        "version": __version__,
    })  # fmt: skip
    with step.local(source["media_uri"]) as original:
        sign_mp4(signer, manifest, video, original, video, title=name, source_sha256=source["sha256"])
    return signer.describe()


def source_name(source: dict[str, Any]) -> str:
    """The source video's file name as the user gave it: the last part of its registered URI."""
    from pathlib import PurePosixPath

    from dubbing_pipeline.storage.base import parse_uri

    return PurePosixPath(parse_uri(str(source["source_uri"]))[2]).name or str(source["video_id"])


def model_name(provider: Any) -> str:
    """A provider's short name for the manifest (``name`` or ``name/model``)."""
    if not isinstance(provider, dict):
        return "unknown"
    name, model = provider.get("name") or provider.get("provider") or "unknown", provider.get("model")
    return f"{name}/{model}" if isinstance(model, str) and model else str(name)


def subtitle_files(segments: list[dict[str, Any]], src: str, tgt: str) -> dict[str, str]:
    """SRT and VTT of the dub (at the dubbed times) and of the source (at the source times)."""
    from dubbing_pipeline.dubbed_video import to_srt, to_vtt

    target_cues = cues(segments, "target_text", "dub_start", "dub_end")
    # the source's words where the source speaks them, wherever an edit moved a line
    spoken = []
    for seg in segments:
        start, end = source_slot(seg)
        spoken.append({**seg, "start": start, "end": end})
    source_cues = cues(spoken, "source_text", "start", "end")
    return {
        f"{tgt}.srt": to_srt(target_cues),
        f"{tgt}.vtt": to_vtt(target_cues),
        f"{src}.source.srt": to_srt(source_cues),
        f"{src}.source.vtt": to_vtt(source_cues),
    }


def mux_to(
    media: Any, audio: Any, tmp: Any, name: str, source: dict[str, Any], src: str, tgt: str, reencode: bool
) -> None:
    from dubbing_pipeline.dubbed_video import mux_video

    mux_video(
        media,
        audio,
        tmp / name,
        duration=float(source["duration"]),
        subtitles=[
            (tmp / f"{tgt}.srt", iso3(tgt), f"{tgt} (dub)"),
            (tmp / f"{src}.source.srt", iso3(src), f"{src} (original)"),
        ],
        audio_language=iso3(tgt),
        reencode=reencode,
        tags=dub_tags(source, src, tgt),
    )


def dub_tags(source: dict[str, Any], src: str, tgt: str) -> dict[str, str]:
    """The dubbed MP4's plain metadata: what it is, in words a player shows."""
    return {
        "title": f"{source['video_id']} ({tgt}, AI dub)",
        "comment": f"dubbed from {src} into {tgt} with AI (dubbing_pipeline): the {tgt} speech is synthetic",
    }


def quality_section(
    storage_res: StorageResource,
    thresholds: Any,
    report: dict[str, Any],
    speech: dict[str, Any],
    stems: dict[str, Any],
    mix: dict[str, Any],
    source: dict[str, Any],
    video_uri: str,
    marker: Any = None,
) -> dict[str, Any]:
    """The dub's quality (report.json ``quality``), a cached ``quality`` step keyed by what it
    measures: an unchanged re-run reads it back instead of decoding the MP4 and loading the
    watermark decoder again."""
    inputs = {
        "video": video_uri, "mix": mix["cache_key"], "stems": stems["cache_key"],
        "speech": speech["cache_key"], "source": source["cache_key"], "segments": report["segments"],
        "toxicity": report.get("provenance", {}).get("toxicity"), "thresholds": thresholds.to_dict(),
        "watermark": marker.describe() if marker is not None else None, "code": CODE_VERSION,
        "checks": QUALITY_VERSION,
    }  # fmt: skip

    def compute(step: Step) -> dict[str, Any]:  # per-line scores, background, A/V duration, watermark
        import soundfile as sf

        from dubbing_pipeline.dubbed_video.core import probe_durations
        from dubbing_pipeline.quality.scorecard import (
            background_correlation,
            line_scores,
            quiet_mask,
            scorecard,
            toxicity_check,
        )

        duration = float(source["duration"])
        cer = {line["id"]: line.get("cer") for line in speech["lines"]}
        rows = line_scores(report["segments"], cer, duration, thresholds)
        with step.local(mix["mix_uri"]) as path:
            mixed, sr = sf.read(str(path), dtype="float32", always_2d=True)
        with step.local(stems["background_uri"]) as path:
            background, _ = sf.read(str(path), dtype="float32", always_2d=True)
        with step.local(video_uri) as path:
            durations = probe_durations(path)
        quiet = quiet_mask(report["segments"], sr, min(len(mixed), len(background)))
        corr = background_correlation(mixed, background, quiet, sr)
        info = source["info"]
        frame = 1.0 / float(info["fps"]) if info.get("fps") else 0.04
        video_d = durations.get("video") or duration
        audio_d = durations.get("audio") or 0.0
        av_difference = max(abs(video_d - duration), abs(audio_d - video_d))
        card = scorecard(
            rows, background_corr=corr, av_difference=av_difference, frame_seconds=frame, t=thresholds
        )
        card["watermark"] = watermark_check(storage_res, marker, report["segments"], source, video_uri)
        card["toxicity"] = toxicity_check(report["segments"], report.get("provenance", {}).get("toxicity"))
        return {"thresholds": thresholds.to_dict(), "checks": card, "segments": rows}

    record = run_step(storage_res, "quality", inputs=inputs, compute=compute).record
    return {k: record[k] for k in ("thresholds", "checks", "segments")}


def watermark_check(
    storage_res: StorageResource,
    marker: Any,
    segments: list[dict[str, Any]],
    source: dict[str, Any],
    video_uri: str,
) -> dict[str, Any]:
    """The audio watermark read back from the finished MP4's AAC track (``watermark.read_back``)."""
    from dubbing_pipeline.media import extract_audio
    from dubbing_pipeline.watermark import MARK_RATE, read_back, speech_spans

    if marker is None:
        return {"passed": True, "enabled": False, "detail": "DUBBING_WATERMARK=off: the speech is not marked"}
    storage = storage_res.get()
    with scratch("watermark", storage_res.work_dir or None) as tmp:
        with storage.open_local(storage.key_of(video_uri), tmp) as path:
            extract_audio(path, tmp / "dub.wav", sample_rate=MARK_RATE, channels=1)
        with storage.open_local(storage.key_of(source["audio_uri"]), tmp) as path:
            return read_back(marker, tmp / "dub.wav", path, speech_spans(segments))


def upstream_stages(context: dg.AssetExecutionContext, video_id: str) -> dict[str, dict[str, Any]]:
    """Seconds and cache state of each upstream stage's latest materialisation of this partition;
    the source half as reused (cached, no seconds) when the CLI found it unchanged and did not run
    it for this dub (run tag ``dubbing/source_half``)."""
    stages: dict[str, dict[str, Any]] = {}
    reused = context.run.tags.get(SOURCE_HALF_TAG) == "unchanged"
    for name in before("dubbed_video"):
        if reused and scope(name) == "video":
            stages[name] = {"seconds": 0.0, "cached": True}
            continue
        partition = video_id if scope(name) == "video" else str(context.partition_key)
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[partition]), limit=1
        ).records
        mat = records[0].asset_materialization if records else None
        if mat is not None:
            meta = mat.metadata
            stages[name] = {
                "seconds": float(meta["seconds"].value) if "seconds" in meta else 0.0,
                "cached": bool(meta["cached"].value) if "cached" in meta else False,
            }
    return stages


@dg.asset(
    partitions_def=video_language,
    code_version=CODE_VERSION,
    group_name="target_half",
    kinds={"ffmpeg"},
    description="The dubbed MP4 (video stream-copied, AAC, +faststart, soft subtitles), SRT/VTT and "
    "report.json.",
    check_specs=[dg.AssetCheckSpec(name, asset="dubbed_video") for name in CHECKS],
    deps=[FEEDBACK],
)
def dubbed_video(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    quality: QualityResource,
    safety: SafetyResource,
    source_video: dict[str, Any],
    audio_stems: dict[str, Any],
    speakers: dict[str, Any],
    translation: dict[str, Any],
    dubbed_speech: dict[str, Any],
    dub_mix: dict[str, Any],
    lip_sync: dict[str, Any],
) -> Any:
    timer = Timer()
    video_id, _ = split_video_language(context)
    up = {
        "source_video": source_video, "audio_stems": audio_stems, "speakers": speakers,
        "translation": translation, "dubbed_speech": dubbed_speech, "dub_mix": dub_mix, "lip_sync": lip_sync,
    }  # fmt: skip
    with classified("dubbed_video"):
        require_video(source_video["info"])
        result = mux_dub(storage, video_id, up, Marks(safety.label(), safety.signer()))
        here = {"seconds": timer.seconds, "cached": result.cached}
        stages = {**upstream_stages(context, video_id), "dubbed_video": here}
        report = dub_report(video_id, stages, result.record, **up)
        report["quality"] = quality_section(
            storage, quality.thresholds(), report, dubbed_speech, audio_stems, dub_mix, source_video,
            result.record["outputs"]["video"], safety.watermarker(),
        )  # fmt: skip
        blocking = blocking_checks(report["quality"], accepted_checks(context.run.tags))
        pages, read = publish_with_feedback(storage, video_id, report, dubbed_speech, result.record)
    yield stage_output(
        {**result.record, **pages, "blocked": blocking}, upstream={**up, **read},
        code_version=storage.code_version("dubbed_video") + (BLOCKED if blocking else ""),
        seconds=timer.seconds, cached=result.cached,
        media_seconds=float(source_video["duration"]), provider=MUX_PROVIDER,
        counts=segment_counts(report),
        extra={
            "video": dg.MetadataValue.url(result.record["outputs"]["video"]),
            "review": dg.MetadataValue.url(pages["review_uri"]),
        },
    )  # fmt: skip
    yield from check_results(report["quality"])


def segment_counts(report: dict[str, Any]) -> dict[str, int | float]:
    statuses = [s["status"] for s in report["segments"]]
    return {"segments": len(statuses), "failed": statuses.count("failed")}


def publish_with_feedback(
    storage: StorageResource,
    video_id: str,
    report: dict[str, Any],
    speech: dict[str, Any],
    record: dict[str, Any],
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The report and review page with the feedback stored now; and the version of that feedback
    as a parent of the output (the ``feedback`` source asset): a later note makes the dub stale."""
    notes = load_feedback(storage.get(), video_id, str(report["target_language"]))
    pages = publish_report(storage, video_id, report, speech, record, notes)
    return pages, {FEEDBACK: {"cache_key": feedback_version(notes)}}


def line_clips(storage_res: StorageResource, speech: dict[str, Any]) -> dict[str, str]:
    """Each spoken line's audio as a ``data:`` URI (Ogg Opus, 24 kb/s mono, bit-exact), for the
    review page; cached by the lines' records."""
    import base64

    from dubbing_pipeline.media import BITEXACT, run_ffmpeg

    lines = [ln for ln in speech["lines"] if ln.get("uri")]

    def compute(step: Step) -> dict[str, Any]:
        clips = {}
        for first in range(0, len(lines), CLIPS_PER_FFMPEG):  # one ffmpeg process per batch of lines
            batch = lines[first : first + CLIPS_PER_FFMPEG]
            with contextlib.ExitStack() as stack:
                paths = [stack.enter_context(step.local(line["uri"])) for line in batch]
                args = [a for path in paths for a in ("-i", str(path))]
                for i, _ in enumerate(batch):
                    out_args = ["-ac", "1", "-c:a", "libopus", "-b:a", "24k", *BITEXACT, "-f", "ogg"]
                    args += ["-map", f"{i}:a", *out_args, str(step.tmp / f"line{i}.ogg")]
                run_ffmpeg(args, what="review clips")
            for i, line in enumerate(batch):
                data = base64.b64encode((step.tmp / f"line{i}.ogg").read_bytes()).decode("ascii")
                clips[str(line["id"])] = "data:audio/ogg;base64," + data
        out = step.tmp / "clips.json"
        out.write_text(json.dumps(clips, sort_keys=True), encoding="utf-8")
        return {"clips_uri": step.put("clips.json", out)}

    inputs = {"lines": [[ln["id"], ln.get("cache_key"), ln["uri"]] for ln in lines], "code": CODE_VERSION}
    record = run_step(storage_res, "review_clips", inputs=inputs, compute=compute).record
    store = storage_res.get()
    clips: dict[str, str] = json.loads(store.get_bytes(store.key_of(record["clips_uri"])))
    return clips


def publish_report(
    storage_res: StorageResource,
    video_id: str,
    report: dict[str, Any],
    speech: dict[str, Any],
    record: dict[str, Any],
    feedback: list[dict[str, Any]],
) -> dict[str, str]:
    """``report.json`` and ``review.html`` under ``reports/<video>/<lang>/``; their URIs."""
    report_uri = storage_res.get().put_bytes(
        f"reports/{video_id}/{report['target_language']}/report.json",
        json.dumps(report, indent=1, ensure_ascii=False, sort_keys=True).encode("utf-8"),
    )
    return {
        "report_uri": report_uri,
        "review_uri": review_page(storage_res, video_id, report, speech, record, feedback),
    }


def review_page(
    storage_res: StorageResource,
    video_id: str,
    report: dict[str, Any],
    speech: dict[str, Any],
    record: dict[str, Any],
    feedback: list[dict[str, Any]],
) -> str:
    """``review.html`` beside ``report.json`` (see ``dubbing_pipeline.review``); returns its URI."""
    from dubbing_pipeline.review import review_html

    lang = str(report["target_language"])
    store = storage_res.get()
    page = review_html(
        report, video_name=str(record["video_name"]), subtitles_name=f"{lang}.vtt",
        line_audio=line_clips(storage_res, speech), feedback=feedback,
    )  # fmt: skip
    uri: str = store.put_bytes(f"reports/{video_id}/{lang}/review.html", page.encode("utf-8"))
    return uri


def dub_report(
    video_id: str,
    stages: dict[str, dict[str, Any]],
    record: dict[str, Any],
    *,
    source_video: dict[str, Any],
    audio_stems: dict[str, Any],
    speakers: dict[str, Any],
    translation: dict[str, Any],
    dubbed_speech: dict[str, Any],
    dub_mix: dict[str, Any],
    lip_sync: dict[str, Any],
) -> dict[str, Any]:
    """report.json without its quality section (see the README for the schema)."""
    report = build_report(
        video_id=video_id,
        duration=float(source_video["duration"]),
        translation=translation,
        speech=dubbed_speech,
        stages=stages,
        outputs=record["outputs"],
        speakers=[{"id": s["id"], "seconds": s["seconds"]} for s in speakers["speakers"]],
        providers={
            "translation": translation.get("provider", {}),
            "speech": dubbed_speech.get("provider", {}),
            "lipsync": {"name": lip_sync.get("lipsync", {}).get("provider", "none")},
        },
        mix={k: dub_mix[k] for k in ("target_lufs", "loudness_lufs")},
    )
    spoken = [r for r in dubbed_speech["lines"] if r.get("status") not in ("failed", "original")]
    report["rerender"] = {  # what this run spoke (all lines on a first dub; the edited ones after an edit)
        "lines": len(spoken),
        "spoken": list(dubbed_speech.get("spoken", [])),
        "takes_cached": len(spoken) - len(dubbed_speech.get("spoken", [])),  # voices not synthesised again
        "refitted": list(dubbed_speech.get("refitted", [])),  # fitted again (a new text or slot)
        "edits_version": translation.get("edits_version"),
    }
    report["provenance"] = {  # what says this dub is AI-made (README: Safety and provenance)
        "watermark": dubbed_speech.get("watermark"),
        "c2pa": record.get("c2pa"),
        "label": record.get("label"),
        "toxicity": translation.get("toxicity"),
    }
    report["lipsync"] = {
        **lip_sync.get("lipsync", {}),
        "changed": bool(lip_sync.get("changed", False)),
        "status": lip_sync.get("status", ""),
        "error": lip_sync.get("error"),
    }
    return report


def accepted_checks(tags: Mapping[str, str]) -> list[str]:
    """The blocking checks the run's ``dubbing/accept`` tag accepts (unknown names are ignored)."""
    return sorted({c.strip() for c in tags.get(ACCEPT_TAG, "").split(",")} & set(ERROR_CHECKS))


def blocking_checks(quality: dict[str, Any], accepted: list[str]) -> list[str]:
    """The blocking (ERROR) checks that failed and were not accepted; ``quality`` records both lists,
    so the report says what a person overrode."""
    failed = [name for name in ERROR_CHECKS if not quality["checks"][name]["passed"]]
    quality["accepted"] = [name for name in failed if name in accepted]
    quality["blocking"] = [name for name in failed if name not in accepted]
    return list(quality["blocking"])


def check_results(quality: dict[str, Any]) -> Any:
    """One asset check result per scorecard check; the per-segment table rides on ``timing``."""
    from dubbing_pipeline.quality.scorecard import markdown_table

    for name in CHECKS:
        result = quality["checks"][name]
        metadata: dict[str, Any] = {
            k: dg.MetadataValue.json(v) if isinstance(v, list) else v
            for k, v in result.items()
            if k != "passed" and v is not None
        }
        if name in ("timing", "intelligibility"):
            metadata["segments"] = dg.MetadataValue.md(markdown_table(quality["segments"]))
        metadata["thresholds"] = dg.MetadataValue.json(quality["thresholds"])
        yield dg.AssetCheckResult(
            check_name=name,
            passed=bool(result["passed"]),
            severity=dg.AssetCheckSeverity.ERROR if name in ERROR_CHECKS else dg.AssetCheckSeverity.WARN,
            metadata=metadata,
            description=CHECK_TEXT[name],
        )
