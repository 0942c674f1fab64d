"""Measure the TTS engines: round-trip CER through Whisper and real-time factor.

    python -m dubbing_pipeline.tooling.tts_measure [--languages en,es] [--engines espeak,kokoro]
                                              [--voices male,female] [--json out.json]
    python -m dubbing_pipeline.tooling.tts_measure --calibrate kokoro_durations.json

``--calibrate`` fits Kokoro's duration model instead (``KokoroEngine.predict_seconds``): per
language and voice, seconds at rate 1.0 ≈ a + b·tokens + c·pauses over the same sentences,
by least squares; the table shipped in ``dubbed_speech/kokoro_durations.json`` comes from it.

Each engine speaks the 15 sentences of every language it supports (the demo dialogue,
translated by hand, plus two lines); the packaged Whisper base (or
``DUBBING_WHISPER_MODEL_DIR``) transcribes each clip with the language forced, and the
character error rate is taken over all sentences together (edits / reference characters,
normalised text without spaces). RTF is synthesis seconds over audio seconds, after one
warm-up sentence. The numbers in ``speech.tts``'s docstring come from this script.
Not a test: it takes minutes (Kokoro is slow on two cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import soxr

from dubbing_pipeline.dubbed_speech.engine import TTSEngine
from dubbing_pipeline.dubbed_speech.engines.kokoro import KokoroEngine
from dubbing_pipeline.dubbed_speech.tts import ENGINE_NAMES, make_tts_engine
from dubbing_pipeline.errors import DubbingError
from dubbing_pipeline.quality.metrics import edit_distance, normalize_text
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.transcript.providers import make_asr

SENTENCES: dict[str, list[str]] = {
    "en": [
        "Hello? Oh, hello.",
        "I didn't know you were there.",
        "Neither did I.",
        "Okay, then I thought, you know, I heard a beep.",
        "This is Diane in New Jersey.",
        "And I'm Sheila in Texas, originally from Chicago.",
        "Oh, I'm originally from Chicago also.",
        "I'm in New Jersey now, though.",
        "Well, there isn't that much difference.",
        "At least, you know, they all call me a Yankee down here.",
        "So what can I say?",
        "Oh, I don't hear that in New Jersey now.",
        "The weather has been very cold this week.",
        "We should meet for coffee when you come back to town.",
        "My brother still lives near the lake with his family.",
    ],
    "es": [
        "¿Hola? Ah, hola.",
        "No sabía que estabas ahí.",
        "Yo tampoco.",
        "Bueno, entonces pensé, ya sabes, que oí un pitido.",
        "Soy Diane, de Nueva Jersey.",
        "Y yo soy Sheila, de Texas, aunque nací en Chicago.",
        "Ah, yo también soy de Chicago.",
        "Aunque ahora vivo en Nueva Jersey.",
        "Bueno, no hay tanta diferencia.",
        "Por lo menos aquí abajo todos me llaman yanqui.",
        "¿Y qué le voy a hacer?",
        "Pues eso en Nueva Jersey ya no lo oigo.",
        "Esta semana ha hecho mucho frío.",
        "Deberíamos tomar un café cuando vuelvas a la ciudad.",
        "Mi hermano todavía vive cerca del lago con su familia.",
    ],
    "fr": [
        "Allô ? Ah, bonjour.",
        "Je ne savais pas que tu étais là.",
        "Moi non plus.",
        "Bon, alors j'ai cru, tu sais, entendre un bip.",
        "Ici Diane, du New Jersey.",
        "Et moi, c'est Sheila, au Texas, mais je viens de Chicago.",
        "Oh, moi aussi je viens de Chicago.",
        "Mais maintenant je suis dans le New Jersey.",
        "Eh bien, il n'y a pas tant de différence.",
        "Au moins, ici tout le monde m'appelle la Yankee.",
        "Alors, que veux-tu que je dise ?",
        "Oh, ça, je ne l'entends pas dans le New Jersey.",
        "Il a fait très froid cette semaine.",
        "On devrait prendre un café quand tu reviens en ville.",
        "Mon frère habite toujours près du lac avec sa famille.",
    ],
    "de": [
        "Hallo? Oh, hallo.",
        "Ich wusste nicht, dass du da bist.",
        "Ich auch nicht.",
        "Also, ich dachte, weißt du, ich hätte einen Piepton gehört.",
        "Hier ist Diane aus New Jersey.",
        "Und ich bin Sheila aus Texas, ursprünglich aus Chicago.",
        "Oh, ich komme auch aus Chicago.",
        "Aber jetzt wohne ich in New Jersey.",
        "Na ja, so groß ist der Unterschied nicht.",
        "Hier unten nennen mich jedenfalls alle eine Yankee.",
        "Was soll ich dazu sagen?",
        "Oh, das höre ich in New Jersey nicht.",
        "Diese Woche war es sehr kalt.",
        "Wir sollten einen Kaffee trinken, wenn du wieder in der Stadt bist.",
        "Mein Bruder wohnt immer noch mit seiner Familie am See.",
    ],
    "it": [
        "Pronto? Ah, ciao.",
        "Non sapevo che fossi lì.",
        "Nemmeno io.",
        "Allora ho pensato, sai, di aver sentito un bip.",
        "Sono Diane, del New Jersey.",
        "E io sono Sheila, dal Texas, ma vengo da Chicago.",
        "Oh, anch'io vengo da Chicago.",
        "Però adesso abito nel New Jersey.",
        "Beh, non c'è poi tanta differenza.",
        "Almeno qui tutti mi chiamano yankee.",
        "Che cosa posso dire?",
        "Oh, questo nel New Jersey non lo sento.",
        "Questa settimana ha fatto molto freddo.",
        "Dovremmo prendere un caffè quando torni in città.",
        "Mio fratello abita ancora vicino al lago con la sua famiglia.",
    ],
    "pt": [
        "Alô? Ah, olá.",
        "Eu não sabia que você estava aí.",
        "Nem eu.",
        "Bom, então eu pensei, sabe, que ouvi um bipe.",
        "Aqui é a Diane, de Nova Jersey.",
        "E eu sou a Sheila, do Texas, mas nasci em Chicago.",
        "Ah, eu também sou de Chicago.",
        "Mas agora moro em Nova Jersey.",
        "Bem, não tem tanta diferença assim.",
        "Pelo menos aqui todo mundo me chama de ianque.",
        "O que eu posso dizer?",
        "Ah, isso eu não ouço em Nova Jersey.",
        "Esta semana fez muito frio.",
        "A gente devia tomar um café quando você voltar para a cidade.",
        "Meu irmão ainda mora perto do lago com a família.",
    ],
}
PAD_SECONDS = 0.3


class Row(TypedDict):
    """One engine, language and voice measured."""

    engine: str
    language: str
    voice: str
    cer: float
    rtf: float
    audio_seconds: float
    hypotheses: list[str]


class Fit(TypedDict):
    """Kokoro's duration model for one language and voice: ``[a, b, c]`` and its relative errors."""

    coefficients: list[float]
    mean_abs_error: float
    max_abs_error: float


