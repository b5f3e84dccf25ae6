"""IFACENET: the de-occlusion (face inpainting) autoencoder of Vázquez et al. 2025.

"De-Occlusion Face Model based on Deep Occlusor Segmentation and Deep Inpainting Models",
IEEE Latin America Transactions 23(8), 2025. A re-implementation, in plain torch, of
``reconstruction.py: Img_inpainting(dilation=[1, 2, 4])`` of
``MiguelAGV10/De-Occlusion-Face-Model-based-on-Deep-Occlusor-Segmentation-and-Deep-Inpainting-Models``
(the "Reconstruction" ensemble model that ``prepare_model()`` builds; 52,707,106 parameters,
367 state-dict entries). Module and parameter names, and their order, are the official
``state_dict``'s, so the ``model_state_dict`` of the authors' training files
(``torch.save({"epoch", "model_state_dict", ...})``) loads with ``strict=True``
(:func:`load_ifacenet`). No code of that repository is copied here.

Conventions (the official ones):

* input N×3×H×W RGB in [0, 1] — **no** ImageNet mean/std normalisation, although the ResNet
  branch starts from ImageNet weights — with the hole burnt in **white**:
  ``image * (1 - mask) + mask`` (:func:`prepare_input`; mask 1 = hole). H and W must be
  multiples of 32 (trained at 256×256);
* output N×3×H×W after a Sigmoid, a whole new picture; pipelines keep the known pixels,
  ``image * (1 - mask) + output * mask`` (:func:`composite`, the official inference's
  ``merged``).

Network (shapes at 256×256; ``d`` = number of dilations, 3)::

    x ─┬─ feature_extractor: ResNet-50 trunk (conv1 … layer4; 2048@8) ─ ConvT 2048→512 k4 s2 p1 ─ ReLU ─ 512@16 ─┐
       └─ encoder: 4 × [depthwise 3×3 s2 + pointwise 1×1 + ReLU], 3→64→128→256→512 ─────────────── 512@16 ─┤
                                                                                     cat [ResNet, separable] 1024@16
    attention (self-attention, V·A, residual γ) 1024@16
    dilation_rates: d parallel [depthwise 3×3 dilation r + 1×1 1024→512], r = 1, 2, 4; cat  512·d@16
    conv_dilation: depthwise 3×3 + 1×1 (512·d→512·d) + ReLU                                    512·d@16
    decoder: ConvT k4 s2 p1 512·d→256→128→64→3 with ReLU between, Sigmoid last                   3@256

There are no skip connections. The self-attention is the official variant, not SAGAN's:
with q = W_q x, k = W_k x (1024→128), v = W_v x (1024→1024) flattened over the N = h·w
positions, ``A = softmax_rows(qᵀ k)`` (no 1/√d) and ``out = v A`` — **A is not transposed**,
so output position j mixes values with weights from column j of a row-normalised matrix
(its weights do not sum to 1) — then ``γ · out + x`` (γ initialised to 0).

Training-related facts of the official code: the constructor freezes part of the ResNet
trunk with a name test that does not do what it seems to (see :func:`official_frozen`;
reproduced by ``official_freeze=True``); in ``train()`` mode the trunk's BatchNorm layers,
frozen or not, keep updating their running statistics; the adversarial part uses
:class:`PatchGANDiscriminator`. The trainer (``recogbench train ifacenet``) is
:mod:`inpainters.ifacenet_train`; the ``ifacenet`` inpainter is :class:`IFACENetInpainter`.

``trunk_input="imagenet"`` (not the official network; our training's default, recorded in
its checkpoints) feeds the ResNet branch ``(x − ImageNet mean) / std`` instead of ``x``;
the separable branch always sees ``x``. The state-dict keys do not change.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from inpainters.layers.resnet import ResNet50, load_imagenet_weights
from recogbench.checkpoint import CheckpointError, load_into, load_state
from recogbench.inpaint import Inpainter

if TYPE_CHECKING:
    from recogbench.train import TrainConfig

log = logging.getLogger(__name__)

__all__ = [
    "IFACENet",
    "SelfAttention",
    "DilatedSeparableBank",
    "PatchGANDiscriminator",
    "prepare_input",
    "composite",
    "load_ifacenet",
    "official_frozen",
    "parse_dilation",
    "IFACENetInpainter",
    "DEFAULT_DILATIONS",
    "TRUNK_INPUTS",
    "MODES",
    "CHECKPOINT_FORMAT",
]

#: The published model's dilation rates (``prepare_model()``).
DEFAULT_DILATIONS = (1, 2, 4)
#: What the ResNet-50 branch sees: ``official`` — the network input itself ([0, 1], white
#: holes; what the authors' weights were trained on); ``imagenet`` — that input normalised
#: with the ImageNet mean/std (what ImageNet trunk weights expect; our training's default).
TRUNK_INPUTS = ("official", "imagenet")
#: Network input: ``masked`` — the image with the hole burnt in white (:func:`prepare_input`;
#: ``train_inpainting.py``); ``self-supervised`` — the occluded image as it is, no mask
#: (``train_selfsupervised.py``: the network finds the occluder itself).
MODES = ("masked", "self-supervised")
#: ``format`` in the metadata of the checkpoints ``recogbench train ifacenet`` writes.
CHECKPOINT_FORMAT = "recogbench-ifacenet/1"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _separable(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    """Depthwise 3×3 (groups = cin, padding = dilation, with bias) then pointwise 1×1 (with bias)."""
    return [nn.Conv2d(cin, cin, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, groups=cin),
            nn.Conv2d(cin, cout, kernel_size=1)]


class SelfAttention(nn.Module):
    """The official ``attention`` block (names ``gamma``, ``query``, ``key``, ``value``).

    x: N×C×h×w → N×C×h×w. ``query``/``key``: 1×1 C→C/8, ``value``: 1×1 C→C (all with bias);
    ``S = qᵀ k`` (N×hw×hw, no scaling), ``A = softmax(S, dim=-1)`` (rows), ``out = v A``
    (N×C×hw: **not** ``v Aᵀ``), result ``γ · out + x`` with a learnt scalar γ (init 0)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(in_channels, in_channels // 8, kernel_size=1)
        self.key = nn.Conv2d(in_channels, in_channels // 8, kernel_size=1)
        self.value = nn.Conv2d(in_channels, in_channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).reshape(n, -1, h * w)
        k = self.key(x).reshape(n, -1, h * w)
        v = self.value(x).reshape(n, -1, h * w)
        attn = torch.softmax(torch.matmul(q.transpose(1, 2), k), dim=-1)   # N × hw × hw, rows sum to 1
        out = torch.matmul(v, attn).reshape(n, -1, h, w)                  # v·A, as the official code
        return self.gamma * out + x


class DilatedSeparableBank(nn.Module):
    """The official ``dilation_rates`` block: for each rate r a depthwise 3×3 conv (dilation =
    padding = r, ``depthwise.i.0``) then a 1×1 conv in→out (``depthwise.i.1``), no activation;
    outputs concatenated in the order of the rates. N×in×h×w → N×(out·len(rates))×h×w."""

    def __init__(self, in_channels: int, out_channels: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.depthwise = nn.ModuleList(
            nn.ModuleList(_separable(in_channels, out_channels, dilation=int(d))) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([pw(dw(x)) for dw, pw in self.depthwise], dim=1)


def official_frozen(name: str) -> bool:
    """Whether the official constructor sets ``requires_grad=False`` on the trunk parameter
    ``name`` (relative to ``feature_extractor``, e.g. ``"4.0.bn1.weight"``).

    The official rule freezes a trunk parameter whose name contains neither ``"conv"`` nor
    ``"layer4"``, applied to the names of an ``nn.Sequential`` of the ResNet's children, which
    are numeric (``"7.0.conv1.weight"``, never ``"layer4…"``). So: frozen are the stem conv
    (``"0.weight"``), every BatchNorm γ/β (layer4's too) and every ``downsample`` conv;
    trainable are all bottleneck ``conv1/2/3`` weights (layer1 … layer4). The transposed conv
    after the trunk (index 8) is not part of the rule."""
    head = name.split(".", 1)[0]
    if not head.isdigit() or int(head) > 7:
        return False
    return not any(part in name for part in ("conv", "layer4"))


class IFACENet(nn.Module):
    """The official ``Img_inpainting`` (IFACENET's "Reconstruction" model) with its parameter names.

    ``dilation``: rates of the parallel dilated separable convs (official default [1, 2, 4];
    the width after them is 512·len(dilation)). ``resnet_weights``: optional path of
    torchvision ImageNet ResNet-50 weights for the trunk (the official constructor calls
    ``resnet50(pretrained=True)``; here nothing is downloaded, and without a path the trunk
    keeps torchvision's random initialisation). ``official_freeze``: reproduce the official
    constructor's ``requires_grad=False`` on part of the trunk (:func:`official_frozen`).
    ``trunk_input``: ``official`` (the published network) or ``imagenet`` (the ResNet branch
    sees the input normalised with the ImageNet mean/std; see :data:`TRUNK_INPUTS`).

    ``forward(x)``: x N×3×H×W in [0, 1] with white holes (:func:`prepare_input`), H and W
    multiples of 32 → N×3×H×W in (0, 1). Submodules (state-dict order):
    ``feature_extractor`` (``0`` conv1, ``1`` bn1, ``2`` ReLU, ``3`` maxpool, ``4``-``7``
    layer1-4, ``8`` ConvTranspose2d 2048→512, ``9`` ReLU), ``encoder``, ``dilation_rates``,
    ``attention``, ``conv_dilation``, ``decoder``."""

    def __init__(self, dilation: Sequence[int] = DEFAULT_DILATIONS, *, resnet_weights: str | Path | None = None,
                 official_freeze: bool = True, trunk_input: str = "official") -> None:
        super().__init__()
        dilation = tuple(int(d) for d in dilation)
        if not dilation or any(d < 1 for d in dilation):
            raise ValueError(f"dilation must be a non-empty list of positive rates, got {dilation}")
        if trunk_input not in TRUNK_INPUTS:
            raise ValueError(f"trunk_input must be one of {', '.join(TRUNK_INPUTS)}, got {trunk_input!r}")
        self.dilation = dilation
        self.trunk_input = trunk_input
        trunk = ResNet50(num_classes=None)
        if resnet_weights is not None:
            load_imagenet_weights(trunk, resnet_weights)
        self.feature_extractor = nn.Sequential(
            *trunk.trunk_modules(),
            nn.ConvTranspose2d(2048, 512, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
        )
        if official_freeze:
            for name, param in self.feature_extractor.named_parameters():
                if official_frozen(name):
                    param.requires_grad_(False)
        enc: list[nn.Module] = []
        for cin, cout in ((3, 64), (64, 128), (128, 256), (256, 512)):
            enc += [*_separable(cin, cout, stride=2), nn.ReLU()]
        self.encoder = nn.Sequential(*enc)
        width = 512 * len(dilation)
        self.dilation_rates = DilatedSeparableBank(1024, 512, dilation)
        self.attention = SelfAttention(1024)
        self.conv_dilation = nn.Sequential(*_separable(width, width), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(width, 256, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(256, 128, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, 3, kernel_size=4, stride=2, padding=1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"IFACENet needs N×3×H×W with H and W multiples of 32, got {tuple(x.shape)}")
        trunk = x
        if self.trunk_input == "imagenet":
            trunk = (x - x.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)) / x.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        feats = torch.cat([self.feature_extractor(trunk), self.encoder(x)], dim=1)   # [ResNet, separable]
        feats = self.attention(feats)
        feats = self.conv_dilation(self.dilation_rates(feats))
        return self.decoder(feats)


class PatchGANDiscriminator(nn.Module):
    """The official depthwise-separable PatchGAN discriminator (``reconstruction.py``), names
    ``discriminator.{0,1,3,4,6,7,9,10}`` and ``conv.{0,1}``.

    Four stages of [depthwise 3×3 stride 2 + pointwise 1×1 + LeakyReLU(0.2)]
    (3→64→128→256→512 with ``num_filters`` 64), then a depthwise 3×3 and a 1×1 to one channel.
    x N×``in_channels``×H×W (the official training feeds [0, 1] images) → logits
    N×1×H/16×W/16 (no sigmoid; the official loss is ``BCEWithLogitsLoss``)."""

    def __init__(self, in_channels: int = 3, num_filters: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for mult in (1, 2, 4, 8):
            layers += [*_separable(cin, num_filters * mult, stride=2), nn.LeakyReLU(0.2, inplace=True)]
            cin = num_filters * mult
        self.discriminator = nn.Sequential(*layers)
        self.conv = nn.Sequential(*_separable(cin, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.discriminator(x))


def _check_pair(images: torch.Tensor, masks: torch.Tensor) -> None:
    if images.ndim != 4 or masks.ndim != 4:
        raise ValueError(f"images and masks must be N×C×H×W, got {tuple(images.shape)} and {tuple(masks.shape)}")
    if masks.shape[0] != images.shape[0] or masks.shape[2:] != images.shape[2:] or masks.shape[1] not in (1, images.shape[1]):
        raise ValueError(f"masks {tuple(masks.shape)} do not fit images {tuple(images.shape)} "
                         "(need N×1×H×W or N×C×H×W)")


def prepare_input(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The network input of the official training and inference: ``images * (1 - masks) + masks``.

    ``images`` N×3×H×W RGB in [0, 1] (no normalisation); ``masks`` N×1×H×W (or N×3×H×W, as
    the official loader's three identical channels), 1 = hole, 0 = kept, binary. The hole
    becomes white (1.0); a soft mask blends towards white. Returns N×3×H×W in the images'
    dtype; H and W must be multiples of 32 for :class:`IFACENet`."""
    _check_pair(images, masks)
    masks = masks.to(images.dtype)
    return images * (1 - masks) + masks


def composite(images: torch.Tensor, masks: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Known pixels from ``images``, the hole from ``output``: ``images * (1 - masks) + output * masks``
    (the official inference's ``merged``; shapes as in :func:`prepare_input`)."""
    _check_pair(images, masks)
    masks = masks.to(images.dtype)
    return images * (1 - masks) + output * masks


def load_ifacenet(path: str | Path, dilation: Sequence[int] = DEFAULT_DILATIONS, *,
                  trunk_input: str = "official") -> IFACENet:
    """An eval-mode :class:`IFACENet` with the weights of ``path``: an official training file
    (``{"epoch", "model_state_dict", ...}`` from ``save_model``/``SaveBestModel``), a bare
    state dict, or ``.safetensors``; read without running pickled code
    (:func:`recogbench.checkpoint.load_state`) and loaded strictly. ``trunk_input``: see
    :data:`TRUNK_INPUTS` (``official`` for the authors' files)."""
    state, _ = load_state(path)
    model = IFACENet(dilation, official_freeze=False, trunk_input=trunk_input)
    load_into(model, state, path)
    return model.eval()


# ------------------------------------------------------------------------------ the inpainter


def parse_dilation(value: str | Sequence[int]) -> tuple[int, ...]:
    """Dilation rates from the spec's ``1-2-4`` (also ``1,2,4`` / ``1 2 4``) or a sequence of ints."""
    if isinstance(value, str):
        parts = [p for p in value.replace(",", "-").replace(" ", "-").split("-") if p]
        try:
            rates = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"dilation must be rates joined by '-', e.g. 1-2-4; got {value!r}") from None
    else:
        rates = tuple(int(d) for d in value)
    if not rates or any(d < 1 for d in rates):
        raise ValueError(f"dilation must be one or more positive rates joined by '-', e.g. 1-2-4; got {value!r}")
    return rates


def _branch_count(state: dict[str, torch.Tensor]) -> int:
    """How many parallel dilated branches (``dilation_rates.depthwise.<i>.*``) a state dict holds."""
    return len({k.split(".")[2] for k in state if k.startswith("dilation_rates.depthwise.") and k.count(".") >= 3})


def _dashed(rates: Sequence[int]) -> str:
    return "-".join(str(int(r)) for r in rates)


class IFACENetInpainter(Inpainter):
    """IFACENET (Vázquez et al. 2025): ResNet-50 ∥ separable encoder, self-attention, dilated convs (needs a checkpoint)."""

    name = "ifacenet"
    native_size = 256
    paper = ("De-Occlusion Face Model based on Deep Occlusor Segmentation and Deep Inpainting Models (IFACENET), "
             "Vázquez et al., IEEE Latin America Transactions 23(8), 2025 (code: github.com/MiguelAGV10/"
             "De-Occlusion-Face-Model-based-on-Deep-Occlusor-Segmentation-and-Deep-Inpainting-Models)")
    license = ("code MIT (this project, written from the paper and the official code); a checkpoint carries its "
               "authors' terms and those of its training faces and of the ImageNet ResNet-50/VGG19 weights it used")
    #: Backend-specific :class:`~recogbench.train.TrainConfig` fields the trainer reads.
    train_options = ("backbone_weights", "self_supervised")

    def __init__(
        self,
        checkpoint: str | None = None,
        *,
        dilation: str | None = None,
        mode: str | None = None,
        device: str = "auto",
    ) -> None:
        """``checkpoint``: the authors' training file (``torch.save({"epoch", "model_state_dict",
        "optimizer_state_dict", "loss"})``, read without running its pickled loss object), a bare
        state dict, or the ``last.safetensors`` of ``recogbench train ifacenet``; loaded strictly.
        ``dilation``: the rates of the dilated branches, ``1-2-4`` (published; our checkpoints
        record theirs). ``mode``: ``masked`` (published: the hole burnt in white) or
        ``self-supervised`` (the occluded image as is; for ``train_selfsupervised.py`` weights);
        our checkpoints record theirs, and the size they were trained at (the native size;
        the authors' files: 256)."""
        if not checkpoint:
            raise ValueError(
                "ifacenet needs a checkpoint: a file of the authors' training (train_inpainting.py's "
                "reconstruction.pth, a torch.save dict with model_state_dict; the repository publishes no weights) "
                "or your own: recogbench train ifacenet --data FACES --out DIR [--backbone-weights "
                "resnet50-0676ba61.pth] [--perceptual-weights vgg19-dcbb9e9d.pth], then "
                "ifacenet:checkpoint=DIR/last.safetensors"
            )
        if mode is not None and mode not in MODES:
            raise ValueError(f"ifacenet: mode must be one of {', '.join(MODES)}, got {mode!r}")
        super().__init__(device=device)
        path = Path(checkpoint).expanduser()
        state, meta = load_state(path)
        ours = meta.get("format") == CHECKPOINT_FORMAT
        given = parse_dilation(dilation) if dilation else None
        saved = parse_dilation(meta["dilation"]) if ours and meta.get("dilation") else None
        if given and saved and given != saved:
            raise ValueError(f"{path}: trained with dilation={_dashed(saved)}, not {_dashed(given)}")
        rates = given or saved or DEFAULT_DILATIONS
        branches = _branch_count(state)
        if branches and branches != len(rates):
            raise CheckpointError(f"{path}: holds {branches} dilated branches (dilation_rates.depthwise.0…"
                                  f"{branches - 1}) but dilation={_dashed(rates)} has {len(rates)}; pass "
                                  f"dilation= with {branches} rates")
        saved_mode = meta.get("mode") if ours else None
        if mode and saved_mode and mode != saved_mode:
            raise ValueError(f"{path}: trained in mode={saved_mode}, not {mode}")
        self.mode = mode or saved_mode or "masked"
        self.trunk_input = str(meta.get("trunk_input", "official")) if ours else "official"
        if self.trunk_input not in TRUNK_INPUTS:
            raise CheckpointError(f"{path}: unknown trunk_input {self.trunk_input!r} in its metadata")
        if ours and meta.get("size"):
            self.native_size = int(meta["size"])   # the resolution it was trained at (a multiple of 32)
        self.model = IFACENet(rates, official_freeze=False, trunk_input=self.trunk_input)
        load_into(self.model, state, path)
        self.model.to(self.device).eval().requires_grad_(False)
        self.dilation = rates
        self.checkpoint = path
        self.meta = meta
        from recogbench.verifiers.base import file_digest

        self.checkpoint_sha256 = file_digest(path)

    def params(self) -> dict[str, str]:
        return {"inpainter": self.name, "checkpoint_sha256": self.checkpoint_sha256, "dilation": _dashed(self.dilation),
                "mode": self.mode, "trunk_input": self.trunk_input, "size": str(self.native_size)}

    @torch.no_grad()
    def _inpaint(self, images: torch.Tensor, masks: torch.Tensor, *, identity: torch.Tensor | None,
                 clean: torch.Tensor | None) -> torch.Tensor:
        x = images.float()
        if self.mode == "masked":
            x = prepare_input(x, masks.float())
        return self.model(x)

    # -- training ---------------------------------------------------------------------------

    @classmethod
    def train_defaults(cls, config: "TrainConfig") -> dict[str, Any]:
        """Published training settings for the fields ``config`` leaves unset (the loop's
        ``size`` default is :attr:`native_size`, 256): Adam lr 1e-3, batch 8; holes from the
        six hole-ratio bins (``freeform-coverage``), or real occluders (``everyday``) in the
        self-supervised mode."""
        return {"lr": 1e-3, "batch_size": 8,
                "occlusion": "everyday" if getattr(config, "self_supervised", False) else "freeform-coverage"}

    @classmethod
    def make_trainer(cls, config: "TrainConfig", device: torch.device) -> Any:
        """The trainer :func:`recogbench.train.train` drives (:class:`inpainters.ifacenet_train.IFACENetTrainer`)."""
        if getattr(config, "stage", None) is not None:
            raise ValueError(f"ifacenet trains in one stage; --stage {config.stage} is for id-inpainter")
        from inpainters.ifacenet_train import IFACENetTrainer

        return IFACENetTrainer(config, device)
