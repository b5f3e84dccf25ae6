"""MobileFaceNet as ID-Inpainter ships it (``arcface/face_model.py``, ``MobileFaceNet(512)``).

Independent plain-torch implementation whose ``state_dict()`` equals ID-Inpainter's (the
``Conv_block``/``Depth_Wise``/``Residual`` naming of the InsightFace_Pytorch lineage — *not*
insightface's ``get_mbf``, whose keys differ); checked number for number against the
``mobilefacenet`` fidelity pack. Verifier spec: ``mobilefacenet:weights=PATH``.

Input contract (:data:`INPUT`): 112×112 RGB, ``(x − 0.5) / 0.5`` on the [0, 1] scale
(``ToTensor`` + ``Normalize(0.5, 0.5)`` in ID-Inpainter's ``lfw_arc_test.py``); output
512-d, already L2-normalised by the network.
"""

from __future__ import annotations

import torch
from torch import nn

from recogbench.checkpoint import CheckpointError
from recogbench.verifiers.torch_backbone import Backbone, InputContract, TorchBackboneVerifier

INPUT = InputContract(
    size=112, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), channel_order="RGB", normalised_output=True,
    source="ID-Inpainter lfw_arc_test.py",
)


class ConvBN(nn.Module):
    """conv (no bias) → BN, then PReLU unless ``linear``; keys ``conv``, ``bn``, ``prelu``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1, linear: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = None if linear else nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.prelu is None else self.prelu(x)


class DepthWise(nn.Module):
    """Inverted bottleneck: 1×1 expand to ``hidden`` → depthwise 3×3 (stride) → linear 1×1
    project; the shortcut only inside :class:`ResidualStack`."""

    def __init__(self, cin: int, cout: int, hidden: int, stride: int, residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        self.conv = ConvBN(cin, hidden)
        self.conv_dw = ConvBN(hidden, hidden, 3, stride=stride, padding=1, groups=hidden)
        self.project = ConvBN(hidden, cout, linear=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        return x + y if self.residual else y


class ResidualStack(nn.Module):
    """``n`` stride-1 residual :class:`DepthWise` blocks; keys ``model.<i>.*``."""

    def __init__(self, channels: int, n: int, hidden: int) -> None:
        super().__init__()
        self.model = nn.Sequential(*(DepthWise(channels, channels, hidden, 1, residual=True) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MobileFaceNet(Backbone):
    """ID-Inpainter's MobileFaceNet: N×3×112×112 → N×``embedding_size`` L2-normalised."""

    def __init__(self, embedding_size: int = 512) -> None:
        super().__init__()
        self.conv1 = ConvBN(3, 64, 3, stride=2, padding=1)                # 112 → 56
        self.conv2_dw = ConvBN(64, 64, 3, padding=1, groups=64)
        self.conv_23 = DepthWise(64, 64, 128, stride=2)                     # 56 → 28
        self.conv_3 = ResidualStack(64, 4, 128)
        self.conv_34 = DepthWise(64, 128, 256, stride=2)                    # 28 → 14
        self.conv_4 = ResidualStack(128, 6, 256)
        self.conv_45 = DepthWise(128, 128, 512, stride=2)                   # 14 → 7
        self.conv_5 = ResidualStack(128, 2, 256)
        self.conv_6_sep = ConvBN(128, 512)
        self.conv_6_dw = ConvBN(512, 512, 7, groups=512, linear=True)      # 7 → 1, no padding
        self.linear = nn.Linear(512, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×112×112 normalised → N×512 (conv_6_dw output flattened)."""
        for stage in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                      self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
            x = stage(x)
        return torch.flatten(x, 1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """N×512 → N×embedding_size, L2-normalised as the original (plain x / ‖x‖, no epsilon)."""
        x = self.bn(self.linear(features))
        return x / torch.norm(x, 2, 1, keepdim=True)


class MobileFaceNetVerifier(TorchBackboneVerifier):
    """ID-Inpainter's MobileFaceNet (512-d) from its weights file: ``mobilefacenet:weights=PATH``."""

    name = "mobilefacenet"
    family = "mobilefacenet"
    contract = INPUT

    def _build(self, state: dict[str, torch.Tensor]) -> MobileFaceNet:
        linear = state.get("linear.weight")
        if "layer1.0.bn1.weight" in state and "fc.weight" in state:
            raise CheckpointError(f"{self.weights}: an IResNet (arcface_torch backbone), not ID-Inpainter's "
                                  "MobileFaceNet: use --verifier arcface:weights=PATH")
        if not isinstance(linear, torch.Tensor) or linear.ndim != 2:
            return MobileFaceNet()  # load_into then names the missing and unexpected keys
        return MobileFaceNet(embedding_size=int(linear.shape[0]))
