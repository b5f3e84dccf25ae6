"""pconv-gan options and the ``under-mask`` preset ("Face Under-Mask Reconstruction", 2023):
the default stays the original model, the preset's shapes, options through checkpoints,
branch training then the fused fine-tune, the dense discriminator with BCE."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from inpainters.pconv_gan import (
    ARCHITECTURE_OPTIONS,
    OPTIONS,
    PRESETS,
    DenseDiscriminator,
    Generator,
    GeneratorConfig,
    PartialConv2d,
    PConvGAN,
    PConvGANSettings,
    PConvGANTrainer,
    discriminator_loss,
    generator_adversarial_loss,
    write_checkpoint,
)
from inpainters.vgg import CFGS, VGG16Features, layer_indices
from recogbench.checkpoint import CheckpointError, load_state, save_state
from recogbench.registry import INPAINTERS
from recogbench.train import TrainConfig, train

from .conftest import face_batch
from .test_pconv_gan import reference_partial_conv

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: The original generator's state dict at base_channels=4 (depth 4), as every existing
#: checkpoint holds it: the default configuration must keep exactly these names and shapes.
OLD_KEYS = {
    "partial.layers.0.bias": (4,), "partial.layers.0.conv.weight": (4, 3, 7, 7),
    "partial.layers.1.bias": (8,), "partial.layers.1.conv.weight": (8, 4, 5, 5),
    "partial.layers.2.bias": (16,), "partial.layers.2.conv.weight": (16, 8, 5, 5),
    "partial.layers.3.bias": (32,), "partial.layers.3.conv.weight": (32, 16, 3, 3),
    "plain.layers.0.weight": (4, 4, 7, 7), "plain.layers.0.bias": (4,),
    "plain.layers.1.weight": (8, 4, 5, 5), "plain.layers.1.bias": (8,),
    "plain.layers.2.weight": (16, 8, 5, 5), "plain.layers.2.bias": (16,),
    "plain.layers.3.weight": (32, 16, 3, 3), "plain.layers.3.bias": (32,),
    "fusion.reduce.weight": (32, 64, 1, 1), "fusion.reduce.bias": (32,),
    "fusion.atrous.0.weight": (32, 32, 3, 3), "fusion.atrous.0.bias": (32,),
    "fusion.atrous.1.weight": (32, 32, 3, 3), "fusion.atrous.1.bias": (32,),
    "fusion.atrous.2.weight": (32, 32, 3, 3), "fusion.atrous.2.bias": (32,),
    "decoder.0.weight": (16, 64, 3, 3), "decoder.0.bias": (16,),
    "decoder.1.weight": (8, 32, 3, 3), "decoder.1.bias": (8,),
    "decoder.2.weight": (4, 16, 3, 3), "decoder.2.bias": (4,),
    "decoder.3.weight": (4, 8, 3, 3), "decoder.3.bias": (4,),
    "refine.weight": (4, 4, 3, 3), "refine.bias": (4,),
    "out.weight": (3, 4, 3, 3), "out.bias": (3,),
}
#: Small discriminators for the preset in tests (the listed ones have 154 M + 53 M parameters).
SMALL_D = "d_dense=16,d_channels=4"


def original_forward(s: dict[str, torch.Tensor], image: torch.Tensor, hole: torch.Tensor,
                     dilations=(1, 2, 4), depth: int = 4) -> torch.Tensor:
    """The original generator written out with functional calls on its state dict."""
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    kernel = lambda i: 7 if i == 0 else 5 if i <= 2 else 3  # noqa: E731
    valid = 1 - hole
    x = image * valid
    fp, h, m = [], x, valid
    for i in range(depth):
        k = kernel(i)
        count = F.conv2d(m, torch.ones(1, 1, k, k), stride=2, padding=k // 2)
        new = (count > 0).float()
        h = F.conv2d(h * m, s[f"partial.layers.{i}.conv.weight"], stride=2, padding=k // 2) * (k * k / count.clamp_min(1)) * new
        h = lrelu(h + s[f"partial.layers.{i}.bias"].view(1, -1, 1, 1) * new)
        fp.append(h)
        m = new
    x4 = torch.cat([x, valid], 1)
    fv, h = [], x4
    for i in range(depth):
        h = lrelu(F.conv2d(h, s[f"plain.layers.{i}.weight"], s[f"plain.layers.{i}.bias"], stride=2, padding=kernel(i) // 2))
        fv.append(h)
    h = lrelu(F.conv2d(torch.cat([fp[-1], fv[-1]], 1), s["fusion.reduce.weight"], s["fusion.reduce.bias"]))
    for j, d in enumerate(dilations):
        h = h + lrelu(F.conv2d(h, s[f"fusion.atrous.{j}.weight"], s[f"fusion.atrous.{j}.bias"], padding=d, dilation=d))
    for k in range(depth):
        i = depth - 1 - k
        skip = torch.cat([fp[i - 1], fv[i - 1]], 1) if i else x4
        h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
        h = lrelu(F.conv2d(torch.cat([h, skip], 1), s[f"decoder.{k}.weight"], s[f"decoder.{k}.bias"], padding=1))
    h = lrelu(F.conv2d(h, s["refine.weight"], s["refine.bias"], padding=1))
    return torch.sigmoid(F.conv2d(h, s["out.weight"], s["out.bias"], padding=1))


def _holes(n: int, size: int) -> torch.Tensor:
    hole = torch.zeros(n, 1, size, size)
    hole[0, :, size // 2:, size // 4: 3 * size // 4] = 1   # a mask-shaped lower-face hole
    if n > 1:
        hole[1, :, size // 5: size // 2, size // 8: size // 2] = 1
    return hole


def _inputs(size: int, n: int = 2):
    clean = F.interpolate(face_batch(n, seed=3), size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    hole = _holes(n, size)
    return clean, clean * (1 - hole), hole


# ------------------------------------------------------------------------ default unchanged


def test_default_generator_keys_and_computation_unchanged(tmp_path: Path) -> None:
    torch.manual_seed(0)
    gen = Generator(GeneratorConfig(base_channels=4)).eval()
    state = gen.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == OLD_KEYS
    image, hole = face_batch(2), _holes(2, 112)
    with torch.no_grad():
        torch.testing.assert_close(gen(image, hole), original_forward(state, image, hole), rtol=1e-5, atol=1e-6)
    # a checkpoint as the original trainer wrote it: architecture metadata with its four keys only
    old = tmp_path / "old.safetensors"
    save_state(old, state, {"format": "recogbench-pconv-gan/1", "size": 112, "perceptual": "disabled",
                            "architecture": {"base_channels": 4, "depth": 4, "max_mult": 8, "dilations": [1, 2, 4]}})
    inp = PConvGAN(str(old), device="cpu")
    assert inp.generator.cfg == GeneratorConfig(base_channels=4) and inp.native_size == 112
    with torch.no_grad():
        assert torch.equal(inp.generator(image, hole), gen(image, hole))
    # and one without any metadata (a bare state dict) is the default architecture too
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    assert PConvGAN(str(bare), base_channels=4, device="cpu").generator.cfg == GeneratorConfig(base_channels=4)


def test_default_training_settings_are_the_original_trainer() -> None:
    cfg = TrainConfig("pconv-gan", data="d", out="o", size=64, base_channels=4)
    s = PConvGANSettings.from_train_config(cfg)
    assert s.arch == GeneratorConfig(base_channels=4, dilations=(1, 2, 4))
    assert (s.discriminator, s.gan_loss, s.local_discriminator, s.d_channels) == ("patch", "hinge", True, 4)
    assert s.vgg_layers == ("relu1_2", "relu2_2", "relu3_3") and s.betas == (0.5, 0.999)
    assert cfg.base_channels == 4 and TrainConfig("pconv-gan", data="d", out="o").base_channels == 32
    # every option documents its default; the text defaults parse to what the settings use
    defaults = {k: o.default for k, o in OPTIONS.items() if o.default is not None}
    assert PConvGANSettings.from_options(defaults, base_channels=4, size=64) == s


def test_partial_conv_with_per_channel_masks_matches_formula() -> None:
    """Liu et al.'s multi-channel rule: ratio = (C·k²) / valid taps over window and channels."""
    torch.manual_seed(2)
    conv = PartialConv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 3, 9, 10)
    masks = (torch.rand(2, 3, 9, 10) > 0.5).float()
    masks[1, :, :5, :5] = 0
    out, new = conv(x, masks)
    w = conv.conv.weight.detach().double().numpy()
    xp = np.pad((x * masks).double().numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    mp = np.pad(masks.double().numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    for b in range(2):
        for i in range(9):
            for j in range(10):
                cover = mp[b, :, i:i + 3, j:j + 3].sum()
                expected = ((w * xp[b, :, i:i + 3, j:j + 3]).sum((1, 2, 3)) * 27 / cover + conv.bias.detach().numpy()
                            if cover else np.zeros(4))
                np.testing.assert_allclose(out[b, :, i, j].detach().numpy(), expected, rtol=1e-5, atol=1e-5)
                assert new[b, 0, i, j].item() == float(cover > 0)
    # identical channel masks give the single-mask result
    one = masks[:, :1]
    ref, ref_new = reference_partial_conv(x, one, conv.conv.weight.detach(), conv.bias.detach().numpy(), 1, 1)
    np.testing.assert_allclose(conv(x, one.expand(-1, 3, -1, -1))[0].detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="mask has 2 channels"):
        conv(x, masks[:, :2])


def test_vgg16_pool_layers() -> None:
    names = layer_indices(CFGS["vgg16"])
    assert (names["pool1"], names["pool2"], names["pool3"], names["relu3_3"]) == (4, 9, 16, 15)
    feats = VGG16Features(("pool1", "pool2", "pool3"))(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]


# ------------------------------------------------------------------------------- the preset


def test_under_mask_preset_builds_the_stated_shapes_at_256() -> None:
    preset = PRESETS["under-mask"]
    cfg = TrainConfig("pconv-gan", data="d", out="o", preset="under-mask")
    assert (cfg.size, cfg.batch_size, cfg.lr, cfg.base_channels) == (256, 4, 5e-5, 64) == tuple(
        preset.train[k] for k in ("size", "batch_size", "lr", "base_channels"))
    s = PConvGANSettings.from_train_config(cfg)
    assert s.arch == GeneratorConfig(base_channels=64, depth=6, dilations=(1, 2, 3), partial_norm="batch",
                                     partial_act="relu", vanilla="unet", vanilla_dropout=(4, 5), decoder="partial")
    assert (s.discriminator, s.gan_loss, s.local_discriminator, s.d_channels, s.d_dense) == ("dense", "bce", True, 32, 4096)
    assert s.vgg_layers == ("pool1", "pool2", "pool3") and s.betas == (0.9, 0.999)
    assert (s.weights.valid, s.weights.hole, s.weights.perceptual, s.weights.style, s.weights.tv) == (1, 6, 0.05, 120, 0.1)
    with torch.device("meta"):   # full size, shapes only
        gen = Generator(s.arch)
        x, hole = torch.empty(2, 3, 256, 256), torch.empty(2, 1, 256, 256)
        feats, masks = gen.partial(x, hole)
        skips, bottom = gen.plain(torch.cat([x, hole], 1))
        fused = gen.fusion(feats[-1], bottom)
        out = gen(x, hole)
        d_global, d_local = DenseDiscriminator(3, 256, 32, 4096), DenseDiscriminator(3, 128, 32, 4096)
        scores = d_global(x), d_local(torch.empty(2, 3, 128, 128))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 128, 128), (128, 64, 64), (256, 32, 32), (512, 16, 16),
                                                   (512, 8, 8), (512, 4, 4)]
    assert [tuple(m.shape[1:]) for m in masks][-1] == (1, 4, 4)
    assert [tuple(f.shape[1:]) for f in skips] == [(64, 256, 256), (128, 128, 128), (256, 64, 64), (512, 32, 32),
                                                   (512, 16, 16), (512, 8, 8)]
    assert tuple(bottom.shape[1:]) == tuple(fused.shape[1:]) == (512, 4, 4)
    assert tuple(out.shape) == (2, 3, 256, 256) and [tuple(t.shape) for t in scores] == [(2, 1), (2, 1)]
    # the listed layers: BatchNorm after every partial conv but the first; Dropout 0.5 in U-Net blocks 4 and 5
    assert [type(n).__name__ for n in gen.partial.norms] == ["Identity"] + ["BatchNorm2d"] * 5
    assert [any(isinstance(m, torch.nn.Dropout) for m in b) for b in gen.plain.blocks] == [False] * 3 + [True] * 2 + [False]
    assert [a.dilation for a in gen.fusion.atrous] == [(1, 1), (2, 2), (3, 3)]
    assert [m.in_features for m in d_global.classifier if isinstance(m, torch.nn.Linear)] == [512 * 8 * 8, 4096, 4096]
    assert [m.in_features for m in d_local.classifier if isinstance(m, torch.nn.Linear)] == [512 * 4 * 4, 4096, 4096]
    assert [m.out_channels for m in d_global.features if isinstance(m, torch.nn.Conv2d)] == [32, 64, 128, 256, 512]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(gen), count(d_global), count(d_local)) == (46_701_332, 153_795_041, 53_131_745)


