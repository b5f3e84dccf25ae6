"""SOCLNet: the occluder segmenter of "De-Occlusion Face Model based on Deep Occlusor
Segmentation and Deep Inpainting Models" (IEEE Latin America Transactions 23(8), 2025).

What the paper gives (its abstract only; no code, no weights are public): the segmenter is
"an improvement of DeepLabv3 by adding self-attention mechanisms", and it reaches a pixel
accuracy of 0.93 and an IoU of 0.788 on the authors' data. Everything more specific is **our
choice**, made as DeepLabv3 (Chen et al. 2017, "Rethinking Atrous Convolution") and
torchvision's ``deeplabv3_resnet50`` build it:

==============================  ==========================================================
part                            source
==============================  ==========================================================
DeepLabv3 + self-attention      the paper (abstract)
ResNet-50 trunk, output         ours = DeepLabv3 / torchvision: ``ResNet50(num_classes=None,
stride 8                        replace_stride_with_dilation=(False, True, True))`` (layer3
                                dilation 2, layer4 dilation 4), ImageNet weights optional
ASPP: 1×1, 3×3 rates 12/24/36,  ours = DeepLabv3 at OS 8 (torchvision's ``DeepLabHead``):
image pooling, 256 channels,    BN + ReLU in every branch, 1×1 projection of the 5·256
projection + dropout 0.5, 3×3   channels with dropout 0.5, then 3×3 conv 256 + BN + ReLU
conv + classifier               and a 1×1 classifier; logits upsampled bilinearly
which attention, where          ours: one SAGAN-style position-attention block (Zhang et al.
                                2019; DANet's PAM) on the trunk output, **before ASPP**:
                                query/key 1×1 convs to C/8, value 1×1 conv to C, softmax over
                                positions, ``y = x + γ·attention(x)`` with γ learnable and
                                initialised to 0 (so a fresh block is the identity and a
                                DeepLabv3 checkpoint computes exactly DeepLabv3)
classes                         ours: background + one per object occluder of the suite
                                (:data:`~recogbench.segmentation.classes.OCCLUDER_CLASSES`)
input                           ours: RGB in [0, 1] at 112 (or 256), normalised inside by
                                the ImageNet mean/std (:data:`INPUT_CONTRACT`)
==============================  ==========================================================

**Parameter names** are torchvision's, written from its source as we know it (torchvision
cannot be imported in this project to check): the trunk is ``backbone.conv1`` …
``backbone.layer4.2.bn3`` (exactly :class:`~inpainters.layers.resnet.ResNet50`'s keys under
``backbone.``, no ``fc``), the head ``classifier.0.convs.{0…4}`` (1×1 branch, three atrous
branches, image pooling ``convs.4.1``/``convs.4.2``), ``classifier.0.project.{0,1}``,
``classifier.1`` (3×3 conv), ``classifier.2`` (BN), ``classifier.4`` (classifier), so the
trunk and head of a torchvision ``deeplabv3_resnet50`` state dict line up key for key
(:func:`load_deeplabv3_weights`; its ``aux_classifier.*`` is dropped, and ``classifier.4``
when the class count differs). The attention block adds ``attention.{query,key,value}.*`` and
``attention.gamma``.

At 112 px the OS-8 map is 14×14, so the rate-24 and rate-36 branches only ever see their
centre tap inside the image (their other taps fall in the zero padding): they act as 1×1
convs, which DeepLabv3 itself notes for rates near the map size (it is why image pooling
exists). ``aspp_rates`` can be set; the default keeps DeepLabv3's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inpainters.layers.resnet import Bottleneck, ResNet50, load_imagenet_weights
from recogbench.checkpoint import CheckpointError, load_into, load_state, save_state
from recogbench.segmentation.classes import OCCLUDER_CLASSES, class_ids

log = logging.getLogger(__name__)

__all__ = ["ASPP", "DeepLabHead", "INPUT_CONTRACT", "InputContract", "PositionAttention", "SOCLNet",
           "TRUNKS", "load_deeplabv3_weights", "load_segmenter", "save_segmenter"]

CHECKPOINT_FORMAT = "recogbench-soclnet/1"
PAPER = ("De-Occlusion Face Model based on Deep Occlusor Segmentation and Deep Inpainting Models, "
         "IEEE Latin America Transactions 23(8), 2025")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_STRIDE = 8


@dataclass(frozen=True)
class InputContract:
    """How a SOCLNet reads images, as data (timm's ``pretrained_cfg``): RGB float in [0, 1]
    at ``size``×``size``, normalised inside by ``(x - mean) / std``; images are resized to the
    native size bilinearly (antialiased) and predicted class maps back by nearest neighbour."""

    size: int = 112
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color: str = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)
    image_resize: str = "bilinear, antialias"
    mask_resize: str = "nearest"


INPUT_CONTRACT = InputContract()
NATIVE_SIZES = (112, 256)


# ------------------------------------------------------------------------------ trunks


class TinyTrunk(nn.Module):
    """A narrow ResNet with torchvision's layout and names (``conv1 bn1 layer1 … layer4``,
    the same dilation rule), for tests and CPU smoke runs only: ``width`` channels in the stem
    (ResNet-50: 64), ``blocks`` bottlenecks per stage (ResNet-50: 3, 4, 6, 3). Output
    ``32·width`` channels at H/8 with ``replace_stride_with_dilation=(False, True, True)``."""

    def __init__(self, width: int = 8, blocks: Sequence[int] = (1, 1, 1, 1),
                 replace_stride_with_dilation: Sequence[bool] = (False, True, True)) -> None:
        super().__init__()
        replace = tuple(bool(r) for r in replace_stride_with_dilation)
        self.inplanes, self.dilation = width, 1
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, blocks[0])
        self.layer2 = self._make_layer(2 * width, blocks[1], stride=2, dilate=replace[0])
        self.layer3 = self._make_layer(4 * width, blocks[2], stride=2, dilate=replace[1])
        self.layer4 = self._make_layer(8 * width, blocks[3], stride=2, dilate=replace[2])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    _make_layer = ResNet50._make_layer  # torchvision's rule, shared (uses self.inplanes / self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _build_trunk(name: str) -> tuple[nn.Module, int]:
    if name == "resnet50":
        return ResNet50(num_classes=None, replace_stride_with_dilation=(False, True, True)), 512 * Bottleneck.expansion
    if name == "tiny":
        return TinyTrunk(8), 8 * 8 * Bottleneck.expansion
    raise ValueError(f"unknown SOCLNet trunk {name!r} (one of {', '.join(TRUNKS)})")


TRUNKS = ("resnet50", "tiny")
"""``resnet50``: the model (default). ``tiny``: a width-8 one-block-per-stage trunk for tests."""


# ------------------------------------------------------------------------------ blocks


class PositionAttention(nn.Module):
    """SAGAN-style self-attention over positions (DANet's position attention module).

    For x N×C×H×W: q = query(x), k = key(x) (1×1 convs to C/``reduction``), v = value(x)
    (1×1 conv to C); A = softmax_j(qᵢ·kⱼ) over the H·W positions (no scaling, as SAGAN);
    ``y = x + γ · (v Aᵀ)`` with γ a learnable scalar initialised to 0. The energies and
    softmax run in float32 even under autocast (fp16 energies can overflow)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)  # N×C'×HW
        k = self.key(x).flatten(2)
        v = self.value(x).flatten(2)  # N×C×HW
        with torch.autocast(device_type=x.device.type, enabled=False):
            attn = torch.softmax(torch.bmm(q.float().transpose(1, 2), k.float()), dim=-1)  # N×HW×HW, rows sum to 1
            out = torch.bmm(v.float(), attn.transpose(1, 2))  # out[:, :, i] = Σ_j A[i, j] v[:, :, j]
        return x + self.gamma * out.view(n, c, h, w).to(x.dtype)


