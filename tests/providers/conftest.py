"""Production providers with structural weights: what these tests need from the environment.

``test_latentsync.py`` and ``test_vllm_schema.py`` import torchvision (LatentSync's transforms,
vLLM's package). PyPI's torchvision for torch 2.13 is a CUDA build: its C++ ops do not load
with the local CPU torch, and its import then fails registering fake kernels for two ops that
do not exist (``operator torchvision::nms does not exist``). Installed in the main virtualenv it
would break every library that imports it when present (pyannote, lightning, torchmetrics,
transformers), in every process, so ``.ci/install`` puts it in a copy, ``.venv-torchvision``,
where ``.ci/test`` runs just those two files. There, and only in the test process, the two op
schemas are declared before anything imports torchvision; nothing here calls those ops.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys

TORCHVISION_TESTS = ("test_latentsync.py", "test_vllm_schema.py")


def _declare_torchvision_ops() -> None:
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return
    import torch

    for op in ("nms", "qnms"):
        with contextlib.suppress(RuntimeError):  # a loaded torchvision._C defined it already
            torch.library.define(
                f"torchvision::{op}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            )


_declare_torchvision_ops()
