"""Data-parallel training (recogbench.ddp): two gloo processes on the CPU give the
one-process run of the same global batch."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
from torch import nn

from recogbench.checkpoint import load_state
from recogbench.train import TrainConfig, train

from .conftest import smooth_faces

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = dict(occlusion="random_block+random_part", batch_size=4, size=64, base_channels=8, checkpoint_every=3,
                sample_every=3, aligned=True, device="cpu")
"""A tiny pconv-gan run: 12 faces (one held out) at 64 px, width 8, global batch 4."""


def _faces(folder: Path) -> Path:
    folder.mkdir()
    for i, face in enumerate(smooth_faces(12, seed=3)):
        cv2.imwrite(str(folder / f"face{i:02d}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return folder


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node 2 -m recogbench ARGS``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "recogbench", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _cli_args(config: TrainConfig) -> list[str]:
    """The ``recogbench train`` command line of ``config`` (a pconv-gan run on an aligned folder)."""
    return ["train", config.inpainter, "--data", config.data, "--out", config.out, "--aligned",
            "--occlusion", str(config.occlusion), "--steps", str(config.steps), "--batch-size", str(config.batch_size),
            "--size", str(config.size), "--base-channels", str(config.base_channels),
            "--checkpoint-every", str(config.checkpoint_every), "--sample-every", str(config.sample_every),
            "--seed", str(config.seed), "--device", "cpu"]


def _log(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_curves(one: list[dict[str, str]], two: list[dict[str, str]]) -> None:
    """Every loss and validation column equal to float32 rounding: relative 1e-4, or 2e-6 absolute
    for terms that are small differences of O(1) means (g_adv_*: mean discriminator logits).

    Why not closer: in float64 (every tensor and ``.float()`` made double) the two curves agree
    to 1e-12 relative over these 6 steps; in float32 the convolutions of 2 faces round
    differently from those of 4, the gradient sums are added in another order, and Adam's
    first steps (≈ lr·sign(g)) and the GAN amplify that to a few 1e-7 absolute by step 6 —
    as much as 1 versus 2 intra-op threads already change a one-process run."""
    assert [r["step"] for r in two] == [r["step"] for r in one]          # one row per step: only rank 0 writes
    for a, b in zip(one, two):
        for col in a:
            if col in ("step", "elapsed_s"):
                continue
            assert (a[col] == "") == (b[col] == ""), (a["step"], col)
            if a[col]:
                assert float(b[col]) == pytest.approx(float(a[col]), rel=1e-4, abs=2e-6), (a["step"], col)


@pytest.mark.slow
def test_two_processes_match_one_process_and_resume(tmp_path: Path) -> None:
    data = _faces(tmp_path / "faces")
    single = TrainConfig(inpainter="pconv-gan", data=str(data), out=str(tmp_path / "one"), steps=6, **SETTINGS)
    train(single, progress=False)

    # two processes, stopped at step 3 (a checkpoint), then resumed to step 6 under torchrun
    cfg3 = TrainConfig(**{**single.__dict__, "out": str(tmp_path / "two"), "steps": 3})
    first = _torchrun(_cli_args(cfg3), tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    one, two = _log(tmp_path / "one" / "log.csv"), _log(tmp_path / "two" / "log.csv")
    _assert_same_curves(one[:4], two)
    second = _torchrun(_cli_args(TrainConfig(**{**cfg3.__dict__, "steps": 6})), tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming" in second.stdout + second.stderr
    two = _log(tmp_path / "two" / "log.csv")
    _assert_same_curves(one, two)
    assert all(r["val_psnr"] for r in two if r["step"] in ("0", "3", "6"))   # rank 0 validated
    assert second.stdout.count("trained pconv-gan to step 6") == 1           # the CLI reports once

    # the checkpoint holds the unwrapped generator: the same keys as one process, loadable as usual
    g1, _ = load_state(tmp_path / "one" / "last.safetensors")
    g2, meta2 = load_state(tmp_path / "two" / "last.safetensors")
    assert list(g2) == list(g1) and meta2["step"] == 6
    # and the same training: steps 4-6 moved the weights alike
    g1_3, _ = load_state(tmp_path / "one" / "step_000003.safetensors")
    g2_3, _ = load_state(tmp_path / "two" / "step_000003.safetensors")
    moved = torch.cat([(g1[k] - g1_3[k]).flatten() for k in g1 if g1[k].is_floating_point()])
    differs = torch.cat([(g2[k] - g2_3[k] - g1[k] + g1_3[k]).flatten() for k in g1 if g1[k].is_floating_point()])
    assert float(differs.norm()) < 1e-2 * float(moved.norm())
    assert json.loads((tmp_path / "two" / "train_meta.json").read_text())["world_size"] == 2
    from inpainters.pconv_gan import PConvGAN

    PConvGAN(checkpoint=str(tmp_path / "two" / "last.safetensors"), device="cpu")


def test_indivisible_global_batch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    config = TrainConfig(inpainter="pconv-gan", data=str(tmp_path), out=str(tmp_path / "out"), steps=1,
                         **{**SETTINGS, "batch_size": 3})
    with pytest.raises(ValueError, match=r"batch_size 3 does not divide among the 2 data-parallel processes"):
        train(config, progress=False)
    assert not dist.is_initialized()
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------- BatchNorm and gradients, module level


class _Toy:
    """A trainer-shaped object: a BatchNorm net, a critic with a gradient penalty, one optimiser
    each; float64, so that one and two processes agree to rounding (1e-12), not float32's 1e-6."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten(), nn.Linear(16, 5), nn.BatchNorm1d(5, momentum=None)).double()
        self.critic = nn.Linear(5, 1).double()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.05, momentum=0.9)   # Adam would blow up the
        # rounding noise of the biases before BatchNorm (their true gradient is 0) to ±lr
        self.opt_c = torch.optim.SGD(self.critic.parameters(), lr=0.1)

    def step(self, x: torch.Tensor) -> dict[str, float]:
        self.net.train()
        out = self.net(x)
        mixed = out.detach().requires_grad_(True)
        grad, = torch.autograd.grad(self.critic(mixed).sum(), mixed, create_graph=True)
        critic_loss = self.critic(out.detach()).mean() + ((grad.norm(dim=1) - 1) ** 2).mean()
        self.opt_c.zero_grad()
        critic_loss.backward()
        self.opt_c.step()
        loss = (out - torch.arange(5.0, dtype=out.dtype)).square().mean() + self.critic(out).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"critic": float(critic_loss.detach()), "loss": float(loss.detach())}


