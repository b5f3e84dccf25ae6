"""The verifier interface and the input contract, checked once here."""

from __future__ import annotations

import abc
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from recogbench.tensors import check_images


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (model identity for fingerprints and the self-grading guard)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class Verifier(abc.ABC):
    """Batched face embedder.

    ``embed`` takes float32 N×3×H×W RGB in [0, 1] (ArcFace-aligned faces, usually
    112×112) and returns float32 N×D L2-normalised embeddings as a numpy array.
    Subclasses implement :meth:`_forward` at their native ``input_size``.
    """

    name: str = "verifier"
    input_size: int = 112

    def __init__(self, *, flip: bool = False) -> None:
        self.flip = flip

    @abc.abstractmethod
    def _forward(self, images: torch.Tensor) -> np.ndarray:
        """Raw (unnormalised) embeddings, (N, D), for N×3×S×S float32 [0, 1] at ``input_size``."""

    @property
    @abc.abstractmethod
    def model_digest(self) -> str:
        """sha256 of the weights file (identifies the model across paths)."""

    @property
    def runtime(self) -> str:
        """What actually executes the model, e.g. ``onnxruntime:CUDAExecutionProvider``."""
        return "torch:cpu"

    @property
    def fingerprint(self) -> str:
        """Identity of everything that determines the embeddings (for caches and config hashes)."""
        return f"{self.name}:{self.model_digest[:16]}:{self.input_size}:flip={int(self.flip)}{self._extra_fingerprint()}"

    def _extra_fingerprint(self) -> str:
        return ""

    def embed(self, images: torch.Tensor) -> np.ndarray:
        """Embed a batch; see the class docstring for the contract."""
        check_images(images)
        if len(images) == 0:
            return np.zeros((0, 0), np.float32)
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = F.interpolate(
                images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True
            ).clamp_(0, 1)
        feats = np.asarray(self._forward(images), dtype=np.float32)
        if self.flip:
            feats = feats + np.asarray(self._forward(images.flip(-1)), dtype=np.float32)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        bad = ~np.isfinite(feats).all(axis=1) | (norms[:, 0] == 0)
        if bad.any():
            raise FloatingPointError(
                f"verifier {self.name} produced non-finite or zero embeddings for batch items "
                f"{np.flatnonzero(bad)[:10].tolist()}"
            )
        return feats / norms
