"""Reading a results folder back: the latest leaderboard, paired comparisons and one HTML report.

A results folder is what :func:`recogbench.pipeline.run` writes: ``leaderboard.csv`` (one
row per evaluated condition, appended on every run) and ``runs/<protocol>/<config_hash>/``
(``row.json``, ``config.json``, ``scores.csv`` and, when present, ``samples.npz``).

* :func:`collect` — the leaderboard with only the latest row of each condition (config hash).
* :func:`leaderboard` — :func:`collect` filtered by protocol and sorted by a column.
* :func:`to_markdown`, :func:`to_csv` — a table as GitHub markdown or CSV text.
* :func:`compare` — two conditions on the same pairs, decided at one frozen threshold,
  compared by McNemar's test.
* :func:`write_report` — one self-contained HTML file (tables, plots, sample grids, configs).
"""

from __future__ import annotations

import base64
import datetime as _dt
import difflib
import html
import json
import math
import numbers
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from recogbench.fileio import atomic_write_bytes, ensure_writable_file
from recogbench.registry import display_spec
from recogbench.results import LEADERBOARD, read_leaderboard

__all__ = [
    "SUMMARY_COLUMNS",
    "accuracy_by_kind",
    "collect",
    "compare",
    "condition_label",
    "leaderboard",
    "load_scores",
    "ordered",
    "reads_clean",
    "run_dir",
    "summary_columns",
    "to_csv",
    "to_markdown",
    "write_report",
]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "protocol", "occlusion", "side", "inpainter", "verifier", "n_pairs", "failures",
    "accuracy_mean", "accuracy_std", "accuracy_ci_low", "accuracy_ci_high",
    "accuracy_clean", "accuracy_occluded", "recovery_accuracy", "recovery_gap",
    "auc", "eer", "tar@far=1e-02", "tar@far=1e-03",
    "fmr@far=1e-02", "fnmr@far=1e-02", "fmr_change@far=1e-02",
    "similarity_gap", "d_prime", "mean_coverage", "psnr_hole", "ssim_hole", "identity_cosine",
    "hole_equal_clean", "reads_clean", "inpainter_settings", "mask_source", "mask_iou", "mask_pixel_accuracy",
    "config_hash",
)
"""The readable subset of leaderboard columns shown by the report (those present are used)."""

_INT_COLUMNS = {"n_pairs", "failures", "seed", "n_genuine", "n_impostor", "embedded", "reused", "protocol_version"}
_TEXT_MISSING = {"nan", "<na>"}

# Short headers for the report's tables; the full column name is the cell's tooltip.
_HEADERS = {
    "n_pairs": "pairs", "failures": "failed", "accuracy_mean": "accuracy", "accuracy_std": "± std",
    "accuracy_ci_low": "acc CI low", "accuracy_ci_high": "acc CI high", "accuracy_clean": "acc clean",
    "accuracy_occluded": "acc occluded", "recovery_accuracy": "recovery (acc)",
    "recovery_gap": "recovery (gap)", "auc": "AUC", "eer": "EER", "tar@far=1e-02": "TAR@1e-2",
    "tar@far=1e-03": "TAR@1e-3", "fmr@far=1e-02": "FMR@1e-2", "fnmr@far=1e-02": "FNMR@1e-2",
    "fmr_change@far=1e-02": "ΔFMR@1e-2", "similarity_gap": "gap", "d_prime": "d′",
    "mean_coverage": "coverage", "psnr_hole": "PSNR hole", "ssim_hole": "SSIM hole",
    "identity_cosine": "ID cosine", "config_hash": "config",
}


# --------------------------------------------------------------------------- reading