def test_branch_generators_and_their_state_names() -> None:
    base = dict(base_channels=4, depth=3, dilations=(1, 2), partial_norm="batch", vanilla="unet", decoder="partial")
    image, hole = _inputs(48)[1:]
    names = {}
    for branch in ("partial", "vanilla", "fused"):
        gen = Generator(GeneratorConfig(**base, branch=branch)).eval()
        with torch.no_grad():
            out = gen(image, hole)
            noisy = torch.where(hole.bool(), torch.rand_like(image), image)
            assert torch.equal(out, gen(noisy, hole))   # hole content never matters
        assert out.shape == image.shape and 0 <= out.min() and out.max() <= 1
        names[branch] = {k.split(".")[0] for k in gen.state_dict()}
    assert names == {"partial": {"partial", "decoder", "decoder_norms"}, "vanilla": {"plain", "up", "merge", "head"},
                     "fused": {"partial", "plain", "fusion", "decoder", "decoder_norms"}}
    with torch.no_grad():   # odd sizes: the ceil-mode pools keep both encoders aligned
        odd = Generator(GeneratorConfig(**base)).eval()(torch.rand(1, 3, 45, 37), torch.zeros(1, 1, 45, 37))
    assert odd.shape == (1, 3, 45, 37)


# ------------------------------------------------------------------------------ the options


