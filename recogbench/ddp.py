"""Data-parallel training under ``torchrun``: one process per device, one global batch.

:func:`data_parallel` is what :func:`recogbench.train.train` enters. Launched by torchrun
(``WORLD_SIZE`` > 1, ``RANK``, ``LOCAL_RANK`` in the environment) it starts the process group
(``nccl`` on CUDA, each process on ``cuda:LOCAL_RANK``; ``gloo`` on the CPU) and destroys it on
the way out, also after an error; alone it yields a one-process :class:`Processes` that
changes nothing. A group the caller already started is used and left running.

:meth:`Processes.prepare` makes a trainer data-parallel without the trainer knowing:

* BatchNorm layers of its modules (its ``nn.Module`` attributes) become
  :class:`SyncBatchNorm`: training-mode statistics over the global batch, as one process
  computes them (torch's kernels on CUDA; on the CPU, where torch's refuses, the same
  statistics through :class:`_GatherRows`). Same parameters, buffers and state-dict keys.
* every parameter its optimisers (its ``torch.optim.Optimizer`` attributes) update gets its
  gradient averaged over the processes at the end of each backward pass that reached it
  (:class:`GradientAverager`), before any GradScaler or optimiser looks at it.
* parameters and buffers are broadcast from rank 0, so every process starts identical.

Why not ``DistributedDataParallel``: the trainers call a discriminator several times
between backward passes, toggle ``requires_grad`` inside a step and take WGAN-GP gradient
penalties with ``autograd.grad(create_graph=True)`` (which DDP does not support), and a
wrapper would prefix every state-dict key with ``module.``.

A loss that is a mean over equally sized per-sample terms is then exactly the single-process
loss of the global batch: rank r's mean over its B/W samples, with gradients averaged over
the W processes, has the gradient of the mean over all B.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.autograd.function import once_differentiable

from recogbench.device import resolve_device

log = logging.getLogger(__name__)

__all__ = ["GradientAverager", "Processes", "SyncBatchNorm", "convert_batchnorm", "data_parallel"]

BUCKET_ELEMENTS = 1 << 23
"""Gradients are averaged in flat buckets of at most this many elements (32 MiB of float32)."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