def collect(results_dir: str | Path) -> pd.DataFrame:
    """All conditions of ``results_dir/leaderboard.csv``, the latest row of each.

    A condition is identified by its ``config_hash``; running it again appends a new row, and
    only the one with the latest ``timestamp`` is kept (equal timestamps: the later row in the
    file). Rows without a config hash are all kept. The kept rows stay in file order.
    Raises ValueError naming the file when it is missing, empty or not a leaderboard.
    """
    results_dir = Path(results_dir).expanduser()
    path = results_dir / LEADERBOARD if results_dir.suffix != ".csv" else results_dir
    if not path.is_file():
        raise ValueError(f"{path}: no leaderboard here (write one with `recogbench run ... --out {path.parent}`)")
    try:
        df = read_leaderboard(path)
    except OSError as exc:  # a parse failure is a DataError that already names the file
        raise ValueError(f"{path}: cannot read the leaderboard: {exc}") from exc
    missing = [c for c in ("protocol", "occlusion", "inpainter") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a recogbench leaderboard (no column {', '.join(missing)})")
    if df.empty or "config_hash" not in df.columns:
        return df.reset_index(drop=True)
    df = df.reset_index(drop=True)
    when = pd.to_datetime(df["timestamp"], utc=True, errors="coerce", format="ISO8601") if "timestamp" in df.columns \
        else pd.Series(pd.NaT, index=df.index)
    keyed = df["config_hash"].notna()
    order = pd.DataFrame({"when": when, "pos": np.arange(len(df))})
    keep = np.ones(len(df), bool)
    for _, idx in df[keyed].groupby("config_hash", sort=False).groups.items():
        if len(idx) > 1:
            sub = order.loc[idx].sort_values(["when", "pos"], na_position="first", kind="stable")
            keep[sub.index[:-1]] = False
    return df[keep].reset_index(drop=True)


def reads_clean(df: pd.DataFrame) -> pd.Series:
    """Per row, whether its restoration read the unoccluded face (column ``reads_clean``;
    rows written before that column existed: ``oracle``). Such rows are bounds or leaks,
    never ranked with honest restorations."""
    if "reads_clean" in df.columns:
        flags = df["reads_clean"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
    else:
        flags = pd.Series(False, index=df.index)
    if "inpainter" in df.columns:
        flags = flags | (df["inpainter"].astype(str) == "oracle")
    return flags.astype(bool)


def quick_look(df: pd.DataFrame) -> pd.Series:
    """Per row, whether it scored only part of the protocol (``--limit N``, column ``limit``
    > 0): a quick look, never ranked with full runs."""
    if "limit" not in df.columns:
        return pd.Series(False, index=df.index)
    return (pd.to_numeric(df["limit"], errors="coerce").fillna(0) > 0).astype(bool)


def leaderboard(
    results_dir: str | Path,
    *,
    protocol: str | None = None,
    sort: str | None = None,
    ascending: bool = False,
) -> pd.DataFrame:
    """:func:`collect`, keeping only ``protocol`` (when given) and sorted by column ``sort``
    (descending unless ``ascending``; missing values last; ties keep file order). Sorted, the
    rows that read the clean face (:func:`reads_clean`) or scored only part of the protocol
    (:func:`quick_look`) come after all full, honest rows.

    Raises ValueError for a protocol with no rows (naming those present) or an unknown sort
    column (naming the closest columns).
    """
    df = collect(results_dir)
    if protocol is not None:
        present = sorted(str(p) for p in df["protocol"].dropna().unique())
        df = df[df["protocol"].astype(str) == protocol]
        if df.empty:
            raise ValueError(f"no rows for protocol {protocol!r}; the leaderboard has: {', '.join(present) or 'none'}")
    if sort is not None:
        if sort not in df.columns:
            raise ValueError(_unknown_column(sort, df.columns))
        df = df.sort_values(sort, ascending=ascending, na_position="last", kind="stable")
        unranked = reads_clean(df) | quick_look(df)
        df = pd.concat([df[~unranked], df[unranked]])
    return df.reset_index(drop=True)


def _unknown_column(name: str, columns: Iterable[str]) -> str:
    columns = [str(c) for c in columns]
    # A column containing the name ("accuracy" -> accuracy_mean) first, then difflib's closest.
    close = [c for c in columns if name.lower() in c.lower()]
    close = list(dict.fromkeys(close + difflib.get_close_matches(name, columns, n=5, cutoff=0.5)))[:5]
    hint = f"did you mean {', '.join(close)}?" if close else f"columns: {', '.join(columns)}"
    return f"unknown column {name!r}; {hint}"


def summary_columns(df: pd.DataFrame) -> list[str]:
    """The columns of :data:`SUMMARY_COLUMNS` that ``df`` has and that hold any value."""
    return [c for c in SUMMARY_COLUMNS if c in df.columns and not _all_missing(df[c])]


def _all_missing(col: pd.Series) -> bool:
    return all(_missing(v) for v in col)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and (not value.strip() or value.strip().lower() in _TEXT_MISSING)


def format_value(value: Any, column: str = "", decimals: int = 4) -> str:
    """A cell as text: numbers to ``decimals`` places (counts as integers), '' when missing."""
    if _missing(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if column in _INT_COLUMNS and v.is_integer():
            return str(int(v))
        text = f"{v:.{decimals}f}"
        return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.0000"
    return str(value)


def to_markdown(df: pd.DataFrame, columns: Sequence[str] | None = None, *, decimals: int = 4) -> str:
    """``df`` as a GitHub-flavoured markdown table (all columns unless ``columns``).

    Numbers are written with ``decimals`` places (counts as integers), missing values as
    empty cells; ``|`` inside a cell is escaped. Unknown columns raise ValueError.
    """
    columns = list(df.columns) if columns is None else list(columns)
    for c in columns:
        if c not in df.columns:
            raise ValueError(_unknown_column(c, df.columns))

    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in columns]
    lines = ["| " + " | ".join(cell(str(c)) for c in columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(cell(format_value(row[c], c, decimals)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def to_csv(df: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """``df`` (all columns unless ``columns``) as CSV text."""
    columns = list(df.columns) if columns is None else list(columns)
    for c in columns:
        if c not in df.columns:
            raise ValueError(_unknown_column(c, df.columns))
    return df.to_csv(columns=columns, index=False)


# --------------------------------------------------------------------------- runs


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped for reading: by protocol, the clean condition first, then each occlusion
    (in order of first appearance) with its ``none`` inpainter first; the rows of one
    inpainter with oracle and with predicted masks (``mask_source``) side by side."""
    if df.empty:
        return df
    occ = df["occlusion"].map(lambda v: _text(v) or "none")
    inp = df["inpainter"].map(lambda v: _text(v) or "none")
    masks = _mask_sources(df)
    proto = df["protocol"].map(_text)
    first_p = {p: i for i, p in enumerate(dict.fromkeys(proto))}
    first_o = {o: i for i, o in enumerate(dict.fromkeys(occ))}
    first_i = {i: k for k, i in enumerate(dict.fromkeys(inp))}
    clean = (occ == "none") & (masks == "oracle")
    key = pd.DataFrame({
        "p": proto.map(first_p), "clean": (~clean).astype(int),
        "o": occ.map(first_o), "i": (inp != "none").astype(int), "inp": inp.map(first_i),
        "m": (masks != "oracle").astype(int), "pos": np.arange(len(df)),
    }, index=df.index)
    return df.loc[key.sort_values(["p", "clean", "o", "i", "inp", "m", "pos"], kind="stable").index]


def _mask_sources(df: pd.DataFrame) -> pd.Series:
    """Each row's mask source; rows from before the column existed used the oracle mask."""
    if "mask_source" not in df.columns:
        return pd.Series("oracle", index=df.index)
    return df["mask_source"].map(lambda v: _text(v) or "oracle")


def condition_label(row: Any, *, sep: str = " · ") -> str:
    """``occlusion · inpainter`` of a leaderboard row ("clean" for the clean condition), with
    ``mask=SOURCE`` when the inpainter got predicted rather than true masks."""
    from recogbench.registry import display_spec

    occ, inp = _text(row.get("occlusion")) or "none", _text(row.get("inpainter")) or "none"
    mask = _text(row.get("mask_source")) or "oracle"
    if occ == "none" and inp == "none" and mask == "oracle":
        return "clean"
    label = f"{display_spec(occ)}{sep}{display_spec(inp)}"
    return label if mask == "oracle" else f"{label}{sep}mask={display_spec(mask)}"


def run_dir(results_dir: str | Path, row: Any) -> Path:
    """The folder of a leaderboard row's run: ``results_dir/runs/<protocol>/<config_hash>``
    when it exists (so a moved results folder still works), else the row's ``run_dir``."""
    here = Path(results_dir).expanduser() / "runs" / _text(row.get("protocol")) / _text(row.get("config_hash"))
    if here.is_dir() or _missing(row.get("run_dir")):
        return here
    recorded = Path(str(row.get("run_dir"))).expanduser()
    return recorded if recorded.is_dir() else here


def load_scores(results_dir: str | Path, row: Any) -> pd.DataFrame:
    """A run's ``scores.csv`` (columns pair, fold, issame, score, failed, … and, when the run
    wrote them, score_clean and score_occluded). Raises ValueError when it is missing."""
    path = run_dir(results_dir, row) / "scores.csv"
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (the run of {condition_label(row)} has no per-pair scores)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable scores file: {exc}") from exc
    missing = [c for c in ("pair", "issame", "score") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}")
    return df.sort_values("pair", kind="stable").reset_index(drop=True)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _data_fingerprint(results_dir: Path, row: Any) -> str | None:
    cfg = _load_json(run_dir(results_dir, row) / "config.json")
    if isinstance(cfg, dict) and isinstance(cfg.get("identity"), dict):
        data = cfg["identity"].get("data")
        return str(data) if data else None
    return None


# --------------------------------------------------------------------------- compare


def _matches(df: pd.DataFrame, selector: str) -> pd.DataFrame:
    """Rows named by ``selector``: a config-hash prefix, ``occlusion/inpainter`` or an occlusion."""
    sel = selector.strip()
    if not sel:
        return df.iloc[0:0]
    hashes = df["config_hash"].astype(str) if "config_hash" in df.columns else pd.Series("", index=df.index)
    if re.fullmatch(r"[0-9a-fA-F]{4,}", sel):
        hit = df[hashes.str.lower().str.startswith(sel.lower())]
        if not hit.empty:
            return hit
    occ = df["occlusion"].map(lambda v: _text(v) or "none")
    inp = df["inpainter"].map(lambda v: _text(v) or "none")
    hit = df[(occ + "/" + inp) == sel]
    if hit.empty:
        hit = df[occ == sel]
    if hit.empty and sel.lower() == "clean":
        hit = df[occ == "none"]
    return hit


def _describe(row: Any) -> str:
    return f"{_text(row.get('config_hash'))[:10]} ({_text(row.get('protocol'))}: {condition_label(row)}, {_text(row.get('verifier'))})"


def _resolve_pair(df: pd.DataFrame, a: str, b: str) -> tuple[pd.Series, pd.Series]:
    cand = {}
    for name, sel in (("A", a), ("B", b)):
        hit = _matches(df, sel)
        if hit.empty:
            known = sorted({f"{_text(r.occlusion) or 'none'}/{_text(r.inpainter) or 'none'}" for r in df.itertuples()})
            raise ValueError(f"{name} = {sel!r} names no condition (give a config-hash prefix or occlusion/inpainter; "
                             f"known: {', '.join(known)})")
        cand[name] = hit
    if len(cand["A"]) == 1 and len(cand["B"]) == 1:
        return cand["A"].iloc[0], cand["B"].iloc[0]
    # Several candidates: keep the combinations that could be compared at all.
    combos = [(ra, rb) for _, ra in cand["A"].iterrows() for _, rb in cand["B"].iterrows()
              if ra.get("config_hash") != rb.get("config_hash")
              and _text(ra.get("protocol")) == _text(rb.get("protocol"))
              and _text(ra.get("verifier")) == _text(rb.get("verifier"))]
    if len(combos) == 1:
        return combos[0]
    for name, sel in (("A", a), ("B", b)):
        if len(cand[name]) > 1:
            raise ValueError(f"{name} = {sel!r} is ambiguous; give a config-hash prefix of one of: "
                             + "; ".join(_describe(r) for _, r in cand[name].iterrows()))
    raise ValueError(f"cannot tell which conditions {a!r} and {b!r} mean")  # pragma: no cover


def _check_comparable(results_dir: Path, ra: pd.Series, rb: pd.Series) -> None:
    if _text(ra.get("config_hash")) and ra.get("config_hash") == rb.get("config_hash"):
        raise ValueError(f"A and B are the same condition ({_describe(ra)})")
    for col, what in (("protocol", "protocol"), ("verifier", "verifier")):
        if _text(ra.get(col)) != _text(rb.get(col)):
            raise ValueError(f"A and B differ in {what} ({_text(ra.get(col))!r} vs {_text(rb.get(col))!r}): "
                             "McNemar's test needs the same pairs decided by the same verifier")
    ma, mb = _text(ra.get("manifest_hash")), _text(rb.get("manifest_hash"))
    clean_a, clean_b = _text(ra.get("occlusion")) in ("", "none"), _text(rb.get("occlusion")) in ("", "none")
    # The clean condition occludes nothing (no manifest): it shares the pairs of any condition.
    if ma != mb and not (clean_a or clean_b):
        raise ValueError(f"A and B were occluded differently (manifest {ma or 'none'} vs {mb or 'none'}: another "
                         "occluder, seed or side), so their pairs are not the same images; compare conditions "
                         "that share an occlusion, or either one with the clean condition")
    fa, fb = _data_fingerprint(results_dir, ra), _data_fingerprint(results_dir, rb)
    if fa and fb and fa != fb:
        raise ValueError(f"A and B were evaluated on different data ({fa[:12]} vs {fb[:12]})")


def _correct(scores: np.ndarray, issame: np.ndarray, threshold: float) -> np.ndarray:
    from recogbench.metrics import FAILED_SCORE

    return ((scores >= threshold) & (scores != FAILED_SCORE)) == issame


def _format_p(p: float) -> str:
    if p >= 0.01:
        return f"p={p:.2f}"
    if p >= 0.001:
        return f"p={p:.3f}"
    return f"p={p:.1e}"


def _clean_scores(results_dir: Path, df: pd.DataFrame, ra: pd.Series, rb: pd.Series,
                  sa: pd.DataFrame, sb: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    for s, r in ((sa, ra), (sb, rb)):
        if "score_clean" in s.columns and s["score_clean"].notna().all():
            return s["score_clean"].to_numpy(float), f"score_clean of {condition_label(r)} (the same pairs, clean)"
    for s, r in ((sa, ra), (sb, rb)):
        if _text(r.get("occlusion")) in ("", "none"):
            return s["score"].to_numpy(float), f"the clean condition ({_text(r.get('config_hash'))[:10]})"
    clean = df[(df["protocol"].astype(str) == _text(ra.get("protocol")))
               & (df["verifier"].astype(str) == _text(ra.get("verifier")))
               & (df["occlusion"].map(_text).isin(["", "none"]))]
    if "flip" in df.columns:
        clean = clean[clean["flip"].astype(str) == str(ra.get("flip"))]
    fa = _data_fingerprint(results_dir, ra)
    for _, row in clean.iloc[::-1].iterrows():  # the latest first
        if fa and _data_fingerprint(results_dir, row) not in (None, fa):
            continue
        try:
            sc = load_scores(results_dir, row)
        except ValueError:
            continue
        if len(sc) == len(sa) and np.array_equal(sc["issame"].to_numpy(), sa["issame"].to_numpy()):
            return sc["score"].to_numpy(float), f"the clean condition ({_text(row.get('config_hash'))[:10]})"
    return None, ""


def compare(results_dir: str | Path, a: str, b: str, *, alpha: float = 0.05) -> dict[str, Any]:
    """Paired comparison of conditions A and B on the same pairs (McNemar's test).

    ``a``/``b``: a config-hash prefix, or ``"occlusion/inpainter"`` (``"region:twoeyes/telea"``),
    or an occlusion alone when it names one condition (``"none"``/``"clean"``: the clean one).
    Both must share protocol, verifier and occlusion manifest (the clean condition shares the
    pairs of any condition); otherwise ValueError says why.

    Every pair is decided at ONE frozen threshold, the best-accuracy threshold
    (:func:`recogbench.metrics.operating_threshold`, as in the rows' ``threshold@best_acc``)
    of the clean scores of the same pairs: the
    ``score_clean`` column of the runs' scores.csv, else the clean condition's scores from
    the leaderboard; if neither exists, A's own scores (``threshold_source`` says which).
    A pair is correct when ``(score >= t) == issame`` (failed pairs never match).

    Returns ``{"a", "b"}`` labels, ``a_config_hash``, ``b_config_hash``, ``protocol``,
    ``verifier``, ``n_pairs``, ``threshold``, ``threshold_source``, ``accuracy_a``,
    ``accuracy_b``, ``mcnemar`` (``n``, ``a_only``, ``b_only``, ``statistic``, ``p_value``,
    ``method``), ``alpha`` and ``verdict`` ("B is better (p=0.003)", "no significant
    difference (p=0.41)").
    """
    from recogbench import metrics

    results_dir = Path(results_dir).expanduser()
    df = collect(results_dir)
    ra, rb = _resolve_pair(df, a, b)
    _check_comparable(results_dir, ra, rb)
    sa, sb = load_scores(results_dir, ra), load_scores(results_dir, rb)
    if len(sa) != len(sb) or not np.array_equal(sa["pair"].to_numpy(), sb["pair"].to_numpy()) \
            or not np.array_equal(sa["issame"].to_numpy(), sb["issame"].to_numpy()):
        raise ValueError(f"A and B do not hold the same pairs ({len(sa)} vs {len(sb)} rows, or labels differ)")
    issame = sa["issame"].to_numpy().astype(bool)
    clean, source = _clean_scores(results_dir, df, ra, rb, sa, sb)
    if clean is None:
        clean = sa["score"].to_numpy(float)
        source = f"A's own scores ({condition_label(ra)}): no clean scores of these pairs were found"
    threshold = metrics.operating_threshold(clean, issame)
    ca = _correct(sa["score"].to_numpy(float), issame, threshold)
    cb = _correct(sb["score"].to_numpy(float), issame, threshold)
    test = metrics.mcnemar(ca, cb)
    p = float(test["p_value"])
    if p < alpha and test["a_only"] != test["b_only"]:
        verdict = f"{'B' if test['b_only'] > test['a_only'] else 'A'} is better ({_format_p(p)})"
    else:
        verdict = f"no significant difference ({_format_p(p)})"
    return {
        "a": condition_label(ra, sep="/"),
        "b": condition_label(rb, sep="/"),
        "a_config_hash": _text(ra.get("config_hash")),
        "b_config_hash": _text(rb.get("config_hash")),
        "protocol": _text(ra.get("protocol")),
        "verifier": _text(ra.get("verifier")),
        "n_pairs": int(len(issame)),
        "threshold": threshold,
        "threshold_source": source,
        "accuracy_a": float(ca.mean()),
        "accuracy_b": float(cb.mean()),
        "mcnemar": dict(test),
        "alpha": alpha,
        "verdict": verdict,
    }


# --------------------------------------------------------------------------- HTML report

_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee8; --band:#f5f7fb; --accent:#2456a6; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Helvetica, Arial, sans-serif;
       color:var(--fg); background:#fff; }
header { padding:22px 32px 16px; background:#1f2a44; color:#fff; }
header h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header .meta { color:#c8d1e6; font-size:13px; }
header .meta span { margin-right:18px; }
nav { padding:8px 32px; background:var(--band); border-bottom:1px solid var(--line); font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:16px; }
main { padding:8px 32px 40px; max-width:1500px; }
h2 { font-size:19px; margin:28px 0 8px; padding-bottom:4px; border-bottom:2px solid var(--line); }
h3 { font-size:15px; margin:20px 0 6px; }
p.note { color:var(--muted); margin:4px 0 10px; font-size:13px; }
/* Wide and long tables scroll inside their box (the page never scrolls sideways); the header
   row and the first column stay in view while they do. */
.scroll { overflow:auto; max-height:80vh; border:1px solid var(--line); border-radius:6px; }
table.lb { border-collapse:separate; border-spacing:0; width:100%; font-size:12.5px; }
table.lb th, table.lb td { padding:5px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
table.lb th { background:var(--band); text-align:left; font-weight:600; position:sticky; top:0; z-index:2; }
table.lb td:first-child, table.lb th:first-child { position:sticky; left:0; box-shadow:inset -1px 0 0 var(--line); }
table.lb td:first-child { background:#fff; z-index:1; }
table.lb th:first-child { z-index:3; }
table.lb caption { text-align:left; padding:6px 8px; font-weight:600; }
table.lb td.num, table.lb th.num { text-align:right; font-variant-numeric:tabular-nums; }
table.lb tbody tr:nth-child(even), table.lb tbody tr:nth-child(even) td:first-child { background:#fafbfd; }
table.lb tbody tr:hover, table.lb tbody tr:hover td:first-child { background:#eef3fb; }
table.lb tbody tr.clean td:first-child { background:#f1f6ee; }
table.lb tbody tr.leak td:first-child { background:#fbf0e6; }
table.lb td.best { font-weight:700; color:#0b6b2f; }
table.lb td.hash { font-family:ui-monospace, "DejaVu Sans Mono", monospace; color:var(--muted); }
table.lb tr.clean td { background:#f1f6ee; }
table.lb tr.leak td { background:#fbf0e6; color:#6b4a1f; }
table.lb span.leak { font-size:11px; font-weight:600; color:#a3261b; margin-left:6px; }
figure { margin:10px 0 18px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px; background:#fff; }
figcaption { color:var(--muted); font-size:12.5px; margin-top:2px; }
.runs { display:grid; grid-template-columns:repeat(auto-fill, minmax(min(560px, 100%), 1fr)); gap:12px; }
.runs section { border:1px solid var(--line); border-radius:6px; padding:8px 14px; min-width:0; }
.runs pre { max-height:420px; overflow:auto; }
.grids { display:flex; flex-wrap:wrap; gap:8px 22px; align-items:flex-start; }
.grids figure { margin:6px 0; }
table.lb td.better { color:#0b6b2f; font-weight:600; }
table.lb td.worse { color:#a3261b; font-weight:600; }
.runs h4 { margin:4px 0 6px; font-size:14px; overflow-wrap:anywhere; }
h3 .count { color:var(--muted); font-weight:400; font-size:13px; margin-left:6px; }
nav.sub { padding:4px 0 0; background:none; border:0; }
.matrices { display:flex; flex-wrap:wrap; gap:12px 22px; align-items:flex-start; }
.matrices .scroll { flex:1 1 420px; min-width:0; }
.matrices table.lb th { white-space:normal; overflow-wrap:anywhere; min-width:5.5em; vertical-align:bottom; }
table.kv { border-collapse:collapse; font-size:12.5px; }
table.kv td { padding:2px 14px 2px 0; vertical-align:top; }
table.kv td:first-child { color:var(--muted); }
code, pre { font-family:ui-monospace, "DejaVu Sans Mono", monospace; font-size:12px; }
pre { background:var(--band); border:1px solid var(--line); border-radius:4px; padding:8px 10px; overflow-x:auto; }
details summary { cursor:pointer; color:var(--accent); margin:4px 0; }
p.common { margin:4px 0 8px; font-size:13px; color:var(--muted); }
p.common b { color:var(--fg); font-weight:600; margin-left:4px; }
details.glossary { font-size:12.5px; margin:6px 0 4px; }
.empty { color:var(--muted); font-style:italic; }
footer { color:var(--muted); font-size:12px; padding:12px 32px 30px; border-top:1px solid var(--line); }
"""

# Records on <body> how many images decoded (data-images-loaded) out of data-images-total,
# so a headless browser (and the tests) can check the embedded images really render.
_SCRIPT = """
(function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute("data-images-total", String(imgs.length));
  function check() {
    if (!imgs.every(function (i) { return i.complete; })) return;
    var ok = imgs.filter(function (i) { return i.naturalWidth > 0 && i.naturalHeight > 0; }).length;
    document.body.setAttribute("data-images-loaded", String(ok));
  }
  imgs.forEach(function (i) { i.addEventListener("load", check); i.addEventListener("error", check); });
  window.addEventListener("load", check);
  // A page wider than the window scrolls sideways as a whole: wide tables must scroll in their box instead.
  function widths() {
    document.body.setAttribute("data-page-width", String(document.documentElement.scrollWidth));
    document.body.setAttribute("data-view-width", String(document.documentElement.clientWidth));
  }
  window.addEventListener("load", widths);
  widths();
  check();
})();
"""

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">{cap}</figure>'


def _anchor(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts)).strip("-").lower() or "x"


# (header, leaderboard columns, definition) of the report's table, in order.
_DISPLAY: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("occlusion", ("occlusion",), "occluder spec (none = the clean condition)"),
    ("side", ("side",), "which image of each pair was occluded"),
    ("inpainter", ("inpainter",), "restoration applied to the occluded image"),
    ("mask", ("mask_source",), "where the inpainter's hole came from: oracle (the occluder's exact mask) or a segmenter"),
    ("verifier", ("verifier",), "face recogniser"),
    ("pairs", ("n_pairs",), "pairs evaluated"),
    ("failed", ("failures",), "pairs with an unusable face (scored as non-matches)"),
    ("accuracy ± std", ("accuracy_mean", "accuracy_std"), "10-fold verification accuracy, mean ± std over folds"),
    ("95% CI", ("accuracy_ci_low", "accuracy_ci_high"), "bootstrap 95% interval of the accuracy"),
    ("acc clean", ("accuracy_clean",), "accuracy of the same pairs without occlusion"),
    ("acc occluded", ("accuracy_occluded",), "accuracy of the same pairs occluded, not restored"),
    ("recovery acc", ("recovery_accuracy",), "(restored − occluded) / (clean − occluded) accuracy; empty when occlusion did no damage"),
    ("recovery gap", ("recovery_gap",), "the same ratio for the genuine−impostor similarity gap"),
    ("AUC", ("auc",), "area under the ROC curve"),
    ("EER", ("eer",), "equal error rate"),
    ("TAR@1e-2", ("tar@far=1e-02",), "true accept rate at 1% false accept rate"),
    ("TAR@1e-3", ("tar@far=1e-03",), "true accept rate at 0.1% false accept rate"),
    ("FMR@1e-2", ("fmr@far=1e-02",), "false match rate at the threshold frozen on clean faces for FMR 1%"),
    ("FNMR@1e-2", ("fnmr@far=1e-02",), "false non-match rate at that frozen threshold"),
    ("ΔFMR@1e-2", ("fmr_change@far=1e-02",), "FMR change vs clean at that threshold (> 0: more impostors accepted)"),
    ("gap", ("similarity_gap",), "mean genuine − mean impostor cosine"),
    ("d′", ("d_prime",), "gap / pooled standard deviation"),
    ("coverage", ("mean_coverage",), "mean share of the face occluded"),
    ("PSNR hole", ("psnr_hole",), "PSNR of the restoration inside the hole (dB)"),
    ("SSIM hole", ("ssim_hole",), "SSIM of the restoration inside the hole"),
    ("ID cosine", ("identity_cosine",), "cosine between the clean and the restored face's embeddings"),
    ("mask IoU", ("mask_iou",), "IoU of the predicted hole masks with the true ones (empty: oracle masks, or photos with no true mask)"),
    ("hole = clean", ("hole_equal_clean",), "share of hole pixels within one 8-bit level of the clean face (a leak detector; 1 for oracle)"),
    ("settings", ("inpainter_settings",), "the inpainter's settings and checkpoint digests"),
    ("config", ("config_hash",), "config hash: links to the run below"),
)
_TEXT_DISPLAY = {"occlusion", "side", "inpainter", "mask", "verifier", "config", "settings"}
# Shown once above the table instead of in every row when all rows agree.
_COMMON = {"side", "mask", "verifier", "pairs", "failed", "acc clean"}


def _display_cell(header: str, cols: tuple[str, ...], row: pd.Series) -> str:
    values = [row.get(c) for c in cols]
    if header == "accuracy ± std":
        mean, std = (format_value(v, c) for v, c in zip(values, cols))
        return f"{mean} ± {std}" if mean and std else mean
    if header == "95% CI":
        lo, hi = (format_value(v, c) for v, c in zip(values, cols))
        return f"[{lo}, {hi}]" if lo and hi else ""
    return format_value(values[0], cols[0])


def _table_html(df: pd.DataFrame) -> str:
    shown = [(h, cols, d) for h, cols, d in _DISPLAY
             if all(c in df.columns for c in cols) and not _all_missing(df[cols[0]])]
    cells = {h: [_display_cell(h, cols, r) for _, r in df.iterrows()] for h, cols, _ in shown}
    common = []
    if len(df) > 1:
        for h, _, _ in shown:
            values = {v for v in cells[h] if v} if h == "side" else set(cells[h])
            if h in _COMMON and len(values) == 1:
                common.append((h, values.pop()))
    common_names = {h for h, _ in common}
    shown = [s for s in shown if s[0] not in common_names]
    best = ""
    leaks = reads_clean(df)
    partial = quick_look(df)
    honest = pd.to_numeric(df["accuracy_mean"], errors="coerce")[~leaks & ~partial] if "accuracy_mean" in df.columns else None
    if honest is not None and honest.notna().any():
        best = format_value(honest.max(), "accuracy_mean")
    head = "".join(
        f'<th class="{"" if h in _TEXT_DISPLAY else "num"}" title="{_e(" / ".join(cols) + ": " + d)}">{_e(h)}</th>'
        for h, cols, d in shown
    )
    body = []
    for i, (_, row) in enumerate(df.iterrows()):
        tds = []
        for h, cols, _ in shown:
            text = cells[h][i]
            cls = [] if h in _TEXT_DISPLAY else ["num"]
            if h == "accuracy ± std" and best and text.split(" ")[0] == best and not leaks.iloc[i] and not partial.iloc[i]:
                cls.append("best")
            if h == "inpainter" and (leaks.iloc[i] or partial.iloc[i]):
                inner = _e(text)
                if leaks.iloc[i]:
                    inner += ('<span class="leak" title="this restoration reads the unoccluded face: an upper bound '
                              'or a leak, not a recovery result">reads clean pixels</span>')
                if partial.iloc[i]:
                    inner += (f'<span class="leak" title="--limit: only the first pairs of each class in each fold '
                              f'were scored; never ranked with full runs">quick look ({int(float(row.get("limit")))}/class/fold)</span>')
            elif h == "config":
                cls.append("hash")
                inner = f'<a href="#run-{_e(_anchor(text))}" title="{_e(text)}">{_e(text[:10])}</a>' if text else ""
            else:
                inner = _e(text)
            tds.append(f'<td class="{" ".join(cls)}">{inner}</td>')
        is_clean = _text(row.get("occlusion")) in ("", "none") and (_text(row.get("mask_source")) or "oracle") == "oracle"
        clean = ' class="clean"' if is_clean else (' class="leak"' if leaks.iloc[i] else "")
        body.append(f"<tr{clean}>{''.join(tds)}</tr>")
    note = ""
    if common:
        note = ('<p class="common">Common to every row: '
                + " · ".join(f"<b>{_e(h)}</b> {_e(v)}" for h, v in common) + "</p>")
    glossary = "".join(f"<tr><td>{_e(h)}</td><td><code>{_e(', '.join(cols))}</code></td><td>{_e(d)}</td></tr>"
                       for h, cols, d in shown)
    return (f'{note}<div class="scroll"><table class="lb"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
            f'<details class="glossary"><summary>column definitions</summary><table class="kv">{glossary}</table></details>')


HOLE_METRICS = (("psnr_hole", "PSNR (dB) ↑"), ("ssim_hole", "SSIM ↑"), ("l1_hole", "L1 ↓"), ("mse_hole", "MSE ↓"))


def quality_by_kind(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One hole-quality ``metric`` (e.g. ``mse_hole``) as occluder kind × inpainter, from
    leaderboard rows with an occluder (``none``, the unrestored baseline, included)."""
    if metric not in df.columns:
        return pd.DataFrame()
    rows = df[~df["occlusion"].astype(str).isin(["", "none", "nan"])]
    if rows.empty:
        return pd.DataFrame()
    values = pd.to_numeric(rows[metric], errors="coerce")
    table = rows.assign(_v=values, _inp=[condition_label(r).split(" · ", 1)[-1] for _, r in rows.iterrows()])
    return table.pivot_table(index="occlusion", columns="_inp", values="_v", aggfunc="last", sort=False)


def _quality_by_kind_html(df: pd.DataFrame) -> str:
    parts = []
    for metric, header in HOLE_METRICS:
        table = quality_by_kind(df, metric)
        if table.empty or table.isna().all().all():
            continue
        head = "".join(f'<th class="num">{_e(c)}</th>' for c in table.columns)
        body = "".join(
            f"<tr><td>{_e(kind)}</td>" + "".join(f'<td class="num">{_e(format_value(v, metric))}</td>' for v in r)
            + "</tr>" for kind, r in table.iterrows())
        parts.append(f'<div class="scroll"><table class="lb"><caption>{_e(metric)}: {_e(header)}</caption>'
                     f"<thead><tr><th>occluder</th>{head}</tr></thead><tbody>{body}</tbody></table></div>")
    return "".join(parts)


def accuracy_by_kind(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Verification accuracy (``accuracy_mean``) as occluder × inpainter, one table per
    verifier (keyed by its display spec): the leaderboard's occluded rows folded so that 50
    conditions read as a few small matrices. Columns are :func:`condition_label`'s inpainter
    part (``mask=`` included); the latest row of each cell."""
    if "accuracy_mean" not in df.columns or "verifier" not in df.columns:
        return {}
    rows = df[~df["occlusion"].map(_text).isin(["", "none"])]
    out = {}
    for verifier in dict.fromkeys(rows["verifier"].map(_text)):
        mine = rows[rows["verifier"].map(_text) == verifier]
        table = mine.assign(_v=pd.to_numeric(mine["accuracy_mean"], errors="coerce"),
                            _occ=mine["occlusion"].map(lambda v: display_spec(_text(v))),
                            _inp=[condition_label(r).split(" · ", 1)[-1] for _, r in mine.iterrows()])
        out[display_spec(verifier)] = table.pivot_table(index="_occ", columns="_inp", values="_v", aggfunc="last",
                                                        sort=False).rename_axis(index=None, columns=None)
    return out


def _accuracy_by_kind_html(df: pd.DataFrame) -> str:
    """:func:`accuracy_by_kind` as HTML tables side by side, the clean accuracy of each
    verifier in its caption and the best honest restoration of each occluder in bold."""
    leaks = reads_clean(df)
    leaky = {condition_label(r).split(" · ", 1)[-1] for _, r in df[leaks].iterrows()}
    clean = df[df["occlusion"].map(_text).isin(["", "none"]) & df["inpainter"].map(_text).isin(["", "none"])]
    parts = []
    for verifier, table in accuracy_by_kind(df).items():
        if table.empty:
            continue
        base = clean[clean["verifier"].map(lambda v: display_spec(_text(v))) == verifier]
        caption = f"accuracy · {verifier}"
        if len(base):
            caption += f" · clean {format_value(base['accuracy_mean'].iloc[-1], 'accuracy_mean')}"
        head = "".join(f'<th class="num">{_e(c)}</th>' for c in table.columns)
        honest = [c for c in table.columns if c not in leaky and c != "none"]
        body = []
        for kind, r in table.iterrows():
            best = r[honest].max() if honest and r[honest].notna().any() else None
            cells = "".join(
                f'<td class="num{" best" if best is not None and c in honest and v == best else ""}">'
                f"{_e(format_value(v, 'accuracy_mean'))}</td>" for c, v in r.items())
            body.append(f"<tr><td>{_e(kind)}</td>{cells}</tr>")
        parts.append(f'<div class="scroll"><table class="lb"><caption>{_e(caption)}</caption>'
                     f"<thead><tr><th>occluder</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    return f'<div class="matrices">{"".join(parts)}</div>' if parts else ""


def _run_section(results_dir: Path, row: pd.Series) -> str:
    folder = run_dir(results_dir, row)
    chash = _text(row.get("config_hash"))
    title = f"{_text(row.get('protocol'))} · {condition_label(row)} · {_text(row.get('verifier'))}"
    facts = [
        ("config hash", chash), ("accuracy", format_value(row.get("accuracy_mean"), "accuracy_mean")
                                 + (f" ± {format_value(row.get('accuracy_std'))}" if not _missing(row.get("accuracy_std")) else "")),
        ("AUC / EER", f"{format_value(row.get('auc'))} / {format_value(row.get('eer'))}"),
        ("side", _text(row.get("side")) or "—"), ("seed", format_value(row.get("seed"), "seed")),
        ("manifest", _text(row.get("manifest_hash")) or "—"), ("timestamp", _text(row.get("timestamp"))),
        ("device / provider", f"{_text(row.get('device'))} / {_text(row.get('provider'))}"),
        ("code", f"recogbench {_text(row.get('recogbench_version'))} ({_text(row.get('code_revision'))})"),
        ("folder", str(folder)),
    ]
    kv = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in facts if v.strip(" /"))
    parts = [f'<section id="run-{_e(_anchor(chash))}"><h4>{_e(title)}</h4><table class="kv">{kv}</table>']
    for name in ("config.json", "row.json"):
        text = (folder / name).read_text(errors="replace") if (folder / name).is_file() else ""
        if text:
            try:
                text = json.dumps(json.loads(text), indent=2, sort_keys=True)
            except ValueError:
                pass
            parts.append(f"<details><summary>{_e(name)}</summary><pre>{_e(text)}</pre></details>")
        elif name == "config.json":
            parts.append(f'<p class="empty">{_e(name)} is missing from {_e(folder)}</p>')
    parts.append("</section>")
    return "".join(parts)


def _recogniser(rows: pd.DataFrame) -> pd.Series:
    """Per row, what decides its scores besides the images: the verifier (and flip). A
    restoration is only ever compared with rows of the same recogniser."""
    out = rows["verifier"].map(_text) if "verifier" in rows.columns else pd.Series("", index=rows.index)
    if "flip" in rows.columns:
        out = out + "|" + rows["flip"].map(_text)
    return out


def _paired_tests_html(results_dir: Path, rows: pd.DataFrame, alpha: float = 0.05) -> str:
    """McNemar's test of each restoration against leaving the face occluded (inpainter
    ``none``, same occlusion manifest, same verifier), at the clean-calibrated threshold,
    with Holm's adjustment over all the table's tests (verdicts use the adjusted p);
    '' if none apply."""
    tests: list[tuple[str, str, str, dict[str, Any] | None, str]] = []  # occlusion, inpainter, verifier, result, error
    occ = rows["occlusion"].map(_text)
    inp = rows["inpainter"].map(_text).replace("", "none")
    who = _recogniser(rows)
    several = rows["verifier"].map(_text).nunique() > 1 if "verifier" in rows.columns else False
    for o, w in dict.fromkeys(zip(occ, who)):
        if o in ("", "none"):
            continue
        base = rows[(occ == o) & (who == w) & (inp == "none")]
        if base.empty:
            continue
        b0 = base.iloc[-1]
        for _, r in rows[(occ == o) & (who == w) & (inp != "none")].iterrows():
            if _text(r.get("manifest_hash")) != _text(b0.get("manifest_hash")):
                continue
            verifier = display_spec(_text(r.get("verifier")))
            try:
                res = compare(results_dir, _text(b0["config_hash"]), _text(r["config_hash"]))
            except (ValueError, ImportError, AttributeError) as exc:
                tests.append((o, _text(r["inpainter"]), verifier, None, str(exc)))
                continue
            tests.append((o, _text(r["inpainter"]), verifier, res, ""))
    if not tests:
        return ""
    from recogbench import metrics

    # Many restorations tested at once: control the family-wise error (Holm), not each test's.
    adjusted = iter(metrics.holm([float(t[3]["mcnemar"]["p_value"]) for t in tests if t[3] is not None]))
    lines = []
    for o, inpainter, verifier, res, error in tests:
        vcell = f"<td>{_e(verifier)}</td>" if several else ""
        if res is None:
            lines.append(f'<tr><td>{_e(o)}</td><td>{_e(inpainter)}</td>{vcell}'
                         f'<td colspan="7" class="empty">{_e(error)}</td></tr>')
            continue
        m = res["mcnemar"]
        p_holm = float(next(adjusted))
        if p_holm < alpha and m["a_only"] != m["b_only"]:
            better = m["b_only"] > m["a_only"]
            verdict, cls = (f"restoration is {'better' if better else 'worse'} (Holm {_format_p(p_holm)})",
                            "better" if better else "worse")
        else:
            verdict, cls = f"no significant difference (Holm {_format_p(p_holm)})", ""
        lines.append(
            f"<tr><td>{_e(o)}</td><td>{_e(inpainter)}</td>{vcell}"
            f'<td class="num">{res["accuracy_a"]:.4f}</td><td class="num">{res["accuracy_b"]:.4f}</td>'
            f'<td class="num">{m["a_only"]}</td><td class="num">{m["b_only"]}</td>'
            f'<td class="num">{_format_p(float(m["p_value"]))[2:]}</td><td class="num">{_format_p(p_holm)[2:]}</td>'
            f'<td class="{cls}">{_e(verdict)}</td></tr>'
        )
    n_tests = sum(t[3] is not None for t in tests)
    head = ("<tr><th>occlusion</th><th>inpainter</th>" + ("<th>verifier</th>" if several else "")
            + "<th class=\"num\">acc occluded</th>"
            "<th class=\"num\">acc restored</th><th class=\"num\">only occluded right</th>"
            "<th class=\"num\">only restored right</th><th class=\"num\">p (McNemar)</th>"
            "<th class=\"num\">p (Holm)</th><th>verdict</th></tr>")
    return ('<p class="note">Each restoration against the same faces left occluded, by the same verifier: '
            "every pair decided at one threshold, the best-accuracy threshold of the clean scores of the same "
            f"pairs; McNemar's test on the pairs the two decide differently. The {n_tests} tests of this table are "
            f"corrected together by Holm's step-down method, and verdicts use the adjusted p (α = {alpha:g}), so "
            "the chance of any false verdict in the table stays below α.</p>"
            f'<div class="scroll"><table class="lb"><thead>{head}</thead><tbody>{"".join(lines)}</tbody></table></div>')


def _safe_plot(fn, *args) -> tuple[bytes | None, str]:
    try:
        return fn(*args), ""
    except (ValueError, OSError) as exc:
        return None, str(exc)


def render_html(results_dir: str | Path, *, title: str = "recogbench report") -> str:
    """The report of :func:`write_report` as a string."""
    from recogbench import __version__, plots

    results_dir = Path(results_dir).expanduser()
    df = ordered(collect(results_dir))
    protocols = list(dict.fromkeys(_text(p) for p in df["protocol"]))
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    nav = ['<a href="#leaderboard">Leaderboard</a>']
    nav += [f'<a href="#{_e(_anchor("p", p))}">{_e(p)}</a>' for p in protocols]
    nav.append('<a href="#runs">Runs</a>')

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><div class=\"meta\">"
        f"<span>generated {_e(now)}</span><span>recogbench {_e(__version__)}</span>"
        f"<span>{len(df)} condition{'s' if len(df) != 1 else ''} · {len(protocols)} protocol{'s' if len(protocols) != 1 else ''}</span>"
        f"<span>results: {_e(results_dir)}</span></div></header>",
        f"<nav>{''.join(nav)}</nav><main>",
        '<h2 id="leaderboard">Leaderboard</h2>',
        '<p class="note">The latest row of each condition (config hash). Numbers to 4 decimals; '
        "an empty cell is not available (e.g. TAR at a FAR too small for the number of impostors). "
        "Bold: the best accuracy of the protocol among honest restorations; green rows: the clean condition; "
        "orange rows, marked <i>reads clean pixels</i>: restorations that read the unoccluded face (the "
        "<code>oracle</code> upper bound, <code>id-inpainter:blend=published</code>), never ranked with the others.</p>",
    ]
    for p in protocols:
        sub = df[df["protocol"].astype(str) == p]
        out.append(f"<h3>{_e(p)}</h3>")
        out.append(_table_html(sub))

    for p in protocols:
        sub = df[df["protocol"].astype(str) == p]
        out.append(f'<h2 id="{_e(_anchor("p", p))}">{_e(p)}</h2>')
        # With tens of conditions a protocol's section is long: a line of links to its parts.
        sections = [("accuracy", "Accuracy by occluder"), ("roc", "ROC / DET"), ("hist", "Score histograms"),
                    ("recovery", "Recovery"), ("quality", "Restoration quality"), ("tests", "Paired tests"),
                    ("samples", "Samples"), ("runs", "Runs")]
        at = len(out)

        def heading(key: str, title: str) -> str:
            return f'<h3 id="{_e(_anchor("p", p, key))}">{_e(title)}</h3>'

        matrices = _accuracy_by_kind_html(sub)
        if matrices:
            out.append(heading("accuracy", "Accuracy by occluder"))
            out.append('<p class="note">10-fold accuracy of each occluder (rows) and inpainter (columns), a table per '
                       "verifier; bold: the best honest restoration of the occluder.</p>")
            out.append(matrices)
        png, err = _safe_plot(plots.roc_det, results_dir, p)
        out.append(heading("roc", "ROC / DET"))
        out.append(_img(png, f"ROC and DET curves, {p}",
                        "ROC (true accept rate vs false accept rate) and DET (false non-match vs false match "
                        "rate) from the per-pair scores: a panel per occluder, the inpainters as colours, the "
                        "verifiers as line styles, each verifier's clean curve (black) in every panel.") if png
                   else f'<p class="empty">No ROC/DET plot: {_e(err)}</p>')
        png, err = _safe_plot(plots.histograms, results_dir, p)
        out.append(heading("hist", "Score histograms"))
        out.append(_img(png, f"score histograms, {p}",
                        "Genuine vs impostor cosine similarity per condition (dashed: the clean best-accuracy "
                        "threshold of the panel's verifier, when its clean condition was run).") if png
                   else f'<p class="empty">No histograms: {_e(err)}</p>')
        png, _ = _safe_plot(plots.recovery_bars, results_dir, p)
        if png:
            out.append(heading("recovery", "Recovery"))
            out.append(_img(png, f"recovery, {p}", "Share of the occlusion damage each inpainter recovers "
                            "(0 = no better than occluded, 1 = back to clean)."))
        occlusions = [o for o in dict.fromkeys(_text(v) for v in sub["occlusion"]) if o not in ("", "none")]
        grids = []
        for occ in occlusions:
            png, _ = _safe_plot(plots.sample_grid, results_dir, p, occ)
            if png:
                grids.append(_img(png, f"samples, {p}, {occ}: clean | occluded | restorations"))
        by_kind = _quality_by_kind_html(sub)
        if by_kind:
            out.append(heading("quality", "Restoration quality by occluder"))
            out.append('<p class="note">Inside the hole only, per occluder (rows) and inpainter (columns), on the '
                       "[0, 1] pixel scale; the latest row of each condition.</p>")
            out.append(by_kind)
        tests = _paired_tests_html(results_dir, sub)
        if tests:
            out.append(heading("tests", "Paired tests"))
            out.append(tests)
        if grids:
            out.append(heading("samples", "Samples"))
            out.append('<p class="note">The first occluded pairs of each occluder: the occluded image clean, '
                       "occluded, and as each inpainter restored it.</p>")
            out.append(f'<div class="grids">{"".join(grids)}</div>')
        present = "".join(out[at:])
        links = [f'<a href="#{_e(_anchor("p", p, key))}">{_e(name)}</a>' for key, name in sections
                 if f'id="{_anchor("p", p, key)}"' in present or key == "runs"]
        out.insert(at, f'<nav class="sub">{"".join(links)}</nav>')

    out.append('<h2 id="runs">Runs</h2>')
    for p in protocols:  # a group per protocol and occluder: 50 runs are found by what they occluded
        sub = df[df["protocol"].astype(str) == p]
        occ = sub["occlusion"].map(lambda v: _text(v) or "none")
        for k, o in enumerate(dict.fromkeys(occ)):
            group = sub[occ == o]
            anchor = f' id="{_e(_anchor("p", p, "runs"))}"' if k == 0 else ""
            out.append(f'<h3{anchor}>{_e(p)} · {_e("clean" if o == "none" else display_spec(o))}'
                       f'<span class="count">{len(group)} run{"s" if len(group) != 1 else ""}</span></h3>'
                       '<div class="runs">')
            out += [_run_section(results_dir, row) for _, row in group.iterrows()]
            out.append("</div>")
    out.append("</main>")
    out.append(f"<footer>recogbench {_e(__version__)} · {_e(now)} · {_e(results_dir / LEADERBOARD)}</footer>")
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"


def write_report(results_dir: str | Path, out_html: str | Path, *, title: str = "recogbench report") -> Path:
    """Write one self-contained HTML report of ``results_dir`` to ``out_html``; returns its path.

    Contents: a header (title, generation time, recogbench version), the leaderboard (latest
    row per config hash; a readable subset of columns, 4 decimals, empty when missing), per
    protocol the ROC/DET plot, score histograms, recovery bars and sample grids of
    :mod:`recogbench.plots`, and a section per run with its config.json and row.json. No
    external resources: CSS and a small script inline, images as ``data:image/png;base64``,
    and a Content-Security-Policy that forbids loading anything else. Written atomically.
    """
    out_html = ensure_writable_file(out_html, "report")  # before rendering, which embeds every plot
    atomic_write_bytes(out_html, render_html(results_dir, title=title).encode("utf-8"))
    return out_html
