"""The production pyannote diarizer, end to end through pyannote.audio 3.x, with structural weights.

The model directory is built by :mod:`dubbing_pipeline.tooling.structural.pyannote`: the real
``speaker-diarization-3.1`` layout and architectures (PyanNet segmentation-3.0, WeSpeaker
ResNet34) with seeded random weights. Speaker *labels* are therefore meaningless; what is tested
is everything around them: loading offline from a local directory, rates and shapes, the turns'
geometry, the 256-dimensional centroids, the hand-off to the project's own linkage and Hungarian
matching, determinism, cache keys, and classified errors at start.

The directory is deliberately built under a name without "pyannote" in it: pyannote 3.x chooses
its embedding loader from the text of the path, and a "pyannote" anywhere in it hid that bug.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dubbing_pipeline.demo import DEMO_VIDEO, load_reference
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.asset import assign_speakers, plan_diarization
from dubbing_pipeline.speakers.base import ChunkDiarization
from dubbing_pipeline.speakers.diarize import make_diarizer
from dubbing_pipeline.speakers.pyannote_engine import PyannoteDiarizer, checkpoint_globals
from dubbing_pipeline.speakers.records import ChunkLabels
from dubbing_pipeline.speakers.turns import assign_turns
from dubbing_pipeline.speech_segments.records import SpeechSegmentsRecord
from dubbing_pipeline.speech_segments.vad import read_wav_16k_mono
from dubbing_pipeline.tooling.structural.pyannote import EMBEDDING, SEGMENTATION, build_pyannote_pipeline
from dubbing_pipeline.transcript.records import TranscriptRecord

pytestmark = pytest.mark.production_provider

DIM = 256  # WeSpeaker ResNet34
SPLIT = 8.0  # the demo as two chunks, [0, 8) and [8, 30): the first is shorter than one 10 s window


def settings(folder: Path | str, **overrides: Any) -> Settings:
    return Settings(diarizer="pyannote", pyannote_dir=str(folder), **overrides)


@pytest.fixture(scope="module")
def offline() -> Iterator[list[tuple[Any, ...]]]:
    """No network for the whole module: HF_HUB_OFFLINE, and every socket connect is refused and recorded."""
    attempts: list[tuple[Any, ...]] = []
    real_connect = socket.socket.connect

    def refuse(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"network access in an offline test: {address!r}")
        real_connect(self, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", refuse)
        yield attempts


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pyannote_pipeline(tmp_path_factory.mktemp("diarization-3.1"), seed=0)


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The packaged demo's soundtrack, 16 kHz mono (the ASR audio the speakers stage reads)."""
    wav = tmp_path_factory.mktemp("demo") / "demo16k.wav"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(DEMO_VIDEO), "-vn", "-ac", "1", "-ar", "16000",
         "-c:a", "pcm_s16le", str(wav)],
        check=True,
    )  # fmt: skip
    return read_wav_16k_mono(wav)


@pytest.fixture(scope="module")
def transcript() -> TranscriptRecord:
    """The demo's reference segments as the transcript asset's record."""
    ref = load_reference()
    segments = [
        {"id": f"seg{i:03d}", "start": s["start"], "end": s["end"], "text": s["text"]}
        for i, s in enumerate(ref["segments"])
    ]
    return TranscriptRecord.from_json(
        {"cache_key": "transcript", "language": "en", "language_probability": 1.0, "segments": segments,
         "words": 0, "provider": {}, "chunks": []}
    )  # fmt: skip


@pytest.fixture(scope="module")
def spans(transcript: TranscriptRecord) -> list[tuple[float, float]]:
    return [(s.start, s.end) for s in transcript.segments]


@pytest.fixture(scope="module")
def first_run(
    offline: list[Any], model_dir: Path, audio: np.ndarray, spans: list[tuple[float, float]]
) -> dict[str, Any]:
    """One diarizer over the whole demo: the pipeline's turns and centroids, then the assignment."""
    diarizer = PyannoteDiarizer(settings(model_dir))
    turns, centroids = diarizer.speaker_turns(audio, 0.0)
    result = assign_turns(spans, turns, centroids, diarizer.merge_threshold)
    return {"diarizer": diarizer, "turns": turns, "centroids": centroids, "result": result}


@pytest.fixture(scope="module")
def second_diarizer(offline: list[Any], model_dir: Path) -> PyannoteDiarizer:
    """A second instance: loads the pipeline again (not the cached one of make_diarizer)."""
    return PyannoteDiarizer(settings(model_dir))