@dataclass
class Processes:
    """This process's place among the data-parallel processes (one process: rank 0 of 1)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    handles: list[Any] = field(default_factory=list)
    """Hooks :meth:`prepare` registered; removed when :func:`data_parallel` exits."""

    @property
    def main(self) -> bool:
        """True on rank 0: the process that writes logs, samples and checkpoints and validates."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    def part(self, batch_size: int) -> slice:
        """This process's positions in a global batch of ``batch_size`` (contiguous, equal parts)."""
        local = batch_size // self.world_size
        return slice(self.rank * local, (self.rank + 1) * local)

    def prepare(self, trainer: Any) -> None:
        """Synchronised BatchNorm, gradient averaging and rank 0's weights for ``trainer``
        (a :class:`recogbench.train.Trainer`; its modules and optimisers are found among its
        attributes). Nothing happens in one process. Call after its optimisers exist."""
        if not self.parallel:
            return
        modules = {name: m for name, m in vars(trainer).items() if isinstance(m, nn.Module)}
        optimizers = [o for o in vars(trainer).values() if isinstance(o, torch.optim.Optimizer)]
        if not optimizers:
            raise ValueError(f"{type(trainer).__name__} has no torch.optim.Optimizer attribute: "
                             "data-parallel training cannot tell which gradients to average")
        for name, module in modules.items():
            converted = convert_batchnorm(module)
            if converted is not module:
                setattr(trainer, name, converted)
                modules[name] = converted
        with torch.no_grad():
            seen: set[int] = set()
            for module in modules.values():
                for t in [*module.parameters(), *module.buffers()]:
                    if id(t) not in seen:
                        seen.add(id(t))
                        _broadcast_(t)
        params = [p for o in optimizers for group in o.param_groups for p in group["params"]]
        averager = GradientAverager(params)
        self.handles.append(averager)
        n_bn = len({id(m) for module in modules.values() for m in module.modules() if isinstance(m, SyncBatchNorm)})
        log.info("data-parallel: rank %d of %d on %s; gradients of %d optimised tensors averaged, "
                 "%d BatchNorm layers synchronised", self.rank, self.world_size, self.device, len(averager.params), n_bn)

    def average(self, values: dict[str, float]) -> dict[str, float]:
        """Each value's mean over the processes (e.g. a step's loss terms: the global batch's
        when each is a mean over equally many samples); the same dict in one process."""
        if not self.parallel or not values:
            return values
        keys = list(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        t /= self.world_size
        return dict(zip(keys, t.tolist()))

    def reseed(self, seed: int, step: int) -> None:
        """Several processes: seed torch's generators from (seed, step, rank), so each process
        draws its own random numbers (dropout, gradient-penalty mixes, pairings) and a resumed
        run draws what an uninterrupted one does. One process: nothing (its stream continues
        and is saved with the checkpoints)."""
        if self.parallel:
            state = np.random.SeedSequence([seed, 0xDA7A, step, self.rank]).generate_state(2, np.uint32)
            torch.manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)

    def close(self) -> None:
        """Remove the hooks :meth:`prepare` registered."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


@contextlib.contextmanager
def data_parallel(device: str, batch_size: int) -> Iterator[Processes]:
    """The :class:`Processes` of this run, with the process group started when torchrun
    launched several processes (and destroyed on exit, errors included, unless the caller
    had started it).

    ``device``: ``auto``, ``cpu`` or ``cuda`` (several processes: each takes
    ``cuda:LOCAL_RANK``; an explicit other index is refused). ``batch_size``: the global
    batch; ValueError, before any process group starts, when it does not divide by the
    number of processes.
    """
    started = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if started else _env_int("WORLD_SIZE", 1)
    if world <= 1:
        procs = Processes(resolve_device(device))
        try:
            yield procs
        finally:
            procs.close()
        return
    rank = dist.get_rank() if started else _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} does not divide among the {world} data-parallel processes "
                         f"(batch_size is the global batch; each process takes batch_size / {world}): "
                         f"use a multiple of {world}")
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world}, but this torch build has no torch.distributed")
    dev = resolve_device(device)
    if dev.type == "cuda":
        if dev.index is not None and dev.index != local_rank:
            raise ValueError(f"device {device!r}: under torchrun each process uses cuda:LOCAL_RANK "
                             f"(this one cuda:{local_rank}); give --device cuda or auto")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank}, but torch sees {torch.cuda.device_count()} CUDA device(s)")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ValueError(f"data-parallel training runs on CUDA or the CPU, not {dev.type}")
    if not started:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        log.info("started the %s process group: rank %d of %d", backend, dist.get_rank(), world)
    procs = Processes(dev, rank=rank, world_size=world, local_rank=local_rank)
    try:
        yield procs
    finally:
        procs.close()
        if not started:
            dist.destroy_process_group()


def _broadcast_(t: torch.Tensor) -> None:
    """Overwrite ``t`` with rank 0's values, in place."""
    if t.is_contiguous():
        dist.broadcast(t.data, 0)
    else:
        buf = t.data.contiguous()
        dist.broadcast(buf, 0)
        t.data.copy_(buf)


# ------------------------------------------------------------------------------- gradients


