"""VGG16 and VGG19 ``features`` in plain torch, for perceptual and style losses.

The modules' parameter names are exactly those of torchvision's ``vgg16().features`` /
``vgg19().features`` (``features.0.weight`` … ``features.28.bias`` for VGG16, 26 entries;
… ``features.34.bias`` for VGG19, 32 entries), so a user's torchvision state dict — a ``.pth``
such as ``vgg16-397923af.pth`` / ``vgg19-dcbb9e9d.pth`` read with ``weights_only=True``, or a
``.safetensors`` file, with or without its ``classifier.*`` keys — loads with
:func:`recogbench.checkpoint.load_into`. No weights ship with the project and none are
downloaded: they come only from a path the user gives.

Layer names: ``relu{block}_{k}`` is the ReLU after the k-th convolution of block ``block``
(blocks end with a 2×2 max-pool), e.g. VGG16 ``relu3_3`` = ``features[15]``, VGG19
``relu3_4`` = ``features[17]``, ``relu5_2`` = ``features[31]``; ``pool{block}`` is that
block's max-pool output (VGG16 ``pool1``, ``pool2``, ``pool3`` = ``features[4]``, ``[9]``,
``[16]``: the layers of Liu et al.'s partial-convolution losses).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from recogbench.checkpoint import CheckpointError, load_into, load_state

#: torchvision's configurations: channel counts, "M" = 2×2 max-pool ("D" = VGG16, "E" = VGG19).
CFGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def relu_indices(cfg: tuple[int | str, ...]) -> dict[str, int]:
    """``{"relu1_1": 1, "relu1_2": 3, …}``: the index in ``features`` of every named ReLU of ``cfg``."""
    out: dict[str, int] = {}
    index, block, k = 0, 1, 0
    for item in cfg:
        if item == "M":
            index, block, k = index + 1, block + 1, 0
        else:
            k += 1
            out[f"relu{block}_{k}"] = index + 1   # Conv2d at ``index``, its ReLU right after
            index += 2
    return out


def pool_indices(cfg: tuple[int | str, ...]) -> dict[str, int]:
    """``{"pool1": 4, "pool2": 9, …}``: the index in ``features`` of every block's max-pool of ``cfg``."""
    out: dict[str, int] = {}
    index, block = 0, 1
    for item in cfg:
        if item == "M":
            out[f"pool{block}"] = index
            index, block = index + 1, block + 1
        else:
            index += 2   # Conv2d, ReLU
    return out


def layer_indices(cfg: tuple[int | str, ...]) -> dict[str, int]:
    """Every named layer of ``cfg`` (``relu{b}_{k}`` and ``pool{b}``) → its index in ``features``."""
    return {**relu_indices(cfg), **pool_indices(cfg)}


#: Index in VGG16's ``features`` of each named ReLU output.
LAYERS: dict[str, int] = relu_indices(CFGS["vgg16"])
#: Index in VGG19's ``features`` of each named ReLU output.
VGG19_LAYERS: dict[str, int] = relu_indices(CFGS["vgg19"])

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """A torchvision VGG convolutional trunk (``arch`` = ``vgg16`` or ``vgg19``) returning the
    activations of ``layers``.

    Input: N×3×H×W RGB in [0, 1] (ImageNet normalisation is applied inside).
    ``layers``: ``relu{b}_{k}`` or ``pool{b}`` names (:func:`layer_indices`).
    Output: one tensor per requested layer, in the order given; only the trunk up to the
    deepest requested layer runs.
    """

    arch = "vgg16"

    def __init__(self, layers: tuple[str, ...], arch: str | None = None) -> None:
        super().__init__()
        arch = arch or type(self).arch
        if arch not in CFGS:
            raise ValueError(f"unknown VGG architecture {arch!r}; choose from {list(CFGS)}")
        self.arch = arch
        names = layer_indices(CFGS[arch])
        unknown = [name for name in layers if name not in names]
        if unknown or not layers:
            raise ValueError(f"unknown {arch.upper()} layers {unknown}; choose from {list(names)}")
        modules: list[nn.Module] = []
        cin = 3
        for item in CFGS[arch]:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(cin, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                cin = int(item)
        self.features = nn.Sequential(*modules)
        self.layers = tuple(layers)
        self._wanted = {names[name]: k for k, name in enumerate(layers)}
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


class VGG16Features(VGGFeatures):
    """VGG16 convolutional trunk (torchvision names, 26 state-dict entries) returning the
    activations of ``layers``; see :class:`VGGFeatures`."""

    arch = "vgg16"

    def __init__(self, layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")) -> None:
        super().__init__(layers, "vgg16")


class VGG19Features(VGGFeatures):
    """VGG19 convolutional trunk (torchvision names, 32 state-dict entries) returning the
    activations of ``layers``; see :class:`VGGFeatures`. The default layers are IFACENET's:
    content ``relu1_1 … relu4_1`` and style ``relu2_2, relu3_4, relu4_4, relu5_2``."""

    arch = "vgg19"

    def __init__(self, layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1",
                                                  "relu2_2", "relu3_4", "relu4_4", "relu5_2")) -> None:
        super().__init__(layers, "vgg19")


def normalise_vgg_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision VGG state dict onto :class:`VGGFeatures` names.

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


normalise_vgg16_keys = normalise_vgg_keys
"""The same mapping under its earlier name."""


def _load_vgg(model: VGGFeatures, path: str | Path) -> tuple[VGGFeatures, str]:
    from recogbench.verifiers.base import file_digest

    path = Path(path).expanduser()
    state, _ = load_state(path)
    state = normalise_vgg_keys(state)
    if not state:
        raise CheckpointError(f"{path}: no {model.arch.upper()} feature weights found (only classifier keys?)")
    load_into(model, state, path)
    model.eval().requires_grad_(False)
    return model, file_digest(path)


def load_vgg16(
    path: str | Path, layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")
) -> tuple[VGG16Features, str]:
    """A frozen, eval-mode :class:`VGG16Features` with weights from ``path``, and the file's sha256.

    ``path``: torchvision VGG16 weights (``.pth``/``.pt`` loaded weights-only, or
    ``.safetensors``); ``layers``: ReLU or pool names (``pool1``…). A file of another architecture raises
    :class:`~recogbench.checkpoint.CheckpointError` naming the keys at fault.
    """
    model, digest = _load_vgg(VGG16Features(layers), path)
    return model, digest  # type: ignore[return-value]


def load_vgg19(path: str | Path, layers: tuple[str, ...] | None = None) -> tuple[VGG19Features, str]:
    """A frozen, eval-mode :class:`VGG19Features` (``layers``: default IFACENET's eight) with
    weights from ``path``, and the file's sha256.

    ``path``: torchvision VGG19 weights (``vgg19-dcbb9e9d.pth`` loaded weights-only, or
    ``.safetensors``; ``classifier.*`` keys are ignored). A VGG16 file or any other
    architecture raises :class:`~recogbench.checkpoint.CheckpointError` naming the keys at fault.
    """
    model, digest = _load_vgg(VGG19Features(layers) if layers else VGG19Features(), path)
    return model, digest  # type: ignore[return-value]


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix N×C×C of N×C×H×W features, normalised by C·H·W (Gatys et al.; Liu et al. 2018)."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w).float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def perceptual_and_style(
    vgg: VGGFeatures, output: torch.Tensor, composite: torch.Tensor, target: torch.Tensor
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
