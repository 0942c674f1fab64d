"""faster-whisper with the packaged Whisper base model on a real phone call."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speech_segments.sentences import Word
from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono
from dubbing_pipeline.transcript import model_dir
from dubbing_pipeline.transcript.model_dir import MARKER, packaged_whisper_base_dir
from dubbing_pipeline.transcript.providers import make_asr
from dubbing_pipeline.transcript.recognizer import LanguageGuess
from dubbing_pipeline.transcript.whisper import FasterWhisperASR

WER_CEILING = 0.25  # measured 0.136 (int8, beam 5, 2 threads)


def _wer(reference: str, hypothesis: str) -> float:
    try:
        from dubbing_pipeline.quality.metrics import word_error_rate
    except ImportError:  # pragma: no cover - fallback while the metrics module is absent
        import re

        def norm(t: str) -> list[str]:
            return re.sub(r"[^\w' ]+", " ", t.lower()).split()

        ref, hyp = norm(reference), norm(hypothesis)
        row = list(range(len(hyp) + 1))
        for i, r in enumerate(ref, 1):
            prev, row[0] = row[:], i
            for j, h in enumerate(hyp, 1):
                row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
        return row[-1] / max(1, len(ref))
    return word_error_rate(reference, hypothesis)


@pytest.fixture(scope="module")
def sample(pyannote_sample: Path) -> Path:
    return pyannote_sample


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def asr(cache_dir: Path) -> FasterWhisperASR:
    return FasterWhisperASR(Settings(model_cache=str(cache_dir), cpu_threads=2))


@pytest.fixture(scope="module")
def audio(sample: Path) -> np.ndarray:
    return read_wav_16k_mono(sample / "sample.wav")


@pytest.fixture(scope="module")
def words(asr: FasterWhisperASR, audio: np.ndarray) -> list[Word]:
    return asr.transcribe(audio, language="en")


def _reference_text(sample: Path) -> str:
    return " ".join(line.split(None, 5)[5] for line in (sample / "sample.stm").read_text().splitlines())


def test_packaged_model_is_assembled_once_and_reused(asr: FasterWhisperASR, cache_dir: Path) -> None:
    folder = asr.model_dir
    assert folder.parent == cache_dir and folder.name.startswith("whisper-base-")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt", MARKER]
    )
    marker = json.loads((folder / MARKER).read_text())
    assert set(marker["files"]) == {"config.json", "model.bin", "tokenizer.json", "vocabulary.txt"}
    mtime = (folder / "model.bin").stat().st_mtime_ns
    model_dir._verified.clear()  # force the on-disk sha256 check a fresh process would do
    assert packaged_whisper_base_dir(cache_dir) == folder
    assert (folder / "model.bin").stat().st_mtime_ns == mtime, "reused directory was rewritten"
    assert [p.name for p in cache_dir.iterdir()] == [folder.name], "temporary directories left behind"
    assert asr.describe()["model"] == folder.name


def test_corrupt_assembly_is_rebuilt(tmp_path: Path) -> None:
    folder = packaged_whisper_base_dir(tmp_path)
    good = json.loads((folder / MARKER).read_text())["files"]["model.bin"]
    with open(folder / "model.bin", "r+b") as handle:
        handle.truncate(1000)
    model_dir._verified.clear()
    again = packaged_whisper_base_dir(tmp_path)
    assert again == folder
    assert sha256_file(again / "model.bin") == good


def test_missing_packages_are_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(model_dir, "_PART_PACKAGES", (("no-such-whisper-part", "no_such_whisper_part"),))
    with pytest.raises(ModelMissingError, match="no-such-whisper-part"):
        packaged_whisper_base_dir(tmp_path)
    with pytest.raises(ModelMissingError, match="DUBBING_WHISPER_MODEL_DIR"):
        FasterWhisperASR(Settings(whisper_model_dir=str(tmp_path / "absent")))


def test_factory_shares_one_instance(cache_dir: Path) -> None:
    settings = Settings(model_cache=str(cache_dir))
    assert make_asr(settings) is make_asr(settings)
    with pytest.raises(ConfigurationError):
        make_asr(Settings(asr="no-such-asr", model_cache=str(cache_dir)))


def test_detects_english(asr: FasterWhisperASR, audio: np.ndarray) -> None:
    guess = asr.detect_language(audio)
    assert isinstance(guess, LanguageGuess)
    assert guess.language == "en" and guess.probability > 0.8, guess


def test_transcribes_the_call(asr: FasterWhisperASR, sample: Path, words: list[Word]) -> None:
    assert words and all(isinstance(w, Word) for w in words)
    hypothesis = "".join(w.text for w in words)
    wer = _wer(_reference_text(sample), hypothesis)
    assert wer < WER_CEILING, (wer, hypothesis)
    assert asr.load_seconds is not None


def test_word_timestamps_are_monotonic(words: list[Word]) -> None:
    for previous, word in itertools.pairwise(words):
        assert word.start >= previous.start
    assert all(w.end >= w.start for w in words)
    assert all(0.0 <= w.start <= 30.0 and w.end <= 30.0 for w in words)
    assert all(0.0 <= w.probability <= 1.0 for w in words)
    assert abs(words[0].start - 6.69) < 0.5, words[0]  # "Hello?" (reference 6.68)


def test_transcription_is_deterministic(asr: FasterWhisperASR, audio: np.ndarray, words: list[Word]) -> None:
    assert asr.transcribe(audio, language="en") == words


def test_offset_and_regions(asr: FasterWhisperASR, audio: np.ndarray) -> None:
    # Sheila's turn (reference 14.44-17.77) cut out as if it were a chunk starting at 14 s
    piece = audio[14 * 16000 : 18 * 16000]
    words = asr.transcribe(piece, language="en", offset=14.0, regions=[(14.3, 17.9)])
    text = "".join(w.text for w in words).lower()
    assert "sheila" in text and "chicago" in text, text
    assert all(14.3 <= w.start <= w.end <= 17.9 for w in words), words
    # regions outside the audio: nothing to decode
    assert asr.transcribe(piece, language="en", offset=14.0, regions=[(2.0, 5.0)]) == []
