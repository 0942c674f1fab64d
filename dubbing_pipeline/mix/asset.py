"""``dub_mix`` (video × language): the background stem with every dubbed line placed at its time."""

from typing import Any

import dagster as dg
import numpy as np
import soundfile as sf

from dubbing_pipeline.audio import write_wav
from dubbing_pipeline.cache import StepCache, scratch
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.orchestration.partitions import video_language
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.orchestration.stage import Timer, classified, stage_metadata

CODE_VERSION = "mix-1"


def mix_dub(
    storage_res: StorageResource, stems: dict[str, Any], speech: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    import soxr

    from dubbing_pipeline.mix import PlacedLine, dbfs, default_target_lufs, line_gain_db, mix_lines, normalize
    from dubbing_pipeline.mix.loudness import integrated_loudness

    storage = storage_res.get()
    key = cache_key("mix", upstream=[stems["cache_key"], speech["cache_key"]], code=CODE_VERSION)
    cache = StepCache(storage, "mix")
    hit = cache.get(key)
    if hit is not None:
        return hit, True
    with scratch("mix", storage_res.work_dir or None) as tmp:
        with storage.open_local(storage.key_of(stems["background_uri"]), tmp) as path:
            background, sr = sf.read(str(path), dtype="float32", always_2d=True)
        with storage.open_local(storage.key_of(stems["vocals_uri"]), tmp) as path:
            vocals, _ = sf.read(str(path), dtype="float32", always_2d=True)
        with storage.open_local(storage.key_of(stems["mix_uri"]), tmp) as path:
            original, _ = sf.read(str(path), dtype="float32", always_2d=True)
        background, vocals, original = background.T, vocals.T.mean(axis=0), original.T
        placed, gains = [], {}
        for line in speech["lines"]:
            if not line.get("uri"):
                continue
            with storage.open_local(storage.key_of(line["uri"]), tmp) as path:
                audio, line_sr = sf.read(str(path), dtype="float32")
            if line_sr != sr:
                audio = soxr.resample(audio, line_sr, sr, quality="HQ").astype(np.float32)
            a, b = int(round(line["start"] * sr)), int(round(line["end"] * sr))
            gain = line_gain_db(dbfs(vocals[a:b]), dbfs(audio))
            gains[line["id"]] = round(float(gain), 3)
            placed.append(PlacedLine(start=float(line["dub_start"]), audio=audio, gain_db=gain))
        mixed, _bus = mix_lines(background, sr, placed)
        target = default_target_lufs(original, sr)
        out, gain_db = normalize(mixed, sr, target)
        wav = write_wav(tmp / "mix.wav", out.T, sr)
        record = {
            "cache_key": key,
            "sample_rate": int(sr),
            "frames": int(out.shape[1]),
            "mix_uri": cache.put_artifact(key, "mix.wav", wav),
            "target_lufs": round(float(target), 2),
            "loudness_lufs": round(float(integrated_loudness(out, sr)), 2),
            "normalize_gain_db": round(float(gain_db), 3),
            "line_gains_db": gains,
        }
    return cache.put(key, record), False


@dg.asset(
    partitions_def=video_language,
    code_version=CODE_VERSION,
    group_name="target_half",
    kinds={"numpy"},
    description="Background stem + dubbed lines (gain matched to the source speech, 100 ms fades), "
    "loudness-normalised.",
)
def dub_mix(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    source_video: dict[str, Any],
    audio_stems: dict[str, Any],
    dubbed_speech: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    timer = Timer()
    with classified("dub_mix"):
        record, cached = mix_dub(storage, audio_stems, dubbed_speech)
    return dg.Output(
        record,
        metadata=stage_metadata(
            seconds=timer.seconds,
            media_seconds=float(source_video["duration"]),
            cached=cached,
            cache_key=record["cache_key"],
            provider={"name": "mix", "model": "BS.1770 loudness match"},
            counts={"lines": len(record["line_gains_db"]), "loudness_lufs": float(record["loudness_lufs"])},
        ),
    )