# --------------------------------------------------------------------------- the pipeline's output


def test_turns_lie_in_the_audio_sorted_with_speakers(first_run: dict[str, Any], audio: np.ndarray) -> None:
    turns, centroids = first_run["turns"], first_run["centroids"]
    duration = audio.shape[0] / 16000
    assert turns, "the pipeline found no speech in the demo"
    starts = [start for start, _, _ in turns]
    assert starts == sorted(starts)
    for start, end, who in turns:
        assert 0.0 <= start <= end <= duration + 1e-6
        assert isinstance(who, int) and 0 <= who < centroids.shape[0]
    assert {who for _, _, who in turns} <= set(range(centroids.shape[0]))


def test_centroids_are_256_dimensional(first_run: dict[str, Any]) -> None:
    centroids = first_run["centroids"]
    assert centroids.ndim == 2 and centroids.shape[1] == DIM
    assert np.all(np.isfinite(centroids))
    assert np.linalg.norm(centroids, axis=1).max() > 0


def test_every_span_gets_a_speaker_and_a_unit_embedding(
    first_run: dict[str, Any], spans: list[tuple[float, float]]
) -> None:
    result: ChunkDiarization = first_run["result"]
    assert len(result.labels) == len(spans)
    k = result.num_speakers
    assert k >= 1 and sorted(set(result.labels)) == list(range(k))
    assert result.labels[0] == 0  # numbered by first appearance
    assert result.embeddings.shape == (k, DIM)
    norms = np.linalg.norm(result.embeddings, axis=1)
    assert np.allclose(norms[norms > 0], 1.0)


def test_two_loads_give_the_same_result(
    first_run: dict[str, Any],
    second_diarizer: PyannoteDiarizer,
    audio: np.ndarray,
    spans: list[tuple[float, float]],
) -> None:
    again = second_diarizer.diarize(audio, spans, offset=0.0)
    assert again.labels == first_run["result"].labels
    np.testing.assert_array_equal(again.embeddings, first_run["result"].embeddings)


def test_chunks_feed_linkage_and_hungarian_matching_like_the_stage(
    second_diarizer: PyannoteDiarizer, audio: np.ndarray, transcript: TranscriptRecord
) -> None:
    """Two chunks through plan_diarization's jobs, the diarize_chunk record, then assign_speakers."""
    end = audio.shape[0] / 16000
    bounds = [(0.0, SPLIT), (SPLIT, end)]
    speech = SpeechSegmentsRecord.from_json(
        {"cache_key": "speech", "duration": end, "asr_audio_uri": "demo16k.wav", "asr_rate": 16000,
         "speech": [], "speech_seconds": 0.0, "scene_changes": [],
         "chunks": [{"index": i, "start": a, "end": b, "core_start": a, "core_end": b}
                    for i, (a, b) in enumerate(bounds)]}
    )  # fmt: skip
    jobs = [out.value for out in plan_diarization(speech, transcript)]
    assert [job.chunk.index for job in jobs] == [0, 1]
    records = []
    for job in jobs:
        chunk = job.chunk
        piece = audio[round(chunk.start * 16000) : round(chunk.end * 16000)]
        job_spans = [(s, e) for _, s, e in job.spans]
        turns, centroids = second_diarizer.speaker_turns(piece, chunk.start)  # what diarize() runs
        assert all(chunk.start <= s <= e <= chunk.end + 1e-6 for s, e, _ in turns)  # offset applied
        result = assign_turns(job_spans, turns, centroids, second_diarizer.merge_threshold)
        assert result.embeddings.shape == (result.num_speakers, DIM)
        records.append(
            ChunkLabels(
                index=chunk.index,
                segment_ids=[sid for sid, _, _ in job.spans],
                labels=[int(x) for x in result.labels],
                embeddings=[[round(float(v), 6) for v in row] for row in result.embeddings],
            )
        )
    speakers, segments, embeddings = assign_speakers(transcript, records, Settings().speaker_match_sim)
    assert [s.id for s in segments] == [s.id for s in transcript.segments]
    assert [s.id for s in speakers] == [f"S{i + 1}" for i in range(len(speakers))]
    assert segments[0].speaker == "S1"
    assert {s.speaker for s in segments} == {s.id for s in speakers}
    assert sum(s.segments for s in speakers) == len(segments)
    assert 1 <= len(speakers) <= sum(max(r.labels) + 1 for r in records)
    assert np.asarray(embeddings).shape == (len(speakers), DIM)


