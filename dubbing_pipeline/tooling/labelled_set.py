"""A labelled set of real recordings for calibrating and checking speaker counting.

Every clip is built from recordings that ship in packages (nothing is downloaded):

* ``reader``: one LibriVox reader, five sentences of *Sense and Sensibility* (Debian
  ``pocketsphinx-testdata``, BSD-2), 16 kHz;
* ``prompts``: the eight spoken channel names of ``alsa-utils`` (one voice, ~1.4 s each);
* ``call``: the pyannote-audio sample, a real two-person phone call, with its reference
  transcript (``sample.stm``); ``call_<name>`` is one caller's lines alone;
* ``demo`` / ``demo_<name>``: the same for the demo clip's separated vocals (music bed removed
  by the pipeline's own separator), when those are given;
* dialogues made by alternating the lines of two of these voices (a reader and a caller, a
  reader and the prompts, ...), and single voices over the demo's music bed.

Spans are the reference spans (the file or STM boundaries), so the figures measure the
speaker decision alone, not the segmentation. ``evaluate`` reports, per clip, the speakers found
against the truth and the diarization error rate; ``python -m dubbing_pipeline.tooling.labelled_set``
prints the table (``--split-score`` / ``--split-per-window`` try other thresholds).
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from dubbing_pipeline.demo import load_reference
from dubbing_pipeline.quality.metrics import diarization_error_rate
from dubbing_pipeline.speakers.diarize import EmbeddingDiarizer
from dubbing_pipeline.speakers.embedders import VoiceFilterEmbedder
from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono
from dubbing_pipeline.tooling import demo_build as build

SR = 16000
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
ALSA_DIR = Path("/usr/share/sounds/alsa")
BED_BELOW_SPEECH_DB = 16.0  # as the demo's bed


@dataclass(frozen=True)
class Clip:
    name: str
    audio: np.ndarray  # 16 kHz mono float32
    spans: list[tuple[float, float]]
    truth: list[str]  # speaker of each span

    @property
    def speakers(self) -> int:
        return len(set(self.truth))

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / SR


Piece = tuple[np.ndarray, str]


def sequence(name: str, pieces: Sequence[Piece], gap: float = 0.5) -> Clip:
    """The pieces one after another with ``gap`` seconds of silence between them."""
    out: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    truth: list[str] = []
    at = 0.0
    silence = np.zeros(round(gap * SR), dtype=np.float32)
    for audio, who in pieces:
        length = audio.shape[0] / SR
        spans.append((at, at + length))
        truth.append(who)
        out += [audio.astype(np.float32), silence]
        at += length + gap
    return Clip(name, np.concatenate(out), spans, truth)


def alternate(name: str, a: Sequence[Piece], b: Sequence[Piece], gap: float = 0.5) -> Clip:
    """A dialogue: the lines of ``a`` and ``b`` taken in turn."""
    turns = [p for pair in itertools.zip_longest(a, b) for p in pair if p is not None]
    return sequence(name, turns, gap)


def over_bed(name: str, clip: Clip) -> Clip:
    """``clip`` over the demo's music bed (sound-icons), 16 dB below the speech."""
    recordings = [
        build.prepare_clip(build.read_wav_mono16(build.SOUND_ICONS_DIR / n)) for n in build.BED_CLIPS
    ]
    bed = build.build_bed(recordings, clip.audio.shape[0])
    mask = np.zeros(clip.audio.shape[0], dtype=bool)
    for s, e in clip.spans:
        mask[round(s * SR) : round(e * SR)] = True
    speech = float(np.sqrt(np.mean(clip.audio[mask].astype(np.float64) ** 2)))
    bed = bed / float(np.sqrt(np.mean(bed**2))) * speech * 10 ** (-BED_BELOW_SPEECH_DB / 20)
    return Clip(name, (clip.audio + bed).astype(np.float32), clip.spans, clip.truth)


