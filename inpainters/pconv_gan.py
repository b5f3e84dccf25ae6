"""Face under-mask reconstruction: a dual-encoder partial-convolution GAN.

Generator: a partial-convolution encoder (Liu et al. 2018, image + validity mask) runs in
parallel with a plain-convolution encoder fed image + mask (4 channels); their bottleneck
features are concatenated and fused by an atrous (dilated) residual block; one decoder
with skip connections from both encoders (concatenated) restores the face through a
sigmoid to [0, 1]. Two spectral-norm PatchGAN discriminators judge the whole face
(global, image + hole mask) and a square crop around the hole's bounding box (local).
Losses: L1 on valid and on hole pixels, VGG16 perceptual and style terms (only with user
given VGG16 weights), total variation on the hole border, and hinge adversarial terms.

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

import logging
import math
from dataclasses import asdict, dataclass
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
    """Partial convolution (Liu et al. 2018) with a single-channel validity mask.

    ``forward(x, valid)``: ``x`` N×C×H×W, ``valid`` N×1×H×W in {0, 1}, 1 = known pixel
    (shared by all channels). Per output window with ``sum(M) > 0``:
    ``out = W·(X ⊙ M) · sum(1)/sum(M) + b``; where ``sum(M) = 0`` the output is exactly 0
    (no bias). ``sum(1)`` is the window size k_h·k_w (zero padding counts as invalid).
    Returns ``(out, new_valid)`` with ``new_valid = 1[sum(M) > 0]``.
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
        with torch.no_grad():
            count = F.conv2d(valid.to(self.ones.dtype), self.ones, stride=self.conv.stride,
                             padding=self.conv.padding, dilation=self.conv.dilation)
            new_valid = (count > 0).to(x.dtype)
            ratio = (self.window / count.clamp_min(1.0)).to(x.dtype) * new_valid
        out = self.conv(x * valid.to(x.dtype)) * ratio
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1).to(out.dtype) * new_valid
        return out, new_valid


# ------------------------------------------------------------------------------ generator


