"""The local pyannote.audio 3.1 pipeline directory (``DUBBING_PYANNOTE_DIR``), checked at start.

The directory holds ``config.yaml`` (the layout of ``pyannote/speaker-diarization-3.1``) whose
``segmentation`` / ``embedding`` entries point at local checkpoints; relative paths are resolved
against the directory. Hub model ids are refused, so nothing is ever downloaded. Read here without
torch or pyannote, so a bad directory is a classified error before either is loaded; the engine
that runs the pipeline is ``pyannote_engine``.
"""

from __future__ import annotations

import copy
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.errors import ModelMissingError, require_dir
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings

CHECKPOINTS = ("segmentation", "embedding")


@dataclass(frozen=True)
class PyannoteConfig:
    """A checked pipeline directory: its ``config.yaml`` with both checkpoints resolved to local
    files, and each checkpoint's file name and content hash (for the cache key)."""

    folder: Path
    config: JsonObject
    models: dict[str, dict[str, str]]

    @classmethod
    def load(cls, settings: Settings) -> PyannoteConfig:
        """The directory ``settings`` name, or a ``ModelMissingError`` that says what is wrong."""
        folder = Path(require_dir(settings.pyannote_dir, "pyannote diarization", "DUBBING_PYANNOTE_DIR"))
        path = folder / "config.yaml"
        if not path.is_file():
            raise ModelMissingError("pyannote diarization: config.yaml not found in DUBBING_PYANNOTE_DIR")
        config = resolved_config(path, folder)
        return cls(folder, config, fingerprints(config))

    @property
    def pipeline_name(self) -> object:
        return self.config.get("pipeline", {}).get("name")

    @property
    def params(self) -> object:
        """The top-level ``params`` of ``config.yaml`` (the pipeline's tuned hyper-parameters)."""
        return self.config.get("params", {})


def resolved_config(path: Path, folder: Path) -> JsonObject:
    """``config.yaml`` with both checkpoints resolved to existing local files, or a classified error.

    Checked here, at start, rather than by pyannote at the first chunk: an unreadable file gave
    a raw ``yaml`` / ``AttributeError``, and an absent ``segmentation`` / ``embedding`` entry made
    pyannote fall back to its own hub defaults (a download, refused offline). A checkpoint entry
    may name a hub-style model directory; pyannote loads only files, so it resolves to the
    directory's ``pytorch_model.bin``. Torch checkpoints are zip archives: anything else (a
    truncated download, an HTML error page) is refused here too.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelMissingError(f"pyannote diarization: config.yaml is not readable YAML: {exc}") from exc
    pipeline = config.get("pipeline") if isinstance(config, dict) else None
    params = pipeline.get("params") if isinstance(pipeline, dict) else None
    if (
        not isinstance(pipeline, dict)
        or not isinstance(pipeline.get("name"), str)
        or not isinstance(params, dict)
    ):
        raise ModelMissingError(
            "pyannote diarization: config.yaml needs pipeline.name and pipeline.params (the layout of "
            "pyannote/speaker-diarization-3.1)"
        )
    for key in CHECKPOINTS:
        params[key] = str(local_checkpoint(folder, key, params.get(key)))
    return dict(config)


def local_checkpoint(folder: Path, key: str, value: object) -> Path:
    """The local checkpoint file a ``config.yaml`` entry names, or a classified error."""
    if not isinstance(value, str) or not value:
        raise ModelMissingError(
            f"pyannote diarization: config.yaml pipeline.params.{key} must name a local checkpoint"
        )
    local = Path(value) if os.path.isabs(value) else folder / value
    if local.is_dir():
        local = local / "pytorch_model.bin"
    if not local.is_file():
        raise ModelMissingError(
            f"pyannote diarization: config.yaml {key} {os.path.basename(value)!r} is not a local "
            "checkpoint inside DUBBING_PYANNOTE_DIR"
        )
    if not zipfile.is_zipfile(local):
        raise ModelMissingError(
            f"pyannote diarization: {key} checkpoint {local.name!r} is not a torch checkpoint "
            "(truncated or corrupt)"
        )
    return local


def fingerprints(config: JsonObject) -> dict[str, dict[str, str]]:
    """File name and content hash of each checkpoint, for the cache key.

    By content, not size: checkpoints of one architecture have the same size whatever
    their weights, so a size-keyed cache served one model's diarization for another.
    """
    params = config["pipeline"]["params"]
    return {
        key: {"file": os.path.basename(params[key]), "sha256": sha256_file(params[key])[:16]}
        for key in CHECKPOINTS
    }


def loadable_config(config: JsonObject) -> JsonObject:
    """``config`` with the embedding checkpoint given as ``{checkpoint: path}``, not as a string.

    pyannote.audio 3.x picks the embedding loader from the *text* of a string entry: anything
    containing "pyannote" loads as a pyannote model, otherwise "speechbrain", "nvidia" and
    "wespeaker" select SpeechBrain, NeMo and ONNX loaders. Our entries are absolute paths, so the
    loader depended on the host directory: the hub layout's ``wespeaker-voxceleb-resnet34-LM/
    pytorch_model.bin`` under a directory without "pyannote" in its path went to onnxruntime
    ("INVALID_PROTOBUF ... Protobuf parsing failed"). A mapping is always loaded with
    ``Model.from_pretrained(**mapping)``, the loader the hub id selects.
    """
    out = copy.deepcopy(config)
    params = out.get("pipeline", {}).get("params", {})
    if isinstance(params.get("embedding"), str):
        params["embedding"] = {"checkpoint": params["embedding"]}
    return out
