"""recogbench.plots at scale: a results folder of 30 conditions (2 verifiers × 5 occluders ×
3 inpainters, plus each verifier's clean condition), written by the pipeline's own
:func:`recogbench.pipeline.record` from synthetic scores (no model runs). Every curve must be
drawn, the axes must keep a readable size whatever the number of legend entries, two
verifiers' clean curves must look different, and no label may run into another."""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recogbench import pipeline, plots, report
from recogbench.config import RunConfig
from recogbench.registry import display_spec

VERIFIERS = ("sface", "arcface:model=/models/w600k_r50.onnx")
OCCLUDERS = ("sunglasses", "medical_mask", "hand", "scarf", "region:twoeyes")
INPAINTERS = ("none", "telea", "id-inpainter:ca=/ckpt/ca.safetensors,fusor=/ckpt/fusor7.safetensors")
PROTOCOL = "synthetic"
N_PAIRS = 400  # 200 genuine, 200 impostor, 10 folds
MIN_AXES_IN = 2.0  # the smallest readable ROC/DET axes side, inches


def _protocol(n_pairs: int = N_PAIRS) -> SimpleNamespace:
    """The attributes of a PairProtocol that :func:`pipeline.record` reads."""
    return SimpleNamespace(
        name=PROTOCOL, version=1, n_pairs=n_pairs, folds=np.repeat(np.arange(10), n_pairs // 10), origin=PROTOCOL,
        fingerprint="synthetic-data", pairs=np.arange(2 * n_pairs).reshape(n_pairs, 2),
        source=SimpleNamespace(name_of=lambda i: f"img{i}.png"), issame=np.arange(n_pairs) % 2 == 0,
    )


def _scores(issame: np.ndarray, genuine_mean: float, seed: int) -> np.ndarray:
    """(P,) cosines: genuine ~ N(genuine_mean, 0.12), impostor ~ N(0.05, 0.12), clipped to [-1, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(np.where(issame, genuine_mean, 0.05) + 0.12 * rng.standard_normal(len(issame)), -1, 1)


def write_results(out: Path, verifiers=VERIFIERS, occluders=OCCLUDERS, inpainters=INPAINTERS) -> Path:
    """A results folder with every condition of verifiers × (clean + occluders × inpainters),
    enumerated by :func:`pipeline.conditions` and written by :func:`pipeline.record` as a real
    run writes them; scores are synthetic (restorations recover part of the occlusion's damage).
    The per-run roc.png/hist.png, which no test here reads, are not drawn (they cost 2/3 of the time)."""
    protocol = _protocol()
    y = protocol.issame
    cfg = RunConfig(protocol="bin", data=str(out / "synthetic.bin"), verifier="+".join(verifiers),
                    occlusion="+".join(("none", *occluders)), inpainter="+".join(inpainters),
                    bootstrap=0, device="cpu", progress=False, out=str(out))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "run_roc", lambda *a: b"")
        mp.setattr(plots, "run_histogram", lambda *a: b"")
        for cond, suite in pipeline.conditions(cfg):
            v = verifiers.index(cond.verifier)
            seed = zlib.crc32(f"{cond.verifier}|{cond.occlusion}|{cond.inpainter}".encode())
            clean = _scores(y, 0.62 - 0.06 * v, seed=v)  # the same pairs clean, per verifier
            occluded = clean if cond.occlusion == "none" else \
                _scores(y, 0.25 + 0.04 * occluders.index(cond.occlusion), seed=seed + 1)
            k = inpainters.index(cond.inpainter) if cond.occlusion != "none" else 0
            restored = occluded if k == 0 else _scores(y, float(np.mean(clean[y])) - 0.25 / (k + 1), seed=seed)
            manifest = [] if cond.occlusion == "none" else \
                [{"pair": p, "side": "second", "coverage": 0.2} for p in range(protocol.n_pairs)]
            result = pipeline.RunResult(
                config=cond,
                row={"occluder_params": {"occluder": cond.occlusion}, "inpainter_params": {"inpainter": cond.inpainter},
                     "mask_source_params": {"mask_source": "oracle"}, "failures": 0, "mean_coverage": 0.2,
                     "reads_clean": False},
                scores=restored, issame=y, folds=protocol.folds, failed=np.zeros(len(y), bool), run_dir=out,
                manifest=manifest, stats={"seconds": 0.0, "embedded": 0, "reused": 0},
                scores_clean=clean, scores_occluded=occluded,
                runtime={"verifier_fingerprint": cond.verifier, "provider": "synthetic", "device": "cpu"},
            )
            pipeline.record(cond, protocol, result, suite)
    return out


@pytest.fixture(scope="module")
def results30(tmp_path_factory) -> Path:
    return write_results(tmp_path_factory.mktemp("plots30") / "results")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """One verifier, one occluder, one inpainter: a legend of three entries."""
    return write_results(tmp_path_factory.mktemp("plots2") / "results", verifiers=("sface",),
                         occluders=("sunglasses",), inpainters=("none",))


def _drawn(monkeypatch, fn, *args):
    """(PNG, Figure) of a plot function: the Figure that :func:`plots._png` rendered, its
    layout done, so axes and text extents are what the PNG shows."""
    seen = []
    real = plots._png

    def keep(fig) -> bytes:
        seen.append(fig)
        return real(fig)

    monkeypatch.setattr(plots, "_png", keep)
    png = fn(*args)
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
    return png, seen[-1]


def _inches(fig, artist) -> tuple[float, float]:
    bb = artist.get_window_extent(fig.canvas.get_renderer())
    return bb.width / fig.dpi, bb.height / fig.dpi


def _hashes(df: pd.DataFrame, **where: str) -> set[str]:
    for col, value in where.items():
        df = df[df[col] == value]
    return set(df["config_hash"])


def _panels(fig) -> dict[str, object]:
    return {ax.get_label(): ax for ax in fig.axes if ax.get_label()}


def _no_overlap(fig, texts) -> None:
    """No two of ``texts`` (non-empty, visible) share any pixel."""
    r = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(r)) for t in texts if t.get_visible() and t.get_text().strip()]
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"{ta!r} runs into {tb!r}"


def test_the_synthetic_folder_is_what_the_pipeline_writes(results30: Path) -> None:
    df = report.collect(results30)
    assert len(df) == 32 and df["config_hash"].is_unique
    assert len(df[df["occlusion"] != "none"]) == 30
    # (rows may record a spec's paths as file names: compare as people read them)
    assert sorted(map(display_spec, df.loc[df["occlusion"] == "none", "verifier"])) == sorted(map(display_spec, VERIFIERS))
    for _, row in df.iterrows():
        assert (report.run_dir(results30, row) / "scores.csv").is_file()


def test_roc_det_draws_every_curve_in_one_panel_per_occluder(results30: Path, monkeypatch) -> None:
    df = report.collect(results30)
    clean = _hashes(df, occlusion="none")
    _, fig = _drawn(monkeypatch, plots.roc_det, results30, PROTOCOL)
    panels = _panels(fig)
    drawn = 0
    for occ in OCCLUDERS:
        expect = _hashes(df, occlusion=occ) | clean  # its 2 × 3 conditions and both clean references
        for kind in ("ROC", "DET"):
            ax = panels.get(f"{kind} · {occ}")
            assert ax is not None, f"no {kind} panel for {occ}; axes: {sorted(panels)}"
            gids = [line.get_gid() for line in ax.get_lines() if line.get_gid()]
            assert sorted(gids) == sorted(expect)  # every curve, each once
            drawn += len(gids)
            assert ax.get_legend() is None  # the legend is outside every axes
    assert drawn == 2 * (30 + len(OCCLUDERS) * 2)
    # Each axes is readable: at least 2 × 2 in (it was 1.03 × 1.58 in with one overlaid legend of 32 entries).
    for ax in panels.values():
        w, h = _inches(fig, ax)
        assert w >= MIN_AXES_IN and h >= MIN_AXES_IN, f"{ax.get_label()}: {w:.2f} × {h:.2f} in"
    # One legend, below the panels, overlapping none of them.
    assert len(fig.legends) == 1
    r = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(r)
    for ax in panels.values():
        assert not legend.overlaps(ax.get_window_extent(r))
    assert legend.x0 >= 0 and legend.y0 >= 0 and legend.x1 <= fig.bbox.width  # inside the canvas
    _no_overlap(fig, [t for ax in panels.values() for t in (ax.title, ax.xaxis.label, ax.yaxis.label)])


def test_roc_det_axes_keep_their_size_whatever_the_legend(results30: Path, small: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    many = write_results(tmp_path / "results", verifiers=("sface",), occluders=("sunglasses",),
                         inpainters=("none", *(f"telea:radius={k}" for k in range(1, 10))))  # 10 inpainters
    sizes = {}
    for name, folder in (("1 condition", small), ("30 conditions", results30), ("10 inpainters", many)):
        _, fig = _drawn(monkeypatch, plots.roc_det, folder, PROTOCOL)
        entries = [t.get_text() for t in fig.legends[0].get_texts() if t.get_text().strip()]
        legend_h = _inches(fig, fig.legends[0])[1]
        sizes[name] = (len(entries), legend_h, _inches(fig, _panels(fig)["ROC · sunglasses"]))
    entries, legend_h, axes = zip(*sizes.values())
    assert entries == (6, 10, 15), sizes  # headers included
    assert max(legend_h) > 3 * min(legend_h), sizes  # legends from ~0.5 in to over 2 in tall ...
    for w, h in axes:  # ... and the same axes, in inches
        assert (w, h) == pytest.approx(axes[0], abs=0.1), sizes
        assert w >= MIN_AXES_IN and h >= MIN_AXES_IN


def test_two_verifiers_curves_differ_in_style(results30: Path, monkeypatch) -> None:
    df = report.collect(results30)
    _, fig = _drawn(monkeypatch, plots.roc_det, results30, PROTOCOL)
    by_hash = dict(zip(df["config_hash"], df.itertuples()))
    for ax in _panels(fig).values():
        styles = {}
        for line in ax.get_lines():
            if not line.get_gid():
                continue
            row = by_hash[line.get_gid()]
            styles[(row.occlusion, row.inpainter, row.verifier)] = (
                line.get_color(), line.get_linestyle(), line.get_marker())
        # every curve of a panel looks different from every other one
        assert len(set(styles.values())) == len(styles)
        clean = [s for (o, _, _), s in styles.items() if o == "none"]
        assert len(clean) == 2 and clean[0] != clean[1]
        assert clean[0][1] != clean[1][1]  # line styles differ (never two solid black ones)
        for inp in df["inpainter"].unique():  # one inpainter: one colour, its verifiers told apart by the line
            a, b = (s for (o, i, _), s in styles.items() if i == inp and o != "none")
            assert a[0] == b[0] and a[1:] != b[1:]


def test_histograms_one_titled_panel_per_condition_with_each_verifiers_threshold(
        results30: Path, monkeypatch) -> None:
    from recogbench.metrics import operating_threshold

    df = report.collect(results30)
    _, fig = _drawn(monkeypatch, plots.histograms, results30, PROTOCOL)
    panels = {ax.get_gid(): ax for ax in fig.axes if ax.get_visible() and ax.get_gid()}
    assert set(panels) == set(df["config_hash"])  # all 32
    for ax in panels.values():
        w, h = _inches(fig, ax)
        assert w >= 2.0 and h >= 1.2, f"{ax.get_title()!r}: {w:.2f} × {h:.2f} in"
    _no_overlap(fig, [ax.title for ax in panels.values()] + [ax.xaxis.label for ax in panels.values()])
    # The dashed threshold of a panel is its own verifier's clean threshold, not the first verifier's.
    expect = {}
    for _, row in df[df["occlusion"] == "none"].iterrows():
        s = report.load_scores(results30, row)
        expect[row["verifier"]] = operating_threshold(s["score"].to_numpy(), s["issame"].to_numpy().astype(bool))
    assert len(expect) == 2 and abs(np.diff(list(expect.values()))[0]) > 0.01  # the test can tell them apart
    for _, row in df.iterrows():
        lines = [line for line in panels[row["config_hash"]].get_lines() if line.get_linestyle() == "--"]
        assert len(lines) == 1
        assert lines[0].get_xdata()[0] == pytest.approx(expect[row["verifier"]])


def test_recovery_bars_every_restoration_of_every_verifier(results30: Path, monkeypatch) -> None:
    df = report.collect(results30)
    restorations = df[(df["occlusion"] != "none") & (df["inpainter"] != "none")]
    _, fig = _drawn(monkeypatch, plots.recovery_bars, results30, PROTOCOL)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 * len(VERIFIERS)  # recovery_accuracy and recovery_gap, a row per verifier
    bars = [p.get_gid() for ax in axes for p in ax.patches if p.get_gid()]
    # every restoration once per metric; before, a second verifier's bars replaced the first's
    assert sorted(bars) == sorted(list(restorations["config_hash"]) * 2)
    for ax in axes:
        heights = [p.get_window_extent().height / fig.dpi for p in ax.patches if p.get_gid()]
        assert min(heights) >= 0.15  # a bar row keeps its height: the figure grows instead
        _no_overlap(fig, list(ax.get_yticklabels()) + list(ax.texts))
    assert fig.get_size_inches()[1] > 6  # 2 verifiers × 10 bars
