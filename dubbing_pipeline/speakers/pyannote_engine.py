"""``PyannoteDiarizer`` (production, GPU): a local pyannote.audio 3.1 ``speaker-diarization`` pipeline.

The engine imports torch and pyannote.audio at its top: ``diarize.make_diarizer`` imports this
module only when ``DUBBING_DIARIZER=pyannote``. The pipeline runs on the chunk; spans are mapped to
its speakers by overlap and get the pipeline's own centroid embeddings, then the same
complete-linkage merge as the embedding diarizer (``turns.assign_turns``).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pyannote.audio import Pipeline  # type: ignore[import-untyped,unused-ignore]
from pyannote.audio.core.task import Problem, Resolution, Specifications  # type: ignore[import-untyped,unused-ignore]
from torch.torch_version import TorchVersion

from dubbing_pipeline.common.offline import keep_hub_offline
from dubbing_pipeline.errors import ModelMissingError, ProviderError, require_torch_device
from dubbing_pipeline.freshness import package_version
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.base import DIARIZER_CODE, SAMPLE_RATE, ChunkDiarization, Diarizer
from dubbing_pipeline.speakers.pyannote_config import PyannoteConfig, loadable_config
from dubbing_pipeline.speakers.turns import Turn, assign_turns


def checkpoint_globals() -> AbstractContextManager[Any]:
    """Allow the classes pyannote pickles into its checkpoints, and nothing else, while loading.

    Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``; pyannote.audio 3.x loads its
    checkpoints through Lightning without saying otherwise, and every pyannote checkpoint (the hub's
    and ours) holds its task ``Specifications`` (with the ``Problem`` / ``Resolution`` enums) and the
    ``TorchVersion`` it was saved with, so loading failed with "Weights only load failed". Listing
    exactly these keeps the safe unpickler instead of turning it off (``weights_only=False``).
    """
    return torch.serialization.safe_globals([Specifications, Problem, Resolution, TorchVersion])


class PyannoteDiarizer(Diarizer):
    """A local pyannote.audio 3.1 ``SpeakerDiarization`` pipeline (``DUBBING_PYANNOTE_DIR``,
    checked by :class:`PyannoteConfig`), loaded at the first chunk."""

    name = "pyannote"

    def __init__(self, settings: Settings) -> None:
        self.setup = PyannoteConfig.load(settings)
        self.merge_threshold = float(settings.speaker_merge_sim)
        self.cpu_threads = max(1, int(settings.cpu_threads))
        self.device = require_torch_device(torch, settings.device)
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                self._pipeline = self._loaded_pipeline()
            return self._pipeline

    def _loaded_pipeline(self) -> Any:
        keep_hub_offline()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.yaml"
            path.write_text(yaml.safe_dump(loadable_config(self.setup.config)), encoding="utf-8")
            try:
                with checkpoint_globals():
                    pipeline = Pipeline.from_pretrained(str(path))
            except Exception as exc:
                raise ModelMissingError(f"pyannote diarization: cannot load the pipeline: {exc}") from exc
        if pipeline is None:
            raise ModelMissingError("pyannote diarization: the pipeline could not be loaded")
        if self.device.type == "cpu":
            torch.set_num_threads(self.cpu_threads)
        pipeline.to(self.device)
        return pipeline

    def describe(self) -> JsonObject:
        return {
            "provider": self.name,
            "pipeline": self.setup.pipeline_name,
            "models": self.setup.models,
            "params": self.setup.params,
            "merge_threshold": self.merge_threshold,
            "versions": {
                "pyannote.audio": package_version("pyannote.audio") or "absent",
                "torch": package_version("torch") or "absent",
            },
            "code": DIARIZER_CODE,
        }

    def diarize(
        self, audio16k: np.ndarray, spans: Sequence[tuple[float, float]], offset: float
    ) -> ChunkDiarization:
        if not spans:
            return ChunkDiarization([], np.zeros((0, 0)))
        turns, centroids = self.speaker_turns(audio16k, offset)
        return assign_turns(spans, turns, centroids, self.merge_threshold)

    def speaker_turns(self, audio16k: np.ndarray, offset: float) -> tuple[list[Turn], np.ndarray]:
        """The pipeline's turns ``(start, end, speaker)`` in absolute seconds, and its centroids.

        ``centroids[speaker]`` is the pipeline's embedding of that speaker (a zero row where
        pyannote found more speakers in the turns than clusters). Turns are clipped to the audio:
        pyannote pads the last 10 s window with zeros and reconstructs frames up to that window's
        end, so a turn could end (or lie wholly) up to a window past the chunk.
        """
        pipeline = self._load()
        audio = np.ascontiguousarray(audio16k, dtype=np.float32).reshape(-1)
        waveform = torch.from_numpy(audio)[None, :]
        try:
            annotation, centroids = pipeline(
                {"waveform": waveform, "sample_rate": SAMPLE_RATE, "uri": "chunk"}, return_embeddings=True
            )
        except Exception as exc:
            raise ProviderError(f"pyannote diarization failed: {exc}") from exc
        names = list(annotation.labels())
        duration = audio.shape[0] / SAMPLE_RATE
        turns = [
            (float(seg.start) + offset, min(float(seg.end), duration) + offset, names.index(label))
            for seg, _, label in annotation.itertracks(yield_label=True)
            if float(seg.start) < duration
        ]
        matrix = np.asarray(
            centroids if centroids is not None else np.zeros((len(names), 0)), dtype=np.float64
        )
        return turns, matrix
