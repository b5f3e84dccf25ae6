"""How the fusor's regenerated face is put back into the picture.

The fusor regenerates the *whole* face, so a blend decides which of its pixels are kept:

* ``composite`` — the harness's hole-only composite (the fusor's pixels in the hole, the
  occluded image's visible pixels elsewhere). Reads nothing but the occluded image.
* ``poisson`` — seamless cloning (Pérez et al. 2003, ``cv2.seamlessClone``) of the fusor's
  output into the *occluded* image over the hole, mask in image orientation: the hole's
  colours are matched to the visible pixels around it. Reads nothing but the occluded image.
* ``published`` — what the official ``prepare_inpainted_datasets.py`` computes for its
  ``ca_id_fill`` images: seamless cloning into the *unoccluded original* with the hole mask
  transposed (H and W swapped). Wherever the transposed mask misses the hole, the original
  pixels come back (all of the ``mouth`` box, about 59 % of ``random_part``'s hole pixels),
  so it is not a recovery result; it exists to reproduce the published numbers.

All three work on one face at a time on 8-bit RGB (H, W, 3) arrays, as the official code does.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

BLENDS = ("composite", "poisson", "published")
READS_CLEAN = frozenset({"published"})
"""Blend modes that read the unoccluded image (rows marked, never ranked with honest ones)."""

_PAD = 8
"""Border added around a face before cloning: cv2.seamlessClone refuses or distorts a mask
whose bounding box touches the image border (occluders often reach the chin or the edge)."""


def to_pil_uint8(x: torch.Tensor) -> np.ndarray:
    """N×3×H×W in [-1, 1] → (N, H, W, 3) uint8 as torchvision's ``ToPILImage`` makes it from
    ``(x + 1) / 2``: clamped to [0, 1], times 255, **truncated** (not rounded)."""
    y = ((x.float() + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).cpu().numpy()


def _seamless(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``cv2.seamlessClone(src, dst, mask, centre of mask's bounding box, NORMAL_CLONE)`` on RGB
    uint8 (H, W, 3) images and a uint8 (H, W) mask (255 = clone), returned as RGB.

    The official code passes BGR images; the Poisson solve is per channel, so the channel
    order does not change any value, but the conversion is kept for an exact match."""
    if not mask.any():
        return dst.copy()
    x, y, w, h = cv2.boundingRect(mask)
    centre = (x + w // 2, y + h // 2)
    out = cv2.seamlessClone(cv2.cvtColor(src, cv2.COLOR_RGB2BGR), cv2.cvtColor(dst, cv2.COLOR_RGB2BGR),
                            mask, centre, cv2.NORMAL_CLONE)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def published_blend(output: np.ndarray, clean: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The official ``blending(target, output, mask.transpose(2, 1, 0))``: ``output`` (H, W, 3)
    uint8 cloned into the clean face ``clean`` over the **transposed** hole ``hole`` (H, W) bool.
    Square faces only (112×112), as in the official code."""
    if hole.shape[0] != hole.shape[1]:
        raise ValueError(f"the published blend transposes the mask and needs square faces, got {hole.shape}")
    mask = np.ascontiguousarray(hole.T).astype(np.uint8) * 255
    return _seamless(output, clean, mask)


def poisson_blend(output: np.ndarray, occluded: np.ndarray, hole: np.ndarray, *, dilate: int = 2) -> np.ndarray:
    """``output`` (H, W, 3) uint8 seamlessly cloned into ``occluded`` over ``hole`` (H, W) bool.

    The clone region is the hole dilated by ``dilate`` pixels, so that its boundary values —
    which a Poisson solve copies from the destination — are visible face pixels and never the
    occluder. The destination is the occluded face with the hole already filled by ``output``
    (identical outside the hole), padded by reflection, so a hole at the image border clones
    like any other without reflecting occluder pixels into the boundary. Only hole pixels of
    the result are meant to be used (the harness composites)."""
    h, w = hole.shape
    region = hole.astype(np.uint8)
    if dilate > 0:
        region = cv2.dilate(region, np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8))
    pad = ((_PAD, _PAD), (_PAD, _PAD), (0, 0))
    src = np.pad(output, pad, mode="reflect")
    dst = np.pad(np.where(hole[..., None], output, occluded), pad, mode="reflect")
    mask = np.pad(region * 255, pad[:2], mode="constant")
    return _seamless(src, dst, mask)[_PAD:_PAD + h, _PAD:_PAD + w]
