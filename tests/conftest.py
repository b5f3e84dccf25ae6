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
FIDELITY = Path(__file__).resolve().parents[2] / "shared" / "fidelity"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the test (with the reason) when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is absent)")
    return path


def fidelity_pack(name: str):
    """``(fill, pack)`` for a pack of ../shared/fidelity (see its README): the fill-rule
    module and the loaded pack. Skips the test, saying why, when the packs are absent."""
    import importlib.util as _util
    import sys

    folder = FIDELITY / name
    if not (FIDELITY / "fill.py").is_file() or not folder.is_dir():
        pytest.skip(f"needs {folder} (../shared/fidelity is absent)")
    if "recogbench_fidelity_fill" not in sys.modules:
        spec = _util.spec_from_file_location("recogbench_fidelity_fill", FIDELITY / "fill.py")
        module = _util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    fill = sys.modules["recogbench_fidelity_fill"]
    return fill, fill.load_pack(str(folder))


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

    # Contiguous NCHW, as recogbench.tensors.to_tensor gives (a permuted view is channels-last).
    return (torch.from_numpy(smooth_faces(n, seed)).permute(0, 3, 1, 2).float() / 255.0).contiguous()


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


@pytest.fixture(scope="session")
def tiny_unet_checkpoint(tmp_path_factory) -> Path:
    """A tiny (base 4, attention on, masked mode) unet-gan generator saved as a checkpoint; untrained."""
    import torch

    from inpainters.unet_gan import UNetConfig, UNetGenerator, write_checkpoint

    torch.manual_seed(0)
    gen = UNetGenerator(UNetConfig(base_channels=4, attention=True))
    return write_checkpoint(tmp_path_factory.mktemp("unet") / "tiny.safetensors", gen)


@pytest.fixture(scope="session")
def ifacenet_checkpoint(tmp_path_factory) -> Path:
    """An IFACENET checkpoint laid out as the authors' ``utils.save_model`` writes it — a
    ``torch.save`` dict with ``epoch``, ``model_state_dict`` and the pickled loss object (an
    ``nn.MSELoss()`` here) — holding the published 52.7 M-parameter network with seeded random
    weights. Untrained: for loading and contract tests, not for quality."""
    import torch

    from inpainters.ifacenet import IFACENet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = IFACENet(official_freeze=False).state_dict()
    path = tmp_path_factory.mktemp("ifacenet") / "reconstruction.pth"
    torch.save({"epoch": 20, "model_state_dict": state, "loss": torch.nn.MSELoss()}, path)
    return path


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine OpenMP's spinning threads slow training
    steps several-fold; one thread keeps those tests fast and steady."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _save_tensors(path: Path, state: dict) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.fixture(scope="session")
def id_inpainter_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Narrow ID-Inpainter checkpoints (the published architecture at a fraction of its width,
    so tests run in seconds) with seeded random weights, laid out as the released files are:
    ``ca`` (CA generator state dict) and ``fusor`` (``G.``/``E.``/``Z.`` prefixed; D is left
    out, as inference does not need it). The backend reads the widths from the shapes."""
    import torch

    from inpainters.id_inpainter.ca import CAGenerator
    from inpainters.id_inpainter.fusor import Fusor

    folder = tmp_path_factory.mktemp("id_inpainter")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ca = CAGenerator(ngf=8).state_dict()
        fusor = Fusor(with_discriminator=False, width=4, sampler_width=8).state_dict()
    return {"ca": _save_tensors(folder / "ca.safetensors", ca),
            "fusor": _save_tensors(folder / "fusor.safetensors", fusor)}


@pytest.fixture(scope="session")
def id_inpainter_pack_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """The ID-Inpainter checkpoints filled by the fidelity packs' rule (CA and fusor packs),
    written in the released files' formats: ``ca`` a plain ``torch.save`` state dict like
    ``gen_00700000.pt``, ``fusor`` a Lightning-style ``.ckpt`` dict with ``state_dict``
    holding all four prefixes. Skips when ../shared/fidelity is absent."""
    import torch

    fill, ca_pack = fidelity_pack("id-inpainter-ca")
    _, fusor_pack = fidelity_pack("id-inpainter-fusor")
    folder = tmp_path_factory.mktemp("id_inpainter_packs")
    ca = fill.fill_state_dict(ca_pack.meta["keys"], ca_pack.gain)
    torch.save(ca, folder / "gen_00700000.pt")
    fusor = fill.fill_state_dict(fusor_pack.meta["keys"], fusor_pack.gain)
    torch.save({"epoch": 10, "global_step": 1000, "state_dict": fusor, "pytorch-lightning_version": "1.6.0"},
               folder / "last.ckpt")
    return {"ca": folder / "gen_00700000.pt", "fusor": folder / "last.ckpt"}


@pytest.fixture(scope="session")
def iresnet_weights(tmp_path_factory) -> Path:
    """An arcface_torch-style ``backbone.pth`` (plain ``torch.save`` state dict) of an IResNet
    r18 with seeded default-init weights: untrained, but its embeddings of distinct faces are
    distinct (off-diagonal cosines ≲ 0.5), which is all the contract tests need."""
    import torch

    from recogbench.verifiers.iresnet import iresnet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = iresnet("r18").state_dict()
    path = tmp_path_factory.mktemp("iresnet") / "backbone.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def mobilefacenet_weights(tmp_path_factory) -> Path:
    """ID-Inpainter's MobileFaceNet with seeded default-init weights, saved as a plain
    ``torch.save`` state dict like the released ``arcface/MobileFace_Net``."""
    import torch

    from recogbench.verifiers.mobilefacenet import MobileFaceNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = MobileFaceNet().state_dict()
    path = tmp_path_factory.mktemp("mobilefacenet") / "MobileFace_Net"
    torch.save(state, path)
    return path
