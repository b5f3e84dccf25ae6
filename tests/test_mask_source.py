"""``--mask-source``: inpainters restored through a segmenter's predicted masks, scored against
the true masks, and real occluded photos (no true mask) restored the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recogbench import report
from recogbench.config import RunConfig
from recogbench.pipeline import MaskSource, conditions, run_all


@pytest.fixture(scope="module")
def tiny_segmenter(tmp_path_factory) -> Path:
    from recogbench.segmentation.soclnet import SOCLNet, save_segmenter

    torch.manual_seed(0)
    model = SOCLNet(trunk="tiny", aspp_channels=16).eval()
    return save_segmenter(tmp_path_factory.mktemp("seg") / "soclnet.safetensors", model)


def test_oracle_is_the_true_mask_and_a_segmenter_is_scored_against_it(tiny_segmenter: Path) -> None:
    true = torch.zeros(2, 1, 112, 112)
    true[:, :, 30:70, 18:98] = 1
    images = torch.rand(2, 3, 112, 112)
    oracle = MaskSource("oracle", "cpu", 8)
    assert oracle(images, true, has_truth=True) is true and oracle.summary() == {"mask_source": "oracle"}

    seg = MaskSource(f"soclnet:checkpoint={tiny_segmenter}", "cpu", 8)
    pred = seg(images, true, has_truth=True)
    assert pred.shape == true.shape and set(pred.unique().tolist()) <= {0.0, 1.0}
    p, t = pred.bool(), true.bool()
    row = seg.summary()
    assert row["mask_iou"] == pytest.approx(((p & t).sum() / (p | t).sum()).item() if (p | t).any() else 1.0)
    assert row["mask_pixel_accuracy"] == pytest.approx((p == t).float().mean().item())
    assert row["mask_source"] == "soclnet:checkpoint=soclnet.safetensors"  # no absolute path in rows
    photos = MaskSource(f"soclnet:checkpoint={tiny_segmenter}", "cpu", 8)
    photos(images, torch.zeros_like(true), has_truth=False)
    assert photos.summary()["mask_iou"] is None and photos.summary()["mask_pixel_accuracy"] is None
    with pytest.raises(ValueError, match="needs a trained checkpoint"):
        MaskSource("soclnet", "cpu", 8)
    with pytest.raises(KeyError, match="unknown segmenter 'socl'.*did you mean 'soclnet'"):
        MaskSource("socl:checkpoint=x", "cpu", 8)


def test_runs_with_predicted_masks_sit_beside_oracle_rows(tiny_segmenter: Path, tiny_pack: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = RunConfig(protocol="bin", data=str(tiny_pack), out=str(out), device="cpu", progress=False,
                     bootstrap=0, occlusion="sunglasses", inpainter="telea")
    oracle = run_all(base)[0].row
    seg_spec = f"soclnet:checkpoint={tiny_segmenter}"
    predicted = run_all(RunConfig(**{**base.__dict__, "mask_source": seg_spec}))[0].row
    assert oracle["mask_source"] == "oracle" and "mask_iou" not in oracle
    assert predicted["mask_source"].startswith("soclnet") and 0 <= predicted["mask_iou"] <= 1
    assert 0 <= predicted["mask_pixel_accuracy"] <= 1
    assert oracle["config_hash"] != predicted["config_hash"]
    # the manifest (true occlusions) is the same; only the masks the inpainter got differ
    assert oracle["manifest_hash"] == predicted["manifest_hash"]
    df = report.ordered(report.collect(out))
    labels = [report.condition_label(r) for _, r in df.iterrows()]
    assert labels[-2:] == ["sunglasses · telea", "sunglasses · telea · mask=soclnet:checkpoint=soclnet.safetensors"]


def test_real_occluded_photos_without_a_true_mask(tiny_segmenter: Path, tiny_pack: Path, tmp_path: Path) -> None:
    """Occlusion none + a segmenter: the photos as they are, restored through predicted masks;
    every inpainter is crossed in, and the IoU columns are empty (no true mask), not zero."""
    config = RunConfig(protocol="bin", data=str(tiny_pack), out=str(tmp_path / "out"), device="cpu", progress=False,
                       bootstrap=0, occlusion="none", inpainter="none+telea",
                       mask_source=f"soclnet:checkpoint={tiny_segmenter}")
    assert [c.inpainter for c, _ in conditions(config)] == ["none", "telea"]
    rows = [r.row for r in run_all(config)]
    for row in rows:
        assert row["mask_iou"] is None and row["mask_pixel_accuracy"] is None
    lb = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert lb["mask_iou"].isna().all()
    assert np.isfinite(lb["accuracy_mean"]).all()


def test_segment_command_scores_per_kind_and_writes_csv(tiny_segmenter: Path, tiny_pack: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recogbench.cli import app

    out = tmp_path / "seg.csv"
    result = CliRunner().invoke(app, ["segment", "bin", "--data", str(tiny_pack), "--checkpoint", str(tiny_segmenter),
                                      "--occlusion", "sunglasses+hand", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table["occlusion"]) == ["sunglasses", "hand", "all"]
    assert ((table["pixel_accuracy"] >= 0) & (table["pixel_accuracy"] <= 1)).all()
    missing = CliRunner().invoke(app, ["segment", "bin", "--data", str(tiny_pack), "--checkpoint",
                                       str(tmp_path / "nope.safetensors"), "--device", "cpu"])
    assert missing.exit_code == 2 and "nope.safetensors" in missing.output
