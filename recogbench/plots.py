"""Plots across the conditions of a results folder (PNG bytes; :func:`plot_all` writes files).

Every function reads the folder the pipeline wrote (``leaderboard.csv`` and each run's
``scores.csv`` / ``samples.npz``, the latest run of each condition, see
:func:`recogbench.report.collect`) and returns PNG bytes, or None where there is nothing to
plot; ``*_figure`` return the matplotlib Figure instead. Figures are drawn with matplotlib's
object API on the Agg backend (no pyplot state, safe in threads and headless).

Plots across conditions are small multiples that stay readable at 50 conditions: one panel
per occluder (ROC/DET) or condition (histograms), the inpainter as colour, the verifier as
line style and marker, and one legend outside the axes whose size does not depend on it.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recogbench import report
from recogbench.fileio import atomic_write_bytes, ensure_writable_dir
from recogbench.registry import display_spec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

__all__ = [
    "histograms", "histograms_figure", "plot_all", "recovery_bars", "recovery_figure", "roc_det", "roc_det_figure",
    "run_histogram", "run_roc", "sample_grid",
]

_DPI = 110


def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A Figure of ``width`` × ``height`` inches on its own Agg canvas (no pyplot state), so
    text can be measured before the figure is sized."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, facecolor="white")
    return buf.getvalue()


def run_roc(scores: np.ndarray, issame: np.ndarray, title: str) -> bytes:
    """PNG of one condition's ROC curve (log-scale FAR axis); ``scores``/``issame``: (P,)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(issame, scores)
    fig = _figure(5, 4)
    ax = fig.add_subplot()
    floor = 1.0 / max(1, int((~issame).sum()))
    ax.plot(np.clip(fpr, floor, 1), tpr, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate (log)")
    ax.set_ylabel("true accept rate")
    ax.set_title(_title(title), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def run_histogram(scores: np.ndarray, issame: np.ndarray, title: str) -> bytes:
    """PNG of one condition's genuine and impostor cosine histograms (failed pairs left out)."""
    from recogbench.metrics import FAILED_SCORE

    valid = scores > FAILED_SCORE
    fig = _figure(5, 4)
    ax = fig.add_subplot()
    bins = np.linspace(-1, 1, 81)
    ax.hist(scores[valid & issame], bins=bins, alpha=0.6, label="genuine", density=True)
    ax.hist(scores[valid & ~issame], bins=bins, alpha=0.6, label="impostor", density=True)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(_title(title), fontsize=9)
    ax.legend(loc="upper left")  # a fixed place: "best" is slow (and warns) on a loaded machine
    return _png(fig)


def _rows(results_dir: str | Path, protocol: str) -> pd.DataFrame:
    df = report.collect(results_dir)
    sub = df[df["protocol"].astype(str) == protocol]
    if sub.empty:
        present = ", ".join(sorted(str(p) for p in df["protocol"].dropna().unique())) or "none"
        raise ValueError(f"no rows for protocol {protocol!r}; the leaderboard has: {present}")
    return report.ordered(sub).reset_index(drop=True)


# Curves are styled along three independent axes so that 50 conditions stay legible:
# the panel is the occluder, the colour the inpainter, the line style (and marker) the
# verifier. The legend then lists inpainters + verifiers, not every condition.
_CLEAN_COLOUR = "black"
_UNRESTORED_COLOUR = "#7f7f7f"  # inpainter `none`: the occluded face as it is, a baseline like clean
_SERIES_STYLES: list[tuple[Any, str]] = [
    ("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1)), "v"), ((0, (3, 1, 1, 1, 1, 1)), "P"),
]
_ROC_PANEL_IN = (6.4, 3.3)  # one occluder's ROC + DET pair, inches: each axes about 2.5 × 2.3
_HIST_PANEL_IN = (3.1, 2.5)  # one condition's histogram with a three-line title
_BAR_IN = 0.24  # one recovery bar's row, inches
_LEGEND_FONT = 8.5


def _facets(rows: pd.DataFrame) -> pd.DataFrame:
    """How the plots place and style each row (index aligned with ``rows``): ``clean`` (the
    clean reference, drawn in every panel), ``panel`` (its occluder, display form), ``colour``
    (inpainter, ``mask=`` when masks were predicted, and side/seed when they vary),
    ``series`` (verifier, and flip when it varies: each series has its own clean reference),
    ``label`` (all of it, for titles and line labels) and ``hash`` (config hash)."""

    text = {c: rows[c].map(report._text) if c in rows.columns else pd.Series("", index=rows.index)
            for c in ("occlusion", "inpainter", "mask_source", "verifier", "side", "seed", "flip", "config_hash")}

    def col(name: str) -> pd.Series:
        return text[name]

    occ = col("occlusion").replace("", "none")
    inp = col("inpainter").replace("", "none")
    mask = col("mask_source").replace("", "oracle")
    clean = (occ == "none") & (inp == "none") & (mask == "oracle")
    # side and seed mean nothing for the clean condition: compare the occluded rows only
    colour_extra = [c for c in ("side", "seed") if col(c)[~clean].nunique() > 1]
    series_extra = [c for c in ("flip",) if col(c).nunique() > 1]
    out = []
    for i in rows.index:
        colour = display_spec(inp[i]) + (f" · mask={display_spec(mask[i])}" if mask[i] != "oracle" else "")
        colour = " · ".join([colour] + [f"{c}={col(c)[i]}" for c in colour_extra if col(c)[i]])
        series = " · ".join([display_spec(col("verifier")[i]) or "verifier"]
                            + [f"{c}={col(c)[i]}" for c in series_extra])
        panel = "" if clean[i] else display_spec(occ[i])
        label = f"clean · {series}" if clean[i] else f"{panel} · {colour} · {series}"
        out.append({"clean": bool(clean[i]), "panel": panel, "colour": "clean" if clean[i] else colour,
                    "series": series, "label": label, "hash": col("config_hash")[i]})
    return pd.DataFrame(out, index=rows.index)


def _colours(keys: list[str]) -> dict[str, Any]:
    """A colour per inpainter key: grey for ``none`` (unrestored), black for clean, the
    others from tab10 (tab20 beyond nine) without its greys (they would read as baselines);
    colours repeat only beyond 18 keys."""
    from matplotlib import colormaps

    others = [k for k in keys if k not in ("none", "clean")]
    cmap = colormaps["tab10" if len(others) <= 9 else "tab20"]
    palette = [cmap(j) for j in range(cmap.N) if j not in ((7,) if cmap.N == 10 else (14, 15))]
    out: dict[str, Any] = {"clean": _CLEAN_COLOUR, "none": _UNRESTORED_COLOUR}
    out.update({k: palette[j % len(palette)] for j, k in enumerate(others)})
    return out


def _series_styles(series: list[str]) -> dict[str, dict[str, Any]]:
    """Line style and marker per series (verifier); no markers when there is only one."""
    return {s: {"ls": _SERIES_STYLES[j % len(_SERIES_STYLES)][0],
                "marker": _SERIES_STYLES[j % len(_SERIES_STYLES)][1] if len(series) > 1 else None}
            for j, s in enumerate(series)}


def _scores(results_dir, rows: pd.DataFrame) -> list[pd.DataFrame | None]:
    out = []
    for _, r in rows.iterrows():
        try:
            out.append(report.load_scores(results_dir, r))
        except ValueError as exc:
            log.warning("%s", exc)
            out.append(None)
    return out


def _clean_thresholds(facets: pd.DataFrame, scores: list[pd.DataFrame | None]) -> dict[str, float]:
    """The clean best-accuracy threshold of each series (verifier): a verifier's cosines
    mean nothing on another's scale, so each panel gets its own verifier's threshold."""
    from recogbench.metrics import operating_threshold

    out: dict[str, float] = {}
    for i, s in zip(facets.index, scores):
        f = facets.loc[i]
        if s is None or not f["clean"] or f["series"] in out:
            continue
        y = s["issame"].to_numpy().astype(bool)
        if 0 < y.sum() < len(y):
            t = operating_threshold(s["score"].to_numpy(float), y)
            if np.isfinite(t):
                out[f["series"]] = t
    return out


def _blank_handle():
    from matplotlib.lines import Line2D

    return Line2D([], [], color="none")


def _grouped_legend(fig, groups: list[tuple[str, list[tuple[Any, str]]]]):
    """One figure legend below the panels, a column per group (bold title, then its
    entries); stacked in one column when that would be wider than the figure. Constrained
    layout reserves its height; grow the figure by it (:func:`_grow`) so that the axes keep
    their size whatever the number of entries. Returns the Legend."""
    groups = [(title, entries) for title, entries in groups if entries]
    width = fig.get_size_inches()[0]

    def build(ncols: int):
        depth = max(len(entries) for _, entries in groups) + 1
        handles, labels, heads = [], [], []
        for title, entries in groups:
            heads.append(len(labels))
            handles.append(_blank_handle())
            labels.append(title)
            for h, text in entries:
                handles.append(h)
                labels.append(_fit(text, 46, max_lines=2))
            if ncols > 1:  # pad the column: entries fill a legend column by column
                while len(labels) % depth:
                    handles.append(_blank_handle())
                    labels.append(" ")
        leg = fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False,
                         fontsize=_LEGEND_FONT, handlelength=3.2, columnspacing=2.5)
        for k in heads:
            leg.get_texts()[k].set_fontweight("bold")
        return leg

    leg = build(len(groups))
    renderer = fig.canvas.get_renderer()
    if len(groups) > 1 and leg.get_window_extent(renderer).width / fig.dpi > width - 0.2:
        leg.remove()
        leg = build(1)
    return leg


def _grow(fig, *artists) -> None:
    """Make ``fig`` taller by the height of each of ``artists`` (a suptitle, a legend
    outside the axes) and constrained layout's padding around it: the space the layout
    takes from the axes for them, given back, so the axes' size in inches is what the
    figure was planned with, whatever the text."""
    renderer = fig.canvas.get_renderer()
    pad = 2 * fig.get_layout_engine().get()["h_pad"]
    extra = sum(a.get_window_extent(renderer).height / fig.dpi + pad for a in artists if a is not None)
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + extra)


def _style_handle(colour: Any, style: dict[str, Any], lw: float = 1.8):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=colour, lw=lw, ms=4.5, **style)


