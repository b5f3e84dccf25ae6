"""recogbench.report and recogbench.plots on a results folder written by the real pipeline,
and the HTML report rendered by a real browser (headless Chromium) when one is installed."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from recogbench import plots, report
from recogbench.config import RunConfig
from recogbench.pipeline import run, run_all

from .conftest import make_tiny_pack

PROTOCOL = "tiny"  # the `bin` protocol is named after its file, tiny.bin


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """none+region:twoeyes × none+oracle+fill, the clean condition run twice, and region:mouth
    (another occlusion manifest)."""
    root = tmp_path_factory.mktemp("report")
    pack = make_tiny_pack(root / "tiny.bin")
    out = root / "results"
    cfg = RunConfig(protocol="bin", data=str(pack), occlusion="none+region:twoeyes", inpainter="none+oracle+fill",
                    device="cpu", progress=False, out=str(out), batch_size=8)
    run_all(cfg)
    run(dataclasses.replace(cfg, occlusion="none", inpainter="none"))  # the same condition again
    run(dataclasses.replace(cfg, occlusion="region:mouth", inpainter="none"))
    return out


def _png_ok(data: bytes | None) -> np.ndarray:
    assert data is not None and data[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] > 50 and img.shape[1] > 50
    assert img.std() > 5  # not a blank canvas
    return img


def _row(results: Path, occlusion: str, inpainter: str) -> pd.Series:
    df = report.collect(results)
    hit = df[(df["occlusion"] == occlusion) & (df["inpainter"] == inpainter)]
    assert len(hit) == 1
    return hit.iloc[0]


# --------------------------------------------------------------------------- collect / leaderboard


def test_collect_keeps_the_latest_row_per_config_hash(results: Path) -> None:
    raw = pd.read_csv(results / "leaderboard.csv")
    assert len(raw) == 6  # clean, twoeyes × 3, clean again, mouth
    df = report.collect(results)
    assert len(df) == 5
    assert df["config_hash"].is_unique
    clean = raw[raw["occlusion"] == "none"]
    assert len(clean) == 2 and clean["config_hash"].nunique() == 1
    kept = df[df["occlusion"] == "none"].iloc[0]
    assert kept["timestamp"] == clean["timestamp"].max()
    assert set(zip(df["occlusion"], df["inpainter"])) == {
        ("none", "none"), ("region:twoeyes", "none"), ("region:twoeyes", "oracle"),
        ("region:twoeyes", "fill"), ("region:mouth", "none")}


def test_collect_orders_by_timestamp_not_file_order(tmp_path: Path) -> None:
    rows = pd.DataFrame({
        "protocol": ["p", "p", "p"], "occlusion": ["none", "none", "x"], "inpainter": ["none"] * 3,
        "accuracy_mean": [0.9, 0.8, 0.7], "config_hash": ["aaa", "aaa", "bbb"],
        # the second row was appended later but ran earlier (e.g. a leaderboard merged by hand)
        "timestamp": ["2025-01-02T00:00:00+00:00", "2025-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"],
    })
    rows.to_csv(tmp_path / "leaderboard.csv", index=False)
    df = report.collect(tmp_path)
    assert list(df["accuracy_mean"]) == [0.9, 0.7]


def test_collect_names_the_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "leaderboard.csv"))):
        report.collect(tmp_path)
    (tmp_path / "leaderboard.csv").write_text("")
    with pytest.raises(ValueError, match="leaderboard.csv.*empty"):
        report.collect(tmp_path)
    (tmp_path / "leaderboard.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a recogbench leaderboard"):
        report.collect(tmp_path)


def test_leaderboard_filters_sorts_and_renders_markdown(results: Path) -> None:
    df = report.leaderboard(results, protocol=PROTOCOL, sort="mean_coverage", ascending=True)
    assert len(df) == 5 and (df["protocol"] == PROTOCOL).all()
    assert list(df["mean_coverage"]) == sorted(df["mean_coverage"])
    df = report.leaderboard(results, sort="accuracy_mean")
    # Rows that read the clean face (oracle) are bounds, never ranked among honest restorations.
    leaks = report.reads_clean(df)
    assert leaks.any() and list(leaks) == sorted(leaks)
    honest = df.loc[~leaks, "accuracy_mean"]
    assert list(honest) == sorted(honest, reverse=True)
    assert (df.loc[leaks, "inpainter"] == "oracle").all()
    with pytest.raises(ValueError, match="no rows for protocol 'lfw'.*tiny"):
        report.leaderboard(results, protocol="lfw")

    cols = ["occlusion", "inpainter", "n_pairs", "accuracy_mean", "tar@far=1e-03"]
    md = report.to_markdown(df, cols)
    lines = md.strip().splitlines()
    assert lines[0] == "| occlusion | inpainter | n_pairs | accuracy_mean | tar@far=1e-03 |"
    assert lines[1] == "|---|---|---:|---:|---:|"
    assert len(lines) == 2 + len(df)
    first = lines[2].split("|")[1:-1]
    assert first[2].strip() == "20"  # a count stays an integer
    assert re.fullmatch(r" \d\.\d{4} ", first[3])  # four decimals
    assert first[4] == "  "  # 10 impostors cannot measure FAR 1e-3: an empty cell
    csv = report.to_csv(df, cols)
    assert csv.splitlines()[0] == ",".join(cols) and len(csv.splitlines()) == 1 + len(df)
    escaped = report.to_markdown(pd.DataFrame({"a|b": ["x|y"], "n": [1.0]}))
    assert "a\\|b" in escaped and "x\\|y" in escaped and "1.0000" in escaped


def test_unknown_sort_column_suggests_close_names(results: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown column 'acuracy_mean'.*accuracy_mean"):
        report.leaderboard(results, sort="acuracy_mean")
    with pytest.raises(ValueError, match=r"unknown column 'accuracy'.*accuracy_mean"):
        report.leaderboard(results, sort="accuracy")
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        report.to_markdown(report.collect(results), ["occlusion", "nope"])


# --------------------------------------------------------------------------- compare


def test_compare_runs_mcnemar_at_a_frozen_clean_threshold(results: Path) -> None:
    res = report.compare(results, "region:twoeyes/none", "region:twoeyes/oracle")
    assert res["a"] == "region:twoeyes/none" and res["b"] == "region:twoeyes/oracle"
    assert set(res["mcnemar"]) >= {"n", "a_only", "b_only", "statistic", "p_value", "method"}
    assert res["mcnemar"]["n"] == res["n_pairs"] == 20
    assert 0.0 <= res["mcnemar"]["p_value"] <= 1.0
    assert re.fullmatch(r"(A is better|B is better|no significant difference) \(p=[0-9.e+-]+\)", res["verdict"])
    assert "clean" in res["threshold_source"]
    # The oracle restores the clean pixels: at the clean threshold it decides like the clean condition.
    clean = report.load_scores(results, _row(results, "none", "none"))
    from recogbench.metrics import operating_threshold

    t = operating_threshold(clean["score"].to_numpy(), clean["issame"].to_numpy().astype(bool))
    assert res["threshold"] == pytest.approx(t)
    expect = np.mean((clean["score"].to_numpy() >= t) == clean["issame"].to_numpy().astype(bool))
    assert res["accuracy_b"] == pytest.approx(expect)

    # The same comparison by config-hash prefixes, and against the clean condition.
    a, b = _row(results, "region:twoeyes", "none"), _row(results, "region:twoeyes", "oracle")
    by_hash = report.compare(results, a["config_hash"][:8], b["config_hash"][:8])
    assert by_hash["mcnemar"] == res["mcnemar"] and by_hash["a_config_hash"] == a["config_hash"]
    vs_clean = report.compare(results, "none", "region:twoeyes/fill")
    assert vs_clean["a"] == "clean" and vs_clean["mcnemar"]["n"] == 20


def test_compare_refuses_conditions_that_are_not_paired(results: Path) -> None:
    with pytest.raises(ValueError, match="occluded differently"):
        report.compare(results, "region:twoeyes/fill", "region:mouth/none")
    with pytest.raises(ValueError, match="same condition"):
        report.compare(results, "region:twoeyes/fill", "region:twoeyes/fill")
    with pytest.raises(ValueError, match="names no condition.*region:twoeyes/oracle"):
        report.compare(results, "sunglasses/telea", "region:twoeyes/fill")
    with pytest.raises(ValueError, match="ambiguous.*config-hash prefix"):
        report.compare(results, "region:twoeyes", "none")


def test_compare_falls_back_to_a_own_threshold_without_clean_scores(results: Path, tmp_path: Path) -> None:
    copy = tmp_path / "results"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns(".cache"))
    df = pd.read_csv(copy / "leaderboard.csv")
    df[df["occlusion"] != "none"].to_csv(copy / "leaderboard.csv", index=False)
    for scores in copy.glob("runs/*/*/scores.csv"):
        s = pd.read_csv(scores)
        s.drop(columns=[c for c in ("score_clean", "score_occluded") if c in s.columns]).to_csv(scores, index=False)
    res = report.compare(copy, "region:twoeyes/none", "region:twoeyes/oracle")
    assert res["threshold_source"].startswith("A's own scores")
    a = report.load_scores(copy, _row(copy, "region:twoeyes", "none"))
    from recogbench.metrics import operating_threshold

    assert res["threshold"] == pytest.approx(operating_threshold(a["score"].to_numpy(), a["issame"].to_numpy().astype(bool)))


# --------------------------------------------------------------------------- plots


def test_plots_are_valid_pngs(results: Path, tmp_path: Path) -> None:
    _png_ok(plots.roc_det(results, PROTOCOL))
    _png_ok(plots.histograms(results, PROTOCOL))
    rec = plots.recovery_bars(results, PROTOCOL)
    df = report.collect(results)
    if "recovery_accuracy" in df.columns and df["recovery_accuracy"].notna().any():
        _png_ok(rec)
    has_samples = any(results.glob("runs/tiny/*/samples.npz"))
    grid = plots.sample_grid(results, PROTOCOL, "region:twoeyes")
    if has_samples:
        img = _png_ok(grid)
        assert img.shape[0] > img.shape[1]  # 8 sample rows, 4 columns (clean, occluded, oracle, fill)
    assert plots.sample_grid(results, PROTOCOL, "sunglasses") is None
    with pytest.raises(ValueError, match="no rows for protocol"):
        plots.roc_det(results, "lfw")

    written = plots.plot_all(results, tmp_path / "plots")
    names = {p.name for p in written}
    assert {"tiny_roc_det.png", "tiny_hist.png"} <= names
    if has_samples:
        assert "tiny_samples_region-twoeyes.png" in names and "tiny_samples_region-mouth.png" in names
    for p in written:
        _png_ok(p.read_bytes())
    assert not list((tmp_path / "plots").glob(".*.tmp"))  # atomic writes leave no temporaries


# --------------------------------------------------------------------------- HTML report


def _report(results: Path, out: Path) -> tuple[Path, str]:
    path = report.write_report(results, out, title="tiny <report> & co")
    return path, path.read_text()


def test_report_is_one_self_contained_html_file(results: Path, tmp_path: Path) -> None:
    path, text = _report(results, tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.html"]
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>tiny &lt;report&gt; &amp; co</title>" in text  # escaped
    from recogbench import __version__

    assert f"recogbench {__version__}" in text
    # Nothing external: no http(s) or protocol-relative src/href, no CSS url() at all.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", text, re.I)
    assert "url(" not in text and "@import" not in text
    assert "Content-Security-Policy" in text
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(imgs) >= 2
    for b64 in imgs:
        _png_ok(base64.b64decode(b64))
    for h in report.collect(results)["config_hash"]:
        assert f'href="#run-{h}"' in text and f'id="run-{h}"' in text  # table row ↔ run section
    assert text.count("<tr") >= 5
    assert "region:twoeyes" in text and "oracle" in text
    assert html.escape('"occlusion": "region:mouth"') in text  # config.json pretty-printed, escaped
    assert "<details>" in text


def test_hole_quality_by_occluder_kind(results: Path, tmp_path: Path) -> None:
    df = report.collect(results)
    mse = report.quality_by_kind(df, "mse_hole")
    assert set(mse.index) == {"region:twoeyes", "region:mouth"} and {"none", "oracle", "fill"} <= set(mse.columns)
    assert mse.loc["region:twoeyes", "oracle"] == 0  # the clean pixels back: no error
    assert mse.loc["region:twoeyes", "none"] > mse.loc["region:twoeyes", "fill"] > 0  # black hole vs a fill
    row = _row(results, "region:twoeyes", "fill")
    assert row["mse_hole"] == pytest.approx(10 ** (-row["psnr_hole"] / 10), rel=0.2)  # per-image mean vs its PSNR
    _, text = _report(results, tmp_path / "report.html")
    assert "Restoration quality by occluder" in text and "mse_hole: MSE" in text


def test_report_refuses_a_folder_without_leaderboard(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="leaderboard"):
        report.write_report(tmp_path, tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    pytest.skip("no Chromium installed (apt-get install chromium) for the real-browser report test")


def _browser(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within 60 s: {' '.join(cmd)}")


def test_report_renders_in_a_real_browser(results: Path, tmp_path: Path) -> None:
    exe = _chromium()
    path, text = _report(results, tmp_path / "report.html")
    n_images = len(re.findall(r"<img ", text))
    url = path.resolve().as_uri()

    dom = _browser(exe, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    html_out = dom.stdout.decode()
    body = re.search(r"<body[^>]*>", html_out)
    assert body, html_out[:500]
    # The inline script ran after every image decoded with a non-zero natural size.
    assert f'data-images-total="{n_images}"' in body.group(0)
    assert f'data-images-loaded="{n_images}"' in body.group(0), body.group(0)
    assert '<table class="lb">' in html_out
    for h in report.collect(results)["config_hash"]:
        assert f'href="#run-{h}"' in html_out

    shot = tmp_path / "shot.png"
    res = _browser(exe, tmp_path / "profile-shot", "--hide-scrollbars", "--window-size=1280,2000",
                   f"--screenshot={shot}", url)
    assert res.returncode == 0 and shot.exists(), res.stderr.decode(errors="replace")[-2000:]
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (2000, 1280)
    assert img.std() > 20  # a rendered page, not a blank one
    # The dark header band is there, and below it the page is mostly white with content.
    assert img[:40].mean() < 90
    assert 150 < img[200:].mean() < 250
    keep = Path("/tmp/recogbench-report-shot.png")
    try:
        shutil.copy(shot, keep)  # for a human to look at; not part of the assertion
    except OSError:
        pass


def test_row_json_and_leaderboard_agree(results: Path) -> None:
    """The report reads run folders by protocol/config hash: each row's folder exists."""
    for _, row in report.collect(results).iterrows():
        folder = report.run_dir(results, row)
        assert folder.is_dir()
        assert json.loads((folder / "row.json").read_text())["config_hash"] == row["config_hash"]


