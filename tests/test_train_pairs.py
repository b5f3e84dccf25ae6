"""Training from stored pairs (recogbench.stored_pairs, ``recogbench train ... --pairs DIR``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from recogbench.data import DataError
from recogbench.stored_pairs import DIFF_THRESHOLD, derive_hole, detect_layout, find_pairs, load_pairs
from recogbench.train import TrainConfig, _PairBatches, train

from .conftest import smooth_faces
from .test_train import _aligned_real_faces

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 64


def _write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
    assert cv2.imwrite(str(path), img, params)
    return path


def _occlude(face: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A flat-coloured rectangle over part of the face: (occluded, hole bool)."""
    s = face.shape[0]
    h, w = rng.integers(s // 4, s // 2, 2)
    y, x = rng.integers(0, s - h), rng.integers(0, s - w)
    hole = np.zeros(face.shape[:2], bool)
    hole[y : y + h, x : x + w] = True
    occ = face.copy()
    occ[hole] = rng.integers(0, 256, 3)
    return occ, hole


@pytest.fixture(scope="module")
def real_faces() -> np.ndarray:
    return np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in _aligned_real_faces()[:24]])


def make_occ_orig(root: Path, faces: np.ndarray, *, masks: bool = True, seed: int = 0) -> tuple[Path, np.ndarray]:
    """``Occ_imgs/`` (JPEG), ``Orig_imgs/`` (PNG), ``Segmentations/`` (PNG 0/255); returns (root, holes)."""
    rng = np.random.default_rng(seed)
    holes = []
    for i, face in enumerate(faces):
        occ, hole = _occlude(face, rng)
        sub = "a" if i % 2 else ""
        _write(root / "Orig_imgs" / sub / f"{i:03d}.png", face)
        _write(root / "Occ_imgs" / sub / f"{i:03d}.png", occ)
        if masks:
            _write(root / "Segmentations" / sub / f"{i:03d}.png", hole.astype(np.uint8) * 255)
        holes.append(hole)
    return root, np.stack(holes)


