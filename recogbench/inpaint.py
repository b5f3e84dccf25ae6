"""The inpainter interface. Backends live in the top-level ``inpainters`` package.

Contract: images float32 N×3×H×W RGB in [0, 1]; masks float32 N×1×H×W, 1 = hole.
The harness resizes to a backend's native size and back, and composites the known
pixels back, so visible pixels never change whatever the backend returns.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F

from recogbench.device import resolve_device
from recogbench.verifiers.base import check_images


def check_masks(masks: torch.Tensor, images: torch.Tensor) -> None:
    """Raise ValueError unless ``masks`` is N×1×H×W matching ``images`` with values in {0, 1}."""
    if masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[0] != images.shape[0] or masks.shape[2:] != images.shape[2:]:
        raise ValueError(f"masks must be N×1×H×W matching images {tuple(images.shape)}, got {tuple(masks.shape)}")
    if masks.numel() and not torch.all((masks == 0) | (masks == 1)):
        raise ValueError("masks must be binary (0 = visible, 1 = hole)")


class Inpainter(abc.ABC):
    """Restores the masked pixels of aligned faces.

    Class attributes declare the backend's contract: ``native_size`` (None = any size),
    ``needs_identity`` (wants a reference face of the same person), ``needs_clean``
    (reads the unoccluded image: only the ``oracle`` upper bound), ``paper`` and ``license``.
    """

    name: str = "inpainter"
    native_size: int | None = None
    needs_identity: bool = False
    needs_clean: bool = False
    paper: str = ""
    license: str = ""

    def __init__(self, *, device: str = "auto") -> None:
        self.device = resolve_device(device)

    @abc.abstractmethod
    def _inpaint(
        self, images: torch.Tensor, masks: torch.Tensor, *, identity: torch.Tensor | None, clean: torch.Tensor | None
    ) -> torch.Tensor:
        """Backend prediction at ``native_size``; may change any pixel (the harness composites)."""

    def params(self) -> dict[str, str]:
        """What identifies this inpainter's outputs (name, weights digest…), for config hashes."""
        return {"inpainter": self.name}

    @torch.no_grad()
    def inpaint(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        *,
        identity: torch.Tensor | None = None,
        clean: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Restore holes; returns N×3×H×W float32 in [0, 1] with visible pixels unchanged."""
        check_images(images)
        check_masks(masks, images)
        if self.needs_identity and identity is None:
            raise ValueError(f"inpainter {self.name} needs an identity reference image")
        if self.needs_clean and clean is None:
            raise ValueError(f"inpainter {self.name} needs the clean images")
        h, w = images.shape[-2:]
        size = self.native_size
        x, m, ident, cl = images.to(self.device), masks.to(self.device), identity, clean
        if size is not None and (h, w) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            m = (F.interpolate(m, size=(size, size), mode="nearest") > 0).float()
            if ident is not None:
                ident = F.interpolate(ident.to(self.device), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            if cl is not None:
                cl = F.interpolate(cl.to(self.device), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        pred = self._inpaint(x, m, identity=ident, clean=cl).float().clamp(0, 1)
        if pred.shape[-2:] != (h, w):
            pred = F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        pred = pred.to(images.device)
        return torch.where(masks.bool(), pred, images)
