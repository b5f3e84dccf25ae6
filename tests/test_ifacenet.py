"""IFACENET (inpainters/ifacenet.py) against the official code, through the `ifacenet` fidelity
pack, and the torchvision-named ResNet-50 (inpainters/layers/resnet.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inpainters.ifacenet import (
    IFACENet,
    PatchGANDiscriminator,
    composite,
    load_ifacenet,
    official_frozen,
    prepare_input,
)
from inpainters.layers.resnet import ResNet50, load_imagenet_weights
from recogbench.checkpoint import CheckpointError, load_into, load_state
from tests.conftest import fidelity_pack

ACT_BLOCKS = ("feature_extractor", "encoder", "attention", "dilation_rates", "conv_dilation")


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def filled():
    """(fill, pack, IFACENet filled by the pack's rule, eval mode)."""
    fill, pack = fidelity_pack("ifacenet")
    model = IFACENet().eval()
    fill.fill_module_(model, pack.gain)
    return fill, pack, model


def _ratio_report(res: dict) -> str:
    return "; ".join(f"{k}: max|diff| {d:.3g} = {d / tol:.3g} x atol {tol:.3g}" for k, (d, tol, _) in res.items())


# ---------------------------------------------------------------------------------------------- IFACENET


def test_keys_shapes_dtypes_order_equal_the_official():
    fill, pack = fidelity_pack("ifacenet")
    model = IFACENet()
    assert fill.check_keys(model.state_dict(), pack.meta["keys"]) == []
    assert len(model.state_dict()) == pack.meta["n_keys"] == 367
    assert sum(p.numel() for p in model.parameters()) == pack.meta["n_parameters"] == 52_707_106


def test_fill_follows_the_rule(filled):
    fill, pack, model = filled
    sd = model.state_dict()
    for key in ("feature_extractor.0.weight", "feature_extractor.7.2.bn3.running_var", "attention.gamma",
                "decoder.6.weight", "feature_extractor.1.num_batches_tracked"):
        want = torch.from_numpy(fill.fill_array(key, tuple(sd[key].shape), sd[key].dtype, pack.gain))
        assert torch.equal(sd[key], want), key
    # fan_in of a ConvTranspose2d weight [in, out, k, k] is out*k*k (the rule, not torch's convention)
    w = sd["decoder.6.weight"]
    assert w.shape == (64, 3, 4, 4) and w.abs().max() <= pack.gain * (3 / (3 * 16)) ** 0.5


def test_prepare_input_is_the_official_white_burn_in():
    _, pack = fidelity_pack("ifacenet")
    face, mask = torch.from_numpy(pack.inputs["face"]), torch.from_numpy(pack.inputs["mask"])
    assert torch.equal(prepare_input(face, mask), torch.from_numpy(pack.inputs["model_input"]))
    assert torch.equal(prepare_input(face, mask.expand(-1, 3, -1, -1)), prepare_input(face, mask))
    x = prepare_input(face, mask)
    assert torch.all(x[mask.expand_as(x) == 1] == 1)
    with pytest.raises(ValueError):
        prepare_input(face, mask[:, :, :128])


@pytest.mark.slow
def test_outputs_and_intermediates_match_the_official(filled, one_thread):
    fill, pack, model = filled
    acts: dict[str, list[torch.Tensor]] = {name: [] for name in ACT_BLOCKS}
    hooks = [getattr(model, name).register_forward_hook(lambda m, i, o, name=name: acts[name].append(o.clone()))
             for name in ACT_BLOCKS]
    face, mask = torch.from_numpy(pack.inputs["face"]), torch.from_numpy(pack.inputs["mask"])
    x = torch.from_numpy(pack.inputs["model_input"])
    try:
        with torch.no_grad():
            out = torch.cat([model(x[i:i + 1]) for i in range(len(x))])       # one sample per call
    finally:
        for h in hooks:
            h.remove()
    got = {"output": out, "composite": composite(face, mask, out)}
    for name in ACT_BLOCKS:
        for suffix, value in fill.summarise(torch.cat(acts[name])).items():
            got[f"act.{name}{suffix}"] = value
    assert set(got) == set(pack.outputs), sorted(set(pack.outputs) ^ set(got))
    res = fill.compare(got, pack)
    print(_ratio_report(res))
    bad = {k: v for k, v in res.items() if not v[2]}
    assert not bad, _ratio_report(bad)


@pytest.mark.slow
def test_batched_equals_per_sample(filled, one_thread):
    fill, pack, model = filled
    x = torch.from_numpy(pack.inputs["model_input"])
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    d, tol = (batched - single).abs().max().item(), pack.atol("output")
    assert d <= tol, f"batched vs per-sample max|diff| {d:.3g} = {d / tol:.3g} x atol {tol:.3g}"


class _TotalLoss(nn.Module):
    """Stands in for the official ``loss.total_loss`` (a VGG19 inside), which ``save_model``
    pickles whole into the checkpoint under ``"loss"``."""

    def __init__(self) -> None:
        super().__init__()
        self.vgg = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.criterion = nn.L1Loss()
        self.weights = [1.0, 1.0, 1.0, 1.0]


def _adam_state(n_params: int) -> dict:
    return {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}},
            "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0, "amsgrad": False,
                              "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
                              "fused": None, "params": list(range(n_params))}]}