def test_bad_settings_are_refused_when_the_config_is_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"option\(s\) dpeth in 'pconv-gan:dpeth=6' \(pconv-gan takes depth, "):
        TrainConfig("pconv-gan:dpeth=6", data="d", out="o")
    with pytest.raises(ValueError, match=r"pconv-gan option depth='0': must be ≥ 1"):
        TrainConfig("pconv-gan:depth=0", data="d", out="o")
    with pytest.raises(ValueError, match=r"pconv-gan option vgg_layers='pool1-pool9'.*unknown: \['pool9'\]"):
        TrainConfig("pconv-gan:vgg_layers=pool1-pool9", data="d", out="o")
    with pytest.raises(ValueError, match="vanilla_dropout needs vanilla=unet"):
        TrainConfig("pconv-gan:vanilla_dropout=1", data="d", out="o")
    with pytest.raises(ValueError, match="unknown pconv-gan preset 'under_mask'; did you mean 'under-mask'"):
        TrainConfig("pconv-gan", data="d", out="o", preset="under_mask")
    with pytest.raises(ValueError, match="branch must be one of fused, partial, vanilla"):
        TrainConfig("pconv-gan", data="d", out="o", branch="both")
    with pytest.raises(FileNotFoundError, match="nope.safetensors: --init-from checkpoint not found"):
        TrainConfig("pconv-gan", data="d", out="o", init_from=str(tmp_path / "nope.safetensors"))
    with pytest.raises(ValueError, match=r"preset='under-mask' \(not used by ifacenet\)"):
        TrainConfig("ifacenet", data="d", out="o", preset="under-mask")
    # options in the spec override the preset; init_from takes a comma-separated string
    cfg = TrainConfig("pconv-gan:depth=8,gan_loss=hinge", data="d", out="o", preset="under-mask")
    s = PConvGANSettings.from_train_config(cfg)
    assert (s.arch.depth, s.gan_loss, s.discriminator) == (8, "hinge", "dense")


