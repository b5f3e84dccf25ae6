"""VGG16 ``features`` in plain torch, for perceptual and style losses.

The module's parameter names are exactly those of torchvision's ``vgg16().features``
(``features.0.weight`` … ``features.28.bias``), so a user's torchvision VGG16 state dict —
a ``.pth`` read with ``weights_only=True`` or a ``.safetensors`` file — loads with
:func:`recogbench.checkpoint.load_into`. No weights ship with the project and none are
downloaded: they come only from a path the user gives.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from recogbench.checkpoint import CheckpointError, load_into, load_state

# torchvision's cfg "D": channel counts, "M" = 2×2 max-pool.
_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

#: Index in ``features`` of each named ReLU output.
LAYERS: dict[str, int] = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """VGG16 convolutional trunk returning the activations of ``layers``.

    Input: N×3×H×W RGB in [0, 1] (ImageNet normalisation is applied inside).
    Output: one tensor per requested layer, in the order given; only the trunk up to the
    deepest requested layer runs.
    """

    def __init__(self, layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG16 layers {unknown}; choose from {list(LAYERS)}")
        modules: list[nn.Module] = []
        cin = 3
        for item in _CFG:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(cin, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                cin = int(item)
        self.features = nn.Sequential(*modules)
        self.layers = tuple(layers)
        self._wanted = {LAYERS[name]: k for k, name in enumerate(layers)}
        self._last = max(self._wanted)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: list[torch.Tensor | None] = [None] * len(self._wanted)
        for i, module in enumerate(self.features):
            h = module(h)
            if i in self._wanted:
                out[self._wanted[i]] = h
            if i == self._last:
                break
        return [t for t in out if t is not None]


def normalise_vgg16_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a VGG16 state dict onto :class:`VGG16Features` names.

    Drops ``classifier.*`` keys, strips a DataParallel ``module.`` prefix and adds the
    ``features.`` prefix to bare ``<index>.weight``/``<index>.bias`` keys.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key[7:] if key.startswith("module.") else key
        if k.startswith("classifier."):
            continue
        if re.fullmatch(r"\d+\.(weight|bias)", k):
            k = "features." + k
        out[k] = value
    return out


def load_vgg16(
    path: str | Path, layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")
) -> tuple[VGG16Features, str]:
    """A frozen, eval-mode :class:`VGG16Features` with weights from ``path``, and the file's sha256.

    ``path``: torchvision VGG16 weights (``.pth``/``.pt`` loaded weights-only, or
    ``.safetensors``). A file of another architecture raises
    :class:`~recogbench.checkpoint.CheckpointError` naming the keys at fault.
    """
    path = Path(path).expanduser()
    state, _ = load_state(path)
    state = normalise_vgg16_keys(state)
    if not state:
        raise CheckpointError(f"{path}: no VGG16 feature weights found (only classifier keys?)")
    model = VGG16Features(layers)
    load_into(model, state, path)
    model.eval().requires_grad_(False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return model, digest


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix N×C×C of N×C×H×W features, normalised by C·H·W (Gatys et al.; Liu et al. 2018)."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w).float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def perceptual_and_style(
    vgg: VGG16Features, output: torch.Tensor, composite: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Liu et al. 2018 perceptual and style losses (scalars, unweighted).

    Perceptual: Σ_layers L1(φ(out), φ(gt)) + L1(φ(comp), φ(gt)); style: the same on Gram
    matrices. All inputs N×3×H×W in [0, 1]; the target's features carry no gradient.
    """
    with torch.no_grad():
        f_gt = vgg(target)
    f_out, f_comp = vgg(output), vgg(composite)
    perceptual = output.new_zeros((), dtype=torch.float32)
    style = output.new_zeros((), dtype=torch.float32)
    for a, b, g in zip(f_out, f_comp, f_gt):
        perceptual = perceptual + F.l1_loss(a.float(), g.float()) + F.l1_loss(b.float(), g.float())
        gg = gram(g)
        style = style + F.l1_loss(gram(a), gg) + F.l1_loss(gram(b), gg)
    return perceptual, style
