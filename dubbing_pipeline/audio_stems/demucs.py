"""The Demucs engine: the production GPU separator (the ``gpu`` extra; the factory imports this
module lazily, and names the extra when the ``demucs`` package is missing)."""

from __future__ import annotations

import pickle
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import yaml
from demucs.apply import apply_model
from demucs.demucs import Demucs
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs
from demucs.pretrained import get_model
from demucs.repo import ModelLoadingError

from dubbing_pipeline.audio_stems.core import center_trim
from dubbing_pipeline.audio_stems.separator import Audio, Separator, package_version
from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.errors import ModelMissingError, ProviderError, require_torch_device
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings

# demucs 4.0.x calls torch.load() without weights_only, which torch >= 2.6 turns into a
# weights-only load that refuses the pickled model class: exactly these classes are allowed, and
# Fraction (HTDemucs' segment), for the model's load.
PICKLED = [Fraction, HTDemucs, HDemucs, Demucs]
LOAD_FAILURES = (ModelLoadingError, OSError, KeyError, ValueError, yaml.YAMLError, pickle.UnpicklingError)


def load_model(name: str, repo: Path) -> Any:
    """The Demucs model (a bag of models, as released) ``name`` from the local repository ``repo``."""
    try:
        with torch.serialization.safe_globals(PICKLED):
            return get_model(name, repo=repo)
    except LOAD_FAILURES as exc:
        raise ModelMissingError(
            f"Demucs model {name!r} could not be loaded from DUBBING_DEMUCS_REPO: {exc}"
        ) from exc
    except SystemExit as exc:  # demucs calls sys.exit() for a few problems (e.g. diffq)
        raise ModelMissingError(f"Demucs model {name!r} could not be loaded (demucs exited)") from exc


def weights_fingerprint(name: str, repo: Path) -> dict[str, str]:
    """Names of the files that define the model; released weights embed a checksum in the name."""
    names = [name]
    bag = repo / f"{name}.yaml"
    found: dict[str, str] = {}
    if bag.is_file():
        found[bag.name] = sha256_file(bag)[:16]
        with open(bag, encoding="utf-8") as fh:
            names = [str(sig) for sig in (yaml.safe_load(fh) or {}).get("models", [])]
    for sig in names:
        for path in sorted(repo.glob(f"{sig}*.th")):
            if path.stem == sig or path.stem.startswith(f"{sig}-"):
                found[path.name] = f"{path.stat().st_size}"
    return found


class DemucsSeparator(Separator):
    """HTDemucs (or another Demucs model) from a local model repository.

    The repository is a directory as Demucs lays it out: ``<name>.yaml`` naming the model
    signatures and ``<signature>[-<checksum>].th`` weight files. Vocals are the model's
    ``vocals`` source, the background is the sum of all the other sources. Random shifts are
    off (``shifts=0``) so the result is deterministic; the input is normalised as Demucs'
    own API does.
    """

    name = "demucs"
    shifts = 0
    overlap = 0.25

    def __init__(self, settings: Settings, repo: Path) -> None:
        self._device = require_torch_device(torch, settings.device)
        torch.set_num_threads(max(1, int(settings.cpu_threads)))
        self.model = settings.demucs_model or "htdemucs"
        model = load_model(self.model, repo)
        sources = list(model.sources)
        if "vocals" not in sources:
            raise ModelMissingError(f"Demucs model {self.model!r} has no vocals source (it has {sources})")
        model.eval()
        self._net = model.to(self._device)
        self._sources = sources
        self._vocals_index = sources.index("vocals")
        self.sample_rate = int(model.samplerate)
        self.channels = int(model.audio_channels)
        self._describe = self._fingerprint(repo)

    def _fingerprint(self, repo: Path) -> JsonObject:
        return {
            "name": self.name,
            "model": self.model,
            "version": {"demucs": package_version("demucs"), "torch": torch.__version__.split("+")[0]},
            "weights": weights_fingerprint(self.model, repo),
            "sources": self._sources,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "settings": {
                "shifts": self.shifts,
                "overlap": self.overlap,
                "background": "sum-of-other-sources",
            },
        }

    def _separate_block(self, block: Audio) -> tuple[Audio, Audio]:
        n = block.shape[-1]
        wav = torch.from_numpy(block)
        ref = wav.mean(0)
        mean = float(ref.mean())
        std = float(ref.std()) + 1e-8
        try:
            with torch.inference_mode():
                out = apply_model(
                    self._net,
                    ((wav - mean) / std)[None],
                    shifts=self.shifts,
                    split=True,
                    overlap=self.overlap,
                    progress=False,
                    device=self._device,
                )
            sources = center_trim(out[0].cpu().numpy(), n) * std  # (S, C, n)
        except RuntimeError as exc:
            raise ProviderError(f"demucs failed: {exc}") from exc
        vocals = sources[self._vocals_index]
        others = [i for i in range(len(self._sources)) if i != self._vocals_index]
        background = sources[others].sum(axis=0) + mean
        return vocals, background