def test_options_round_trip_through_the_checkpoint(tmp_path: Path, real_faces: Path) -> None:
    spec = f"pconv-gan:{SMALL_D},vanilla_dropout=2,w_hole=5,beta1=0.8"
    result = train(_small(real_faces, tmp_path / "run", spec, steps=2, preset="under-mask"))
    path = tmp_path / "run" / "last.safetensors"
    _, meta = load_state(path)
    expected = GeneratorConfig(base_channels=4, depth=6, dilations=(1, 2, 3), partial_norm="batch", partial_act="relu",
                               vanilla="unet", vanilla_dropout=(2,), decoder="partial")
    assert GeneratorConfig.from_meta(meta["architecture"]) == expected
    assert meta["discriminator"] == {"kind": "dense", "gan_loss": "bce", "local": True, "channels": 4, "dense": 16}
    assert meta["vgg_layers"] == ["pool1", "pool2", "pool3"] and meta["betas"] == [0.8, 0.999]
    assert meta["loss_weights"]["hole"] == 5 and meta["preset"] == "under-mask" and meta["size"] == 64
    assert meta["config"]["inpainter"] == spec and meta["config"]["preset"] == "under-mask"
    # pconv-gan:checkpoint= rebuilds exactly that architecture and computes what training computed
    inp = INPAINTERS.create(f"pconv-gan:checkpoint={path}", device="cpu")
    assert inp.generator.cfg == expected and inp.native_size == 64
    s = result.samples
    assert torch.equal(inp.inpaint(s["occluded"], s["hole"]), s["restored"])
    # stating the architecture it has is fine, in any form
    INPAINTERS.create(f"pconv-gan:checkpoint={path},depth=6,dilations=1-2-3,vanilla=unet", device="cpu")
    PConvGAN(str(path), preset="under-mask", vanilla_dropout="2", base_channels=4, device="cpu")
    # a resumed run with other options is refused, naming the setting
    with pytest.raises(ValueError, match=r"cannot resume .*inpainter: .*vanilla_dropout=2.* → 'pconv-gan:"):
        train(_small(real_faces, tmp_path / "run", f"pconv-gan:{SMALL_D}", steps=3, preset="under-mask"))


