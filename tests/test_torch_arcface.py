"""Torch ArcFace recognisers: IResNet (arcface_torch) and ID-Inpainter's MobileFaceNet.

Fidelity to the official code through the ../shared/fidelity packs (skipped when absent),
loading through the real checkpoint path, the ``arcface`` spec dispatch, options, errors, and
agreement with the ONNX path on an export of the same weights."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from recogbench.checkpoint import CheckpointError
from recogbench.registry import VERIFIERS
from recogbench.verifiers.iresnet import IResNet, infer_arch, iresnet
from recogbench.verifiers.mobilefacenet import MobileFaceNet

from .conftest import face_batch, fidelity_pack

IRESNET_ACTS = ("prelu", "layer1", "layer2", "layer3", "layer4", "fc")
MFN_ACTS = ("conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4", "conv_45", "conv_5", "conv_6_sep",
            "conv_6_dw", "bn")

# pack, bare network, modules whose outputs the pack stores, verifier spec for the saved checkpoint
CASES = {
    "arcface-r50": (lambda: iresnet("r50"), IRESNET_ACTS, "arcface:weights={},arch=r50"),
    "arcface-r100": (lambda: iresnet("r100"), IRESNET_ACTS, "arcface:weights={}"),  # arch inferred
    "mobilefacenet": (MobileFaceNet, MFN_ACTS, "mobilefacenet:weights={}"),
}


def per_sample(model: torch.nn.Module, x: torch.Tensor, hooked: tuple[str, ...], fill) -> dict[str, torch.Tensor]:
    """Embeddings and summarised hooked activations, one sample per call as the packs were made."""
    acts: dict[str, list[torch.Tensor]] = {name: [] for name in hooked}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda m, i, o, name=name: acts[name].append(o.detach()))
               for name in hooked]
    try:
        with torch.no_grad():
            got = {"embedding": torch.cat([model(x[i:i + 1]) for i in range(len(x))])}
    finally:
        for h in handles:
            h.remove()
    for name in hooked:
        got.update({f"act.{name}{suffix}": v for suffix, v in fill.summarise(torch.cat(acts[name])).items()})
    return got


@pytest.mark.parametrize("pack_name", list(CASES))
def test_fidelity(pack_name: str, one_torch_thread) -> None:
    """Same state_dict layout as the official module, and its numbers (embedding and every
    stored intermediate) within the pack's atol; a faithful port lands at 0 on torch 2.13 CPU."""
    fill, pack = fidelity_pack(pack_name)
    build, hooked, _ = CASES[pack_name]
    model = build().eval()
    assert fill.check_keys(model.state_dict(), pack.meta["keys"]) == []
    fill.fill_module_(model, pack.gain)
    got = per_sample(model, torch.from_numpy(pack.inputs["x"]), hooked, fill)
    assert set(got) == set(pack.outputs)  # every stored tensor is checked
    res = fill.compare(got, pack)
    assert all(ok for _, _, ok in res.values()), {k: v for k, v in res.items() if not v[2]}


@pytest.mark.parametrize("pack_name", list(CASES))
def test_checkpoint_path(pack_name: str, tmp_path: Path, one_torch_thread) -> None:
    """A checkpoint filled by the pack's rule and saved as arcface_torch saves ``backbone.pth``
    (a plain state dict) loads through the verifier spec and gives the pack's embeddings."""
    fill, pack = fidelity_pack(pack_name)
    path = tmp_path / "backbone.pth"
    torch.save(fill.fill_state_dict(pack.meta["keys"], pack.gain), path)
    v = VERIFIERS.create(CASES[pack_name][2].format(path), device="cpu")
    x = torch.from_numpy(pack.inputs["x"])
    raw = torch.cat([v.raw_forward(x[i:i + 1]) for i in range(len(x))])
    assert all(ok for _, _, ok in fill.compare({"embedding": raw}, pack).values())
    # through embed(): the [0, 1] images the pack's x was made from, normalised by the contract
    emb = np.concatenate([v.embed(x[i:i + 1] * 0.5 + 0.5) for i in range(len(x))])
    ref = pack.outputs["embedding"] / np.linalg.norm(pack.outputs["embedding"], axis=1, keepdims=True)
    tol = pack.atol("embedding") / np.linalg.norm(pack.outputs["embedding"], axis=1).min()
    assert np.abs(emb - ref).max() <= tol
    if pack_name.startswith("arcface"):
        assert f"iresnet:{pack_name.rsplit('-', 1)[1]}" in v.fingerprint


