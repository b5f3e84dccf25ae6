"""Contract tests over every registered inpainter, and a third-party plugin installed for real."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from recogbench.registry import INPAINTERS

from .conftest import face_batch


def make_inpainter(name: str, request):
    if name == "pconv-gan":
        return INPAINTERS.create(name, checkpoint=str(request.getfixturevalue("tiny_pconv_checkpoint")), device="cpu")
    if name == "ifacenet":
        return INPAINTERS.create(name, checkpoint=str(request.getfixturevalue("ifacenet_checkpoint")), device="cpu")
    if name == "unet-gan":  # masked mode: composited like every inpainter (blind mode returns the whole face)
        return INPAINTERS.create(name, checkpoint=str(request.getfixturevalue("tiny_unet_checkpoint")), device="cpu")
    if name == "id-inpainter":
        paths = request.getfixturevalue("id_inpainter_checkpoints")
        return INPAINTERS.create(name, ca=str(paths["ca"]), fusor=str(paths["fusor"]), device="cpu")
    return INPAINTERS.create(name, device="cpu")


def holes(n: int, seed: int = 0, size: int = 112) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    m = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        x, y = rng.integers(0, size - 40, size=2)
        m[i, 0, y : y + 40, x : x + 40] = 1
    return torch.from_numpy(m)


@pytest.mark.parametrize("name", INPAINTERS.names())
def test_contract(name: str, request) -> None:
    inp = make_inpainter(name, request)
    clean = face_batch(4, seed=2)
    masks = holes(4)
    occluded = clean * (1 - masks)
    out = inp.inpaint(occluded, masks, clean=clean)
    assert out.shape == clean.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    visible = masks.expand_as(out) == 0
    assert torch.equal(out[visible], occluded[visible])  # visible pixels never change
    assert torch.equal(out, inp.inpaint(occluded, masks, clean=clean))  # deterministic
    assert inp.params()["inpainter"] == name
    if name not in ("none",):
        assert not torch.equal(out, occluded)  # it fills the holes with something
    # works at another resolution too (the harness resizes to the native size and back)
    big = torch.nn.functional.interpolate(clean, size=(160, 160), mode="bilinear", align_corners=False).clamp(0, 1)
    bm = holes(4, size=160)
    assert inp.inpaint(big * (1 - bm), bm, clean=big).shape == big.shape


def test_oracle_and_fill_values() -> None:
    clean = face_batch(2, seed=4)
    masks = holes(2, seed=1)
    occluded = clean * (1 - masks)
    assert torch.equal(INPAINTERS.create("oracle").inpaint(occluded, masks, clean=clean), clean)
    filled = INPAINTERS.create("fill").inpaint(occluded, masks)
    visible = (1 - masks)
    mean = (clean * visible).sum((2, 3)) / visible.sum((2, 3))
    hole_vals = filled[0, :, masks[0, 0] == 1]
    torch.testing.assert_close(hole_vals, mean[0][:, None].expand_as(hole_vals))
    with pytest.raises(ValueError, match="needs the clean images"):
        INPAINTERS.create("oracle").inpaint(occluded, masks)


def test_telea_beats_black_holes_on_smooth_faces() -> None:
    clean = face_batch(4, seed=6)
    masks = holes(4, seed=3)
    occluded = clean * (1 - masks)
    for name in ("telea", "navier_stokes", "fill"):
        out = INPAINTERS.create(name).inpaint(occluded, masks)
        assert (out - clean).abs().mean() < (occluded - clean).abs().mean()


def test_bad_masks_are_refused() -> None:
    x = face_batch(2)
    with pytest.raises(ValueError, match="N×1×H×W"):
        INPAINTERS.create("fill").inpaint(x, torch.zeros(2, 3, 112, 112))
    with pytest.raises(ValueError, match="binary"):
        INPAINTERS.create("fill").inpaint(x, torch.full((2, 1, 112, 112), 0.5))


PLUGIN = '''
import torch
from recogbench.inpaint import Inpainter


class GrayInpainter(Inpainter):
    """Third-party test inpainter: mid-gray holes."""

    name = "gray-plugin"

    def _inpaint(self, images, masks, *, identity, clean):
        return torch.full_like(images, 0.5)
'''


def test_third_party_inpainter_via_entry_point(tmp_path: Path, tiny_pack: Path) -> None:
    """A plugin package, pip-installed into a folder, is found, listed and used by `run`."""
    pkg = tmp_path / "pkg"
    (pkg / "gray_plugin").mkdir(parents=True)
    (pkg / "gray_plugin" / "__init__.py").write_text(PLUGIN)
    (pkg / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "gray-plugin"
        version = "0.1"
        [project.entry-points."recogbench.inpainters"]
        gray-plugin = "gray_plugin:GrayInpainter"
    '''))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(pkg)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    listed = subprocess.run([sys.executable, "-m", "recogbench", "ls", "inpainters"], env=env,
                            capture_output=True, text=True, check=True)
    assert "gray-plugin" in listed.stdout and "Third-party test inpainter" in listed.stdout
    out = tmp_path / "results"
    ran = subprocess.run([sys.executable, "-m", "recogbench", "run", "bin", "--data", str(tiny_pack), "--out", str(out),
                          "--occlusion", "region:twoeyes", "--inpainter", "gray-plugin", "--quiet", "--device", "cpu"],
                         env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    import pandas as pd

    assert pd.read_csv(out / "leaderboard.csv")["inpainter"].tolist() == ["gray-plugin"]


def test_inpaint_folder_cli(tmp_path: Path) -> None:
    import cv2
    from typer.testing import CliRunner

    from recogbench.cli import app

    from .conftest import smooth_faces

    images, masks, out = tmp_path / "img", tmp_path / "mask", tmp_path / "out"
    images.mkdir(), masks.mkdir()
    faces = smooth_faces(3, seed=8)
    m = (holes(3, seed=2)[:, 0].numpy() * 255).astype(np.uint8)
    for i in range(3):
        cv2.imwrite(str(images / f"f{i}.jpg"), cv2.cvtColor(faces[i], cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(masks / f"f{i}.png"), m[i])
    r = CliRunner().invoke(app, ["inpaint", "--inpainter", "telea", "--images", str(images), "--masks", str(masks),
                                 "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    restored = cv2.imread(str(out / "f0.png"))
    original = cv2.imread(str(images / "f0.jpg"))
    assert restored.shape == original.shape
    np.testing.assert_array_equal(restored[m[0] == 0], original[m[0] == 0])
    # a missing mask is named, and nothing is written
    (images / "f9.jpg").write_bytes((images / "f0.jpg").read_bytes())
    r = CliRunner().invoke(app, ["inpaint", "--inpainter", "telea", "--images", str(images), "--masks", str(masks),
                                 "--out", str(tmp_path / "out2")])
    assert r.exit_code == 2 and "f9.jpg: no mask" in r.output
    assert not (tmp_path / "out2").exists()