def make_maskedface_net(root: Path, faces: np.ndarray, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    """FFHQ-style ``ffhq/00000/00000.png`` and MaskedFace-Net ``CMFD/00000_Mask.jpg``, ``IMFD/…_Mask_Mouth_Chin.jpg``
    (face 1 also ``_Mask_Chin``); the last FFHQ face has no masked version. Returns (root, true hole by key)."""
    rng = np.random.default_rng(seed)
    truth = {}
    for i, face in enumerate(faces):
        _write(root / "ffhq" / "00000" / f"{i:05d}.png", face)
        if i == len(faces) - 1:
            continue
        names = [("CMFD", f"{i:05d}_Mask")] if i % 2 == 0 else [("IMFD", f"{i:05d}_Mask_Mouth_Chin")]
        if i == 1:
            names.append(("IMFD", f"{i:05d}_Mask_Chin"))
        for folder, stem in names:
            occ, hole = _occlude(face, rng)
            _write(root / folder / f"{stem}.jpg", occ)
            truth[f"{folder}/{stem}"] = hole
    return root, truth


# ---------------------------------------------------------------------------- discovery


def test_occ_orig_layout_loads_with_stored_masks(real_faces: np.ndarray, tmp_path: Path) -> None:
    root, holes = make_occ_orig(tmp_path / "p", real_faces[:6])
    assert detect_layout(root) == "occ-orig"
    layout, pairs = find_pairs(root)
    assert layout == "occ-orig" and [p.key for p in pairs] == ["000", "002", "004", "a/001", "a/003", "a/005"]
    assert all(p.mask is not None and p.occluded.stem == p.clean.stem == p.mask.stem for p in pairs)
    loaded = load_pairs(root, SIZE)
    order = [0, 2, 4, 1, 3, 5]
    assert np.array_equal(loaded.holes, holes[order]) and np.array_equal(loaded.clean, real_faces[:6][order])
    assert loaded.info["n_masks_stored"] == 6 and loaded.info["n_masks_derived"] == 0 and loaded.info["layout"] == "occ-orig"
    # resized to another training size: masks by area, images by area
    half = load_pairs(root, 32)
    assert half.clean.shape == (6, 32, 32, 3) and half.holes.shape == (6, 32, 32)
    assert abs(half.holes.mean() - holes.mean()) < 0.02


def test_masks_are_derived_from_the_difference_when_absent(real_faces: np.ndarray, tmp_path: Path) -> None:
    root, holes = make_occ_orig(tmp_path / "p", real_faces[:6], masks=False)
    loaded = load_pairs(root, SIZE)
    assert loaded.info["n_masks_derived"] == 6 and loaded.info["mask_threshold"] == DIFF_THRESHOLD
    truth = holes[[0, 2, 4, 1, 3, 5]]
    iou = (loaded.holes & truth).sum() / (loaded.holes | truth).sum()
    assert iou > 0.9, iou
    # the rule itself: any channel off by more than 0.1 of the range; isolated pixels dropped
    a = np.zeros((16, 16, 3), np.uint8)
    b = a.copy()
    b[4:10, 4:10, 1] = 30  # 30 > 25.5 levels: a hole
    b[12, 12] = 200        # one isolated pixel: removed by the opening
    b[0:3, 12:15] = 20     # under the threshold
    hole = derive_hole(b, a)
    expect = np.zeros((16, 16), bool)
    expect[4:10, 4:10] = True
    assert np.array_equal(hole, expect)


def test_maskedface_net_layout(real_faces: np.ndarray, tmp_path: Path) -> None:
    root, truth = make_maskedface_net(tmp_path / "mfn", real_faces[:5])
    assert detect_layout(root) == "maskedface-net"
    layout, pairs = find_pairs(root)
    assert layout == "maskedface-net"
    assert [p.key for p in pairs] == ["CMFD/00000_Mask", "CMFD/00002_Mask", "IMFD/00001_Mask_Chin",
                                      "IMFD/00001_Mask_Mouth_Chin", "IMFD/00003_Mask_Mouth_Chin"]
    assert [p.clean.name for p in pairs] == ["00000.png", "00002.png", "00001.png", "00001.png", "00003.png"]
    assert all(p.mask is None for p in pairs)  # FFHQ face 00004 has no masked version: ignored
    loaded = load_pairs(root, SIZE)
    assert loaded.info["n_pairs"] == 5 and loaded.info["n_masks_derived"] == 5
    for k, p in enumerate(pairs):
        # JPEG noise stays under the threshold; its 4:2:0 chroma bleeds a saturated occluder's
        # colour one or two pixels outwards, so a derived hole may be that much larger, never smaller
        t, h = truth[p.key], loaded.holes[k]
        assert (t & ~h).sum() <= 0.05 * t.sum()
        assert not (h & ~cv2.dilate(t.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)).any()


# -------------------------------------------------------------------------------- errors


def test_missing_partners_are_all_named(real_faces: np.ndarray, tmp_path: Path) -> None:
    root, _ = make_occ_orig(tmp_path / "p", real_faces[:6])
    (root / "Orig_imgs" / "002.png").unlink()
    (root / "Occ_imgs" / "a" / "003.png").unlink()
    (root / "Segmentations" / "004.png").unlink()
    with pytest.raises(DataError) as err:
        find_pairs(root)
    text = str(err.value)
    assert "4 problem(s)" in text
    assert f"{root / 'Occ_imgs' / '002.png'}: no clean partner Orig_imgs/002.*" in text
    assert f"{root / 'Orig_imgs' / 'a' / '003.png'}: no occluded partner Occ_imgs/a/003.*" in text
    assert f"{root / 'Segmentations' / 'a' / '003.png'}: mask without an occluded image" in text
    assert f"{root / 'Occ_imgs' / '004.png'}: no mask Segmentations/004.*" in text

    mfn, _ = make_maskedface_net(tmp_path / "mfn", real_faces[:3])
    (mfn / "ffhq" / "00000" / "00001.png").unlink()
    with pytest.raises(DataError, match=r"IMFD/00001_Mask_Chin\.jpg: no clean partner 00001\.\*.*"
                                        r"IMFD/00001_Mask_Mouth_Chin\.jpg: no clean partner 00001"):
        find_pairs(mfn)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no stored pairs found: expected Occ_imgs/ \+ Orig_imgs/"):
        find_pairs(tmp_path / "empty")
    (tmp_path / "half" / "Occ_imgs").mkdir(parents=True)
    with pytest.raises(DataError, match="has Occ_imgs/ or Orig_imgs/ but not Orig_imgs/"):
        find_pairs(tmp_path / "half")


def test_size_mismatch_undecodable_and_bad_masks_are_named(real_faces: np.ndarray, tmp_path: Path) -> None:
    root, _ = make_occ_orig(tmp_path / "p", real_faces[:6])
    _write(root / "Orig_imgs" / "000.png", cv2.resize(real_faces[0], (48, 48)))
    (root / "Occ_imgs" / "002.png").write_bytes(b"<html>not an image</html>")
    _write(root / "Segmentations" / "004.png", np.ones((SIZE, SIZE), np.uint8))  # a 0/1 label map
    _write(root / "Orig_imgs" / "a" / "001.png", np.zeros((SIZE, SIZE + 8, 3), np.uint8))
    _write(root / "Occ_imgs" / "a" / "001.png", np.zeros((SIZE, SIZE + 8, 3), np.uint8))
    _write(root / "Segmentations" / "a" / "001.png", np.zeros((SIZE, SIZE + 8), np.uint8))
    with pytest.raises(DataError) as err:
        load_pairs(root, SIZE)
    text = str(err.value)
    assert "4 problem(s)" in text
    assert f"{root / 'Orig_imgs' / '000.png'} is 48x48 but its partner {root / 'Occ_imgs' / '000.png'} is 64x64" in text
    assert f"{root / 'Occ_imgs' / '002.png'}: not an image" in text
    assert f"{root / 'Segmentations' / '004.png'}: mask has values up to 1 but none above 127" in text
    assert f"{root / 'Occ_imgs' / 'a' / '001.png'}: 72x64 is not square" in text


def test_pairs_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data='faces' with pairs='p'"):
        TrainConfig("unet-gan", data="faces", out=str(tmp_path), pairs="p")
    with pytest.raises(ValueError, match=r"occlusion='everyday' with pairs='p'"):
        TrainConfig("unet-gan", data="", out=str(tmp_path), pairs="p", occlusion="everyday")
    with pytest.raises(ValueError, match="no training data"):
        TrainConfig("unet-gan", data="", out=str(tmp_path))
    cfg = TrainConfig("unet-gan", data="", out=str(tmp_path), pairs="p")
    assert cfg.occlusion is None and cfg.size == 112 and cfg.batch_size == 16


# ------------------------------------------------------------------------------ training


def test_pair_batches_flip_all_three_alike(real_faces: np.ndarray, tmp_path: Path) -> None:
    root, _ = make_occ_orig(tmp_path / "p", real_faces[:6])
    stored = load_pairs(root, SIZE)
    cfg = TrainConfig("unet-gan", data="", out=str(tmp_path), pairs=str(root), batch_size=6, size=SIZE)
    batches = _PairBatches(stored, np.arange(6), cfg)
    flipped = 0
    for step in (1, 2, 3):
        clean, occ, holes, choice = batches(step)
        idx = batches.indices(step)
        assert (choice == 0).all()
        for k, i in enumerate(idx):
            flip = not np.array_equal(clean[k], stored.clean[i])
            flipped += flip
            f = (lambda a: a[:, ::-1]) if flip else (lambda a: a)
            assert np.array_equal(clean[k], f(stored.clean[i])) and np.array_equal(occ[k], f(stored.occluded[i]))
            assert np.array_equal(holes[k], f(stored.holes[i]))
    assert 0 < flipped < 18
    # the data-parallel halves of a batch are exactly the one-process batch
    halves = [_PairBatches(stored, np.arange(6), cfg, part)(2) for part in (slice(0, 3), slice(3, 6))]
    for a, b in zip(batches(2), (np.concatenate(x) for x in zip(*halves))):
        assert np.array_equal(a, b)


def test_unet_gan_learns_from_stored_pairs_and_resumes(real_faces: np.ndarray, tmp_path: Path) -> None:
    root, _ = make_occ_orig(tmp_path / "p", real_faces)
    kw = dict(data="", pairs=str(root), size=SIZE, steps=80, batch_size=4, base_channels=8, val_fraction=0.25,
              checkpoint_every=40, sample_every=40, device="cpu")
    out = tmp_path / "run"
    result = train(TrainConfig("unet-gan:depth=4", out=str(out), **kw))
    assert result.data["layout"] == "occ-orig" and result.data["n_pairs"] == 24 and result.data["n_val"] == 6
    first, last = result.history[0], result.history[-1]
    assert last["val_hole_l1"] < 0.85 * first["val_hole_l1"], (first, last)
    # validation scores the stored held-out pairs: their holes are the stored masks
    s = result.samples
    assert s["hole"].sum() > 0 and torch.equal(s["restored"][s["hole"].expand_as(s["clean"]) == 0],
                                                s["occluded"][s["hole"].expand_as(s["clean"]) == 0])
    meta = json.loads((out / "train_meta.json").read_text())
    assert meta["occluders"] == [] and meta["config"]["pairs"] == str(root) and meta["data"]["n_masks_stored"] == 24
    again = train(TrainConfig("unet-gan:depth=4", out=str(out), **kw))
    assert again.start_step == 80 and again.history == []
    changed = root / "Orig_imgs" / "000.png"  # the data changed: no silent resume
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ValueError, match="training data changed"):
        train(TrainConfig("unet-gan:depth=4", out=str(out), **{**kw, "steps": 81}))


