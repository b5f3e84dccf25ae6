"""Training learned inpainters (recogbench.train) and the restoration quality metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from recogbench.checkpoint import load_state
from recogbench.quality import l1, level_errors, mse, psnr, ssim
from recogbench.train import TrainConfig, train

from .conftest import SHARED_DATA, write_pack

OCCLUSION = "random_block+random_part"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- quality


def test_quality_metrics_match_skimage() -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 48, 41, generator=gen, dtype=torch.float64)
    y = (x + 0.15 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    hwc = lambda t, i: t[i].permute(1, 2, 0).numpy()  # noqa: E731
    ref_ssim = [structural_similarity(hwc(x, i), hwc(y, i), gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1.0, channel_axis=-1) for i in range(3)]
    np.testing.assert_allclose(ssim(x, y).numpy(), ref_ssim, rtol=1e-10)
    np.testing.assert_allclose(ssim(x.float(), y.float()).numpy(), ref_ssim, atol=1e-5)
    ref_psnr = [peak_signal_noise_ratio(x[i].numpy(), y[i].numpy(), data_range=1.0) for i in range(3)]
    np.testing.assert_allclose(psnr(x, y).numpy(), ref_psnr, rtol=1e-10)
    np.testing.assert_allclose(l1(x, y).numpy(), (x - y).abs().mean((1, 2, 3)).numpy())
    # masks restrict the average to the hole; an empty mask gives NaN
    mask = torch.zeros(3, 1, 48, 41, dtype=torch.float64)
    mask[0, :, 10:30, 5:25] = 1
    mask[1, :, :, :20] = 1
    hole = lambda t, i: t[i][:, mask[i, 0] == 1].numpy()  # noqa: E731
    for i in range(2):
        assert l1(x, y, mask)[i].item() == pytest.approx(np.abs(hole(x, i) - hole(y, i)).mean(), rel=1e-12)
        assert psnr(x, y, mask)[i].item() == pytest.approx(peak_signal_noise_ratio(hole(x, i), hole(y, i), data_range=1.0), rel=1e-12)
        _, smap = structural_similarity(hwc(x, i), hwc(y, i), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1.0, channel_axis=-1, full=True)
        inner = np.zeros(mask.shape[2:], bool)
        inner[5:-5, 5:-5] = True  # skimage's mean covers the positions whose window fits
        assert ssim(x, y, mask)[i].item() == pytest.approx(smap[inner & (mask[i, 0].numpy() == 1)].mean(), rel=1e-10)
    assert torch.isnan(psnr(x, y, mask)[2]) and torch.isnan(ssim(x, y, mask)[2])
    assert psnr(x, x)[0].item() == float("inf")
    with pytest.raises(ValueError, match="smaller than the 11×11"):
        ssim(x[..., :8, :8], y[..., :8, :8])


def test_level_errors_are_exact_on_8bit_faces() -> None:
    """The run's pixel errors: exact sums of 8-bit level differences, so a face's numbers do
    not depend on its batch; they agree with the float metrics to float32 rounding."""
    rng = np.random.default_rng(1)
    a8, b8 = rng.integers(0, 256, (2, 5, 3, 40, 36))
    b8[4] = np.clip(a8[4] + rng.integers(-1, 2, a8[4].shape), 0, 255)  # within one level everywhere
    x, y = (torch.from_numpy(v.astype(np.float32) / np.float32(255)) for v in (a8, b8))
    mask = torch.from_numpy(rng.random((5, 1, 40, 36)) < 0.3).float()
    mask[3] = 0
    (l1_all, mse_all, close_all), (l1_hole, mse_hole, close_hole) = level_errors(x, y, (None, mask))
    d = (a8 - b8).astype(np.int64)
    for i in range(5):
        m = mask[i, 0].numpy().astype(bool)
        assert l1_all[i].item() == np.abs(d[i]).sum() / (255.0 * d[i].size)
        assert mse_all[i].item() == (d[i] ** 2).sum() / (255.0**2 * d[i].size)
        if m.any():
            assert l1_hole[i].item() == np.abs(d[i][:, m]).sum() / (255.0 * 3 * m.sum())
            assert close_hole[i].item() == (np.abs(d[i][:, m]) <= 1).all(axis=0).mean()
    assert torch.isnan(l1_hole[3]) and torch.isnan(mse_hole[3]) and torch.isnan(close_hole[3])
    assert close_all[4].item() == 1.0 and close_all[0].item() < 0.01
    torch.testing.assert_close(level_errors(x[1:4], y[1:4], (mask[1:4],))[0][1], mse_hole[1:4],  # any batch
                               rtol=0, atol=0, equal_nan=True)
    np.testing.assert_allclose(l1_all.numpy(), l1(x, y).numpy(), rtol=1e-6)
    np.testing.assert_allclose(mse_hole.numpy()[[0, 1, 2, 4]], mse(x, y, mask).numpy()[[0, 1, 2, 4]], rtol=1e-6)


# ----------------------------------------------------------------------------- real faces


def _aligned_real_faces() -> list[np.ndarray]:
    """Real aligned 112×112 faces: the deepface photos, else one insightface sample augmented."""
    from recogbench.align import FaceAligner

    aligner = FaceAligner()
    folder = SHARED_DATA / "deepface-pairs"
    if folder.is_dir():
        faces = []
        for path in sorted(folder.glob("*.jpg")):
            face = aligner.align(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)).face
            if face is not None:
                faces.append(face)
        if len(faces) >= 20:
            return faces
    try:
        import insightface
    except ImportError:
        pytest.skip("needs real faces: ../shared/data/deepface-pairs or insightface's sample images")
    sample = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
    if not sample.is_file():
        pytest.skip("needs real faces: ../shared/data/deepface-pairs or insightface's sample images")
    base = aligner.align(cv2.cvtColor(cv2.imread(str(sample)), cv2.COLOR_BGR2RGB)).face
    assert base is not None
    rng = np.random.default_rng(0)
    faces = []
    for _ in range(24):
        m = cv2.getRotationMatrix2D((56, 56), rng.uniform(-8, 8), rng.uniform(0.92, 1.08))
        m[:, 2] += rng.uniform(-4, 4, 2)
        face = cv2.warpAffine(base, m, (112, 112), borderMode=cv2.BORDER_REFLECT)
        face = np.clip(face * rng.uniform(0.8, 1.2, 3) + rng.uniform(-15, 15), 0, 255).astype(np.uint8)
        faces.append(face[:, ::-1] if rng.random() < 0.5 else face)
    return faces


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    """A folder of real aligned faces (PNG, in a subfolder) plus one broken file."""
    folder = tmp_path_factory.mktemp("faces")
    (folder / "sub").mkdir()
    for i, face in enumerate(_aligned_real_faces()[:24]):
        cv2.imwrite(str(folder / "sub" / f"face{i:02d}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def small(faces_dir: Path, out: Path, **kw) -> TrainConfig:
    base = dict(inpainter="pconv-gan", data=str(faces_dir), out=str(out), occlusion=OCCLUSION, aligned=True,
                steps=60, batch_size=4, base_channels=8, val_fraction=0.25, checkpoint_every=30, sample_every=30,
                device="cpu")
    return TrainConfig(**{**base, **kw})


def test_training_learns_writes_outputs_and_reloads(faces_dir: Path, tmp_path: Path) -> None:
    from inpainters.pconv_gan import PERCEPTUAL_DISABLED, PConvGAN

    out = tmp_path / "run"
    result = train(small(faces_dir, out))
    assert result.data["n_images"] == 25 and result.data["n_dropped"] == 1
    assert "broken.jpg" in result.data["dropped_examples"][0]
    assert (result.data["n_train"], result.data["n_val"]) == (18, 6)
    assert result.step == 60 and result.start_step == 0 and [r["step"] for r in result.history] == list(range(61))

    # it learns: hole L1 on the fixed validation batch drops, PSNR rises
    first, last = result.history[0], result.history[-1]
    assert last["val_hole_l1"] < 0.85 * first["val_hole_l1"], (first, last)
    assert last["val_psnr"] > first["val_psnr"]
    assert result.val == {k: last[k] for k in ("val_psnr", "val_ssim", "val_hole_l1", "val_hole_psnr")}

    # checkpoints, optimiser state (weights-only loadable), log, samples, metadata
    for name in ("step_000030.safetensors", "step_000060.safetensors", "last.safetensors",
                 "discriminators_last.safetensors", "optim_last.pt", "train_meta.json"):
        assert (out / name).is_file(), name
    opt = torch.load(out / "optim_last.pt", weights_only=True)
    assert opt["step"] == 60 and set(opt["optimizers"]) >= {"G", "D_global", "D_local"}
    _, meta = load_state(out / "last.safetensors")
    assert meta["step"] == 60 and meta["config"]["base_channels"] == 8 and meta["config"]["occlusion"] == OCCLUSION
    assert meta["perceptual"] == PERCEPTUAL_DISABLED and meta["data"]["n_dropped"] == 1
    assert meta["architecture"]["base_channels"] == 8
    assert json.loads((out / "train_meta.json").read_text())["data"]["n_dropped"] == 1
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(61))
    assert float(rows[5]["g_hole"]) == result.history[5]["g_hole"] and rows[5]["val_psnr"] == "" and rows[5]["g_perceptual"] == ""
    assert rows[30]["val_ssim"] != "" and rows[0]["g_total"] == ""
    for step in (0, 30, 60):
        grid = cv2.imread(str(out / "samples" / f"step_{step:06d}.png"))
        assert grid.shape == (3 * 112, 6 * 112, 3)

    # the checkpoint reproduces the training-time restoration exactly
    inp = PConvGAN(str(out / "last.safetensors"), device="cpu")
    s = result.samples
    assert torch.equal(inp.inpaint(s["occluded"], s["hole"]), s["restored"])
    assert torch.equal(s["restored"][s["hole"].expand_as(s["clean"]) == 0], s["clean"][s["hole"].expand_as(s["clean"]) == 0])
    earlier = PConvGAN(str(out / "step_000030.safetensors"), device="cpu")
    assert not torch.equal(earlier.inpaint(s["occluded"], s["hole"]), s["restored"])
    assert inp.params()["checkpoint_sha256"] != earlier.params()["checkpoint_sha256"]


class _Stop(KeyboardInterrupt):
    pass


def test_resume_after_interruption_matches_uninterrupted_run(faces_dir: Path, tmp_path: Path) -> None:
    kw = dict(steps=16, checkpoint_every=8, sample_every=4)
    straight = train(small(faces_dir, tmp_path / "a", **kw))

    def stop_at_11(step: int, row: dict) -> None:
        if step == 11:
            raise _Stop

    with pytest.raises(_Stop):
        train(small(faces_dir, tmp_path / "b", **kw), on_step=stop_at_11)
    resumed = train(small(faces_dir, tmp_path / "b", **kw))
    assert resumed.start_step == 8 and [r["step"] for r in resumed.history] == list(range(9, 17))
    keys = [k for k in straight.history[-1] if k != "elapsed_s"]
    for a, b in zip(straight.history[9:], resumed.history):
        assert {k: a[k] for k in keys} == pytest.approx({k: b[k] for k in keys}, rel=0, abs=0, nan_ok=True)
    ga, _ = load_state(tmp_path / "a" / "last.safetensors")
    gb, _ = load_state(tmp_path / "b" / "last.safetensors")
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    with open(tmp_path / "b" / "log.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(17))  # steps 9-11 logged once

    # a finished run is not re-run; a resumed run with other settings is refused
    again = train(small(faces_dir, tmp_path / "b", **kw))
    assert again.start_step == 16 and again.history == []
    with pytest.raises(ValueError, match=r"cannot resume .*lr: 0.0002 → 0.001"):
        train(small(faces_dir, tmp_path / "b", **{**kw, "lr": 1e-3}))


def test_train_from_bin_pack_without_validation(faces_dir: Path, tmp_path: Path) -> None:
    faces = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted((faces_dir / "sub").glob("*.png"))][:20])
    pack = write_pack(tmp_path / "faces.bin", faces, [True, False] * 5)
    result = train(small(pack, tmp_path / "run", aligned=False, steps=2, base_channels=4, val_fraction=0.0))
    assert result.data["n_images"] == 20 and result.data["n_val"] == 0 and result.val == {}
    assert (tmp_path / "run" / "last.safetensors").is_file() and result.samples["restored"].shape == (8, 3, 112, 112)


def test_train_refuses_untrainable_and_bad_settings(faces_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'none' is not trainable"):
        train(small(faces_dir, tmp_path, inpainter="none"))
    with pytest.raises(ValueError, match="batch_size=0"):
        small(faces_dir, tmp_path, batch_size=0)


def test_to_tensor_gives_contiguous_nchw_and_round_trips() -> None:
    # A permuted view would carry channels-last strides into every convolution downstream (and
    # oneDNN's AVX-512 1×1 stride-2 backward-weights kernel corrupts the heap on those).
    from recogbench.tensors import to_tensor, to_uint8

    faces = np.random.default_rng(0).integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    t = to_tensor(faces)
    assert t.shape == (2, 3, 8, 6) and t.is_contiguous() and not t.is_contiguous(memory_format=torch.channels_last)
    assert np.array_equal(to_uint8(t), faces)


def test_training_logs_a_progress_line_every_n_steps(tmp_path: Path, caplog) -> None:
    import logging

    from recogbench.train import TrainConfig, train

    faces = tmp_path / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(faces / f"{i}.png"), rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))
    with caplog.at_level(logging.INFO, logger="recogbench.train"):
        train(TrainConfig("pconv-gan", data=str(faces), out=str(tmp_path / "run"), aligned=True, size=32,
                          base_channels=4, batch_size=2, steps=5, log_every=2, checkpoint_every=100,
                          sample_every=100, val_fraction=0, device="cpu", occlusion="random_block"), progress=False)
    lines = [r.getMessage() for r in caplog.records if "s/step" in r.getMessage()]
    assert [ln.split(":")[0] for ln in lines] == ["step 2/5", "step 4/5", "step 5/5"], lines
    assert "(mean of 2 steps)" in lines[0] and "(mean of 1 steps)" in lines[2] and "left" in lines[0]
    with pytest.raises(ValueError, match="log_every=0"):
        TrainConfig("pconv-gan", data=str(faces), out=str(tmp_path / "x"), log_every=0)
