"""ID-Inpainter's identity Sampler (IR-50) and stage-2 Fusor (E, G, D, Z): fidelity to the
official code through the ../shared/fidelity packs, and their training stages."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from recogbench.checkpoint import CheckpointError, load_into, load_state, save_state
from recogbench.data import DataError

from .conftest import face_batch, fidelity_pack, smooth_faces

OCCLUSION = "random_block+random_part"


def _report(res: dict) -> str:
    return "; ".join(f"{k}: {d:.3g}/{tol:.3g} = {d / tol:.3g}×atol" for k, (d, tol, _) in res.items())


def _assert_all_within(res: dict) -> None:
    bad = {k: v for k, v in res.items() if not v[2]}
    assert not bad, _report(bad)
    print("\n" + _report(res))


# ---------------------------------------------------------------------------- sampler


@pytest.fixture(scope="module")
def sampler_pack():
    return fidelity_pack("id-inpainter-sampler")


def test_sampler_matches_the_official_ir50(sampler_pack, one_torch_thread) -> None:
    from inpainters.id_inpainter.sampler import Sampler, sampler_from_state

    fill, pack = sampler_pack
    z = Sampler().eval()
    assert fill.check_keys(z.state_dict(), pack.meta["keys"]) == []
    assert sum(p.numel() for p in z.parameters()) == pack.meta["n_parameters"]
    fill.fill_module_(z, pack.gain)
    acts: dict[str, list[torch.Tensor]] = {}
    for name in ("input_layer", "layer1", "layer2", "layer3", "layer4"):
        getattr(z, name).register_forward_hook(lambda m, i, o, name=name: acts.setdefault(name, []).append(o))
    x = torch.from_numpy(pack.inputs["x"])
    with torch.no_grad():
        got = torch.cat([z(x[i:i + 1]) for i in range(len(x))])   # one sample per call, as the pack was made
        batched = z(x)
    outputs = {"z_raw": got}
    for name, parts in acts.items():
        for suffix, value in fill.summarise(torch.cat(parts[:len(x)])).items():
            outputs[f"act.{name}{suffix}"] = value
    assert set(outputs) == set(pack.outputs)
    _assert_all_within(fill.compare(outputs, pack))
    assert (batched - got).abs().max().item() <= pack.atol("z_raw")

    # the checkpoint loader builds the same network from the official-shaped state dict
    state = fill.fill_state_dict(pack.meta["keys"], pack.gain)
    loaded = sampler_from_state(state, "filled Resnet50_70000_net.pth").eval()
    assert (loaded.num_layers, loaded.feature_dim, loaded.width) == (50, 256, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x[:1]), got[:1])
    del state["layer3.13.res_layer.0.weight"]
    with pytest.raises(CheckpointError, match="missing keys: layer3.13.res_layer.0.weight"):
        sampler_from_state(state, "broken")


def test_sampler_shapes_and_arcface_head() -> None:
    from inpainters.id_inpainter.sampler import ArcMarginProduct, Sampler, sampler_from_state

    small = Sampler(50, 32, width=8)
    assert small(torch.zeros(2, 3, 112, 112)).shape == (2, 32)
    again = sampler_from_state(small.state_dict())
    assert (again.num_layers, again.feature_dim, again.width) == (50, 32, 8)
    assert len(Sampler(100, 8, width=4).layer3) == 30
    with pytest.raises(ValueError, match="num_layers"):
        Sampler(34)

    head = ArcMarginProduct(4, 3, s=64.0, m=0.5)
    x = torch.randn(5, 4)
    labels = torch.tensor([0, 1, 2, 0, 1])
    cos = head.cosine(x)
    logits = head(x, labels)
    own = cos.gather(1, labels[:, None]).squeeze(1)
    theta = own.clamp(-1, 1).acos()
    expect = torch.where(own > math.cos(math.pi - 0.5), torch.cos(theta + 0.5), own - math.sin(math.pi - 0.5) * 0.5)
    assert torch.allclose(logits.gather(1, labels[:, None]).squeeze(1), 64 * expect, atol=1e-4)
    other = torch.ones_like(cos, dtype=torch.bool).scatter_(1, labels[:, None], False)
    assert torch.allclose(logits[other], 64 * cos[other])


# ------------------------------------------------------------------------------ fusor


@pytest.fixture(scope="module")
def fusor_pack():
    return fidelity_pack("id-inpainter-fusor")


@pytest.mark.slow
def test_fusor_checkpoint_loads_and_matches_the_official_network(fusor_pack, one_torch_thread) -> None:
    from inpainters.id_inpainter.fusor import Fusor

    fill, pack = fusor_pack
    fusor = Fusor().eval()
    assert fill.check_keys(fusor.state_dict(), pack.meta["keys"]) == []
    for prefix, n in pack.meta["prefixes"].items():
        assert sum(k.startswith(prefix) for k in fusor.state_dict()) == n
    no_d = [e for e in pack.meta["keys"] if not e[0].startswith("D.")]
    assert fill.check_keys(Fusor(with_discriminator=False).state_dict(), no_d) == []

    # the Lightning checkpoint's state_dict, filled by the rule, through the strict loader
    load_into(fusor, fill.fill_state_dict(pack.meta["keys"], pack.gain), "filled Fusor checkpoint")
    acts: dict[str, list[torch.Tensor]] = {}
    for i in range(7):
        fusor.G.model[f"layer_{i}"].register_forward_hook(
            lambda m, a, o, i=i: acts.setdefault(f"G.model.layer_{i}", []).append(o))
    composite = torch.from_numpy(pack.inputs["composite"])
    source = torch.from_numpy(pack.inputs["source"])
    z_in = torch.from_numpy(pack.inputs["z_id"])
    n = len(composite)
    with torch.no_grad():
        z_att = [fusor.E(composite[i:i + 1]) for i in range(n)]
        output = torch.cat([fusor.G(z_in[i:i + 1], z_att[i]) for i in range(n)])
        g_acts = {k: torch.cat(v) for k, v in acts.items()}
        z_id = torch.cat([fusor.identity(source[i:i + 1]) for i in range(n)])
        forward_output = torch.cat([fusor(composite[i:i + 1], source[i:i + 1]) for i in range(n)])
        batched = fusor(composite, source)
    outputs = {"output": output, "forward_output": forward_output, "z_id": z_id}
    for j in range(7):
        for suffix, value in fill.summarise(torch.cat([za[j] for za in z_att])).items():
            outputs[f"act.E.z_att.{j}{suffix}"] = value
    for name, value in g_acts.items():
        for suffix, summary in fill.summarise(value).items():
            outputs[f"act.{name}{suffix}"] = summary
    assert set(outputs) == set(pack.outputs)
    _assert_all_within(fill.compare(outputs, pack))
    assert (batched - forward_output).abs().max().item() <= pack.atol("forward_output")


@pytest.mark.slow
def test_fusor_from_state_reads_the_shape_from_the_keys(one_torch_thread) -> None:
    from inpainters.id_inpainter.fusor import Fusor, fusor_from_state

    small = Fusor(32, width=4, sampler_width=8)
    state = small.state_dict()
    again = fusor_from_state(state)
    assert again.architecture() == small.architecture() and again.D is not None
    no_d = fusor_from_state(state, with_discriminator=False)
    assert no_d.D is None and not any(k.startswith("D.") for k in no_d.state_dict())
    assert fusor_from_state({k: v for k, v in state.items() if not k.startswith("D.")}).D is None
    with torch.no_grad():
        x = torch.rand(1, 3, 112, 112) * 2 - 1
        assert torch.equal(small.eval()(x, x), no_d.eval()(x, x))
    with pytest.raises(CheckpointError, match="not an ID-Inpainter Fusor"):
        fusor_from_state({k: v for k, v in state.items() if not k.startswith("G.")})


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def tiny_sampler_file(tmp_path_factory) -> Path:
    """A tiny (width 8, 32-d) random sampler saved as the fusor's identity model."""
    from inpainters.id_inpainter.sampler import Sampler

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sampler") / "sampler.safetensors"
    save_state(path, Sampler(50, 32, width=8).state_dict())
    return path


