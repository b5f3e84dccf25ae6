"""Face under-mask reconstruction: a dual-encoder partial-convolution GAN.

Generator: a partial-convolution encoder (Liu et al. 2018, image + validity mask) runs in
parallel with a plain-convolution ("vanilla") encoder fed image + mask (4 channels); their
bottleneck features are concatenated and fused by an atrous (dilated) residual block; one
decoder with skip connections from both encoders (concatenated) restores the face through a
sigmoid to [0, 1]. Two discriminators judge the whole face (global) and a square crop
around the hole's bounding box (local). Losses: L1 on valid and on hole pixels, VGG16
perceptual and style terms (only with user given VGG16 weights), total variation on the
hole border, and adversarial terms.

Every part is an option (:data:`OPTIONS`; ``recogbench train pconv-gan:KEY=VALUE,…``, and
``--preset``, ``--branch``, ``--init-from``), and the defaults are the original architecture, so
existing checkpoints load and compute what they always did. The ``under-mask`` preset
(:data:`PRESETS`) selects the published design of "Face Under-Mask Reconstruction"
(Helwan University, 2023):

* partial branch — stride-2 partial convolutions (7×7, 5×5, 5×5, then 3×3) with the mask
  updated at every level, BatchNorm (all but the first level), ReLU (``partial_norm``,
  ``partial_act``); a partial-convolution decoder (``decoder=partial``: upsample features
  and masks, concatenate with the skips and their masks, 3×3 partial conv, BatchNorm,
  LeakyReLU 0.2, last level to RGB);
* vanilla branch — U-Net blocks of two 3×3 convolutions (ReLU, he-normal) and a 2×2
  max-pool, Dropout 0.5 in the blocks ``vanilla_dropout`` (``vanilla=unet``); alone it has
  the U-Net decoder (upsample, 2×2 conv, concatenate, two 3×3 convs, sigmoid);
* the fused model concatenates both encoder outputs into :class:`AtrousFusion`;
* discriminators as listed (``discriminator=dense``): five 4×4 stride-2 convolutions
  (32…512, LeakyReLU 0.2), Flatten, two Dense-4096 (ReLU), Dropout 0.2, Dense-1, sigmoid,
  trained with binary cross-entropy (``gan_loss=bce``); global and local;
* Liu et al.'s loss weights on VGG16 ``pool1``–``pool3``, Adam lr 5e-5, β (0.9, 0.999),
  batch 4, 256×256 faces.

Branches can be trained alone (``branch=partial|vanilla``) and the fused model fine-tuned
from both checkpoints (:func:`init_generator`).

Mask convention. The harness's masks are 1 = hole. Partial convolutions work on
*validity* masks, 1 = known pixel: :class:`Generator` converts once (``valid = 1 - hole``)
and :class:`PartialConv2d` takes the validity mask.

Sizes. The design works at 256×256 with ``base_channels=64``; the defaults here
(``base_channels=32``, 112×112, the harness's aligned face) keep CPU training practical.
Any input size works: the decoder resizes to each skip's size, so odd sizes
(112 → 56 → 28 → 14 → 7) are fine.

Train with ``recogbench train pconv-gan`` (:func:`recogbench.train.train`); the resulting
``last.safetensors`` is what :class:`PConvGAN` loads.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inpainters.layers.crops import crop_boxes
from recogbench.checkpoint import CheckpointError, load_into, load_state, load_states, save_state
from recogbench.inpaint import Inpainter
from recogbench.verifiers.base import file_digest

if TYPE_CHECKING:
    from recogbench.train import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "recogbench-pconv-gan/1"
PERCEPTUAL_DISABLED = "disabled (no VGG16 weights given)"


# --------------------------------------------------------------------------- partial conv


class PartialConv2d(nn.Module):
    """Partial convolution (Liu et al. 2018) with a validity mask.

    ``forward(x, valid)``: ``x`` N×C×H×W, ``valid`` in {0, 1}, 1 = known pixel, either
    N×1×H×W (one mask shared by all channels) or N×C×H×W (one per channel, as in Liu et
    al.'s decoder, whose input concatenates features with different holes). Per output
    window with ``sum(M) > 0``: ``out = W·(X ⊙ M) · sum(1)/sum(M) + b``; where ``sum(M) = 0``
    the output is exactly 0 (no bias). ``sum(1)`` is the window size k_h·k_w times the mask's
    channel count, ``sum(M)`` the valid taps over the window and the mask's channels (zero
    padding counts as invalid). Returns ``(out, new_valid)`` with ``new_valid = 1[sum(M) > 0]``,
    N×1×H'×W'.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("ones", torch.ones(1, 1, kernel_size, kernel_size), persistent=False)
        self.window = float(kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channels = valid.shape[1]
        if channels not in (1, x.shape[1]):
            raise ValueError(f"PartialConv2d: mask has {channels} channels; expected 1 or {x.shape[1]} (the input's)")
        with torch.no_grad():
            m = valid.to(self.ones.dtype)
            if channels > 1:
                m = m.sum(1, keepdim=True)
            count = F.conv2d(m, self.ones, stride=self.conv.stride, padding=self.conv.padding, dilation=self.conv.dilation)
            new_valid = (count > 0).to(x.dtype)
            ratio = (self.window * channels / count.clamp_min(1.0)).to(x.dtype) * new_valid
        out = self.conv(x * valid.to(x.dtype)) * ratio
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1).to(out.dtype) * new_valid
        return out, new_valid


# -------------------------------------------------------------------- generator settings

BRANCHES = ("fused", "partial", "vanilla")
"""``fused``: both encoders, atrous fusion, one decoder; ``partial`` / ``vanilla``: one branch alone."""
NORMS = ("none", "batch")
ACTIVATIONS = ("leaky", "relu")
VANILLA_STYLES = ("strided", "unet")
DECODERS = ("conv", "partial")
DISCRIMINATORS = ("patch", "dense")
GAN_LOSSES = ("hinge", "bce")
DEFAULT_VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3")


