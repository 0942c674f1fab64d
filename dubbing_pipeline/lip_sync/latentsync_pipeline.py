"""LatentSync's own pipeline, loaded from a checkpoint directory and run on one window.

The part of ``LatentSyncEngine`` that needs torch and LatentSync's code, all imported here at the
top: the engine imports this module on first use, once ``check`` has found the source tree.
LatentSync's code is its source tree (a pinned checkout on ``PYTHONPATH``, not on PyPI) and the
libraries it needs (diffusers, OmegaConf); none of them is a dependency of this package, so this
module imports without them and :meth:`LatentSyncRuntime.load` says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dubbing_pipeline.errors import ModelMissingError

try:
    from diffusers import AutoencoderKL, DDIMScheduler  # type: ignore[import-untyped,unused-ignore]
    from latentsync.models.unet import UNet3DConditionModel  # type: ignore[import-not-found,unused-ignore]
    from latentsync.pipelines.lipsync_pipeline import LipsyncPipeline  # type: ignore[import-not-found,unused-ignore]
    from latentsync.whisper.audio2feature import Audio2Feature  # type: ignore[import-not-found,unused-ignore]
    from omegaconf import OmegaConf
except ImportError as exc:  # no LatentSync here: ``load`` says so
    MISSING: ImportError | None = exc
else:
    MISSING = None

WHISPER = {384: "tiny.pt", 768: "small.pt"}  # the audio encoder for the UNet's cross-attention width


@dataclass(frozen=True)
class LatentSyncRuntime:
    """Upstream's ``LipsyncPipeline`` on its device, with the config, weight dtype and mouth mask
    it runs with."""

    pipeline: Any
    config: Any  # the UNet config (OmegaConf)
    dtype: torch.dtype
    mask: str  # the mouth mask image (absolute)
    device: str

    @staticmethod
    def cuda_available() -> bool:
        return bool(torch.cuda.is_available())

    @classmethod
    def load(cls, root: Path, tree: Path, config_path: Path, device: str) -> LatentSyncRuntime:
        """The pipeline from checkpoint directory ``root`` and source tree ``tree``, on ``device``."""
        if MISSING is not None:
            raise ModelMissingError(f"LatentSync's code does not import: {MISSING}")
        config = OmegaConf.load(str(config_path))
        dim = int(config.model.cross_attention_dim)
        whisper = root / "whisper" / WHISPER.get(dim, "tiny.pt")
        if not whisper.is_file():
            raise ModelMissingError(
                f"LatentSync: whisper/{whisper.name} not found (cross_attention_dim {dim})"
            )
        # fp16 from Ampere on (upstream's rule); fp32 elsewhere
        cuda = device == "cuda"
        dtype = torch.float16 if cuda and torch.cuda.get_device_capability()[0] > 7 else torch.float32
        scheduler = DDIMScheduler.from_pretrained(str(tree / "configs"))  # type: ignore[no-untyped-call]
        audio_encoder = Audio2Feature(
            model_path=str(whisper),
            device=device,
            num_frames=config.data.num_frames,
            audio_feat_length=config.data.audio_feat_length,
        )
        vae = AutoencoderKL.from_pretrained(  # type: ignore[no-untyped-call]
            str(root / "sd-vae-ft-mse"), torch_dtype=dtype, local_files_only=True
        )
        vae.config.scaling_factor = 0.18215
        vae.config.shift_factor = 0
        unet, _ = UNet3DConditionModel.from_pretrained(
            OmegaConf.to_container(config.model), str(root / "latentsync_unet.pt"), device="cpu"
        )
        unet = unet.to(dtype=dtype)
        pipeline = LipsyncPipeline(vae=vae, audio_encoder=audio_encoder, unet=unet, scheduler=scheduler)
        mask = Path(str(config.data.mask_image_path))
        mask_path = str(mask if mask.is_absolute() else tree / mask)
        return cls(pipeline.to(device), config, dtype, mask_path, device)

    def run(self, out_name: str, *, steps: int, guidance: float, seed: int) -> None:
        """One window, in the working directory (its ``window.mp4`` and ``window.wav``), into
        ``out_name`` there; a fixed seed through a generator on the pipeline's device."""
        config = self.config
        generator = torch.Generator(device=self.device).manual_seed(seed)
        try:
            self.pipeline(
                video_path="window.mp4",
                audio_path="window.wav",
                video_out_path=out_name,
                num_frames=config.data.num_frames,
                num_inference_steps=steps,
                guidance_scale=guidance,
                weight_dtype=self.dtype,
                width=config.data.resolution,
                height=config.data.resolution,
                mask_image_path=self.mask,
                temp_dir="temp",
                generator=generator,
            )
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