def to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """Resample to 16 kHz mono float32 with ``PAD_SECONDS`` of silence on each side."""
    out = np.asarray(soxr.resample(np.asarray(audio, dtype=np.float32), sr, 16000), dtype=np.float32)
    pad = np.zeros(int(PAD_SECONDS * 16000), dtype=np.float32)
    return np.concatenate([pad, out, pad])


def round_trip(asr: Any, audio: np.ndarray, sr: int, language: str) -> str:
    """Whisper's transcript of ``audio`` with ``language`` forced."""
    clip = to_16k(audio, sr)
    words = asr.transcribe(clip, language=language, regions=[(0.0, clip.size / 16000)])
    return "".join(w.text for w in words).strip()


def corpus_cer(refs: Sequence[str], hyps: Sequence[str], language: str) -> float:
    """Character edits over reference characters, all sentences together (no spaces)."""
    edits = total = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r = normalize_text(ref, language).replace(" ", "")
        h = normalize_text(hyp, language).replace(" ", "")
        edits += edit_distance(list(r), list(h))
        total += len(r)
    return edits / max(1, total)


def measure(engine: TTSEngine, asr: Any, language: str, voice: str, sentences: Sequence[str]) -> Row:
    engine.synthesize(sentences[0], language, voice=voice)  # warm-up (model load)
    hyps: list[str] = []
    synth = audio_seconds = 0.0
    for text in sentences:
        started = time.perf_counter()
        audio = engine.synthesize(text, language, voice=voice)
        synth += time.perf_counter() - started
        audio_seconds += audio.size / engine.sample_rate
        hyps.append(round_trip(asr, audio, engine.sample_rate, language))
    return {
        "engine": engine.name,
        "language": language,
        "voice": voice,
        "cer": round(corpus_cer(sentences, hyps, language), 4),
        "rtf": round(synth / max(audio_seconds, 1e-9), 4),
        "audio_seconds": round(audio_seconds, 2),
        "hypotheses": hyps,
    }


