"""``dubbing-pipeline bench --gpu``: the production providers at full size, timed on a CUDA device.

Each provider is built from ``dubbing_pipeline.tooling.structural`` at ``full_size=True`` (the real
architectures, hence the real FLOPs), loaded through its production adapter exactly as from a
mounted volume, and run once on a short warm-up and once on ``seconds`` of audio (60 s by
default; lip-sync on a shorter window). Reported per provider: build, load and run seconds,
the real-time factor (run seconds per second of media) and the peak GPU memory torch saw.
float16: Whisper's compute type; torch providers run under ``torch.autocast``.

A provider that cannot run (LatentSync's source tree not on ``sys.path``, an unsupported op, too
little memory) is reported with its error and the others go on: a short lent GPU session gets
every answer it can from one call. The providers' libraries are imported with this module: a
missing one stops the check before any provider runs. On a
CPU (``--device cpu``, reduced sizes) the same code is a smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dubbing_pipeline.audio_stems.providers import clear_separator_cache, make_separator
from dubbing_pipeline.demo import DEMO_VIDEO
from dubbing_pipeline.dubbed_speech.engines.chatterbox import VoiceCloningTTS
from dubbing_pipeline.lip_sync.latentsync_engine import LatentSyncEngine
from dubbing_pipeline.provenance.watermark import MARK_RATE, PerthWatermarker
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.pyannote_engine import PyannoteDiarizer
from dubbing_pipeline.tooling.structural.chatterbox import build_chatterbox_multilingual, chatterbox_size
from dubbing_pipeline.tooling.structural.demucs import build_htdemucs_repo, parameter_count
from dubbing_pipeline.tooling.structural.latentsync import build_latentsync
from dubbing_pipeline.tooling.structural.pyannote import build_pyannote_pipeline

PROVIDERS = ("demucs", "pyannote", "chatterbox", "latentsync", "perth")
LIPSYNC_SECONDS = 4.0  # a window is at most a few seconds; its RTF is per second of video
LINES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Every production provider runs for real, with structural weights.",
    "We measure how long each one takes on this graphics card.",
)


@dataclass
class Timing:
    provider: str
    media_seconds: float = 0.0
    build_s: float = 0.0
    load_s: float = 0.0
    run_s: float = 0.0
    rtf: float = math.nan
    peak_gpu_mb: float = 0.0
    detail: JsonObject = field(default_factory=dict)
    error: str = ""


def synthetic_speechlike(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Deterministic voiced bursts over noise, ``(channels, n)`` float32: enough structure to drive
    every model's code path (quality is meaningless with structural weights)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    f0 = 110 + 40 * np.sin(2 * np.pi * 0.3 * t)
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / rate) / k for k in range(1, 6))
    envelope = (np.sin(2 * np.pi * 0.7 * t) > -0.2).astype(np.float64)
    mono = 0.2 * voiced * envelope + 0.01 * rng.standard_normal(n)
    out = np.stack([np.roll(mono, 37 * c) for c in range(channels)])
    return out.astype(np.float32)


class _Clock:
    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    @contextlib.contextmanager
    def timed(self, sink: Callable[[float], None]) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
        sink(time.perf_counter() - started)

    def autocast(self) -> Any:
        if not self.cuda:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.float16)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_mb(self) -> float:
        return float(torch.cuda.max_memory_allocated() / 2**20) if self.cuda else 0.0


def _demucs(t: Timing, work: Path, settings: Settings, clock: _Clock, seconds: float, full: bool) -> None:
    with clock.timed(lambda s: setattr(t, "build_s", s)):
        repo = build_htdemucs_repo(work / "demucs", full_size=full)
    t.detail["parameters"] = parameter_count(repo)
    clear_separator_cache()
    with clock.timed(lambda s: setattr(t, "load_s", s)):
        separator = make_separator(replace(settings, separator="demucs", demucs_repo=str(repo)))
    mix = synthetic_speechlike(seconds, separator.sample_rate, channels=2)
    with clock.autocast():
        separator.separate(mix[:, : separator.sample_rate])  # warm-up
        clock.reset_peak()
        with clock.timed(lambda s: setattr(t, "run_s", s)):
            vocals, _ = separator.separate(mix)
    assert vocals.shape == mix.shape, (vocals.shape, mix.shape)
    t.media_seconds = seconds
    clear_separator_cache()


def _pyannote(t: Timing, work: Path, settings: Settings, clock: _Clock, seconds: float, full: bool) -> None:
    with clock.timed(lambda s: setattr(t, "build_s", s)):
        folder = build_pyannote_pipeline(work / "pyannote", full_size=full)
    with clock.timed(lambda s: setattr(t, "load_s", s)):
        diarizer = PyannoteDiarizer(replace(settings, diarizer="pyannote", pyannote_dir=str(folder)))
        diarizer.speaker_turns(synthetic_speechlike(2.0, 16000)[0], 0.0)  # loads, and warms up
    audio = synthetic_speechlike(seconds, 16000)[0]
    clock.reset_peak()
    with clock.autocast(), clock.timed(lambda s: setattr(t, "run_s", s)):
        turns, centroids = diarizer.speaker_turns(audio, 0.0)
    t.detail.update(turns=len(turns), embedding_dim=int(centroids.shape[1]) if centroids.size else 0)
    t.media_seconds = seconds


def _chatterbox(t: Timing, work: Path, settings: Settings, clock: _Clock, seconds: float, full: bool) -> None:
    with clock.timed(lambda s: setattr(t, "build_s", s)):
        folder = build_chatterbox_multilingual(work / "chatterbox", full_size=full)
    with chatterbox_size(full):
        with clock.timed(lambda s: setattr(t, "load_s", s)):
            tts = VoiceCloningTTS(replace(settings, tts="chatterbox", tts_model_dir=str(folder)))
            voice = tts.register_speaker("S1", synthetic_speechlike(5.0, 24000)[0], 24000)
            tts.synthesize("Warm up.", "en", voice=voice)
        clock.reset_peak()
        spoken = 0
        with clock.autocast(), clock.timed(lambda s: setattr(t, "run_s", s)):
            for line in LINES:
                spoken += len(tts.synthesize(line, "en", voice=voice))
    t.media_seconds = spoken / tts.sample_rate
    t.detail["lines"] = len(LINES)


def _latentsync(t: Timing, work: Path, settings: Settings, clock: _Clock, seconds: float, full: bool) -> None:
    with clock.timed(lambda s: setattr(t, "build_s", s)):
        root = build_latentsync(work / "latentsync", full_size=full)
    length = min(seconds, LIPSYNC_SECONDS)
    video, audio = work / "window.mp4", work / "window.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", "8", "-t", f"{length}", "-i", str(DEMO_VIDEO), "-r", "25",
         "-an", "-c:v", "libx264", str(video), "-vn", "-ac", "1", "-ar", "16000", str(audio)],
        check=True,
    )  # fmt: skip
    with clock.timed(lambda s: setattr(t, "load_s", s)):
        engine = LatentSyncEngine(replace(settings, lipsync="latentsync", latentsync_dir=str(root)))
        engine.check()
    clock.reset_peak()
    with clock.timed(lambda s: setattr(t, "run_s", s)):
        engine.sync(video, audio, work / "synced.mp4", work / "sync")
    t.media_seconds = length


def _perth(t: Timing, work: Path, settings: Settings, clock: _Clock, seconds: float, full: bool) -> None:
    """The audio watermark (its packaged weights, always full size): marked and read back on the
    demo's speech, looped to ``seconds``."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-stream_loop", "-1", "-i", str(DEMO_VIDEO), "-t", f"{seconds}", "-ac", "1",
         "-ar", str(MARK_RATE), "-f", "f32le", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    speech = np.frombuffer(raw, dtype=np.float32).copy()
    with clock.timed(lambda s: setattr(t, "load_s", s)):
        marker = PerthWatermarker(settings.device, settings.cpu_threads)
        marker.embed(speech[:MARK_RATE], MARK_RATE)  # loads, and warms up
    clock.reset_peak()
    with clock.timed(lambda s: setattr(t, "run_s", s)):
        marked = marker.embed(speech, MARK_RATE)
    t.detail.update(
        marked=marker.detect(marked, MARK_RATE).confidence,
        unmarked=marker.detect(speech, MARK_RATE).confidence,
    )
    t.media_seconds = len(speech) / MARK_RATE


