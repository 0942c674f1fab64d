"""A randomly initialised pyannote ``speaker-diarization-3.1`` directory (see the package docstring).

The production provider (:class:`dubbing_pipeline.speakers.diarize.PyannoteDiarizer`) loads
``DUBBING_PYANNOTE_DIR``: a ``config.yaml`` in the layout of the hub's
``pyannote/speaker-diarization-3.1`` whose ``segmentation`` / ``embedding`` entries name local
checkpoints, relative to the directory. :func:`build_pyannote_pipeline` writes that directory with
the two models of the real pipeline, built by pyannote.audio's own classes:

* ``segmentation-3.0/pytorch_model.bin``: :class:`PyanNet` with the hyperparameters of
  ``pyannote/segmentation-3.0`` (SincNet stride 10, 4 bidirectional LSTM layers of 128, two linear
  layers of 128; 1 473 265 parameters) and its task specifications: 10 s chunks, powerset
  multi-class over 3 speakers with at most 2 per frame (7 classes), permutation invariant.
* ``wespeaker-voxceleb-resnet34-LM/pytorch_model.bin``: :class:`WeSpeakerResNet34` (80 log-mel
  bins, 25 ms / 10 ms Kaldi fbank, 256-dimensional embeddings; 6 634 336 parameters), saved the way
  pyannote's ``wespeaker/convert.py`` saves the hub checkpoint (no hyperparameters, the defaults
  are the real ones; ``REPRESENTATION`` / ``CHUNK`` specifications).

Both are Lightning checkpoints carrying what ``Model.on_save_checkpoint`` writes (versions,
architecture, specifications), so ``Model.from_pretrained(path)`` rebuilds them exactly as it
rebuilds the real ones.

``full_size=False`` (CI) keeps both architectures and changes only the embedding model's
input features, through its own saved hyperparameters: 32 mel bins every 40 ms instead of 80
every 10 ms, a 10x smaller feature map through the same ResNet34 (still 256-dimensional). On a
busy 2-core CPU the full model embeds 32 ten-second windows in about 70 s, which the ~63
windows a 30 s chunk needs would turn into minutes per run; reduced, in about 7 s. The
segmentation model is the real one in both sizes (about 5 s per 30 s chunk).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pyannote.audio.core.task import Problem, Resolution, Specifications  # type: ignore[import-untyped]
from pyannote.audio.models.embedding import WeSpeakerResNet34  # type: ignore[import-untyped]
from pyannote.audio.models.segmentation import PyanNet  # type: ignore[import-untyped]

SEGMENTATION = "segmentation-3.0/pytorch_model.bin"
EMBEDDING = "wespeaker-voxceleb-resnet34-LM/pytorch_model.bin"

# pyannote/segmentation-3.0: PyanNet hyperparameters and SpeakerDiarization task settings.
SEGMENTATION_HPARAMS: dict[str, object] = {
    "sincnet": {"stride": 10},
    "lstm": {"hidden_size": 128, "num_layers": 4, "bidirectional": True, "monolithic": True, "dropout": 0.0},
    "linear": {"hidden_size": 128, "num_layers": 2},
    "sample_rate": 16000,
    "num_channels": 1,
}
SEGMENTATION_DURATION = 10.0
MAX_SPEAKERS_PER_CHUNK = 3
MAX_SPEAKERS_PER_FRAME = 2

# full_size=False: the embedding model's fbank settings (see the module docstring).
REDUCED_EMBEDDING_HPARAMS: dict[str, float] = {"num_mel_bins": 32, "frame_shift": 40.0}

# pyannote/speaker-diarization-3.1: its config.yaml, with the two hub ids replaced by local files.
PIPELINE_CONFIG: dict[str, object] = {
    "version": "3.1.0",
    "pipeline": {
        "name": "pyannote.audio.pipelines.SpeakerDiarization",
        "params": {
            "clustering": "AgglomerativeClustering",
            "embedding": EMBEDDING,
            "embedding_batch_size": 32,
            "embedding_exclude_overlap": True,
            "segmentation": SEGMENTATION,
            "segmentation_batch_size": 32,
        },
    },
    "params": {
        "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.7045654963945799},
        "segmentation": {"min_duration_off": 0.0},
    },
}


def _randomise(model: Any, seed: int) -> None:
    """Re-draw every parameter from a seeded generator (the constructors use the global one).

    Weights keep each layer's own initialisation scheme (``reset_parameters``); SincNet's
    band-pass filters are parametric (low/high cut-offs) and keep their mel-spaced initial values.
    """
    torch.manual_seed(seed)
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


def _checkpoint(model: Any, *, hyper_parameters: bool) -> dict[str, object]:
    """What a Lightning checkpoint of ``model`` holds, plus pyannote's own section."""
    checkpoint: dict[str, object] = {
        "state_dict": model.state_dict(),
        "pytorch-lightning_version": pl.__version__,
    }
    if hyper_parameters:
        checkpoint["hyper_parameters"] = dict(model.hparams)
    model.on_save_checkpoint(checkpoint)
    return checkpoint


def segmentation_model(seed: int = 0) -> Any:
    """PyanNet as in ``pyannote/segmentation-3.0``, random weights."""
    torch.manual_seed(seed)
    model = PyanNet(**SEGMENTATION_HPARAMS)
    model.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=SEGMENTATION_DURATION,
        min_duration=None,
        warm_up=(0.0, 0.0),
        classes=[f"speaker#{i + 1}" for i in range(MAX_SPEAKERS_PER_CHUNK)],
        powerset_max_classes=MAX_SPEAKERS_PER_FRAME,
        permutation_invariant=True,
    )
    model.setup()  # adds the task-dependent classifier (7 powerset classes) and activation
    _randomise(model, seed)
    return model.eval()


def embedding_model(seed: int = 0, *, full_size: bool = True) -> Any:
    """WeSpeaker ResNet34 as in ``pyannote/wespeaker-voxceleb-resnet34-LM``, random weights.

    The real checkpoint uses the class defaults; ``full_size=False`` overrides its fbank settings.
    """
    torch.manual_seed(seed)
    model = WeSpeakerResNet34(**({} if full_size else REDUCED_EMBEDDING_HPARAMS))
    model.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=5.0
    )
    _randomise(model, seed + 1)
    return model.eval()


def build_pyannote_pipeline(dest: Path, *, seed: int = 0, full_size: bool = False) -> Path:
    """Write a ``speaker-diarization-3.1`` directory with random weights into ``dest``; return it.

    Deterministic: the same ``seed`` and size give the same weights. ``full_size=True`` gives the
    real models (their FLOPs, for GPU timing); the default reduces the embedding model's input
    features (see the module docstring). The full-size embedding checkpoint holds no
    hyperparameters, like the hub's; the reduced one must, to be rebuilt with its own features.
    """
    dest = Path(dest)
    for relative, model, hparams in (
        (SEGMENTATION, segmentation_model(seed), True),
        (EMBEDDING, embedding_model(seed, full_size=full_size), not full_size),
    ):
        path = dest / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_checkpoint(model, hyper_parameters=hparams), path)
    (dest / "config.yaml").write_text(yaml.safe_dump(PIPELINE_CONFIG, sort_keys=False), encoding="utf-8")
    return dest