def default_dilations(size: int, depth: int) -> tuple[int, ...]:
    """Dilations of the fusion block: (2, 4, 8) when the bottleneck is ≥ 16 px (the 256 px
    design), else (1, 2, 4) — at 112 px the bottleneck is 7×7, where dilation 8 sees only padding."""
    side = math.ceil(size / 2**depth)
    return (2, 4, 8) if side >= 16 else (1, 2, 4)


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`Generator` (stored in checkpoint metadata).

    Level ``i`` (0-based) of each encoder has ``base_channels·min(2^i, max_mult)`` channels
    at 1/2^(i+1) of the input size; ``depth`` levels; ``dilations`` of the fusion block.
    """

    base_channels: int = 32
    depth: int = 4
    max_mult: int = 8
    dilations: tuple[int, ...] = (1, 2, 4)

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.depth < 1 or self.max_mult < 1 or not self.dilations:
            raise ValueError(f"invalid generator configuration {self}")

    @property
    def widths(self) -> list[int]:
        return [self.base_channels * min(2**i, self.max_mult) for i in range(self.depth)]

    def to_meta(self) -> dict[str, Any]:
        return {**asdict(self), "dilations": list(self.dilations)}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "GeneratorConfig":
        known = {k: meta[k] for k in ("base_channels", "depth", "max_mult", "dilations") if k in meta}
        if "dilations" in known:
            known["dilations"] = tuple(int(d) for d in known["dilations"])
        return cls(**known)


def _kernel(level: int) -> int:
    return 7 if level == 0 else 5 if level <= 2 else 3


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class PartialEncoder(nn.Module):
    """Stride-2 partial convolutions (7×7, 5×5, 5×5, then 3×3) with LeakyReLU; mask updated per level."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        cins = [3] + cfg.widths[:-1]
        self.layers = nn.ModuleList(
            PartialConv2d(cin, w, _kernel(i), stride=2, padding=_kernel(i) // 2)
            for i, (cin, w) in enumerate(zip(cins, cfg.widths))
        )
        self.act = _act()

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x, valid = layer(x, valid)
            x = self.act(x)
            feats.append(x)
        return feats


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
    """Dual-encoder U-Net. ``forward(image, hole)``: image N×3×H×W in [0, 1], hole N×1×H×W
    (1 = hole; those pixels are zeroed first, so the fill does not matter) → N×3×H×W in [0, 1]."""

    def __init__(self, cfg: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        widths = cfg.widths
        self.partial = PartialEncoder(cfg)
        self.plain = ConvEncoder(cfg)
        self.fusion = AtrousFusion(widths[-1], cfg.dilations)
        self.decoder = nn.ModuleList()
        for i in reversed(range(cfg.depth)):
            skip = 2 * widths[i - 1] if i > 0 else 4
            cout = widths[i - 1] if i > 0 else cfg.base_channels
            self.decoder.append(nn.Conv2d(widths[i] + skip, cout, 3, padding=1))
        self.refine = nn.Conv2d(cfg.base_channels, cfg.base_channels, 3, padding=1)
        self.out = nn.Conv2d(cfg.base_channels, 3, 3, padding=1)
        self.act = _act()

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        valid = 1.0 - hole.to(image.dtype)
        x = image * valid
        fp = self.partial(x, valid)
        x4 = torch.cat([x, valid], dim=1)
        fv = self.plain(x4)
        h = self.fusion(fp[-1], fv[-1])
        for k, conv in enumerate(self.decoder):
            i = self.cfg.depth - 1 - k
            skip = torch.cat([fp[i - 1], fv[i - 1]], dim=1) if i > 0 else x4
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = self.act(conv(torch.cat([h, skip.to(h.dtype)], dim=1)))
        h = self.act(self.refine(h))
        return torch.sigmoid(self.out(h))


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


def border_tv(composite: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Total variation of ``composite`` over pixel pairs inside the hole dilated by one pixel,
    normalised by the element count (Liu et al. 2018). Scalar."""
    region = F.max_pool2d(hole.float(), 3, stride=1, padding=1)
    rh = region[..., :, 1:] * region[..., :, :-1]
    rv = region[..., 1:, :] * region[..., :-1, :]
    dh = (composite[..., :, 1:] - composite[..., :, :-1]).abs() * rh
    dv = (composite[..., 1:, :] - composite[..., :-1, :]).abs() * rv
    return dh.mean() + dv.mean()


# ---------------------------------------------------------------------------------- trainer


class PConvGANTrainer:
    """One training step at a time for :func:`recogbench.train.train`.

    Owns the generator, both discriminators, their Adam optimisers (β = 0.5, 0.999) and
    gradient scalers; mixed precision only on CUDA with ``config.amp``. Images N×3×H×W in
    [0, 1], holes N×1×H×W (1 = hole).
    """

    loss_names: tuple[str, ...] = (
        "d_global", "d_local", "g_valid", "g_hole", "g_perceptual", "g_style", "g_tv",
        "g_adv_global", "g_adv_local", "g_total",
    )

    def __init__(self, config: "TrainConfig", device: torch.device, weights: LossWeights = LossWeights()) -> None:
        self.device = device
        self.weights = weights
        depth = 4
        self.arch = GeneratorConfig(base_channels=config.base_channels, depth=depth,
                                    dilations=default_dilations(config.size, depth))
        self.size = config.size
        self.local_size = max(32, config.size // 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.generator = Generator(self.arch)
            self.d_global = PatchDiscriminator(4, config.base_channels, n_layers=3)
            self.d_local = PatchDiscriminator(3, config.base_channels, n_layers=3)
        self.generator.to(device)
        self.d_global.to(device)
        self.d_local.to(device)
        self.vgg: nn.Module | None = None
        if config.perceptual_weights:
            from inpainters.vgg import load_vgg16

            vgg, digest = load_vgg16(config.perceptual_weights)
            self.vgg = vgg.to(device)
            self.perceptual = f"VGG16 {Path(config.perceptual_weights).name} sha256:{digest}"
        else:
            log.warning("pconv-gan: no VGG16 weights given (perceptual_weights); the perceptual and style losses are disabled")
            self.perceptual = PERCEPTUAL_DISABLED
        betas = (0.5, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_dg = torch.optim.Adam(self.d_global.parameters(), lr=config.lr, betas=betas)
        self.opt_dl = torch.optim.Adam(self.d_local.parameters(), lr=config.lr, betas=betas)
        self.amp = bool(config.amp) and device.type == "cuda"
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=self.amp)

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def step(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
        """One discriminator update then one generator update; returns the loss terms computed
        (the perceptual and style terms only with VGG16 weights)."""
        w = self.weights
        self.generator.train()
        self.d_global.train()
        self.d_local.train()
        valid = 1.0 - hole
        with self._autocast():
            out = self.generator(occluded, hole)
        out = out.float()
        comp = hole * out + valid * clean
        boxes = hole_boxes(hole, min_side=self.local_size // 2)
        real_local = crop_boxes(clean, boxes, self.local_size)
        fake_local = crop_boxes(comp, boxes, self.local_size)

        # discriminators (hinge)
        self.d_global.requires_grad_(True)
        self.d_local.requires_grad_(True)
        with self._autocast():
            real_g = self.d_global(torch.cat([clean, hole], 1)).float()
            fake_g = self.d_global(torch.cat([comp.detach(), hole], 1)).float()
            real_l = self.d_local(real_local).float()
            fake_l = self.d_local(fake_local.detach()).float()
        d_global = F.relu(1 - real_g).mean() + F.relu(1 + fake_g).mean()
        d_local = F.relu(1 - real_l).mean() + F.relu(1 + fake_l).mean()
        self.opt_dg.zero_grad(set_to_none=True)
        self.opt_dl.zero_grad(set_to_none=True)
        self.scaler_d.scale(d_global + d_local).backward()
        self.scaler_d.step(self.opt_dg)
        self.scaler_d.step(self.opt_dl)
        self.scaler_d.update()

        # generator
        self.d_global.requires_grad_(False)
        self.d_local.requires_grad_(False)
        with self._autocast():
            adv_global = -self.d_global(torch.cat([comp, hole], 1)).float().mean()
            adv_local = -self.d_local(fake_local).float().mean()
        l_valid = (valid * (out - clean)).abs().mean()
        l_hole = (hole * (out - clean)).abs().mean()
        l_tv = border_tv(comp, hole)
        total = w.valid * l_valid + w.hole * l_hole + w.tv * l_tv + w.adv_global * adv_global + w.adv_local * adv_local
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
        self.d_global.requires_grad_(True)
        self.d_local.requires_grad_(True)

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
        }

    def generator_state(self) -> dict[str, torch.Tensor]:
        return self.generator.state_dict()

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        return {**{f"global.{k}": v for k, v in self.d_global.state_dict().items()},
                **{f"local.{k}": v for k, v in self.d_local.state_dict().items()}}

    def optimizer_state(self) -> dict[str, Any]:
        return {"G": self.opt_g.state_dict(), "D_global": self.opt_dg.state_dict(), "D_local": self.opt_dl.state_dict(),
                "scaler_G": self.scaler_g.state_dict(), "scaler_D": self.scaler_d.state_dict()}

    def load_state(self, generator: dict[str, torch.Tensor], discriminators: dict[str, torch.Tensor],
                   optimizers: dict[str, Any], origin: str) -> None:
        """Restore everything :meth:`generator_state`, :meth:`discriminator_state` and
        :meth:`optimizer_state` returned; raises CheckpointError naming mismatched keys."""
        load_into(self.generator, generator, origin)
        for prefix, module in (("global.", self.d_global), ("local.", self.d_local)):
            load_into(module, {k[len(prefix):]: v for k, v in discriminators.items() if k.startswith(prefix)}, origin)
        load_states({"G": self.opt_g, "D_global": self.opt_dg, "D_local": self.opt_dl, "scaler_G": self.scaler_g,
                     "scaler_D": self.scaler_d}, optimizers, origin)


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

    def __init__(
        self,
        checkpoint: str | None = None,
        *,
        size: int | None = None,
        base_channels: int | None = None,
        device: str = "auto",
    ) -> None:
        """``checkpoint``: a ``.safetensors`` (or weights-only torch) generator checkpoint from
        ``recogbench train pconv-gan``. ``size`` (native size) and ``base_channels`` default to
        the checkpoint's metadata, else 112 and 32; a ``base_channels`` contradicting it is an error."""
        if not checkpoint:
            raise ValueError(
                "pconv-gan needs a trained checkpoint: recogbench train pconv-gan --data FACES --out DIR, "
                "then use pconv-gan:checkpoint=DIR/last.safetensors"
            )
        super().__init__(device=device)
        path = Path(checkpoint).expanduser()
        state, meta = load_state(path)
        arch_meta = meta.get("architecture")
        if isinstance(arch_meta, dict):
            try:
                arch = GeneratorConfig.from_meta(arch_meta)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{path}: bad architecture metadata {arch_meta!r} ({exc})") from exc
            if base_channels is not None and int(base_channels) != arch.base_channels:
                raise ValueError(f"{path}: checkpoint has base_channels={arch.base_channels}, not {base_channels}")
        else:
            arch = GeneratorConfig(base_channels=int(base_channels or 32), depth=4,
                                   dilations=default_dilations(int(size or 112), 4))
        self.native_size = int(size or meta.get("size") or 112)
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

    @classmethod
    def make_trainer(cls, config: "TrainConfig", device: torch.device) -> PConvGANTrainer:
        """The trainer :func:`recogbench.train.train` drives."""
        if getattr(config, "stage", None) is not None:
            raise ValueError(f"pconv-gan trains in one stage; --stage {config.stage} is for id-inpainter")
        return PConvGANTrainer(config, device)
