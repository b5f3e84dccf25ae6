"""The ``ifacenet`` inpainter (inpainters/ifacenet.py), VGG-19 (inpainters/vgg.py) and the IFACENET
trainer (inpainters/ifacenet_train.py): loading, the contract, the published losses, one test per
fixed defect of the official training code (each fails on the official behaviour), a tiny run
that learns, and resuming."""

from __future__ import annotations

import copy
import csv
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inpainters.ifacenet import CHECKPOINT_FORMAT, IFACENet, IFACENetInpainter, prepare_input
from inpainters.ifacenet_train import (
    BACKBONE_RANDOM,
    PERCEPTUAL_DISABLED,
    IFACENetTrainer,
    hole_l1,
    perceptual_and_style,
)
from inpainters.layers.resnet import ResNet50
from inpainters.vgg import VGG19_LAYERS, VGG16Features, VGG19Features, load_vgg19
from recogbench.checkpoint import CheckpointError, load_state, save_state
from recogbench.registry import INPAINTERS
from recogbench.train import TrainConfig, train
from recogbench.verifiers.base import file_digest

from .conftest import face_batch, fidelity_pack

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 64
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
#: torchvision's ``vgg19().features.state_dict()`` keys (with the ``features.`` prefix of ``vgg19().state_dict()``).
TORCHVISION_VGG19_FEATURES = [f"features.{i}.{p}" for i in (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
                              for p in ("weight", "bias")]


def _holes(n: int, size: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    side = size * 7 // 16
    m = torch.zeros(n, 1, size, size)
    for i in range(n):
        y, x = torch.randint(0, size - side, (2,), generator=gen).tolist()
        m[i, :, y:y + side, x:x + side] = 1
    return m


def _batch(n: int = 2, size: int = SIZE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean, occluded with black holes, hole) at ``size``."""
    clean = F.interpolate(face_batch(n, seed), size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0, 1)
    hole = _holes(n, size, seed)
    return clean, clean * (1 - hole), hole


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    return TrainConfig("ifacenet", data="unused", out=str(tmp_path), size=SIZE, seed=3, device="cpu", **kw)


def _trunk_input_hook(model: IFACENet, seen: list[torch.Tensor]):
    return model.feature_extractor.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))


def _inpaint_seeing_trunk_input(inp: IFACENetInpainter, occluded: torch.Tensor,
                                hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the backend's prediction, the input its ResNet trunk received)."""
    seen: list[torch.Tensor] = []
    handle = _trunk_input_hook(inp.model, seen)
    try:
        pred = inp._inpaint(occluded, hole, identity=None, clean=None)
    finally:
        handle.remove()
    return pred, seen[0]


# ------------------------------------------------------------------------------ the inpainter


def test_refuses_without_a_checkpoint_saying_how_to_get_one() -> None:
    for make in (lambda: IFACENetInpainter(), lambda: INPAINTERS.create("ifacenet")):
        with pytest.raises(ValueError, match=r"ifacenet needs a checkpoint: .*model_state_dict.*recogbench train ifacenet"):
            make()
    inp = INPAINTERS.get("ifacenet")
    assert inp.native_size == 256 and "IEEE Latin America Transactions 23(8)" in inp.paper and inp.license


def test_loads_the_authors_training_file_and_computes_the_published_path(ifacenet_checkpoint: Path) -> None:
    """A ``torch.save({"epoch", "model_state_dict", "loss": nn.MSELoss()})`` file loads strictly;
    the backend feeds the published input (white hole, no normalisation anywhere) and the
    harness contract holds at any size."""
    inp = INPAINTERS.create(f"ifacenet:checkpoint={ifacenet_checkpoint},dilation=1-2-4", device="cpu")
    assert inp.params() == {"inpainter": "ifacenet", "checkpoint_sha256": file_digest(ifacenet_checkpoint),
                            "dilation": "1-2-4", "mode": "masked", "trunk_input": "official", "size": "256"}
    assert inp.native_size == 256 and not inp.model.training
    state, _ = load_state(ifacenet_checkpoint)
    assert all(torch.equal(v, state[k]) for k, v in inp.model.state_dict().items())

    clean, occluded, hole = _batch(2, 256, seed=1)
    pred, trunk_input = _inpaint_seeing_trunk_input(inp, occluded, hole)
    x = prepare_input(occluded, hole)
    assert torch.equal(trunk_input, x)                 # the trunk sees the official input: [0, 1], white hole
    reference = IFACENet(official_freeze=False).eval()
    reference.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(pred, reference(x))

    # harness contract at other sizes (resized to 256 and back), visible pixels untouched, deterministic
    for shape in ((112, 112), (72, 88)):
        c, o, h = _batch(1, 112, seed=2)
        c = F.interpolate(c, size=shape, mode="bilinear", align_corners=False).clamp(0, 1)
        h = (F.interpolate(h, size=shape, mode="nearest") > 0).float()
        o = c * (1 - h)
        out = inp.inpaint(o, h)
        assert out.shape == c.shape and out.min() >= 0 and out.max() <= 1
        assert torch.equal(out[h.expand_as(out) == 0], o[h.expand_as(o) == 0])
        assert not torch.equal(out, o)
        if shape == (112, 112):
            assert torch.equal(out, inp.inpaint(o, h))


@pytest.mark.slow
def test_a_pack_filled_authors_file_gives_the_official_output(tmp_path: Path) -> None:
    """The fidelity pack's weights in the authors' file layout, through the backend: the
    official ``Img_inpainting`` output and the official inference's ``merged``."""
    fill, pack = fidelity_pack("ifacenet")
    path = tmp_path / "reconstruction.pth"
    torch.save({"epoch": 20, "model_state_dict": fill.fill_state_dict(pack.meta["keys"], pack.gain),
                "optimizer_state_dict": {}, "loss": torch.nn.MSELoss()}, path)
    inp = IFACENetInpainter(str(path), device="cpu")
    face, mask = torch.from_numpy(pack.inputs["face"]), torch.from_numpy(pack.inputs["mask"])
    out = torch.cat([inp._inpaint(face[i:i + 1], mask[i:i + 1], identity=None, clean=None) for i in range(len(face))])
    res = fill.compare({"output": out, "composite": face * (1 - mask) + out * mask}, pack, names=["output", "composite"])
    assert all(ok for _, _, ok in res.values()), res


def test_loads_our_safetensors_with_its_recorded_settings(tmp_path: Path, ifacenet_checkpoint: Path) -> None:
    state, _ = load_state(ifacenet_checkpoint)
    path = tmp_path / "last.safetensors"
    save_state(path, state, {"format": CHECKPOINT_FORMAT, "dilation": [1, 2, 4], "size": 64, "mode": "self-supervised",
                             "trunk_input": "imagenet"})
    inp = INPAINTERS.create("ifacenet", checkpoint=str(path), device="cpu")
    assert (inp.mode, inp.trunk_input, inp.native_size) == ("self-supervised", "imagenet", 64)
    clean, occluded, hole = _batch(2, 64, seed=4)
    pred, trunk_input = _inpaint_seeing_trunk_input(inp, occluded, hole)
    # self-supervised: the occluded image as it is (no white hole); the trunk sees it ImageNet-normalised
    torch.testing.assert_close(trunk_input, (occluded - IMAGENET_MEAN) / IMAGENET_STD, rtol=0, atol=1e-6)
    reference = IFACENet(official_freeze=False, trunk_input="imagenet").eval()
    reference.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(pred, reference(occluded))
    with pytest.raises(ValueError, match="trained in mode=self-supervised, not masked"):
        IFACENetInpainter(str(path), mode="masked", device="cpu")
    with pytest.raises(ValueError, match="trained with dilation=1-2-4, not 1-2-8"):
        IFACENetInpainter(str(path), dilation="1-2-8", device="cpu")


def test_refuses_a_wrong_checkpoint_naming_the_keys(tmp_path: Path, ifacenet_checkpoint: Path,
                                                    tiny_pconv_checkpoint: Path) -> None:
    state, _ = load_state(ifacenet_checkpoint)
    state = {k: v for k, v in state.items() if k != "attention.gamma"}
    state["extra.weight"] = torch.zeros(1)
    wrong = tmp_path / "wrong.safetensors"
    save_state(wrong, state)
    with pytest.raises(CheckpointError, match=r"wrong\.safetensors: checkpoint does not fit IFACENet "
                                              r"\(missing keys: attention\.gamma; unexpected keys: extra\.weight"):
        IFACENetInpainter(str(wrong), device="cpu")
    with pytest.raises(CheckpointError, match="checkpoint does not fit IFACENet .*missing keys: attention"):
        IFACENetInpainter(str(tiny_pconv_checkpoint), device="cpu")
    with pytest.raises(CheckpointError, match=r"holds 3 dilated branches .* dilation=1-2 has 2"):
        IFACENetInpainter(str(ifacenet_checkpoint), dilation="1-2", device="cpu")
    with pytest.raises(ValueError, match="mode must be one of masked, self-supervised"):
        IFACENetInpainter(str(ifacenet_checkpoint), mode="blind", device="cpu")


# ------------------------------------------------------------------------------------ VGG-19


def test_vgg19_has_torchvision_keys_and_loads_their_files(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = VGG19Features()
    keys = list(model.state_dict())
    assert keys == TORCHVISION_VGG19_FEATURES and len(keys) == 32
    assert (VGG19_LAYERS["relu1_1"], VGG19_LAYERS["relu3_4"], VGG19_LAYERS["relu4_4"], VGG19_LAYERS["relu5_2"]) == (1, 17, 26, 31)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    full = {**state, "classifier.0.weight": torch.zeros(8, 8), "classifier.6.bias": torch.zeros(8)}
    pth = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(full, pth)
    st = tmp_path / "vgg19.safetensors"
    save_file(full, str(st))
    for path in (pth, st):
        loaded, digest = load_vgg19(path)
        assert digest == file_digest(path) and not loaded.training
        assert not any(p.requires_grad for p in loaded.parameters())
        assert torch.equal(loaded.features[34].weight, state["features.34.weight"])
    feats = loaded(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8),
                                                  (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)]
    vgg16 = tmp_path / "vgg16.safetensors"
    save_file(VGG16Features().state_dict(), str(vgg16))
    with pytest.raises(CheckpointError, match=r"vgg16\.safetensors: checkpoint does not fit VGG19Features "
                                              r"\(missing keys: features\.16\.bias.*shape mismatch: features\.19\.weight"):
        load_vgg19(vgg16)


def test_vgg19_normalises_inside_and_the_losses_vanish_on_equal_images() -> None:
    model = VGG19Features(("relu1_1",))
    with torch.no_grad():
        model.features[0].bias.zero_()
        assert model(IMAGENET_MEAN.expand(1, 3, 8, 8))[0].abs().max() == 0   # the ImageNet mean maps to zero
    vgg = VGG19Features()
    x = torch.rand(2, 3, 32, 32)
    perceptual, style = perceptual_and_style(vgg, x, x)
    assert perceptual == 0 and style == 0
    perceptual, style = perceptual_and_style(vgg, x, torch.rand(2, 3, 32, 32))
    assert perceptual > 0 and style > 0


# ---------------------------------------------------------------------------------- settings


def test_training_defaults_follow_the_backend_and_bad_settings_are_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recogbench.cli import app

    ifn = TrainConfig("ifacenet", data="d", out="o")
    assert (ifn.size, ifn.batch_size, ifn.lr, ifn.occlusion) == (256, 8, 1e-3, "freeform-coverage")
    assert TrainConfig("ifacenet", data="d", out="o", self_supervised=True).occlusion == "everyday"
    pconv = TrainConfig("pconv-gan", data="d", out="o")
    assert (pconv.size, pconv.batch_size, pconv.lr, pconv.occlusion) == (112, 16, 2e-4, "train-default")
    assert TrainConfig("id-inpainter", data="d", out="o", stage="ca").size == 112
    given = TrainConfig("ifacenet", data="d", out="o", size=128, batch_size=2, lr=5e-4, occlusion="random_block")
    assert (given.size, given.batch_size, given.lr, given.occlusion) == (128, 2, 5e-4, "random_block")
    with pytest.raises(ValueError, match=r"backbone_weights='r\.pth' \(not used by pconv-gan\)"):
        TrainConfig("pconv-gan", data="d", out="o", backbone_weights="r.pth")
    with pytest.raises(ValueError, match="multiples of 32"):
        IFACENetTrainer(TrainConfig("ifacenet", data="d", out="o", size=80), torch.device("cpu"))
    r = CliRunner().invoke(app, ["train", "pconv-gan", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                                 "--self-supervised"])
    assert r.exit_code == 2 and "self_supervised=True (not used by pconv-gan)" in r.output


# --------------------------------------------------------------------- the trainer: the fixes


def test_step_fixes_a_discriminator_gradients_and_b_hole_l1(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="inpainters.ifacenet_train"):
        trainer = IFACENetTrainer(_cfg(tmp_path), torch.device("cpu"))
    assert "trunk starts random" in caplog.text and "perceptual and style losses are disabled" in caplog.text
    meta = trainer.meta()
    assert meta["perceptual"] == PERCEPTUAL_DISABLED and meta["backbone"] == BACKBONE_RANDOM
    assert meta["format"] == CHECKPOINT_FORMAT and meta["mode"] == "masked" and meta["trunk_input"] == "imagenet"
    assert len(meta["fixes"]) == 4 and meta["loss_weights"] == {"perceptual": 1.7, "style": 4.0, "l1": 3.6,
                                                                 "adversarial": 4.7}
    assert trainer.opt_g.defaults["lr"] == 1e-3 and trainer.opt_g.defaults["betas"] == (0.9, 0.999)
    clean, occluded, hole = _batch(2, SIZE, seed=5)
    before = copy.deepcopy(trainer)
    trunk_bn = trainer.generator.feature_extractor[1]
    mean_before = trunk_bn.running_mean.clone()
    losses = trainer.step(clean, occluded, hole)
    assert set(losses) == set(trainer.loss_names) - {"g_perceptual", "g_style"}
    assert all(np.isfinite(list(losses.values())))

    fake = before.forward(occluded, hole).detach()
    # (b) the hole L1 is the mean error per hole value; the official L1Loss(out·m, gt·m) is that × the hole ratio
    ratio = float(hole.mean())
    official = F.l1_loss(fake * hole, clean * hole)
    ours = hole_l1(fake, clean, hole)
    assert losses["g_l1"] == pytest.approx(float(ours), rel=1e-5)
    assert float(ours) == pytest.approx(float(official) / ratio, rel=1e-4) and ratio < 0.3
    assert float(hole_l1(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4), torch.eye(4).view(1, 1, 4, 4))) == 1.0

    # (a) D's gradients after the step are those of D's own loss alone
    d = before.discriminator_loss(clean, fake)
    assert losses["d_total"] == pytest.approx(float(d["d_total"].detach()), rel=1e-5)
    want = torch.autograd.grad(d["d_total"], list(before.discriminator.parameters()))
    got = [p.grad for p in trainer.discriminator.parameters()]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7)
    # … which the official leftover 4.7·∇BCE(D(fake), 1) would visibly change
    logits = before.discriminator(fake)
    leftover = torch.autograd.grad(4.7 * F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)),
                                   list(before.discriminator.parameters()))
    assert sum(float(x.abs().sum()) for x in leftover) > 0.1 * sum(float(w.abs().sum()) for w in want)

    # a random trunk has no statistics worth keeping: its BatchNorm normalises with batch statistics
    assert not torch.equal(trunk_bn.running_mean, mean_before)
    assert meta["trunk_batchnorm"] == "batch statistics (random trunk)"


