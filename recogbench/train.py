"""Training learned inpainters on aligned faces with synthetic holes.

:func:`train` takes one frozen :class:`TrainConfig` and drives the inpainter's trainer
(the registered class's ``make_trainer(config, device)``, e.g. ``pconv-gan``) through a
reproducible loop:

* faces: a ``.bin`` pack or a protocol's images (``load_protocol(protocol or "bin", data)``),
  or a folder of ``*.jpg``/``*.png`` (recursively) aligned with :class:`FaceAligner`
  (``aligned=True``: already 112×112 aligned). Images that fail to load are dropped, counted
  in the log and in ``train_meta.json`` and the checkpoint metadata. A seeded
  ``val_fraction`` is held out for validation.
* holes: the occluders of ``expand_occlusion(occlusion)``. Sample ``k`` of step ``s`` draws
  its flip and occluder from ``item_rng(seed + s, k, "first")`` and is occluded with
  ``item_rng(seed + s, k, "second")`` (via :func:`occlude_batch`); batches are drawn from
  per-epoch permutations seeded by (seed, epoch). Nothing depends on the history, so a
  resumed run replays exactly what an uninterrupted one does.
* outputs in ``out``: ``step_XXXXXX.safetensors`` and ``last.safetensors`` (generator +
  JSON metadata: config, step, architecture, perceptual status, data counts) every
  ``checkpoint_every`` steps and at the end; ``discriminators_last.safetensors`` and
  ``optim_last.pt`` (optimiser and scaler states and RNG, loadable with
  ``weights_only=True``) for resuming; ``log.csv`` (every loss term per step, validation
  PSNR/SSIM/hole L1 on the hole-composited output at every sample/checkpoint step);
  ``samples/step_XXXXXX.png`` (rows: clean | occluded | restored) every ``sample_every``
  steps; ``train_meta.json``.
* mixed precision only on CUDA with ``amp=True``; the same code path otherwise.
* stored pairs (``pairs``: a folder read by :mod:`recogbench.stored_pairs`, ``Occ_imgs/`` +
  ``Orig_imgs/`` (+ ``Segmentations/``) or MaskedFace-Net beside FFHQ): the occluded, clean
  and hole images come from disk instead of synthetic occlusion; batches draw the same stream
  of faces and the same flips (all three images alike); the held-out pairs are scored as
  stored. Trainers that need identity labels or occluder kinds are refused.
* a spec ``NAME:key=value,...`` (``unet-gan:mode=blind``) passes options to a trainer whose
  class lists them in ``train_spec_options`` (read with :func:`spec_options`).
* several processes (``torchrun``, :mod:`recogbench.ddp`): ``batch_size`` is the global batch;
  process r draws positions ``[r·B/W, (r+1)·B/W)`` of it (sample k still from ``item_rng(seed + s,
  k, …)``), BatchNorm is synchronised, gradients and logged losses are averaged over the
  processes, torch's generator is reseeded from (seed, step, rank) each step; rank 0 alone
  validates and writes the outputs.
* staged inpainters (ID-Inpainter: ``stage`` = ``ca``, ``fusor`` or ``sampler``) pick the
  trainer of one stage; ``lr=None`` takes that stage's published default (:data:`DEFAULT_LR`).
* identity labels: a trainer whose class sets ``needs_labels = True`` (the ID-Inpainter
  sampler) trains on a folder ``DIR/<person>/<image>``; the person folder is the identity.
  It gets ``set_identities(n)`` once before resuming, ``step(..., labels=...)`` (N int64
  indices into the sorted person names), and, if it has ``val_names`` and ``validate``,
  extra validation columns computed on the fixed held-out faces with their labels.
* defaults per backend: ``size``, ``batch_size``, ``lr`` and ``occlusion`` left as None take
  the registered inpainter class's ``train_defaults(config)`` (a dict; e.g. ``ifacenet``: lr
  1e-3, batch 8, ``freeform-coverage``), then ``size`` its class ``native_size`` (ifacenet
  256), then the generic 112, 16, :data:`DEFAULT_LR` and ``train-default``. Backend-only
  settings (:data:`BACKEND_OPTIONS`, e.g. ``backbone_weights``) are refused for an inpainter
  whose class does not list them in ``train_options``.
* occluder kinds: a trainer whose class sets ``needs_occluder_kinds = True`` (a segmenter of
  :mod:`recogbench.segmentation`, e.g. ``soclnet``) maps the occluder list to class ids once
  with ``occluder_kinds(occluders)`` and gets each face's id as ``step(..., kinds=...)`` and
  ``validate(..., kinds=...)`` (N int64; the occluder that drew the face).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import io
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from recogbench.checkpoint import CheckpointError, load_state, read_checkpoint, save_state
from recogbench.data import FACE_SIZE, DataError, ImageSource
from recogbench.ddp import Processes, data_parallel
from recogbench.fileio import atomic_write_bytes, ensure_writable_dir
from recogbench.occlusion import Occluder, expand_occlusion, item_rng, occlude_batch
from recogbench.pipeline import format_duration
from recogbench.quality import l1, psnr, ssim
from recogbench.registry import INPAINTERS, OCCLUDERS, RegistryError
from recogbench.tensors import to_tensor, to_uint8

log = logging.getLogger(__name__)

__all__ = ["BACKEND_OPTIONS", "DEFAULT_LR", "STAGES", "TrainConfig", "TrainResult", "Trainer", "load_faces", "train"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VAL_MAX = 256
"""At most this many held-out faces are scored at each validation."""
SAMPLE_COLUMNS = 8
VAL_COLUMNS = ("val_psnr", "val_ssim", "val_hole_l1", "val_hole_psnr")
# Settings a resumed run may change; any other difference from the checkpoint is an error.
RESUMABLE = frozenset({"steps", "checkpoint_every", "sample_every", "log_every", "device", "amp", "resume"})
STAGES = ("ca", "fusor", "sampler")
"""Training stages of a staged inpainter (ID-Inpainter); ``None`` for single-stage ones."""
DEFAULT_LR: dict[str | None, float] = {None: 2e-4, "ca": 1e-4, "fusor": 4e-4, "sampler": 0.1}
"""Learning rate when ``TrainConfig.lr`` is None: pconv-gan 2e-4; ID-Inpainter's CA 1e-4
(the DeepFill v1 / generative-inpainting default), Fusor 4e-4 (``config/train.yaml``),
Sampler 0.1 per 512 faces of batch (SGD, ArcFace's schedule, scaled linearly). A backend's
``train_defaults`` take precedence (ifacenet: 1e-3)."""
BACKEND_OPTIONS: dict[str, Any] = {"backbone_weights": None, "self_supervised": False, "preset": None, "branch": None,
                                   "init_from": ()}
"""Settings only some backends read, with their neutral values; another value is refused for
an inpainter whose class does not name the setting in its ``train_options``."""
GENERIC_DEFAULTS: dict[str, Any] = {"size": FACE_SIZE, "batch_size": 16, "occlusion": "train-default", "base_channels": 32}
"""Defaults for a backend that declares none (pconv-gan, id-inpainter)."""


def spec_name(spec: str) -> str:
    """The backend name of a training spec ``NAME[:key=value,...]`` (``unet-gan:mode=blind`` → ``unet-gan``)."""
    return spec.partition(":")[0].strip()


def spec_options(spec: str) -> dict[str, str]:
    """The options of a training spec ``NAME[:key=value,...]``, as text (the trainer converts them);
    ValueError for an item that is not ``key=value``."""
    return INPAINTERS.parse(spec).kwargs if ":" in spec else {}


def _inpainter_class(name: str) -> Any:
    """The registered factory of ``name`` (an inpainter, or a segmenter such as ``soclnet``; options
    of a spec ``NAME:key=value`` ignored), or None when it is unknown or cannot be loaded
    (:func:`train` then reports that)."""
    from recogbench.segmentation import SEGMENTERS

    name = spec_name(name)
    try:
        return SEGMENTERS.get(name) if name in SEGMENTERS else INPAINTERS.get(name)
    except RegistryError:
        return None


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on (recorded in every checkpoint)."""

    inpainter: str
    data: str
    out: str
    protocol: str | None = None
    occlusion: str | None = None
    """Holes: occluder spec, suite, or specs joined by '+' (None: the backend's default, else ``train-default``)."""
    steps: int = 2000
    batch_size: int | None = None
    """None: the backend's default (ifacenet 8), else 16."""
    lr: float | None = None
    size: int | None = None
    """Training resolution; None: the backend's native size (ifacenet 256), else 112."""
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    checkpoint_every: int = 500
    sample_every: int = 200
    log_every: int = 50
    """Steps between progress lines in the log (mean losses since the last line, speed, time left)."""
    val_fraction: float = 0.05
    perceptual_weights: str | None = None
    aligned: bool = False
    resume: bool = True
    base_channels: int | None = None
    """Generator width; None: the backend's default (pconv-gan's ``under-mask`` preset 64), else 32."""
    stage: str | None = None
    """Staged inpainters only (ID-Inpainter: ``ca``, ``fusor`` or ``sampler``)."""
    id_weight: float = 5.0
    """ID-Inpainter Fusor: weight of the identity loss (the official schedule: 5, then 7, then 9)."""
    identity_model: str | None = None
    """ID-Inpainter: sampler weights (the Fusor's frozen Z; the sampler stage's starting point),
    or for the Fusor a Fusor checkpoint to continue from (the next ``id_weight`` stage)."""
    backbone_weights: str | None = None
    """IFACENET: torchvision ImageNet ResNet-50 weights for the trunk (``resnet50-0676ba61.pth``);
    None: a random trunk, with a warning."""
    self_supervised: bool = False
    """IFACENET: the self-supervised mode: the network sees the occluded face with no mask and
    the L1 is over the whole image (default holes ``everyday``)."""
    preset: str | None = None
    """pconv-gan: a named configuration (``under-mask``) giving model options and defaults for
    size, batch, lr and width; options in the spec (``pconv-gan:depth=4``) override it."""
    branch: str | None = None
    """pconv-gan: train one branch alone (``partial`` or ``vanilla``) or the ``fused`` model (None: fused)."""
    init_from: tuple[str, ...] = ()
    """pconv-gan: checkpoints to initialise the generator from (the branches' ``last.safetensors``
    for the fused fine-tune); a comma-separated string is split."""
    pairs: str | None = None
    """A folder of stored (occluded, clean[, mask]) pairs (:mod:`recogbench.stored_pairs`) to train
    on instead of ``data`` with synthetic holes; ``data`` is then empty and ``occlusion`` unset."""

    def __post_init__(self) -> None:
        if isinstance(self.init_from, str):
            object.__setattr__(self, "init_from", tuple(p.strip() for p in self.init_from.split(",") if p.strip()))
        elif not isinstance(self.init_from, tuple):
            object.__setattr__(self, "init_from", tuple(str(p) for p in self.init_from or ()))
        if self.stage is not None and self.stage not in STAGES:
            raise ValueError(f"invalid training settings: stage={self.stage!r} (one of {', '.join(STAGES)}, or none)")
        if self.pairs is not None:
            both = [f"{k}={getattr(self, k)!r}" for k in ("data", "protocol", "occlusion") if getattr(self, k)]
            if both:
                raise ValueError(f"invalid training settings: {', '.join(both)} with pairs={self.pairs!r} (stored "
                                 "pairs bring their own faces and occlusions)")
        elif not self.data:
            raise ValueError("invalid training settings: no training data (give data, or pairs for stored pairs)")
        factory = _inpainter_class(self.inpainter)
        try:
            options = spec_options(self.inpainter)
        except RegistryError as exc:
            raise ValueError(f"invalid training settings: {exc}") from None
        if options:
            allowed = tuple(getattr(factory, "train_spec_options", ()) if factory is not None else ())
            wrong = sorted(set(options) - set(allowed))
            if wrong:
                raise ValueError(f"invalid training settings: option(s) {', '.join(wrong)} in {self.inpainter!r} "
                                 f"({spec_name(self.inpainter)} takes "
                                 f"{', '.join(allowed) if allowed else 'no options in its training spec'})")
        if factory is not None:
            allowed = set(getattr(factory, "train_options", ()))
            wrong = [k for k, neutral in BACKEND_OPTIONS.items() if getattr(self, k) != neutral and k not in allowed]
            if wrong:
                raise ValueError(f"invalid training settings: {', '.join(f'{k}={getattr(self, k)!r}' for k in wrong)} "
                                 f"(not used by {self.inpainter})")
        unset = [k for k in ("size", "batch_size", "lr", "occlusion", "base_channels") if getattr(self, k) is None]
        if unset:
            given = getattr(factory, "train_defaults", None)
            backend = dict(given(self) if callable(given) else given or {})
            native = getattr(factory, "native_size", None)
            if isinstance(native, int) and not isinstance(native, bool):
                backend.setdefault("size", native)
            for k in ("size", "batch_size", "occlusion", "base_channels"):
                if getattr(self, k) is None and not (k == "occlusion" and self.pairs is not None):
                    object.__setattr__(self, k, backend.get(k, GENERIC_DEFAULTS[k]))
            if self.lr is None:
                lr = backend.get("lr")
                if lr is None:
                    lr = DEFAULT_LR[self.stage]
                    if self.stage == "sampler":
                        lr = lr * max(self.batch_size, 1) / 512
                object.__setattr__(self, "lr", lr)
        checks = {
            "steps": self.steps >= 0, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "size": self.size >= 32, "checkpoint_every": self.checkpoint_every >= 1,
            "sample_every": self.sample_every >= 1, "log_every": self.log_every >= 1,
            "val_fraction": 0 <= self.val_fraction < 1,
            "base_channels": self.base_channels >= 1, "seed": self.seed >= 0,
            "id_weight": self.id_weight >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training settings: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")
        check = getattr(factory, "check_train_config", None)
        if callable(check):   # backend-specific settings (pconv-gan's options, preset, branch), before any work
            check(self)


class Trainer(Protocol):
    """What an inpainter's ``make_trainer(config, device)`` returns.

    Images N×3×H×W float32 in [0, 1]; holes N×1×H×W, 1 = hole.

    Optional: a class attribute ``needs_labels = True`` asks for identity labels (see the
    module docstring: ``set_identities(n)``, ``step(clean, occluded, hole, labels=...)``);
    ``val_names`` (extra log columns) with ``validate(clean, occluded, hole, labels)``
    returning them, computed on the fixed held-out faces at every validation.

    Data-parallel (torchrun): the loop finds the trainer's modules and optimisers among its
    attributes (``nn.Module`` and ``torch.optim.Optimizer`` values, the latter existing after
    ``set_identities``), converts their BatchNorm layers to synchronised ones and averages the
    gradients of every optimised parameter after each backward pass; :meth:`step` sees this
    process's slice of the batch and needs no change when its losses are means over samples.
    """

    loss_names: tuple[str, ...]
    """Names of every term :meth:`step` may return (the log's columns); the last is the total."""

    def step(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch; returns the loss terms computed."""

    def restore(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Eval-mode prediction N×3×H×W in [0, 1], computed as the inpainter computes it."""

    def meta(self) -> dict[str, Any]:
        """JSON-able metadata the inference checkpoint records (architecture, loss settings…)."""

    def generator_state(self) -> dict[str, torch.Tensor]:
        """The weights the inpainter loads for inference."""

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        """Training-only weights (discriminators); may be empty."""

    def optimizer_state(self) -> dict[str, Any]:
        """Optimiser and scaler states: tensors and plain values only (weights-only loadable)."""

    def load_state(self, generator: dict[str, torch.Tensor], discriminators: dict[str, torch.Tensor],
                   optimizers: dict[str, Any], origin: str) -> None:
        """Restore what the three state methods returned; CheckpointError on a mismatch."""


@dataclass
class TrainResult:
    """What :func:`train` did.

    ``history``: one row per step run by this call (loss terms; validation metrics where
    measured, else NaN). ``val``: the last validation metrics. ``samples``: the fixed
    sample batch at the final step (``clean``, ``occluded``, ``hole``, ``restored`` — the
    hole-composited output, N×C×H×W float32 on the CPU).
    """

    out: Path
    checkpoint: Path
    step: int
    start_step: int
    history: list[dict[str, float]]
    val: dict[str, float]
    data: dict[str, Any]
    samples: dict[str, torch.Tensor] = field(default_factory=dict)
    rank: int = 0
    """This process's rank under torchrun (0 alone). Only rank 0 validates and writes files;
    on the others ``history`` holds the (process-averaged) losses only and ``samples`` is empty."""


# ------------------------------------------------------------------------------------ data


def _image_source(config: TrainConfig) -> ImageSource:
    from recogbench.align import FaceAligner
    from recogbench.protocols import FileImageSource, load_protocol

    path = Path(config.data).expanduser()
    if not path.exists():
        raise DataError(f"{path}: training data not found")
    if config.protocol or (path.is_file() and path.suffix == ".bin"):
        kwargs: dict[str, Any] = {}
        if config.aligned:
            kwargs["aligner"] = FaceAligner(assume_aligned=True)
        return load_protocol(config.protocol or "bin", path, **kwargs).source
    if not path.is_dir():
        raise DataError(f"{path}: expected a .bin pack or a folder of face images (or name its protocol)")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: no {'/'.join(IMAGE_SUFFIXES)} images found (recursively)")
    aligner = FaceAligner(assume_aligned=config.aligned)
    return FileImageSource(path, [str(p.relative_to(path)) for p in files], aligner, origin=str(path))


def load_faces(config: TrainConfig, progress: Any = None, *, with_labels: bool = False) -> Any:
    """All training faces as (n, size, size, 3) uint8 RGB, and a summary
    (``n_images``, ``n_dropped``, ``dropped_examples``, ``source``, ``fingerprint``).

    Faces that fail to load (undecodable, no face found) are dropped and counted.
    ``with_labels=True`` adds a third item: the identity of each face as an (n,) int64 index
    into the sorted person-folder names of a folder ``DIR/<person>/<image>`` (-1 for images
    directly in ``DIR``), or None when the data is not a folder.
    """
    import cv2

    source = _image_source(config)
    n = len(source)
    kept: list[np.ndarray] = []
    kept_idx: list[int] = []
    errors: list[str] = []
    task = progress.add_task("loading faces", total=n) if progress is not None else None
    for start in range(0, n, 256):
        loaded = source.load(range(start, min(start + 256, n)))
        kept.extend(loaded.images[loaded.ok])
        kept_idx.extend(start + int(i) for i in np.flatnonzero(loaded.ok))
        errors.extend(str(e) for e, ok in zip(loaded.errors, loaded.ok) if not ok)
        if task is not None:
            progress.advance(task, min(256, n - start))
    if hasattr(source, "clear_cache"):
        source.clear_cache()
    if errors:
        log.warning("dropped %d of %d training images that failed to load, e.g. %s", len(errors), n, errors[0])
    if not kept:
        raise DataError(f"{config.data}: none of the {n} images could be loaded (e.g. {errors[0] if errors else '?'})")
    faces = np.stack(kept)
    if config.size != FACE_SIZE:
        interp = cv2.INTER_AREA if config.size < FACE_SIZE else cv2.INTER_CUBIC
        faces = np.stack([cv2.resize(f, (config.size, config.size), interpolation=interp) for f in faces])
    info = {"source": str(config.data), "fingerprint": source.fingerprint, "n_images": n,
            "n_dropped": len(errors), "dropped_examples": errors[:5]}
    if not with_labels:
        return faces, info
    return faces, info, _folder_labels(source, kept_idx)


def _folder_labels(source: ImageSource, kept_idx: list[int]) -> np.ndarray | None:
    """Identity index per kept face from ``<person>/<image>`` relative paths (-1: no person folder)."""
    relpaths = getattr(source, "relpaths", None)
    if relpaths is None:
        return None
    parts = [Path(relpaths[i]).parts for i in kept_idx]
    persons = [p[0] if len(p) >= 2 and not Path(p[0]).is_absolute() else None for p in parts]
    names = sorted({p for p in persons if p is not None})
    index = {name: k for k, name in enumerate(names)}
    return np.array([index[p] if p is not None else -1 for p in persons], dtype=np.int64)


def _check_labels(labels: np.ndarray | None, config: TrainConfig) -> int:
    """The number of identities; DataError when the data cannot give every face one."""
    where = (f"{config.data}: the {config.inpainter}{f' {config.stage}' if config.stage else ''} trainer needs "
             "identity-labelled faces: a folder DIR/<person>/<image> (one subfolder per identity)")
    if labels is None:
        raise DataError(f"{where}, not a .bin pack or protocol")
    if (labels < 0).any():
        raise DataError(f"{where}; {int((labels < 0).sum())} images lie directly in DIR")
    n = int(labels.max()) + 1 if len(labels) else 0
    if n < 2:
        raise DataError(f"{where}; found {n} identity folder(s), at least 2 are needed")
    return n


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), both sorted; at least one of each when possible."""
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x7A1])).permutation(n)
    n_val = int(round(n * fraction))
    if fraction > 0 and n_val == 0 and n > 1:
        n_val = 1
    if n - n_val < 1:
        raise DataError(f"{n} faces leave nothing to train on with val_fraction={fraction}")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _to_tensors(faces: np.ndarray, holes: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, H, W, 3) uint8 and (n, H, W) bool → N×3×H×W float [0, 1] and N×1×H×W float."""
    x = to_tensor(faces, device)
    m = torch.from_numpy(np.ascontiguousarray(holes)).to(device)[:, None].float()
    return x, m


class _Batches:
    """Stateless batch drawing: sample k of step s (1-based) is position (s-1)·B + k of an
    endless stream of per-epoch permutations of the training faces seeded by (seed, epoch).

    ``part``: the positions k of the global batch of B this process draws (data-parallel:
    its slice; each sample is still drawn from its global k, so the parts of all processes
    together are exactly the one-process batch)."""

    def __init__(self, faces: np.ndarray, train_idx: np.ndarray, occluders: list[Occluder], config: TrainConfig,
                 part: slice = slice(None)) -> None:
        self.faces, self.train_idx, self.occluders, self.config = faces, train_idx, occluders, config
        self.part = part
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 0xE90C, epoch]))
            self._perms[epoch] = rng.permutation(len(self.train_idx))
        return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        """Indices (into all faces) of the batch of ``step`` (this process's ``part``)."""
        b, n = self.config.batch_size, len(self.train_idx)
        positions = (step - 1) * b + np.arange(b)[self.part]
        return np.array([self.train_idx[self._perm(int(p) // n)[int(p) % n]] for p in positions], dtype=np.int64)

    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(clean, occluded) (B, H, W, 3) uint8, holes (B, H, W) bool and the index of each
        face's occluder in ``occluders`` (B,) int64 for ``step`` (B: this process's ``part``)."""
        seed = self.config.seed + step
        items = np.arange(self.config.batch_size)[self.part]
        idx = self.indices(step)
        clean = self.faces[idx].copy()
        choice = np.empty(len(items), np.int64)
        for i, k in enumerate(items):
            rng = item_rng(seed, int(k), "first")
            if rng.random() < 0.5:
                clean[i] = clean[i, :, ::-1]
            choice[i] = rng.integers(len(self.occluders))
        return (clean, *_occlude(clean, choice, self.occluders, seed, items), choice)


class _PairBatches(_Batches):
    """Batches of stored pairs (``pairs``): the faces of :class:`_Batches`'s stream, each flipped
    (clean, occluded and hole alike) by the same draw, with their stored occlusion; the occluder
    index is 0 for every face (stored pairs carry no occluder kind)."""

    def __init__(self, pairs: Any, train_idx: np.ndarray, config: TrainConfig, part: slice = slice(None)) -> None:
        super().__init__(pairs.clean, train_idx, [], config, part)
        self.pairs = pairs

    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        seed = self.config.seed + step
        items = np.arange(self.config.batch_size)[self.part]
        idx = self.indices(step)
        clean, occluded, holes = (a[idx].copy() for a in (self.pairs.clean, self.pairs.occluded, self.pairs.holes))
        for i, k in enumerate(items):
            if item_rng(seed, int(k), "first").random() < 0.5:
                clean[i], occluded[i], holes[i] = clean[i, :, ::-1], occluded[i, :, ::-1], holes[i, :, ::-1]
        return clean, occluded, holes, np.zeros(len(items), np.int64)


def _occlude(clean: np.ndarray, choice: np.ndarray, occluders: list[Occluder], seed: int,
             items: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Occlude face i with ``occluders[choice[i]]`` drawn from ``item_rng(seed, items[i], "second")``
    (``items``: the faces' positions in the global batch; default 0..n-1)."""
    occluded, holes = np.empty_like(clean), np.zeros(clean.shape[:3], bool)
    for c in np.unique(choice):
        sel = np.flatnonzero(choice == c)
        pos = sel if items is None else items[sel]
        occluded[sel], holes[sel], _ = occlude_batch(occluders[int(c)], clean[sel], pos.tolist(), "second", seed)
    return occluded, holes


# ------------------------------------------------------------------------------ validation


@dataclass
class _Fixed:
    """Held-out faces with fixed holes (drawn once from ``item_rng(seed, j, ·)``)."""

    clean: np.ndarray
    occluded: np.ndarray
    holes: np.ndarray
    choice: np.ndarray
    """(n,) int64: the index of each face's occluder in the occluder list."""

    @classmethod
    def build(cls, faces: np.ndarray, occluders: list[Occluder], seed: int) -> "_Fixed":
        choice = np.array([item_rng(seed, j, "first").integers(len(occluders)) for j in range(len(faces))], np.int64)
        occluded, holes = _occlude(faces, choice, occluders, seed)
        return cls(faces, occluded, holes, choice)

    @classmethod
    def from_pairs(cls, pairs: Any, idx: np.ndarray) -> "_Fixed":
        """Held-out stored pairs as they are (no flip; occluder index 0)."""
        return cls(pairs.clean[idx], pairs.occluded[idx], pairs.holes[idx], np.zeros(len(idx), np.int64))

    def __len__(self) -> int:
        return len(self.clean)


def _restore(trainer: Trainer, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Hole-composited restoration, computed exactly as ``Inpainter.inpaint`` does at native size
    (the whole prediction for a trainer whose ``composites`` is False, e.g. unet-gan's blind mode)."""
    pred = trainer.restore(occluded, hole).float().clamp(0, 1)
    if not getattr(trainer, "composites", True):
        return pred
    return torch.where(hole.bool(), pred, occluded)


def _validate(trainer: Trainer, val: _Fixed, device: torch.device, batch: int) -> dict[str, float]:
    """Mean PSNR and SSIM (whole image) and hole L1 / hole PSNR of the composited output."""
    sums: dict[str, list[torch.Tensor]] = {k: [] for k in VAL_COLUMNS}
    for start in range(0, len(val), batch):
        sl = slice(start, start + batch)
        clean, hole = _to_tensors(val.clean[sl], val.holes[sl], device)
        occluded, _ = _to_tensors(val.occluded[sl], val.holes[sl], device)
        restored = _restore(trainer, occluded, hole)
        sums["val_psnr"].append(psnr(restored, clean).cpu())
        sums["val_ssim"].append(ssim(restored, clean).cpu())
        sums["val_hole_l1"].append(l1(restored, clean, hole).cpu())
        sums["val_hole_psnr"].append(psnr(restored, clean, hole).cpu())
    out = {}
    for k, parts in sums.items():
        v = torch.cat(parts)
        v = v[torch.isfinite(v)]
        out[k] = float(v.mean()) if len(v) else float("nan")
    return out


def _sample_grid(samples: dict[str, torch.Tensor]) -> np.ndarray:
    """(3·H, n·W, 3) uint8 RGB: rows clean | occluded | restored."""
    rows = [np.concatenate(list(to_uint8(samples[k])), axis=1) for k in ("clean", "occluded", "restored")]
    return np.concatenate(rows, axis=0)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:  # pragma: no cover - cv2 always encodes uint8 RGB
        raise RuntimeError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())


# ------------------------------------------------------------------------- checkpoints, log


def _save(out: Path, trainer: Trainer, config: TrainConfig, step: int, extra: dict[str, Any]) -> Path:
    """Write discriminators, optimiser state, the step checkpoint and finally ``last`` (the commit point)."""
    save_state(out / "discriminators_last.safetensors", trainer.discriminator_state(), {"step": step})
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    buf = io.BytesIO()
    torch.save({"step": step, "optimizers": trainer.optimizer_state(), "rng": rng}, buf)
    atomic_write_bytes(out / "optim_last.pt", buf.getvalue())
    meta = {**trainer.meta(), **extra, "step": step, "config": dataclasses.asdict(config)}
    state = trainer.generator_state()
    save_state(out / f"step_{step:06d}.safetensors", state, meta)
    save_state(out / "last.safetensors", state, meta)
    return out / "last.safetensors"


def _resume(out: Path, trainer: Trainer, config: TrainConfig, device: torch.device, fingerprint: str) -> int:
    """Restore the trainer from ``out``'s last checkpoint; returns its step."""
    last = out / "last.safetensors"
    g_state, meta = load_state(last)
    saved = meta.get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{last}: no training config in its metadata; cannot resume (use resume=False)")
    # a setting added since the checkpoint was written counts as its default
    # (compared as JSON, as the checkpoint stores them: a tuple setting reads back as a list)
    defaults = json.loads(json.dumps({f.name: f.default for f in dataclasses.fields(TrainConfig)
                                      if f.default is not dataclasses.MISSING}))
    diffs = [f"{k}: {saved.get(k, defaults.get(k))!r} → {v!r}" for k, v in json.loads(json.dumps(dataclasses.asdict(config))).items()
             if k not in RESUMABLE and saved.get(k, defaults.get(k)) != v]
    if diffs:
        raise ValueError(f"{last}: cannot resume a run with other settings ({'; '.join(diffs)}); "
                         "use another output folder or resume=False")
    saved_fp = (meta.get("data") or {}).get("fingerprint")
    if saved_fp and saved_fp != fingerprint:
        raise ValueError(f"{last}: the training data changed since this checkpoint; use another output folder or resume=False")
    # read_checkpoint, not load_state: a trainer without discriminators saves an empty file
    d_file = read_checkpoint(out / "discriminators_last.safetensors")
    d_state, d_meta = d_file["state_dict"], d_file["meta"]
    opt_path = out / "optim_last.pt"
    if not opt_path.is_file():
        raise CheckpointError(f"{opt_path}: missing; cannot resume (use resume=False)")
    opt = torch.load(opt_path, map_location="cpu", weights_only=True)
    step = int(meta.get("step", -1))
    if not (step == int(d_meta.get("step", -2)) == int(opt.get("step", -3))):
        raise CheckpointError(
            f"{out}: checkpoint files disagree (last at step {step}, discriminators at {d_meta.get('step')}, "
            f"optimisers at {opt.get('step')}): interrupted while saving? use resume=False"
        )
    trainer.load_state({k: v.to(device) for k, v in g_state.items()}, {k: v.to(device) for k, v in d_state.items()},
                       opt["optimizers"], str(last))
    torch.set_rng_state(opt["rng"]["torch"])
    if "cuda" in opt["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(opt["rng"]["cuda"])
    return step


class _CsvLog:
    """``log.csv``: one row per step; on resume, rows after the resumed step are dropped."""

    def __init__(self, path: Path, columns: list[str], keep_until: int | None, *, write: bool = True) -> None:
        self.path, self.columns, self.write = path, columns, write
        self.elapsed_offset = 0.0
        if not write:   # a data-parallel process other than rank 0
            return
        kept: list[dict[str, str]] = []
        if keep_until is not None and path.is_file():
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= keep_until]
            if kept and kept[-1].get("elapsed_s"):
                self.elapsed_offset = float(kept[-1]["elapsed_s"])
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(path, text.getvalue().encode())

    def append(self, row: dict[str, float]) -> None:
        def fmt(v: Any) -> str:
            if isinstance(v, float):
                return "" if math.isnan(v) else repr(v)
            return str(v)

        if not self.write:
            return
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([fmt(row.get(c, float("nan"))) for c in self.columns])


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=Console(stderr=True),
                    disable=not enabled)


# ------------------------------------------------------------------------------------ train


def train(
    config: TrainConfig,
    *,
    progress: bool | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``config.inpainter`` as the module docstring describes; returns what happened.

    ``progress``: show a rich progress bar (default: when stderr is a terminal).
    ``on_step(step, row)``: called after each step (e.g. to stop early by raising).
    With ``resume=True`` a run continues from ``out/last.safetensors`` when it exists.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its slice of the global
    batch ``config.batch_size`` (which must divide by the number of processes) with
    synchronised BatchNorm and averaged gradients (:mod:`recogbench.ddp`); the
    logged losses are the process averages, and only rank 0 validates and writes files.
    """
    with data_parallel(config.device, config.batch_size) as procs:
        return _train(config, procs, progress=progress, on_step=on_step)


def _train(
    config: TrainConfig,
    procs: Processes,
    *,
    progress: bool | None,
    on_step: Callable[[int, dict[str, float]], None] | None,
) -> TrainResult:
    """:func:`train` in one of ``procs.world_size`` processes (on ``procs.device``)."""
    device = procs.device
    factory = _inpainter_class(config.inpainter) or INPAINTERS.get(spec_name(config.inpainter))  # the latter raises, naming close matches
    make_trainer = getattr(factory, "make_trainer", None)
    if make_trainer is None:
        raise ValueError(f"inpainter {config.inpainter!r} is not trainable (it has no make_trainer)")
    specs = [] if config.pairs is not None else expand_occlusion(config.occlusion)
    occluders = [OCCLUDERS.create(s) for s in specs]
    # Before the faces load: a folder that cannot take checkpoints fails now, not at step 500.
    out = ensure_writable_dir(config.out, "training folder")
    if progress is None:
        progress = sys.stderr.isatty()
    progress = progress and procs.main

    with _progress(progress) as bar:
        stored = None
        if config.pairs is not None:  # stored (occluded, clean[, mask]) pairs instead of synthetic holes
            from recogbench.stored_pairs import load_pairs

            stored = load_pairs(config.pairs, config.size, bar)
            faces, data_info, labels = stored.clean, dict(stored.info), None
        else:
            faces, data_info, labels = load_faces(config, bar, with_labels=True)
        train_idx, val_idx = _split(len(faces), config.val_fraction, config.seed)
        data_info.update(n_train=len(train_idx), n_val=len(val_idx), n_val_scored=min(len(val_idx), VAL_MAX))
        log.info("training %s on %d faces (%d held out, %d dropped) with holes from %s",
                 config.inpainter, len(train_idx), len(val_idx), data_info["n_dropped"],
                 ", ".join(specs) if stored is None else f"the stored pairs in {config.pairs}")
        fixed_idx = val_idx[:VAL_MAX] if len(val_idx) else train_idx[:SAMPLE_COLUMNS]
        if stored is None:
            fixed = _Fixed.build(faces[fixed_idx], occluders, config.seed)
            batches = _Batches(faces, train_idx, occluders, config, procs.part(config.batch_size))
        else:
            fixed = _Fixed.from_pairs(stored, fixed_idx)
            batches = _PairBatches(stored, train_idx, config, procs.part(config.batch_size))

        trainer: Trainer = make_trainer(config, device)
        needs_labels = bool(getattr(trainer, "needs_labels", False))
        if stored is not None and (needs_labels or getattr(trainer, "needs_occluder_kinds", False)):
            what = "identity labels" if needs_labels else "the occluder kind of every face"
            raise DataError(f"{config.pairs}: the {spec_name(config.inpainter)}"
                            f"{f' {config.stage}' if config.stage else ''} trainer needs {what}, which stored pairs do not have")
        fixed_labels: torch.Tensor | None = None
        if needs_labels:
            data_info["n_identities"] = _check_labels(labels, config)
            trainer.set_identities(data_info["n_identities"])  # type: ignore[attr-defined]
            fixed_labels = torch.from_numpy(labels[fixed_idx]).to(device)
        kind_of: np.ndarray | None = None
        if getattr(trainer, "needs_occluder_kinds", False):
            kind_of = np.asarray(trainer.occluder_kinds(occluders), np.int64)  # type: ignore[attr-defined]
        extra_val = tuple(getattr(trainer, "val_names", ())) if hasattr(trainer, "validate") else ()

        def validate() -> dict[str, float]:
            v = _validate(trainer, fixed, device, config.batch_size)
            if extra_val:
                clean_v, hole_v = _to_tensors(fixed.clean, fixed.holes, device)
                occluded_v, _ = _to_tensors(fixed.occluded, fixed.holes, device)
                kinds = {} if kind_of is None else {"kinds": torch.from_numpy(kind_of[fixed.choice]).to(device)}
                got = trainer.validate(clean_v, occluded_v, hole_v, fixed_labels, **kinds)  # type: ignore[attr-defined]
                v.update({k: float(got.get(k, float("nan"))) for k in extra_val})
            return v

        start = 0
        last = out / "last.safetensors"
        if config.resume and last.is_file():
            start = _resume(out, trainer, config, device, data_info["fingerprint"])
            log.info("resuming %s from step %d", out, start)
        else:
            if last.is_file():
                log.warning("%s holds a previous run; starting afresh (resume=False) and overwriting it", out)
            torch.manual_seed(config.seed)
        procs.prepare(trainer)
        extra = {"data": data_info, "occluders": specs}
        meta_json = {"config": dataclasses.asdict(config), "data": data_info, "occluders": specs,
                     "perceptual": trainer.meta().get("perceptual"), "device": str(device),
                     "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "resumed_from": start,
                     "world_size": procs.world_size}
        if procs.main:
            atomic_write_bytes(out / "train_meta.json", json.dumps(meta_json, indent=2).encode())
        columns = ["step", "elapsed_s", *trainer.loss_names, *VAL_COLUMNS, *extra_val]
        csv_log = _CsvLog(out / "log.csv", columns, keep_until=start if start else None, write=procs.main)

        n_samples = min(SAMPLE_COLUMNS, len(fixed))
        sample_in = _to_tensors(fixed.clean[:n_samples], fixed.holes[:n_samples], device)
        sample_occ = _to_tensors(fixed.occluded[:n_samples], fixed.holes[:n_samples], device)[0]

        def samples() -> dict[str, torch.Tensor]:
            restored = _restore(trainer, sample_occ, sample_in[1])
            return {"clean": sample_in[0].cpu(), "occluded": sample_occ.cpu(), "hole": sample_in[1].cpu(),
                    "restored": restored.cpu()}

        history: list[dict[str, float]] = []
        val: dict[str, float] = {}
        t0 = time.perf_counter() - csv_log.elapsed_offset
        if start == 0 and procs.main:
            val = validate() if len(val_idx) else {}
            row = {"step": 0, "elapsed_s": 0.0, **{k: float("nan") for k in trainer.loss_names}, **val}
            csv_log.append(row)
            history.append(row)
            _write_png(out / "samples" / "step_000000.png", _sample_grid(samples()))
            log.info("step 0: %s", _fmt_val(val))
        task = bar.add_task("training", total=config.steps, completed=min(start, config.steps), status="")
        step, saved_step = start, (start if last.is_file() and start else None)
        total_name = trainer.loss_names[-1]
        since: dict[str, list[float]] = {}
        t_line, step_line = time.perf_counter(), start
        try:
            for step in range(start + 1, config.steps + 1):
                clean_np, occ_np, holes_np, choice = batches(step)
                clean, hole = _to_tensors(clean_np, holes_np, device)
                occluded, _ = _to_tensors(occ_np, holes_np, device)
                step_args: dict[str, torch.Tensor] = {}
                if needs_labels:
                    step_args["labels"] = torch.from_numpy(labels[batches.indices(step)]).to(device)
                if kind_of is not None:
                    step_args["kinds"] = torch.from_numpy(kind_of[choice]).to(device)
                procs.reseed(config.seed, step)
                losses = procs.average(trainer.step(clean, occluded, hole, **step_args))  # type: ignore[call-arg]
                if not all(math.isfinite(v) for v in losses.values()):
                    raise FloatingPointError(f"step {step}: non-finite loss {losses}")
                row = {"step": step, "elapsed_s": round(time.perf_counter() - t0, 3),
                       **{k: float("nan") for k in (*trainer.loss_names, *VAL_COLUMNS, *extra_val)}, **losses}
                is_ckpt = step % config.checkpoint_every == 0 or step == config.steps
                is_sample = step % config.sample_every == 0 or step == config.steps
                for k, v in losses.items():
                    since.setdefault(k, []).append(v)
                if (is_ckpt or is_sample) and len(val_idx) and procs.main:
                    val = validate()
                    row.update(val)
                    log.info("step %d: %s; %s", step, ", ".join(f"{k} {v:.4f}" for k, v in losses.items()), _fmt_val(val))
                if (step % config.log_every == 0 or step == config.steps) and procs.main:
                    now = time.perf_counter()
                    per_step = (now - t_line) / max(step - step_line, 1)
                    log.info("step %d/%d: %s (mean of %d steps); %.2f s/step, about %s left", step, config.steps,
                             ", ".join(f"{k} {np.mean(v):.4f}" for k, v in since.items()), step - step_line,
                             per_step, format_duration(per_step * (config.steps - step)))
                    since, t_line, step_line = {}, now, step
                if is_sample and procs.main:
                    _write_png(out / "samples" / f"step_{step:06d}.png", _sample_grid(samples()))
                csv_log.append(row)
                history.append(row)
                if is_ckpt:
                    if procs.main:
                        _save(out, trainer, config, step, extra)
                    saved_step = step
                bar.update(task, advance=1, status=f"{total_name} {losses.get(total_name, float('nan')):.4f}")
                if on_step is not None:
                    on_step(step, row)
        except KeyboardInterrupt:
            log.warning("interrupted at step %d; %s", step, "no checkpoint yet" if saved_step is None
                        else f"resume continues from the last checkpoint (step {saved_step})")
            raise
        if config.steps == 0 and start == 0 and procs.main:
            _save(out, trainer, config, 0, extra)
        final = samples() if procs.main else {}
    return TrainResult(out=out, checkpoint=last, step=max(step, start), start_step=start, history=history,
                       val=val, data=data_info, samples=final, rank=procs.rank)


def _fmt_val(val: dict[str, float]) -> str:
    if not val:
        return "no validation set"
    extra = "".join(f", {k} {v:.4f}" for k, v in val.items() if k not in VAL_COLUMNS)
    return (f"val PSNR {val['val_psnr']:.2f} dB, SSIM {val['val_ssim']:.4f}, hole L1 {val['val_hole_l1']:.4f}, "
            f"hole PSNR {val['val_hole_psnr']:.2f} dB{extra}")