def test_pconv_gan_trains_on_stored_pairs(real_faces: np.ndarray, tmp_path: Path) -> None:
    root, _ = make_maskedface_net(tmp_path / "mfn", real_faces[:9])
    result = train(TrainConfig("pconv-gan", data="", pairs=str(root), out=str(tmp_path / "run"), size=SIZE, steps=2,
                               batch_size=2, base_channels=4, val_fraction=0.25, device="cpu"))
    assert result.step == 2 and result.data["layout"] == "maskedface-net" and result.data["n_masks_derived"] == 9  # 8 faces, one twice
    assert np.isfinite(result.val["val_hole_l1"])


def test_cli_train_blind_on_maskedface_net(tmp_path: Path) -> None:
    from recogbench.cli import app

    faces = smooth_faces(5, seed=4, size=SIZE)
    root, _ = make_maskedface_net(tmp_path / "mfn", faces)
    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "unet-gan:mode=blind,depth=4", "--pairs", str(root), "--out", str(out),
                            "--steps", "1", "--batch-size", "2", "--base-channels", "4", "--size", str(SIZE),
                            "--device", "cpu"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (out / "last.safetensors").is_file()
    r = runner.invoke(app, ["train", "unet-gan", "--pairs", str(root), "--data", str(root), "--out", str(out)])
    assert r.exit_code != 0 and "with pairs=" in r.output
    (root / "ffhq" / "00000" / "00002.png").unlink()
    r = runner.invoke(app, ["train", "unet-gan", "--pairs", str(root), "--out", str(tmp_path / "r2")])
    assert r.exit_code != 0 and "00002_Mask.jpg: no clean partner 00002" in r.output
