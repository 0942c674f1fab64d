"""Where Perth's pretrained model is: the installed ``resemble-perth`` package's files, found
without importing it (its ``__init__`` imports what the pipeline does not have; see ``watermark``)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from dubbing_pipeline.errors import ModelMissingError

PACKAGE = "dubbing_pipeline._perth"  # the private name Perth's model files are loaded under
MODEL = "implicit"  # the run Perth ships pretrained
MARK_RATE = 32000  # Perth's sample rate (hparams.yaml)


@dataclass(frozen=True)
class PerthFiles:
    """The installed package's folder, the model's configuration and its latest checkpoint."""

    package: Path
    hparams: Path
    checkpoint: Path


def perth_dir() -> Path:
    """The installed ``perth`` package's folder, found without importing it."""
    spec = importlib.util.find_spec("perth")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            "the audio watermark needs the resemble-perth package (pip install resemble-perth==1.0.1), "
            "or DUBBING_WATERMARK=off"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def model_files() -> PerthFiles:
    """The pretrained model's files (a missing package or model is a ``ModelMissingError``)."""
    package = perth_dir()
    run = package / "perth_net" / "pretrained" / MODEL
    checkpoints = sorted(run.glob("*.pth.tar"), key=lambda p: int(p.name.split(".")[0].rsplit("_", 1)[-1]))
    if not (run / "hparams.yaml").is_file() or not checkpoints:
        raise ModelMissingError("resemble-perth is installed without its pretrained 'implicit' model")
    return PerthFiles(package, run / "hparams.yaml", checkpoints[-1])
