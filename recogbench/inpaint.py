"""The inpainter interface. Backends live in the top-level ``inpainters`` package.

Contract: images float32 N×3×H×W RGB in [0, 1]; masks float32 N×1×H×W, 1 = hole.
The harness resizes to a backend's native size and back, and composites the known
pixels back, so visible pixels never change whatever the backend returns — except for a
backend that declares ``composites = False``: one that reproduces a published pipeline that
blends differently (if it reads the clean image, ``needs_clean``, every row it produces says
so: ``reads_clean``), or a blind restorer that returns the whole generated face
(``unet-gan`` in blind mode; its rows record ``mode=blind``).
"""

from __future__ import annotations

import abc
from pathlib import Path

import torch
import torch.nn.functional as F

from recogbench.device import resolve_device
from recogbench.tensors import check_images, to_tensor, to_uint8


def check_masks(masks: torch.Tensor, images: torch.Tensor) -> None:
    """Raise ValueError unless ``masks`` is N×1×H×W matching ``images`` with values in {0, 1}."""
    if masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[0] != images.shape[0] or masks.shape[2:] != images.shape[2:]:
        raise ValueError(f"masks must be N×1×H×W matching images {tuple(images.shape)}, got {tuple(masks.shape)}")
    if masks.numel() and not torch.all((masks == 0) | (masks == 1)):
        raise ValueError("masks must be binary (0 = visible, 1 = hole)")


class Inpainter(abc.ABC):
    """Restores the masked pixels of aligned faces.

    Class (or instance) attributes declare the backend's contract: ``native_size`` (None =
    any size), ``needs_identity`` (wants a reference face of the same person),
    ``needs_clean`` (reads the unoccluded image: the ``oracle`` upper bound and published
    pipelines that leak it; such rows are never ranked with honest ones), ``composites``
    (False: the output replaces the whole image instead of only the hole), ``paper`` and
    ``license``. ``cpu_stage``: the backend is a cheap pure function of the occluded face and
    its mask computed on the CPU (no weights, no device), so runs restore with it where faces
    are decoded and occluded, in the ``--workers`` pool, instead of on the device.
    """

    name: str = "inpainter"
    native_size: int | None = None
    needs_identity: bool = False
    needs_clean: bool = False
    composites: bool = True
    cpu_stage: bool = False
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
        """Restore holes; returns N×3×H×W float32 in [0, 1] with visible pixels unchanged
        (unless the backend declares ``composites = False``)."""
        check_images(images)
        check_masks(masks, images)
        if self.needs_identity and identity is None:
            raise ValueError(f"inpainter {self.name} needs an identity reference image")
        if self.needs_clean and clean is None:
            raise ValueError(f"inpainter {self.name} needs the clean images")
        h, w = images.shape[-2:]
        size = self.native_size
        # Contiguous NCHW whatever the caller's strides (channels-last is an explicit choice).
        x, m = images.to(self.device).contiguous(), masks.to(self.device).contiguous()
        ident, cl = identity, clean
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
        if not self.composites:
            return pred
        return torch.where(masks.bool(), pred, images)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def inpaint_folder(
    inpainter: Inpainter, images: str | Path, masks: str | Path, out: str | Path, *, batch_size: int = 32
) -> list[Path]:
    """Restore every image in ``images`` using the mask of the same stem in ``masks``
    (any image format; > 127 = hole) and write PNGs of the same stem to ``out``.

    Every problem (unreadable image, missing or mis-sized mask) is reported together,
    naming the files, before anything is written.
    """
    import cv2
    import numpy as np

    from recogbench.data import DataError
    from recogbench.fileio import atomic_write_bytes, ensure_writable_dir
    from recogbench.imageio import read_image

    images, masks, out = Path(images), Path(masks), Path(out)
    for folder in (images, masks):
        if not folder.is_dir():
            raise DataError(f"{folder}: not a folder")
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{images}: no images ({', '.join(IMAGE_SUFFIXES)})")
    mask_files = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    items, problems = [], []
    for path in files:
        mpath = mask_files.get(path.stem)
        try:
            img = read_image(path)
            if mpath is None:
                raise DataError(f"{path}: no mask named {path.stem}.* in {masks}")
            mask = read_image(mpath, mode="gray")
        except DataError as exc:
            problems.append(str(exc))
            continue
        if mask.shape != img.shape[:2]:
            problems.append(f"{mpath}: mask is {mask.shape[1]}×{mask.shape[0]}, image is {img.shape[1]}×{img.shape[0]}")
        else:
            items.append((path, img, (mask > 127).astype(np.float32)))
    if problems:
        raise DataError(f"{len(problems)} problem(s): " + "; ".join(problems[:5]) + (" …" if len(problems) > 5 else ""))
    out = ensure_writable_dir(out, "restored-images folder")  # before inpainting every image
    by_size: dict[tuple[int, int], list] = {}
    for item in items:
        by_size.setdefault(item[1].shape[:2], []).append(item)
    written = []
    for group in by_size.values():
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            x = to_tensor(np.stack([c[1] for c in chunk]))
            m = torch.from_numpy(np.stack([c[2] for c in chunk]))[:, None]
            y = inpainter.inpaint(x.to(inpainter.device), m.to(inpainter.device))
            faces = to_uint8(y)
            for (path, _, _), face in zip(chunk, faces):
                ok, buf = cv2.imencode(".png", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
                target = out / f"{path.stem}.png"
                atomic_write_bytes(target, buf.tobytes())
                written.append(target)
    return written
