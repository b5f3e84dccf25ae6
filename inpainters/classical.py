"""Classical, weight-free inpainters: the mean-colour fill and OpenCV's two PDE methods."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from recogbench.inpaint import Inpainter
from recogbench.tensors import to_tensor, to_uint8


class FillInpainter(Inpainter):
    """Holes filled with the mean colour of each face's visible pixels."""

    name = "fill"
    cpu_stage = True

    def _inpaint(self, images, masks, *, identity, clean):
        visible = 1.0 - masks
        count = visible.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        mean = (images * visible).sum(dim=(2, 3), keepdim=True) / count
        return mean.expand_as(images)


class _OpenCVInpainter(Inpainter):
    """cv2.inpaint per image on 8-bit RGB (CPU; the result returns to the batch's device)."""

    method: int = cv2.INPAINT_TELEA
    cpu_stage = True

    def __init__(self, *, radius: int = 5, device: str = "auto") -> None:
        super().__init__(device=device)
        if radius < 1:
            raise ValueError(f"radius must be >= 1, got {radius}")
        self.radius = int(radius)

    def params(self) -> dict[str, str]:
        return {"inpainter": self.name, "radius": str(self.radius)}

    def _inpaint(self, images, masks, *, identity, clean):
        faces = to_uint8(images)
        holes = masks[:, 0].to(torch.uint8).cpu().numpy()
        out = np.stack([cv2.inpaint(np.ascontiguousarray(f), np.ascontiguousarray(h), self.radius, self.method)
                        for f, h in zip(faces, holes)])
        return to_tensor(out, images.device)


class TeleaInpainter(_OpenCVInpainter):
    """OpenCV fast-marching inpainting (Telea 2004); option ``radius`` in pixels."""

    name = "telea"
    paper = "Telea, An image inpainting technique based on the fast marching method, 2004"
    license = "Apache-2.0 (OpenCV)"
    method = cv2.INPAINT_TELEA


class NavierStokesInpainter(_OpenCVInpainter):
    """OpenCV Navier-Stokes inpainting (Bertalmio et al. 2001); option ``radius`` in pixels."""

    name = "navier_stokes"
    paper = "Bertalmio, Bertozzi, Sapiro, Navier-Stokes, fluid dynamics, and image and video inpainting, 2001"
    license = "Apache-2.0 (OpenCV)"
    method = cv2.INPAINT_NS
