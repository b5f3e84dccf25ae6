"""IResNet ArcFace backbones as insightface's ``recognition/arcface_torch`` trains them.

Independent plain-torch implementation whose ``state_dict()`` (keys, order, shapes, dtypes)
equals the official ``backbones/iresnet.py``, so a ``backbone.pth`` saved by arcface_torch
loads strictly; checked number for number against the ``arcface-r50``/``arcface-r100``
fidelity packs. Verifier spec: ``arcface:weights=backbone.pth[,arch=r50]``.

Input contract (:data:`INPUT`): 112×112 RGB, ``(x − 0.5) / 0.5`` on the [0, 1] scale (as
arcface_torch's ``inference.py``: ``img.div(255).sub(0.5).div(0.5)`` after BGR→RGB);
output the raw 512-d ``features`` BatchNorm1d activations (not normalised).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from recogbench.checkpoint import CheckpointError
from recogbench.verifiers.torch_backbone import Backbone, InputContract, TorchBackboneVerifier, blocks_per_stage

INPUT = InputContract(
    size=112, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), channel_order="RGB", normalised_output=False,
    source="insightface recognition/arcface_torch inference.py",
)

#: IBasicBlocks per stage for each published depth.
ARCHS: dict[str, tuple[int, int, int, int]] = {
    "r18": (2, 2, 2, 2),
    "r34": (3, 4, 6, 3),
    "r50": (3, 4, 14, 3),
    "r100": (3, 13, 30, 3),
    "r200": (6, 26, 60, 6),
}
STAGE_WIDTHS = (64, 128, 256, 512)
BN_EPS = 1e-5  # arcface_torch; mxnet-converted IResNets use 2e-5


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style block: BN → conv3×3 → BN → PReLU → conv3×3 (stride) → BN, plus
    the shortcut (1×1 conv + BN when the shape changes). No activation after the sum."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        # attribute order fixes the state_dict order: it must follow the official module
        self.bn1 = _bn(cin)
        self.conv1 = _conv3(cin, cout)
        self.bn2 = _bn(cout)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3(cout, cout, stride)
        self.bn3 = _bn(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (x if self.downsample is None else self.downsample(x))


class IResNet(Backbone):
    """IResNet with ``layers`` IBasicBlocks per stage; N×3×112×112 → N×``num_features`` raw.

    ``dropout`` is arcface_torch's training dropout before ``fc`` (identity in eval)."""

    def __init__(self, layers: tuple[int, ...] | list[int], num_features: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"IResNet needs four stages of at least one block, got {tuple(layers)}")
        self.layers = tuple(int(n) for n in layers)
        self.conv1 = _conv3(3, STAGE_WIDTHS[0])
        self.bn1 = _bn(STAGE_WIDTHS[0])
        self.prelu = nn.PReLU(STAGE_WIDTHS[0])
        cin = STAGE_WIDTHS[0]
        for i, (width, n) in enumerate(zip(STAGE_WIDTHS, self.layers), start=1):
            # every stage halves the resolution in its first block: 112 → 56 → 28 → 14 → 7
            blocks = [IBasicBlock(cin if j == 0 else width, width, 2 if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = width
        self.bn2 = _bn(STAGE_WIDTHS[-1])
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(STAGE_WIDTHS[-1] * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)
        # arcface_torch trains with this scale fixed at 1 (a parameter all the same, so it is in
        # the state dict); the loaded value is used as given
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad_(False)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×112×112 normalised → N×25088 (bn2 output flattened in C, H, W order)."""
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.bn2(x), 1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """N×25088 → N×num_features raw embeddings."""
        return self.features(self.fc(self.dropout(features)))


def iresnet(arch: str, num_features: int = 512) -> IResNet:
    """An untrained IResNet of a published depth: ``r18``, ``r34``, ``r50``, ``r100``, ``r200``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown IResNet arch {arch!r}; one of {', '.join(ARCHS)}")
    return IResNet(ARCHS[arch], num_features=num_features)


def infer_arch(state: dict[str, torch.Tensor], origin: str | Path = "state dict") -> str:
    """The published depth whose blocks per stage ``state`` holds; CheckpointError naming
    ``origin`` and what was found when none matches."""
    found = blocks_per_stage(state, ("layer1", "layer2", "layer3", "layer4"))
    for name, layers in ARCHS.items():
        if found == layers:
            return name
    known = "; ".join(f"{n} {list(v)}" for n, v in ARCHS.items())
    if not any(found):
        what = f"it has no layer1…layer4 keys (first keys: {', '.join(list(state)[:5])})"
    else:
        what = f"its blocks per stage are {list(found)}"
    raise CheckpointError(f"{origin}: cannot infer the IResNet arch from the {len(state)} state-dict entries: "
                          f"{what}, which match none of {known}. Pass arch= if it is one of them.")


class IResNetVerifier(TorchBackboneVerifier):
    """ArcFace IResNet (r18…r200, 512-d) from an arcface_torch ``backbone.pth``: ``arcface:weights=PATH[,arch=r50]``."""

    name = "arcface"
    family = "iresnet"
    contract = INPUT

    def __init__(self, weights: str | Path | None = None, *, arch: str | None = None, **kwargs: Any) -> None:
        if arch is not None and arch not in ARCHS:
            raise ValueError(f"arcface: arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        self.arch = arch
        super().__init__(weights, **kwargs)

    def _build(self, state: dict[str, torch.Tensor]) -> IResNet:
        inferred = None
        try:
            inferred = infer_arch(state, self.weights)
        except CheckpointError:
            if self.arch is None:
                raise
        if self.arch is not None and inferred is not None and inferred != self.arch:
            raise CheckpointError(f"{self.weights}: arch={self.arch} given, but the checkpoint holds an IResNet "
                                  f"{inferred} ({list(ARCHS[inferred])} blocks per stage)")
        self.arch = self.arch or inferred
        fc = state.get("fc.weight")
        # the embedding width follows the checkpoint (512 for every published model)
        width = int(fc.shape[0]) if isinstance(fc, torch.Tensor) and fc.ndim == 2 else 512
        return iresnet(self.arch, num_features=width)

    def _describe_model(self) -> str:
        return f"iresnet:{self.arch}"