def test_wrong_options_for_a_checkpoint_name_the_file(tmp_path: Path) -> None:
    arch = GeneratorConfig(base_channels=4, depth=3, dilations=(1, 2), partial_norm="batch", vanilla="unet", decoder="partial")
    path = write_checkpoint(tmp_path / "helwan.safetensors", Generator(arch), size=64)
    with pytest.raises(ValueError, match=r"helwan\.safetensors: checkpoint has depth=3, not 4; decoder=partial, not conv"):
        INPAINTERS.create(f"pconv-gan:checkpoint={path},depth=4,decoder=conv", device="cpu")
    with pytest.raises(ValueError, match=r"helwan\.safetensors: checkpoint has depth=3, not 6; .*dilations=1-2, not 1-2-3"):
        PConvGAN(str(path), preset="under-mask", device="cpu")
    with pytest.raises(ValueError, match=r"helwan\.safetensors: checkpoint has branch=fused, not partial"):
        PConvGAN(str(path), branch="partial", device="cpu")
    with pytest.raises(ValueError, match="unknown pconv-gan option 'detph'; did you mean 'depth'"):
        PConvGAN(str(path), detph="3", device="cpu")
    with pytest.raises(ValueError, match="w_hole is a training setting, not part of the architecture"):
        PConvGAN(str(path), w_hole="3", device="cpu")
    # a file without metadata: the options describe it, and a wrong description fails on its keys
    bare = tmp_path / "bare.pt"
    torch.save(Generator(arch).state_dict(), bare)
    inp = PConvGAN(str(bare), base_channels=4, depth=3, dilations="1-2", partial_norm="batch", vanilla="unet",
                   decoder="partial", device="cpu")
    assert inp.generator.cfg == arch
    with pytest.raises(CheckpointError, match=r"bare\.pt: checkpoint does not fit Generator \(unexpected keys: decoder_norms"):
        PConvGAN(str(bare), base_channels=4, depth=3, dilations="1-2", vanilla="unet", decoder="partial", device="cpu")
    assert set(ARCHITECTURE_OPTIONS) == {"depth", "max_mult", "dilations", "partial_norm", "partial_act", "vanilla",
                                         "vanilla_dropout", "decoder"}


# -------------------------------------------------------------------- discriminator and BCE


def test_dense_discriminator_and_bce() -> None:
    d = DenseDiscriminator(3, 64, base_channels=4, dense=8)
    assert d(torch.rand(2, 3, 64, 64)).shape == (2, 1)
    with pytest.raises(ValueError, match="built for 64×64 inputs"):
        d(torch.rand(1, 3, 32, 32))
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    sig = torch.sigmoid
    expected_d = -(torch.log(sig(real)).mean() + torch.log(1 - sig(fake)).mean())
    torch.testing.assert_close(discriminator_loss(real, fake, "bce"), expected_d)
    torch.testing.assert_close(generator_adversarial_loss(fake, "bce"), -torch.log(sig(fake)).mean())
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)


