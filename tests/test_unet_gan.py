"""The unet-gan inpainter: U-Net generator, attention gates, blind vs masked, checkpoints, training."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from inpainters.unet_gan import (
    AttentionGate,
    PatchDiscriminator,
    UNetConfig,
    UNetGAN,
    UNetGANTrainer,
    UNetGenerator,
    config_from_state,
    count_parameters,
    reconstruction,
    write_checkpoint,
)
from recogbench.checkpoint import CheckpointError
from recogbench.registry import INPAINTERS
from recogbench.train import TrainConfig, train

from .conftest import face_batch
from .test_train import _aligned_real_faces

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hole(n: int, size: int) -> torch.Tensor:
    hole = torch.zeros(n, 1, size, size)
    hole[:, :, size // 4 : size // 2, size // 3 : 2 * size // 3] = 1
    return hole


# ----------------------------------------------------------------------------- the network


@pytest.mark.parametrize("size", [112, 100, 64, 37])
@pytest.mark.parametrize("attention", [False, True])
def test_generator_shapes_range_any_size(size: int, attention: bool) -> None:
    torch.manual_seed(0)
    cfg = UNetConfig(base_channels=4, depth=5 if size >= 64 else 4, attention=attention)
    gen = UNetGenerator(cfg).eval()
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        out, alphas = gen.net(gen.prepare(x, _hole(2, size)), return_attention=True)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    if attention:
        # one gate per skip, coarse to fine, each the size of its skip, values in (0, 1)
        assert len(alphas) == cfg.depth - 1
        sides = [a.shape[-1] for a in alphas]
        assert sides == sorted(sides) and sides[-1] == (size // 2)
        assert all(((a > 0) & (a < 1)).all() for a in alphas)
    else:
        assert alphas == [] and gen.gates is None


def test_attention_gates_change_the_parameters_and_gate_the_skip() -> None:
    plain, gated = UNetGenerator(UNetConfig()), UNetGenerator(UNetConfig(attention=True))
    assert count_parameters(gated) > count_parameters(plain)
    assert not any(k.startswith("gates.") for k in plain.state_dict())
    assert {"gates.0.theta.weight", "gates.0.phi.weight", "gates.0.psi.weight"} <= set(gated.state_dict())
    # the gate multiplies the skip by α = σ(ψ(ReLU(θx + φg))), α resized to the skip's size
    gate = AttentionGate(6, 10)
    x, g = torch.randn(2, 6, 15, 15), torch.randn(2, 10, 7, 7)
    out, alpha = gate(x, g)
    assert alpha.shape == (2, 1, 15, 15) and torch.allclose(out, x * alpha)
    with torch.no_grad():
        gate.psi.bias.fill_(-50.0)
    assert gate(x, g)[0].abs().max() < 1e-12  # a closed gate removes the skip


def test_masked_mode_reads_the_mask_and_ignores_the_hole_content() -> None:
    torch.manual_seed(0)
    gen = UNetGenerator(UNetConfig(base_channels=4, depth=4, mode="masked")).eval()
    assert gen.down[0].conv.in_channels == 4
    x, hole = face_batch(2)[..., :64, :64], _hole(2, 64)
    with torch.no_grad():
        out = gen(x, hole)
        assert torch.equal(out, gen(torch.where(hole.bool(), torch.rand_like(x), x), hole))
        assert not torch.equal(out, gen(x, torch.zeros_like(hole)))  # the mask channel matters


def test_blind_mode_sees_the_occluder_and_no_mask() -> None:
    torch.manual_seed(0)
    gen = UNetGenerator(UNetConfig(base_channels=4, depth=4, mode="blind")).eval()
    assert gen.down[0].conv.in_channels == 3
    x, hole = face_batch(2)[..., :64, :64], _hole(2, 64)
    with torch.no_grad():
        out = gen(x, hole)
        assert torch.equal(out, gen(x, torch.zeros_like(hole)))  # no mask input
        assert not torch.equal(out, gen(torch.where(hole.bool(), torch.rand_like(x), x), hole))


def test_discriminator_and_losses() -> None:
    d = PatchDiscriminator(7, 8)
    assert d(torch.rand(2, 7, 112, 112)).shape == (2, 1, 12, 12)
    assert d(torch.rand(1, 7, 32, 32)).shape == (1, 1, 2, 2)
    out, clean, hole = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5), torch.zeros(1, 1, 4, 4)
    hole[..., :2, :] = 1
    assert [float(v) for v in reconstruction(out, clean, hole, "l1")] == pytest.approx([0.5, 0.25])
    assert [float(v) for v in reconstruction(out, clean, hole, "mse")] == pytest.approx([0.25, 0.125])


def test_training_spec_options(tmp_path: Path) -> None:
    def trainer(spec: str, **kw) -> UNetGANTrainer:
        cfg = TrainConfig(spec, data="unused", out=str(tmp_path), size=64, base_channels=4, **kw)
        return UNetGAN.make_trainer(cfg, torch.device("cpu"))

    t = trainer("unet-gan")
    assert (t.arch.mode, t.arch.attention, t.arch.depth, t.recon, t.composites) == ("masked", False, 5, "l1", True)
    t = trainer("unet-gan:mode=blind,attention=1,depth=3,recon=MSE")
    assert (t.arch.mode, t.arch.attention, t.arch.depth, t.recon, t.composites) == ("blind", True, 3, "mse", False)
    assert t.meta()["architecture"]["mode"] == "blind" and t.meta()["recon"] == "mse"
    with pytest.raises(ValueError, match=r"option\(s\) colour in 'unet-gan:colour=red' \(unet-gan takes mode, attention"):
        TrainConfig("unet-gan:colour=red", data="unused", out=str(tmp_path))
    with pytest.raises(ValueError, match="mode must be one of masked, blind"):
        trainer("unet-gan:mode=half")
    with pytest.raises(ValueError, match="recon must be one of l1, mse"):
        trainer("unet-gan:recon=huber")
    with pytest.raises(ValueError, match="depth 7 needs images of at least 128 px"):
        trainer("unet-gan:depth=7")
    with pytest.raises(ValueError, match=r"option\(s\) mode in 'telea:mode=blind' \(telea takes no options"):
        TrainConfig("telea:mode=blind", data="unused", out=str(tmp_path))


# ---------------------------------------------------------------------------- the inpainter


def test_unet_gan_refuses_without_checkpoint() -> None:
    with pytest.raises(ValueError, match="needs a trained checkpoint: recogbench train unet-gan"):
        INPAINTERS.create("unet-gan", device="cpu")


@pytest.mark.parametrize("mode", ["masked", "blind"])
def test_checkpoint_roundtrip_through_the_registry(mode: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    gen = UNetGenerator(UNetConfig(base_channels=4, depth=5, attention=True, mode=mode)).eval()
    path = write_checkpoint(tmp_path / "g.safetensors", gen, size=112)
    inp = INPAINTERS.create(f"unet-gan:checkpoint={path}", device="cpu")
    assert inp.arch == gen.cfg and inp.native_size == 112 and inp.composites == (mode == "masked")
    assert inp.params() == {"inpainter": "unet-gan", "mode": mode, "attention": "1", "size": "112",
                            "checkpoint_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    images, hole = face_batch(2), _hole(2, 112)
    occluded = images * (1 - hole)
    out = inp.inpaint(occluded, hole)
    with torch.no_grad():
        raw = gen(occluded, hole)
    if mode == "masked":  # composited: visible pixels unchanged, the hole from the network
        assert torch.equal(out, torch.where(hole.bool(), raw, occluded))
    else:  # blind: the whole generated face, no composite
        assert torch.equal(out, raw) and not torch.equal(out * (1 - hole), occluded * (1 - hole))
    other = "blind" if mode == "masked" else "masked"
    with pytest.raises(ValueError, match=f"trained in mode={mode}, not {other}"):
        INPAINTERS.create(f"unet-gan:checkpoint={path},mode={other}", device="cpu")
    # a plain torch state dict (no metadata): the architecture is read from the shapes
    pt = tmp_path / "g.pt"
    torch.save({"state_dict": gen.state_dict()}, pt)
    bare = UNetGAN(str(pt), device="cpu")
    assert bare.arch == gen.cfg and torch.equal(bare.inpaint(occluded, hole), out)


def test_wrong_shape_checkpoint_names_the_file(tmp_path: Path) -> None:
    small = UNetGenerator(UNetConfig(base_channels=4))
    lying = write_checkpoint(tmp_path / "lying.safetensors", small, meta={"architecture": UNetConfig(base_channels=8).to_meta()})
    with pytest.raises(CheckpointError, match=r"lying\.safetensors.*shape mismatch: .*down\.0\.conv\.weight"):
        UNetGAN(str(lying), device="cpu")
    no_gates = write_checkpoint(tmp_path / "nogates.safetensors", small,
                                meta={"architecture": UNetConfig(base_channels=4, attention=True).to_meta()})
    with pytest.raises(CheckpointError, match=r"nogates\.safetensors.*missing keys: gates\."):
        UNetGAN(str(no_gates), device="cpu")
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"encoder.conv.weight": torch.zeros(2, 2)}, str(foreign))
    with pytest.raises(CheckpointError, match=r"foreign\.safetensors: not a unet-gan generator .*encoder"):
        UNetGAN(str(foreign), device="cpu")
    with pytest.raises(CheckpointError, match="not a unet-gan generator"):
        config_from_state({"down.0.conv.weight": torch.zeros(4, 5, 4, 4)}, "x.pt")


# ------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unet_faces")
    for i, face in enumerate(_aligned_real_faces()[:24]):
        cv2.imwrite(str(folder / f"face{i:02d}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return folder


def test_tiny_training_reduces_validation_hole_l1_and_reloads(faces_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = TrainConfig("unet-gan:attention=1,depth=4", data=str(faces_dir), out=str(out), aligned=True, size=64,
                      occlusion="random_block+random_part", steps=80, batch_size=4, base_channels=8,
                      val_fraction=0.25, checkpoint_every=40, sample_every=40, device="cpu")
    result = train(cfg)
    first, last = result.history[0], result.history[-1]
    assert last["val_hole_l1"] < 0.85 * first["val_hole_l1"], (first, last)
    assert set(result.history[1]) >= {"d_real", "d_fake", "g_adv", "g_rec", "g_rec_hole", "g_total"}
    inp = INPAINTERS.create(f"unet-gan:checkpoint={out / 'last.safetensors'}", device="cpu")
    assert inp.native_size == 64 and inp.arch.attention and inp.arch.depth == 4 and inp.meta["recon"] == "l1"
    s = result.samples
    assert torch.equal(inp.inpaint(s["occluded"], s["hole"]), s["restored"])  # training computes what the backend does


def test_blind_training_scores_the_whole_face(faces_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig("unet-gan:mode=blind,depth=4", data=str(faces_dir), out=str(tmp_path / "b"), aligned=True,
                      size=64, occlusion="random_block", steps=2, batch_size=2, base_channels=4, val_fraction=0.25,
                      device="cpu")
    result = train(cfg)
    s = result.samples
    visible = s["hole"].expand_as(s["clean"]) == 0
    assert not torch.equal(s["restored"][visible], s["occluded"][visible])  # no hole-only composite
    inp = UNetGAN(str(tmp_path / "b" / "last.safetensors"), device="cpu")
    assert inp.mode == "blind" and not inp.composites
    assert torch.equal(inp.inpaint(s["occluded"], s["hole"]), s["restored"])


def test_cli_train_then_run_records_the_mode(faces_dir: Path, tiny_pack: Path, tmp_path: Path) -> None:
    from recogbench.cli import app

    runner = CliRunner()
    run_dir = tmp_path / "ck"
    r = runner.invoke(app, ["train", "unet-gan:mode=blind,depth=4", "--data", str(faces_dir), "--aligned", "--out",
                            str(run_dir), "--steps", "1", "--batch-size", "2", "--base-channels", "4", "--size", "64",
                            "--device", "cpu"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = tmp_path / "res"
    r = runner.invoke(app, ["run", "bin", "--data", str(tiny_pack), "--out", str(res), "--occlusion", "region:mouth",
                            "--inpainter", f"unet-gan:checkpoint={run_dir / 'last.safetensors'}", "--device", "cpu",
                            "--quiet", "--bootstrap", "0"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    with open(res / "leaderboard.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["inpainter"].startswith("unet-gan")]
    assert len(rows) == 1 and "mode=blind" in rows[0]["inpainter_settings"]
    assert "attention=0" in rows[0]["inpainter_settings"] and rows[0]["reads_clean"] == "False"