def test_imagenet_trunk_keeps_its_statistics_c_and_sees_normalised_input_d(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    imagenet = ResNet50(num_classes=1000)
    with torch.no_grad():   # statistics unlike a fresh network's, as a trained file has
        for m in imagenet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    resnet = tmp_path / "resnet50.safetensors"
    save_file({k: v.contiguous() for k, v in imagenet.state_dict().items()}, str(resnet))
    vgg = tmp_path / "vgg19.safetensors"
    save_file({k: v.contiguous() for k, v in VGG19Features().state_dict().items()}, str(vgg))
    trainer = IFACENetTrainer(_cfg(tmp_path, backbone_weights=str(resnet), perceptual_weights=str(vgg)),
                              torch.device("cpu"))
    meta = trainer.meta()
    assert meta["backbone"] == f"ResNet-50 resnet50.safetensors sha256:{file_digest(resnet)}"
    assert meta["perceptual"] == f"VGG19 vgg19.safetensors sha256:{file_digest(vgg)}"
    assert meta["trunk_batchnorm"] == "frozen (eval mode)"
    trunk = trainer.generator.feature_extractor
    assert torch.equal(trunk[0].weight, imagenet.conv1.weight) and torch.equal(trunk[7][2].bn3.running_var,
                                                                               imagenet.layer4[2].bn3.running_var)
    bn_state = {k: v.clone() for k, v in trunk.state_dict().items() if "running" in k or "num_batches" in k}
    conv_before = trunk[4][0].conv1.weight.clone()

    clean, occluded, hole = _batch(2, SIZE, seed=6)
    seen: list[torch.Tensor] = []
    handle = _trunk_input_hook(trainer.generator, seen)
    try:
        losses = trainer.step(clean, occluded, hole)
    finally:
        handle.remove()
    # (c) BatchNorm statistics of the ImageNet trunk are unchanged; its trainable convs did train
    after = trunk.state_dict()
    assert all(torch.equal(after[k], v) for k, v in bn_state.items())
    assert not torch.equal(trunk[4][0].conv1.weight, conv_before)
    # (d) the trunk saw the ImageNet-normalised network input (the separable branch the plain one)
    torch.testing.assert_close(seen[0], (prepare_input(occluded, hole) - IMAGENET_MEAN) / IMAGENET_STD,
                               rtol=0, atol=1e-6)
    # the published VGG-19 terms are on
    assert losses["g_perceptual"] > 0 and losses["g_style"] > 0
    w = trainer.weights
    assert losses["g_total"] == pytest.approx(w.perceptual * losses["g_perceptual"] + w.style * losses["g_style"]
                                              + w.l1 * losses["g_l1"] + w.adversarial * losses["g_adv"], rel=1e-5)
    assert not any(p.requires_grad for p in trainer.vgg.parameters())


def test_self_supervised_mode_sees_the_occluded_face_and_no_mask(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, self_supervised=True)
    assert cfg.occlusion == "everyday"
    trainer = IFACENetTrainer(cfg, torch.device("cpu"))
    assert trainer.mode == "self-supervised" and trainer.opt_g.defaults["betas"] == (0.0, 0.9)
    clean, occluded, hole = _batch(2, SIZE, seed=7)
    assert trainer.network_input(occluded, hole) is occluded
    before = copy.deepcopy(trainer)
    losses = trainer.step(clean, occluded, hole)
    fake = before.forward(occluded, torch.zeros_like(hole)).detach()   # the mask plays no part
    assert losses["g_l1"] == pytest.approx(float((fake - clean).abs().mean()), rel=1e-5)
    assert torch.equal(trainer.restore(occluded, hole), trainer.restore(occluded, torch.zeros_like(hole)))
    meta = trainer.meta()
    assert meta["mode"] == "self-supervised" and meta["l1"] == "whole image"


# ------------------------------------------------------------------------- the training loop


@pytest.fixture(scope="module")
def real_faces(tmp_path_factory) -> Path:
    """Eight real aligned faces (PNG) in a folder."""
    from .test_train import _aligned_real_faces

    folder = tmp_path_factory.mktemp("ifacenet_faces")
    for i, face in enumerate(_aligned_real_faces()[:8]):
        cv2.imwrite(str(folder / f"face{i}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return folder


def _tiny(faces: Path, out: Path, **kw) -> TrainConfig:
    base = dict(inpainter="ifacenet", data=str(faces), out=str(out), aligned=True, size=SIZE, batch_size=4,
                occlusion="random_block:size=48", val_fraction=0.25, device="cpu", seed=0)
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_a_tiny_run_learns_and_its_checkpoint_reproduces_the_samples(real_faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    steps = 12
    result = train(_tiny(real_faces, out, steps=steps, checkpoint_every=steps, sample_every=steps))
    assert (result.data["n_train"], result.data["n_val"]) == (6, 2)
    first, last = result.history[0], result.history[-1]
    print({k: (round(first[k], 4), round(last[k], 4)) for k in ("val_hole_l1", "val_hole_psnr", "val_psnr")})
    assert last["val_hole_l1"] < 0.85 * first["val_hole_l1"], (first, last)
    assert last["val_hole_psnr"] > first["val_hole_psnr"] + 0.5, (first, last)
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(steps + 1)) and rows[1]["g_perceptual"] == ""
    assert cv2.imread(str(out / "samples" / f"step_{steps:06d}.png")).shape == (3 * SIZE, 2 * SIZE, 3)
    _, meta = load_state(out / "last.safetensors")
    assert meta["format"] == CHECKPOINT_FORMAT and meta["size"] == SIZE and meta["config"]["lr"] == 1e-3
    inp = INPAINTERS.create(f"ifacenet:checkpoint={out / 'last.safetensors'}", device="cpu")
    assert inp.native_size == SIZE and inp.trunk_input == "imagenet"
    s = result.samples
    assert torch.equal(inp.inpaint(s["occluded"], s["hole"]), s["restored"])


class _Stop(KeyboardInterrupt):
    pass


@pytest.mark.slow
def test_resume_reproduces_an_uninterrupted_run(real_faces: Path, tmp_path: Path) -> None:
    kw = dict(steps=4, checkpoint_every=2, sample_every=2, batch_size=2)
    straight = train(_tiny(real_faces, tmp_path / "a", **kw))

    def stop_at_3(step: int, row: dict) -> None:
        if step == 3:
            raise _Stop

    with pytest.raises(_Stop):
        train(_tiny(real_faces, tmp_path / "b", **kw), on_step=stop_at_3)
    resumed = train(_tiny(real_faces, tmp_path / "b", **kw))
    assert resumed.start_step == 2 and [r["step"] for r in resumed.history] == [3, 4]
    keys = [k for k in straight.history[-1] if k != "elapsed_s"]
    for a, b in zip(straight.history[3:], resumed.history):
        assert {k: a[k] for k in keys} == pytest.approx({k: b[k] for k in keys}, rel=0, abs=0, nan_ok=True)
    for name in ("last.safetensors", "discriminators_last.safetensors"):
        ga, _ = load_state(tmp_path / "a" / name)
        gb, _ = load_state(tmp_path / "b" / name)
        assert all(torch.equal(ga[k], gb[k]) for k in ga), name
