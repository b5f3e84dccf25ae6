"""Face verifiers: aligned faces in, L2-normalised embeddings out.

Every verifier implements :class:`Verifier`; built-ins are registered lazily in
:data:`recogbench.registry.VERIFIERS`, third-party ones through the ``recogbench.verifiers``
entry-point group.
"""

from recogbench.registry import VERIFIERS
from recogbench.verifiers.base import Verifier

VERIFIERS.register("sface", "recogbench.verifiers.onnx:SFaceVerifier")
# model=FILE.onnx runs the ONNX file, weights=FILE.pth the torch IResNet (see verifiers/arcface.py)
VERIFIERS.register("arcface", "recogbench.verifiers.arcface:arcface")
VERIFIERS.register("facenet", "recogbench.verifiers.facenet:FaceNetVerifier")
VERIFIERS.register("dlib", "recogbench.verifiers.dlib:DlibVerifier")
VERIFIERS.register("mobilefacenet", "recogbench.verifiers.mobilefacenet:MobileFaceNetVerifier")

__all__ = ["Verifier", "VERIFIERS"]
