"""Training IFACENET (``recogbench train ifacenet``) through the one loop, :func:`recogbench.train.train`.

The published recipe (``train_inpainting.py``, ``enginecomplete.py``, ``loss.py`` of
``MiguelAGV10/De-Occlusion-Face-Model-based-on-Deep-Occlusor-Segmentation-and-Deep-Inpainting-Models``)::

    L_G = 1.7·perceptual + 4.0·style + 3.6·L1 + 4.7·adversarial
    perceptual = Σ_{relu1_1, relu2_1, relu3_1, relu4_1} L1(φ(out), φ(gt))          (VGG-19)
    style      = Σ_{relu2_2, relu3_4, relu4_4, relu5_2} L1(Gram φ(out), Gram φ(gt))  (Gram / C·H·W)
    L1         = masked mode: L1 over the hole; self-supervised mode: L1 over the whole image
    adversarial = BCE-with-logits(D(out), 1)   (D: the depthwise-separable PatchGAN)
    L_D = ½ [BCE(D(gt), 1) + BCE(D(out.detach()), 0)], after G's update, on the same output

Adam lr 1e-3, batch 8, 256×256 (masked mode betas (0.9, 0.999); the self-supervised script
uses (0.0, 0.9)). ``out`` is the raw network output (not composited), as published.

Modes. ``masked`` (``train_inpainting.py``): the input is the face with the hole burnt in
white (:func:`~inpainters.ifacenet.prepare_input`); holes from the loop's occlusion suite
(default ``freeform-coverage``: irregular strokes from the six hole-ratio bins, one bin per
face, evenly — the official loader draws its 12,000 NVIDIA masks by bin the same way).
``self-supervised`` (``train_selfsupervised.py``, ``TrainConfig.self_supervised``): the input
is the occluded face as it is, with no mask (real occluders pasted; default ``everyday``),
and the L1 is over the whole image: the network has to find the occluder itself.

Defects of the official training code, fixed here (each has a test that fails on the
official behaviour, ``tests/test_ifacenet_backend.py``):

(a) D's gradients are not zeroed between the generator's and D's backward passes, so D's
    step also follows +4.7·∇BCE(D(fake), 1) — the generator's objective. Here D takes no
    gradient from the generator's loss: D's gradients are exactly those of L_D.
(b) The hole L1 is ``L1Loss(out·mask, gt·mask)``: divided by B·3·H·W, so a hole of 10 % of
    the image weighs ten times less per pixel than a full-image loss. Here it is divided by
    the hole's size (3 × the hole pixels of the batch): the mean error per hole value. The
    published weight 3.6 is kept, so the hole term is 1/hole-ratio (≈ 2–20× over the six
    bins) stronger relative to the others than in the official run.
(c) ``model.train()`` keeps updating the running statistics of the "frozen" ImageNet ResNet
    trunk (its BatchNorm γ/β are frozen). Here, with ImageNet weights (``backbone_weights``),
    the trunk's BatchNorm layers stay in eval mode: the ImageNet statistics are used and kept.
    Without them the trunk is random and has no statistics worth keeping: its BatchNorm layers
    normalise with batch statistics (and update them), as the official code does.
(d) The ResNet (ImageNet weights) and VGG-19 (ImageNet weights) see [0, 1] inputs without the
    ImageNet mean/std. Here VGG-19 normalises inside (:class:`~inpainters.vgg.VGG19Features`),
    and the network is built with ``trunk_input="imagenet"``: its ResNet branch sees
    ``(x − mean)/std`` — what the ImageNet weights and their frozen statistics (c) expect —
    while the separable branch keeps the published [0, 1] input with white holes. The
    checkpoint records ``trunk_input``, and the ``ifacenet`` inpainter applies it; the authors'
    files (no such record) keep the published, un-normalised input, so the inpainter computes
    what the authors' model computes. Normalised inputs span ≈ 4.4× the range of [0, 1], so
    the perceptual and (quadratic) style terms are larger than in the official run; the
    published weights are kept.

Kept as published: the official freeze of the trunk (:func:`~inpainters.ifacenet.official_frozen`:
stem conv, every BatchNorm γ/β and the downsample convs), D's update after G's on G's
pre-update output, the raw (not composited) output in every loss.

Without VGG-19 weights (``perceptual_weights``) the perceptual and style terms are off, with
a warning and ``"perceptual": "disabled (no VGG19 weights given)"`` in the checkpoint
metadata; without ResNet-50 weights (``backbone_weights``) the trunk starts random, with a
warning and ``"backbone": "random …"`` in the metadata.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from inpainters.ifacenet import (
    CHECKPOINT_FORMAT,
    DEFAULT_DILATIONS,
    IFACENet,
    PatchGANDiscriminator,
    prepare_input,
)
from recogbench.checkpoint import GanTrainerState

if TYPE_CHECKING:
    from inpainters.vgg import VGG19Features
    from recogbench.train import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["IFACENetTrainer", "LossWeights", "hole_l1", "perceptual_and_style", "CONTENT_LAYERS", "STYLE_LAYERS",
           "PERCEPTUAL_DISABLED", "BACKBONE_RANDOM", "FIXES"]

#: VGG-19 layers of the perceptual (content) term, each weighted 1.
CONTENT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
#: VGG-19 layers of the style (Gram) term.
STYLE_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
PERCEPTUAL_DISABLED = "disabled (no VGG19 weights given)"
BACKBONE_RANDOM = "random (no ImageNet ResNet-50 weights given)"
#: What this trainer does instead of the official code (recorded in every checkpoint).
FIXES = (
    "a: D's gradients come from D's loss only (official: plus 4.7*grad BCE(D(fake),1) left from G's backward)",
    "b: hole L1 divided by the hole's size (official: by B*3*H*W)",
    "c: with ImageNet trunk weights the trunk's BatchNorm stays in eval mode (official: running stats updated)",
    "d: ResNet branch and VGG-19 see ImageNet-normalised inputs (official: [0,1]); trunk_input=imagenet",
)


@dataclass(frozen=True)
class LossWeights:
    """The published weights (``a, b, c, d = 1.7, 4.0, 3.6, 4.7``, found by TPE)."""

    perceptual: float = 1.7
    style: float = 4.0
    l1: float = 3.6
    adversarial: float = 4.7


def hole_l1(output: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the hole: ``Σ |output − target| · hole / (C · Σ hole)`` over the
    whole batch (every hole value weighs the same). ``output``, ``target`` N×C×H×W, ``hole``
    N×1×H×W (1 = hole). Scalar; 0 when there is no hole. (The official
    ``L1Loss(out·mask, gt·mask)`` is this times the hole ratio.)"""
    m = hole.to(output.dtype)
    diff = (output - target).abs() * m
    return diff.sum() / (m.sum() * output.shape[1]).clamp_min(1.0)


