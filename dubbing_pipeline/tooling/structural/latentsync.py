"""Structural LatentSync checkpoints: ``DUBBING_LATENTSYNC_DIR`` with seeded random weights.

``build_latentsync(dest)`` writes exactly the layout ``LatentSyncEngine`` loads (see its docstring):

* ``unet.yaml``: upstream's ``configs/unet/stage2.yaml`` (LatentSync 1.5, 256 px) at full size;
  reduced (fewer, narrower blocks at 64 px) otherwise, keeping everything the adapter reads
  (``data.num_frames``, ``data.resolution``, ``data.audio_feat_length``, ``data.mask_image_path``,
  ``model.cross_attention_dim`` = 384, which selects ``whisper/tiny.pt``);
* ``latentsync_unet.pt``: ``{"state_dict": ...}`` of LatentSync's ``UNet3DConditionModel``, the
  format its ``from_pretrained`` reads;
* ``whisper/tiny.pt``: ``{"dims", "model_state_dict"}`` of LatentSync's vendored Whisper, which
  its ``Audio2Feature`` loads (only the encoder runs; the reduced build shrinks the unused decoder);
* ``sd-vae-ft-mse/``: a diffusers ``AutoencoderKL`` directory (the ``stabilityai/sd-vae-ft-mse``
  config at full size; 4 narrow blocks otherwise, so the 8x latent scale stays the same);
* ``auxiliary/models/buffalo_l/``: the two InsightFace ONNX models LatentSync's ``FaceDetector``
  asks ``FaceAnalysis`` for (``detection`` and ``landmark_2d_106``). Upstream downloads them at run
  time, which no machine of this project can, and their architectures (SCRFD-10G, 2d106det) are
  not published as code. They are written here as *fixed-output* graphs with the exact input and
  output tensors InsightFace routes and decodes: the detector reports one face at ``face_box``
  (fractions of the frame; the default is the face of the packaged demo video), the landmark model
  a mean-face template. InsightFace's real routing, anchor decoding, NMS and landmark warping run.

The LatentSync source tree must be importable (``latentsync`` on ``sys.path``): its classes are
the ones whose weights are written. It is no installed package, so its modules are looked up when
a directory is built (``_upstream``), by then on ``sys.path``. Nothing is downloaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import torch
from diffusers import AutoencoderKL
from omegaconf import OmegaConf
from onnx import TensorProto, helper, numpy_helper

# The reduced UNet: four blocks as upstream (three down-samplings: 64 px → 8 latent → 1), narrow.
_REDUCED_MODEL = {
    "block_out_channels": [32, 32, 64, 64],
    "layers_per_block": 1,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
_REDUCED_RESOLUTION = 64
# whisper tiny (cross_attention_dim 384); the reduced build keeps the encoder (what runs) and
# shrinks the decoder LatentSync never calls
_WHISPER_TINY = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 384,
    "n_audio_head": 6,
    "n_audio_layer": 4,
    "n_vocab": 51865,
    "n_text_ctx": 448,
    "n_text_state": 384,
    "n_text_head": 6,
    "n_text_layer": 4,
}
_WHISPER_REDUCED_DECODER = {"n_vocab": 64, "n_text_ctx": 8, "n_text_layer": 1}
# diffusers' stabilityai/sd-vae-ft-mse config (what upstream loads from the hub)
_VAE_FULL: dict[str, object] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 256,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
_VAE_REDUCED = {**_VAE_FULL, "block_out_channels": [32, 32, 64, 64], "layers_per_block": 1, "sample_size": 64}
# The demo video's face (480x480 frame), as fractions: x1, y1, x2, y2.
DEMO_FACE_BOX = (0.33, 0.13, 0.57, 0.42)
_DET_SIZE = 512  # LatentSync's FaceDetector: det_size=(512, 512)
_LMK_SIZE = 192  # InsightFace routes a 192x192 input to its Landmark model


def latentsync_source_tree() -> Path:
    """The importable LatentSync source tree (its ``configs/`` sit beside ``latentsync/``)."""
    spec = importlib.util.find_spec("latentsync")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("latentsync is not importable: put a LatentSync source tree on sys.path")
    return Path(next(iter(spec.submodule_search_locations))).parent


def _upstream(module: str) -> ModuleType:
    """A module of the LatentSync source tree (``latentsync_source_tree`` says clearly when the
    tree is not on ``sys.path``)."""
    latentsync_source_tree()
    return importlib.import_module(module)  # lazy: a source tree, put on sys.path at run time


def build_latentsync(
    dest: Path,
    *,
    seed: int = 0,
    full_size: bool = False,
    face_box: tuple[float, float, float, float] = DEMO_FACE_BOX,
) -> Path:
    """Write a structural ``DUBBING_LATENTSYNC_DIR`` at ``dest`` and return it.

    ``full_size`` selects upstream's real UNet and VAE configs (the FLOPs of production; for GPU
    timing), otherwise the reduced ones (CPU tests). Same seed, same bytes of weights.
    """
    tree = latentsync_source_tree()
    unet_3d = _upstream("latentsync.models.unet").UNet3DConditionModel
    whisper_model = _upstream("latentsync.whisper.whisper.model")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.load(str(tree / "configs" / "unet" / "stage2.yaml"))
    if not full_size:
        for key, value in _REDUCED_MODEL.items():
            config.model[key] = value
        config.data.resolution = _REDUCED_RESOLUTION
    OmegaConf.save(config, str(dest / "unet.yaml"))

    torch.manual_seed(seed)
    unet = unet_3d.from_config(OmegaConf.to_container(config.model))
    _randomise(unet, seed)
    torch.save({"state_dict": unet.state_dict(), "global_step": 0}, dest / "latentsync_unet.pt")
    del unet

    dims = dict(_WHISPER_TINY)
    if not full_size:
        dims.update(_WHISPER_REDUCED_DECODER)
    torch.manual_seed(seed + 1)
    whisper = whisper_model.Whisper(whisper_model.ModelDimensions(**dims))
    (dest / "whisper").mkdir(exist_ok=True)
    torch.save({"dims": dims, "model_state_dict": whisper.state_dict()}, dest / "whisper" / "tiny.pt")
    del whisper

    torch.manual_seed(seed + 2)
    vae: Any = AutoencoderKL(
        **(_VAE_FULL if full_size else _VAE_REDUCED)
    )  # diffusers' lazy modules hide its methods from mypy
    vae_dir = dest / "sd-vae-ft-mse"
    if vae_dir.exists():
        shutil.rmtree(vae_dir)
    vae.save_pretrained(str(vae_dir))
    del vae

    faces = dest / "auxiliary" / "models" / "buffalo_l"
    faces.mkdir(parents=True, exist_ok=True)
    _write_detector(faces / "det_10g.onnx", face_box)
    _write_landmarks(faces / "2d106det.onnx")
    return dest


def _randomise(module: Any, seed: int) -> None:
    """Overwrite zero-initialised tensors (upstream zero-inits its motion modules' and audio
    layers' output projections, which would make them identities) with small seeded noise, so
    every layer of the real architecture changes the output as a trained one would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.dim() > 1 and not bool(param.any()):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)


