"""Plots across the conditions of a results folder (PNG bytes; :func:`plot_all` writes files).

Every function reads the folder the pipeline wrote (``leaderboard.csv`` and each run's
``scores.csv`` / ``samples.npz``, the latest run of each condition, see
:func:`recogbench.report.collect`) and returns PNG bytes, or None where there is nothing to
plot. Figures are drawn with matplotlib's object API on the Agg backend (no pyplot state,
safe in threads and headless).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recogbench import report
from recogbench.fileio import atomic_write_bytes, ensure_writable_dir
from recogbench.registry import display_spec

log = logging.getLogger(__name__)

__all__ = ["histograms", "plot_all", "recovery_bars", "roc_det", "run_histogram", "run_roc", "sample_grid"]

_DPI = 110
_LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout=layout)


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


def _labels(rows: pd.DataFrame) -> list[str]:
    """``occlusion · inpainter`` per row, plus whichever of verifier/side/seed/flip vary."""
    occluded = rows[~rows["occlusion"].map(report._text).isin(["", "none"])]
    extra = [c for c in ("verifier", "side", "seed", "flip") if c in rows.columns
             # side and seed mean nothing for the clean condition: compare the occluded rows only
             and (occluded if c in ("side", "seed") else rows)[c].map(report._text).nunique() > 1]
    out = []
    for _, r in rows.iterrows():
        parts = [report.condition_label(r)] + [f"{c}={report._text(r[c])}" for c in extra if report._text(r[c])]
        out.append(" · ".join(parts))
    return out


def _styles(rows: pd.DataFrame) -> list[tuple[Any, Any]]:
    """(colour, linestyle): one colour per occlusion, one line style per inpainter."""
    from matplotlib import colormaps

    occ = list(dict.fromkeys(report._text(v) or "none" for v in rows["occlusion"]))
    inp = list(dict.fromkeys(report._text(v) or "none" for v in rows["inpainter"]))
    cmap = colormaps["tab10" if len(occ) <= 10 else "tab20"]
    out = []
    for _, r in rows.iterrows():
        o, i = report._text(r["occlusion"]) or "none", report._text(r["inpainter"]) or "none"
        colour = "black" if o == "none" else cmap(occ.index(o) % cmap.N)
        out.append((colour, _LINESTYLES[inp.index(i) % len(_LINESTYLES)]))
    return out


def _scores(results_dir, rows: pd.DataFrame) -> list[pd.DataFrame | None]:
    out = []
    for _, r in rows.iterrows():
        try:
            out.append(report.load_scores(results_dir, r))
        except ValueError as exc:
            log.warning("%s", exc)
            out.append(None)
    return out


def _clean_threshold(rows: pd.DataFrame, scores: list[pd.DataFrame | None]) -> float | None:
    from recogbench.metrics import operating_threshold

    for (_, r), s in zip(rows.iterrows(), scores):
        if s is not None and report._text(r["occlusion"]) in ("", "none"):
            y = s["issame"].to_numpy().astype(bool)
            if 0 < y.sum() < len(y):
                t = operating_threshold(s["score"].to_numpy(float), y)
                return t if np.isfinite(t) else None
    return None


def roc_det(results_dir: str | Path, protocol: str) -> bytes:
    """ROC (TAR vs FAR, log FAR) and DET (FNMR vs FMR, both log) of every condition of
    ``protocol`` overlaid, from each run's scores.csv; legend "occlusion · inpainter".
    Rates below one pair are drawn at 1/n (the resolution of the data)."""
    from sklearn.metrics import roc_curve

    rows = _rows(results_dir, protocol)
    scores = _scores(results_dir, rows)
    labels, styles = _labels(rows), _styles(rows)
    fig = _figure(11.5, 4.6)
    ax_roc, ax_det = fig.subplots(1, 2)
    drawn = 0
    floor_x = floor_y = 1.0
    for s, label, (colour, ls) in zip(scores, labels, styles):
        if s is None:
            continue
        y = s["issame"].to_numpy().astype(bool)
        n_gen, n_imp = int(y.sum()), int((~y).sum())
        if n_gen == 0 or n_imp == 0:
            log.warning("%s: one class only; no ROC", label)
            continue
        fpr, tpr, _ = roc_curve(y, s["score"].to_numpy(float), drop_intermediate=False)
        fx, fy = 1.0 / n_imp, 1.0 / n_gen
        floor_x, floor_y = min(floor_x, fx), min(floor_y, fy)
        ax_roc.plot(np.clip(fpr, fx, 1), tpr, color=colour, ls=ls, lw=1.6, label=label)
        ax_det.plot(np.clip(fpr, fx, 1), np.clip(1 - tpr, fy, 1), color=colour, ls=ls, lw=1.6, label=label)
        drawn += 1
    if not drawn:
        raise ValueError(f"protocol {protocol!r}: no run has readable per-pair scores with both classes")
    ax_roc.set_xscale("log")
    ax_roc.set_xlim(floor_x, 1)
    ax_roc.set_ylim(0, 1.01)
    ax_roc.set_xlabel("false accept rate (FAR, log)")
    ax_roc.set_ylabel("true accept rate (TAR)")
    ax_roc.set_title(f"ROC · {protocol}", fontsize=11)
    ax_det.set_xscale("log")
    ax_det.set_yscale("log")
    ax_det.set_xlim(floor_x, 1)
    ax_det.set_ylim(floor_y, 1)
    ax_det.set_xlabel("false match rate (FMR, log)")
    ax_det.set_ylabel("false non-match rate (FNMR, log)")
    ax_det.set_title(f"DET · {protocol}", fontsize=11)
    from matplotlib.ticker import NullFormatter

    for ax in (ax_roc, ax_det):
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
    ax_det.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8.5, frameon=False,
                  title="occlusion · inpainter", title_fontsize=8.5, alignment="left")
    return _png(fig)


def histograms(results_dir: str | Path, protocol: str) -> bytes:
    """Genuine and impostor score histograms of every condition of ``protocol``, one small
    panel each (failed pairs left out); dashed: the clean best-accuracy threshold."""
    from recogbench.metrics import FAILED_SCORE

    rows = _rows(results_dir, protocol)
    scores = _scores(results_dir, rows)
    keep = [i for i, s in enumerate(scores) if s is not None]
    if not keep:
        raise ValueError(f"protocol {protocol!r}: no run has readable per-pair scores")
    labels = _labels(rows)
    threshold = _clean_threshold(rows, scores)
    n = len(keep)
    ncols = min(4, n)
    nrows = -(-n // ncols)
    fig = _figure(3.0 * ncols + 0.4, 2.3 * nrows + 0.5)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    valid = np.concatenate([scores[i]["score"].to_numpy(float) for i in keep])
    valid = valid[valid > FAILED_SCORE]
    lo, hi = (max(-1.0, valid.min() - 0.05), min(1.0, valid.max() + 0.05)) if len(valid) else (-1.0, 1.0)
    bins = np.linspace(lo, hi, 51)
    for ax, i in zip(axes, keep):
        s = scores[i]
        v = s["score"].to_numpy(float)
        y = s["issame"].to_numpy().astype(bool)
        ok = v > FAILED_SCORE
        ax.hist(v[ok & y], bins=bins, density=True, alpha=0.6, color="#2a7ab9", label="genuine")
        ax.hist(v[ok & ~y], bins=bins, density=True, alpha=0.6, color="#e07b39", label="impostor")
        if threshold is not None:
            ax.axvline(threshold, color="#333", ls="--", lw=0.9)
        ax.set_title(labels[i], fontsize=9)
        ax.set_xlim(lo, hi)
        ax.tick_params(labelsize=7.5)
        ax.set_yticks([])
        failed = int((~ok).sum())
        if failed:
            ax.text(0.02, 0.95, f"{failed} failed", transform=ax.transAxes, fontsize=7, va="top", color="#a00")
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[:n]:
        ax.set_xlabel("cosine similarity", fontsize=7.5, labelpad=1)
    axes[0].legend(fontsize=7.5, frameon=False, loc="upper left")
    fig.suptitle(f"score distributions · {protocol}", fontsize=11)
    return _png(fig)


_RECOVERY = ("recovery_accuracy", "recovery_gap")
_RECOVERY_CLIP = (-1.0, 2.0)  # the axis range; bars beyond it are cut, hatched and labelled with their value


def recovery_bars(results_dir: str | Path, protocol: str) -> bytes | None:
    """Grouped bars of ``recovery_accuracy`` (and ``recovery_gap`` when present): one group
    per occluder, one bar per inpainter (``none`` left out: it recovers nothing by
    definition). A missing value (occlusion did no measurable damage) is marked "n/a"; values
    outside [-1, 2] are cut at the axis and labelled. None when there is nothing to plot."""
    rows = _rows(results_dir, protocol)
    occ_col = rows["occlusion"].map(report._text)
    inp_col = rows["inpainter"].map(report._text).replace("", "none").map(display_spec)
    rows = rows[~occ_col.isin(["", "none"]) & (inp_col != "none")]
    metrics = [m for m in _RECOVERY if m in rows.columns and pd.to_numeric(rows[m], errors="coerce").notna().any()]
    if not metrics:
        return None
    from matplotlib import colormaps

    occ_col, inp_col = occ_col[rows.index], inp_col[rows.index]
    occ = list(dict.fromkeys(occ_col))
    inp = list(dict.fromkeys(inp_col))
    cmap = colormaps["tab10"]
    width = 0.8 / len(inp)
    panel_w = max(4.2, 0.42 * len(occ) * len(inp) + 1.2)
    fig = _figure(panel_w * len(metrics) + 1.3, 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)).ravel()
    x = np.arange(len(occ))
    lo, hi = _RECOVERY_CLIP
    for ax, m in zip(axes, metrics):
        vals = pd.to_numeric(rows[m], errors="coerce")
        for k, name in enumerate(inp):
            heights = []
            for o in occ:
                hit = vals[(occ_col == o) & (inp_col == name)]
                # None: this combination was not run; NaN: run, but recovery is undefined
                heights.append(float(hit.iloc[-1]) if len(hit) else None)
            ran = np.array([v is not None for v in heights])
            h = np.array([np.nan if v is None else v for v in heights], float)
            shown = np.clip(np.nan_to_num(h, nan=0.0), lo, hi)
            pos = x - 0.4 + width * (k + 0.5)
            bars = ax.bar(pos[ran], shown[ran], width * 0.9, color=cmap(k % 10), label=_wrap(name, 32))
            for b, v, sv in zip(bars, h[ran], shown[ran]):
                cx = b.get_x() + b.get_width() / 2
                if not np.isfinite(v):
                    ax.annotate("n/a", (cx, 0), ha="center", va="bottom", fontsize=7, color="#666",
                                xytext=(0, 1), textcoords="offset points")
                    continue
                if v != sv:
                    b.set_hatch("///")
                ax.annotate(f"{v:.2f}", (cx, sv), ha="center", va="bottom" if sv >= 0 else "top", fontsize=7,
                            xytext=(0, 1 if sv >= 0 else -1), textcoords="offset points")
        ax.axhline(0, color="#444", lw=0.8)
        ax.axhline(1, color="#0b6b2f", lw=0.8, ls="--")
        top = vals.dropna()
        ax.set_ylim(max(lo, min(0.0, float(top.min()) if len(top) else 0.0)) - 0.15,
                    min(hi, max(1.0, float(top.max()) if len(top) else 1.0)) + 0.2)
        ax.set_xticks(x, occ, fontsize=8.5)
        ax.set_ylabel(m.replace("_", " "), fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_title(f"{m} · {protocol}", fontsize=10)
    axes[-1].legend(title="inpainter", fontsize=8, title_fontsize=8, frameon=False,
                    loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("share of the occlusion damage recovered: 1 = back to clean (dashed), 0 = as occluded", fontsize=9.5)
    return _png(fig)


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