@pytest.mark.parametrize("local", [True, False])
def test_dense_discriminator_bce_training_step(local: bool, tmp_path: Path) -> None:
    spec = f"pconv-gan:discriminator=dense,gan_loss=bce,local_discriminator={str(local).lower()},{SMALL_D}"
    cfg = TrainConfig(spec, data="d", out=str(tmp_path), size=64, base_channels=4, seed=1)
    trainer = PConvGANTrainer(cfg, torch.device("cpu"))
    assert isinstance(trainer.d_global, DenseDiscriminator) and (trainer.d_local is not None) == local
    before = {k: v.clone() for k, v in trainer.discriminator_state().items()}
    losses = trainer.step(*_inputs(64))
    assert all(math.isfinite(v) for v in losses.values())
    assert ("d_local" in losses) == local and ("g_adv_local" in losses) == local
    assert 0 < losses["d_global"] < 3 and losses["g_adv_global"] > 0   # BCE terms: ≈ 2·ln 2 and ln 2 at the start
    after = trainer.discriminator_state()
    assert set(after) == set(before) and {k.split(".")[0] for k in after} == ({"global", "local"} if local else {"global"})
    assert any(not torch.equal(before[k], after[k]) for k in after)
    assert set(trainer.optimizer_state()) == {"G", "D_global", "scaler_G", "scaler_D"} | ({"D_local"} if local else set())
    # the state goes back into a fresh trainer
    other = PConvGANTrainer(cfg, torch.device("cpu"))
    other.load_state(trainer.generator_state(), after, trainer.optimizer_state(), "state")
    assert all(torch.equal(a, b) for a, b in zip(other.discriminator_state().values(), after.values()))


# ----------------------------------------------------------------------- branches, then fused


