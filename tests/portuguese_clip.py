"""A short Portuguese dialogue clip, spoken by the packaged Kokoro voices, for the pt→X dub tests.

No public recording of Portuguese speech is packaged on PyPI, Debian or npm, so the suite speaks
one: six lines written for this project (CC0), two voices (Kokoro ``male`` and ``female`` reading
espeak-ng's Brazilian Portuguese phonemes), placed on a fixed timeline over a grey picture and a
quiet pink-noise bed, muxed by ffmpeg into an MP4. Built in the test session from installed
packages only (nothing is downloaded), deterministic on one machine.

``LINES`` carries each line's English and Spanish as a fluent reader would say them: the dub tests
grade the pipeline's translations against them (chrF), not against any translator's output.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from dubbing_pipeline.dubbed_speech.tts import make_tts_engine
from dubbing_pipeline.settings import Settings

RATE = 24000


@dataclass(frozen=True)
class Line:
    voice: str
    start: float
    pt: str
    en: str
    es: str


LINES = (
    Line("male", 0.6, "Bom dia a todos. Hoje vou mostrar como fazer pão em casa.",
         "Good morning everyone. Today I'm going to show how to make bread at home.",
         "Buenos días a todos. Hoy voy a enseñar cómo hacer pan en casa."),
    Line("female", 5.4, "Que ótimo! Eu sempre quis aprender isso.",
         "That's great! I always wanted to learn that.",
         "¡Qué bien! Siempre quise aprender eso."),
    Line("male", 8.6, "Primeiro, misture a farinha com a água morna e o sal.",
         "First, mix the flour with the warm water and the salt.",
         "Primero, mezcla la harina con el agua tibia y la sal."),
    Line("female", 13.0, "Quanto tempo a massa precisa descansar?",
         "How long does the dough need to rest?",
         "¿Cuánto tiempo tiene que reposar la masa?"),
    Line("male", 16.2, "Mais ou menos uma hora, num lugar quente.",
         "More or less an hour, in a warm place.",
         "Más o menos una hora, en un lugar cálido."),
    Line("female", 19.6, "Perfeito. Depois é só colocar no forno.",
         "Perfect. Then you just put it in the oven.",
         "Perfecto. Después solo hay que meterlo en el horno."),
)  # fmt: skip
DURATION = 24.0


def speak(lines: tuple[Line, ...] = LINES) -> np.ndarray:
    """The dialogue at ``RATE`` Hz over a quiet, seeded noise bed (the same samples every time)."""
    engine = make_tts_engine("kokoro", Settings(), "pt")
    track = np.random.default_rng(29).normal(0.0, 0.003, int(DURATION * RATE)).astype(np.float32)
    for line in lines:
        audio = engine.synthesize(line.pt, "pt", voice=line.voice)
        if engine.sample_rate != RATE:
            raise RuntimeError(f"kokoro speaks at {engine.sample_rate} Hz, not {RATE}")
        at = int(line.start * RATE)
        end = min(len(track), at + len(audio))
        track[at:end] += audio[: end - at]
    return track


def build(out: Path) -> Path:
    """``out`` (an MP4: H.264 grey picture, AAC dialogue), made once per path."""
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    wav = out.with_suffix(".wav")
    sf.write(wav, speak(), RATE, subtype="PCM_16")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=gray:s=320x240:r=25:d={DURATION}",
         "-i", str(wav), "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "96k", "-shortest", "-fflags", "+bitexact", "-map_metadata", "-1", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    wav.unlink()
    return out
