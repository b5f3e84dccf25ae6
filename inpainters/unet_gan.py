"""Facial de-occlusion U-Net GAN: a pix2pix-style U-Net generator with optional attention gates.

The proposal ("Facial Deocclusion" U-Net GAN): an image-to-image translation network from the
occluded face to the clean one, trained with an adversarial and a reconstruction loss.

Generator (pix2pix, Isola et al. 2017, its ``UnetGenerator``): ``depth`` stride-2 4×4
convolutions down (LeakyReLU 0.2 before each but the first; InstanceNorm after each but the
first and the innermost), the same number of 4×4 transposed convolutions up (ReLU before
each; InstanceNorm after each but the outermost, which ends in tanh); each encoder level's
features are concatenated onto the decoder's at the same size (the skips). Level ``i`` has
``base_channels·min(2^i, max_mult)`` channels. Differences from pix2pix, all deliberate:
InstanceNorm instead of BatchNorm (a face's restoration does not depend on the rest of its
batch, and eval equals train behaviour); no dropout (restorations are deterministic);
transposed convolutions take their output size from the skip, so any input size works
(112 → 56 → 28 → 14 → 7 → 3 and back).

Attention gates (``attention=True``; Oktay et al. 2018, "Attention U-Net"): before a skip is
concatenated, it is multiplied by a per-pixel gate α ∈ (0, 1) computed from the skip ``x``
and the coarser decoder features ``g`` (the gating signal):
``α = σ(ψ(ReLU(θ(x) + φ(g))))``, θ a 2×2 stride-2 convolution (x to g's size), φ and ψ 1×1
convolutions, α resized bilinearly to x's size. Inter-channel width: half the skip's.

Modes (stored in the checkpoint): ``masked`` — the input is the occluded face with the hole
set to 0 (mid-grey in the network's [−1, 1] range) plus the hole mask as a fourth channel;
the harness composites the output into the hole like every inpainter. ``blind`` — the input
is the occluded face only (no mask): the network must find the occluder itself, and the
inpainter returns the **whole generated face** (``composites = False``): the hole-only
composite is not applied, because a blind restorer in the field has no mask to composite
with. Rows record the mode in ``inpainter_settings``.

Discriminator: pix2pix's conditional 70×70 PatchGAN (``n_layers=3``; InstanceNorm), judging
(generator input, candidate face) pairs; the candidate is what the inpainter returns (the
hole composite in masked mode, the raw output in blind mode). Losses: vanilla GAN (BCE with
logits; D's loss halved as in pix2pix) + ``rec``·(d(out, clean) + ``hole``·d over the hole
pixels), d = L1 (default) or MSE, means over all pixels; Adam (β 0.5, 0.999), lr 2e-4.

Train with ``recogbench train unet-gan[:mode=blind,attention=1,depth=5,recon=mse]``; load
the resulting ``last.safetensors`` with ``unet-gan:checkpoint=PATH``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from recogbench.checkpoint import CheckpointError, GanTrainerState, load_into, load_state, save_state
from recogbench.inpaint import Inpainter
from recogbench.verifiers.base import file_digest

if TYPE_CHECKING:
    from recogbench.train import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "recogbench-unet-gan/1"
MODES = ("masked", "blind")
RECON = ("l1", "mse")
TRAIN_OPTIONS = ("mode", "attention", "depth", "recon")
"""Options of the training spec ``unet-gan:key=value,...`` (see :func:`train_options`)."""

INPUT_CONTRACT = {
    "range": "[-1, 1] = (x - 0.5) / 0.5",
    "channels": "RGB (+ hole mask, 1 = hole, in masked mode)",
    "hole_fill": "0 (mid-grey) in masked mode; the occluded pixels as they are in blind mode",
    "output": "(tanh + 1) / 2, RGB in [0, 1]",
}
"""How the public [0, 1] contract is converted for the network (see :meth:`UNetGenerator.prepare`)."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`UNetGenerator` (stored in checkpoint metadata)."""

    base_channels: int = 32
    depth: int = 5
    max_mult: int = 8
    attention: bool = False
    mode: str = "masked"

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.depth < 1 or self.max_mult < 1:
            raise ValueError(f"invalid unet-gan architecture {self}")
        if self.mode not in MODES:
            raise ValueError(f"unet-gan: mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    @property
    def widths(self) -> list[int]:
        return [self.base_channels * min(2**i, self.max_mult) for i in range(self.depth)]

    @property
    def in_channels(self) -> int:
        return 4 if self.mode == "masked" else 3

    def min_size(self) -> int:
        """The smallest input side: every level must keep at least one pixel."""
        return 2**self.depth

    def to_meta(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "UNetConfig":
        known = {k: meta[k] for k in ("base_channels", "depth", "max_mult", "attention", "mode") if k in meta}
        for k in ("base_channels", "depth", "max_mult"):
            if k in known:
                known[k] = int(known[k])
        if "attention" in known:
            known["attention"] = bool(known["attention"])
        return cls(**known)


def config_from_state(state: dict[str, torch.Tensor], origin: str | Path) -> UNetConfig:
    """The architecture a generator state dict was saved from, read from its shapes (for files
    without metadata); CheckpointError naming ``origin`` when it is not a unet-gan generator."""
    widths = []
    while f"down.{len(widths)}.conv.weight" in state:
        widths.append(int(state[f"down.{len(widths)}.conv.weight"].shape[0]))
    if not widths:
        heads = sorted({k.split(".", 1)[0] for k in state})
        raise CheckpointError(f"{origin}: not a unet-gan generator (no down.0.conv.weight; its keys start with: "
                              f"{', '.join(heads[:8])})")
    base = widths[0]
    in_ch = int(state["down.0.conv.weight"].shape[1])
    if in_ch not in (3, 4) or any(w % base for w in widths):
        raise CheckpointError(f"{origin}: not a unet-gan generator (input channels {in_ch}, widths {widths})")
    return UNetConfig(base_channels=base, depth=len(widths), max_mult=max(widths) // base,
                      attention="gates.0.psi.weight" in state, mode="masked" if in_ch == 4 else "blind")


def _init_weights(module: nn.Module) -> None:
    """pix2pix's initialisation: conv weights N(0, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------- generator


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018) on a U-Net skip.

    ``forward(x, g)``: skip ``x`` N×Cx×H×W, gating signal ``g`` N×Cg×⌊H/2⌋×⌊W/2⌋ (the coarser
    decoder features) → ``(α·x, α)`` with α N×1×H×W in (0, 1).
    """

    def __init__(self, x_channels: int, g_channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or max(x_channels // 2, 1)
        self.theta = nn.Conv2d(x_channels, inter, 2, stride=2, bias=False)
        self.phi = nn.Conv2d(g_channels, inter, 1)
        self.psi = nn.Conv2d(inter, 1, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = F.relu(self.theta(x) + self.phi(g))
        alpha = torch.sigmoid(self.psi(q))
        alpha = F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * alpha, alpha


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int, *, act: bool, norm: bool) -> None:
        super().__init__()
        self.act = nn.LeakyReLU(0.2) if act else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1)
        self.norm = nn.InstanceNorm2d(cout, affine=True) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.act(x)))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, *, norm: bool) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        self.norm = nn.InstanceNorm2d(cout, affine=True) if norm else nn.Identity()

    def forward(self, x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
        return self.norm(self.conv(F.relu(x), output_size=list(size)))


class UNetGenerator(nn.Module):
    """pix2pix U-Net. ``forward(image, hole)``: image N×3×H×W in [0, 1] (the occluded face),
    hole N×1×H×W (1 = hole; read only in masked mode) → N×3×H×W in [0, 1], the whole face."""

    def __init__(self, cfg: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        w, d = cfg.widths, cfg.depth
        self.down = nn.ModuleList(
            _Down(cfg.in_channels if i == 0 else w[i - 1], w[i], act=i > 0, norm=0 < i < d - 1) for i in range(d)
        )
        # up[k] undoes down[d-1-k]: from level i = d-1-k to the size of level i-1 (the input for i = 0)
        self.up = nn.ModuleList()
        for i in reversed(range(d)):
            cin = w[i] if i == d - 1 else 2 * w[i]
            self.up.append(_Up(cin, w[i - 1] if i > 0 else 3, norm=i > 0))
        # gates[k] gates the skip of level i-1 (i = d-1-k) with the decoder features at level i
        self.gates = nn.ModuleList(
            AttentionGate(w[i - 1], w[i] if i == d - 1 else 2 * w[i]) for i in reversed(range(1, d))
        ) if cfg.attention else None
        _init_weights(self)

    def prepare(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The network input (:data:`INPUT_CONTRACT`): [−1, 1] RGB, hole zeroed and the mask
        appended in masked mode; the occluded face as it is in blind mode."""
        x = image * 2.0 - 1.0
        if self.cfg.mode == "blind":
            return x
        hole = hole.to(x.dtype)
        return torch.cat([x * (1.0 - hole), hole], dim=1)

    def net(self, x: torch.Tensor, *, return_attention: bool = False) -> Any:
        """The network on a prepared input; [0, 1] output (and the gates' α maps, coarse to fine)."""
        feats = []
        h = x
        for layer in self.down:
            h = layer(h)
            feats.append(h)
        alphas = []
        d = self.cfg.depth
        for k, up in enumerate(self.up):
            i = d - 1 - k
            if i == 0:
                h = up(h, x.shape[-2:])
                break
            skip = feats[i - 1]
            if self.gates is not None:
                skip, alpha = self.gates[k](skip, h)
                alphas.append(alpha)
            h = torch.cat([up(h, skip.shape[-2:]), skip], dim=1)
        out = (torch.tanh(h) + 1.0) / 2.0
        return (out, alphas) if return_attention else out

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.net(self.prepare(image, hole))


# --------------------------------------------------------------------------- discriminator


class PatchDiscriminator(nn.Module):
    """pix2pix's conditional PatchGAN (``NLayerDiscriminator``): ``n_layers`` stride-2 4×4
    convs (InstanceNorm after all but the first), one stride-1, then a 1-channel logit map.
    ``forward(x)``: N×``in_channels``×H×W → N×1×h×w (70×70 receptive field at ``n_layers=3``)."""

    def __init__(self, in_channels: int, base_channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = base_channels
        for _ in range(1, n_layers):
            nxt = min(ch * 2, base_channels * 8)
            layers += [nn.Conv2d(ch, nxt, 4, 2, 1), nn.InstanceNorm2d(nxt), nn.LeakyReLU(0.2)]
            ch = nxt
        nxt = min(ch * 2, base_channels * 8)
        layers += [nn.Conv2d(ch, nxt, 4, 1, 1), nn.InstanceNorm2d(nxt), nn.LeakyReLU(0.2), nn.Conv2d(nxt, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------- losses


@dataclass(frozen=True)
class LossWeights:
    """Generator loss: ``adv``·GAN + ``rec``·(d(out, clean) + ``hole``·d on the hole), pix2pix's λ = 100."""

    adv: float = 1.0
    rec: float = 100.0
    hole: float = 5.0


def reconstruction(out: torch.Tensor, clean: torch.Tensor, hole: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(whole-image, hole) reconstruction terms: per-pixel |·| (``l1``) or (·)² (``mse``) averaged
    over all pixels, the second counting only hole pixels (so it is hole-coverage weighted)."""
    diff = out - clean
    per = diff.abs() if kind == "l1" else diff * diff
    return per.mean(), (per * hole).mean()


def train_options(config: "TrainConfig") -> dict[str, Any]:
    """The unet-gan options of a training spec ``unet-gan:mode=blind,attention=1,depth=5,recon=l1``,
    parsed and checked, with defaults (masked, no attention, depth 5, L1)."""
    from recogbench.train import spec_options

    raw = spec_options(config.inpainter)
    unknown = sorted(set(raw) - set(TRAIN_OPTIONS))
    if unknown:
        raise ValueError(f"unet-gan: unknown training option(s) {', '.join(unknown)} (known: {', '.join(TRAIN_OPTIONS)})")
    mode = raw.get("mode", "masked")
    if mode not in MODES:
        raise ValueError(f"unet-gan: mode must be one of {', '.join(MODES)}, got {mode!r}")
    recon = raw.get("recon", "l1").lower()
    if recon not in RECON:
        raise ValueError(f"unet-gan: recon must be one of {', '.join(RECON)}, got {recon!r}")
    att = raw.get("attention", "0").lower()
    if att not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(f"unet-gan: attention must be 0 or 1, got {att!r}")
    try:
        depth = int(raw.get("depth", "5"))
    except ValueError:
        raise ValueError(f"unet-gan: depth must be an integer, got {raw['depth']!r}") from None
    if depth < 1:
        raise ValueError(f"unet-gan: depth must be >= 1, got {depth}")
    return {"mode": mode, "attention": att in ("1", "true", "yes", "on"), "depth": depth, "recon": recon}


# --------------------------------------------------------------------------------- trainer


class UNetGANTrainer(GanTrainerState):
    """One training step at a time for :func:`recogbench.train.train`.

    Owns the generator, the conditional PatchGAN, their Adam optimisers (β = 0.5, 0.999) and
    gradient scalers; mixed precision only on CUDA with ``config.amp``. Images N×3×H×W in
    [0, 1], holes N×1×H×W (1 = hole). ``composites`` tells the training loop whether the
    inpainter composites (masked) or returns the whole face (blind), so validation scores
    exactly what the inpainter returns.
    """

    loss_names: tuple[str, ...] = ("d_real", "d_fake", "g_adv", "g_rec", "g_rec_hole", "g_total")

    def __init__(self, config: "TrainConfig", device: torch.device, weights: LossWeights = LossWeights()) -> None:
        opts = train_options(config)
        self.device = device
        self.weights = weights
        self.recon = opts["recon"]
        self.arch = UNetConfig(base_channels=config.base_channels, depth=opts["depth"], attention=opts["attention"],
                               mode=opts["mode"])
        if config.size < self.arch.min_size():
            raise ValueError(f"unet-gan: depth {self.arch.depth} needs images of at least {self.arch.min_size()} px "
                             f"(size={config.size}); lower depth=")
        self.composites = self.arch.mode == "masked"
        self.size = config.size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.generator = UNetGenerator(self.arch)
            self.discriminator = PatchDiscriminator(self.arch.in_channels + 3, config.base_channels, n_layers=3)
        self.generator.to(device)
        self.discriminator.to(device)
        betas = (0.5, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        self.amp = bool(config.amp) and device.type == "cuda"
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=self.amp)

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def _returned(self, out: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """What the inpainter returns: the hole composite (masked) or the whole output (blind)."""
        return hole * out + (1.0 - hole) * occluded if self.composites else out

    def step(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
        """One discriminator update then one generator update; returns every loss term."""
        w = self.weights
        self.generator.train()
        self.discriminator.train()
        x = self.generator.prepare(occluded, hole)
        with self._autocast():
            out = self.generator.net(x)
        out = out.float()
        fake = self._returned(out, occluded, hole)
        real_in = torch.cat([x, clean * 2 - 1], 1)

        self.discriminator.requires_grad_(True)
        with self._autocast():
            real_logits = self.discriminator(real_in).float()
            fake_logits = self.discriminator(torch.cat([x, fake.detach() * 2 - 1], 1)).float()
        d_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        d_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(0.5 * (d_real + d_fake)).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

        self.discriminator.requires_grad_(False)
        with self._autocast():
            gen_logits = self.discriminator(torch.cat([x, fake * 2 - 1], 1)).float()
        g_adv = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
        g_rec, g_rec_hole = reconstruction(out, clean, hole, self.recon)
        total = w.adv * g_adv + w.rec * (g_rec + w.hole * g_rec_hole)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(total).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        self.discriminator.requires_grad_(True)
        values = {"d_real": d_real, "d_fake": d_fake, "g_adv": g_adv, "g_rec": g_rec, "g_rec_hole": g_rec_hole,
                  "g_total": total}
        return {k: float(v.detach()) for k, v in values.items()}

    @torch.no_grad()
    def restore(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The generator's raw prediction in eval mode, float32, exactly as :class:`UNetGAN` computes it."""
        self.generator.eval()
        return self.generator(occluded, hole).float()

    # -- state for checkpoints -------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """What the inference checkpoint records besides the weights."""
        return {"format": CHECKPOINT_FORMAT, "architecture": self.arch.to_meta(), "size": self.size,
                "recon": self.recon, "loss_weights": asdict(self.weights), "input": INPUT_CONTRACT}



# ------------------------------------------------------------------------------- inpainter


def write_checkpoint(path: str | Path, generator: UNetGenerator, meta: dict[str, Any] | None = None,
                     size: int = 112) -> Path:
    """Save ``generator`` as an inference checkpoint :class:`UNetGAN` loads (safetensors + meta);
    for tools and tests that build a generator directly (training writes its own)."""
    path = Path(path)
    full = {"format": CHECKPOINT_FORMAT, "architecture": generator.cfg.to_meta(), "size": size, **(meta or {})}
    save_state(path, generator.state_dict(), full)
    return path


class UNetGAN(Inpainter):
    """Facial de-occlusion U-Net GAN: pix2pix U-Net (+ attention gates), blind or masked (needs a trained checkpoint)."""

    name = "unet-gan"
    paper = "Facial de-occlusion U-Net GAN (pix2pix U-Net + PatchGAN; attention gates after Oktay et al. 2018)"
    license = "code MIT (this project); a checkpoint carries the terms of the faces it was trained on"
    train_spec_options = TRAIN_OPTIONS

    def __init__(self, checkpoint: str | None = None, *, mode: str | None = None, size: int | None = None,
                 device: str = "auto") -> None:
        """``checkpoint``: a generator checkpoint from ``recogbench train unet-gan`` (safetensors,
        or a weights-only torch file; without metadata the architecture is read from the
        shapes). ``mode`` (``masked``/``blind``) must agree with the checkpoint's; ``size``
        (native size) defaults to the checkpoint's, else 112."""
        if not checkpoint:
            raise ValueError("unet-gan needs a trained checkpoint: recogbench train unet-gan --data FACES --out DIR, "
                             "then use unet-gan:checkpoint=DIR/last.safetensors")
        if mode is not None and mode not in MODES:
            raise ValueError(f"unet-gan: mode must be one of {', '.join(MODES)}, got {mode!r}")
        super().__init__(device=device)
        path = Path(checkpoint).expanduser()
        state, meta = load_state(path)
        arch_meta = meta.get("architecture")
        if isinstance(arch_meta, dict):
            try:
                arch = UNetConfig.from_meta(arch_meta)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{path}: bad architecture metadata {arch_meta!r} ({exc})") from exc
        else:
            arch = config_from_state(state, path)
        if mode is not None and mode != arch.mode:
            raise ValueError(f"{path}: checkpoint was trained in mode={arch.mode}, not {mode}")
        self.generator = UNetGenerator(arch)
        load_into(self.generator, state, path)
        self.generator.to(self.device).eval().requires_grad_(False)
        self.arch = arch
        self.mode = arch.mode
        self.composites = arch.mode == "masked"  # blind: the whole generated face is returned
        self.native_size = int(size or meta.get("size") or 112)
        if self.native_size < arch.min_size():
            raise ValueError(f"{path}: size {self.native_size} is below depth {arch.depth}'s minimum {arch.min_size()}")
        self.checkpoint = path
        self.checkpoint_sha256 = file_digest(path)
        self.meta = meta

    def params(self) -> dict[str, str]:
        return {"inpainter": self.name, "checkpoint_sha256": self.checkpoint_sha256, "mode": self.mode,
                "attention": str(int(self.arch.attention)), "size": str(self.native_size)}

    @torch.no_grad()
    def _inpaint(self, images: torch.Tensor, masks: torch.Tensor, *, identity: torch.Tensor | None,
                 clean: torch.Tensor | None) -> torch.Tensor:
        return self.generator(images.float(), masks.float()).float()

    @classmethod
    def make_trainer(cls, config: "TrainConfig", device: torch.device) -> UNetGANTrainer:
        """The trainer :func:`recogbench.train.train` drives."""
        if getattr(config, "stage", None) is not None:
            raise ValueError(f"unet-gan trains in one stage; --stage {config.stage} is for id-inpainter")
        return UNetGANTrainer(config, device)