# ------------------------------------------------------------------------------ spec and options


def test_arcface_dispatches_on_model_or_weights(iresnet_weights: Path, tiny_arcface_onnx: Path) -> None:
    torch_v = VERIFIERS.create(f"arcface:weights={iresnet_weights}", device="cpu")
    assert type(torch_v).__name__ == "IResNetVerifier" and torch_v.arch == "r18"
    assert torch_v.runtime == "torch:cpu"
    assert torch_v.fingerprint.endswith(":iresnet:r18:precision=fp32:channels_last=0")
    onnx_v = VERIFIERS.create(f"arcface:model={tiny_arcface_onnx}", device="cpu")
    assert type(onnx_v).__name__ == "ArcFaceVerifier"
    with pytest.raises(ValueError, match="not both"):
        VERIFIERS.create(f"arcface:model={tiny_arcface_onnx},weights={iresnet_weights}")
    with pytest.raises(ValueError, match="needs a model file"):
        VERIFIERS.create("arcface")
    with pytest.raises(ValueError, match="does not take arch="):
        VERIFIERS.create(f"arcface:model={tiny_arcface_onnx},arch=r50")
    with pytest.raises(ValueError, match="does not take runtime="):
        VERIFIERS.create(f"arcface:weights={iresnet_weights},runtime=opencv")
    with pytest.raises(ValueError, match="arch must be one of"):
        VERIFIERS.create(f"arcface:weights={iresnet_weights},arch=r51")


