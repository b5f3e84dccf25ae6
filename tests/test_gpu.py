"""Device equivalence: the same code on CUDA gives the CPU's numbers. Skipped without a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recogbench.config import RunConfig
from recogbench.pipeline import run
from recogbench.registry import VERIFIERS

from .conftest import smooth_faces

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_facenet_cuda_matches_cpu(request) -> None:
    weights = request.getfixturevalue("facenet_weights")
    x = (torch.from_numpy(smooth_faces(6, seed=4)).permute(0, 3, 1, 2).float() / 255).contiguous()
    cpu = VERIFIERS.create("facenet", weights=str(weights), device="cpu").embed(x)
    gpu_v = VERIFIERS.create("facenet", weights=str(weights), device="cuda")
    assert gpu_v.runtime.startswith("torch:cuda")
    gpu = gpu_v.embed(x.cuda())
    assert (1 - (cpu * gpu).sum(1)).max() < 1e-4


def test_pipeline_on_cuda_matches_cpu(tiny_pack: Path, tmp_path: Path) -> None:
    def cfg(device: str, out: str) -> RunConfig:
        return RunConfig(protocol="bin", data=str(tiny_pack), occlusion="region:twoeyes", inpainter="oracle",
                         device=device, out=str(tmp_path / out), progress=False, cache=False)

    cpu, gpu = run(cfg("cpu", "cpu")), run(cfg("cuda", "gpu"))
    assert gpu.row["device"].startswith("cuda")
    # SFace on a GPU runs through onnxruntime: CUDA when onnxruntime-gpu is installed, else
    # its CPU provider, and the row says which one really ran.
    import onnxruntime as ort

    expected = "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() else "CPUExecutionProvider"
    assert gpu.row["provider"] == f"onnxruntime:{expected}"
    np.testing.assert_allclose(gpu.scores, cpu.scores, atol=1e-4)
    assert gpu.row["config_hash"] == cpu.row["config_hash"]


@pytest.mark.parametrize("name, fixture", [("arcface", "iresnet_weights"), ("mobilefacenet", "mobilefacenet_weights")])
def test_torch_recogniser_precisions_agree(name: str, fixture: str, request) -> None:
    """fp32 on CUDA (TF32 off) matches the CPU; fp16 autocast and channels-last agree with it."""
    weights = request.getfixturevalue(fixture)
    x = (torch.from_numpy(smooth_faces(16, seed=5)).permute(0, 3, 1, 2).float() / 255).contiguous()
    cpu = VERIFIERS.create(f"{name}:weights={weights}", device="cpu").embed(x)
    tf32 = torch.backends.cudnn.allow_tf32
    fp32 = VERIFIERS.create(f"{name}:weights={weights}", device="cuda").embed(x.cuda())
    assert torch.backends.cudnn.allow_tf32 == tf32  # the fp32 guard restores the global flag
    assert (1 - (cpu * fp32).sum(1)).max() < 1e-5
    for options in ("precision=fp16", "channels_last=1", "precision=fp16,channels_last=1"):
        v = VERIFIERS.create(f"{name}:weights={weights},{options}", device="cuda")
        assert v.runtime == "torch:cuda" and options.replace(",", ":") in v.fingerprint
        cos = (v.embed(x.cuda()) * fp32).sum(1)
        assert cos.mean() > 0.999 and cos.min() > 0.995, (options, cos.min(), cos.mean())