def _config(**kw):
    from recogbench.train import TrainConfig

    base = dict(inpainter="id-inpainter", data="unused", out="unused", base_channels=4, batch_size=4, seed=0, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_train_config_stage_defaults_and_checks() -> None:
    assert _config().lr == 2e-4 and _config(stage="ca").lr == 1e-4 and _config(stage="fusor").lr == 4e-4
    assert _config(stage="sampler", batch_size=512).lr == pytest.approx(0.1)
    assert _config(stage="fusor", lr=1e-3).lr == 1e-3
    with pytest.raises(ValueError, match="stage='gan'"):
        _config(stage="gan")
    with pytest.raises(ValueError, match="id_weight=-1"):
        _config(stage="fusor", id_weight=-1)


def _hole(n: int) -> torch.Tensor:
    hole = torch.zeros(n, 1, 112, 112)
    hole[:, :, 40:80, 30:90] = 1
    return hole


@pytest.mark.slow
def test_fusor_trainer_learns_and_restores_its_state(tiny_sampler_file: Path, one_torch_thread) -> None:
    from inpainters.id_inpainter.train_stages import FusorTrainer

    with pytest.raises(ValueError, match="needs the sampler weights"):
        FusorTrainer(_config(stage="fusor"), torch.device("cpu"))
    with pytest.raises(ValueError, match="112×112 only"):
        FusorTrainer(_config(stage="fusor", size=64, identity_model=str(tiny_sampler_file)), torch.device("cpu"))

    config = _config(stage="fusor", identity_model=str(tiny_sampler_file), id_weight=7.0)
    trainer = FusorTrainer(config, torch.device("cpu"))
    assert trainer.fusor.architecture() == {"c_id": 32, "width": 4, "sampler": {"num_layers": 50, "feature_dim": 32, "width": 8}}
    z_before = {k: v.clone() for k, v in trainer.fusor.Z.state_dict().items()}
    clean, hole = face_batch(4, seed=1), _hole(4)
    torch.manual_seed(0)
    target, source, same = trainer.pairs(clean)
    assert torch.equal(source, clean * 2 - 1) and set(same.tolist()) <= {0.0, 1.0}
    for k in range(4):
        assert torch.equal(target[k], source[k]) == bool(same[k])

    history = [trainer.step(clean, clean, hole) for _ in range(10)]
    assert set(history[0]) == set(trainer.loss_names)
    first, last = history[0], history[-1]
    assert last["g_total"] < 0.6 * first["g_total"], (first, last)
    assert last["g_attribute"] < 0.6 * first["g_attribute"] and last["d_hinge"] < first["d_hinge"]
    # Z is frozen (weights and BatchNorm statistics), only E, G, D move
    assert all(torch.equal(v, trainer.fusor.Z.state_dict()[k]) for k, v in z_before.items())

    restored = trainer.restore(clean, hole)
    assert restored.shape == (4, 3, 112, 112) and 0 <= restored.min() and restored.max() <= 1
    assert set(trainer.generator_state()) | set(trainer.discriminator_state()) == set(trainer.fusor.state_dict())
    assert all(k.startswith("D.") for k in trainer.discriminator_state())
    assert trainer.meta()["loss_weights"]["identity"] == 7.0

    other = FusorTrainer(config, torch.device("cpu"))
    other.load_state(trainer.generator_state(), trainer.discriminator_state(), trainer.optimizer_state(), "test")
    assert torch.equal(other.restore(clean, hole), restored)


@pytest.mark.slow
def test_sampler_trainer_learns(one_torch_thread) -> None:
    from inpainters.id_inpainter.train_stages import SamplerTrainer, black_filled

    trainer = SamplerTrainer(_config(stage="sampler", batch_size=8, lr=0.1), torch.device("cpu"))
    assert trainer.sampler.architecture() == {"num_layers": 50, "feature_dim": 256, "width": 8}
    clean = face_batch(8, seed=1)
    clean[4:] = (clean[:4] + 0.05 * torch.randn(4, 3, 112, 112, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    labels, hole = torch.arange(8) % 4, _hole(8)
    with pytest.raises(RuntimeError, match="set_identities"):
        trainer.step(clean, clean, hole, labels=labels)
    trainer.set_identities(4)
    assert torch.equal(black_filled(clean, hole)[:, :, 50, 50], -torch.ones(8, 3))
    torch.manual_seed(0)
    history = [trainer.step(clean, clean, hole, labels=labels) for _ in range(16)]
    first, last = history[0], history[-1]
    assert min(h["arc_loss"] for h in history[-3:]) < 0.2 * first["arc_loss"], history
    assert max(h["arc_accuracy"] for h in history[-3:]) == 1.0
    val = trainer.validate(clean, clean, hole, labels)
    assert set(val) == set(trainer.val_names) and math.isfinite(val["val_id_gap"])
    assert set(trainer.generator_state()) == set(trainer.sampler.state_dict()) and set(trainer.discriminator_state()) == {"head.weight"}


# ----------------------------------------------------------------------- through the loop


class _Stages:
    """A stand-in for the backend's ``make_trainer`` dispatch (fusor and sampler stages)."""

    @classmethod
    def make_trainer(cls, config, device):
        from inpainters.id_inpainter.train_stages import FusorTrainer, SamplerTrainer

        return {"fusor": FusorTrainer, "sampler": SamplerTrainer}[config.stage](config, device)


@pytest.fixture
def stages(monkeypatch) -> str:
    from recogbench.registry import INPAINTERS

    INPAINTERS.names()  # built-ins and plugins first, so the stand-in is not overwritten
    monkeypatch.setitem(INPAINTERS._targets, "test-id-inpainter-stages", _Stages)
    return "test-id-inpainter-stages"


@pytest.fixture(scope="module")
def people_dir(tmp_path_factory) -> Path:
    """DIR/<person>/<image>.png: 6 identities × 4 aligned smooth faces (noisy variants)."""
    root = tmp_path_factory.mktemp("people")
    rng = np.random.default_rng(0)
    for k, base in enumerate(smooth_faces(6, seed=5)):
        (root / f"person{k}").mkdir()
        for j in range(4):
            face = np.clip(base.astype(int) + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / f"person{k}" / f"{j}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return root


def _loop_config(data: Path, out: Path, **kw):
    from recogbench.train import TrainConfig

    base = dict(data=str(data), out=str(out), occlusion=OCCLUSION, aligned=True, base_channels=4, batch_size=4,
                val_fraction=0.25, checkpoint_every=3, sample_every=3, device="cpu")
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_stages_run_through_the_training_loop(stages: str, people_dir: Path, tmp_path: Path, one_torch_thread) -> None:
    from recogbench.train import train

    # sampler: identity labels from the person folders; resumable like any other run
    kw = dict(inpainter=stages, stage="sampler", steps=6, lr=0.05)
    straight = train(_loop_config(people_dir, tmp_path / "s", **kw), progress=False)
    assert straight.data["n_identities"] == 6
    assert {"arc_loss", "arc_accuracy", "val_id_gap"} <= set(straight.history[-1])
    assert math.isfinite(straight.history[-1]["val_id_gap"]) and math.isfinite(straight.history[0]["val_id_gap"])
    with open(tmp_path / "s" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(7)) and rows[3]["val_id_gap"] != ""

    def stop_at_5(step: int, row: dict) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_loop_config(people_dir, tmp_path / "r", **kw), progress=False, on_step=stop_at_5)
    resumed = train(_loop_config(people_dir, tmp_path / "r", **kw), progress=False)
    assert resumed.start_step == 3
    for a, b in zip(straight.history[4:], resumed.history):
        assert {k: v for k, v in a.items() if k != "elapsed_s"} == pytest.approx(
            {k: v for k, v in b.items() if k != "elapsed_s"}, rel=0, abs=0, nan_ok=True)
    sampler_ckpt = tmp_path / "s" / "last.safetensors"
    state, meta = load_state(sampler_ckpt)
    assert meta["stage"] == "sampler" and meta["head"]["classes"] == 6 and "input_layer.0.weight" in state

    # the fusor, with the sampler just trained as its frozen Z
    result = train(_loop_config(people_dir, tmp_path / "f", inpainter=stages, stage="fusor", steps=3,
                                identity_model=str(sampler_ckpt)), progress=False)
    state, meta = load_state(tmp_path / "f" / "last.safetensors")
    assert meta["stage"] == "fusor" and meta["identity_model"]["path"] == str(sampler_ckpt)
    assert {k.split(".")[0] for k in state} == {"G", "E", "Z"}
    z_trained, _ = load_state(sampler_ckpt)
    assert all(torch.equal(state[f"Z.{k}"], v) for k, v in z_trained.items())
    assert result.samples["restored"].shape == (6, 3, 112, 112)
    assert math.isfinite(result.val["val_psnr"])

    # the next stage of the official schedule continues from that Fusor with id_weight 7
    fusor_ckpt = tmp_path / "f" / "last.safetensors"
    result = train(_loop_config(people_dir, tmp_path / "f7", inpainter=stages, stage="fusor", steps=1, id_weight=7.0,
                                identity_model=str(fusor_ckpt)), progress=False)
    state7, meta7 = load_state(tmp_path / "f7" / "last.safetensors")
    assert meta7["identity_model"]["kind"] == "fusor" and meta7["loss_weights"]["identity"] == 7.0
    assert all(torch.equal(state7[k], v) for k, v in state.items() if k.startswith("Z."))
    assert not torch.equal(state7["G.convt.weight"], state["G.convt.weight"])


def test_sampler_stage_needs_person_folders(stages: str, people_dir: Path, tmp_path: Path, one_torch_thread) -> None:
    from recogbench.train import train

    flat = tmp_path / "flat"
    flat.mkdir()
    for j, path in enumerate(sorted(people_dir.rglob("*.png"))[:6]):
        (flat / f"{j}.png").write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="images lie directly in DIR"):
        train(_loop_config(flat, tmp_path / "o", inpainter=stages, stage="sampler", steps=1), progress=False)
    one = tmp_path / "one" / "person"
    one.mkdir(parents=True)
    for path in sorted(flat.glob("*.png")):
        (one / path.name).write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="at least 2 are needed"):
        train(_loop_config(one.parent, tmp_path / "o2", inpainter=stages, stage="sampler", steps=1), progress=False)


def test_train_cli_passes_the_stage_options(monkeypatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import recogbench.train as training
    from recogbench.cli import app

    seen = {}

    def fake_train(config, **kw):
        seen["config"] = config
        raise ValueError("stop here")

    monkeypatch.setattr(training, "train", fake_train)
    runner = CliRunner()
    r = runner.invoke(app, ["train", "id-inpainter", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--stage", "fusor",
                            "--id-weight", "9", "--identity-model", str(tmp_path / "z.pth")])
    assert r.exit_code == 2 and "stop here" in r.output
    c = seen["config"]
    assert (c.stage, c.id_weight, c.identity_model, c.lr) == ("fusor", 9.0, str(tmp_path / "z.pth"), 4e-4)
    r = runner.invoke(app, ["train", "id-inpainter", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--stage", "gan"])
    assert r.exit_code == 2 and "stage='gan'" in r.output
