"""Training ID-Inpainter's Fusor (stage 2) and identity Sampler with :func:`recogbench.train.train`.

Both follow the loop's :class:`~recogbench.train.Trainer` protocol (images N×3×112×112 in
[0, 1], holes N×1×112×112 with 1 = hole) and run under ``torch.autocast`` (float16) only on
CUDA with ``config.amp``, in the same code path otherwise. The backend's
``make_trainer(config, device)`` picks one by ``config.stage``.

**FusorTrainer** (``stage="fusor"``), as ``fusor_net.py`` / ``model/loss.py`` /
``dataloader/dataset.py`` / ``config/train.yaml`` publish it:

* pairs: for each face of the batch (the *source*, identity provider) the *target*
  (attribute provider) is another face of the batch, or with probability 0.2 the face
  itself (``same`` = 1, self-reconstruction); the official dataset draws the target from the
  whole data set and makes the last fifth of its index range self-pairs.
* both are the CLEAN faces. The official dataset also draws a hole mask, but
  ``training_step`` never uses it (and ``fusor_trainer.py``'s ``--trainmode`` "with masked
  input" option is parsed and ignored): the Fusor learns face swapping on unoccluded faces
  and meets black-filled sources and CA composites only at inference. The loop's
  ``occluded``/``hole`` are therefore not used by :meth:`FusorTrainer.step`.
* losses (per step: G+E update, then D update on the same, pre-update output):
  ``10·attribute + id_weight·identity + 10·reconstruction + hinge GAN`` for G and E; hinge
  loss over the three scales for D; Adam, lr 4e-4, betas (0, 0.999), batch 16; ``id_weight``
  5, 7 and 9 in the official three-stage schedule (FFHQ, CelebA, VGGFace2).
* Z is loaded from ``config.identity_model`` (the official ``Resnet50_70000_net.pth`` or
  the sampler stage's ``last.safetensors``; or a Fusor checkpoint to continue from), never
  updated, and kept in eval mode. (The
  official Lightning module leaves Z in train mode, so its BatchNorm statistics drift with
  the generated images and its dropout is active while it scores identities; see
  :class:`FusorTrainer`.)

**SamplerTrainer** (``stage="sampler"``): the IR-50 trained with an ArcFace head
(s = 64, m = 0.5) on faces whose holes are black-filled exactly as the Fusor's source at
inference (``x·keep - hole`` in [-1, 1]); identity labels are the person folders of
``DATA/<person>/<image>``. SGD, momentum 0.9, weight decay 5e-4 (ArcFace's recipe); the
official repository publishes no sampler training code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F

from recogbench.checkpoint import load_into, load_state, load_states
from recogbench.verifiers.base import file_digest

from .fusor import (
    FUSOR_CHECKPOINT_FORMAT, Fusor, attribute_loss, fusor_from_state, hinge_d_loss, hinge_g_loss, identity_loss, reconstruction_loss,
)
from .sampler import SAMPLER_CHECKPOINT_FORMAT, ArcMarginProduct, Sampler, sampler_from_state

if TYPE_CHECKING:
    from recogbench.train import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["FusorTrainer", "SamplerTrainer", "black_filled", "SAME_FRACTION"]

FACE = 112
SAME_FRACTION = 0.2
"""Share of self-reconstruction pairs (``Train_Dataset``: index ≥ 4·len of a 5·len range)."""
ATT_WEIGHT, REC_WEIGHT, GAN_WEIGHT = 10.0, 10.0, 1.0
ARC_SCALE, ARC_MARGIN = 64.0, 0.5


def black_filled(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """[0, 1] images → [-1, 1] with the hole set to -1: the official ``source_img =
    target·mask - (1 - mask)`` (what Z sees at inference)."""
    keep = 1.0 - hole
    return (images * 2 - 1) * keep - hole


def _check_size(config: "TrainConfig", what: str) -> None:
    if config.size != FACE:
        raise ValueError(f"id-inpainter {what} trains at 112×112 only (its layers are sized for it); got size={config.size}")


class FusorTrainer:
    """Trains E and G (and D) of :class:`~.fusor.Fusor` around a frozen sampler Z.

    ``config.identity_model`` (required): the sampler weights; Z takes its depth, width
    and feature size from them, and G's ``c_id`` follows. It may instead be a Fusor
    checkpoint (the official Lightning ``.ckpt`` or a ``fusor`` stage's ``last.safetensors``):
    training then continues from its G, E, Z (and D when present; else a new D), with new
    optimiser states — how the official schedule moves from ``id_weight`` 5 to 7 to 9 (it
    resumes the previous stage's checkpoint on the next data set). ``config.base_channels`` is the
    Fusor ``width`` (32 = official). ``config.id_weight``: the identity-loss weight.
    ``stage1``: optional ``(occluded, hole) → composite`` in [0, 1] (the CA inpainter) used by
    :meth:`restore`; without it the stage-1 input is the image with a zero-filled hole
    (gray 0.5 in [0, 1]; the official ``masked_img``), so validation measures the Fusor
    alone. Deviation from the official training: Z stays in eval mode (see the module
    docstring).
    """

    loss_names: tuple[str, ...] = ("d_hinge", "g_attribute", "g_identity", "g_reconstruction", "g_adv", "g_total")

    def __init__(self, config: "TrainConfig", device: torch.device,
                 stage1: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        _check_size(config, "fusor")
        if not config.identity_model:
            raise ValueError("id-inpainter fusor training needs the sampler weights (identity_model / --identity-model): "
                             "the official Resnet50_70000_net.pth or a sampler stage's last.safetensors")
        self.device, self.stage1 = device, stage1
        self.id_weight = float(config.id_weight)
        path = Path(config.identity_model).expanduser()
        state, _ = load_state(path)
        self.identity_source = {"path": str(path), "sha256": file_digest(path)}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if any(k.startswith("G.") for k in state):
                # a Fusor checkpoint: continue from it (the official id_weight 5 → 7 → 9 schedule)
                self.fusor = fusor_from_state(state, str(path))
                if self.fusor.D is None:
                    self.fusor = self._fresh_d(self.fusor)
                self.identity_source["kind"] = "fusor"
                if self.fusor.architecture()["width"] != config.base_channels:
                    raise ValueError(f"{path}: a Fusor of width {self.fusor.architecture()['width']}; "
                                     f"set base_channels to match (got {config.base_channels})")
            else:
                z = sampler_from_state(state, str(path))
                self.fusor = Fusor(z.feature_dim, width=config.base_channels, sampler_layers=z.num_layers,
                                   sampler_width=z.width)
                self.fusor.Z.load_state_dict(z.state_dict())
                self.identity_source["kind"] = "sampler"
        self.fusor.Z.requires_grad_(False)
        self.fusor.to(device)
        betas = (0.0, 0.999)
        self.opt_g = torch.optim.Adam([*self.fusor.G.parameters(), *self.fusor.E.parameters()], lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.fusor.D.parameters(), lr=config.lr, betas=betas)
        self.amp = bool(config.amp) and device.type == "cuda"
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=self.amp)

    @staticmethod
    def _fresh_d(without_d: Fusor) -> Fusor:
        """``without_d`` (G, E, Z loaded) with a newly initialised discriminator."""
        arch = without_d.architecture()
        fusor = Fusor(arch["c_id"], width=arch["width"], sampler_layers=arch["sampler"]["num_layers"],
                      sampler_width=arch["sampler"]["width"])
        fusor.load_state_dict({**fusor.state_dict(), **without_d.state_dict()})
        return fusor

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def _train_mode(self) -> None:
        self.fusor.train()
        self.fusor.Z.eval()

    def pairs(self, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target, source, same) in [-1, 1] from a batch of clean [0, 1] faces; draws from
        torch's global CPU generator (restored on resume)."""
        b = clean.shape[0]
        x = clean * 2 - 1
        own = torch.arange(b)
        same = torch.rand(b) < SAME_FRACTION
        other = (own + torch.randint(1, max(b, 2), (b,))) % b     # any other face of the batch
        pick = torch.where(same, own, other)
        same = pick == own                                        # a batch of one can only self-pair
        return x[pick.to(x.device)], x, same.to(x.device, torch.float32)

    def step(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
        """One G+E update then one D update (the official optimizer order); ``occluded`` and
        ``hole`` are unused, as in the official training."""
        target, source, same = self.pairs(clean)
        fusor = self.fusor
        self._train_mode()

        # generator + attribute encoder
        fusor.D.requires_grad_(False)
        with self._autocast():
            out = fusor.train_forward(target, source)
            adv = hinge_g_loss(fusor.D(out["output"]))
        att = attribute_loss(out["z_att"], out["output_z_att"])
        idl = identity_loss(out["z_id"], out["output_z_id"])
        rec = reconstruction_loss(target, out["output"], same)
        total = ATT_WEIGHT * att + self.id_weight * idl + REC_WEIGHT * rec + GAN_WEIGHT * adv
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(total).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        fusor.D.requires_grad_(True)

        # discriminator: real = the target, fake = the output before this step's update
        fake = out["output"].detach()
        with self._autocast():
            d_real = fusor.D(target)
            d_fake = fusor.D(fake)
        d_loss = hinge_d_loss(d_real, d_fake)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(d_loss).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

        values = {"d_hinge": d_loss, "g_attribute": att, "g_identity": idl, "g_reconstruction": rec,
                  "g_adv": adv, "g_total": total}
        return {k: float(v.detach()) for k, v in values.items()}

    @torch.no_grad()
    def restore(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Inference as the inpainter computes it, in [0, 1] at 112 px:
        ``G(normalize(Z(source)), E(composite))`` with ``source`` the black-filled occluded
        face and ``composite`` stage 1's output (``stage1``) or the zero-filled image."""
        self.fusor.eval()
        keep = 1.0 - hole
        if self.stage1 is not None:
            composite = self.stage1(occluded, hole).float() * 2 - 1
        else:
            composite = (occluded * 2 - 1) * keep
        with self._autocast():
            out = self.fusor(composite, black_filled(occluded, hole))
        return (out.float() + 1) / 2

    # -- state for checkpoints -------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "format": FUSOR_CHECKPOINT_FORMAT, "stage": "fusor", "architecture": self.fusor.architecture(), "size": FACE,
            "identity_model": self.identity_source, "perceptual": None,
            "loss_weights": {"attribute": ATT_WEIGHT, "identity": self.id_weight, "reconstruction": REC_WEIGHT,
                             "gan_hinge": GAN_WEIGHT},
            "same_fraction": SAME_FRACTION, "z_mode": "eval (frozen)",
            "inputs": "composite: stage-1 output, source: black-filled occluded face; RGB in [-1, 1]",
        }

    def generator_state(self) -> dict[str, torch.Tensor]:
        """``G.*``, ``E.*`` and ``Z.*`` (the official checkpoint's keys less ``D.*``)."""
        return {k: v for k, v in self.fusor.state_dict().items() if not k.startswith("D.")}

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.fusor.state_dict().items() if k.startswith("D.")}

    def optimizer_state(self) -> dict[str, Any]:
        return {"G": self.opt_g.state_dict(), "D": self.opt_d.state_dict(),
                "scaler_G": self.scaler_g.state_dict(), "scaler_D": self.scaler_d.state_dict()}

    def load_state(self, generator: dict[str, torch.Tensor], discriminators: dict[str, torch.Tensor],
                   optimizers: dict[str, Any], origin: str) -> None:
        load_into(self.fusor, {**generator, **discriminators}, origin)
        load_states({"G": self.opt_g, "D": self.opt_d, "scaler_G": self.scaler_g, "scaler_D": self.scaler_d},
                    optimizers, origin)


class SamplerTrainer:
    """Trains the identity sampler (IR-50, :class:`~.sampler.Sampler`) with an ArcFace head
    on black-filled occluded faces of identity-labelled folders.

    ``config.base_channels`` × 2 is the sampler width (32 → 64, official); with
    ``config.identity_model`` the sampler starts from those weights (and takes their
    shape). The loop calls :meth:`set_identities` before the first step. Log columns: the
    training batch's ArcFace loss and top-1 accuracy (plain cosine logits); validation adds
    ``val_id_gap``: mean cosine between a held-out black-filled face and the clean faces of
    its identity (itself included) minus that to other identities.
    """

    needs_labels = True
    loss_names: tuple[str, ...] = ("arc_accuracy", "arc_loss")
    val_names: tuple[str, ...] = ("val_id_same", "val_id_diff", "val_id_gap")

    def __init__(self, config: "TrainConfig", device: torch.device) -> None:
        _check_size(config, "sampler")
        self.device, self.seed, self.lr = device, config.seed, float(config.lr)
        self.init_from: dict[str, str] | None = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.identity_model:
                path = Path(config.identity_model).expanduser()
                state, _ = load_state(path)
                self.sampler = sampler_from_state(state, str(path))
                self.init_from = {"path": str(path), "sha256": file_digest(path)}
            else:
                self.sampler = Sampler(50, 256, width=2 * config.base_channels)
        self.sampler.to(device)
        self.head: ArcMarginProduct | None = None
        self.opt: torch.optim.Optimizer | None = None
        self.amp = bool(config.amp) and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def set_identities(self, n: int) -> None:
        """Build the ArcFace head for ``n`` identities and the optimiser (once)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 1)
            self.head = ArcMarginProduct(self.sampler.feature_dim, n, s=ARC_SCALE, m=ARC_MARGIN).to(self.device)
        self.opt = torch.optim.SGD([*self.sampler.parameters(), *self.head.parameters()], lr=self.lr, momentum=0.9,
                                   weight_decay=5e-4)

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def step(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor,
             labels: torch.Tensor | None = None) -> dict[str, float]:
        if self.head is None or self.opt is None:
            raise RuntimeError("SamplerTrainer.set_identities(n) must be called before training")
        if labels is None:
            raise ValueError("SamplerTrainer.step needs identity labels")
        self.sampler.train()
        with self._autocast():
            z = self.sampler(black_filled(clean, hole))
        logits = self.head(z.float(), labels)
        loss = F.cross_entropy(logits, labels.long())
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        with torch.no_grad():
            acc = (self.head.cosine(z.detach()).argmax(1) == labels).float().mean()
        return {"arc_accuracy": float(acc), "arc_loss": float(loss.detach())}

    @torch.no_grad()
    def restore(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The sampler does not inpaint: the occluded image itself (the loop's image
        metrics then show the occluded baseline)."""
        return occluded.float()

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Unit identity vectors (eval mode) of [-1, 1] images."""
        self.sampler.eval()
        parts = []
        for i in range(0, len(images), batch):
            with self._autocast():
                parts.append(F.normalize(self.sampler(images[i:i + batch]).float()))
        return torch.cat(parts)

    @torch.no_grad()
    def validate(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor,
                 labels: torch.Tensor | None) -> dict[str, float]:
        nan = float("nan")
        if labels is None or len(labels) < 2:
            return {k: nan for k in self.val_names}
        cos = self.embed(black_filled(clean, hole)) @ self.embed(clean * 2 - 1).T
        same = labels[:, None] == labels[None, :]
        s = float(cos[same].mean())
        d = float(cos[~same].mean()) if bool((~same).any()) else nan
        return {"val_id_same": s, "val_id_diff": d, "val_id_gap": s - d}

    # -- state for checkpoints -------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "format": SAMPLER_CHECKPOINT_FORMAT, "stage": "sampler", "architecture": self.sampler.architecture(),
            "size": FACE, "perceptual": None, "init_from": self.init_from,
            "head": {"type": "ArcFace", "s": ARC_SCALE, "m": ARC_MARGIN,
                     "classes": None if self.head is None else self.head.out_features},
            "optimizer": {"type": "SGD", "lr": self.lr, "momentum": 0.9, "weight_decay": 5e-4},
            "inputs": "RGB in [-1, 1], holes black-filled (-1); output raw (not normalised)",
        }

    def generator_state(self) -> dict[str, torch.Tensor]:
        """The sampler's bare state_dict: the keys of the official ``Resnet50_70000_net.pth``."""
        return self.sampler.state_dict()

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        return {} if self.head is None else {f"head.{k}": v for k, v in self.head.state_dict().items()}

    def optimizer_state(self) -> dict[str, Any]:
        return {"sampler": None if self.opt is None else self.opt.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state(self, generator: dict[str, torch.Tensor], discriminators: dict[str, torch.Tensor],
                   optimizers: dict[str, Any], origin: str) -> None:
        if self.head is None or self.opt is None:
            raise RuntimeError("SamplerTrainer.set_identities(n) must be called before load_state")
        load_into(self.sampler, generator, origin)
        load_into(self.head, {k[len("head."):]: v for k, v in discriminators.items() if k.startswith("head.")}, origin)
        load_states({"sampler": self.opt, "scaler": self.scaler}, optimizers, origin)
