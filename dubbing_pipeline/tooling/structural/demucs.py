"""A Demucs model repository holding a randomly initialised ``htdemucs``.

The released ``htdemucs`` is one model, signature ``955717e8``, listed by ``htdemucs.yaml`` and
stored as ``955717e8-<sha256[:8]>.th``: a pickled package of the model class, its constructor
arguments, the training arguments and a half-precision state dict (``demucs.states.serialize_model``
with ``half=True``). This module writes the same files with demucs's own ``HTDemucs`` class and
``save_with_checksum``, so ``demucs.pretrained.get_model("htdemucs", repo=...)`` loads it exactly
as it loads the released one.

``full_size=True`` is the released architecture: HTDemucs' defaults with a 512-channel
transformer bottleneck (``bottom_channels``, as the released weights have), 4 sources, 44.1 kHz
stereo, 7.8 s segments. The reduced model keeps every code path (the
time and spectral branches, the cross-transformer, the segment length and therefore
``apply_model``'s chunking) with far fewer channels, for CPU tests.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import torch
from demucs.htdemucs import HTDemucs
from demucs.states import get_state, save_with_checksum

SIGNATURE = "955717e8"  # the released htdemucs
SOURCES = ("drums", "bass", "other", "vocals")
SEGMENT = Fraction(39, 5)  # 7.8 s, as released
FULL: dict[str, int] = {"bottom_channels": 512}
REDUCED: dict[str, int] = {"channels": 8, "dconv_comp": 2, "t_layers": 1, "t_heads": 2, "bottom_channels": 32}


def build_htdemucs_repo(dest: Path, *, seed: int = 0, full_size: bool = False) -> Path:
    """Write ``htdemucs.yaml`` and one ``955717e8-<sha>.th`` into ``dest``; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    kwargs = dict(FULL if full_size else REDUCED)
    model = HTDemucs(list(SOURCES), audio_channels=2, samplerate=44100, segment=SEGMENT, **kwargs)
    args, init_kwargs = model._init_args_kwargs
    package = {
        "klass": HTDemucs,
        "args": args,
        "kwargs": init_kwargs,
        "state": get_state(model, None, half=True),  # released packages are stored in float16
        "training_args": {"structural": True, "seed": seed, "full_size": full_size},
    }
    for old in dest.glob(f"{SIGNATURE}-*.th"):
        old.unlink()
    save_with_checksum(package, dest / f"{SIGNATURE}.th")
    (dest / "htdemucs.yaml").write_text(f"models: ['{SIGNATURE}']\n", encoding="utf-8")
    return dest


def parameter_count(repo: Path) -> int:
    """Parameters of the model saved in ``repo`` (to check a full-size build)."""
    (path,) = sorted(repo.glob(f"{SIGNATURE}-*.th"))
    package = torch.load(path, map_location="cpu", weights_only=False)
    return sum(int(t.numel()) for k, t in package["state"].items() if not k.endswith("num_batches_tracked"))