def test_nothing_touched_the_network(
    offline: list[Any], first_run: dict[str, Any], second_diarizer: PyannoteDiarizer
) -> None:
    assert first_run["diarizer"]._pipeline is not None and second_diarizer._pipeline is not None
    assert offline == []


# --------------------------------------------------------------------------- cache key and the builder


def test_describe_names_the_weights_by_content(model_dir: Path, tmp_path: Path) -> None:
    """Same seed: same key; another seed (same architecture, same file sizes): another key."""
    described = PyannoteDiarizer(settings(model_dir)).describe()
    assert described["models"]["segmentation"]["file"] == "pytorch_model.bin"
    assert described["versions"]["pyannote.audio"].startswith("3.")
    same = PyannoteDiarizer(settings(build_pyannote_pipeline(tmp_path / "same", seed=0))).describe()
    other_dir = build_pyannote_pipeline(tmp_path / "other", seed=1)
    other = PyannoteDiarizer(settings(other_dir)).describe()
    assert same == described
    assert (other_dir / EMBEDDING).stat().st_size == (model_dir / EMBEDDING).stat().st_size
    assert other["models"] != described["models"]


def test_checkpoints_load_with_the_real_architectures(model_dir: Path) -> None:
    from pyannote.audio import Model  # type: ignore[import-untyped]

    with checkpoint_globals():
        segmentation = Model.from_pretrained(str(model_dir / SEGMENTATION))
        embedding = Model.from_pretrained(str(model_dir / EMBEDDING))
    assert type(segmentation).__name__ == "PyanNet" and type(embedding).__name__ == "WeSpeakerResNet34"
    specs = segmentation.specifications
    assert specs.powerset and specs.num_powerset_classes == 7 and specs.duration == 10.0
    assert sum(p.numel() for p in segmentation.parameters()) == 1_473_265  # segmentation-3.0
    assert embedding.dimension == DIM


def test_a_model_directory_entry_resolves_to_its_checkpoint(model_dir: Path, tmp_path: Path) -> None:
    """The hub snapshot layout: ``segmentation: segmentation-3.0`` names a directory."""
    (tmp_path / "segmentation-3.0").symlink_to(model_dir / SEGMENTATION.split("/")[0])
    (tmp_path / "wespeaker-voxceleb-resnet34-LM").symlink_to(model_dir / EMBEDDING.split("/")[0])
    text = (model_dir / "config.yaml").read_text().replace("/pytorch_model.bin", "")
    (tmp_path / "config.yaml").write_text(text)
    described = PyannoteDiarizer(settings(tmp_path)).describe()
    assert described["models"] == PyannoteDiarizer(settings(model_dir)).describe()["models"]


# --------------------------------------------------------------------------- classified errors at start


def _copy(model_dir: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(model_dir, dest))


def test_missing_directory_or_config(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="DUBBING_PYANNOTE_DIR"):
        make_diarizer(settings(tmp_path / "absent"))
    with pytest.raises(ModelMissingError, match=r"config\.yaml not found"):
        PyannoteDiarizer(settings(tmp_path))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("pipeline: [unclosed\n", "not readable YAML"),
        ("- just\n- a list\n", "pipeline.name"),
        ("pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n  params:\n"
         "    segmentation: segmentation-3.0/pytorch_model.bin\n", "embedding must name a local checkpoint"),
        ("pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n  params:\n"
         "    segmentation: pyannote/segmentation-3.0\n"
         "    embedding: wespeaker-voxceleb-resnet34-LM/pytorch_model.bin\n", "not a local checkpoint"),
    ],
    ids=["bad-yaml", "not-a-mapping", "no-embedding", "hub-id"],
)  # fmt: skip
def test_corrupt_config_is_refused_at_start(
    model_dir: Path, tmp_path: Path, config: str, message: str
) -> None:
    folder = _copy(model_dir, tmp_path / "m")
    (folder / "config.yaml").write_text(config)
    with pytest.raises(ModelMissingError, match=message):
        PyannoteDiarizer(settings(folder))


def test_truncated_checkpoint_is_refused_at_start(model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(model_dir, tmp_path / "m")
    data = (folder / EMBEDDING).read_bytes()
    (folder / EMBEDDING).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelMissingError, match="truncated or corrupt"):
        PyannoteDiarizer(settings(folder))


@pytest.mark.parametrize("device", ["gpu", "mps"])
def test_unusable_device_is_refused_at_start(model_dir: Path, device: str) -> None:
    with pytest.raises(ConfigurationError, match="DUBBING_DEVICE"):
        PyannoteDiarizer(settings(model_dir, device=device))
