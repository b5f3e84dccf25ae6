"""Shared machinery for recognisers re-implemented in plain torch (IResNet, MobileFaceNet).

A family module supplies the network (with ``trunk``/``head`` methods, see
:class:`Backbone`) and its :class:`InputContract`; :class:`TorchBackboneVerifier` loads the
weights with the project's safe reader, normalises the input as the contract says and runs
the network in the chosen precision and memory format. CPU and GPU take the same path; only
the device differs.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recogbench.checkpoint import load_into, load_state
from recogbench.device import resolve_device
from recogbench.verifiers.base import Verifier, file_digest

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class InputContract:
    """What a recogniser expects and returns, as data.

    ``mean``/``std`` are per-channel and apply on the [0, 1] scale in ``channel_order``:
    the network sees ``(x − mean) / std``. ``normalised_output``: whether the network's own
    output is already L2-normalised (the verifier normalises either way).
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"
    normalised_output: bool = False
    source: str = ""

    def describe(self) -> str:
        """One line for logs and docs, e.g. ``112px RGB (x-0.5)/0.5, raw output``."""
        mean = self.mean[0] if len(set(self.mean)) == 1 else self.mean
        std = self.std[0] if len(set(self.std)) == 1 else self.std
        out = "L2-normalised output" if self.normalised_output else "raw output"
        return f"{self.size}px {self.channel_order} (x-{mean})/{std}, {out}"


class Backbone(nn.Module):
    """A recogniser split where fp16 stops: ``trunk`` (convolutions, may run under autocast)
    and ``head`` (embedding layers, always float32, as arcface_torch's fp16 mode runs them)."""

    def trunk(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def head(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×S×S normalised input → N×D embeddings (raw or normalised per the contract)."""
        return self.head(self.trunk(x))


@contextlib.contextmanager
def _exact_fp32() -> Iterator[None]:
    # cuDNN convolutions default to TF32 (10-bit mantissa, ~1e-3 relative error) on Ampere+
    # GPUs; "fp32" in a fingerprint should mean fp32. The flags mean nothing on a CPU.
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


class TorchBackboneVerifier(Verifier):
    """A torch recogniser with weights from ``weights=PATH`` (torch file or safetensors).

    Options (all recorded in the fingerprint): ``precision`` ``fp32`` (exact float32, TF32
    off) or ``fp16`` (CUDA autocast over the trunk; refused on CPU); ``channels_last``
    (memory format of weights and input, on any device); ``key``/``prefix`` pick the state
    dict inside a training checkpoint (see :func:`recogbench.checkpoint.load_state`).
    """

    contract: InputContract
    family: str = "backbone"

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        precision: str = "fp32",
        channels_last: bool = False,
        key: str | None = None,
        prefix: str | None = None,
        device: str = "auto",
        flip: bool = False,
    ) -> None:
        super().__init__(flip=flip)
        if weights is None:
            raise ValueError(f"{self.name} needs weights: --verifier {self.name}:weights=PATH "
                             "(torch state dict, e.g. backbone.pth, or .safetensors)")
        self.weights = Path(weights).expanduser()
        if not self.weights.is_file():
            raise FileNotFoundError(f"{self.name} weights not found: {self.weights}")
        if precision not in PRECISIONS:
            raise ValueError(f"{self.name}: precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError(
                f"{self.name}: precision=fp16 needs a CUDA device (got {self.device}); CPU fp16 autocast is "
                "not what fp16 deployments run, so its numbers would mislead. Use precision=fp32 on CPU."
            )
        self.precision = precision
        self.channels_last = bool(channels_last)
        self.key, self.prefix = key, prefix
        self.input_size = self.contract.size
        state, _ = load_state(self.weights, key=key, prefix=prefix)
        model = self._build(state)
        load_into(model, state, self.weights)
        model = model.eval().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._mean = torch.tensor(self.contract.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.contract.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._digest = file_digest(self.weights)
        log.info("%s: %s from %s (%s; %s, channels_last=%d) on %s", self.name, self._describe_model(),
                 self.weights, self.contract.describe(), precision, self.channels_last, self.device)

    @abc.abstractmethod
    def _build(self, state: dict[str, torch.Tensor]) -> Backbone:
        """An untrained network of the architecture ``state`` holds (raise naming the file if none fits)."""

    def _describe_model(self) -> str:
        return self.family

    @property
    def model_digest(self) -> str:
        return self._digest

    @property
    def runtime(self) -> str:
        return f"torch:{self.device}"

    def _extra_fingerprint(self) -> str:
        picked = "".join(f":{k}={v}" for k, v in (("key", self.key), ("prefix", self.prefix)) if v)
        return f":{self._describe_model()}:precision={self.precision}:channels_last={int(self.channels_last)}{picked}"

    def raw_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network on already-normalised input (N×3×S×S, contract scale), float32 out;
        precision and memory format as configured. For tests and exports."""
        x = x.to(self.device, torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), _exact_fp32():
            if self.precision == "fp16":
                with torch.autocast(device_type=self.device.type, dtype=torch.float16):
                    features = self.model.trunk(x)
                return self.model.head(features.float()).float()
            return self.model(x).float()

    def _forward(self, images: torch.Tensor) -> np.ndarray:
        x = images.to(self.device, torch.float32)
        if self.contract.channel_order == "BGR":
            x = x.flip(1)
        return self.raw_forward((x - self._mean) / self._std).cpu().numpy()


def blocks_per_stage(state: dict[str, Any], stages: tuple[str, ...]) -> tuple[int, ...]:
    """Number of numbered sub-blocks under each stage prefix (``layer1`` → 3 for
    ``layer1.0.*``, ``layer1.1.*``, ``layer1.2.*``); 0 for an absent stage."""
    counts = []
    for stage in stages:
        head = stage + "."
        idx = {k[len(head):].split(".", 1)[0] for k in state if k.startswith(head)}
        counts.append(max((int(i) + 1 for i in idx if i.isdigit()), default=0))
    return tuple(counts)
