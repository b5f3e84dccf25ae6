"""Differentiable crops for local discriminators (pconv-gan, ID-Inpainter's CA critic)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear crops N×C×size×size of ``images`` N×C×H×W at ``boxes`` N×4 (x1, y1, x2, y2 pixels); differentiable."""
    n, _, h, w = images.shape
    b = boxes.to(device=images.device, dtype=torch.float32)
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=torch.float32)
    theta[:, 0, 0] = (b[:, 2] - b[:, 0]) / w
    theta[:, 0, 2] = (b[:, 0] + b[:, 2]) / w - 1
    theta[:, 1, 1] = (b[:, 3] - b[:, 1]) / h
    theta[:, 1, 2] = (b[:, 1] + b[:, 3]) / h - 1
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
