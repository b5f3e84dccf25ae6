"""``arcface``: one name, two ways to run an ArcFace model, chosen by the option given.

* ``arcface:model=FILE.onnx`` — an insightface model-zoo ONNX file
  (:class:`recogbench.verifiers.onnx.ArcFaceVerifier`; options ``runtime``, ``input_mean``, ``input_std``).
* ``arcface:weights=FILE.pth[,arch=r50]`` — an arcface_torch IResNet ``backbone.pth``
  (:class:`recogbench.verifiers.iresnet.IResNetVerifier`; options ``arch``, ``precision``,
  ``channels_last``, ``key``, ``prefix``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from recogbench.registry import _coerce_options
from recogbench.verifiers.base import Verifier

_USAGE = ("arcface:model=PATH.onnx (insightface model-zoo ONNX) or "
          "arcface:weights=PATH.pth[,arch=r18|r34|r50|r100|r200] (arcface_torch backbone)")


def _own_options(cls: type) -> set[str]:
    """Keyword options a verifier class takes, through its ``**kwargs`` chain."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def arcface(model: str | Path | None = None, weights: str | Path | None = None, **options: Any) -> Verifier:
    """ArcFace: insightface model-zoo ONNX (``model=FILE.onnx``) or arcface_torch IResNet (``weights=FILE.pth``)."""
    if model is not None and weights is not None:
        raise ValueError(f"arcface takes model= (ONNX) or weights= (torch), not both: {_USAGE}")
    if model is None and weights is None:
        raise ValueError(f"arcface needs a model file: {_USAGE}")
    if model is not None:
        from recogbench.verifiers.onnx import ArcFaceVerifier, OnnxVerifier

        cls, path, typed, how = ArcFaceVerifier, {"model": model}, OnnxVerifier, "model= (ONNX)"
    else:
        from recogbench.verifiers.iresnet import IResNetVerifier
        from recogbench.verifiers.torch_backbone import TorchBackboneVerifier

        cls, path, typed, how = IResNetVerifier, {"weights": weights}, TorchBackboneVerifier, "weights= (torch)"
    allowed = _own_options(cls) | _own_options(typed)
    foreign = sorted(set(options) - allowed)
    if foreign:
        raise ValueError(f"arcface with {how} does not take {', '.join(f'{k}=' for k in foreign)} "
                         f"(it takes {', '.join(sorted(allowed - set(path)))}); {_USAGE}")
    # spec text arrives as strings; convert to the chosen class's annotated types
    options = _coerce_options(typed, _coerce_options(cls, options, "verifier 'arcface'"), "verifier 'arcface'")
    return cls(**path, **options)
