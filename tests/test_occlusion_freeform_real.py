"""Free-form stroke holes (coverage bins) and real RGBA cut-outs placed by landmarks."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from recogbench.data import DataError
from recogbench.occlusion import REGIONS, face_landmarks, item_rng, occlude_batch
from recogbench.occlusion import freeform as freeform_module
from recogbench.occlusion.freeform import COVERAGE_BINS, FreeForm
from recogbench.occlusion.real import RealOccluder, mask_targets, pose_of
from recogbench.registry import OCCLUDERS, portable_spec

from .conftest import shared_path, smooth_faces

_INSIGHTFACE = importlib.util.find_spec("insightface")
TOM_HANKS = (
    Path(_INSIGHTFACE.origin).parent / "data" / "images" / "Tom_Hanks_54745.png"
    if _INSIGHTFACE is not None and _INSIGHTFACE.origin else Path("/nonexistent/Tom_Hanks_54745.png")
)
BINS = list(COVERAGE_BINS)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_face() -> np.ndarray:
    """insightface's sample aligned 112×112 face, RGB."""
    if not TOM_HANKS.exists():
        pytest.skip(f"insightface sample image absent ({TOM_HANKS})")
    bgr = cv2.imread(str(TOM_HANKS))
    face = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    assert face.shape == (112, 112, 3)
    return face


@pytest.fixture(scope="module")
def dark_face(real_face: np.ndarray) -> np.ndarray:
    """The real face with 43 % exactly-black pixels: a black band and a dot lattice."""
    face = real_face.copy()
    face[:, :40] = 0
    face[::3, ::3] = 0
    return face


@pytest.fixture(scope="module")
def masktheface() -> Path:
    return shared_path("occluders", "masktheface")