def perceptual_and_style(vgg: "VGG19Features", output: torch.Tensor, target: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """IFACENET's perceptual and style terms (scalars, unweighted): ``vgg`` returns the
    :data:`CONTENT_LAYERS` then the :data:`STYLE_LAYERS`; perceptual = Σ L1 of the content
    features, style = Σ L1 of the Gram matrices (÷ C·H·W) of the style features. Inputs
    N×3×H×W in [0, 1]; the target's features carry no gradient."""
    n = len(CONTENT_LAYERS)
    with torch.no_grad():
        f_gt = vgg(target)
    f_out = vgg(output)
    from inpainters.vgg import gram

    perceptual = output.new_zeros((), dtype=torch.float32)
    style = output.new_zeros((), dtype=torch.float32)
    for a, g in zip(f_out[:n], f_gt[:n]):
        perceptual = perceptual + F.l1_loss(a.float(), g.float())
    for a, g in zip(f_out[n:], f_gt[n:]):
        style = style + F.l1_loss(gram(a), gram(g))
    return perceptual, style


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class IFACENetTrainer(GanTrainerState):
    """One training step at a time for :func:`recogbench.train.train` (see the module docstring).

    Owns the generator (:class:`~inpainters.ifacenet.IFACENet`, published dilations, official
    trunk freeze, ``trunk_input="imagenet"``), the PatchGAN discriminator, their Adam optimisers
    and gradient scalers; mixed precision only on CUDA with ``config.amp``. Images N×3×H×W in
    [0, 1], holes N×1×H×W (1 = hole); H, W multiples of 32.
    """

    loss_names: tuple[str, ...] = ("d_real", "d_fake", "d_total", "g_perceptual", "g_style", "g_l1", "g_adv",
                                   "g_total")

    def __init__(self, config: "TrainConfig", device: torch.device, weights: LossWeights = LossWeights()) -> None:
        if config.size % 32:
            raise ValueError(f"ifacenet trains at sizes that are multiples of 32 (published: 256); got size={config.size}")
        self.device = device
        self.weights = weights
        self.size = int(config.size)
        self.self_supervised = bool(getattr(config, "self_supervised", False))
        self.mode = "self-supervised" if self.self_supervised else "masked"
        self.dilation = DEFAULT_DILATIONS
        backbone = getattr(config, "backbone_weights", None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.generator = IFACENet(self.dilation, resnet_weights=backbone, official_freeze=True,
                                      trunk_input="imagenet")
            self.discriminator = PatchGANDiscriminator()
        if backbone:
            from recogbench.verifiers.base import file_digest

            self.backbone = f"ResNet-50 {Path(backbone).name} sha256:{file_digest(Path(backbone).expanduser())}"
        else:
            log.warning("ifacenet: no ImageNet ResNet-50 weights given (backbone_weights); the trunk starts random")
            self.backbone = BACKBONE_RANDOM
        # (c): ImageNet statistics are kept; a random trunk's BatchNorm uses batch statistics.
        self.freeze_trunk_bn = bool(backbone)
        self.generator.to(device)
        self.discriminator.to(device)
        self.vgg: nn.Module | None = None
        if config.perceptual_weights:
            from inpainters.vgg import load_vgg19

            vgg, digest = load_vgg19(config.perceptual_weights, CONTENT_LAYERS + STYLE_LAYERS)
            self.vgg = vgg.to(device)
            self.perceptual = f"VGG19 {Path(config.perceptual_weights).name} sha256:{digest}"
        else:
            log.warning("ifacenet: no VGG19 weights given (perceptual_weights); the perceptual and style losses "
                        "are disabled")
            self.perceptual = PERCEPTUAL_DISABLED
        self.betas = (0.0, 0.9) if self.self_supervised else (0.9, 0.999)
        # fused: one kernel per step (on a CPU ~6× faster than the default for these 52 M parameters)
        self.opt_g = torch.optim.Adam([p for p in self.generator.parameters() if p.requires_grad], lr=config.lr,
                                      betas=self.betas, fused=True)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=self.betas, fused=True)
        self.amp = bool(config.amp) and device.type == "cuda"
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=self.amp)

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def _train_mode(self) -> None:
        self.generator.train()
        self.discriminator.train()
        if self.freeze_trunk_bn:
            for m in self.generator.feature_extractor.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    # -- the pieces of a step (public so tests can recompute each) -----------------------------

    def network_input(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Masked mode: the hole burnt in white; self-supervised: the occluded image as is."""
        return occluded if self.self_supervised else prepare_input(occluded, hole)

    def forward(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The generator's training-mode output N×3×H×W (float32), as :meth:`step` computes it."""
        self._train_mode()
        with self._autocast():
            out = self.generator(self.network_input(occluded, hole))
        return out.float()

    def l1(self, output: torch.Tensor, clean: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Masked mode: :func:`hole_l1` (fix (b)); self-supervised: the whole image's mean L1."""
        return (output - clean).abs().mean() if self.self_supervised else hole_l1(output, clean, hole)

    def discriminator_loss(self, clean: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """``d_real`` = BCE(D(clean), 1), ``d_fake`` = BCE(D(fake), 0), ``d_total`` = their mean."""
        with self._autocast():
            real_logits = self.discriminator(clean).float()
            fake_logits = self.discriminator(fake).float()
        d_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        d_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return {"d_real": d_real, "d_fake": d_fake, "d_total": 0.5 * (d_real + d_fake)}

    def step(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
        """One generator update, then one discriminator update on the same (pre-update) output,
        as published; returns the loss terms computed (perceptual and style only with VGG19
        weights). D's gradients are left in place after the step: exactly those of ``d_total``."""
        w = self.weights
        out = self.forward(occluded, hole)

        # generator: D is a fixed judge here and collects no gradient (fix (a))
        _set_requires_grad(self.discriminator, False)
        try:
            with self._autocast():
                logits = self.discriminator(out).float()
            g_adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            g_l1 = self.l1(out, clean, hole)
            total = w.l1 * g_l1 + w.adversarial * g_adv
            perceptual = style = None
            if self.vgg is not None:
                with self._autocast():
                    perceptual, style = perceptual_and_style(self.vgg, out, clean)
                total = total + w.perceptual * perceptual + w.style * style
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(total).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        finally:
            _set_requires_grad(self.discriminator, True)

        # discriminator: its own loss only
        d = self.discriminator_loss(clean, out.detach())
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(d["d_total"]).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

        values = {**d, "g_perceptual": perceptual, "g_style": style, "g_l1": g_l1, "g_adv": g_adv, "g_total": total}
        return {k: float(v.detach()) for k, v in values.items() if v is not None}

    @torch.no_grad()
    def restore(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The eval-mode prediction, float32, exactly as the ``ifacenet`` inpainter computes it."""
        self.generator.eval()
        return self.generator(self.network_input(occluded, hole)).float()

    # -- state for checkpoints -------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """What the inference checkpoint records besides the weights (the inpainter reads
        ``format``, ``dilation``, ``mode`` and ``trunk_input``)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "architecture": {"dilation": list(self.dilation)},
            "dilation": list(self.dilation),
            "size": self.size,
            "mode": self.mode,
            "trunk_input": self.generator.trunk_input,
            "backbone": self.backbone,
            "trunk_batchnorm": "frozen (eval mode)" if self.freeze_trunk_bn else "batch statistics (random trunk)",
            "perceptual": self.perceptual,
            "loss_weights": asdict(self.weights),
            "l1": "whole image" if self.self_supervised else "hole (divided by the hole's size)",
            "betas": list(self.betas),
            "fixes": list(FIXES),
        }

