"""Face verifiers: aligned faces in, L2-normalised embeddings out.

Every verifier implements :class:`Verifier`; built-ins are registered lazily in
:data:`recogbench.registry.VERIFIERS`, third-party ones through the ``recogbench.verifiers``
entry-point group.
"""

from recogbench.registry import VERIFIERS
from recogbench.verifiers.base import Verifier

VERIFIERS.register("sface", "recogbench.verifiers.onnx:SFaceVerifier")
VERIFIERS.register("arcface", "recogbench.verifiers.onnx:ArcFaceVerifier")
VERIFIERS.register("facenet", "recogbench.verifiers.facenet:FaceNetVerifier")
VERIFIERS.register("dlib", "recogbench.verifiers.dlib:DlibVerifier")

__all__ = ["Verifier", "VERIFIERS"]