def calibrate(engine: KokoroEngine, language: str, voice: str, sentences: Sequence[str]) -> Fit:
    """Least-squares ``[a, b, c]`` of seconds ≈ a + b·tokens + c·pauses at rate 1.0, and its errors."""
    rows, seconds = [], []
    for text in sentences:
        tokens, pauses = engine.duration_features(text, language)
        rows.append([1.0, float(tokens), float(pauses)])
        seconds.append(engine.synthesize(text, language, voice=voice).size / engine.sample_rate)
    design, target = np.asarray(rows), np.asarray(seconds)
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    errors = (design @ coef - target) / target
    return {
        "coefficients": [round(float(c), 5) for c in coef],
        "mean_abs_error": round(float(np.mean(np.abs(errors))), 4),
        "max_abs_error": round(float(np.max(np.abs(errors))), 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--languages", default=",".join(SENTENCES))
    parser.add_argument("--engines", default="espeak,piper,kokoro")
    parser.add_argument("--voices", default="male,female")
    parser.add_argument("--json", default="", help="also write the results (with transcripts) here")
    parser.add_argument("--calibrate", default="", help="fit Kokoro's duration model; write it here")
    args = parser.parse_args(argv)
    if args.calibrate:
        return write_calibration(args.calibrate, [v for v in args.voices.split(",") if v])
    settings = Settings.from_env()
    asr = make_asr(settings)
    rows: list[Row] = []
    for name in [e for e in args.engines.split(",") if e]:
        if name not in ENGINE_NAMES:
            parser.error(f"unknown engine {name!r}")
        try:
            engine = make_tts_engine(name, settings)
        except DubbingError as exc:
            print(f"{name}: not available ({exc.one_line()})", file=sys.stderr)
            continue
        for language in [lang for lang in args.languages.split(",") if lang]:
            if not engine.supports(language):
                continue
            for voice in [v for v in args.voices.split(",") if v]:
                row = measure(engine, asr, language, voice, SENTENCES[language])
                rows.append(row)
                print(
                    f"{row['language']:<3} {row['engine']:<8} {row['voice']:<7} "
                    f"CER {row['cer']:.3f}  RTF {row['rtf']:.3f}  ({row['audio_seconds']:.1f} s)",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, ensure_ascii=False, indent=1)
    return 0


def write_calibration(path: str, voices: Sequence[str]) -> int:
    """``--calibrate``: Kokoro's duration model for every language it speaks, per packaged voice."""
    engine = KokoroEngine(Settings.from_env())
    table: dict[str, dict[str, Fit]] = {}
    for language in sorted(engine.languages & set(SENTENCES)):
        for voice in voices:
            style = engine.voice_name(language, voice)
            fit = calibrate(engine, language, voice, SENTENCES[language])
            table.setdefault(style, {})[language] = fit
            print(f"{language} {style:<14} {fit}", flush=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(table, handle, indent=1, sort_keys=True)
        handle.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