def test_options_are_fingerprinted_and_fp16_needs_cuda(iresnet_weights: Path) -> None:
    x = face_batch(3, seed=7)
    plain = VERIFIERS.create(f"arcface:weights={iresnet_weights},arch=r18", device="cpu")
    cl = VERIFIERS.create(f"arcface:weights={iresnet_weights},channels_last=1", device="cpu")
    assert cl.channels_last is True and cl.fingerprint != plain.fingerprint
    assert cl.fingerprint.endswith("channels_last=1")
    # another memory format only reorders the sums
    assert np.abs(cl.embed(x) - plain.embed(x)).max() < 1e-5
    with pytest.raises(ValueError, match="precision=fp16 needs a CUDA device"):
        VERIFIERS.create(f"arcface:weights={iresnet_weights},precision=fp16", device="cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        VERIFIERS.create(f"arcface:weights={iresnet_weights},precision=bf16", device="cpu")


def test_wrapped_and_ddp_checkpoints_load(iresnet_weights: Path, tmp_path: Path) -> None:
    """A training dict ({'state_dict': ...}) with DataParallel ``module.`` keys, and a
    ``prefix=`` pick from a whole-model checkpoint, give the plain file's embeddings."""
    state = torch.load(iresnet_weights, weights_only=True)
    x = face_batch(2, seed=3)
    ref = VERIFIERS.create(f"arcface:weights={iresnet_weights}", device="cpu").embed(x)
    wrapped = tmp_path / "train.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    np.testing.assert_array_equal(VERIFIERS.create(f"arcface:weights={wrapped}", device="cpu").embed(x), ref)
    whole = tmp_path / "whole.pt"
    torch.save({**{f"backbone.{k}": v for k, v in state.items()}, "margin.weight": torch.zeros(10, 512)}, whole)
    v = VERIFIERS.create(f"arcface:weights={whole},prefix=backbone.", device="cpu")
    np.testing.assert_array_equal(v.embed(x), ref)
    assert v.fingerprint.endswith(":prefix=backbone.")


def test_wrong_checkpoints_name_the_file_and_keys(iresnet_weights: Path, mobilefacenet_weights: Path,
                                                  tmp_path: Path) -> None:
    odd = tmp_path / "odd_depth.pth"
    torch.save(IResNet((1, 1, 1, 1)).state_dict(), odd)
    with pytest.raises(CheckpointError, match=r"odd_depth.pth: cannot infer the IResNet arch .*\[1, 1, 1, 1\].*arch="):
        VERIFIERS.create(f"arcface:weights={odd}", device="cpu")
    with pytest.raises(CheckpointError, match=r"odd_depth.pth: checkpoint does not fit IResNet \(missing keys: layer1\.1\."):
        VERIFIERS.create(f"arcface:weights={odd},arch=r18", device="cpu")
    with pytest.raises(CheckpointError, match=r"backbone.pth: arch=r34 given, but the checkpoint holds an IResNet r18"):
        VERIFIERS.create(f"arcface:weights={iresnet_weights},arch=r34", device="cpu")
    with pytest.raises(CheckpointError, match="MobileFace_Net: cannot infer the IResNet arch .*no layer1"):
        VERIFIERS.create(f"arcface:weights={mobilefacenet_weights}", device="cpu")
    with pytest.raises(CheckpointError, match="backbone.pth: an IResNet .* use --verifier arcface:weights="):
        VERIFIERS.create(f"mobilefacenet:weights={iresnet_weights}", device="cpu")
    shaped = tmp_path / "narrow.pth"
    state = MobileFaceNet().state_dict()
    state["conv1.conv.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(state, shaped)
    with pytest.raises(CheckpointError, match=r"narrow.pth: .*shape mismatch: conv1.conv.weight \(64, 3, 5, 5\)"):
        VERIFIERS.create(f"mobilefacenet:weights={shaped}", device="cpu")
    with pytest.raises(ValueError, match="needs weights"):
        VERIFIERS.create("mobilefacenet", device="cpu")


def test_infer_arch_knows_every_published_depth() -> None:
    for arch in ("r18", "r34", "r50", "r100", "r200"):
        # the meta device builds the key set without allocating r200's 100+ M parameters
        with torch.device("meta"):
            state = iresnet(arch).state_dict()
        assert infer_arch(state) == arch


# ------------------------------------------------------------------------------ torch vs ONNX


def test_onnx_export_matches_torch_path(iresnet_weights: Path, tmp_path: Path) -> None:
    """Our IResNet exported to ONNX (legacy exporter, dynamic batch, opset 17) and run by the
    ONNX verifier gives the torch verifier's embeddings on the same weights: the two
    ``arcface`` paths share one input contract ((x·255 − 127.5)/127.5, RGB) and cannot drift."""
    torch_v = VERIFIERS.create(f"arcface:weights={iresnet_weights},arch=r18", device="cpu")
    path = tmp_path / "r18.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
        torch.onnx.export(torch_v.model, torch.zeros(1, 3, 112, 112), str(path), input_names=["data"],
                          output_names=["fc1"], dynamic_axes={"data": {0: "N"}, "fc1": {0: "N"}}, dynamo=False,
                          opset_version=17)
    x = face_batch(4, seed=11)
    ref = torch_v.embed(x)
    for runtime in ("onnxruntime", "opencv"):
        onnx_v = VERIFIERS.create(f"arcface:model={path},runtime={runtime}", device="cpu")
        assert (onnx_v.input_mean, onnx_v.input_std, onnx_v.input_size) == (127.5, 127.5, 112)
        e = onnx_v.embed(x)
        assert np.abs(e - ref).max() < 2e-5 and (1 - (e * ref).sum(1)).max() < 1e-5, runtime
