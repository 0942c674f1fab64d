"""The ``mux`` step: the finished MP4 (the lip-synced video, the dub mix, soft subtitle tracks), marked
as an AI dub (the visible label, the signed C2PA manifest), and its SRT/VTT files; cached."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from dubbing_pipeline import __version__
from dubbing_pipeline.dubbed_video.core import mux_video, needs_reencode
from dubbing_pipeline.dubbed_video.records import LabelDrawn, MuxOutputs, MuxRecord, Parents
from dubbing_pipeline.dubbed_video.report import ReportSegment
from dubbing_pipeline.dubbed_video.subtitles import Cue, to_srt, to_vtt
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.lip_sync.compose import compose
from dubbing_pipeline.orchestration.hooks import pause_point
from dubbing_pipeline.orchestration.kit import Step, StepResult, run_step
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.provenance.label import Label
from dubbing_pipeline.provenance.manifest import ManifestFacts, SignerInfo, dub_manifest
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.source_video.records import SourceVideoRecord
from dubbing_pipeline.storage.base import parse_uri

if TYPE_CHECKING:
    from dubbing_pipeline.provenance.c2pa import Signer

CODE_VERSION = recipe("dubbed_video").code[0]
ISO639_2 = {
    "ar": "ara", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu", "el": "ell", "en": "eng", "es": "spa",
    "eu": "eus", "fi": "fin", "fr": "fra", "gl": "glg", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "ko": "kor", "nl": "nld", "no": "nor", "pl": "pol", "pt": "por", "ro": "ron",
    "ru": "rus", "sv": "swe", "th": "tha", "tr": "tur", "uk": "ukr", "vi": "vie", "zh": "zho",
}  # fmt: skip


def iso3(code: str) -> str:
    return ISO639_2.get(code.split("-")[0].lower(), "und")


@dataclass(frozen=True)
class Marks:
    """What the mux adds to say the dub is AI-made: the visible label and the C2PA signer (each
    ``None`` when off; ``SafetyResource``)."""

    label: Label | None = None
    signer: Signer | None = None

    def key(self) -> JsonObject:
        return {
            "label": self.label.describe() if self.label is not None else None,
            "c2pa": self.signer.fingerprint if self.signer is not None else None,
        }


def mux_dub(
    storage_res: StorageResource,
    video_id: str,
    up: Parents,
    segments: Sequence[ReportSegment],
    marks: Marks = Marks(),
) -> StepResult[MuxRecord]:
    """The dubbed MP4 with soft subtitle tracks (labelled and signed as ``marks`` say), and the
    SRT/VTT files of ``segments`` (cached)."""
    reencode = needs_reencode(up.source_video.info.video_codec)

    def compute(step: Step) -> JsonObject:
        src, tgt = up.languages
        files = subtitle_files(segments, src, tgt)
        for name, text in files.items():
            (step.tmp / name).write_text(text, encoding="utf-8")
        name = f"{video_id}.{tgt}.mp4"
        with step.local(up.lip_sync.video_uri) as media, step.local(up.dub_mix.mix_uri) as audio:
            media, labelled = label_video(media, step.tmp, marks.label)
            mux_to(media, audio, step.tmp / name, up)
        signed = sign_dub(step, marks, step.tmp / name, up)
        outputs = {"video": step.put(name, step.tmp / name)}
        pause_point("mux")  # test hook (off by default): the MP4 is stored, its record.json not yet
        for sub in files:
            label = ("source_" if ".source." in sub else "") + sub.rsplit(".", 1)[1]
            outputs[label] = step.put(sub, step.tmp / sub)
        made = {"outputs": MuxOutputs.model_validate(outputs), "video_name": name, "reencoded": reencode}
        return {**made, "label": labelled, "c2pa": signed}

    inputs = {"upstream": upstream_keys(up), "video_id": video_id, **marks.key(), "code": CODE_VERSION}
    return run_step(storage_res, "mux", inputs=inputs, compute=compute, record=MuxRecord)


def upstream_keys(up: Parents) -> list[str]:
    """The cache keys the mux step is keyed by (a lip-sync record without one: its video)."""
    return [
        up.source_video.cache_key, up.translation.cache_key, up.dubbed_speech.cache_key,
        up.dub_mix.cache_key, up.lip_sync.cache_key or up.lip_sync.video_uri,
    ]  # fmt: skip


def label_video(media: Path, tmp: Path, label: Label | None) -> tuple[Path, LabelDrawn | None]:
    """The video with the visible label drawn on its first seconds (only the keyframe-aligned
    span it touches re-encoded), and what was re-encoded; unchanged without a label."""
    if label is None:
        return media, None
    out = tmp / "labelled.mp4"
    result = compose(media, [], out, tmp, label=label)
    return out, LabelDrawn.model_validate({**label.describe(), **result.record().to_json()})


def sign_dub(step: Step, marks: Marks, video: Path, up: Parents) -> SignerInfo | None:
    """Embed the dub's signed C2PA manifest in ``video`` (in place); what signed it."""
    signer = marks.signer
    if signer is None:
        return None
    facts = manifest_facts(up, marks.label)
    source = up.source_video
    with step.local(source.media_uri) as original:
        signer.sign_mp4(
            dub_manifest(facts), video, original, video, title=facts.source_name, source_sha256=source.sha256
        )
    return signer.describe()


