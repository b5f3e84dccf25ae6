"""A study rather than a run: failure budgets, quick looks, several recognisers, embedding export."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recogbench.cli import app
from recogbench.config import RunConfig
from recogbench.data import DataError
from recogbench.pipeline import run, run_all
from recogbench.registry import RegistryError, portable_spec
from tests.conftest import smooth_faces, write_pack


def _pack_with_broken(path: Path, broken: set[int], n_pairs: int = 20) -> Path:
    """A .bin of ``n_pairs`` pairs whose images ``broken`` are undecodable bytes."""
    write_pack(path, smooth_faces(2 * n_pairs, seed=5), [k % 2 == 0 for k in range(n_pairs)])
    blobs, issame = pickle.loads(path.read_bytes())
    for i in broken:
        blobs[i] = b"\x89PNG\r\n\x1a\n this is not an image"
    path.write_bytes(pickle.dumps((blobs, issame), protocol=4))
    return path


def test_a_pack_with_no_usable_pair_stops_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    pack = _pack_with_broken(tmp_path / "dead.bin", set(range(40)))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "bin", "--data", str(pack), "--out", str(out), "-q", "--bootstrap", "0"])
    assert result.exit_code == 2, result.output
    assert "no pair has two usable faces" in result.output and "dead.bin#0" in result.output
    assert not (out / "leaderboard.csv").exists() and not list(out.glob("runs/*/*"))


def test_more_failures_than_the_budget_stop_and_keep_earlier_rows(tmp_path: Path) -> None:
    pack = _pack_with_broken(tmp_path / "hurt.bin", {1, 3, 5})  # 3 of 20 pairs = 15 %
    base = dict(protocol="bin", data=str(pack), out=str(tmp_path / "out"), progress=False, bootstrap=0)
    good = run(RunConfig(**base, max_failures=0.2))
    assert good.row["failures"] == 3
    board = (tmp_path / "out" / "leaderboard.csv").read_bytes()
    with pytest.raises(DataError, match=r"3 of 20 pairs \(15\.0%\).*--max-failures 0\.05.*hurt\.bin#1"):
        run(RunConfig(**base, occlusion="region:mouth"))
    assert (tmp_path / "out" / "leaderboard.csv").read_bytes() == board  # the earlier row is intact, none added
    with pytest.raises(ValueError, match="max_failures is a share"):
        RunConfig(**base, max_failures=3)


def test_limit_takes_the_first_pairs_of_each_class_in_each_fold(tmp_path: Path) -> None:
    # 10 folds of 4 pairs, genuine ones first as in LFW: "the first pairs" alone would be one class.
    issame = [k % 4 < 2 for k in range(40)]
    pack = write_pack(tmp_path / "lfw_like.bin", smooth_faces(80, seed=9), issame)
    base = dict(protocol="bin", data=str(pack), out=str(tmp_path / "out"), progress=False, bootstrap=0)
    full = run(RunConfig(**base))
    quick = run(RunConfig(**base, limit=1))
    assert (full.row["n_pairs"], full.row["limit"]) == (40, 0)
    assert (quick.row["n_pairs"], quick.row["limit"]) == (20, 1)
    assert quick.row["config_hash"] != full.row["config_hash"]
    keep = [k for k in range(40) if k % 4 in (0, 2)]
    assert np.array_equal(quick.scores, full.scores[keep]) and quick.issame.tolist() == [True, False] * 10
    with pytest.raises(ValueError, match="limit must be >= 0"):
        RunConfig(**base, limit=-1)

    from recogbench import report

    board = report.leaderboard(tmp_path / "out", sort="accuracy_mean")
    assert board["limit"].tolist() == [0, 1]  # a quick look is never ranked above a full run
    html = report.render_html(tmp_path / "out")
    assert "quick look (1/class/fold)" in html


def test_several_verifiers_in_one_command(tiny_pack: Path, tiny_arcface_onnx: Path, tmp_path: Path, caplog) -> None:
    spec = f"sface+arcface:model={tiny_arcface_onnx}"
    with caplog.at_level(logging.INFO, logger="recogbench.pipeline"):
        results = run_all(RunConfig(protocol="bin", data=str(tiny_pack), out=str(tmp_path), progress=False, bootstrap=0,
                                    verifier=spec, occlusion="region:twoeyes", inpainter="none+telea"))
    arc = portable_spec(f"arcface:model={tiny_arcface_onnx}")  # the file's name and content digest, no path
    assert arc.startswith("arcface:model=tiny_arcface.onnx@")
    assert [(r.row["verifier"], r.row["inpainter"]) for r in results] == [
        ("sface", "none"), ("sface", "telea"), (arc, "none"), (arc, "telea")]
    assert results[0].row["verifier_model"] != results[2].row["verifier_model"]
    assert len(pd.read_csv(tmp_path / "leaderboard.csv")) == 4
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("condition ")]
    assert lines[0].startswith("condition 1/4: region:twoeyes · none · sface")
    assert "left)" in lines[1] and lines[3].startswith("condition 4/4")
    with pytest.raises(RegistryError, match="sface"):
        run_all(RunConfig(protocol="bin", data=str(tiny_pack), out=str(tmp_path), verifier="sface+sfce"))


def test_save_embeddings_rescores_to_the_same_numbers(tiny_pack: Path, tmp_path: Path) -> None:
    result = run(RunConfig(protocol="bin", data=str(tiny_pack), out=str(tmp_path), progress=False, bootstrap=0,
                           occlusion="random_block", inpainter="telea", save_embeddings=True))
    with np.load(result.run_dir / "embeddings.npz") as z:
        assert z["restored_first"].shape == (20, 128) and z["restored_first"].dtype == np.float32
        for view, scores in (("restored", result.scores), ("clean", result.scores_clean),
                             ("occluded", result.scores_occluded)):
            again = np.einsum("ij,ij->i", z[f"{view}_first"], z[f"{view}_second"])
            assert np.allclose(again, scores, atol=1e-6)
        assert np.array_equal(z["issame"], result.issame) and np.array_equal(z["fold"], result.folds)
    assert not (run(RunConfig(protocol="bin", data=str(tiny_pack), out=str(tmp_path / "b"), progress=False,
                              bootstrap=0)).run_dir / "embeddings.npz").exists()


# ------------------------------------------------------------------ messages that point somewhere


def test_an_option_typo_names_the_backends_options_before_any_work(tmp_path: Path) -> None:
    from recogbench.registry import INPAINTERS, OCCLUDERS

    with pytest.raises(RegistryError, match=r"'telea' has no option 'radus'; did you mean 'radius'\? "
                                            r"\(its options: radius, device\)"):
        INPAINTERS.create("telea:radus=3")
    # An object's style is an option of its own (variant=), shown; a region's variant is its name.
    with pytest.raises(RegistryError, match=r"its options: jitter, variant"):
        OCCLUDERS.resolve("sunglasses:colour=red")
    with pytest.raises(RegistryError, match=r"'region:twoeyes' has no option 'fil'; did you mean 'fill'"):
        OCCLUDERS.resolve("region:twoeyes:fil=white")
    pack = write_pack(tmp_path / "p.bin", smooth_faces(40, seed=1), [k % 2 == 0 for k in range(20)])
    out = tmp_path / "out"
    for option, expected in ((["--inpainter", "telea:radus=3"], "did you mean 'radius'"),
                             (["--occlusion", "everday"], "or the suite 'everyday'?"),
                             (["--occlusion", "sunglasses:jiter=1"], "did you mean 'jitter'")):
        args = ["run", "bin", "--data", str(pack), "--out", str(out), "-q", "--occlusion", "sunglasses", *option]
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2 and expected in r.output, r.output
        assert "unexpected keyword" not in r.output
    assert not out.exists() or not list(out.glob("runs/*/*"))  # refused before any work


def test_each_occluder_of_a_joined_spec_records_its_own_suite(tmp_path: Path) -> None:
    from recogbench.pipeline import conditions

    cfg = RunConfig(protocol="bin", data="x.bin", occlusion="none+everyday+region:mouth")
    suites = [(c.occlusion, s) for c, s in conditions(cfg)]
    assert suites[0] == ("none", "") and suites[-1] == ("region:mouth", "")
    assert {s for o, s in suites[1:-1]} == {"everyday"} and len(suites) == 9


# ------------------------------------------------------------------------- the closing summary


def test_holm_adjustment_matches_the_textbook_example() -> None:
    from recogbench.metrics import holm

    # Holm (1979) step-down: sorted p × (m, m-1, ...), running maximum, capped at 1.
    got = holm([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(got[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(got[4])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]  # monotone: never below a smaller p's adjustment
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([1.5])


def test_summary_lines_wilson_intervals_and_the_honest_verdict() -> None:
    from scipy.stats import binomtest

    from recogbench.summary import best_restorations, condition_lines, wilson

    lo, hi = wilson(8 / 38, 38)
    ref = binomtest(8, 38).proportion_ci(method="wilson")
    assert (lo, hi) == pytest.approx((ref.low, ref.high)) and lo < 8 / 38 < hi
    assert wilson(None, 38) is None and wilson(0.1, 0) is None

    def row(occ, inp, fnmr, acc=0.99):
        return {"protocol": "lfw", "occlusion": occ, "inpainter": inp, "verifier": "sface", "n_pairs": 600,
                "n_genuine": 300, "n_impostor": 300, "accuracy_mean": acc, "fnmr@best_acc": fnmr,
                "fmr@best_acc": 0.01, "fmr_change@best_acc": 0.0, "limit": 0}

    rows = [row("none", "none", 0.02), row("sunglasses", "none", 0.20), row("sunglasses", "telea", 0.10),
            row("sunglasses", "fill", 0.15), row("hand", "none", 0.05), row("hand", "telea", 0.30),
            row("hand", "oracle", 0.0) | {"reads_clean": True}]
    lines = condition_lines(rows)
    assert lines[2].fnmr_ci is not None and lines[2].fnmr_ci[0] < 0.10 < lines[2].fnmr_ci[1]
    sentences = best_restorations(lines)
    assert len(sentences) == 2
    assert sentences[0].startswith("sunglasses (lfw, sface): telea recovers most, FNMR 0.100")
    assert "against 0.200" in sentences[0]
    # oracle reads the clean face: never the winner; telea is worse than leaving the hand there.
    assert sentences[1].startswith("hand (lfw, sface): no restoration beats leaving the face occluded (FNMR 0.050")
    assert "least harmful is telea" in sentences[1]


def test_run_prints_the_study_table_and_leaderboard_explains_every_column(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "p.bin", smooth_faces(80, seed=2), [k % 2 == 0 for k in range(40)])
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", "bin", "--data", str(pack), "--out", str(out), "-q", "--bootstrap", "50",
                                 "--occlusion", "none+region:twoeyes", "--inpainter", "none+fill"])
    assert r.exit_code == 0, r.output
    assert "FNMR [95 % CI]" in r.output and "region:twoeyes · fill" in r.output
    assert "region:twoeyes (p, sface):" in r.output  # the verdict sentence
    r = CliRunner().invoke(app, ["leaderboard", "--results", str(out), "--explain", "--all-columns"])
    assert r.exit_code == 0 and "(not documented)" not in r.output, r.output
    written = pd.read_csv(out / "leaderboard.csv").columns
    assert all(f"{c}:" in r.output for c in written)


def test_rows_hold_no_absolute_paths_and_moving_a_folder_changes_no_hash(tmp_path: Path) -> None:
    import shutil

    from tests.conftest import shared_path

    assert portable_spec("region:twoeyes:fill=white") == "region:twoeyes:fill=white"  # words stay words
    assert portable_spec("telea+fill") == "telea+fill"
    source = shared_path("occluders", "masktheface")  # skips without ../shared
    pack = write_pack(tmp_path / "p.bin", smooth_faces(40, seed=3), [k % 2 == 0 for k in range(20)])
    rows = []
    for where in ("a", "b/c"):
        folder = tmp_path / where / "cutouts"
        shutil.copytree(source, folder)
        res = run(RunConfig(protocol="bin", data=str(pack), occlusion=f"real:{folder}", out=str(tmp_path / "out"),
                            progress=False, bootstrap=0))
        rows.append(res.row)
    assert rows[0]["config_hash"] == rows[1]["config_hash"]
    assert rows[0]["occlusion"].startswith("real:cutouts@") and str(tmp_path) not in rows[0]["occlusion"]
    board = (tmp_path / "out" / "leaderboard.csv").read_text()
    manifest = (Path(rows[0]["run_dir"]) / "manifest.jsonl").read_text()
    assert str(tmp_path / "a") not in board and str(tmp_path / "a") not in manifest
    # Changing the folder's content changes the condition.
    (folder / "extra.txt").write_text("x")
    assert portable_spec(f"real:{folder}") != rows[1]["occlusion"]
