"""Weight-free reference inpainters."""

from __future__ import annotations

import torch

from recogbench.inpaint import Inpainter


class NoInpainter(Inpainter):
    """The occluded image as is: the lower reference every inpainter must beat."""

    name = "none"
    cpu_stage = True

    def _inpaint(self, images, masks, *, identity, clean):
        return images


class OracleInpainter(Inpainter):
    """The clean image itself: the upper bound of any restoration."""

    name = "oracle"
    needs_clean = True

    def _inpaint(self, images: torch.Tensor, masks: torch.Tensor, *, identity, clean: torch.Tensor) -> torch.Tensor:
        return clean