RUNNERS: dict[str, Callable[[Timing, Path, Settings, _Clock, float, bool], None]] = {
    "demucs": _demucs,
    "pyannote": _pyannote,
    "chatterbox": _chatterbox,
    "latentsync": _latentsync,
    "perth": _perth,
}


def run_gpu_check(
    *,
    device: str = "cuda",
    seconds: float = 60.0,
    full_size: bool = True,
    providers: tuple[str, ...] = PROVIDERS,
    work: Path | None = None,
) -> JsonObject:
    """Time each provider; never raises for one provider's failure (it is reported)."""
    unknown = sorted(set(providers) - set(RUNNERS))
    if unknown:
        raise ValueError(f"unknown providers {unknown}; choose from {', '.join(PROVIDERS)}")
    clock = _Clock(device)
    settings = Settings(device=device, cpu_threads=max(1, torch.get_num_threads()))
    env = {
        "device": torch.cuda.get_device_name(0) if clock.cuda else "cpu",
        "torch": torch.__version__,
        "full_size": full_size,
        "seconds": seconds,
        "autocast": "float16" if clock.cuda else "none",
    }
    timings = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-", dir=work) as tmp:
        for name in providers:
            timing = Timing(name)
            try:
                RUNNERS[name](timing, Path(tmp) / name, settings, clock, seconds, full_size)
                timing.peak_gpu_mb = round(clock.peak_mb(), 1)
                timing.rtf = (
                    round(timing.run_s / timing.media_seconds, 4) if timing.media_seconds else math.nan
                )
            except Exception as exc:  # reported, and the next provider runs
                timing.error = f"{type(exc).__name__}: {exc}"
                timing.detail["traceback"] = traceback.format_exc(limit=6)
            timings.append(timing)
            print(_line(timing), file=sys.stderr, flush=True)
    return {"environment": env, "providers": [asdict(t) for t in timings]}


def _line(t: Timing) -> str:
    if t.error:
        return f"{t.provider:<11} FAILED {t.error}"
    return (
        f"{t.provider:<11} rtf {t.rtf:.4f}  run {t.run_s:.2f}s for {t.media_seconds:.1f}s  "
        f"load {t.load_s:.1f}s  build {t.build_s:.1f}s  peak {t.peak_gpu_mb:.0f} MiB"
    )


def main_json(*, device: str, seconds: float, reduced: bool, providers: str, out: str) -> int:
    chosen = tuple(p.strip() for p in providers.split(",") if p.strip()) or PROVIDERS
    result = run_gpu_check(device=device, seconds=seconds, full_size=not reduced, providers=chosen)
    text = json.dumps(result, indent=1, default=str)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 1 if any(p["error"] for p in result["providers"]) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dubbing_pipeline.tooling.gpucheck`` (the GPU image has no console script)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--reduced", action="store_true")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--out", default="")
    ns = parser.parse_args(argv)
    return main_json(
        device=ns.device, seconds=ns.seconds, reduced=ns.reduced, providers=ns.providers, out=ns.out
    )


if __name__ == "__main__":
    sys.exit(main())
