"""Whisper from a model directory (``DUBBING_WHISPER_MODEL_DIR``), the large-v3 code path.

Production mounts a CTranslate2 Whisper directory (large-v3) on a volume; here the packaged
base model is copied into a directory of its own and used through exactly that path: the
directory check, its fingerprint as the model name, compute-type selection, the mel-bin check
and the same decode as the default path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dubbing_pipeline.errors import ConfigurationError, ModelMissingError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono
from dubbing_pipeline.transcript.model_dir import packaged_whisper_base_dir
from dubbing_pipeline.transcript.providers import clear_asr_cache, make_asr
from dubbing_pipeline.transcript.whisper import FasterWhisperASR, resolve_compute_type

pytestmark = pytest.mark.production_provider

MODEL_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mounted-volume-like directory: the four files a CTranslate2 conversion writes."""
    packaged = packaged_whisper_base_dir(tmp_path_factory.mktemp("cache"))
    folder = tmp_path_factory.mktemp("volume") / "whisper-base-ct2"
    folder.mkdir()
    for name in MODEL_FILES:
        shutil.copyfile(packaged / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def audio(pyannote_sample: Path) -> np.ndarray:
    return read_wav_16k_mono(pyannote_sample / "sample.wav")[: 16000 * 12]


def test_a_model_directory_decodes_like_the_packaged_model(
    model_dir: Path, audio: np.ndarray, tmp_path: Path
) -> None:
    clear_asr_cache()
    mounted = make_asr(Settings(whisper_model_dir=str(model_dir), cpu_threads=2))
    packaged = make_asr(Settings(model_cache=str(tmp_path), cpu_threads=2))
    assert isinstance(mounted, FasterWhisperASR) and mounted is not packaged
    info = mounted.describe()
    # the model name carries the directory's content fingerprint (a new volume = a new cache key)
    assert info["model"].startswith("whisper-base-ct2-") and len(info["model"]) > len("whisper-base-ct2-")
    assert (info["compute_type"], info["device"]) == ("int8", "cpu")
    words = mounted.transcribe(audio, language="en")
    assert words and [(w.text, w.start, w.end) for w in words] == [
        (w.text, w.start, w.end) for w in packaged.transcribe(audio, language="en")
    ]
    assert all(0.0 <= w.start <= w.end <= len(audio) / 16000 + 0.5 for w in words)
    assert mounted.load_seconds is not None
    assert mounted.detect_language(audio).language == "en"
    clear_asr_cache()


@pytest.fixture(scope="module")
def large_v3_shape(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dubbing_pipeline.tooling.structural.whisper import build_whisper_large_v3_shape

    return build_whisper_large_v3_shape(
        tmp_path_factory.mktemp("v3") / "large-v3-shape", model_dir / "tokenizer.json"
    )


def test_a_128_mel_large_v3_shaped_directory_decodes_through_the_production_path(
    large_v3_shape: Path, audio: np.ndarray
) -> None:
    assert sorted(p.name for p in large_v3_shape.iterdir()) == [
        "config.json", "model.bin", "preprocessor_config.json", "tokenizer.json", "vocabulary.json",
    ]  # fmt: skip
    asr = FasterWhisperASR(
        Settings(whisper_model_dir=str(large_v3_shape), cpu_threads=2, whisper_beam_size=2)
    )
    words = asr.transcribe(audio, language="en")
    whisper = asr._model()
    assert int(whisper.model.n_mels) == 128 == whisper.feature_extractor.mel_filters.shape[0]
    assert whisper.model.is_multilingual
    assert all(0.0 <= w.start <= w.end <= len(audio) / 16000 + 0.5 for w in words)
    assert words == asr.transcribe(audio, language="en")  # random weights decode deterministically too


def test_large_v3_without_its_preprocessor_config_is_a_clear_error(
    large_v3_shape: Path, audio: np.ndarray, tmp_path: Path
) -> None:
    """The real conversion mistake: no preprocessor_config.json, so an 80-bin extractor."""
    folder = tmp_path / "no-preprocessor"
    shutil.copytree(large_v3_shape, folder)
    (folder / "preprocessor_config.json").unlink()
    asr = FasterWhisperASR(Settings(whisper_model_dir=str(folder), cpu_threads=2))
    with pytest.raises(ModelMissingError, match=r"expects 128 mel bins.*configures 80.*preprocessor_config"):
        asr.transcribe(audio, language="en")


def test_auto_picks_int8_on_a_cpu() -> None:
    assert resolve_compute_type("cpu", "auto") == resolve_compute_type("cpu", "") == "int8"
    assert resolve_compute_type("cpu", "float32") == "float32"
    assert Settings().whisper_compute_type == "auto"


@pytest.mark.parametrize("compute", ["float16", "int8_float16", "bfloat16"])
def test_a_gpu_compute_type_on_a_cpu_is_a_configuration_error_at_start(model_dir: Path, compute: str) -> None:
    """CTranslate2 would refuse only at the first load, inside a run; we refuse at start."""
    with pytest.raises(ConfigurationError, match=rf"{compute} is not supported on cpu.*int8"):
        FasterWhisperASR(Settings(whisper_model_dir=str(model_dir), whisper_compute_type=compute))


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "tpu", "cuda:x"])
def test_a_device_this_machine_lacks_is_a_configuration_error_at_start(model_dir: Path, device: str) -> None:
    with pytest.raises(ConfigurationError, match="DUBBING_DEVICE"):
        FasterWhisperASR(Settings(whisper_model_dir=str(model_dir), device=device))


def test_a_directory_whose_mel_bins_do_not_match_is_a_clear_error(
    model_dir: Path, audio: np.ndarray, tmp_path: Path
) -> None:
    """A large-v3 (128 bins) converted without preprocessor_config.json gets an 80-bin extractor.

    The reverse mismatch is built here with the real model: an 80-bin model whose directory
    says 128. faster-whisper reads the file, CTranslate2 reports the model's own bins.
    """
    folder = tmp_path / "mismatched"
    shutil.copytree(model_dir, folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"feature_size": 128}))
    asr = FasterWhisperASR(Settings(whisper_model_dir=str(folder), cpu_threads=2))
    for _ in range(2):  # the failed load is not kept: a second use fails the same way
        with pytest.raises(ModelMissingError, match=r"expects 80 mel bins.*configures 128"):
            asr.transcribe(audio, language="en")


def test_a_directory_that_does_not_load_is_model_missing_not_a_provider_failure(
    audio: np.ndarray, tmp_path: Path
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"not a model")
    (folder / "config.json").write_text("{}")
    asr = FasterWhisperASR(Settings(whisper_model_dir=str(folder)))
    with pytest.raises(ModelMissingError, match="could not load"):
        asr.transcribe(audio, language="en")
