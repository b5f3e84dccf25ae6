"""FaceNet (InceptionResnetV1 from facenet-pytorch) with user-supplied weights.

No package ships the VGGFace2/CASIA weights (facenet-pytorch downloads them at run time),
so ``weights=PATH`` is required: a safetensors file or a torch state dict (loaded with
``weights_only=True``). Install the code with ``pip install --no-deps facenet-pytorch==2.5.3``:
its package ``__init__`` imports MTCNN and hence torchvision, which fails against a CPU
torch, so only the recogniser's own module is loaded here.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch

from recogbench.checkpoint import load_into, load_state
from recogbench.device import resolve_device
from recogbench.verifiers.base import Verifier, file_digest


def _inception_resnet_v1_class():
    """InceptionResnetV1 without running facenet_pytorch/__init__ (which needs torchvision)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the facenet verifier needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.5.3 requests"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    name = "_recogbench_facenet"
    if f"{name}.models.inception_resnet_v1" not in sys.modules:
        for pkg, path in ((name, root), (f"{name}.models", root / "models"), (f"{name}.models.utils", root / "models" / "utils")):
            module = types.ModuleType(pkg)
            module.__path__ = [str(path)]
            sys.modules.setdefault(pkg, module)
        sub = importlib.util.spec_from_file_location(
            f"{name}.models.inception_resnet_v1", root / "models" / "inception_resnet_v1.py"
        )
        module = importlib.util.module_from_spec(sub)
        sys.modules[sub.name] = module
        sub.loader.exec_module(module)
    return sys.modules[f"{name}.models.inception_resnet_v1"].InceptionResnetV1


class FaceNetVerifier(Verifier):
    """FaceNet InceptionResnetV1 (512-d; facenet-pytorch, MIT) with weights given by ``weights=PATH``."""

    name = "facenet"
    input_size = 160

    def __init__(self, weights: str | Path | None = None, *, device: str = "auto", flip: bool = False) -> None:
        super().__init__(flip=flip)
        if weights is None:
            raise ValueError("facenet needs weights: --verifier facenet:weights=PATH (.safetensors or .pt state dict)")
        self.weights = Path(weights).expanduser()
        if not self.weights.is_file():
            raise FileNotFoundError(f"facenet weights not found: {self.weights}")
        self.device = resolve_device(device)
        model = _inception_resnet_v1_class()(pretrained=None, classify=False)
        state, _ = load_state(self.weights)
        # the classifier head of a training checkpoint is not part of the recogniser
        load_into(model, {k: v for k, v in state.items() if not k.startswith("logits.")}, self.weights)
        self.model = model.eval().to(self.device)
        self._digest = file_digest(self.weights)

    @property
    def model_digest(self) -> str:
        return self._digest

    @property
    def runtime(self) -> str:
        return f"torch:{self.device}"

    @torch.no_grad()
    def _forward(self, images: torch.Tensor) -> np.ndarray:
        # facenet-pytorch's fixed_image_standardization: (x·255 − 127.5) / 128
        x = (images.to(self.device) * 255.0 - 127.5) / 128.0
        return self.model(x).float().cpu().numpy()
