"""Contract tests over every registered verifier, plus backend-specific checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from recogbench.registry import VERIFIERS, RegistryError
from recogbench.verifiers.onnx import SFaceVerifier, prepare_onnx, sface_model_path

from .conftest import face_batch, smooth_faces


# Every registered name, plus the second way "arcface" runs (weights=: the torch IResNet).
CONTRACT_CASES = [*VERIFIERS.names(), "arcface[torch]"]


def make_verifier(name: str, request) -> object:
    """Build a registered verifier with the arguments its contract needs (tiny models here)."""
    if name == "arcface":
        return VERIFIERS.create(name, model=str(request.getfixturevalue("tiny_arcface_onnx")), device="cpu")
    if name == "arcface[torch]":
        return VERIFIERS.create("arcface", weights=str(request.getfixturevalue("iresnet_weights")), device="cpu")
    if name == "mobilefacenet":
        return VERIFIERS.create(name, weights=str(request.getfixturevalue("mobilefacenet_weights")), device="cpu")
    if name == "facenet":
        return VERIFIERS.create(name, weights=str(request.getfixturevalue("facenet_weights")), device="cpu")
    if name == "dlib" and importlib.util.find_spec("dlib") is None:
        pytest.skip("dlib not installed (pip install 'recogbench[dlib]')")
    return VERIFIERS.create(name, device="cpu")


def batch(n: int = 5, seed: int = 0) -> torch.Tensor:
    return face_batch(n, seed)


@pytest.mark.parametrize("name", CONTRACT_CASES)
def test_contract(name: str, request) -> None:
    v = make_verifier(name, request)
    x = batch(5)
    e = v.embed(x)
    assert e.dtype == np.float32 and e.ndim == 2 and e.shape[0] == 5 and e.shape[1] >= 64
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # deterministic, and independent of the batch an image arrives in
    np.testing.assert_array_equal(e, v.embed(x))
    single = np.concatenate([v.embed(x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(single, e, atol=2e-5)
    # distinct images do not collapse onto one embedding
    assert (e @ e.T)[~np.eye(5, dtype=bool)].max() < 0.9999
    assert v.runtime and v.fingerprint.startswith(v.name)
    assert len(v.model_digest) == 64


@pytest.mark.parametrize("name", CONTRACT_CASES)
def test_flip_test(name: str, request) -> None:
    v = make_verifier(name, request)
    x = batch(3, seed=5)
    plain = v.embed(x)
    v.flip = True
    flipped = v.embed(x)
    np.testing.assert_allclose(np.linalg.norm(flipped, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(plain, flipped)
    # flip test is symmetric: an image and its mirror get the same embedding
    np.testing.assert_allclose(v.embed(x.flip(-1)), flipped, atol=2e-5)
    assert "flip=1" in v.fingerprint


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(2, 3, 112, 112, dtype=torch.float64), "float32"),
        (torch.zeros(2, 1, 112, 112), "N×3×H×W"),
        (torch.full((2, 3, 112, 112), 2.0), r"\[0, 1\]"),
        (np.zeros((2, 3, 112, 112), np.float32), "torch.Tensor"),
    ],
)
def test_input_contract_is_checked(bad, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        SFaceVerifier().embed(bad)


def test_other_sizes_are_resized() -> None:
    v = SFaceVerifier()
    x = batch(2)
    big = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    e_small, e_big = v.embed(x), v.embed(big)
    assert ((e_small * e_big).sum(1) > 0.97).all()


def test_sface_runtimes_agree_with_reference() -> None:
    """opencv and onnxruntime run the prepared graph; both match cv2.dnn on the shipped file."""
    x = batch(6, seed=3)
    a = SFaceVerifier(runtime="opencv").embed(x)
    b = SFaceVerifier(runtime="onnxruntime").embed(x)
    net = cv2.dnn.readNetFromONNX(str(sface_model_path()))
    ref = []
    for i in range(len(x)):  # the original model has a fixed batch of 1
        net.setInput(np.ascontiguousarray(x[i : i + 1].numpy() * 255.0), "data")
        ref.append(net.forward().reshape(-1))
    ref = np.stack(ref)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert (1 - (a * b).sum(1)).max() < 1e-5
    assert (1 - (a * ref).sum(1)).max() < 1e-5
    assert SFaceVerifier(runtime="onnxruntime").runtime == "onnxruntime:CPUExecutionProvider"
    assert SFaceVerifier(runtime="opencv").runtime == "opencv-dnn:CPU"


def test_prepare_onnx_makes_sface_batchable() -> None:
    import onnx

    data, inp, out = prepare_onnx(sface_model_path().read_bytes())
    model = onnx.load_from_string(data)
    assert [i.name for i in model.graph.input] == [inp] == ["data"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert not any(n.op_type == "DequantizeLinear" for n in model.graph.node)
    assert out == "fc1"


def test_arcface_matches_insightface_model_zoo(tiny_arcface_onnx: Path) -> None:
    """Same embeddings as insightface's ArcFaceONNX.get_feat on the same faces (BGR in, RGB inside)."""
    model_zoo = pytest.importorskip("insightface.model_zoo")
    ref_model = model_zoo.get_model(str(tiny_arcface_onnx), providers=["CPUExecutionProvider"])
    faces = smooth_faces(4, seed=9)
    ref = ref_model.get_feat([cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in faces])
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    for runtime in ("onnxruntime", "opencv"):
        v = VERIFIERS.create("arcface", model=str(tiny_arcface_onnx), runtime=runtime, device="cpu")
        assert (v.input_mean, v.input_std) == (127.5, 127.5)
        e = v.embed(torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255)
        assert e.shape == (4, 512)
        assert (1 - (e * ref).sum(1)).max() < 1e-5


def test_arcface_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a model file"):
        VERIFIERS.create("arcface")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        VERIFIERS.create("arcface", model=str(tmp_path / "nope.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(ValueError, match="junk.onnx"):
        VERIFIERS.create("arcface", model=str(junk))


def test_arcface_spec_options_are_typed(tiny_arcface_onnx: Path) -> None:
    v = VERIFIERS.create(f"arcface:model={tiny_arcface_onnx},input_mean=0,input_std=1,runtime=onnxruntime", device="cpu")
    assert (v.input_mean, v.input_std) == (0.0, 1.0)
    assert v.runtime.startswith("onnxruntime")


def test_facenet_refuses_weights_of_another_architecture(tmp_path: Path, facenet_weights: Path) -> None:
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv.weight": torch.zeros(3, 3)}, str(wrong))
    with pytest.raises(ValueError, match="missing keys: .*unexpected keys: conv.weight"):
        VERIFIERS.create("facenet", weights=str(wrong), device="cpu")
    with pytest.raises(ValueError, match="needs weights"):
        VERIFIERS.create("facenet", device="cpu")


def test_facenet_refuses_pickled_code(tmp_path: Path, facenet_weights: Path) -> None:
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(ValueError, match="refused: not a weights-only"):
        VERIFIERS.create("facenet", weights=str(bad), device="cpu")
    assert not marker.exists()