def _cut(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    return audio[round(start * SR) : round(end * SR)]


def build_set(pyannote_sample: Path, demo_vocals: np.ndarray | None = None) -> list[Clip]:
    """The labelled clips (``demo*`` only when the demo's 16 kHz vocals are given)."""
    readers = sorted(LIBRIVOX_DIR.glob("*.wav"))
    prompts_files = sorted(p for p in ALSA_DIR.glob("*.wav") if p.stem != "Noise")
    if len(readers) < 5 or len(prompts_files) < 8:
        raise FileNotFoundError(
            "the labelled speaker set needs Debian's pocketsphinx-testdata and alsa-utils (.ci/install)"
        )
    reader = [(read_wav_16k_mono(p), "reader") for p in readers]
    prompts = [(read_wav_16k_mono(p), "prompts") for p in prompts_files]
    call_audio = read_wav_16k_mono(pyannote_sample / "sample.wav")
    stm = [(span.start, span.end, span.speaker) for span in build.parse_stm(pyannote_sample / "sample.stm")]
    callers = sorted({w for *_, w in stm})
    lines = {who: [(_cut(call_audio, s, e), w) for s, e, w in stm if w == who] for who in callers}
    first, second = (lines[c] for c in callers)

    clips = [
        sequence("reader", reader),
        sequence("prompts", prompts, gap=0.3),
        *(sequence(f"call_{who}", lines[who]) for who in callers),
        Clip("call", call_audio, [(s, e) for s, e, _ in stm], [w for *_, w in stm]),
        alternate("reader_prompts", reader, prompts[:5]),
        alternate(f"reader_{callers[0]}", reader, first),
        alternate(f"reader_{callers[1]}", reader, second),
        alternate(f"prompts_{callers[0]}", prompts, first, gap=0.4),
    ]
    clips += [over_bed("reader_bed", clips[0]), over_bed("prompts_bed", clips[1])]
    if demo_vocals is not None:
        ref = load_reference()
        spans = [(float(s["start"]), float(s["end"])) for s in ref["segments"]]
        truth = [str(s["speaker"]) for s in ref["segments"]]
        clips.append(Clip("demo", demo_vocals, spans, truth))
        for who in sorted(set(truth)):
            mine = [(span, w) for span, w in zip(spans, truth, strict=True) if w == who]
            clips.append(Clip(f"demo_{who}", demo_vocals, [s for s, _ in mine], [w for _, w in mine]))
    return clips


@dataclass(frozen=True)
class ClipResult:
    name: str
    seconds: float
    spans: int
    truth: int
    found: int
    der: float
    labels: list[int]

    @property
    def right(self) -> bool:
        return self.found == self.truth


def evaluate(diarizer: Any, clips: Sequence[Clip]) -> list[ClipResult]:
    """Each clip diarized as one chunk, against its truth."""
    out = []
    for clip in clips:
        labels = list(diarizer.diarize(clip.audio, clip.spans, 0.0).labels)
        ref = [(s, e, t) for (s, e), t in zip(clip.spans, clip.truth, strict=True)]
        hyp = [(s, e, str(k)) for (s, e), k in zip(clip.spans, labels, strict=True)]
        der = float(diarization_error_rate(ref, hyp)["der"])
        out.append(
            ClipResult(
                clip.name,
                round(clip.seconds, 1),
                len(clip.spans),
                clip.speakers,
                len(set(labels)),
                der,
                labels,
            )
        )
    return out


class Summary(TypedDict):
    clips: int
    count_right: int
    count_accuracy: float
    mean_der: float
    wrong: dict[str, str]  # clip → "found for truth"


def summary(results: Sequence[ClipResult]) -> Summary:
    return {
        "clips": len(results),
        "count_right": sum(r.right for r in results),
        "count_accuracy": round(sum(r.right for r in results) / max(1, len(results)), 3),
        "mean_der": round(float(np.mean([r.der for r in results])), 3) if results else 0.0,
        "wrong": {r.name: f"{r.found} for {r.truth}" for r in results if not r.right},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyannote-sample", type=Path, required=True, help="folder with sample.wav/.stm")
    parser.add_argument("--demo-vocals", type=Path, help="16 kHz mono WAV of the demo's separated vocals")
    parser.add_argument("--split-score", type=float, help="EmbeddingDiarizer split_score")
    parser.add_argument("--split-per-window", type=float, help="EmbeddingDiarizer split_per_window")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    vocals = read_wav_16k_mono(args.demo_vocals) if args.demo_vocals else None
    options = {
        k: v
        for k, v in (("split_score", args.split_score), ("split_per_window", args.split_per_window))
        if v is not None
    }
    diarizer = EmbeddingDiarizer(VoiceFilterEmbedder(threads=2), **options)
    results = evaluate(diarizer, build_set(args.pyannote_sample, vocals))
    if args.json:
        print(json.dumps({"results": [r.__dict__ for r in results], "summary": summary(results)}, indent=1))
        return 0
    print(f"{'clip':18s} {'s':>6s} {'spans':>5s} {'truth':>5s} {'found':>5s} {'DER':>6s}")
    for r in results:
        print(f"{r.name:18s} {r.seconds:6.1f} {r.spans:5d} {r.truth:5d} {r.found:5d} {r.der:6.3f}")
    print(json.dumps(summary(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