def manifest_facts(up: Parents, label: Label | None) -> ManifestFacts:
    """What the dub's manifest says: the source, the languages, the models that made it, its marks."""
    src, tgt = up.languages
    speech = up.dubbed_speech
    models = {
        "translation": model_name(up.translation.provider),
        "speech": model_name(speech.provider),
        "lipsync": up.lip_sync.lipsync.provider,
    }
    return ManifestFacts(
        title=dub_tags(up.source_video, src, tgt)["title"],
        source_name=source_name(up.source_video),
        source_sha256=up.source_video.sha256,
        source_language=src,
        target_language=tgt,
        models=models,
        providers=sorted(set(models.values()) - {"none"}),
        watermark=(speech.watermark or {}).get("name"),
        label=label.text if label is not None else None,
        version=__version__,
    )


def source_name(source: SourceVideoRecord) -> str:
    """The source video's file name as the user gave it: the last part of its registered URI."""
    return PurePosixPath(parse_uri(source.source_uri)[2]).name or source.video_id


def model_name(provider: JsonObject) -> str:
    """A provider's short name for the manifest (``name`` or ``name/model``)."""
    name, model = provider.get("name") or provider.get("provider") or "unknown", provider.get("model")
    return f"{name}/{model}" if isinstance(model, str) and model else str(name)


def cue(text: str | None, start: float | None, end: float | None, speaker: str) -> Cue | None:
    """The subtitle of a line's ``text`` from ``start`` to ``end``; none for an empty or silent line."""
    words = (text or "").strip()
    if words and start is not None and end is not None and end > start:
        return Cue(float(start), float(end), words, speaker)
    return None


def subtitle_files(segments: Sequence[ReportSegment], src: str, tgt: str) -> dict[str, str]:
    """SRT and VTT of the dub (at the dubbed times) and of the source (at the source times: the
    source's words where the source speaks them, wherever an edit moved a line)."""
    dubbed = [cue(s.target_text, s.dub_start, s.dub_end, s.speaker) for s in segments]
    spoken = [cue(s.source_text, *s.source_slot(), s.speaker) for s in segments]
    target_cues = [c for c in dubbed if c is not None]
    source_cues = [c for c in spoken if c is not None]
    return {
        f"{tgt}.srt": to_srt(target_cues),
        f"{tgt}.vtt": to_vtt(target_cues),
        f"{src}.source.srt": to_srt(source_cues),
        f"{src}.source.vtt": to_vtt(source_cues),
    }


def mux_to(media: Path, audio: Path, out: Path, up: Parents) -> None:
    """Mux the dub's video, audio and the subtitle files beside ``out`` into ``out``."""
    src, tgt = up.languages
    tmp = out.parent
    mux_video(
        media,
        audio,
        out,
        duration=float(up.source_video.duration),
        subtitles=[
            (tmp / f"{tgt}.srt", iso3(tgt), f"{tgt} (dub)"),
            (tmp / f"{src}.source.srt", iso3(src), f"{src} (original)"),
        ],
        audio_language=iso3(tgt),
        reencode=needs_reencode(up.source_video.info.video_codec),
        tags=dub_tags(up.source_video, src, tgt),
    )


def dub_tags(source: SourceVideoRecord, src: str, tgt: str) -> dict[str, str]:
    """The dubbed MP4's plain metadata: what it is, in words a player shows."""
    return {
        "title": f"{source.video_id} ({tgt}, AI dub)",
        "comment": f"dubbed from {src} into {tgt} with AI (dubbing_pipeline): the {tgt} speech is synthetic",
    }