@pytest.fixture(scope="module")
def aligned_faces() -> np.ndarray:
    """The deepface-pairs photos aligned to 112×112 by the project's aligner."""
    folder = shared_path("deepface-pairs")
    from recogbench.align import DetectorUnavailableError, FaceAligner

    try:
        aligner = FaceAligner()
    except DetectorUnavailableError as exc:
        pytest.skip(f"face detector unavailable: {exc}")
    faces = []
    for path in sorted(folder.glob("*.jpg"))[:12]:
        result = aligner.align(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        if result.face is not None:
            faces.append(result.face)
    assert len(faces) >= 8
    return np.stack(faces)


def _changed(face: np.ndarray, out: np.ndarray) -> np.ndarray:
    return (out != face).any(axis=2)


def _blob_image(size: tuple[int, int] = (200, 300), background: int = 255) -> np.ndarray:
    """A BGR picture of a coloured ellipse (with a white patch inside) on a flat background."""
    h, w = size
    img = np.full((h, w, 3), background, np.uint8)
    cv2.ellipse(img, (w // 2, h // 2), (w // 2 - 20, h // 2 - 20), 0, 0, 360, (40, 90, 200), -1)
    cv2.circle(img, (w // 2, h // 2), 20, (255, 255, 255), -1)  # white inside: must stay opaque
    return img


# -- freeform ----------------------------------------------------------------------------


@pytest.mark.parametrize("bin_name", BINS)
def test_freeform_coverage_in_bin_on_a_real_face(real_face: np.ndarray, bin_name: str) -> None:
    lo, hi = COVERAGE_BINS[bin_name]
    occ = FreeForm(coverage=bin_name)
    for seed in range(50):
        result = occ.occlude(real_face, item_rng(seed, 3, "first"))
        mask = _changed(real_face, result.image)
        np.testing.assert_array_equal(result.mask, mask)
        coverage = result.record["coverage"]
        assert coverage == mask.mean()
        assert lo / 100 <= coverage < hi / 100 and coverage > 0, (seed, coverage)
        assert result.record["coverage_bin"] == bin_name
        assert result.record["occluder"] == "freeform" and result.record["fill"] == "black"
        assert result.record["n_strokes"] >= 1
        assert (result.image[result.mask] == 0).all()
        assert (result.image[~result.mask] == real_face[~result.mask]).all()


@pytest.mark.parametrize("bin_name", BINS)
def test_freeform_coverage_counts_only_changed_pixels(dark_face: np.ndarray, bin_name: str) -> None:
    """With fill=black, strokes over black pixels change nothing: the bin holds for the
    pixels that did change, which are exactly the mask."""
    lo, hi = COVERAGE_BINS[bin_name]
    occ = FreeForm(coverage=bin_name)
    already_black = (dark_face == 0).all(axis=2)
    for seed in range(50):
        result = occ.occlude(dark_face, item_rng(seed, 0, "second"))
        np.testing.assert_array_equal(result.mask, _changed(dark_face, result.image))
        assert not (result.mask & already_black).any()
        assert lo / 100 <= result.record["coverage"] < hi / 100 and result.record["coverage"] > 0


@pytest.mark.parametrize("size", [96, 160, 224])
@pytest.mark.parametrize("fill", ["noise", "white", "gray"])
def test_freeform_other_sizes_and_fills(real_face: np.ndarray, size: int, fill: str) -> None:
    face = cv2.resize(real_face, (size, size), interpolation=cv2.INTER_CUBIC)
    for i, bin_name in enumerate(BINS):
        lo, hi = COVERAGE_BINS[bin_name]
        result = FreeForm(coverage=bin_name, fill=fill).occlude(face, item_rng(i, size, "first"))
        assert result.mask.shape == (size, size)
        np.testing.assert_array_equal(result.mask, _changed(face, result.image))
        assert lo / 100 <= result.record["coverage"] < hi / 100 and result.record["coverage"] > 0


def test_freeform_trims_the_last_stroke(real_face: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the fallback: one attempt with huge brushes, so the stroke that crosses the
    lower bound also crosses the upper one and has to be cut short."""
    monkeypatch.setattr(freeform_module, "_WIDTH", (60.0, 80.0))
    monkeypatch.setattr(freeform_module, "_WIDTH_DECAY", (1.0,))
    trimmed = 0
    for bin_name in BINS:
        lo, hi = COVERAGE_BINS[bin_name]
        for seed in range(10):
            result = FreeForm(coverage=bin_name, fill="noise").occlude(real_face, item_rng(seed, 1, "first"))
            assert lo / 100 <= result.record["coverage"] < hi / 100 and result.record["coverage"] > 0
            np.testing.assert_array_equal(result.mask, _changed(real_face, result.image))
            trimmed += result.record["trimmed"]
    assert trimmed >= 20


def test_freeform_is_a_pure_function_of_the_rng(real_face: np.ndarray) -> None:
    occ = OCCLUDERS.create("freeform")
    a = occ.occlude(real_face, item_rng(5, 11, "first"))
    b = occ.occlude(real_face.copy(), item_rng(5, 11, "first"))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.record == b.record
    c = occ.occlude(real_face, item_rng(5, 11, "second"))
    assert not np.array_equal(a.mask, c.mask)
    # "any" draws the bin per face, from the seed
    drawn = {occ.occlude(real_face, item_rng(s, 0, "first")).record["coverage_bin"] for s in range(60)}
    assert drawn == set(BINS)
    # batches: order and batch size do not matter
    faces = smooth_faces(6, seed=3)
    pairs = np.arange(6)
    whole, masks, records = occlude_batch(occ, faces, pairs, "first", 9)
    order = np.array([3, 1, 5, 0, 2, 4])
    shuffled, _, _ = occlude_batch(occ, faces[order], pairs[order], "first", 9)
    np.testing.assert_array_equal(shuffled, whole[order])
    np.testing.assert_array_equal(masks, (whole != faces).any(axis=3))
    assert all(r["occluder"] == "freeform" for r in records)


def test_freeform_registry_and_options() -> None:
    occ = OCCLUDERS.create("freeform:coverage=20-30")
    assert isinstance(occ, FreeForm)
    assert occ.params() == {"occluder": "freeform", "coverage": "20-30", "fill": "black"}
    assert OCCLUDERS.create("freeform:coverage=50-60,fill=noise").fill == "noise"
    assert OCCLUDERS.create("freeform").coverage == "any"
    with pytest.raises(ValueError, match="coverage must be"):
        FreeForm(coverage="5-15")
    with pytest.raises(ValueError, match="fill must be"):
        FreeForm(fill="red")


def test_freeform_refuses_an_unreachable_bin() -> None:
    """A face that is almost all fill colour cannot reach the bin: a clear error."""
    face = np.zeros((112, 112, 3), np.uint8)
    face[:10, :10] = 200
    with pytest.raises(ValueError, match="use fill=noise"):
        FreeForm(coverage="10-20").occlude(face, item_rng(0, 0, "first"))
    result = FreeForm(coverage="0-10").occlude(face, item_rng(0, 0, "first"))  # reachable
    assert 0 < result.record["coverage"] < 0.1
    assert result.mask[:10, :10].any() and not result.mask[10:, :].any()


# -- real cut-outs: MaskTheFace ----------------------------------------------------------


def _points(size: int) -> dict[str, tuple[int, int]]:
    lm = face_landmarks(size)
    below_nose = (lm[2] + (0, 6 * size / 112)).round().astype(int)
    return {
        "left_mouth": tuple(lm[3].round().astype(int)),
        "right_mouth": tuple(lm[4].round().astype(int)),
        "below_nose": tuple(below_nose),
        "left_eye": tuple(lm[0].round().astype(int)),
        "right_eye": tuple(lm[1].round().astype(int)),
    }


def _check_mask_placement(mask: np.ndarray, where: str) -> None:
    pts = _points(mask.shape[0])
    for name in ("left_mouth", "right_mouth", "below_nose"):
        x, y = pts[name]
        assert mask[y, x], f"{where}: {name} not covered"
    for name in ("left_eye", "right_eye"):
        x, y = pts[name]
        assert not mask[y - 3 : y + 4, x - 3 : x + 4].any(), f"{where}: {name} covered"


@pytest.mark.shared
def test_masktheface_masks_sit_on_the_lower_face(masktheface: Path, aligned_faces: np.ndarray) -> None:
    occ = OCCLUDERS.create(f"real:{masktheface}")
    assert isinstance(occ, RealOccluder)
    assert occ.name.startswith("real:masktheface@")  # its name and content digest, not its path
    files = {c.file for c in occ.cutouts}
    assert files and all(pose_of(f) == "frontal" for f in files)
    assert all(c.anchors is not None for c in occ.cutouts)
    seen = set()
    for seed in range(6):
        for i, face in enumerate(aligned_faces):
            result = occ.occlude(face, item_rng(seed, i, "second"))
            where = f"seed {seed} face {i} {result.record['file']}"
            np.testing.assert_array_equal(result.mask, _changed(face, result.image))
            _check_mask_placement(result.mask, where)
            assert 0.15 <= result.record["coverage"] <= 0.5, where
            assert result.record["occluder"] == occ.name
            assert result.record["anchors_used"] is True
            x1, y1, x2, y2 = result.record["bbox"]
            assert y1 >= face_landmarks(112)[:2, 1].min() - 2, where  # never above the eye line
            seen.add(result.record["file"])
    assert seen == files  # every frontal cut-out gets drawn


FRONTAL = ["surgical.png", "KN95.png", "N95.png", "cloth.png", "gas.png", "surgical_blue"]


@pytest.mark.shared
@pytest.mark.parametrize("file", FRONTAL)
def test_each_frontal_mask_and_other_sizes(masktheface: Path, aligned_faces: np.ndarray, file: str) -> None:
    occ = RealOccluder(str(masktheface), file=file)
    assert len(occ.cutouts) == 1
    for size in (112, 224, 160):
        face = cv2.resize(aligned_faces[0], (size, size), interpolation=cv2.INTER_CUBIC)
        result = occ.occlude(face, item_rng(1, size, "first"))
        assert result.record["file"].startswith(Path(file).stem)
        _check_mask_placement(result.mask, f"{file} at {size}")
        assert 0.15 <= result.record["coverage"] <= 0.5


@pytest.mark.shared
def test_real_is_deterministic_and_jittered(masktheface: Path, aligned_faces: np.ndarray) -> None:
    occ = RealOccluder(str(masktheface))
    again = RealOccluder(str(masktheface))
    face = aligned_faces[2]
    a = occ.occlude(face, item_rng(3, 7, "first"))
    b = again.occlude(face.copy(), item_rng(3, 7, "first"))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.record == b.record
    assert occ.params() == again.params()
    pinned = RealOccluder(str(masktheface), file="surgical.png")
    boxes = {tuple(pinned.occlude(face, item_rng(s, 0, "first")).record["bbox"]) for s in range(8)}
    assert len(boxes) > 1  # seeded jitter moves it
    still = RealOccluder(str(masktheface), file="surgical.png", scale_jitter=0, shift_jitter=0)
    boxes = {tuple(still.occlude(face, item_rng(s, 0, "first")).record["bbox"]) for s in range(4)}
    assert len(boxes) == 1


@pytest.mark.shared
def test_real_pose_and_file_selection(masktheface: Path) -> None:
    left = RealOccluder(str(masktheface), pose="left")
    assert left.cutouts and all(c.file.endswith("_left.png") for c in left.cutouts)
    everything = RealOccluder(str(masktheface), pose="any")
    assert len(everything.cutouts) == len(list(masktheface.glob("*.png")))
    with pytest.raises(DataError, match="no image 'sunglasses'"):
        RealOccluder(str(masktheface), file="sunglasses")
    with pytest.raises(ValueError, match="pose must be"):
        RealOccluder(str(masktheface), pose="up")


@pytest.mark.shared
def test_region_placement_without_masks_cfg(
    tmp_path: Path, masktheface: Path, aligned_faces: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("surgical.png", "cloth.png"):
        shutil.copy(masktheface / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    # "surgical" names a mask, "cloth" says nothing: without masks.cfg the folder is refused
    # (it used to put every cut-out on the lower face, whatever it was)
    with pytest.raises(DataError, match=r"no placement for cloth\.png — .*sidecar.*region=NAME"):
        OCCLUDERS.create(f"real:{tmp_path}")
    with caplog.at_level(logging.INFO, logger="recogbench.occlusion.real"):
        occ = OCCLUDERS.create(f"real:{tmp_path}:region=down_face")
    assert "notes.txt" in caplog.text
    x1, y1, x2, y2 = REGIONS["down_face"]
    for i, face in enumerate(aligned_faces[:6]):
        result = occ.occlude(face, item_rng(0, i, "first"))
        assert result.record["anchors_used"] is False and result.record["placement"] == "option"
        bx1, by1, bx2, by2 = result.record["bbox"]
        assert bx1 >= x1 - 6 and by1 >= y1 - 6 and bx2 <= x2 + 6 and by2 <= y2 + 6
        assert 0.1 <= result.record["coverage"] <= 0.4
    eyes = OCCLUDERS.create(f"real:{tmp_path}:region=twoeyes,file=cloth.png")
    result = eyes.occlude(aligned_faces[0], item_rng(0, 0, "first"))
    assert result.mask[int(face_landmarks(112)[0, 1]), int(face_landmarks(112)[0, 0])]


# -- real cut-outs: synthetic folders (no shared data needed) ----------------------------


def test_jpeg_without_alpha_is_refused_unless_matting(real_face: np.ndarray, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "object.jpg"), _blob_image(), [cv2.IMWRITE_JPEG_QUALITY, 90])
    with pytest.raises(DataError, match=r"object\.jpg has no transparency.*matting"):
        OCCLUDERS.create(f"real:{tmp_path}")
    occ = OCCLUDERS.create(f"real:{tmp_path}:matting=white,region=down_face")
    cut = occ.cutouts[0]
    alpha = cut.rgba[..., 3]
    h, w = alpha.shape
    assert alpha[h // 2, w // 2] == 255  # the white patch inside the object stays
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0  # the background goes
    assert 0.6 < (alpha > 0).mean() < 0.9
    result = occ.occlude(real_face, item_rng(0, 0, "first"))
    assert result.record["file"] == "object.jpg" and result.record["anchors_used"] is False
    np.testing.assert_array_equal(result.mask, _changed(real_face, result.image))
    x1, y1, x2, y2 = REGIONS["down_face"]
    outside = np.ones((112, 112), bool)
    outside[y1 - 4 : y2 + 4, x1 - 4 : x2 + 4] = False
    assert not result.mask[outside].any()  # no white rectangle pasted around it
    assert 0.1 < result.record["coverage"] < 0.4
    # black background: the same picture on black
    black = tmp_path / "black"
    black.mkdir()
    cv2.imwrite(str(black / "object.png"), _blob_image(background=0))
    occ = RealOccluder(str(black), matting="black", region="down_face")
    assert occ.cutouts[0].rgba[0, 0, 3] == 0
    with pytest.raises(DataError, match="no white background"):
        RealOccluder(str(black), matting="white")


def test_opaque_alpha_and_text_only_folders_are_refused(tmp_path: Path) -> None:
    text_only = tmp_path / "text"
    text_only.mkdir()
    (text_only / "readme.txt").write_text("hello")
    with pytest.raises(DataError, match=r"holds no images.*readme\.txt"):
        OCCLUDERS.create(f"real:{text_only}")
    opaque = tmp_path / "opaque"
    opaque.mkdir()
    bgra = cv2.cvtColor(_blob_image(), cv2.COLOR_BGR2BGRA)
    cv2.imwrite(str(opaque / "flat.png"), bgra)
    with pytest.raises(DataError, match=r"flat\.png has no transparency"):
        RealOccluder(str(opaque))
    with pytest.raises(DataError, match="does not exist"):
        RealOccluder(str(tmp_path / "missing"))
    clear = tmp_path / "clear"
    clear.mkdir()
    bgra[..., 3] = 0
    bgra[0, 0, 3] = 0
    cv2.imwrite(str(clear / "empty.png"), bgra)
    with pytest.raises(DataError, match="fully transparent"):
        RealOccluder(str(clear))
    with pytest.raises(ValueError, match="matting must be"):
        RealOccluder(str(opaque), matting="green")


def _write_anchor_cutout(folder: Path, anchors: str | None = None) -> np.ndarray:
    """A 5× enlarged copy of the face targets as an RGBA polygon (a, c, f, e, d) with its
    six anchors, and a masks.cfg (``anchors`` overrides the cfg's anchor lines)."""
    points = (mask_targets(face_landmarks(112)) - (10, 50)) * 5
    img = np.zeros((400, 500, 4), np.uint8)
    outline = points[[0, 2, 5, 4, 3]].round().astype(np.int32)
    cv2.fillPoly(img, [outline], (30, 160, 60, 255))
    cv2.imwrite(str(folder / "shape.webp"), img, [cv2.IMWRITE_WEBP_QUALITY, 101])
    if anchors is None:
        anchors = "\n".join(f"mask_{k}: {x:.2f}, {y:.2f}" for k, (x, y) in zip("abcdef", points))
    (folder / "masks.cfg").write_text(f"[shape]\ntemplate: shape.webp\n{anchors}\n\n[empty]\n")
    return points


def test_anchors_map_onto_face_targets(real_face: np.ndarray, tmp_path: Path) -> None:
    _write_anchor_cutout(tmp_path)
    occ = RealOccluder(str(tmp_path), scale_jitter=0, shift_jitter=0)
    result = occ.occlude(real_face, item_rng(0, 0, "first"))
    assert result.record["anchors_used"] is True and result.record["file"] == "shape.webp"
    targets = mask_targets(face_landmarks(112))
    x1, y1, x2, y2 = result.record["bbox"]
    assert abs(x1 - targets[:, 0].min()) <= 2 and abs(x2 - targets[:, 0].max()) <= 2  # ±1 px of blending
    assert abs(y1 - targets[:, 1].min()) <= 2 and abs(y2 - targets[:, 1].max()) <= 2
    # the targets: nose bridge above the nose tip, below the eyes; chin below the mouth
    lm = face_landmarks(112)
    assert lm[0, 1] < targets[1, 1] < lm[2, 1] and targets[4, 1] > lm[3, 1]
    assert targets[0, 0] < lm[3, 0] and targets[2, 0] > lm[4, 0]
    # at 224 the same shape lands on the doubled targets
    big = cv2.resize(real_face, (224, 224))
    x1, y1, x2, y2 = occ.occlude(big, item_rng(0, 0, "first")).record["bbox"]
    assert abs(x1 - 2 * targets[:, 0].min()) <= 2 and abs(y2 - 2 * targets[:, 1].max()) <= 2


def test_masks_cfg_errors_name_the_section(tmp_path: Path) -> None:
    _write_anchor_cutout(tmp_path, "mask_a: 20, 20\nmask_b: 200, 20")
    with pytest.raises(DataError, match=r"\[shape\]: anchors mask_c, mask_d, mask_e, mask_f missing"):
        RealOccluder(str(tmp_path))
    _write_anchor_cutout(
        tmp_path,
        "mask_a: 20\nmask_b: 200, 20\nmask_c: 380, 20\nmask_d: 20, 200\nmask_e: 200, 280\nmask_f: 380, 200",
    )
    with pytest.raises(DataError, match=r"\[shape\] mask_a = '20': expected 'x, y'"):
        RealOccluder(str(tmp_path))


def test_real_params_and_registry_options(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.jpg"), _blob_image())
    occ = OCCLUDERS.create(f"real:{tmp_path}:matting=white,scale_jitter=0.1,region=mouth")
    params = occ.params()
    assert params["occluder"] == portable_spec(f"real:{tmp_path}") and params["region"] == "mouth"
    assert str(tmp_path) not in json.dumps(params)
    assert params["scale_jitter"] == 0.1 and params["files"] == ["a.jpg"] and len(params["digest"]) == 16
    cv2.imwrite(str(tmp_path / "a.jpg"), _blob_image(size=(180, 300)))
    assert RealOccluder(str(tmp_path), matting="white", region="mouth").params()["digest"] != params["digest"]