class _ASPPConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class _ASPPPooling(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (torchvision's ``ASPP``): ``convs`` = [1×1, 3×3 at each
    rate, image pooling], each → ``out_channels`` with BN + ReLU; concatenated and
    ``project``-ed by 1×1 conv + BN + ReLU + dropout 0.5."""

    def __init__(self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        modules: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                                  nn.BatchNorm2d(out_channels), nn.ReLU())]
        modules += [_ASPPConv(in_channels, out_channels, int(r)) for r in atrous_rates]
        modules.append(_ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(modules)
        self.project = nn.Sequential(nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


class DeepLabHead(nn.Sequential):
    """torchvision's ``DeepLabHead``: ASPP → 3×3 conv (no bias) → BN → ReLU → 1×1 classifier."""

    def __init__(self, in_channels: int, num_classes: int, atrous_rates: Sequence[int] = (12, 24, 36),
                 channels: int = 256) -> None:
        super().__init__(ASPP(in_channels, atrous_rates, channels), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, num_classes, 1))


# ------------------------------------------------------------------------------ network


class SOCLNet(nn.Module):
    """DeepLabv3 (ResNet-50, output stride 8) with a position-attention block before ASPP.

    ``forward(images)``: N×3×H×W RGB in [0, 1] (normalised inside) → logits
    N×``num_classes``×H×W (bilinear upsampling of the OS-8 logits, as torchvision).
    ``encode(images)``: the attended trunk features N×C×H/8×W/8 (C = 2048).

    ``classes``: class names, id = index (default :data:`OCCLUDER_CLASSES` when
    ``num_classes`` matches it); ``size``: native input size (112 or 256) that
    :func:`~recogbench.segmentation.predict_masks` resizes to. ``trunk="tiny"`` is for tests
    only and changes no key of the default model. Children: ``backbone``, ``attention``
    (absent with ``attention=False``: plain DeepLabv3), ``classifier``.
    """

    paper = PAPER
    output_stride = OUTPUT_STRIDE
    native_size = 112
    """The default input side (``size``); 256 is the other supported native size."""
    train_options = ("backbone_weights",)
    """:class:`~recogbench.train.TrainConfig` settings beyond the generic ones that the trainer reads."""

    def __init__(self, num_classes: int = len(OCCLUDER_CLASSES), *, classes: Sequence[str] | None = None,
                 size: int = 112, trunk: str = "resnet50", attention: bool = True,
                 aspp_rates: Sequence[int] = (12, 24, 36), aspp_channels: int = 256,
                 attention_reduction: int = 8) -> None:
        super().__init__()
        if classes is None:
            # The table is append-only, so its first n names are what n classes meant when trained.
            classes = OCCLUDER_CLASSES[:num_classes] if num_classes <= len(OCCLUDER_CLASSES) else \
                ("background", *(f"class_{k}" for k in range(1, num_classes)))
        classes = tuple(str(c) for c in classes)
        class_ids(classes)
        if len(classes) != num_classes:
            raise ValueError(f"num_classes={num_classes} but {len(classes)} class names given")
        if size < 32 or size % OUTPUT_STRIDE:
            raise ValueError(f"size must be a multiple of {OUTPUT_STRIDE} and >= 32, got {size}")
        self.num_classes, self.classes, self.size = int(num_classes), classes, int(size)
        self.trunk_name, self.aspp_rates, self.aspp_channels = trunk, tuple(int(r) for r in aspp_rates), int(aspp_channels)
        self.attention_reduction = int(attention_reduction)
        self.backbone, channels = _build_trunk(trunk)
        self.feature_channels = channels
        self.attention = PositionAttention(channels, attention_reduction) if attention else None
        self.classifier = DeepLabHead(channels, num_classes, self.aspp_rates, self.aspp_channels)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def contract(self) -> InputContract:
        return InputContract(size=self.size)

    def architecture(self) -> dict[str, Any]:
        """JSON-able description that :func:`load_segmenter` rebuilds the network from."""
        return {"name": "soclnet", "num_classes": self.num_classes, "trunk": self.trunk_name,
                "attention": "position (SAGAN), before ASPP" if self.attention is not None else None,
                "attention_reduction": self.attention_reduction, "aspp_rates": list(self.aspp_rates),
                "aspp_channels": self.aspp_channels, "output_stride": OUTPUT_STRIDE}

    @classmethod
    def from_architecture(cls, arch: dict[str, Any], classes: Sequence[str], size: int) -> "SOCLNet":
        return cls(int(arch["num_classes"]), classes=classes, size=int(size), trunk=str(arch.get("trunk", "resnet50")),
                   attention=arch.get("attention") is not None, aspp_rates=tuple(arch.get("aspp_rates", (12, 24, 36))),
                   aspp_channels=int(arch.get("aspp_channels", 256)),
                   attention_reduction=int(arch.get("attention_reduction", 8)))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        x = self.backbone(x)
        return self.attention(x) if self.attention is not None else x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.encode(images))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | None = None, *, device: str | torch.device = "auto") -> "SOCLNet":
        """The segmenter of a mask-source spec ``soclnet:checkpoint=PATH`` (:func:`load_segmenter`)."""
        if not checkpoint:
            raise ValueError("soclnet needs a trained checkpoint: recogbench train soclnet --data FACES --out DIR, "
                             "then soclnet:checkpoint=DIR/last.safetensors")
        from recogbench.device import resolve_device

        return load_segmenter(checkpoint, device=resolve_device(device))

    @classmethod
    def train_defaults(cls, config: Any) -> dict[str, Any]:
        """Settings for the fields a :class:`~recogbench.train.TrainConfig` leaves unset: the
        object occluders (``everyday``: every face's occluder has a class), batch 16, Adam lr
        2e-4 (ours; DeepLabv3's SGD recipe is ``SOCLNetTrainer(optimizer="sgd")`` at 0.007)."""
        return {"occlusion": "everyday", "batch_size": 16, "lr": 2e-4}

    @classmethod
    def make_trainer(cls, config: Any, device: torch.device) -> Any:
        """The :class:`~recogbench.segmentation.trainer.SOCLNetTrainer` for ``recogbench.train``."""
        if getattr(config, "stage", None) is not None:
            raise ValueError(f"soclnet trains in one stage; --stage {config.stage} is for id-inpainter")
        from recogbench.segmentation.trainer import SOCLNetTrainer

        return SOCLNetTrainer(config, device)


