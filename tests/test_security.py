"""Security-grade rows: frozen operating points, recovery, intervals, and the self-grading guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recogbench.config import RunConfig
from recogbench.inpaint import Inpainter
from recogbench.pipeline import run, run_all
from recogbench.registry import INPAINTERS
from recogbench.verifiers.onnx import sface_model_path
from recogbench.verifiers.base import file_digest


class GuidedCopy(Inpainter):
    """Test inpainter guided by an identity model: pastes the reference face into the hole."""

    name = "guided-copy"
    needs_identity = True

    def __init__(self, *, identity_model: str = "", device: str = "auto") -> None:
        super().__init__(device=device)
        self.identity_model_digest = file_digest(identity_model) if identity_model else None

    def _inpaint(self, images, masks, *, identity, clean):
        return identity


@pytest.fixture
def guided():
    INPAINTERS.register("guided-copy", GuidedCopy, replace=True)
    yield
    INPAINTERS._targets.pop("guided-copy", None)


def cfg(pack: Path, out: Path, **kw) -> RunConfig:
    return RunConfig(protocol="bin", data=str(pack), out=str(out), progress=False, device="cpu", **kw)


def test_guard_refuses_self_grading_and_records_both_models(guided, tiny_pack: Path, tmp_path: Path) -> None:
    own = str(sface_model_path())
    with pytest.raises(ValueError, match="graded by the model that steered it"):
        run(cfg(tiny_pack, tmp_path, occlusion="region:twoeyes", inpainter=f"guided-copy:identity_model={own}"))
    assert not (tmp_path / "leaderboard.csv").exists()
    forced = run(cfg(tiny_pack, tmp_path, occlusion="region:twoeyes", inpainter=f"guided-copy:identity_model={own}",
                     allow_self_grading=True, bootstrap=0))
    digest = file_digest(own)[:16]
    assert forced.row["verifier_model"] == digest and forced.row["inpainter_identity_model"] == digest
    other = tmp_path / "other.onnx"
    other.write_bytes(b"another identity model")
    ok = run(cfg(tiny_pack, tmp_path, occlusion="region:twoeyes", inpainter=f"guided-copy:identity_model={other}", bootstrap=0))
    assert ok.row["inpainter_identity_model"] == file_digest(other)[:16] != ok.row["verifier_model"]


def test_identity_guided_restoration_inflates_impostor_matches(guided, tiny_pack: Path, tmp_path: Path) -> None:
    """Guiding the probe's restoration with the enrolled face (the pair's first image) pushes
    impostor scores up: the frozen-threshold FMR must show it."""
    rows = {r.row["inpainter"]: r.row for r in run_all(cfg(tiny_pack, tmp_path, occlusion="region:up_face",
                                                        inpainter="none+guided-copy", bootstrap=0))}
    guided_row = rows["guided-copy"]
    assert guided_row["mean_impostor"] > rows["none"]["mean_impostor"]
    assert guided_row["fmr_change@best_acc"] > 0


def test_rows_carry_recovery_frozen_points_and_intervals(tiny_pack: Path, tmp_path: Path) -> None:
    results = run_all(cfg(tiny_pack, tmp_path, occlusion="region:up_face", inpainter="none+oracle", bootstrap=200))
    rows = {r.row["inpainter"]: r.row for r in results}
    none, oracle = rows["none"], rows["oracle"]
    assert none["recovery_gap"] == pytest.approx(0.0) and oracle["recovery_gap"] == pytest.approx(1.0)
    assert none["accuracy_clean"] == oracle["accuracy_clean"] == oracle["accuracy_mean"]
    assert oracle["fmr_change@best_acc"] == 0 and oracle["fnmr_change@best_acc"] == 0
    assert none["fnmr@best_acc"] >= oracle["fnmr@best_acc"]
    assert none["accuracy_ci_low"] <= none["accuracy_mean"] <= none["accuracy_ci_high"]
    again = run(cfg(tiny_pack, tmp_path / "b", occlusion="region:up_face", bootstrap=200))
    assert (again.row["accuracy_ci_low"], again.row["accuracy_ci_high"]) == (none["accuracy_ci_low"], none["accuracy_ci_high"])
    scores = pd.read_csv(results[0].run_dir / "scores.csv")
    assert {"score_clean", "score_occluded"} <= set(scores.columns)
    with np.load(results[0].run_dir / "samples.npz") as z:
        assert z["clean"].shape[1:] == (112, 112, 3) and len(z["pairs"]) == len(z["restored"]) == 8