@pytest.mark.slow
@pytest.mark.parametrize("with_criterion", [False, True], ids=["training-dict", "training-dict+pickled-loss"])
def test_strict_load_of_an_official_training_file(tmp_path, with_criterion):
    fill, pack = fidelity_pack("ifacenet")
    sd = fill.fill_state_dict(pack.meta["keys"], pack.gain)
    ckpt = {"epoch": 3, "model_state_dict": sd, "optimizer_state_dict": _adam_state(len(sd))}
    if with_criterion:
        ckpt["loss"] = _TotalLoss()            # utils.save_model's layout
    path = tmp_path / "Reconstruction.pth"
    torch.save(ckpt, path)
    del ckpt
    state, _ = load_state(path)
    assert list(state) == [k for k, _, _ in pack.meta["keys"]]
    model = IFACENet()
    load_into(model, state, path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    loaded = load_ifacenet(path)
    assert not loaded.training
    assert torch.equal(loaded.state_dict()["attention.gamma"], sd["attention.gamma"])
    # another architecture's dict is refused, naming the keys
    bad = dict(sd)
    bad.pop("attention.gamma")
    with pytest.raises(CheckpointError, match="attention.gamma"):
        load_into(IFACENet(), bad, "bad")


def test_dilation_list_and_input_size_checks():
    model = IFACENet([1, 2]).eval()
    sd = model.state_dict()
    assert sd["conv_dilation.1.weight"].shape == (1024, 1024, 1, 1)
    assert sd["decoder.0.weight"].shape == (1024, 256, 4, 4)
    assert "dilation_rates.depthwise.2.0.weight" not in sd
    assert model.dilation_rates.depthwise[1][0].dilation == (2, 2)
    with torch.no_grad():
        with pytest.raises(ValueError, match="multiples of 32"):
            model(torch.zeros(1, 3, 240, 256))
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 3, 64, 96)


def test_official_freeze_rule():
    model = IFACENet()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    fe = "feature_extractor."
    assert fe + "0.weight" in frozen                                # stem conv: its name "0.weight" has no "conv"
    assert fe + "7.0.bn1.weight" in frozen                          # layer4 BN: "layer4" never appears in "7.…"
    assert fe + "5.0.downsample.0.weight" in frozen
    assert fe + "7.2.conv3.weight" not in frozen and fe + "4.0.conv1.weight" not in frozen
    assert all(n.startswith(fe) and not n.startswith(fe + "8.") for n in frozen)
    assert not official_frozen("8.weight")
    assert sum(p.numel() for n, p in model.named_parameters() if n in frozen) == 52_707_106 - 49_875_682
    assert all(p.requires_grad for p in IFACENet(official_freeze=False).parameters())


def test_discriminator_names_and_shape():
    d = PatchGANDiscriminator().eval()
    keys = list(d.state_dict())
    assert keys == [f"discriminator.{i}.{p}" for i in (0, 1, 3, 4, 6, 7, 9, 10) for p in ("weight", "bias")] + \
        ["conv.0.weight", "conv.0.bias", "conv.1.weight", "conv.1.bias"]
    sd = d.state_dict()
    assert sd["discriminator.0.weight"].shape == (3, 1, 3, 3)
    assert sd["discriminator.10.weight"].shape == (512, 256, 1, 1)
    assert sd["conv.0.weight"].shape == (512, 1, 3, 3) and sd["conv.1.weight"].shape == (1, 512, 1, 1)
    with torch.no_grad():
        assert d(torch.rand(2, 3, 64, 64)).shape == (2, 1, 4, 4)


# ---------------------------------------------------------------------------------------------- ResNet-50