@pytest.fixture(scope="module")
def real_faces(tmp_path_factory) -> Path:
    """A folder of 24 real aligned faces (the deepface photos; skips without real faces)."""
    from .test_train import _aligned_real_faces

    folder = tmp_path_factory.mktemp("faces")
    for i, face in enumerate(_aligned_real_faces()[:24]):
        cv2.imwrite(str(folder / f"face{i:02d}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return folder


def _small(faces: Path, out: Path, spec: str = "pconv-gan", **kw) -> TrainConfig:
    base = dict(data=str(faces), out=str(out), occlusion="medical_mask", aligned=True, size=64, base_channels=4,
                batch_size=2, steps=2, val_fraction=0.25, checkpoint_every=100, sample_every=100, device="cpu")
    return TrainConfig(spec, **{**base, **kw})


def test_branches_alone_then_fused_fine_tune(tmp_path: Path, real_faces: Path) -> None:
    spec = f"pconv-gan:{SMALL_D}"
    run = {b: train(_small(real_faces, tmp_path / b, spec, preset="under-mask", branch=b))
           for b in ("partial", "vanilla")}
    files = {b: tmp_path / b / "last.safetensors" for b in run}
    states = {b: load_state(f)[0] for b, f in files.items()}
    assert {k.split(".")[0] for k in states["partial"]} == {"partial", "decoder", "decoder_norms"}
    assert {k.split(".")[0] for k in states["vanilla"]} == {"plain", "up", "merge", "head"}
    for b, f in files.items():   # each branch is an inpainter of its own
        inp = PConvGAN(str(f), device="cpu")
        assert inp.generator.cfg.branch == b
        assert torch.equal(inp.inpaint(run[b].samples["occluded"], run[b].samples["hole"]), run[b].samples["restored"])

    fused_cfg = _small(real_faces, tmp_path / "fused", spec, preset="under-mask",
                       init_from=f"{files['partial']},{files['vanilla']}")
    assert fused_cfg.init_from == (str(files["partial"]), str(files["vanilla"]))
    start = PConvGANTrainer(fused_cfg, torch.device("cpu")).generator.state_dict()
    fresh = Generator(PConvGANSettings.from_train_config(fused_cfg).arch).state_dict()
    for key, value in start.items():
        if key.startswith("partial."):
            assert torch.equal(value, states["partial"][key]), key
        elif key.startswith("plain."):
            assert torch.equal(value, states["vanilla"][key]), key
        elif key.startswith("decoder_norms."):
            assert torch.equal(value, states["partial"][key]), key
        elif key.startswith("decoder.") and key.endswith("conv.weight"):
            branch = states["partial"][key]   # [h, partial skip] then the vanilla skips
            assert torch.equal(value[:, :branch.shape[1]], branch) and (value[:, branch.shape[1]:] == 0).all(), key
            assert value.shape[1] > branch.shape[1]
        elif key.startswith("decoder."):
            assert torch.equal(value, states["partial"][key]), key
        else:
            assert key.startswith("fusion.") and value.shape == fresh[key].shape
    fused = train(fused_cfg)
    _, meta = load_state(tmp_path / "fused" / "last.safetensors")
    assert meta["architecture"]["branch"] == "fused" and [r["branch"] for r in meta["init_from"]] == ["partial", "vanilla"]
    assert meta["init_from"][0]["sha256"] == hashlib.sha256(files["partial"].read_bytes()).hexdigest()
    assert fused.step == 2 and math.isfinite(fused.history[-1]["g_total"]) and math.isfinite(fused.history[-1]["val_hole_l1"])
    inp = PConvGAN(str(tmp_path / "fused" / "last.safetensors"), device="cpu")
    assert torch.equal(inp.inpaint(fused.samples["occluded"], fused.samples["hole"]), fused.samples["restored"])

    # what cannot initialise a model is refused, naming the file
    with pytest.raises(ValueError, match=r"partial/last\.safetensors: trained with another architecture than this run: "
                                         r"depth=6 \(this run: 5\)"):
        PConvGANTrainer(_small(real_faces, tmp_path / "x", f"{spec},depth=5", preset="under-mask",
                               init_from=str(files["partial"])), torch.device("cpu"))
    with pytest.raises(ValueError, match=r"partial/last\.safetensors: decoder\.0\.bias also comes from .*partial/last"):
        PConvGANTrainer(_small(real_faces, tmp_path / "x", spec, preset="under-mask",
                               init_from=f"{files['partial']},{files['partial']}"), torch.device("cpu"))
    with pytest.raises(ValueError, match=r"vanilla/last\.safetensors: a vanilla checkpoint holds nothing a partial model takes"):
        PConvGANTrainer(_small(real_faces, tmp_path / "x", spec, preset="under-mask", branch="partial",
                               init_from=str(files["vanilla"])), torch.device("cpu"))


def test_cli_trains_a_branch_with_preset_and_spec_options(tmp_path: Path, real_faces: Path) -> None:
    from recogbench.cli import app

    out = tmp_path / "cli"
    args = ["train", f"pconv-gan:{SMALL_D}", "--data", str(real_faces), "--aligned", "--out", str(out),
            "--preset", "under-mask", "--branch", "vanilla", "--size", "64", "--base-channels", "4", "--batch-size", "2",
            "--steps", "1", "--occlusion", "medical_mask", "--device", "cpu"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    _, meta = load_state(out / "last.safetensors")
    assert meta["architecture"]["branch"] == "vanilla" and meta["architecture"]["vanilla"] == "unet"
    assert meta["config"]["lr"] == 5e-5 and meta["config"]["preset"] == "under-mask"
    r = CliRunner().invoke(app, [*args[:-2], "--device", "cpu", "--branch", "both"])
    assert r.exit_code == 2 and "branch must be one of fused, partial, vanilla" in r.output
    r = CliRunner().invoke(app, ["train", "ifacenet", "--data", str(real_faces), "--out", str(tmp_path / "o"),
                                 "--init-from", str(out / "last.safetensors")])
    assert r.exit_code == 2 and "(not used by ifacenet)" in r.output


# ------------------------------------------------------------------------------- it learns


def test_tiny_under_mask_training_reduces_validation_hole_l1(tmp_path: Path, real_faces: Path) -> None:
    result = train(_small(real_faces, tmp_path / "learn", "pconv-gan:d_dense=32,d_channels=4", preset="under-mask",
                          base_channels=8, batch_size=4, steps=60, lr=5e-4, sample_every=30))
    first, last = result.history[0], result.history[-1]
    assert last["val_hole_l1"] < 0.85 * first["val_hole_l1"], (first, last)
    assert last["val_hole_psnr"] > first["val_hole_psnr"]
