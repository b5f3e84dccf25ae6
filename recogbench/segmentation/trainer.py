"""Training SOCLNet through the one training loop (:func:`recogbench.train.train`).

The loop draws faces and occluders as for the inpainters; the segmenter also needs to know
which occluder drew each face. :class:`SOCLNetTrainer` declares ``needs_occluder_kinds =
True``: the loop maps its occluder list to class ids once with :meth:`occluder_kinds` and
passes each batch's ids as ``step(..., kinds=...)`` and ``validate(..., kinds=...)``.
Labels are the occlusion's exact mask × that id (:func:`~.classes.label_maps`).

Recipe (DeepLabv3's where the paper is silent): per-pixel cross-entropy (+ an optional soft
Dice term, ``dice_weight``, 0 by default), the poly learning-rate schedule
``lr · (1 − t/T)^0.9`` over the run's ``steps`` T (a resumed run given more steps stretches
the rest of the schedule); Adam (default, our choice: it suits
from-scratch and short runs and the loop's default lr 2e-4) or DeepLabv3's SGD (momentum
0.9, weight decay 1e-4; the paper's lr is 0.007 at batch 16). Mixed precision (fp16
autocast + gradient scaling) on CUDA with ``config.amp``, the same code path elsewhere.
BatchNorm in the image-pooling branch needs at least 2 faces per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from recogbench.checkpoint import CheckpointError, load_into
from recogbench.segmentation.classes import OCCLUDER_CLASSES, kind_table, label_maps
from recogbench.segmentation.metrics import SegmentationScores, confusion_matrix, dominant_class, metrics_from_confusion
from recogbench.segmentation.predict import predict_masks
from recogbench.segmentation.soclnet import SOCLNet, load_backbone_weights, segmenter_meta

if TYPE_CHECKING:
    from recogbench.train import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["OPTIMIZERS", "SOCLNetTrainer", "soft_dice_loss"]

OPTIMIZERS = ("adam", "sgd")
POLY_POWER = 0.9


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − mean soft Dice over the occluder classes present in ``target`` (background left
    out), computed over the whole batch: logits N×K×H×W, target N×H×W int64. 0 when the batch
    has no occluder pixel."""
    probs = torch.softmax(logits.float(), 1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum((0, 2, 3))
    dice = (2 * inter + eps) / (probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + eps)
    present = onehot.sum((0, 2, 3)) > 0
    present[0] = False
    if not bool(present.any()):
        return logits.sum() * 0.0
    return 1.0 - dice[present].mean()


class SOCLNetTrainer:
    """One optimisation step at a time of a :class:`SOCLNet` (a ``Trainer`` of
    :mod:`recogbench.train`). Images N×3×H×W in [0, 1]; holes N×1×H×W (1 = occluded);
    ``kinds`` N int64 class ids (0 = a clean face).

    ``config`` (a :class:`~recogbench.train.TrainConfig`): ``size`` (the native size, 112 or
    256), ``lr``, ``steps`` (the poly schedule's length), ``seed``, ``amp``;
    ``backbone_weights`` when the config has it (ImageNet ResNet-50). Keyword options for
    library use: ``trunk`` and ``aspp_channels`` (``tiny`` and e.g. 64 for tests),
    ``optimizer``, ``dice_weight``, ``attention``, ``classes``, ``aspp_rates``.
    """

    needs_occluder_kinds = True
    loss_names: tuple[str, ...] = ("ce", "dice", "train_pixel_acc", "lr", "loss")
    val_names: tuple[str, ...] = ("val_pixel_acc", "val_occluder_iou", "val_miou", "val_kind_acc")

    def __init__(self, config: "TrainConfig", device: torch.device, *, trunk: str = "resnet50",
                 optimizer: str = "adam", dice_weight: float = 0.0, attention: bool = True,
                 classes: Sequence[str] = OCCLUDER_CLASSES, aspp_rates: Sequence[int] = (12, 24, 36),
                 aspp_channels: int = 256, backbone_weights: str | None = None) -> None:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if dice_weight < 0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight}")
        self.device, self.size = device, int(config.size)
        self.lr, self.total_steps = float(config.lr), max(int(config.steps), 1)
        self.optimizer_name, self.dice_weight = optimizer, float(dice_weight)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = SOCLNet(len(classes), classes=classes, size=self.size, trunk=trunk, attention=attention,
                                 aspp_rates=aspp_rates, aspp_channels=aspp_channels)
        backbone_weights = backbone_weights or getattr(config, "backbone_weights", None)
        self.init_from = load_backbone_weights(self.model, backbone_weights) if backbone_weights else None
        if self.init_from is None and trunk == "resnet50":
            log.warning("soclnet: no ImageNet ResNet-50 weights given; the trunk trains from scratch")
        self.model.to(device)
        if optimizer == "sgd":
            self.weight_decay = 1e-4
            self.opt: torch.optim.Optimizer = torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=0.9,
                                                              weight_decay=self.weight_decay)
        else:
            self.weight_decay = 0.0
            self.opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        self.amp = bool(config.amp) and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.steps_done = 0

    @property
    def classes(self) -> tuple[str, ...]:
        return self.model.classes

    def occluder_kinds(self, occluders: Sequence[Any]) -> np.ndarray:
        """Class id of each occluder of the loop's list (instances or specs), (len,) int64;
        ValueError for an occluder with no class (``freeform``, ``region:*`` …)."""
        return kind_table(occluders, self.classes)

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def current_lr(self) -> float:
        """The poly schedule at the next step: ``lr · (1 − t/T)^0.9``, t = steps done."""
        t = min(self.steps_done, self.total_steps - 1)
        return self.lr * (1.0 - t / self.total_steps) ** POLY_POWER

    def _targets(self, hole: torch.Tensor, kinds: torch.Tensor | None, what: str) -> torch.Tensor:
        if kinds is None:
            raise ValueError(f"SOCLNetTrainer.{what} needs kinds= (the occluder class of each face); "
                             "recogbench.train passes them to trainers with needs_occluder_kinds = True")
        kinds = torch.as_tensor(kinds, device=hole.device).long()
        if kinds.numel() and (int(kinds.min()) < 0 or int(kinds.max()) >= self.model.num_classes):
            raise ValueError(f"kinds must be class ids in 0..{self.model.num_classes - 1}, got {kinds.tolist()}")
        return label_maps(hole, kinds)

    def step(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor,
             labels: torch.Tensor | None = None, *, kinds: torch.Tensor | None = None) -> dict[str, float]:
        """One update on the occluded faces; returns cross-entropy, Dice (when weighted), the
        batch's pixel accuracy, the learning rate used and the total loss."""
        target = self._targets(hole, kinds, "step")
        if occluded.shape[0] < 2:
            raise ValueError("SOCLNet trains on batches of at least 2 faces (BatchNorm after image pooling)")
        lr = self.current_lr()
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.model.train()
        with self._autocast():
            logits = self.model(occluded)
        logits = logits.float()
        ce = F.cross_entropy(logits, target)
        total = ce
        dice = None
        if self.dice_weight > 0:
            dice = soft_dice_loss(logits, target)
            total = total + self.dice_weight * dice
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.steps_done += 1
        with torch.no_grad():
            acc = (logits.argmax(1) == target).float().mean()
        out = {"ce": float(ce.detach()), "train_pixel_acc": float(acc), "lr": lr, "loss": float(total.detach())}
        if dice is not None:
            out["dice"] = float(dice.detach())
        return out

    @torch.no_grad()
    def restore(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """A segmenter does not inpaint: the occluded image itself (the loop's image metrics
        then show the occluded baseline; :meth:`validate` gives the segmentation columns)."""
        return occluded.float()

    def predict(self, images: torch.Tensor, batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~recogbench.segmentation.predict_masks` with the current weights."""
        return predict_masks(self.model, images, batch_size=batch_size, amp=self.amp)

    @torch.no_grad()
    def validate(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor,
                 labels: torch.Tensor | None = None, *, kinds: torch.Tensor | None = None) -> dict[str, float]:
        """Held-out scores of the predicted class maps: pixel accuracy, occluder IoU, mean IoU
        and the share of faces whose dominant predicted class is their occluder. Without
        ``kinds`` only the binary occluder IoU (against ``hole``) is defined."""
        pred, _ = self.predict(occluded)
        nan = float("nan")
        if kinds is None:
            binary = metrics_from_confusion(confusion_matrix((pred != 0).long(), (hole[:, 0] > 0.5).long(), 2))
            return {"val_pixel_acc": nan, "val_occluder_iou": binary.occluder_iou, "val_miou": nan, "val_kind_acc": nan}
        target = self._targets(hole, kinds, "validate")
        scores = SegmentationScores(self.model.num_classes)
        scores.update(pred, target)
        m = scores.compute()
        face_kind = dominant_class(pred, self.model.num_classes)
        kind_acc = float((face_kind == np.asarray(torch.as_tensor(kinds).cpu())).mean()) if len(face_kind) else nan
        return {"val_pixel_acc": m.pixel_accuracy, "val_occluder_iou": m.occluder_iou, "val_miou": m.mean_iou,
                "val_kind_acc": kind_acc}

    # -- state for checkpoints -------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """Inference metadata (what :func:`~recogbench.segmentation.load_segmenter` reads) and
        the training recipe."""
        return {
            **segmenter_meta(self.model), "perceptual": None, "init_from": self.init_from,
            "loss": {"cross_entropy": 1.0, "dice": self.dice_weight},
            "optimizer": {"type": self.optimizer_name, "lr": self.lr, "schedule": f"poly {POLY_POWER}",
                          "momentum": 0.9 if self.optimizer_name == "sgd" else None,
                          "weight_decay": self.weight_decay},
            "labels": "occlusion mask × class id of the occluder that drew the face",
        }

    def generator_state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        return {}

    def optimizer_state(self) -> dict[str, Any]:
        return {"model": self.opt.state_dict(), "scaler": self.scaler.state_dict(), "steps_done": self.steps_done}

    def load_state(self, generator: dict[str, torch.Tensor], discriminators: dict[str, torch.Tensor],
                   optimizers: dict[str, Any], origin: str) -> None:
        load_into(self.model, generator, origin)
        if discriminators:
            raise CheckpointError(f"{origin}: SOCLNet has no discriminators, but the checkpoint holds "
                                  f"{', '.join(sorted(discriminators)[:3])}")
        try:
            self.opt.load_state_dict(optimizers["model"])
            self.scaler.load_state_dict(optimizers["scaler"])
            self.steps_done = int(optimizers["steps_done"])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{origin}: optimizer state does not fit ({type(exc).__name__}: {exc})") from exc