class GradientAverager:
    """Averages the gradients of ``params`` over the processes after every backward pass.

    A hook on each parameter notes that its ``.grad`` was accumulated; at the end of that
    backward pass (an autograd-engine callback) the noted gradients are averaged in place,
    in a fixed order, in flat buckets — before the trainer's GradScaler unscales them or its
    optimiser steps, so every process sees the same gradients, takes the same step and
    skips the same inf/NaN steps. Averaging is linear, so gradients accumulated over
    several backward passes stay correct. Every process must reach the same parameters in
    each backward pass (checked: a RuntimeError otherwise). Gradients taken with
    ``torch.autograd.grad`` (not accumulated into ``.grad``) are not touched.
    """

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        unique: dict[int, nn.Parameter] = {}
        for p in params:
            unique.setdefault(id(p), p)
        self.params = list(unique.values())
        self.world = dist.get_world_size()
        self._index = {id(p): i for i, p in enumerate(self.params)}
        self._ready: list[int] = []
        self._queued = False
        self._hooks = []
        for p in self.params:
            frozen = not p.requires_grad   # frozen for now (e.g. mid-step): still averaged once it learns
            if frozen:
                p.requires_grad_(True)
            self._hooks.append(p.register_post_accumulate_grad_hook(self._accumulated))
            if frozen:
                p.requires_grad_(False)

    def _accumulated(self, param: torch.Tensor) -> None:
        self._ready.append(self._index[id(param)])
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._average)

    def _average(self) -> None:
        ready = sorted(set(self._ready))
        self._ready, self._queued = [], False
        grads = [self.params[i].grad for i in ready]
        device = grads[0].device if grads and grads[0] is not None else self.params[0].device
        idx = torch.tensor(ready, dtype=torch.float64)
        sig = torch.stack([torch.tensor(float(len(ready)), dtype=torch.float64), idx.sum(), (idx * idx).sum()])
        both = torch.cat([sig, -sig]).to(device)
        dist.all_reduce(both, op=dist.ReduceOp.MAX)
        if not torch.equal(both[:3], -both[3:]):
            raise RuntimeError("data-parallel: the processes computed gradients for different parameters in the same "
                               "backward pass (a data-dependent branch in the trainer?)")
        groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for g in grads:
            if g is not None:
                groups.setdefault((g.dtype, g.device), []).append(g)
        for bucket in (b for group in groups.values() for b in _buckets(group)):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            dist.all_reduce(flat)
            flat /= self.world
            for g, part in zip(bucket, flat.split([g.numel() for g in bucket])):
                g.copy_(part.view_as(g))

    def remove(self) -> None:
        """Remove the hooks."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()


def _buckets(tensors: list[torch.Tensor], limit: int = BUCKET_ELEMENTS) -> Iterator[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if bucket and size + t.numel() > limit:
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel()
    if bucket:
        yield bucket


# ------------------------------------------------------------------------------- BatchNorm


class _GatherRows(torch.autograd.Function):
    """(k,) per process → (W, k), row r from rank r. The gradient of a process's row is the
    sum over processes of the gradients flowing into that row: the total loss is the sum of
    every process's loss, as gradient averaging (÷ W) treats it."""

    @staticmethod
    def forward(ctx: Any, row: torch.Tensor, group: Any) -> torch.Tensor:
        rows = [torch.empty_like(row) for _ in range(dist.get_world_size(group))]
        dist.all_gather(rows, row.contiguous(), group=group)
        ctx.group, ctx.rank = group, dist.get_rank(group)
        return torch.stack(rows)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        total = grad.contiguous().clone()
        dist.all_reduce(total, group=ctx.group)
        return total[ctx.rank], None


class SyncBatchNorm(nn.SyncBatchNorm):
    """:class:`torch.nn.SyncBatchNorm` that also runs on the CPU (gloo).

    In training mode with several processes, the mean and (biased) variance that normalise,
    and the running statistics (unbiased variance, ``momentum``), are those of the global
    batch, as one process computes them; CPU tensors take :meth:`_cpu_forward`, other
    devices torch's kernels. Eval mode and one process: plain BatchNorm.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.device.type == "cpu" and self.training and dist.is_available() and dist.is_initialized():
            group = self.process_group or dist.group.WORLD
            if dist.get_world_size(group) > 1:
                return self._cpu_forward(input, group)
        return super().forward(input)

    def _cpu_forward(self, x: torch.Tensor, group: Any) -> torch.Tensor:
        """x N×C×… → normalised x (same shape and dtype) with the statistics of every process's
        N: per-process mean and sum of squared deviations, combined (Chan et al.) after one
        all-gather."""
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        xf = x if x.dtype in (torch.float32, torch.float64) else x.float()   # half precision: statistics in float32
        mean = xf.mean(dims)
        m2 = (xf - mean.view(shape)).square().sum(dims)
        count = xf.new_full((1,), xf.numel() // c)
        rows = _GatherRows.apply(torch.cat([mean, m2, count]), group)
        counts = rows[:, 2 * c:]                                    # W×1
        n = counts.sum()
        g_mean = (rows[:, :c] * counts).sum(0) / n
        g_m2 = rows[:, c:2 * c].sum(0) + ((rows[:, :c] - g_mean).square() * counts).sum(0)
        var = g_m2 / n
        y = (xf - g_mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None:
            y = y * self.weight.view(shape)
        if self.bias is not None:
            y = y + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                unbiased = var * (n / (n - 1).clamp_min(1))
                self.running_mean.mul_(1 - factor).add_(g_mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by a :class:`SyncBatchNorm` holding the
    same parameter and buffer tensors (optimisers, ``requires_grad`` flags and state-dict keys
    are unaffected); a BatchNorm ``module`` itself comes back converted. Already converted
    layers are kept."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.training = module.training
        for name, child in module.named_children():
            new.add_module(name, convert_batchnorm(child))
        return new
    for name, child in module.named_children():
        converted = convert_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module