def _torchvision_resnet50_keys() -> list[str]:
    """torchvision.models.resnet50().state_dict() keys, written out from its module layout."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight", *(f"bn1.{p}" for p in bn)]
    for stage, blocks in enumerate((3, 4, 6, 3), start=1):
        for b in range(blocks):
            pre = f"layer{stage}.{b}."
            for i in (1, 2, 3):
                keys += [f"{pre}conv{i}.weight", *(f"{pre}bn{i}.{p}" for p in bn)]
            if b == 0:
                keys += [f"{pre}downsample.0.weight", *(f"{pre}downsample.1.{p}" for p in bn)]
    return keys + ["fc.weight", "fc.bias"]


def test_resnet50_keys_are_torchvisions():
    sd = ResNet50().state_dict()
    assert len(sd) == 320
    assert list(sd) == _torchvision_resnet50_keys()
    shapes = {"conv1.weight": (64, 3, 7, 7), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
              "layer2.0.conv2.weight": (128, 128, 3, 3), "layer3.5.bn3.running_var": (1024,),
              "layer4.2.conv3.weight": (2048, 512, 1, 1), "fc.weight": (1000, 2048), "fc.bias": (1000,),
              "layer4.0.bn1.num_batches_tracked": ()}
    for k, s in shapes.items():
        assert tuple(sd[k].shape) == s, k
    assert sd["layer4.0.bn1.num_batches_tracked"].dtype == torch.int64
    assert sum(p.numel() for p in ResNet50().parameters()) == 25_557_032           # torchvision's count
    trunk = ResNet50(num_classes=None).state_dict()
    assert list(trunk) == _torchvision_resnet50_keys()[:-2]


def test_resnet50_matches_the_ifacenet_packs_trunk_keys():
    fill, pack = fidelity_pack("ifacenet")
    index = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
    want = []
    for k, shape, dtype in pack.meta["keys"]:
        parts = k.split(".")
        if parts[0] == "feature_extractor" and parts[1] in index:
            want.append([".".join([index[parts[1]], *parts[2:]]), shape, dtype])
    assert fill.check_keys(ResNet50(num_classes=None).state_dict(), want) == []


def test_resnet50_is_v1_5_and_dilation_gives_output_stride_8(one_thread):
    plain = ResNet50(num_classes=None).eval()
    assert plain.layer2[0].conv1.stride == (1, 1) and plain.layer2[0].conv2.stride == (2, 2)
    dilated = ResNet50(num_classes=None, replace_stride_with_dilation=(False, True, True)).eval()
    assert list(dilated.state_dict()) == list(plain.state_dict())
    assert all(a.shape == b.shape for a, b in zip(dilated.state_dict().values(), plain.state_dict().values()))
    # torchvision: a replaced stage's first block keeps the previous dilation
    assert dilated.layer3[0].conv2.dilation == (1, 1) and dilated.layer3[0].conv2.stride == (1, 1)
    assert dilated.layer3[1].conv2.dilation == (2, 2) and dilated.layer3[1].conv2.padding == (2, 2)
    assert dilated.layer4[0].conv2.dilation == (2, 2) and dilated.layer4[2].conv2.dilation == (4, 4)
    assert dilated.layer3[0].downsample[0].stride == (1, 1)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        fp, fd = plain.forward_features(x), dilated.features(x)
        assert fp["layer4"].shape == (1, 2048, 2, 2) and fd["layer4"].shape == (1, 2048, 8, 8)
        assert fd["layer2"].shape == (1, 512, 8, 8) and fd["layer3"].shape == (1, 1024, 8, 8)
        assert list(fp) == ["stem", "layer1", "layer2", "layer3", "layer4"]
        assert torch.equal(dilated(x), fd["layer4"])
        assert list(plain.forward_features(x, upto="layer2")) == ["stem", "layer1", "layer2"]
        assert ResNet50().eval()(x).shape == (1, 1000)


@pytest.mark.slow
def test_load_imagenet_weights(tmp_path):
    torch.manual_seed(0)
    source = ResNet50()
    path = tmp_path / "resnet50-11ad3fa6.pth"
    torch.save(source.state_dict(), path)                          # torchvision's files: a plain state dict
    with_fc = load_imagenet_weights(ResNet50(), path)
    trunk = load_imagenet_weights(ResNet50(num_classes=None, replace_stride_with_dilation=(False, True, True)), path)
    got_fc, got_trunk = with_fc.state_dict(), trunk.state_dict()
    assert set(got_trunk) == {k for k in got_fc if not k.startswith("fc.")}
    for k, v in source.state_dict().items():
        assert torch.equal(got_fc[k], v), k
        if not k.startswith("fc."):
            assert torch.equal(got_trunk[k], v), k
    # IFACENet's trunk starts from the same file (the official resnet50(pretrained=True))
    ifn = IFACENet(resnet_weights=path)
    assert torch.equal(ifn.state_dict()["feature_extractor.7.2.bn3.running_var"], source.state_dict()["layer4.2.bn3.running_var"])
    # a file of another architecture is refused, naming the keys
    broken = source.state_dict()
    broken["layer4.2.conv3.weight"] = torch.zeros(2048, 256, 1, 1)
    torch.save(broken, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="layer4.2.conv3.weight"):
        load_imagenet_weights(ResNet50(), tmp_path / "bad.pth")