def default_dilations(size: int, depth: int) -> tuple[int, ...]:
    """Dilations of the fusion block: (2, 4, 8) when the bottleneck is ≥ 16 px (the 256 px
    design), else (1, 2, 4) — at 112 px the bottleneck is 7×7, where dilation 8 sees only padding."""
    side = math.ceil(size / 2**depth)
    return (2, 4, 8) if side >= 16 else (1, 2, 4)


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`Generator` (stored in checkpoint metadata; the defaults are
    the original architecture, which is what a checkpoint without the newer keys holds).

    Level ``i`` (0-based) of each encoder has ``base_channels·min(2^i, max_mult)`` channels
    at 1/2^(i+1) of the input size; ``depth`` levels (U-Net blocks for ``vanilla=unet``: one
    max-pool each, so both encoders end at 1/2^depth); ``dilations`` of the fusion block.
    ``branch``: ``fused`` (both encoders), ``partial`` or ``vanilla`` (one alone).
    ``partial_norm``/``partial_act``: BatchNorm (all levels but the first, and the partial
    decoder's levels but the last) and activation of the partial encoder. ``vanilla``:
    ``strided`` (one stride-2 conv per level, the kernels of the partial encoder) or ``unet``
    (two 3×3 convs, ReLU, he-normal init, 2×2 max-pool); ``vanilla_dropout``: 1-based U-Net
    blocks with Dropout 0.5. ``decoder`` (fused model and partial branch): ``conv``
    (upsample, concatenate, 3×3 conv, LeakyReLU, then a refinement conv) or ``partial``
    (partial convolutions with per-channel masks, last level to RGB). A ``vanilla`` branch
    alone decodes with its own style: the U-Net decoder for ``unet``, ``conv`` for ``strided``.
    """

    base_channels: int = 32
    depth: int = 4
    max_mult: int = 8
    dilations: tuple[int, ...] = (1, 2, 4)
    branch: str = "fused"
    partial_norm: str = "none"
    partial_act: str = "leaky"
    vanilla: str = "strided"
    vanilla_dropout: tuple[int, ...] = ()
    decoder: str = "conv"

    def __post_init__(self) -> None:
        problems = []
        if self.base_channels < 1 or self.depth < 1 or self.max_mult < 1:
            problems.append("base_channels, depth and max_mult must be ≥ 1")
        if not self.dilations or any(d < 1 for d in self.dilations):
            problems.append("dilations must be one or more rates ≥ 1")
        for name, allowed in (("branch", BRANCHES), ("partial_norm", NORMS), ("partial_act", ACTIVATIONS),
                              ("vanilla", VANILLA_STYLES), ("decoder", DECODERS)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed)}")
        if self.vanilla_dropout and self.vanilla != "unet":
            problems.append("vanilla_dropout needs vanilla=unet")
        if any(not 1 <= b <= self.depth for b in self.vanilla_dropout):
            problems.append(f"vanilla_dropout blocks must lie in 1…depth ({self.depth})")
        if problems:
            raise ValueError(f"invalid generator configuration {self}: {'; '.join(problems)}")

    @property
    def widths(self) -> list[int]:
        return [self.base_channels * min(2**i, self.max_mult) for i in range(self.depth)]

    @property
    def decoder_style(self) -> str:
        """The decoder actually built: ``conv``, ``partial`` or ``unet`` (a U-Net vanilla branch alone)."""
        if self.branch == "vanilla":
            return "unet" if self.vanilla == "unet" else "conv"
        return self.decoder

    def to_meta(self) -> dict[str, Any]:
        return {**asdict(self), "dilations": list(self.dilations), "vanilla_dropout": list(self.vanilla_dropout)}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "GeneratorConfig":
        """From :meth:`to_meta`'s dict; keys it lacks take the defaults (older checkpoints)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(meta) - names)
        if unknown:
            raise ValueError(f"unknown architecture keys {unknown} (written by a newer recogbench?)")
        known = dict(meta)
        for key in ("dilations", "vanilla_dropout"):
            if key in known:
                known[key] = tuple(int(d) for d in known[key])
        return cls(**known)


# --------------------------------------------------------------------------------- options


def _integer(lo: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("expected an integer")
        n = int(str(value).strip()) if isinstance(value, str) else int(value)
        if n < lo:
            raise ValueError(f"must be ≥ {lo}")
        return n
    return parse


def _real(lo: float, hi: float | None = None) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        x = float(value)
        if not math.isfinite(x) or x < lo or (hi is not None and x >= hi):
            raise ValueError(f"must be ≥ {lo}" + (f" and < {hi}" if hi is not None else ""))
        return x
    return parse


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip()
        if text not in allowed:
            raise ValueError(f"one of {', '.join(allowed)}")
        return text
    return parse


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _items(value: Any) -> list[str]:
    """``"1-2-3"`` or a list → the items; ``"none"``/empty → none."""
    if isinstance(value, str):
        text = value.strip()
        return [] if text.lower() in ("", "none") else [t.strip() for t in text.split("-")]
    return [str(v).strip() for v in value]


def _int_list(lo: int, allow_empty: bool) -> Callable[[Any], tuple[int, ...]]:
    def parse(value: Any) -> tuple[int, ...]:
        items = tuple(_integer(lo)(v) for v in _items(value))
        if not items and not allow_empty:
            raise ValueError("expected one or more integers joined by '-', e.g. 1-2-3")
        return items
    return parse


def _vgg_layers(value: Any) -> tuple[str, ...]:
    from inpainters.vgg import CFGS, layer_indices

    names = tuple(_items(value))
    known = layer_indices(CFGS["vgg16"])
    wrong = [n for n in names if n not in known]
    if wrong or not names:
        raise ValueError(f"VGG16 layers joined by '-' (relu1_1…relu5_3, pool1…pool5); unknown: {wrong or '(none given)'}")
    return names


@dataclass(frozen=True)
class Option:
    """One pconv-gan model option: its parser (text or a Python value → the value), its
    default as text (None: derived, see ``help``), a one-line description and whether it is
    part of the generator's architecture (recorded in the checkpoint, checked when loading)."""

    parse: Callable[[Any], Any]
    default: str | None
    help: str
    architecture: bool = False


OPTIONS: dict[str, Option] = {
    # generator (architecture)
    "depth": Option(_integer(1), "4", "encoder levels of both branches (U-Net blocks for vanilla=unet)", True),
    "max_mult": Option(_integer(1), "8", "widths base·min(2^level, max_mult)", True),
    "dilations": Option(_int_list(1, False), None,
                        "rates of the atrous fusion block, e.g. 1-2-3 "
                        "(default 2-4-8 if the bottleneck is ≥ 16 px, else 1-2-4)", True),
    "partial_norm": Option(_choice(*NORMS), "none", "BatchNorm in the partial encoder and partial decoder", True),
    "partial_act": Option(_choice(*ACTIVATIONS), "leaky", "activation of the partial encoder (leaky: LeakyReLU 0.2)", True),
    "vanilla": Option(_choice(*VANILLA_STYLES), "strided",
                      "vanilla encoder: one stride-2 conv per level, or U-Net blocks (two 3×3 convs, 2×2 max-pool)", True),
    "vanilla_dropout": Option(_int_list(1, True), "none", "U-Net blocks (1-based, joined by '-') with Dropout 0.5", True),
    "decoder": Option(_choice(*DECODERS), "conv", "decoder of the fused model and the partial branch", True),
    # discriminators
    "discriminator": Option(_choice(*DISCRIMINATORS), "patch",
                            "patch: spectral-norm PatchGAN; dense: five 4×4 stride-2 convs, two Dense, Dense-1"),
    "gan_loss": Option(_choice(*GAN_LOSSES), "hinge",
                       "adversarial loss of both discriminators (bce: sigmoid + binary cross-entropy)"),
    "local_discriminator": Option(_boolean, "true", "also judge a square crop around the hole's bounding box"),
    "d_channels": Option(_integer(1), None, "first discriminator width, doubling per layer (default: base_channels)"),
    "d_dense": Option(_integer(1), "4096", "width of the dense discriminator's two hidden layers"),
    # losses
    "w_valid": Option(_real(0), "1", "weight of the L1 on known pixels"),
    "w_hole": Option(_real(0), "6", "weight of the L1 on hole pixels"),
    "w_perceptual": Option(_real(0), "0.05", "weight of the VGG16 perceptual loss (output and composite)"),
    "w_style": Option(_real(0), "120", "weight of the VGG16 style (Gram) loss (output and composite)"),
    "w_tv": Option(_real(0), "0.1", "weight of the total variation on the hole dilated by one pixel"),
    "w_adv_global": Option(_real(0), "0.05", "weight of the global adversarial loss"),
    "w_adv_local": Option(_real(0), "0.05", "weight of the local adversarial loss"),
    "vgg_layers": Option(_vgg_layers, "relu1_2-relu2_2-relu3_3", "VGG16 layers of the perceptual and style losses"),
    # optimiser
    "beta1": Option(_real(0, 1), "0.5", "Adam β1 (generator and discriminators)"),
    "beta2": Option(_real(0, 1), "0.999", "Adam β2"),
}
"""Every pconv-gan model option, given in the training spec (``recogbench train
pconv-gan:depth=6,decoder=partial``); the architecture ones also when loading a checkpoint
(``pconv-gan:checkpoint=…,depth=6``, checked against its metadata). Lists join with '-'.
``base_channels`` and ``branch`` are settings of their own (``--base-channels``, ``--branch``)."""

ARCHITECTURE_OPTIONS = tuple(k for k, o in OPTIONS.items() if o.architecture)


@dataclass(frozen=True)
class Preset:
    """A named configuration: model options, and defaults for the training settings the
    user leaves unset (``size``, ``batch_size``, ``lr``, ``base_channels``)."""

    summary: str
    options: Mapping[str, str]
    train: Mapping[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "under-mask": Preset(
        summary=('"Face Under-Mask Reconstruction" (Helwan University, 2023): Table 5.1\'s depth 6 for both '
                 "branches, BatchNorm partial convolutions in encoder and decoder, U-Net vanilla blocks with "
                 "Dropout 0.5 in blocks 4 and 5, atrous fusion 1-2-3, the listed dense discriminator (global "
                 "and local) with BCE, Liu et al.'s loss weights on VGG16 pool1-pool3, Adam 5e-5 (0.9, 0.999), "
                 "batch 4, 256 px, width 64"),
        options={
            "depth": "6", "partial_norm": "batch", "partial_act": "relu", "vanilla": "unet",
            "vanilla_dropout": "4-5", "decoder": "partial", "dilations": "1-2-3",
            "discriminator": "dense", "gan_loss": "bce", "local_discriminator": "true",
            "d_channels": "32", "d_dense": "4096",
            "w_valid": "1", "w_hole": "6", "w_perceptual": "0.05", "w_style": "120", "w_tv": "0.1",
            "w_adv_global": "0.05", "w_adv_local": "0.05",
            "vgg_layers": "pool1-pool2-pool3", "beta1": "0.9", "beta2": "0.999",
        },
        train={"size": 256, "batch_size": 4, "lr": 5e-5, "base_channels": 64},
    ),
}
"""Named configurations (``recogbench train pconv-gan --preset NAME``); options in the
spec (``pconv-gan:KEY=VALUE``) override the preset's."""


def _close(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def get_preset(name: str) -> Preset:
    """The preset ``name``; ValueError naming the known ones (and close matches) otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown pconv-gan preset {name!r}{_close(name, PRESETS)} (presets: {', '.join(PRESETS)})")
    return PRESETS[name]


def parse_options(given: Mapping[str, Any], *, preset: str | None = None,
                  architecture_only: bool = False) -> dict[str, Any]:
    """``given`` (text or Python values) on top of ``preset``'s options, parsed and checked.

    ValueError for an unknown key (naming close matches), a bad value, or — with
    ``architecture_only`` — a training option in ``given`` (the preset's training options
    are then dropped)."""
    merged: dict[str, Any] = dict(get_preset(preset).options) if preset else {}
    merged.update(given)
    out: dict[str, Any] = {}
    for key, value in merged.items():
        option = OPTIONS.get(key)
        if option is None:
            raise ValueError(f"unknown pconv-gan option {key!r}{_close(key, OPTIONS)} (options: {', '.join(OPTIONS)})")
        if architecture_only and not option.architecture:
            if key in given:
                raise ValueError(f"pconv-gan option {key} is a training setting, not part of the architecture; "
                                 f"the architecture options are {', '.join(ARCHITECTURE_OPTIONS)}")
            continue
        try:
            out[key] = option.parse(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"pconv-gan option {key}={value!r}: {exc}") from exc
    return out


def architecture(parsed: Mapping[str, Any], *, base_channels: int, size: int, branch: str | None = None) -> GeneratorConfig:
    """The :class:`GeneratorConfig` of parsed options (:func:`parse_options`); ``dilations``
    default to :func:`default_dilations` of ``size`` and the depth."""
    arch = {k: v for k, v in parsed.items() if OPTIONS[k].architecture}
    depth = int(arch.pop("depth", GeneratorConfig.depth))
    dilations = arch.pop("dilations", None) or default_dilations(size, depth)
    return GeneratorConfig(base_channels=int(base_channels), depth=depth, dilations=tuple(dilations),
                           branch=branch or "fused", **arch)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator loss terms (Liu et al. 2018 for the first five)."""

    valid: float = 1.0
    hole: float = 6.0
    perceptual: float = 0.05
    style: float = 120.0
    tv: float = 0.1
    adv_global: float = 0.05
    adv_local: float = 0.05


@dataclass(frozen=True)
class PConvGANSettings:
    """Everything a pconv-gan training run builds from its options: the generator
    architecture, the discriminators and their loss, the loss weights, the VGG16 layers and
    Adam's betas. Defaults: the original trainer."""

    arch: GeneratorConfig
    discriminator: str = "patch"
    gan_loss: str = "hinge"
    local_discriminator: bool = True
    d_channels: int = 32
    d_dense: int = 4096
    weights: LossWeights = LossWeights()
    vgg_layers: tuple[str, ...] = DEFAULT_VGG_LAYERS
    betas: tuple[float, float] = (0.5, 0.999)

    @classmethod
    def from_options(cls, given: Mapping[str, Any], *, preset: str | None = None, base_channels: int = 32,
                     size: int = 112, branch: str | None = None) -> "PConvGANSettings":
        """Settings of ``given`` options on top of ``preset`` (ValueError on a bad option)."""
        if branch is not None and branch not in BRANCHES:
            raise ValueError(f"pconv-gan branch must be one of {', '.join(BRANCHES)}, got {branch!r}")
        p = parse_options(given, preset=preset)
        weights = LossWeights(**{f.name: p.get(f"w_{f.name}", getattr(LossWeights, f.name)) for f in fields(LossWeights)})
        return cls(
            arch=architecture(p, base_channels=base_channels, size=size, branch=branch),
            discriminator=p.get("discriminator", "patch"), gan_loss=p.get("gan_loss", "hinge"),
            local_discriminator=p.get("local_discriminator", True), d_channels=p.get("d_channels", base_channels),
            d_dense=p.get("d_dense", 4096), weights=weights, vgg_layers=p.get("vgg_layers", DEFAULT_VGG_LAYERS),
            betas=(p.get("beta1", 0.5), p.get("beta2", 0.999)),
        )

    @classmethod
    def from_train_config(cls, config: "TrainConfig") -> "PConvGANSettings":
        """Settings of a :class:`~recogbench.train.TrainConfig`: the options of its spec
        (``pconv-gan:depth=6,…``) on top of its ``preset``, its ``base_channels``, ``size`` and ``branch``."""
        from recogbench.train import spec_options

        given = spec_options(config.inpainter)
        return cls.from_options(given, preset=getattr(config, "preset", None), base_channels=config.base_channels,
                                size=config.size, branch=getattr(config, "branch", None))

    def to_meta(self) -> dict[str, Any]:
        """The training-side settings as checkpoint metadata (the architecture is stored apart)."""
        dense = {"dense": self.d_dense} if self.discriminator == "dense" else {}
        return {"discriminator": {"kind": self.discriminator, "gan_loss": self.gan_loss, "local": self.local_discriminator,
                                  "channels": self.d_channels, **dense},
                "vgg_layers": list(self.vgg_layers), "betas": list(self.betas)}


# ------------------------------------------------------------------------------ generator


def _kernel(level: int) -> int:
    return 7 if level == 0 else 5 if level <= 2 else 3


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


def _activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else _act()


def he_normal_(module: nn.Module) -> None:
    """Keras ``he_normal`` for every convolution of ``module``: weights from a normal of std
    √(2/fan_in) truncated at ±2 std (std rescaled by 1/0.8796 so the truncated variance is
    2/fan_in, as Keras does), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
            nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class PartialEncoder(nn.Module):
    """Stride-2 partial convolutions (7×7, 5×5, 5×5, then 3×3), optional BatchNorm (all levels
    but the first, as Liu et al.) and LeakyReLU 0.2 or ReLU; the mask is updated per level.

    ``forward(x, valid)`` → (features, masks): one N×C×h×w map and its N×1×h×w validity per level.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        cins = [3] + cfg.widths[:-1]
        self.layers = nn.ModuleList(
            PartialConv2d(cin, w, _kernel(i), stride=2, padding=_kernel(i) // 2)
            for i, (cin, w) in enumerate(zip(cins, cfg.widths))
        )
        self.norms = (nn.ModuleList([nn.Identity(), *(nn.BatchNorm2d(w) for w in cfg.widths[1:])])
                      if cfg.partial_norm == "batch" else None)
        self.act = _activation(cfg.partial_act)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feats, masks = [], []
        for i, layer in enumerate(self.layers):
            x, valid = layer(x, valid)
            if self.norms is not None:
                x = self.norms[i](x)
            x = self.act(x)
            feats.append(x)
            masks.append(valid)
        return feats, masks


class ConvEncoder(nn.Module):
    """Plain stride-2 convolutions over image + mask (4 channels), same widths as the partial encoder."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        cins = [4] + cfg.widths[:-1]
        self.layers = nn.ModuleList(
            nn.Conv2d(cin, w, _kernel(i), stride=2, padding=_kernel(i) // 2)
            for i, (cin, w) in enumerate(zip(cins, cfg.widths))
        )
        self.act = _act()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = self.act(layer(x))
            feats.append(x)
        return feats


class UNetEncoder(nn.Module):
    """U-Net contracting path over image + mask (4 channels): per block two 3×3 convolutions
    with ReLU (he-normal), Dropout 0.5 in the blocks ``cfg.vanilla_dropout`` (1-based), then a
    2×2 max-pool (ceil mode, so odd sizes align with the partial encoder's maps).

    ``forward(x)`` → (skips, bottleneck): each block's map before its pool (1/2^i of the
    input), and the last pool's output (1/2^depth, like the partial encoder's last level).
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        cins = [4] + cfg.widths[:-1]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU(),
                          *([nn.Dropout(0.5)] if i + 1 in cfg.vanilla_dropout else []))
            for i, (cin, w) in enumerate(zip(cins, cfg.widths))
        )
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        he_normal_(self)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        skips = []
        for block in self.blocks:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        return skips, x


class AtrousFusion(nn.Module):
    """1×1 fusion of the two bottlenecks (2C → C), then residual 3×3 dilated convolutions."""

    def __init__(self, channels: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(2 * channels, channels, 1)
        self.atrous = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=d, dilation=d) for d in dilations)
        self.act = _act()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h = self.act(self.reduce(torch.cat([a, b], dim=1)))
        for conv in self.atrous:
            h = h + self.act(conv(h))
        return h


