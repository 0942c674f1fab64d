"""``dubbed_video`` (video × language): the finished MP4 with soft subtitles, SRT/VTT and report.json."""

import json
from typing import Any

import dagster as dg

from dubbing_pipeline.cache import StepCache, scratch
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.orchestration.partitions import split_video_language, video_language
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.orchestration.stage import Timer, classified, stage_metadata
from dubbing_pipeline.report import build_report

CODE_VERSION = "mux-1"
ISO639_2 = {
    "ar": "ara", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu", "el": "ell", "en": "eng", "es": "spa",
    "eu": "eus", "fi": "fin", "fr": "fra", "gl": "glg", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "ko": "kor", "nl": "nld", "no": "nor", "pl": "pol", "pt": "por", "ro": "ron",
    "ru": "rus", "sv": "swe", "th": "tha", "tr": "tur", "uk": "ukr", "vi": "vie", "zh": "zho",
}  # fmt: skip
UPSTREAM_STAGES = [
    ("source_video", "video"), ("audio_stems", "video"), ("speech_segments", "video"),
    ("transcript", "video"),
    ("speakers", "video"), ("translation", "pair"), ("dubbed_speech", "pair"), ("dub_mix", "pair"),
]  # fmt: skip


def iso3(code: str) -> str:
    return ISO639_2.get(code.split("-")[0].lower(), "und")


def cues(lines: list[dict[str, Any]], text_key: str, start_key: str, end_key: str) -> list[Any]:
    from dubbing_pipeline.mux import Cue

    out = []
    for line in lines:
        text = (line.get(text_key) or "").strip()
        start, end = line.get(start_key), line.get(end_key)
        if text and start is not None and end is not None and end > start:
            out.append(Cue(float(start), float(end), text, line.get("speaker")))
    return out


def mux_dub(
    storage_res: StorageResource,
    video_id: str,
    source: dict[str, Any],
    translation: dict[str, Any],
    speech: dict[str, Any],
    mix: dict[str, Any],
) -> tuple[dict[str, Any], bool]:
    from dubbing_pipeline.mux import mux_video, to_srt, to_vtt
    from dubbing_pipeline.report import report_segments

    storage = storage_res.get()
    src, tgt = translation["source_language"], translation["target_language"]
    key = cache_key(
        "mux",
        upstream=[source["cache_key"], translation["cache_key"], speech["cache_key"], mix["cache_key"]],
        video_id=video_id, code=CODE_VERSION,
    )  # fmt: skip
    cache = StepCache(storage, "mux")
    hit = cache.get(key)
    if hit is not None:
        return hit, True
    segments = report_segments(translation, speech)
    target_cues = cues(segments, "target_text", "dub_start", "dub_end")
    source_cues = cues(segments, "source_text", "start", "end")
    outputs: dict[str, str] = {}
    with scratch("mux", storage_res.work_dir or None) as tmp:
        files = {
            f"{tgt}.srt": to_srt(target_cues),
            f"{tgt}.vtt": to_vtt(target_cues),
            f"{src}.source.srt": to_srt(source_cues),
            f"{src}.source.vtt": to_vtt(source_cues),
        }
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        with (
            storage.open_local(storage.key_of(source["media_uri"]), tmp) as media,
            storage.open_local(storage.key_of(mix["mix_uri"]), tmp) as audio,
        ):
            name = f"{video_id}.{tgt}.mp4"
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
            )
            outputs["video"] = cache.put_artifact(key, name, tmp / name)
        for name in files:
            label = {"srt": "srt", "vtt": "vtt"}[name.rsplit(".", 1)[1]]
            outputs[("source_" if ".source." in name else "") + label] = cache.put_artifact(
                key, name, tmp / name
            )
    record = {"cache_key": key, "outputs": outputs, "video_name": f"{video_id}.{tgt}.mp4", "reencoded": False}
    return cache.put(key, record), False


def upstream_stages(context: dg.AssetExecutionContext, video_id: str) -> dict[str, dict[str, Any]]:
    """Seconds and cache state of each upstream stage's latest materialisation of this partition."""
    stages: dict[str, dict[str, Any]] = {}
    for name, scope in UPSTREAM_STAGES:
        partition = video_id if scope == "video" else str(context.partition_key)
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
)
def dubbed_video(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    source_video: dict[str, Any],
    speakers: dict[str, Any],
    translation: dict[str, Any],
    dubbed_speech: dict[str, Any],
    dub_mix: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    timer = Timer()
    video_id, _ = split_video_language(context)
    with classified("dubbed_video"):
        record, cached = mux_dub(storage, video_id, source_video, translation, dubbed_speech, dub_mix)
        stages = upstream_stages(context, video_id)
        stages["dubbed_video"] = {"seconds": timer.seconds, "cached": cached}
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
            },
            mix={k: dub_mix[k] for k in ("target_lufs", "loudness_lufs")},
        )
        store = storage.get()
        report_uri = store.put_bytes(
            f"reports/{video_id}/{translation['target_language']}/report.json",
            json.dumps(report, indent=1, ensure_ascii=False, sort_keys=True).encode("utf-8"),
        )
    statuses = [s["status"] for s in report["segments"]]
    return dg.Output(
        {**record, "report_uri": report_uri},
        metadata=stage_metadata(
            seconds=timer.seconds,
            media_seconds=float(source_video["duration"]),
            cached=cached,
            cache_key=record["cache_key"],
            provider={"name": "ffmpeg", "model": "libx264/aac mux"},
            counts={"segments": len(statuses), "failed": statuses.count("failed")},
            extra={"video": dg.MetadataValue.url(record["outputs"]["video"])},
        ),
    )
