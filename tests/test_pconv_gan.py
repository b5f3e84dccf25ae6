"""The pconv-gan inpainter: partial convolution, generator, discriminators, VGG16 loading, checkpoints."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inpainters.pconv_gan import (
    PERCEPTUAL_DISABLED,
    Generator,
    GeneratorConfig,
    PartialConv2d,
    PatchDiscriminator,
    PConvGAN,
    PConvGANTrainer,
    crop_boxes,
    default_dilations,
    hole_boxes,
    write_checkpoint,
)
from inpainters.vgg import LAYERS, VGG16Features, load_vgg16
from recogbench.checkpoint import CheckpointError
from recogbench.registry import INPAINTERS
from recogbench.train import TrainConfig

from .conftest import face_batch


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_partial_conv(x, valid, weight, bias, stride, padding):
    """Liu et al.'s formula evaluated window by window (numpy, float64)."""
    x, valid, weight = (np.asarray(t, np.float64) for t in (x, valid, weight))
    n, _, h, w = x.shape
    cout, _, k, _ = weight.shape
    xp = np.pad(x * valid, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    mp = np.pad(valid, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out, new = np.zeros((n, cout, ho, wo)), np.zeros((n, 1, ho, wo))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                win = xp[b, :, i * stride : i * stride + k, j * stride : j * stride + k]
                cover = mp[b, 0, i * stride : i * stride + k, j * stride : j * stride + k].sum()
                if cover > 0:
                    out[b, :, i, j] = (weight * win).sum(axis=(1, 2, 3)) * (k * k / cover) + bias
                    new[b, 0, i, j] = 1
    return out, new


def test_partial_conv_hand_made_case() -> None:
    conv = PartialConv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
    x = torch.arange(25, dtype=torch.float32).view(1, 1, 5, 5)
    valid = torch.ones(1, 1, 5, 5)
    valid[..., :4, :4] = 0  # top-left 4×4 unknown: the window centred at (1, 1) sees nothing valid
    out, new = conv(x, valid)
    # centre (1, 1): no valid pixel → exactly 0, no bias, and stays a hole
    assert out[0, 0, 1, 1].item() == 0.0 and new[0, 0, 1, 1].item() == 0.0
    # centre (2, 3): window rows 1..3, cols 2..4; only column 4 is valid (x = 9, 14, 19)
    assert out[0, 0, 2, 3].item() == pytest.approx((9 + 14 + 19) * 9 / 3 + 0.5)
    assert new[0, 0, 2, 3].item() == 1.0
    # corner (4, 4): padding and (3, 3) are invalid, 3 valid of 9 taps (x = 19, 23, 24)
    assert out[0, 0, 4, 4].item() == pytest.approx((19 + 23 + 24) * 9 / 3 + 0.5)
    # the mask update: valid wherever the window saw at least one valid pixel
    expected_new = (F.max_pool2d(valid, 3, 1, 1) > 0).float()
    assert torch.equal(new, expected_new)


@pytest.mark.parametrize("stride,padding,k", [(1, 1, 3), (2, 2, 5), (2, 3, 7)])
def test_partial_conv_matches_formula(stride: int, padding: int, k: int) -> None:
    torch.manual_seed(0)
    conv = PartialConv2d(3, 4, k, stride=stride, padding=padding)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 3, 11, 13)
    valid = (torch.rand(2, 1, 11, 13) > 0.6).float()
    valid[1, :, :7, :8] = 0  # a large hole: some windows see nothing
    out, new = conv(x, valid)
    ref, ref_new = reference_partial_conv(x, valid, conv.conv.weight.detach(), conv.bias.detach().numpy(), stride, padding)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(new.numpy(), ref_new)
    assert (out.detach()[ref_new.repeat(4, 1) == 0] == 0).all()  # exact zeros, no bias


def test_partial_conv_equals_plain_conv_with_all_ones_mask() -> None:
    torch.manual_seed(1)
    pconv = PartialConv2d(3, 5, 3, stride=2, padding=0, dilation=2)
    x = torch.randn(2, 3, 17, 17)
    out, new = pconv(x, torch.ones(2, 1, 17, 17))
    plain = F.conv2d(x, pconv.conv.weight, pconv.bias, stride=2, dilation=2)
    torch.testing.assert_close(out, plain, rtol=1e-6, atol=1e-6)
    assert torch.equal(new, torch.ones_like(new))


def test_partial_conv_gradients_ignore_hole_content() -> None:
    pconv = PartialConv2d(1, 2, 3, padding=1)
    x = torch.randn(1, 1, 8, 8, requires_grad=True)
    valid = torch.ones(1, 1, 8, 8)
    valid[..., 2:6, 2:6] = 0
    pconv(x, valid)[0].sum().backward()
    assert (x.grad[0, 0, 2:6, 2:6] == 0).all()


@pytest.mark.parametrize("size", [112, 256])
def test_generator_shape_and_range(size: int) -> None:
    torch.manual_seed(0)
    gen = Generator(GeneratorConfig(base_channels=4, dilations=default_dilations(size, 4))).eval()
    x = torch.rand(2, 3, size, size)
    hole = torch.zeros(2, 1, size, size)
    hole[:, :, size // 4 : size // 2, size // 3 : size // 2 + 10] = 1
    with torch.no_grad():
        out = gen(x, hole)
        # what lies in the hole does not matter: it is zeroed before both encoders
        noisy = torch.where(hole.bool(), torch.rand_like(x), x)
        assert torch.equal(out, gen(noisy, hole))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


def test_generator_odd_sizes_and_dilations() -> None:
    assert default_dilations(112, 4) == (1, 2, 4) and default_dilations(256, 4) == (2, 4, 8)
    gen = Generator(GeneratorConfig(base_channels=4, depth=5)).eval()
    with torch.no_grad():
        assert gen(torch.rand(1, 3, 100, 90), torch.zeros(1, 1, 100, 90)).shape == (1, 3, 100, 90)


def test_discriminator_shapes_and_local_crops() -> None:
    d_global, d_local = PatchDiscriminator(4, 4), PatchDiscriminator(3, 4)
    assert d_global(torch.rand(2, 4, 112, 112)).shape == (2, 1, 12, 12)
    assert d_local(torch.rand(2, 3, 56, 56)).shape == (2, 1, 5, 5)
    assert any("parametrizations.weight.original" in k for k in d_global.state_dict())  # spectral norm
    images = torch.rand(2, 3, 112, 112)
    hole = torch.zeros(2, 1, 112, 112)
    hole[0, :, 20:52, 10:42] = 1  # 32×32 hole; the second image has none
    boxes = hole_boxes(hole, min_side=16, margin=0.0)
    assert boxes[0].tolist() == [10, 20, 42, 52] and boxes[1].tolist() == [0, 0, 112, 112]
    crops = crop_boxes(images, boxes, 32)
    torch.testing.assert_close(crops[0], images[0, :, 20:52, 10:42], rtol=1e-5, atol=1e-5)
    assert crops.shape == (2, 3, 32, 32)
    # boxes stay inside the image even for a hole at the border
    edge = torch.zeros(1, 1, 112, 112)
    edge[..., 100:, 100:] = 1
    x1, y1, x2, y2 = hole_boxes(edge, min_side=56)[0].tolist()
    assert 0 <= x1 and x2 <= 112 and x2 - x1 == pytest.approx(56)


# --------------------------------------------------------------------------------- VGG16


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    """A torchvision-named VGG16 state dict (random weights), with classifier keys."""
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in VGG16Features().state_dict().items()}
    assert "features.0.weight" in state and "features.28.bias" in state and len(state) == 26
    state["classifier.0.weight"] = torch.zeros(8, 8)
    state["classifier.6.bias"] = torch.zeros(8)
    return state


def test_vgg16_loads_torchvision_state_dicts(vgg_state, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    st = tmp_path / "vgg16.safetensors"
    save_file(vgg_state, str(st))
    pth = tmp_path / "vgg16-397923af.pth"
    torch.save(vgg_state, pth)
    bare = tmp_path / "bare.pth"  # keys of vgg16().features.state_dict(): no prefix
    torch.save({k[len("features."):]: v for k, v in vgg_state.items() if k.startswith("features.")}, bare)
    for path in (st, pth, bare):
        model, digest = load_vgg16(path)
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
        assert torch.equal(model.features[28].weight, vgg_state["features.28.weight"])
        assert not any(p.requires_grad for p in model.parameters()) and not model.training
    feats = model(torch.rand(1, 3, 64, 64))
    assert [f.shape[1:] for f in feats] == [(64, 64, 64), (128, 32, 32), (256, 16, 16)]
    assert LAYERS["relu3_3"] == 15
    wrong = tmp_path / "wrong.safetensors"
    save_file({"features.0.weight": torch.zeros(3, 3, 3, 3)}, str(wrong))
    with pytest.raises(CheckpointError, match=r"missing keys: features\.0\.bias.*shape mismatch: features\.0\.weight"):
        load_vgg16(wrong)


def test_vgg16_normalises_inside() -> None:
    model = VGG16Features(("relu1_2",))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    with torch.no_grad():
        for m in model.features:
            if isinstance(m, torch.nn.Conv2d):
                m.bias.zero_()
        assert model(mean)[0].abs().max() == 0  # the ImageNet mean maps to zero input


# ---------------------------------------------------------------------------- the inpainter


def test_pconv_gan_refuses_without_checkpoint() -> None:
    with pytest.raises(ValueError, match="needs a trained checkpoint: recogbench train pconv-gan"):
        PConvGAN()
    with pytest.raises(ValueError, match="needs a trained checkpoint"):
        INPAINTERS.create("pconv-gan", device="cpu")


def test_pconv_gan_loads_checkpoint_and_inpaints(tmp_path: Path) -> None:
    torch.manual_seed(0)
    gen = Generator(GeneratorConfig(base_channels=4))
    path = write_checkpoint(tmp_path / "g.safetensors", gen, size=112)
    inp = INPAINTERS.create(f"pconv-gan:checkpoint={path}", device="cpu")
    assert inp.native_size == 112 and inp.generator.cfg == gen.cfg
    assert inp.params() == {"inpainter": "pconv-gan", "size": "112",
                            "checkpoint_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert inp.meta["perceptual"] == PERCEPTUAL_DISABLED
    images = face_batch(2)
    hole = torch.zeros(2, 1, 112, 112)
    hole[:, :, 40:80, 30:90] = 1
    out = inp.inpaint(images * (1 - hole), hole)
    with torch.no_grad():
        expected = torch.where(hole.bool(), gen.eval()(images * (1 - hole), hole), images * (1 - hole))
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="base_channels=4, not 8"):
        PConvGAN(str(path), base_channels=8, device="cpu")


def test_pconv_gan_wrong_architecture_names_keys(tmp_path: Path) -> None:
    small = Generator(GeneratorConfig(base_channels=4))
    lying = write_checkpoint(tmp_path / "lying.safetensors", small,
                             meta={"architecture": GeneratorConfig(base_channels=8).to_meta()})
    with pytest.raises(CheckpointError, match=r"lying\.safetensors.*shape mismatch: .*weight"):
        PConvGAN(str(lying), device="cpu")
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"encoder.conv.weight": torch.zeros(2, 2)}, str(foreign))
    with pytest.raises(CheckpointError, match=r"missing keys: .*unexpected keys: encoder\.conv\.weight"):
        PConvGAN(str(foreign), device="cpu")


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pconv_gan_reads_pickled_code_without_running_it(tmp_path: Path, capsys) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: checkpoint does not fit Generator \(.*unexpected keys: w"):
        PConvGAN(str(path), device="cpu")
    gen = Generator(GeneratorConfig(base_channels=4, dilations=default_dilations(112, 4)))
    torch.save({"state_dict": gen.state_dict(), "payload": _RunsCode()}, path)
    inp = PConvGAN(str(path), base_channels=4, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(inp.generator.state_dict().values(), gen.state_dict().values()))
    assert "never run" not in capsys.readouterr().out


# ------------------------------------------------------------------------------- the trainer


def _step_inputs(size: int = 64):
    clean = F.interpolate(face_batch(2, seed=3), size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    hole = torch.zeros(2, 1, size, size)
    hole[0, :, 10:40, 12:44] = 1
    hole[1, :, 30:60, 5:30] = 1
    return clean, clean * (1 - hole), hole


def test_trainer_step_with_and_without_perceptual(vgg_state, tmp_path: Path, caplog) -> None:
    from safetensors.torch import save_file

    cfg = TrainConfig("pconv-gan", data="unused", out=str(tmp_path), size=64, base_channels=4, seed=3)
    with caplog.at_level(logging.WARNING, logger="inpainters.pconv_gan"):
        plain = PConvGANTrainer(cfg, torch.device("cpu"))
    assert "perceptual and style losses are disabled" in caplog.text
    assert plain.meta()["perceptual"] == PERCEPTUAL_DISABLED
    losses = plain.step(*_step_inputs())
    assert "g_perceptual" not in losses and all(np.isfinite(list(losses.values())))
    assert set(losses) == set(plain.loss_names) - {"g_perceptual", "g_style"}

    weights = tmp_path / "vgg16.safetensors"
    save_file(vgg_state, str(weights))
    with_vgg = PConvGANTrainer(TrainConfig(**{**cfg.__dict__, "perceptual_weights": str(weights)}), torch.device("cpu"))
    assert with_vgg.meta()["perceptual"].startswith("VGG16 vgg16.safetensors sha256:")
    before = {k: v.clone() for k, v in with_vgg.generator.state_dict().items()}
    losses = with_vgg.step(*_step_inputs())
    assert losses["g_perceptual"] > 0 and losses["g_style"] > 0 and np.isfinite(losses["g_total"])
    assert any(not torch.equal(before[k], v) for k, v in with_vgg.generator.state_dict().items())
    assert not any(p.requires_grad for p in with_vgg.vgg.parameters())
