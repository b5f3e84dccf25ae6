"""Inference on the public contract: images in, occluder class maps and hole masks out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recogbench.segmentation.classes import BACKGROUND
from recogbench.tensors import check_images

__all__ = ["predict_masks"]


@torch.no_grad()
def predict_masks(model: nn.Module, images: torch.Tensor, *, batch_size: int = 32,
                  amp: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Occluder class map and hole mask of each face, for blind de-occlusion.

    ``model``: a segmenter with ``size`` (its native input side) and ``forward`` giving
    N×K×S×S logits for [0, 1] images (:class:`~recogbench.segmentation.SOCLNet`).
    ``images``: float32 N×3×H×W RGB in [0, 1] (checked), on any device. Faces are resized to
    the native size (bilinear, antialiased), classified per pixel (argmax), and the class map
    is resized back to H×W by nearest neighbour.

    Returns ``(classes, hole)`` on ``images``' device: ``classes`` N×H×W int64 (0 =
    background, else the id in ``model.classes``) and ``hole`` N×1×H×W float32 in {0, 1}
    (1 = any occluder class) — the mask an inpainter takes. Eval mode (BatchNorm running
    statistics), so each face's result does not depend on the rest of the batch; the model's
    train/eval mode is restored. Mixed precision (fp16 autocast) on CUDA when ``amp``.
    """
    check_images(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    size = int(model.size)
    device = next(model.parameters()).device
    h, w = images.shape[-2:]
    was_training = model.training
    model.eval()
    parts = []
    try:
        for chunk in images.split(batch_size):
            x = chunk.to(device)
            if (h, w) != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
                logits = model(x)
            classes = logits.float().argmax(1)
            if (h, w) != (size, size):
                classes = F.interpolate(classes[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
            parts.append(classes.to(images.device))
    finally:
        model.train(was_training)
    classes = torch.cat(parts) if parts else torch.zeros((0, h, w), dtype=torch.long, device=images.device)
    return classes, (classes != BACKGROUND)[:, None].float()