def roc_det_figure(results_dir: str | Path, protocol: str) -> Figure:
    """The :func:`roc_det` figure (a matplotlib Figure on the Agg canvas).

    Small multiples: one panel per occluder (ROC and DET axes side by side, labelled
    ``"ROC · <occluder>"``/``"DET · <occluder>"``), its inpainters as coloured lines, the
    verifiers as line styles and markers, each verifier's clean curve (black, in its style)
    in every panel; each line's gid is its run's config hash. One legend below the panels
    lists inpainters, verifiers and clean references, so it never squashes the axes.
    Raises ValueError when no run has readable scores with both classes."""
    from sklearn.metrics import roc_curve

    rows = _rows(results_dir, protocol)
    scores = _scores(results_dir, rows)
    facets = _facets(rows)
    curves: dict[int, tuple[np.ndarray, np.ndarray, float, float]] = {}
    for i, s in zip(rows.index, scores):
        if s is None:
            continue
        y = s["issame"].to_numpy().astype(bool)
        n_gen, n_imp = int(y.sum()), int((~y).sum())
        if n_gen == 0 or n_imp == 0:
            log.warning("%s: one class only; no ROC", facets.at[i, "label"])
            continue
        fpr, tpr, _ = roc_curve(y, s["score"].to_numpy(float), drop_intermediate=False)
        # Below one impostor (FAR 0) only the last point means anything: drawn at 1/n, the
        # others would stack on the left spine.
        start = max(int(np.searchsorted(fpr, 1.0 / n_imp)) - 1, 0)
        curves[i] = (fpr[start:], tpr[start:], 1.0 / n_imp, 1.0 / n_gen)
    if not curves:
        raise ValueError(f"protocol {protocol!r}: no run has readable per-pair scores with both classes")
    drawn = facets.loc[list(curves)]
    floor_x = min(c[2] for c in curves.values())
    floor_y = min(c[3] for c in curves.values())
    clean = list(drawn.index[drawn["clean"]])
    panels = list(dict.fromkeys(drawn.loc[~drawn["clean"], "panel"])) or ["clean"]
    colours = _colours(list(dict.fromkeys(drawn["colour"])))
    styles = _series_styles(list(dict.fromkeys(drawn["series"])))

    ncols = 1 if len(panels) == 1 else 2
    nrows = -(-len(panels) // ncols)
    fig = _figure(_ROC_PANEL_IN[0] * ncols, _ROC_PANEL_IN[1] * nrows)
    grid = fig.subfigures(nrows, ncols, squeeze=False)
    for k, panel in enumerate(panels):
        sub = grid.flat[k]
        ax_roc, ax_det = sub.subplots(1, 2)
        ax_roc.set_label(f"ROC · {panel}")
        ax_det.set_label(f"DET · {panel}")
        sub.suptitle(panel, fontsize=11, fontweight="bold")
        members = clean + list(drawn.index[~drawn["clean"] & (drawn["panel"] == panel)])
        for i in members:
            f = drawn.loc[i]
            fpr, tpr, fx, fy = curves[i]
            # the clean reference heavier and beneath the others: a restoration that matches it
            # (the oracle) shows as its colour inside a black outline instead of vanishing
            kw = dict(color=colours[f["colour"]], lw=2.6 if f["clean"] else 1.5, zorder=1.9 if f["clean"] else 2,
                      ms=4, markevery=0.12, label=f["label"], gid=f["hash"], **styles[f["series"]])
            ax_roc.plot(np.clip(fpr, fx, 1), tpr, **kw)
            ax_det.plot(np.clip(fpr, fx, 1), np.clip(1 - tpr, fy, 1), **kw)
        _format_roc(ax_roc, floor_x)
        _format_det(ax_det, floor_x, floor_y)
    title = fig.suptitle(f"ROC and DET · {protocol}", fontsize=12)

    inpainters = [(_style_handle(colours[c], {"ls": "-"}, lw=2.2), c)
                  for c in dict.fromkeys(drawn.loc[~drawn["clean"], "colour"])]
    verifiers = [(_style_handle("#555", styles[s]), s) for s in styles]
    references = [(_style_handle(_CLEAN_COLOUR, styles[drawn.at[i, "series"]], lw=2.6), drawn.at[i, "label"])
                  for i in clean]
    legend = _grouped_legend(fig, [("inpainter (colour)", inpainters), ("verifier (line style)", verifiers),
                                   ("clean reference (black)", references)])
    _grow(fig, title, legend)
    return fig


def _format_roc(ax, floor_x: float) -> None:
    ax.set_xscale("log")
    ax.set_xlim(floor_x, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("FAR (log)", fontsize=9)
    ax.set_ylabel("TAR", fontsize=9)
    ax.set_title("ROC", fontsize=9.5)
    _grid(ax)


def _format_det(ax, floor_x: float, floor_y: float) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor_x, 1)
    ax.set_ylim(floor_y, 1)
    ax.set_xlabel("FMR (log)", fontsize=9)
    ax.set_ylabel("FNMR (log)", fontsize=9)
    ax.set_title("DET", fontsize=9.5)
    _grid(ax)


def _grid(ax) -> None:
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)