def _constant_graph(name: str, shape: list[int], outputs: list[tuple[str, Any]]) -> Any:
    """An ONNX graph: input ``x`` of ``shape``; each output ``= constant + 0 * mean(x)`` (so it
    depends on the input tensor, as a network's would, yet its values are fixed)."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean4"], keepdims=1),
        helper.make_node("Reshape", ["mean4", "shape11"], ["mean"]),
        helper.make_node("Mul", ["mean", "zero"], ["nil"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([1, 1], dtype=np.int64), "shape11"),
        numpy_helper.from_array(np.zeros((1, 1), dtype=np.float32), "zero"),
    ]
    outs = []
    for out_name, value in outputs:
        value = np.asarray(value, dtype=np.float32)
        inits.append(numpy_helper.from_array(value, f"{out_name}_value"))
        nodes.append(helper.make_node("Add", ["nil", f"{out_name}_value"], [out_name]))
        outs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], outs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _write_detector(path: Path, face_box: tuple[float, float, float, float]) -> None:
    """SCRFD's interface without keypoints (6 outputs: scores then distances, strides 8/16/32,
    2 anchors per cell): one anchor of stride 32 scores 0.99 with the distances of ``face_box``
    on the square detection canvas, every other anchor 0."""
    x1, y1, x2, y2 = (v * _DET_SIZE for v in face_box)
    scores, boxes = [], []
    for stride in (8, 16, 32):
        cells = (_DET_SIZE // stride) ** 2 * 2
        score = np.zeros((cells, 1), dtype=np.float32)
        dist = np.ones((cells, 4), dtype=np.float32)
        if stride == 32:
            cx, cy = int((x1 + x2) / 2 // stride), int((y1 + y2) / 2 // stride)
            index = (cy * (_DET_SIZE // stride) + cx) * 2
            ax, ay = cx * stride, cy * stride
            score[index] = 0.99
            dist[index] = [(ax - x1) / stride, (ay - y1) / stride, (x2 - ax) / stride, (y2 - ay) / stride]
        scores.append(score)
        boxes.append(dist)
    outputs = [(f"score_{s}", v) for s, v in zip((8, 16, 32), scores, strict=True)]
    outputs += [(f"bbox_{s}", v) for s, v in zip((8, 16, 32), boxes, strict=True)]
    onnx.save(_constant_graph("scrfd_structural", [1, 3, _DET_SIZE, _DET_SIZE], outputs), str(path))


def _mean_face_106() -> Any:
    """A 106-point template in the landmark model's output frame ([-1, 1] of the 192 px crop,
    the face box spanning about ±0.67): contour 0-32 on a jaw ellipse, eyebrows (43-51 left,
    97-105 right), eyes, nose (72-86) and mouth (52-71) where LatentSync's alignment reads them."""
    points = np.zeros((106, 2), dtype=np.float32)
    angles = np.linspace(np.pi * 0.95, np.pi * 0.05, 33)  # left temple → chin → right temple
    points[0:33, 0] = 0.55 * np.cos(angles)
    points[0:33, 1] = 0.05 + 0.6 * np.sin(angles)
    points[33:52] = np.stack([np.linspace(-0.5, -0.1, 19), np.full(19, -0.35)], axis=1)  # left brow/eye
    points[52:72] = np.stack([np.linspace(-0.2, 0.2, 20), np.full(20, 0.35)], axis=1)  # mouth
    points[72:87] = np.stack([np.zeros(15), np.linspace(-0.2, 0.15, 15)], axis=1)  # nose
    points[87:106] = np.stack([np.linspace(0.1, 0.5, 19), np.full(19, -0.35)], axis=1)  # right brow/eye
    return points.reshape(1, 212)


def _write_landmarks(path: Path) -> None:
    """2d106det's interface: a 1x3x192x192 input, 212 outputs (106 x/y pairs)."""
    model = _constant_graph("lmk106_structural", [1, 3, _LMK_SIZE, _LMK_SIZE], [("fc1", _mean_face_106())])
    onnx.save(model, str(path))