def _batches() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.rand(8, 3, 6, 6, generator=gen, dtype=torch.float64) * (i + 1) for i in range(3)]


def _toy_worker(rank: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from recogbench.ddp import SyncBatchNorm, data_parallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        toy = _Toy()
        with data_parallel("cpu", 8) as procs:
            procs.prepare(toy)
            assert sum(isinstance(m, SyncBatchNorm) for m in toy.net.modules()) == 2
            losses = [procs.average(toy.step(x[procs.part(8)])) for x in _batches()]
        toy.net.eval()
        torch.save({"losses": losses, "state": toy.net.state_dict(), "critic": toy.critic.state_dict(),
                    "eval": toy.net(_batches()[0])}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_sync_batchnorm_and_gradient_averaging_match_one_process(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_toy_worker, args=(f"file://{tmp_path / 'pg'}", str(tmp_path)), nprocs=2, join=True)
    toy = _Toy()
    losses = [toy.step(x) for x in _batches()]
    toy.net.eval()
    expected = {"state": toy.net.state_dict(), "critic": toy.critic.state_dict()}
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for a, b in zip(losses, got["losses"]):
            for k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-10), k
        for part in ("state", "critic"):
            assert list(got[part]) == list(expected[part])                 # same keys as plain BatchNorm
            for k, v in expected[part].items():
                torch.testing.assert_close(got[part][k], v, rtol=1e-10, atol=1e-12, msg=f"{part} {k}")
        torch.testing.assert_close(got["eval"], toy.net(_batches()[0]), rtol=1e-10, atol=1e-12)
    assert int(expected["state"]["1.num_batches_tracked"]) == 3 and not math.isnan(losses[-1]["loss"])
