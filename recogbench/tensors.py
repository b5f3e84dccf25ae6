"""The public tensor contract, in one place: images float32 N×3×H×W RGB in [0, 1];
faces on disk and in occluders uint8 (N, H, W, 3) RGB. Conversions round as a saved image would."""

from __future__ import annotations

import numpy as np
import torch


def check_images(images: torch.Tensor, what: str = "images") -> None:
    """Raise ValueError unless ``images`` is float32 N×3×H×W with values in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{what} must be N×3×H×W, got {tuple(images.shape)}")
    if images.dtype != torch.float32:
        raise ValueError(f"{what} must be float32, got {images.dtype}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"{what} must lie in [0, 1], got [{images.min():.3g}, {images.max():.3g}]")


def to_tensor(faces: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, H, W, 3) uint8 RGB → (n, 3, H, W) float32 in [0, 1] on ``device``, contiguous NCHW."""
    t = torch.from_numpy(np.ascontiguousarray(faces)).to(device)
    # Contiguous, not the permuted view's channels-last strides: those silently switch every
    # convolution downstream to channels-last kernels, and oneDNN's AVX-512 1×1 stride-2
    # backward-weights kernel corrupts the heap on them for 8 input channels (torch 2.13).
    # Channels-last is an explicit option where it is wanted (arcface channels_last=1).
    return t.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) float [0, 1] → (n, H, W, 3) uint8 on the CPU, rounded: what a saved image holds."""
    return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
