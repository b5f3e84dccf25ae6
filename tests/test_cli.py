"""The CLI end to end on tiny protocols (typer's runner, real library calls)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recogbench.cli import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result


def test_ls_lists_every_registry() -> None:
    out = invoke("ls").output
    for name in ("sface", "arcface", "oracle", "region:<name>", "twoeyes", "lfw", "cfp_fp", "agedb_30"):
        assert name in out
    assert invoke("ls", "verifiers").exit_code == 0
    assert invoke("ls", "nonsense").exit_code != 0


def test_run_convert_and_rerun(tiny_pack: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    r = invoke("run", "bin", "--data", str(tiny_pack), "--out", str(out), "--device", "cpu", "--quiet")
    assert r.exit_code == 0, r.output
    assert "tiny" in r.output and "leaderboard" in r.output
    r = invoke("run", "bin", "--data", str(tiny_pack), "--out", str(out), "--occlusion", "region:mouth",
               "--inpainter", "oracle", "--quiet", "--batch-size", "4")
    assert r.exit_code == 0, r.output
    board = pd.read_csv(out / "leaderboard.csv")
    assert board["occlusion"].tolist() == ["none", "region:mouth"]
    assert board["accuracy_mean"].iloc[0] == board["accuracy_mean"].iloc[1]  # oracle == clean

    packed = tmp_path / "copy.bin"
    r = invoke("convert", "bin", "--data", str(tiny_pack), "--out", str(packed))
    assert r.exit_code == 0 and "20 pairs" in r.output
    r = invoke("run", "bin", "--data", str(packed), "--out", str(tmp_path / "r2"), "--quiet")
    assert r.exit_code == 0, r.output
    a = pd.read_csv(next((out / "runs").rglob("scores.csv")))
    b = pd.read_csv(next((tmp_path / "r2" / "runs").rglob("scores.csv")))
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-6)  # PNG packs are lossless


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "lfw", "--data", "/no/such/place"], "/no/such/place"),
        (["run", "bin", "--data", "{pack}", "--verifier", "sfase"], "did you mean 'sface'"),
        (["run", "bin", "--data", "{pack}", "--occlusion", "region:eyes"], "unknown region"),
        # the clean condition builds no inpainter; a typo in one must still stop the command
        (["run", "bin", "--data", "{pack}", "--inpainter", "tela"], "did you mean 'telea'"),
        (["run", "bin", "--data", "{pack}", "--inpainter", "telea+oracel", "--occlusion", "region:twoeyes"],
         "did you mean 'oracle'"),
        (["run", "bin", "--data", "{pack}", "--side", "left"], "side must be one of"),
        (["run", "bin", "--data", "{pack}", "--verifier", "arcface:model=/no/model.onnx"], "/no/model.onnx"),
    ],
)
def test_bad_input_is_one_clear_line(args, message, tiny_pack: Path, tmp_path: Path) -> None:
    args = [a.replace("{pack}", str(tiny_pack)) for a in args] + ["--out", str(tmp_path), "--quiet"]
    r = invoke(*args)
    assert r.exit_code == 2
    assert "error:" in r.output and message in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "leaderboard.csv").exists()


def test_demo_runs_offline(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("insightface") is None:  # only its sample images are read
        pytest.skip("the demo's sample faces come from insightface (pip install --no-deps 'insightface>=0.7')")
    r = invoke("demo", "--out", str(tmp_path / "demo"), "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "not a benchmark" in r.output
    board = pd.read_csv(tmp_path / "demo" / "leaderboard.csv")
    from recogbench.demo import CONDITIONS

    assert len(board) == len(CONDITIONS) and board["failures"].sum() == 0
    clean = board[board["occlusion"] == "none"].iloc[0]
    up = board[(board["occlusion"] == "region:up_face") & (board["inpainter"] == "none")].iloc[0]
    oracle = board[board["inpainter"] == "oracle"].iloc[0]
    assert clean["auc"] > 0.9
    assert up["mean_genuine"] < clean["mean_genuine"] - 0.1
    assert oracle["accuracy_mean"] == clean["accuracy_mean"] and oracle["mean_genuine"] == clean["mean_genuine"]
    assert len(list((tmp_path / "demo" / "runs").rglob("roc.png"))) == len(CONDITIONS)
    html = (tmp_path / "demo" / "report.html").read_text()
    assert "not a benchmark" in html and "data:image/png;base64," in html


def test_leaderboard_plot_report_commands(tiny_pack: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    r = invoke("run", "bin", "--data", str(tiny_pack), "--out", str(out), "--occlusion", "none+region:up_face",
               "--inpainter", "none+oracle", "--quiet", "--bootstrap", "100")
    assert r.exit_code == 0, r.output
    md = invoke("leaderboard", "--results", str(out), "--sort", "accuracy_mean").output
    assert md.startswith("|") and "region:up_face" in md and md.count("\n") >= 5
    csv_text = invoke("leaderboard", "--results", str(out), "--format", "csv", "--all-columns").output
    assert "fmr_change@best_acc" in csv_text.splitlines()[0]
    cmp = invoke("leaderboard", "--results", str(out), "--compare", "region:up_face/none", "region:up_face/oracle")
    assert cmp.exit_code == 0, cmp.output
    assert "McNemar" in cmp.output and "p =" in cmp.output
    bad = invoke("leaderboard", "--results", str(out), "--sort", "acuracy")
    assert bad.exit_code == 2 and "accuracy" in bad.output
    r = invoke("plot", "--results", str(out))
    assert r.exit_code == 0 and len(list((out / "plots").glob("*.png"))) >= 3
    r = invoke("report", "--results", str(out), "--out", str(tmp_path / "r.html"))
    assert r.exit_code == 0
    html = (tmp_path / "r.html").read_text()
    assert "data:image/png;base64," in html and "region:up_face" in html
    missing = invoke("leaderboard", "--results", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "nowhere" in missing.output
