"""Shared fixtures: the optional ../shared data, tiny models and tiny protocols built here."""

from __future__ import annotations

import importlib.util
import pickle
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the test (with the reason) when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is absent)")
    return path


def smooth_faces(n: int, seed: int = 0, size: int = 112) -> np.ndarray:
    """(n, size, size, 3) uint8 smooth random images: cheap stand-ins for aligned faces."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC) for s in small])


def write_pack(path: Path, faces: np.ndarray, issame: list[bool]) -> Path:
    """An insightface-format .bin: pickle of (PNG bytes list, bool list)."""
    blobs = [cv2.imencode(".png", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in faces]
    path.write_bytes(pickle.dumps((blobs, list(issame)), protocol=4))
    return path


def face_batch(n: int = 5, seed: int = 0):
    """(n, 3, 112, 112) float32 torch batch in [0, 1] of :func:`smooth_faces`."""
    import torch

    return torch.from_numpy(smooth_faces(n, seed)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="session")
def facenet_weights(tmp_path_factory) -> Path:
    if importlib.util.find_spec("facenet_pytorch") is None:
        pytest.skip("facenet-pytorch not installed (pip install --no-deps facenet-pytorch==2.5.3)")
    import torch
    from safetensors.torch import save_file

    from recogbench.verifiers.facenet import _inception_resnet_v1_class

    torch.manual_seed(0)
    model = _inception_resnet_v1_class()(pretrained=None)
    # Random weights with default BatchNorm statistics map every face to nearly one point;
    # calibrating the statistics on random faces makes a discriminative stand-in model.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for seed in range(4):
            model((face_batch(16, seed=100 + seed) * 255 - 127.5) / 128)
    model.eval()
    path = tmp_path_factory.mktemp("facenet") / "facenet.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture
def tiny_pack(tmp_path: Path) -> Path:
    """See :func:`make_tiny_pack`."""
    return make_tiny_pack(tmp_path / "tiny.bin")


def make_tiny_pack(path: Path) -> Path:
    """20 pairs in 10 folds (1 genuine + 1 impostor each) of smooth random 112×112 faces.
    A genuine pair's second image is its first with mild noise, so real recognisers agree."""
    rng = np.random.default_rng(1)
    base = smooth_faces(40, seed=2)
    faces, issame = [], []
    for k in range(20):
        a = base[2 * k]
        same = k % 2 == 0
        b = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8) if same else base[2 * k + 1]
        faces += [a, b]
        issame.append(same)
    return write_pack(path, np.stack(faces), issame)


@pytest.fixture(scope="session")
def tiny_arcface_onnx(tmp_path_factory) -> Path:
    """An ArcFace-shaped ONNX model (N×3×112×112 → N×512) exported from a small torch net."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.PReLU(8),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.PReLU(16),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16 * 16, 512),
    ).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny_arcface.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
        torch.onnx.export(
            net, torch.zeros(1, 3, 112, 112), str(path), input_names=["input_1"], output_names=["fc1"],
            dynamic_axes={"input_1": {0: "N"}, "fc1": {0: "N"}}, dynamo=False, opset_version=17,
        )
    return path


@pytest.fixture(scope="session")
def tiny_pconv_checkpoint(tmp_path_factory) -> Path:
    """A tiny (base 4) pconv-gan generator saved as a checkpoint; untrained but real weights."""
    import torch

    from inpainters.pconv_gan import Generator, GeneratorConfig, write_checkpoint

    torch.manual_seed(0)
    return write_checkpoint(tmp_path_factory.mktemp("pconv") / "tiny.safetensors", Generator(GeneratorConfig(base_channels=4)))


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine OpenMP's spinning threads slow training
    steps several-fold; one thread keeps those tests fast and steady."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
