"""ID-Inpainter's identity "Sampler" Z: a plain IR-ResNet with a 256-d output, and its
ArcFace training head.

The official sampler is ``model/CBAM.py: CBAMResNet(50, feature_dim=256, mode='ir')``,
shipped as ``sampler/Resnet50_70000_net.pth`` (a bare state_dict). In ``'ir'`` mode it has no
attention modules; this module rebuilds it from its published key names and shapes:

* ``input_layer``: conv3×3 (3→64, stride 1, no bias), BatchNorm2d, PReLU;
* four stages ``layer1``–``layer4`` (64, 128, 256, 512 channels; IR-50: 3, 4, 14, 3 blocks).
  The first block of EVERY stage (``layer1`` included) halves the resolution and has a
  projection shortcut (1×1 conv with stride 2, BatchNorm2d); its residual branch is
  BN → conv3×3 → BN → PReLU → conv3×3 (stride) → BN, with nothing after the sum;
* ``output_layer``: BatchNorm2d(512), Dropout(0.4), flatten in (C, H, W) order,
  Linear(512·7·7 → feature_dim), BatchNorm1d(feature_dim).

Input N×3×112×112 RGB in [-1, 1] (``(x - 0.5) / 0.5``); output the raw N×feature_dim vector,
NOT normalised (the Fusor applies ``F.normalize``). BatchNorm eps 1e-5 everywhere.

``width`` (64 in the official model) scales every stage for cheap experiments and tests;
the default reproduces the official state_dict keys, shapes and order exactly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ArcMarginProduct", "BlockIR", "SAMPLER_CHECKPOINT_FORMAT", "Sampler", "STAGE_UNITS", "sampler_from_state"]

STAGE_UNITS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
"""Blocks per stage of the IR-ResNets ``CBAMResNet(num_layers, mode='ir')`` builds."""

SAMPLER_CHECKPOINT_FORMAT = "recogbench-id-inpainter-sampler-v1"


class BlockIR(nn.Module):
    """One IR bottleneck: ``res_layer`` (BN, conv, BN, PReLU, conv(stride), BN) plus the
    identity, or a projection ``shortcut_layer`` (1×1 conv(stride), BN) when the block
    changes resolution or width."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, projection: bool) -> None:
        super().__init__()
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.PReLU(out_ch),
            nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut_layer: nn.Module | None = None
        if projection:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut_layer is None else self.shortcut_layer(x)
        return self.res_layer(x) + shortcut


class Sampler(nn.Module):
    """The identity encoder Z (``CBAMResNet(num_layers, feature_dim, mode='ir')``).

    ``forward(x)``: N×3×112×112 in [-1, 1] → N×feature_dim raw features (not normalised).
    """

    def __init__(self, num_layers: int = 50, feature_dim: int = 256, *, width: int = 64, drop_ratio: float = 0.4) -> None:
        super().__init__()
        if num_layers not in STAGE_UNITS:
            raise ValueError(f"num_layers must be one of {sorted(STAGE_UNITS)}, got {num_layers}")
        if width < 1 or feature_dim < 1:
            raise ValueError(f"width and feature_dim must be positive (got {width}, {feature_dim})")
        self.num_layers, self.feature_dim, self.width = num_layers, feature_dim, width
        chans = [width, width, 2 * width, 4 * width, 8 * width]
        self.input_layer = nn.Sequential(nn.Conv2d(3, chans[0], 3, 1, 1, bias=False), nn.BatchNorm2d(chans[0]), nn.PReLU(chans[0]))
        for i, units in enumerate(STAGE_UNITS[num_layers]):
            blocks = [BlockIR(chans[i], chans[i + 1], 2, True)]
            blocks += [BlockIR(chans[i + 1], chans[i + 1], 1, False) for _ in range(units - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(chans[4]),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(chans[4] * 7 * 7, feature_dim),
            nn.BatchNorm1d(feature_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.output_layer(x)

    def architecture(self) -> dict[str, Any]:
        """JSON-able constructor arguments (recorded in checkpoints)."""
        return {"num_layers": self.num_layers, "feature_dim": self.feature_dim, "width": self.width}


def sampler_from_state(state: dict[str, torch.Tensor], origin: str = "sampler checkpoint") -> Sampler:
    """A :class:`Sampler` shaped like ``state`` (depth, width and feature size read from its
    keys), with ``state`` loaded strictly; e.g. the official ``Resnet50_70000_net.pth`` or a
    ``last.safetensors`` of the ``sampler`` training stage. Raises CheckpointError on a
    state that is not an IR sampler."""
    from recogbench.checkpoint import CheckpointError, load_into

    try:
        width = int(state["input_layer.0.weight"].shape[0])
        feature_dim = int(state["output_layer.4.weight"].shape[0])
        units = tuple(1 + max(int(k.split(".")[1]) for k in state if k.startswith(f"layer{i}.")) for i in range(1, 5))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{origin}: not an ID-Inpainter sampler (IR-ResNet) state dict ({exc})") from exc
    depth = next((n for n, u in STAGE_UNITS.items() if u == units), None)
    if depth is None:
        raise CheckpointError(f"{origin}: blocks per stage {units} match no IR-ResNet ({STAGE_UNITS})")
    model = Sampler(depth, feature_dim, width=width)
    load_into(model, state, origin)
    return model


class ArcMarginProduct(nn.Module):
    """ArcFace additive angular margin head (Deng et al., CVPR 2019): logits
    ``s · cos(θ_y + m)`` for the true class and ``s · cos θ_j`` for the others, with θ the
    angle between the L2-normalised feature and class centre. As in the reference
    implementations, where ``θ_y + m`` would pass π (``cos θ_y ≤ cos(π - m)``) the target
    logit is ``cos θ_y - m·sin m`` instead, which keeps it monotonic in θ.

    ``forward(x, labels)`` returns the scaled logits (feed them to cross-entropy);
    ``cosine(x)`` the plain cosines (for accuracy).
    """

    def __init__(self, in_features: int, out_features: int, s: float = 64.0, m: float = 0.5) -> None:
        super().__init__()
        self.in_features, self.out_features, self.s, self.m = in_features, out_features, float(s), float(m)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.th, self.mm = math.cos(math.pi - m), math.sin(math.pi - m) * m

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x.float()), F.normalize(self.weight.float()))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(x).clamp(-1.0, 1.0)
        sin = (1.0 - cos * cos).clamp_min(0.0).sqrt()
        phi = cos * self.cos_m - sin * self.sin_m
        phi = torch.where(cos > self.th, phi, cos - self.mm)
        one_hot = F.one_hot(labels.long(), self.out_features).to(cos.dtype)
        return self.s * (one_hot * phi + (1.0 - one_hot) * cos)
