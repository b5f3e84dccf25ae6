"""ResNet-50 (v1.5) in plain torch, with torchvision's exact module and parameter names.

torchvision cannot be imported in this project (its wheel is a CUDA build), so this is a
re-implementation of ``torchvision.models.resnet50`` that produces the same ``state_dict``
(keys, order, shapes, dtypes): ``conv1``, ``bn1``, ``layer1.0.conv1`` … ``layer4.2.bn3``,
``layerN.0.downsample.0/1`` and ``fc`` — 320 entries with ``fc`` (161 parameters: 53 convs,
53 BatchNorm γ/β pairs, ``fc`` weight and bias; 159 buffers: each BatchNorm's running mean,
running variance and ``num_batches_tracked``), 318 without. A torchvision ImageNet
file (``resnet50-0676ba61.pth``, V1, or ``resnet50-11ad3fa6.pth``, V2) therefore loads
strictly with :func:`load_imagenet_weights`; no weights ship with the project and none are
downloaded.

Architecture (torchvision's, "v1.5"): stem ``conv1`` 7×7/2 (no bias) → ``bn1`` → ReLU →
``maxpool`` 3×3/2 pad 1; four stages of Bottleneck blocks (3, 4, 6, 3 blocks; widths 64,
128, 256, 512; expansion 4) where the stride of a stage's first block sits on its **3×3**
conv (v1.5; Caffe-style v1 put it on the first 1×1); BatchNorm eps 1e-5, momentum 0.1;
``avgpool`` (adaptive 1×1) → ``fc`` 2048→1000.

Shapes for an N×3×H×W input (H, W multiples of 32; at 224: 112, 56, 28, 14, 7):

=========  ==================  =====================================================
name       channels            resolution (default / ``replace_stride_with_dilation``)
=========  ==================  =====================================================
stem       64 (after maxpool)  H/4
layer1     256                 H/4
layer2     512                 H/8   (H/4 if its stride is replaced: dilation 2)
layer3     1024                H/16  (H/8 with ``(False, True, True)``: dilation 2)
layer4     2048                H/32  (H/8 with ``(False, True, True)``: dilation 4)
=========  ==================  =====================================================

``replace_stride_with_dilation=(a, b, c)`` for layer2/3/4 follows torchvision exactly: a
replaced stage keeps stride 1, its first block's 3×3 conv uses the dilation *before* the
stage (``previous_dilation``) and its other blocks the multiplied one; the keys do not
change. ``(False, True, True)`` is DeepLabv3's output-stride-8 trunk (layer3 dilation 2,
layer4 dilation 4, first block of layer4 dilation 2).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from recogbench.checkpoint import CheckpointError, load_into, load_state

__all__ = ["Bottleneck", "ResNet50", "load_imagenet_weights", "STAGES"]

#: Output names of :meth:`ResNet50.forward_features`, in order.
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: 1×1 → 3×3 (stride, dilation) → 1×1 (×4), identity
    or ``downsample`` (1×1 conv with the stride + BN) shortcut, ReLU after the sum.

    Input N×``inplanes``×H×W → output N×(4·``planes``)×H/stride×W/stride. Parameter names
    ``conv1 bn1 conv2 bn2 conv3 bn3 downsample.0 downsample.1`` (one shared ``relu``)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    """torchvision ``resnet50`` (v1.5) with identical parameter names and child order
    (``conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc``).

    ``num_classes``: size of ``fc`` (1000 for ImageNet files); ``None`` builds no ``fc`` (a
    trunk: 318 state-dict entries instead of 320; :func:`load_imagenet_weights` then drops the
    file's ``fc.*``). ``replace_stride_with_dilation``: three booleans for layer2/3/4, as in
    torchvision. Initialisation as torchvision's (Kaiming-normal fan-out convs, BN γ=1 β=0).

    ``forward(x)``: N×3×H×W → logits N×``num_classes`` (global average pool, ``fc``), or the
    ``layer4`` map N×2048×H/32×W/32 (H/8 when dilated) when there is no ``fc``.
    ``forward_features(x)`` / ``features(x)``: every stage's output (see :data:`STAGES`).
    No input normalisation happens inside: ImageNet weights expect
    ``(x - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)`` for x in [0, 1].
    """

    layers_per_stage = (3, 4, 6, 3)

    def __init__(self, num_classes: int | None = 1000,
                 replace_stride_with_dilation: Sequence[bool] = (False, False, False)) -> None:
        super().__init__()
        replace = tuple(bool(r) for r in replace_stride_with_dilation)
        if len(replace) != 3:
            raise ValueError(f"replace_stride_with_dilation needs 3 booleans (layer2, layer3, layer4), got {replace}")
        self.replace_stride_with_dilation = replace
        self.inplanes = 64
        self.dilation = 1
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        blocks = self.layers_per_stage
        self.layer1 = self._make_layer(64, blocks[0])
        self.layer2 = self._make_layer(128, blocks[1], stride=2, dilate=replace[0])
        self.layer3 = self._make_layer(256, blocks[2], stride=2, dilate=replace[1])
        self.layer4 = self._make_layer(512, blocks[3], stride=2, dilate=replace[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes) if num_classes is not None else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, dilation=previous_dilation)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def trunk_modules(self) -> list[nn.Module]:
        """The children up to ``layer4`` (``conv1, bn1, relu, maxpool, layer1 … layer4``), i.e.
        torchvision's ``list(resnet.children())[:-2]``; shared, not copied."""
        return [self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_features(self, x: torch.Tensor, upto: str = "layer4") -> OrderedDict[str, torch.Tensor]:
        """Stage outputs ``{"stem": N×64×H/4, "layer1": N×256×H/4, "layer2": N×512×H/8,
        "layer3": N×1024×H/16, "layer4": N×2048×H/32}`` (dilated stages keep the previous
        resolution), computed up to and including ``upto``."""
        if upto not in STAGES:
            raise ValueError(f"upto must be one of {STAGES}, got {upto!r}")
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out["stem"] = x
        for name in STAGES[1:]:
            if upto in out:
                break
            x = getattr(self, name)(x)
            out[name] = x
        return out

    features = forward_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)["layer4"]
        if self.fc is None:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


def load_imagenet_weights(model: ResNet50, path: str | Path) -> ResNet50:
    """Load torchvision ImageNet weights (``resnet50-0676ba61.pth``, ``resnet50-11ad3fa6.pth``
    or any torchvision-named ResNet-50 state dict, ``.safetensors`` too) into ``model``,
    strictly, through :func:`recogbench.checkpoint.load_state` (``torch.load(weights_only=True)``,
    never running pickled code) and :func:`~recogbench.checkpoint.load_into`.

    The file's ``fc.*`` entries are used when ``model`` has an ``fc`` and dropped when it has
    none; every other key must match. Dilation does not change the keys, so the same file
    loads into a dilated trunk. Returns ``model``. Raises
    :class:`~recogbench.checkpoint.CheckpointError` naming the keys at fault."""
    path = Path(path).expanduser()
    state, _ = load_state(path)
    if model.fc is None:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if not state:
        raise CheckpointError(f"{path}: no ResNet-50 trunk weights found")
    load_into(model, state, path)
    return model