# ------------------------------------------------------------------------------ files


def _sha256(path: Path) -> str:
    from recogbench.verifiers.base import file_digest

    return file_digest(path)


def segmenter_meta(model: SOCLNet) -> dict[str, Any]:
    """The metadata a SOCLNet checkpoint carries: format, architecture, classes, size, contract."""
    return {"format": CHECKPOINT_FORMAT, "architecture": model.architecture(), "classes": list(model.classes),
            "size": model.size, "input": asdict(model.contract), "paper": PAPER}


def save_segmenter(path: str | Path, model: SOCLNet, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a safetensors checkpoint :func:`load_segmenter` reads (extra ``meta``
    is kept; the architecture fields always come from the model)."""
    path = Path(path)
    save_state(path, model.state_dict(), {**(meta or {}), **segmenter_meta(model)})
    return path


def _infer_architecture(state: dict[str, torch.Tensor], origin: Path) -> dict[str, Any]:
    """Architecture of a bare state dict (no metadata), read from its keys and shapes."""
    head = state.get("classifier.4.weight")
    if head is None:
        raise CheckpointError(f"{origin}: not a SOCLNet/DeepLabv3 checkpoint (no classifier.4.weight and no "
                              "architecture metadata)")
    k = 1
    while f"classifier.0.convs.{k}.0.weight" in state and state[f"classifier.0.convs.{k}.0.weight"].shape[-1] == 3:
        k += 1
    # dilation rates leave no trace in the weights: DeepLabv3's for three atrous branches
    rates = [12, 24, 36] if k - 1 == 3 else [12 * (i + 1) for i in range(k - 1)]
    return {"num_classes": int(head.shape[0]),
            "trunk": "resnet50" if "backbone.layer4.2.conv3.weight" in state else "tiny",
            "attention": "position" if "attention.gamma" in state else None,
            "attention_reduction": (int(state["backbone.conv1.weight"].shape[0]) * 32
                                    // int(state["attention.query.weight"].shape[0])) if "attention.gamma" in state else 8,
            "aspp_rates": rates, "aspp_channels": int(head.shape[1])}


def load_segmenter(path: str | Path, *, device: str | torch.device = "cpu", classes: Sequence[str] | None = None,
                   size: int | None = None) -> SOCLNet:
    """A SOCLNet in eval mode from a checkpoint, loaded strictly (no pickled code runs).

    Our files (``save_segmenter``, ``recogbench train soclnet``'s ``last.safetensors``) carry
    the architecture, class list and native size in their metadata. A bare state dict (e.g. a
    torch file of SOCLNet weights) is read by its keys and shapes; give ``classes`` and
    ``size`` then (default: :data:`OCCLUDER_CLASSES` when the count matches, and 112).
    The returned model has ``checkpoint`` and ``checkpoint_sha256`` attributes."""
    from recogbench.device import resolve_device

    path = Path(path).expanduser()
    state, meta = load_state(path)
    fmt = meta.get("format")
    if fmt is not None and fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: a {fmt!r} checkpoint, not a SOCLNet segmenter ({CHECKPOINT_FORMAT})")
    arch = meta.get("architecture") if isinstance(meta.get("architecture"), dict) else _infer_architecture(state, path)
    native = int(size or meta.get("size") or 112)
    try:
        n = int(arch["num_classes"])
        names = classes or meta.get("classes")
        if names is None:
            names = OCCLUDER_CLASSES[:n] if n <= len(OCCLUDER_CLASSES) else \
                ("background", *(f"class_{k}" for k in range(1, n)))
        model = SOCLNet.from_architecture(arch, names, native)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its metadata does not describe a SOCLNet ({exc})") from exc
    load_into(model, state, path)
    model.checkpoint = str(path)
    model.checkpoint_sha256 = _sha256(path)
    return model.to(resolve_device(device)).eval()


def load_deeplabv3_weights(model: SOCLNet, path: str | Path) -> list[str]:
    """Start ``model`` from a torchvision-style ``deeplabv3_resnet50`` state dict (any file
    :func:`~recogbench.checkpoint.load_state` reads). ``backbone.*`` and ``classifier.*`` load
    strictly; ``aux_classifier.*`` is dropped, and ``classifier.4.*`` too when its class count
    differs from the model's (that layer keeps its initialisation). The attention block keeps
    γ = 0, so the model then computes the file's DeepLabv3. Returns the keys not loaded."""
    path = Path(path).expanduser()
    state, _ = load_state(path)
    skipped = sorted(k for k in state if k.startswith("aux_classifier."))
    state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
    own = model.state_dict()
    if "classifier.4.weight" in state and state["classifier.4.weight"].shape != own["classifier.4.weight"].shape:
        skipped += [k for k in state if k.startswith("classifier.4.")]
        state = {k: v for k, v in state.items() if not k.startswith("classifier.4.")}
    for k, v in own.items():  # parts the file cannot have: attention, and a skipped classifier
        if k not in state and (k.startswith("attention.") or k.startswith("classifier.4.")):
            state[k] = v
    load_into(model, state, path)
    if skipped:
        log.info("%s: not loaded: %s", path, ", ".join(skipped[:6]) + (" …" if len(skipped) > 6 else ""))
    return skipped


def load_backbone_weights(model: SOCLNet, path: str | Path) -> dict[str, str]:
    """ImageNet weights for the trunk (torchvision's ``resnet50-*.pth`` or any torchvision-named
    ResNet-50 state dict) via :func:`~inpainters.layers.resnet.load_imagenet_weights`; returns
    ``{"path", "sha256"}`` for the checkpoint metadata."""
    if not isinstance(model.backbone, ResNet50):
        raise ValueError(f"ImageNet ResNet-50 weights need the resnet50 trunk, not {model.trunk_name!r}")
    path = Path(path).expanduser()
    load_imagenet_weights(model.backbone, path)
    return {"path": str(path), "sha256": _sha256(path)}


def describe(model: SOCLNet) -> str:
    """One line for logs: architecture and class list."""
    return json.dumps({**model.architecture(), "classes": list(model.classes), "size": model.size})