def roc_det(results_dir: str | Path, protocol: str) -> bytes:
    """PNG of ROC (TAR vs FAR, log FAR) and DET (FNMR vs FMR, both log) of every condition
    of ``protocol``, from each run's scores.csv, as small multiples (one panel per occluder,
    see :func:`roc_det_figure`). Rates below one pair are drawn at 1/n (the resolution of
    the data)."""
    return _png(roc_det_figure(results_dir, protocol))


def _histogram_layout(facets: pd.DataFrame) -> tuple[int, list[tuple[int, int, int]]]:
    """(ncols, [(row index, grid row, grid column)]): the clean conditions first, then one
    grid row per occluder × verifier with each inpainter in its own column, so a column
    reads as one inpainter; with one inpainter, or more than five, a plain four-wide grid."""
    colours = list(dict.fromkeys(facets.loc[~facets["clean"], "colour"]))
    clean = list(facets.index[facets["clean"]])
    if 2 <= len(colours) <= 5:
        ncols = len(colours)
        cells, r = [], 0
        for j, i in enumerate(clean):
            cells.append((i, r + j // ncols, j % ncols))
        r += -(-len(clean) // ncols)
        occluded = facets[~facets["clean"]]
        for panel in dict.fromkeys(occluded["panel"]):
            for series in dict.fromkeys(occluded["series"]):
                group = occluded[(occluded["panel"] == panel) & (occluded["series"] == series)]
                if group.empty:
                    continue
                taken = set()
                for i in group.index:
                    c = colours.index(group.at[i, "colour"])
                    if c in taken:  # two rows of one colour (should not happen): the next row
                        r, taken = r + 1, set()
                    taken.add(c)
                    cells.append((i, r, c))
                r += 1
        return ncols, cells
    order = clean + list(facets.index[~facets["clean"]])
    ncols = min(4, len(order))
    return ncols, [(i, k // ncols, k % ncols) for k, i in enumerate(order)]


def histograms_figure(results_dir: str | Path, protocol: str) -> Figure:
    """The :func:`histograms` figure: one panel per condition (each axes' gid is its run's
    config hash), titled with its full label; the clean conditions first, then a row per
    occluder and verifier with the inpainters in columns."""
    from recogbench.metrics import FAILED_SCORE

    rows = _rows(results_dir, protocol)
    scores = _scores(results_dir, rows)
    facets = _facets(rows)
    keep = [i for i, s in zip(rows.index, scores) if s is not None]
    if not keep:
        raise ValueError(f"protocol {protocol!r}: no run has readable per-pair scores")
    by_row = dict(zip(rows.index, scores))
    thresholds = _clean_thresholds(facets, scores)
    ncols, cells = _histogram_layout(facets.loc[keep])
    nrows = max(r for _, r, _ in cells) + 1
    fig = _figure(_HIST_PANEL_IN[0] * ncols + 0.3, _HIST_PANEL_IN[1] * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    valid = np.concatenate([by_row[i]["score"].to_numpy(float) for i in keep])
    valid = valid[valid > FAILED_SCORE]
    lo, hi = (max(-1.0, valid.min() - 0.05), min(1.0, valid.max() + 0.05)) if len(valid) else (-1.0, 1.0)
    bins = np.linspace(lo, hi, 51)
    used = set()
    for i, r, c in cells:
        ax = axes[r, c]
        used.add((r, c))
        f = facets.loc[i]
        ax.set_gid(f["hash"])
        s = by_row[i]
        v = s["score"].to_numpy(float)
        y = s["issame"].to_numpy().astype(bool)
        ok = v > FAILED_SCORE
        ax.hist(v[ok & y], bins=bins, density=True, alpha=0.6, color="#2a7ab9", label="genuine")
        ax.hist(v[ok & ~y], bins=bins, density=True, alpha=0.6, color="#e07b39", label="impostor")
        if f["series"] in thresholds:
            ax.axvline(thresholds[f["series"]], color="#333", ls="--", lw=0.9,
                       label="clean best-accuracy threshold (this verifier)")
        ax.set_title(_fit(f["label"], 44), fontsize=8)
        ax.set_xlim(lo, hi)
        ax.tick_params(labelsize=7.5)
        ax.set_yticks([])
        ax.set_xlabel("cosine similarity", fontsize=7.5, labelpad=1)
        failed = int((~ok).sum())
        if failed:
            ax.text(0.02, 0.95, f"{failed} failed", transform=ax.transAxes, fontsize=7, va="top", color="#a00")
    for (r, c), ax in np.ndenumerate(axes):
        if (r, c) not in used:
            ax.set_visible(False)
    first = axes[cells[0][1], cells[0][2]]
    handles, labels = first.get_legend_handles_labels()
    legend = fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False,
                        fontsize=_LEGEND_FONT)
    _grow(fig, fig.suptitle(f"score distributions · {protocol}", fontsize=11), legend)
    return fig


def histograms(results_dir: str | Path, protocol: str) -> bytes:
    """PNG of the genuine and impostor score histograms of every condition of ``protocol``,
    one small panel each (failed pairs left out); dashed: the clean best-accuracy threshold
    of the panel's own verifier. See :func:`histograms_figure`."""
    return _png(histograms_figure(results_dir, protocol))


_RECOVERY = ("recovery_accuracy", "recovery_gap")
_RECOVERY_CLIP = (-1.0, 2.0)  # the axis range; bars beyond it are cut, hatched and labelled with their value


def recovery_figure(results_dir: str | Path, protocol: str) -> Figure | None:
    """The :func:`recovery_bars` figure, or None when there is nothing to plot: a column per
    recovery metric, a row per verifier; horizontal bars, one per restoration, grouped by
    occluder (the same slots in every panel) and coloured by inpainter; each bar's gid is its
    run's config hash. The figure grows in height with the number of bars."""
    rows = _rows(results_dir, protocol)
    facets = _facets(rows)
    inp = rows["inpainter"].map(report._text).replace("", "none")
    keep = ~facets["clean"] & (inp != "none") & (facets["panel"] != "none")
    rows, facets = rows[keep], facets[keep]
    metrics = [m for m in _RECOVERY if m in rows.columns and pd.to_numeric(rows[m], errors="coerce").notna().any()]
    if not metrics:
        return None
    panels = list(dict.fromkeys(facets["panel"]))
    series = list(dict.fromkeys(facets["series"]))
    colour_keys = list(dict.fromkeys(facets["colour"]))
    colours = _colours(colour_keys)
    # One slot per (occluder, inpainter) that any verifier ran, the same in every panel; a gap between occluders.
    slots: dict[tuple[str, str], float] = {}
    centres, y = [], 0.0
    for p in panels:
        start = y
        for c in colour_keys:
            if ((facets["panel"] == p) & (facets["colour"] == c)).any():
                slots[(p, c)] = y
                y += 1.0
        centres.append((start + y - 1.0) / 2)
        y += 0.6
    span = y - 0.6
    panel_h = _BAR_IN * span + 0.9
    fig = _figure(5.4 * len(metrics) + 1.6, panel_h * len(series))
    axes = fig.subplots(len(series), len(metrics), squeeze=False)
    lo, hi = _RECOVERY_CLIP
    for (r, s), (c, m) in ((rs, cm) for rs in enumerate(series) for cm in enumerate(metrics)):
        ax = axes[r, c]
        mine = facets["series"] == s
        vals = pd.to_numeric(rows.loc[mine, m], errors="coerce")
        for i, v in vals.items():
            pos = slots[(facets.at[i, "panel"], facets.at[i, "colour"])]
            shown = float(np.clip(0.0 if not np.isfinite(v) else v, lo, hi))
            (bar,) = ax.barh(pos, shown, height=0.8, color=colours[facets.at[i, "colour"]], gid=facets.at[i, "hash"])
            if not np.isfinite(v):  # run, but recovery is undefined: occlusion did no measurable damage
                ax.annotate("n/a", (0, pos), xytext=(3, 0), textcoords="offset points", va="center",
                            fontsize=7, color="#666")
                continue
            outward = 1 if shown >= 0 else -1
            boxed = {}
            if v != shown:  # cut at the axis: the value goes inside the bar's end, past it there is no room
                bar.set_hatch("///")
                outward = -outward
                boxed = dict(bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
            ax.annotate(f"{v:.2f}", (shown, pos), xytext=(3 * outward, 0), textcoords="offset points",
                        ha="left" if outward > 0 else "right", va="center", fontsize=7, **boxed)
        ax.axvline(0, color="#444", lw=0.8)
        ax.axvline(1, color="#0b6b2f", lw=0.8, ls="--")
        top = pd.to_numeric(rows[m], errors="coerce").dropna()
        ax.set_xlim(max(lo, min(0.0, float(top.min()) if len(top) else 0.0)) - 0.2,
                    min(hi, max(1.0, float(top.max()) if len(top) else 1.0)) + 0.25)
        ax.set_ylim(span - 0.4, -0.6)  # the first occluder on top
        ax.set_yticks(centres, panels, fontsize=8.5)
        ax.tick_params(axis="y", length=0)
        for p in panels[1:]:
            first = min(v for (q, _), v in slots.items() if q == p)
            ax.axhline(first - 0.8, color="#ccc", lw=0.6)
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_xlabel(m.replace("_", " "), fontsize=9)
        ax.set_title(f"{m.replace('_', ' ')} · {s}" if len(series) > 1 else m.replace("_", " "), fontsize=9.5)
    title = fig.suptitle(f"{protocol} · share of the occlusion damage recovered: 1 = back to clean (dashed), "
                         "0 = as occluded", fontsize=9.5)
    _grow(fig, title, _grouped_legend(fig, [("inpainter", [(_bar_handle(colours[k]), k) for k in colour_keys])]))
    return fig


def _bar_handle(colour: Any):
    from matplotlib.patches import Patch

    return Patch(facecolor=colour)


def recovery_bars(results_dir: str | Path, protocol: str) -> bytes | None:
    """PNG of ``recovery_accuracy`` (and ``recovery_gap`` when present) of every restoration
    (inpainter ``none`` left out: it recovers nothing by definition), see
    :func:`recovery_figure`. A missing value (occlusion did no measurable damage) is marked
    "n/a"; values outside [-1, 2] are cut at the axis, hatched and labelled. None when there
    is nothing to plot."""
    fig = recovery_figure(results_dir, protocol)
    return None if fig is None else _png(fig)


def _load_samples(folder: Path) -> dict[str, np.ndarray] | None:
    path = folder / "samples.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in ("pairs", "clean", "occluded", "restored") if k in z.files}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s)", path, exc)
        return None
    if len(data) < 4 or len(data["pairs"]) == 0:
        return None
    return data


def sample_grid(results_dir: str | Path, protocol: str, occlusion: str) -> bytes | None:
    """The sample pairs of one occluder: rows = the K pairs of ``samples.npz``, columns =
    clean | occluded | each inpainter's restoration (the ``none`` inpainter, which equals
    the occluded image, is left out). Uses the runs of ``protocol`` and ``occlusion`` with
    the latest run's occlusion manifest; None when none of them saved samples."""
    rows = _rows(results_dir, protocol)
    rows = rows[rows["occlusion"].map(report._text) == occlusion]
    runs = []
    for _, r in rows.iloc[::-1].iterrows():  # the latest first
        samples = _load_samples(report.run_dir(results_dir, r))
        if samples is not None:
            runs.append((r, samples))
    if not runs:
        return None
    manifest = report._text(runs[0][0].get("manifest_hash"))
    runs = [(r, s) for r, s in runs if report._text(r.get("manifest_hash")) == manifest][::-1]
    base = next((s for r, s in runs if report._text(r["inpainter"]) in ("", "none")), runs[0][1])
    pairs = [int(p) for p in base["pairs"]]
    columns: list[tuple[str, dict[int, np.ndarray]]] = [
        ("clean", dict(zip(pairs, base["clean"]))),
        ("occluded", dict(zip(pairs, base["occluded"]))),
    ]
    restored = [(r, s) for r, s in runs if report._text(r["inpainter"]) not in ("", "none")]
    verifiers = {report._text(r.get("verifier")) for r, _ in restored}
    seen = set()
    for r, s in restored:
        label = display_spec(report._text(r["inpainter"]))
        if len(verifiers) > 1:
            label += f" ({report._text(r.get('verifier'))})"
        if label in seen:
            continue
        seen.add(label)
        columns.append((label, {int(p): img for p, img in zip(s["pairs"], s["restored"])}))

    n_rows, n_cols = len(pairs), len(columns)
    cell = 1.06  # inches: about one image pixel per screen pixel at the figure dpi
    top, left = 0.75, 0.35  # inches for the title and column labels, and the row labels
    width, height = cell * n_cols + left + 0.1, cell * n_rows + top + 0.1
    fig = _figure(width, height, layout=None)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - 0.1 / width, bottom=0.1 / height, top=1 - top / height,
                        wspace=0.04, hspace=0.04)
    for j, (label, images) in enumerate(columns):
        axes[0, j].set_title(_wrap(label), fontsize=8.5)
        for i, p in enumerate(pairs):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            img = images.get(p)
            if img is not None:
                ax.imshow(np.asarray(img, np.uint8), interpolation="nearest")
            else:
                ax.set_facecolor("#eee")
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j == 0:
                ax.set_ylabel(f"pair {p}", fontsize=7.5)
    fig.suptitle(f"{protocol} · {occlusion}", fontsize=10)
    return _png(fig)


def _title(text: str, width: int = 64) -> str:
    """A run plot's title wrapped to the figure: long specs would squash the axes to nothing."""
    import textwrap

    return textwrap.fill(text, width, max_lines=3, placeholder=" …")


def _fit(text: str, width: int, max_lines: int = 3) -> str:
    """``text`` in lines of at most ``width`` characters where possible, broken at spaces
    and after ``:,=/`` (specs have long unbroken options); the last line ends in "…" when
    more would not fit. Keeps titles and legend entries from running into their neighbours."""
    lines, cur = [], ""
    for part in re.split(r"(?<=[:,=/ ])", text):
        if cur and len(cur) + len(part.rstrip()) > width:
            lines.append(cur.rstrip())
            cur = part.lstrip()
        else:
            cur += part
    lines.append(cur.rstrip())
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [lines[max_lines - 1][: width - 2] + " …"]
    return "\n".join(lines)


def _wrap(text: str, width: int = 18) -> str:
    if len(text) <= width:
        return text
    parts = re.split(r"(?<=[:,=/])", text)
    lines, cur = [], ""
    for part in parts:
        if cur and len(cur) + len(part) > width:
            lines.append(cur)
            cur = ""
        cur += part
    lines.append(cur)
    return "\n".join(lines[:3])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80] or "x"


def plot_all(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write every plot of ``results_dir`` as PNGs into ``out_dir`` (atomically); returns
    their paths: per protocol ``<protocol>_roc_det.png``, ``<protocol>_hist.png``,
    ``<protocol>_recovery.png`` (when there are recovery columns) and
    ``<protocol>_samples_<occlusion>.png`` per occluder with samples."""
    df = report.collect(results_dir)
    # After the leaderboard is found (no stray folder for a wrong --results), before any plot.
    out_dir = ensure_writable_dir(out_dir, "plots folder")
    written: list[Path] = []
    used: set[str] = set()

    def save(name: str, png: bytes | None) -> None:
        if png is None:
            return
        stem, k = name, 2
        while stem in used:
            stem, k = f"{name}-{k}", k + 1
        used.add(stem)
        path = out_dir / f"{stem}.png"
        atomic_write_bytes(path, png)
        written.append(path)

    for protocol in dict.fromkeys(report._text(p) for p in df["protocol"]):
        p = _slug(protocol)
        for suffix, fn in (("roc_det", roc_det), ("hist", histograms)):
            try:
                save(f"{p}_{suffix}", fn(results_dir, protocol))
            except ValueError as exc:
                log.warning("%s", exc)
        save(f"{p}_recovery", recovery_bars(results_dir, protocol))
        sub = df[df["protocol"].astype(str) == protocol]
        for occ in dict.fromkeys(report._text(o) for o in sub["occlusion"]):
            if occ not in ("", "none"):
                save(f"{p}_samples_{_slug(occ)}", sample_grid(results_dir, protocol, occ))
    return written
