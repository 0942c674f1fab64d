"""``speech_segments``: where the voice is (Silero VAD on the vocals stem) and how to chunk it."""

from pathlib import Path

import dagster as dg
import soundfile as sf

from dubbing_pipeline.audio_stems.records import AudioStemsRecord
from dubbing_pipeline.common.media import extract_audio, scene_changes
from dubbing_pipeline.errors import IneligibleError
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.orchestration.kit import (
    Step,
    StepResult,
    classified,
    run_step,
    stage_asset,
    stage_output,
)
from dubbing_pipeline.orchestration.resources import ASRResource, StorageResource
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.records import SourceVideoRecord
from dubbing_pipeline.speech_segments.chunks import plan_chunks
from dubbing_pipeline.speech_segments.records import SpeechSegmentsRecord
from dubbing_pipeline.speech_segments.vad import SAMPLE_RATE, merge_regions, read_wav_16k_mono, speech_regions

CODE_VERSION = recipe("speech_segments").code[0]
ASR_RATE = SAMPLE_RATE
VAD_BLOCK_SECONDS = 300.0
MIN_SPEECH_SECONDS = 1.0
VAD_PROVIDER = {"name": "silero-vad", "model": "silero_vad_v6.onnx (faster-whisper)"}


def vad_file(path: Path, block_seconds: float = VAD_BLOCK_SECONDS) -> list[tuple[float, float]]:
    """Voice activity over a 16 kHz file, one bounded block at a time."""
    total = sf.info(str(path)).frames / ASR_RATE
    regions: list[tuple[float, float]] = []
    start = 0.0
    while start < total:
        end = min(total, start + block_seconds)
        audio = read_wav_16k_mono(path, start, end)
        regions += [(start + s, start + e) for s, e in speech_regions(audio)]
        start = end
    return [(round(s, 3), round(e, 3)) for s, e in merge_regions(regions, 0.3)]


def find_segments(
    storage_res: StorageResource,
    asr_res: ASRResource,
    source: SourceVideoRecord,
    stems: AudioStemsRecord,
) -> StepResult[SpeechSegmentsRecord]:
    """Speech regions on the vocals stem and the chunk plan (cached)."""
    settings = asr_res.settings()
    chunk, overlap = settings.chunk_seconds, settings.chunk_overlap
    long_video = source.duration > chunk

    def compute(step: Step) -> dict[str, object]:
        return segment(step, source, stems, chunk, overlap)

    inputs = {
        "upstream": stems.cache_key, "vad": VAD_PROVIDER, "code": CODE_VERSION,
        "chunk": chunk, "overlap": overlap, "scenes": long_video,
    }  # fmt: skip
    return run_step(storage_res, "segments", inputs=inputs, compute=compute, record=SpeechSegmentsRecord)


def segment(
    step: Step, source: SourceVideoRecord, stems: AudioStemsRecord, chunk: float, overlap: float
) -> dict[str, object]:
    """The ``segments`` step's fields: the 16 kHz copy of the vocals, its speech and the chunk plan
    (cut at scene changes too where the video is longer than a chunk)."""
    duration = source.duration
    with step.local(stems.vocals_uri) as vocals:
        asr_copy = step.tmp / "asr16k.wav"
        extract_audio(vocals, asr_copy, sample_rate=ASR_RATE, channels=1, codec="pcm_s16le")
    speech = vad_file(asr_copy)
    require_speech(speech)
    scenes: list[float] = []
    if duration > chunk:
        with step.local(source.media_uri) as media:
            scenes = scene_changes(media)
    return {
        "duration": duration,
        "asr_audio_uri": step.put("asr16k.wav", asr_copy),
        "asr_rate": ASR_RATE,
        "speech": speech,
        "speech_seconds": round(sum(e - s for s, e in speech), 3),
        "scene_changes": scenes,
        "chunks": plan_chunks(duration, speech, scenes, max_seconds=chunk, overlap=overlap),
    }


def require_speech(speech: list[tuple[float, float]], minimum: float = MIN_SPEECH_SECONDS) -> None:
    """A video with less than ``minimum`` seconds of speech is ineligible for dubbing."""
    seconds = sum(e - s for s, e in speech)
    if seconds < minimum:
        raise IneligibleError(
            f"no speech to dub: {seconds:.1f} s of speech found (at least {minimum} s needed)"
        )


def segments_output(
    storage: StorageResource, asr: ASRResource, source_video: SourceVideoRecord, audio_stems: AudioStemsRecord
) -> dg.Output[SpeechSegmentsRecord]:
    """The speech regions and the chunk plan as the asset's output."""
    with classified("speech_segments"):
        result = find_segments(storage, asr, source_video, audio_stems)
    record = result.record
    return stage_output(
        record,
        upstream={"source_video": source_video, "audio_stems": audio_stems},
        code_version=storage.code_version("speech_segments"),
        seconds=result.seconds,
        cached=result.cached,
        media_seconds=record.duration,
        provider=VAD_PROVIDER,
        counts={
            "speech_regions": len(record.speech),
            "chunks": len(record.chunks),
            "speech_seconds": record.speech_seconds,
        },
    )


def build(settings: Settings) -> dg.AssetsDefinition:
    """The ``speech_segments`` asset."""

    def speech_segments(
        storage: StorageResource,
        asr: ASRResource,
        source_video: SourceVideoRecord,
        audio_stems: AudioStemsRecord,
    ) -> dg.Output[SpeechSegmentsRecord]:
        return segments_output(storage, asr, source_video, audio_stems)

    return stage_asset(
        speech_segments,
        kinds={"onnx"},
        description="Voice activity on the vocals stem and the ≤300 s chunk plan (cut at pauses/scene "
        "changes).",
        settings=settings,
    )


speech_segments = build(Settings())  # the embedded default; build_definitions builds its own