class Generator(nn.Module):
    """Dual-encoder U-Net (or one branch of it, see :class:`GeneratorConfig`).
    ``forward(image, hole)``: image N×3×H×W in [0, 1], hole N×1×H×W (1 = hole; those pixels
    are zeroed first, so the fill does not matter) → N×3×H×W in [0, 1].

    Decoder level ``i`` (``depth``−1 … 0) works at 1/2^i of the input and concatenates the
    upsampled features with the skips of that size: the partial encoder's level ``i``−1 (at
    level 0 the input: image + mask for ``conv``, the image with the mask as its validity for
    ``partial``) and the vanilla encoder's (strided: level ``i``−1; U-Net: block ``i`` before
    its pool). State-dict names: ``partial.*``, ``plain.*`` (vanilla), ``fusion.*``,
    ``decoder.*`` (+ ``decoder_norms.*``; ``refine``/``out`` for ``conv``), and for a U-Net
    vanilla branch alone ``up.*``, ``merge.*``, ``head``.
    """

    def __init__(self, cfg: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        widths, depth = cfg.widths, cfg.depth
        self.uses_partial = cfg.branch != "vanilla"
        self.uses_plain = cfg.branch != "partial"
        if self.uses_partial:
            self.partial = PartialEncoder(cfg)
        if self.uses_plain:
            self.plain = ConvEncoder(cfg) if cfg.vanilla == "strided" else UNetEncoder(cfg)
        if cfg.branch == "fused":
            self.fusion = AtrousFusion(widths[-1], cfg.dilations)
        style = cfg.decoder_style
        levels = list(reversed(range(depth)))
        self.decoder_norms: nn.ModuleList | None = None
        if style == "unet":
            self.up = nn.ModuleList(nn.Conv2d(widths[min(i + 1, depth - 1)], widths[i], 2) for i in levels)
            self.merge = nn.ModuleList(
                nn.Sequential(nn.Conv2d(2 * widths[i], widths[i], 3, padding=1), nn.ReLU(),
                              nn.Conv2d(widths[i], widths[i], 3, padding=1), nn.ReLU())
                for i in levels
            )
            he_normal_(self.up)
            he_normal_(self.merge)
            self.head = nn.Conv2d(widths[0], 3, 1)
        elif style == "partial":
            self.decoder = nn.ModuleList(
                PartialConv2d(widths[i] + self._skip_channels(i), widths[i - 1] if i else 3, 3, padding=1) for i in levels
            )
            if cfg.partial_norm == "batch":
                self.decoder_norms = nn.ModuleList(nn.BatchNorm2d(widths[i - 1]) for i in levels if i)
        else:
            self.decoder = nn.ModuleList(
                nn.Conv2d(widths[i] + self._skip_channels(i), widths[i - 1] if i else cfg.base_channels, 3, padding=1)
                for i in levels
            )
            self.refine = nn.Conv2d(cfg.base_channels, cfg.base_channels, 3, padding=1)
            self.out = nn.Conv2d(cfg.base_channels, 3, 3, padding=1)
        self.act = _act()

    def _skip_channels(self, i: int) -> int:
        cfg, widths = self.cfg, self.cfg.widths
        channels = 0
        if self.uses_partial:
            channels += widths[i - 1] if i else (3 if cfg.decoder_style == "partial" else 4)
        if self.uses_plain:
            if cfg.vanilla == "unet":
                channels += widths[i]
            elif i:
                channels += widths[i - 1]
            elif not self.uses_partial:
                channels += 4
        return channels

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        depth = self.cfg.depth
        valid = 1.0 - hole.to(image.dtype)
        x = image * valid
        x4 = torch.cat([x, valid], dim=1)
        feats: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        vskips: list[torch.Tensor | None] = [None] * depth
        vbottom: torch.Tensor | None = None
        if self.uses_partial:
            feats, masks = self.partial(x, valid)
        if self.uses_plain:
            if self.cfg.vanilla == "unet":
                skips, vbottom = self.plain(x4)
                vskips = list(skips)
            else:
                fv = self.plain(x4)
                vskips, vbottom = [None, *fv[:-1]], fv[-1]
        h_valid: torch.Tensor | None = None          # None: valid everywhere
        if self.cfg.branch == "fused":
            h = self.fusion(feats[-1], vbottom)
        elif self.uses_partial:
            h, h_valid = feats[-1], masks[-1]
        else:
            h = vbottom
        style = self.cfg.decoder_style
        if style == "unet":
            return self._decode_unet(h, vskips)
        if style == "partial":
            return self._decode_partial(h, h_valid, x, valid, feats, masks, vskips)
        return self._decode_conv(h, x4, feats, vskips)

    def _decode_conv(self, h: torch.Tensor, x4: torch.Tensor, feats: list[torch.Tensor],
                     vskips: list[torch.Tensor | None]) -> torch.Tensor:
        for k, conv in enumerate(self.decoder):
            i = self.cfg.depth - 1 - k
            parts = [feats[i - 1] if i else x4] if self.uses_partial else []
            if vskips[i] is not None:
                parts.append(vskips[i])
            elif i == 0 and not self.uses_partial:
                parts.append(x4)
            skip = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = self.act(conv(torch.cat([h, skip.to(h.dtype)], dim=1)))
        h = self.act(self.refine(h))
        return torch.sigmoid(self.out(h))

    def _decode_partial(self, h: torch.Tensor, h_valid: torch.Tensor | None, x: torch.Tensor, valid: torch.Tensor,
                        feats: list[torch.Tensor], masks: list[torch.Tensor],
                        vskips: list[torch.Tensor | None]) -> torch.Tensor:
        for k, conv in enumerate(self.decoder):
            i = self.cfg.depth - 1 - k
            parts: list[tuple[torch.Tensor, torch.Tensor | None]] = []
            if self.uses_partial:
                parts.append((feats[i - 1], masks[i - 1]) if i else (x, valid))
            if vskips[i] is not None:
                parts.append((vskips[i], None))   # vanilla features are defined everywhere
            size = parts[0][0].shape[-2:]
            h = F.interpolate(h, size=size, mode="nearest")
            if h_valid is not None:
                h_valid = F.interpolate(h_valid, size=size, mode="nearest")
            inputs = [(h, h_valid), *parts]
            features = torch.cat([f.to(h.dtype) for f, _ in inputs], dim=1)
            per_channel = torch.cat([(m.to(h.dtype) if m is not None else h.new_ones(()))
                                     .expand(f.shape[0], f.shape[1], *size) for f, m in inputs], dim=1)
            h, h_valid = conv(features, per_channel)
            if i:
                if self.decoder_norms is not None:
                    h = self.decoder_norms[k](h)
                h = self.act(h)
        return torch.sigmoid(h)

    def _decode_unet(self, h: torch.Tensor, vskips: list[torch.Tensor | None]) -> torch.Tensor:
        for k, (up, merge) in enumerate(zip(self.up, self.merge)):
            skip = vskips[self.cfg.depth - 1 - k]
            assert skip is not None
            u = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            u = F.relu(up(F.pad(u, (0, 1, 0, 1))))   # Keras "same" padding of a 2×2 kernel: right and bottom
            h = merge(torch.cat([skip, u], dim=1))
        return torch.sigmoid(self.head(h))


# -------------------------------------------------------------------------- discriminators


class PatchDiscriminator(nn.Module):
    """Spectral-norm PatchGAN: ``n_layers`` stride-2 4×4 convs, one stride-1, then a 1-channel map.

    ``forward(x)``: N×``in_channels``×H×W → N×1×h×w real/fake scores (h = H/2^n_layers − 2).
    """

    def __init__(self, in_channels: int, base_channels: int = 32, n_layers: int = 3) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        layers: list[nn.Module] = [sn(nn.Conv2d(in_channels, base_channels, 4, 2, 1)), nn.LeakyReLU(0.2)]
        ch = base_channels
        for _ in range(1, n_layers):
            nxt = min(ch * 2, base_channels * 8)
            layers += [sn(nn.Conv2d(ch, nxt, 4, 2, 1)), nn.LeakyReLU(0.2)]
            ch = nxt
        nxt = min(ch * 2, base_channels * 8)
        layers += [sn(nn.Conv2d(ch, nxt, 4, 1, 1)), nn.LeakyReLU(0.2), sn(nn.Conv2d(nxt, 1, 4, 1, 1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DenseDiscriminator(nn.Module):
    """The "Face Under-Mask Reconstruction" discriminator as listed: five 4×4 stride-2
    convolutions (``base_channels``·1, 2, 4, 8, 16 = 32…512; "same" padding; LeakyReLU 0.2),
    Flatten, Dense ``dense`` + ReLU twice, Dropout 0.2, Dense 1.

    ``forward(x)``: N×``in_channels``×``size``×``size`` → N×1 *logits*; the listed sigmoid is
    applied by the loss (binary cross-entropy with logits: the same function, stable in fp16).
    The input size is fixed by the dense layer (``size``/32 squared × 16·base inputs).
    """

    def __init__(self, in_channels: int, size: int, base_channels: int = 32, dense: int = 4096,
                 dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for k in range(5):
            layers += [nn.Conv2d(cin, base_channels * 2**k, 4, 2, 1), nn.LeakyReLU(0.2)]
            cin = base_channels * 2**k
        self.features = nn.Sequential(*layers)
        self.size = int(size)
        side = self.size
        for _ in range(5):
            side = (side + 2 - 4) // 2 + 1
        if side < 1:
            raise ValueError(f"DenseDiscriminator: input size {size} is too small for five stride-2 convolutions")
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * side * side, dense), nn.ReLU(), nn.Linear(dense, dense), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(dense, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"DenseDiscriminator built for {self.size}×{self.size} inputs, got {tuple(x.shape[-2:])}")
        return self.classifier(self.features(x))


def hole_boxes(hole: torch.Tensor, min_side: int, margin: float = 0.15) -> torch.Tensor:
    """Square crop boxes around each hole's bounding box, N×4 float (x1, y1, x2, y2), pixels.

    The side is the larger bbox side plus ``margin`` on each side, at least ``min_side``, at
    most the image; the box is shifted to lie inside the image. An empty hole gives the
    whole image.
    """
    n, _, h, w = hole.shape
    m = hole[:, 0].detach().cpu().numpy() > 0.5
    boxes = np.zeros((n, 4), np.float32)
    for i in range(n):
        ys, xs = np.nonzero(m[i])
        if not len(xs):
            boxes[i] = (0, 0, w, h)
            continue
        x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        side = min(max(max(x2 - x1, y2 - y1) * (1 + 2 * margin), min_side), h, w)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        bx = float(np.clip(cx - side / 2, 0, w - side))
        by = float(np.clip(cy - side / 2, 0, h - side))
        boxes[i] = (bx, by, bx + side, by + side)
    return torch.from_numpy(boxes)


# ----------------------------------------------------------------------------------- losses


def border_tv(composite: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Total variation of ``composite`` over pixel pairs inside the hole dilated by one pixel,
    normalised by the element count (Liu et al. 2018). Scalar."""
    region = F.max_pool2d(hole.float(), 3, stride=1, padding=1)
    rh = region[..., :, 1:] * region[..., :, :-1]
    rv = region[..., 1:, :] * region[..., :-1, :]
    dh = (composite[..., :, 1:] - composite[..., :, :-1]).abs() * rh
    dv = (composite[..., 1:, :] - composite[..., :-1, :]).abs() * rv
    return dh.mean() + dv.mean()


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    """``hinge``: mean(relu(1 − D(real))) + mean(relu(1 + D(fake))); ``bce``: binary
    cross-entropy of sigmoid(D) against 1 for real and 0 for fake (D gives logits)."""
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def generator_adversarial_loss(fake: torch.Tensor, kind: str) -> torch.Tensor:
    """``hinge``: −mean(D(fake)); ``bce``: the non-saturating −log sigmoid(D(fake))."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    return -fake.mean()


# ------------------------------------------------------------------- initialising from branches

#: State-dict prefixes a checkpoint of each branch contributes to another model. A vanilla
#: branch alone decodes with its own (U-Net or conv) decoder, which the fused model does not have.
BRANCH_PROVIDES: dict[str, tuple[str, ...]] = {
    "partial": ("partial.", "decoder.", "decoder_norms.", "refine.", "out."),
    "vanilla": ("plain.",),
    "fused": ("",),
}


def init_generator(generator: Generator, files: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Initialise ``generator`` from pconv-gan checkpoints of its branches (or of the same model).

    Each file must hold the same architecture but for ``branch``. A ``partial`` file gives the
    partial encoder and the decoder, a ``vanilla`` file the vanilla encoder, a ``fused`` file
    everything. Tensors of equal shape are copied; a decoder convolution that reads more
    skip channels here (the fused decoder also reads the vanilla skips, which come last) gets
    the file's weights in the channels they share and zeros in the others, so it starts out
    ignoring the new input. Everything else (the fusion block) keeps its fresh initialisation.
    Returns one record per file (file, sha256, branch, tensors copied). ValueError /
    CheckpointError naming the file when its architecture differs, two files give the same
    tensor, or a file gives nothing this model takes.
    """
    target = generator.cfg
    own = generator.state_dict()
    new: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    report = []
    for item in files:
        path = Path(item).expanduser()
        state, meta = load_state(path)
        arch_meta = meta.get("architecture")
        if not isinstance(arch_meta, dict):
            raise CheckpointError(f"{path}: no pconv-gan architecture in its metadata; --init-from takes "
                                  "checkpoints written by recogbench train pconv-gan")
        try:
            arch = GeneratorConfig.from_meta(arch_meta)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad architecture metadata {arch_meta!r} ({exc})") from exc
        diffs = [f"{f.name}={_show(getattr(arch, f.name))} (this run: {_show(getattr(target, f.name))})"
                 for f in fields(GeneratorConfig) if f.name != "branch" and getattr(arch, f.name) != getattr(target, f.name)]
        if diffs:
            raise ValueError(f"{path}: trained with another architecture than this run: {'; '.join(diffs)}; "
                             "train the branches with the same options (and --branch)")
        copied = 0
        for key, value in state.items():
            if key not in own or not key.startswith(BRANCH_PROVIDES[arch.branch]):
                continue
            if key in source:
                raise ValueError(f"{path}: {key} also comes from {source[key]}; give one checkpoint per branch")
            mine = own[key]
            if value.shape == mine.shape:
                tensor = value.to(mine.dtype)
            elif (key.startswith("decoder.") and value.dim() == 4 and value.shape[0] == mine.shape[0]
                  and value.shape[2:] == mine.shape[2:]):
                tensor = torch.zeros_like(mine)
                n = min(value.shape[1], mine.shape[1])
                tensor[:, :n] = value[:, :n].to(mine.dtype)
            else:
                raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, this model's is {tuple(mine.shape)}")
            new[key] = tensor
            source[key] = str(path)
            copied += 1
        if not copied:
            raise ValueError(f"{path}: a {arch.branch} checkpoint holds nothing a {target.branch} model takes "
                             f"(it gives {', '.join(p.rstrip('.') or 'everything' for p in BRANCH_PROVIDES[arch.branch])})")
        report.append({"file": str(path), "sha256": file_digest(path), "branch": arch.branch, "tensors": copied})
        log.info("pconv-gan: %d tensors initialised from %s (%s branch)", copied, path, arch.branch)
    generator.load_state_dict({**own, **new}, strict=True)
    return report


def _show(value: Any) -> str:
    return "-".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


# ---------------------------------------------------------------------------------- trainer


class PConvGANTrainer:
    """One training step at a time for :func:`recogbench.train.train`.

    Owns the generator, the discriminators (global, and local unless
    ``local_discriminator=false``), their Adam optimisers (betas from the options; default
    0.5, 0.999) and gradient scalers; mixed precision only on CUDA with ``config.amp``.
    Settings come from the config's preset, model options and branch
    (:class:`PConvGANSettings`); ``weights`` overrides the loss weights. Images N×3×H×W in
    [0, 1], holes N×1×H×W (1 = hole).
    """

    loss_names: tuple[str, ...] = (
        "d_global", "d_local", "g_valid", "g_hole", "g_perceptual", "g_style", "g_tv",
        "g_adv_global", "g_adv_local", "g_total",
    )

    def __init__(self, config: "TrainConfig", device: torch.device, weights: LossWeights | None = None) -> None:
        self.device = device
        self.settings = settings = PConvGANSettings.from_train_config(config)
        self.weights = weights or settings.weights
        self.arch = settings.arch
        self.preset = getattr(config, "preset", None)
        self.size = config.size
        self.local_size = max(32, config.size // 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.generator = Generator(self.arch)
            self.d_global = self._discriminator(local=False)
            self.d_local = self._discriminator(local=True) if settings.local_discriminator else None
        init_from = tuple(getattr(config, "init_from", ()) or ())
        self.init_report = init_generator(self.generator, init_from) if init_from else []
        self.generator.to(device)
        for d in self._discriminators():
            d.to(device)
        self.vgg: nn.Module | None = None
        if config.perceptual_weights:
            from inpainters.vgg import load_vgg16

            vgg, digest = load_vgg16(config.perceptual_weights, layers=settings.vgg_layers)
            self.vgg = vgg.to(device)
            self.perceptual = f"VGG16 {Path(config.perceptual_weights).name} sha256:{digest}"
        else:
            log.warning("pconv-gan: no VGG16 weights given (perceptual_weights); the perceptual and style losses are disabled")
            self.perceptual = PERCEPTUAL_DISABLED
        betas = settings.betas
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_dg = torch.optim.Adam(self.d_global.parameters(), lr=config.lr, betas=betas)
        self.opt_dl = (torch.optim.Adam(self.d_local.parameters(), lr=config.lr, betas=betas)
                       if self.d_local is not None else None)
        self.amp = bool(config.amp) and device.type == "cuda"
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=self.amp)

    def _discriminator(self, local: bool) -> nn.Module:
        s = self.settings
        if s.discriminator == "dense":
            return DenseDiscriminator(3, self.local_size if local else self.size, s.d_channels, s.d_dense)
        return PatchDiscriminator(3 if local else 4, s.d_channels, n_layers=3)

    def _discriminators(self) -> list[nn.Module]:
        return [d for d in (self.d_global, self.d_local) if d is not None]

    def _global_input(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """What the global discriminator sees: image + hole mask (PatchGAN) or the image alone (dense, as listed)."""
        return image if self.settings.discriminator == "dense" else torch.cat([image, hole], 1)

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def step(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
        """One discriminator update then one generator update; returns the loss terms computed
        (the perceptual and style terms only with VGG16 weights, the local terms only with a
        local discriminator)."""
        w = self.weights
        kind = self.settings.gan_loss
        self.generator.train()
        for d in self._discriminators():
            d.train()
        valid = 1.0 - hole
        with self._autocast():
            out = self.generator(occluded, hole)
        out = out.float()
        comp = hole * out + valid * clean
        local = self.d_local is not None
        if local:
            boxes = hole_boxes(hole, min_side=self.local_size // 2)
            real_local = crop_boxes(clean, boxes, self.local_size)
            fake_local = crop_boxes(comp, boxes, self.local_size)

        # discriminators
        for d in self._discriminators():
            d.requires_grad_(True)
        with self._autocast():
            real_g = self.d_global(self._global_input(clean, hole)).float()
            fake_g = self.d_global(self._global_input(comp.detach(), hole)).float()
            if local:
                real_l = self.d_local(real_local).float()
                fake_l = self.d_local(fake_local.detach()).float()
        d_global = discriminator_loss(real_g, fake_g, kind)
        d_local = discriminator_loss(real_l, fake_l, kind) if local else None
        self.opt_dg.zero_grad(set_to_none=True)
        if local:
            self.opt_dl.zero_grad(set_to_none=True)
        self.scaler_d.scale(d_global + d_local if local else d_global).backward()
        self.scaler_d.step(self.opt_dg)
        if local:
            self.scaler_d.step(self.opt_dl)
        self.scaler_d.update()

        # generator
        for d in self._discriminators():
            d.requires_grad_(False)
        adv_local = None
        with self._autocast():
            adv_global = generator_adversarial_loss(self.d_global(self._global_input(comp, hole)).float(), kind)
            if local:
                adv_local = generator_adversarial_loss(self.d_local(fake_local).float(), kind)
        l_valid = (valid * (out - clean)).abs().mean()
        l_hole = (hole * (out - clean)).abs().mean()
        l_tv = border_tv(comp, hole)
        total = w.valid * l_valid + w.hole * l_hole + w.tv * l_tv + w.adv_global * adv_global
        if adv_local is not None:
            total = total + w.adv_local * adv_local
        perceptual = style = None
        if self.vgg is not None:
            from inpainters.vgg import perceptual_and_style

            with self._autocast():
                perceptual, style = perceptual_and_style(self.vgg, out, comp, clean)
            total = total + w.perceptual * perceptual + w.style * style
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(total).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        for d in self._discriminators():
            d.requires_grad_(True)

        values = {
            "d_global": d_global, "d_local": d_local, "g_valid": l_valid, "g_hole": l_hole,
            "g_perceptual": perceptual, "g_style": style, "g_tv": l_tv,
            "g_adv_global": adv_global, "g_adv_local": adv_local, "g_total": total,
        }
        return {k: float(v.detach()) for k, v in values.items() if v is not None}

    @torch.no_grad()
    def restore(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The generator's raw prediction in eval mode, float32, exactly as :class:`PConvGAN` computes it."""
        self.generator.eval()
        return self.generator(occluded, hole).float()

    # -- state for checkpoints -------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """What the inference checkpoint records besides the weights."""
        return {
            "format": CHECKPOINT_FORMAT,
            "architecture": self.arch.to_meta(),
            "size": self.size,
            "local_size": self.local_size,
            "perceptual": self.perceptual,
            "loss_weights": asdict(self.weights),
            **self.settings.to_meta(),
            "preset": self.preset,
            "init_from": self.init_report,
        }

    def generator_state(self) -> dict[str, torch.Tensor]:
        return self.generator.state_dict()

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        state = {f"global.{k}": v for k, v in self.d_global.state_dict().items()}
        if self.d_local is not None:
            state.update({f"local.{k}": v for k, v in self.d_local.state_dict().items()})
        return state

    def _stateful(self) -> dict[str, Any]:
        objects: dict[str, Any] = {"G": self.opt_g, "D_global": self.opt_dg}
        if self.opt_dl is not None:
            objects["D_local"] = self.opt_dl
        return {**objects, "scaler_G": self.scaler_g, "scaler_D": self.scaler_d}

    def optimizer_state(self) -> dict[str, Any]:
        return {name: obj.state_dict() for name, obj in self._stateful().items()}

    def load_state(self, generator: dict[str, torch.Tensor], discriminators: dict[str, torch.Tensor],
                   optimizers: dict[str, Any], origin: str) -> None:
        """Restore everything :meth:`generator_state`, :meth:`discriminator_state` and
        :meth:`optimizer_state` returned; raises CheckpointError naming mismatched keys."""
        load_into(self.generator, generator, origin)
        for prefix, module in (("global.", self.d_global), ("local.", self.d_local)):
            part = {k[len(prefix):]: v for k, v in discriminators.items() if k.startswith(prefix)}
            if module is not None:
                load_into(module, part, origin)
            elif part:
                raise CheckpointError(f"{origin}: holds a local discriminator, but this run has none (local_discriminator=false)")
        load_states(self._stateful(), optimizers, origin)


# --------------------------------------------------------------------------------- inpainter


def write_checkpoint(path: str | Path, generator: Generator, meta: dict[str, Any] | None = None, size: int = 112) -> Path:
    """Save ``generator`` as an inference checkpoint :class:`PConvGAN` loads (safetensors + meta).

    Training writes these itself; this is for tools and tests that build a generator directly.
    """
    path = Path(path)
    full = {"format": CHECKPOINT_FORMAT, "architecture": generator.cfg.to_meta(), "size": size,
            "perceptual": PERCEPTUAL_DISABLED, **(meta or {})}
    save_state(path, generator.state_dict(), full)
    return path


class PConvGAN(Inpainter):
    """Face under-mask reconstruction: dual-encoder partial-conv GAN (needs a trained checkpoint)."""

    name = "pconv-gan"
    paper = "Face under-mask reconstruction (dual-encoder partial-conv GAN)"
    license = ("code MIT (this project); a checkpoint carries the terms of the faces it was trained on "
               "(and of the VGG16 weights used for its perceptual loss)")
    #: Backend-specific :class:`~recogbench.train.TrainConfig` fields the trainer reads.
    train_options = ("preset", "branch", "init_from")
    #: Options of the training spec ``pconv-gan:KEY=VALUE,…`` (:data:`OPTIONS`).
    train_spec_options = tuple(OPTIONS)

    def __init__(
        self,
        checkpoint: str | None = None,
        *,
        size: int | None = None,
        base_channels: int | None = None,
        preset: str | None = None,
        branch: str | None = None,
        device: str = "auto",
        **options: Any,
    ) -> None:
        """``checkpoint``: a ``.safetensors`` (or weights-only torch) generator checkpoint from
        ``recogbench train pconv-gan``. The architecture is read from its metadata; ``size``
        (native size) defaults to it, else 112. ``base_channels``, ``branch``, ``preset`` and
        the architecture options (:data:`ARCHITECTURE_OPTIONS`, e.g. ``depth=6``) describe a
        checkpoint without metadata; given for one with metadata, any that contradicts it is
        an error naming the file."""
        if not checkpoint:
            raise ValueError(
                "pconv-gan needs a trained checkpoint: recogbench train pconv-gan --data FACES --out DIR, "
                "then use pconv-gan:checkpoint=DIR/last.safetensors"
            )
        given = parse_options(options, preset=preset, architecture_only=True)
        if branch is not None and branch not in BRANCHES:
            raise ValueError(f"pconv-gan branch must be one of {', '.join(BRANCHES)}, got {branch!r}")
        super().__init__(device=device)
        path = Path(checkpoint).expanduser()
        state, meta = load_state(path)
        arch_meta = meta.get("architecture")
        preset_train = get_preset(preset).train if preset else {}
        if isinstance(arch_meta, dict):
            try:
                arch = GeneratorConfig.from_meta(arch_meta)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{path}: bad architecture metadata {arch_meta!r} ({exc})") from exc
            stated = {**given, **({"base_channels": int(base_channels)} if base_channels is not None else {}),
                      **({"branch": branch} if branch is not None else {})}
            wrong = [f"{k}={_show(getattr(arch, k))}, not {_show(v)}" for k, v in stated.items() if getattr(arch, k) != v]
            if wrong:
                raise ValueError(f"{path}: checkpoint has {'; '.join(wrong)}")
        else:
            native = int(size or preset_train.get("size") or 112)
            arch = architecture(given, base_channels=int(base_channels or preset_train.get("base_channels") or 32),
                                size=native, branch=branch)
        self.native_size = int(size or meta.get("size") or preset_train.get("size") or 112)
        self.generator = Generator(arch)
        load_into(self.generator, state, path)
        self.generator.to(self.device).eval().requires_grad_(False)
        self.checkpoint = path
        self.checkpoint_sha256 = file_digest(path)
        self.meta = meta

    def params(self) -> dict[str, str]:
        return {"inpainter": self.name, "checkpoint_sha256": self.checkpoint_sha256, "size": str(self.native_size)}

    @torch.no_grad()
    def _inpaint(self, images: torch.Tensor, masks: torch.Tensor, *, identity: torch.Tensor | None,
                 clean: torch.Tensor | None) -> torch.Tensor:
        return self.generator(images.float(), masks.float()).float()

    # -- training ---------------------------------------------------------------------------

    @classmethod
    def train_defaults(cls, config: "TrainConfig") -> dict[str, Any]:
        """The preset's training settings (``under-mask``: 256 px, batch 4, lr 5e-5, width 64)
        for the fields ``config`` leaves unset; none without a preset (the loop's 112, 16, 2e-4, 32)."""
        preset = getattr(config, "preset", None)
        return dict(get_preset(preset).train) if preset else {}

    @classmethod
    def check_train_config(cls, config: "TrainConfig") -> None:
        """Refuse bad model options, an unknown preset or branch, or a missing ``init_from``
        file when the config is built, before any work."""
        PConvGANSettings.from_train_config(config)
        for item in getattr(config, "init_from", ()) or ():
            if not Path(item).expanduser().is_file():
                raise FileNotFoundError(f"{item}: --init-from checkpoint not found")

    @classmethod
    def make_trainer(cls, config: "TrainConfig", device: torch.device) -> PConvGANTrainer:
        """The trainer :func:`recogbench.train.train` drives."""
        if getattr(config, "stage", None) is not None:
            raise ValueError(f"pconv-gan trains in one stage; --stage {config.stage} is for id-inpainter")
        return PConvGANTrainer(config, device)