# --------------------------------------------------------------------------- 50 conditions


@pytest.fixture(scope="module")
def results50(tmp_path_factory) -> Path:
    """2 verifiers × 5 occluders × 5 inpainters = 50 conditions (plus 2 clean), synthetic scores
    written by the pipeline's own record()."""
    from .test_plots import write_results

    return write_results(tmp_path_factory.mktemp("report50") / "results",
                         inpainters=("none", "telea", "ns", "pconv-gan:checkpoint=/ckpt/g.safetensors",
                                     "id-inpainter:ca=/ckpt/ca.safetensors,fusor=/ckpt/fusor7.safetensors"))


@pytest.fixture(scope="module")
def report50(results50: Path, tmp_path_factory) -> tuple[Path, str]:
    return _report(results50, tmp_path_factory.mktemp("report50-out") / "report.html")


def test_report_at_50_conditions_is_grouped_and_complete(results50: Path, report50: tuple[Path, str]) -> None:
    _, text = report50
    df = report.collect(results50)
    assert len(df) == 52
    for h in df["config_hash"]:
        assert f'href="#run-{h}"' in text and f'id="run-{h}"' in text
    # Runs are grouped by occluder, each group headed with its count.
    assert re.search(r"<h3[^>]*>synthetic · clean<span class=\"count\">2 runs</span></h3>", text)
    for occ in ("sunglasses", "medical_mask", "hand", "scarf", "region:twoeyes"):
        assert f"synthetic · {occ}<span class=\"count\">10 runs</span></h3>" in text
    # Accuracy folded into one occluder × inpainter matrix per verifier.
    tables = report.accuracy_by_kind(df)
    assert list(tables) == ["sface", "arcface:model=w600k_r50.onnx"]
    for table in tables.values():
        assert table.shape == (5, 5) and table.notna().all().all()
    assert text.count("<caption>accuracy · ") == 2
    # Paired tests compare each restoration with the same verifier's occluded rows: 2 × 5 × 4, no
    # error rows (before, every sface restoration was paired with arcface's baseline and refused).
    tests = text[text.index('id="p-synthetic-tests"'):]
    tests = tests[:tests.index("</table>")]
    assert tests.count("<tr><td>") == 40
    assert "differ in verifier" not in text and 'class="empty"' not in tests
    # 40 tests at once: Holm-adjusted p beside each raw p, never smaller, and the verdict uses it.
    assert "<th class=\"num\">p (Holm)</th>" in tests and "The 40 tests of this table are corrected together" in text
    cells = re.findall(r'<td class="num">([^<]+)</td><td class="num">([^<]+)</td>'
                       r'<td class="(?:better|worse|)">((?:restoration|no significant)[^<]*)</td>', tests)
    assert len(cells) == 40
    for raw, holm, verdict in cells:
        assert float(holm) >= float(raw) and "(Holm p=" in verdict
    # A line of links to the protocol's parts.
    for part in ("accuracy", "roc", "hist", "recovery", "tests", "runs"):
        assert f'href="#p-synthetic-{part}"' in text and f'id="p-synthetic-{part}"' in text
    for b64 in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text):
        _png_ok(base64.b64decode(b64))


@pytest.mark.parametrize("width", [1280, 600])
def test_report_at_50_conditions_fits_the_browser_window(report50: tuple[Path, str], tmp_path: Path, width: int) -> None:
    exe = _chromium()
    path, text = report50
    n_images = len(re.findall(r"<img ", text))
    dom = _browser(exe, tmp_path / "profile", f"--window-size={width},900", "--dump-dom", path.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout.decode())
    assert body, dom.stdout.decode()[:500]
    attrs = dict(re.findall(r'(data-[a-z-]+)="(\d+)"', body.group(0)))
    assert attrs.get("data-images-loaded") == str(n_images), body.group(0)
    # The page never scrolls sideways: wide tables scroll inside their own box, images scale down.
    assert 0 < int(attrs["data-page-width"]) <= int(attrs["data-view-width"]), body.group(0)
