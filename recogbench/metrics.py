"""Face-verification metrics: pure numpy functions over per-pair similarity scores.

Conventions shared by every function:

* ``scores``: (N,) float, higher means "more likely the same person" (cosine similarity in
  ``[-1, 1]`` for embedding verifiers). A pair whose face could not be detected or loaded
  gets :data:`FAILED_SCORE`, which is below any cosine; no score may be lower than it.
* ``issame``: (N,) bool (or 0/1 integers), True for genuine (same identity) pairs.
* ``folds``: (N,) int fold ids ``0..K-1``, every fold non-empty, ``K >= 2``.
* A pair is predicted "same" iff ``score >= threshold``.

Failed pairs take part in accuracy, ROC, AUC, EER and TAR@FAR (a failed genuine pair is a
miss, a failed impostor pair a correct reject at every threshold the accuracy search can
choose) but are left out of the similarity statistics (:func:`similarity_stats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = [
    "FAILED_SCORE",
    "FARS",
    "KFoldResult",
    "auc",
    "best_threshold",
    "cosine_scores",
    "eer",
    "kfold_accuracy",
    "roc",
    "similarity_stats",
    "summarize",
    "tar_at_far",
]

FAILED_SCORE: float = -2.0
"""Score of a pair whose face could not be detected or loaded; below any cosine similarity.
Never used as a threshold candidate, so such pairs are non-matches for the accuracy search."""

FARS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4)
"""False accept rates at which :func:`summarize` reports the true accept rate."""

# Relative slack when turning a rate into a count (1e-3 * 3000 must allow exactly 3).
_RATE_EPS = 1e-9


# --------------------------------------------------------------------------- validation


def _check_scores_labels(scores: Any, issame: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores float64 (N,), issame bool (N,)) or raise ValueError."""
    s = np.asarray(scores)
    y = np.asarray(issame)
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(f"scores and issame must be 1-D, got shapes {s.shape} and {y.shape}")
    if len(s) != len(y):
        raise ValueError(f"scores has {len(s)} entries but issame has {len(y)}")
    if len(s) == 0:
        raise ValueError("no pairs: scores and issame are empty")
    if not (np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer)):
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be finite; {int(np.sum(~np.isfinite(s)))} are NaN or inf")
    if s.min() < FAILED_SCORE:
        raise ValueError(
            f"scores must be >= FAILED_SCORE ({FAILED_SCORE}); the lowest is {s.min()!r}"
        )
    if y.dtype != np.bool_:
        if not np.issubdtype(y.dtype, np.integer) or not np.all((y == 0) | (y == 1)):
            raise ValueError(f"issame must be bool or 0/1 integers, got dtype {y.dtype}")
        y = y.astype(np.bool_)
    return s, y


def _check_both_classes(y: np.ndarray, what: str) -> None:
    n_gen = int(np.count_nonzero(y))
    if n_gen == 0 or n_gen == len(y):
        raise ValueError(
            f"{what} needs both genuine and impostor pairs; got {n_gen} genuine "
            f"and {len(y) - n_gen} impostor"
        )


def _check_folds(folds: Any, n: int) -> tuple[np.ndarray, int]:
    """Return (folds int64 (N,), K) or raise ValueError."""
    f = np.asarray(folds)
    if f.ndim != 1 or len(f) != n:
        raise ValueError(f"folds must be 1-D with {n} entries, got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"folds must be integer fold ids, got dtype {f.dtype}")
    f = f.astype(np.int64, copy=False)
    if f.min() < 0:
        raise ValueError(f"fold ids must be >= 0, got {int(f.min())}")
    k = int(f.max()) + 1
    if k < 2:
        raise ValueError("k-fold accuracy needs at least 2 folds")
    counts = np.bincount(f, minlength=k)
    if np.any(counts == 0):
        missing = np.flatnonzero(counts == 0).tolist()
        raise ValueError(f"fold ids must cover 0..{k - 1}; fold(s) {missing} are empty")
    return f, k


# --------------------------------------------------------------------------- scores


def cosine_scores(emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) L2-normalised embedding arrays.

    Returns (N,) float64 clipped to ``[-1, 1]``. Rows are assumed unit-norm (not re-normalised).
    """
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"embeddings must be two (N, D) arrays of equal shape, got {a.shape} and {b.shape}"
        )
    return np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0)


# --------------------------------------------------------------------------- accuracy


def _best_threshold_sorted(s: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Best threshold for scores ``s`` sorted ascending with labels ``y``.

    Returns (threshold, number of correct predictions). O(n) after sorting.
    """
    n = len(s)
    n_imp = n - int(np.count_nonzero(y))
    # Start of each run of equal scores: the distinct values, ascending.
    if n:
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    else:
        starts = np.zeros(0, dtype=np.intp)
    # Impostors strictly below value u[j] are correct rejects; genuine pairs >= u[j] are hits.
    imp_below = np.concatenate(([0], np.cumsum(~y)))  # imp_below[i] = impostors among s[:i]
    gen_below = np.concatenate(([0], np.cumsum(y)))
    n_gen = n - n_imp
    correct = imp_below[starts] + (n_gen - gen_below[starts])
    cand = s[starts]
    keep = cand != FAILED_SCORE
    cand = np.append(cand[keep], np.inf)
    correct = np.append(correct[keep], n_imp)  # +inf: everything rejected
    # Ties toward the larger threshold: the last maximum (candidates are ascending).
    j = len(correct) - 1 - int(np.argmax(correct[::-1]))
    return float(cand[j]), int(correct[j])


def best_threshold(scores: np.ndarray, issame: np.ndarray) -> float:
    """Threshold maximising accuracy of "same iff score >= t" on these pairs.

    Exact search over the distinct scores except :data:`FAILED_SCORE`, plus ``+inf``
    (reject all); ties go to the larger threshold. O(n log n). May return ``inf``.
    """
    s, y = _check_scores_labels(scores, issame)
    order = np.argsort(s, kind="stable")
    return _best_threshold_sorted(s[order], y[order])[0]


@dataclass(frozen=True)
class KFoldResult:
    """Cross-validated accuracy: per fold (K,) ``accuracies`` in [0, 1] and the ``thresholds``
    chosen on the other folds; ``mean`` and ``std`` (population, ddof=0) over folds."""

    accuracies: np.ndarray
    thresholds: np.ndarray
    mean: float
    std: float


def _kfold(s: np.ndarray, y: np.ndarray, f: np.ndarray, k: int) -> KFoldResult:
    order = np.argsort(s, kind="stable")
    s_sorted, y_sorted, f_sorted = s[order], y[order], f[order]
    accs = np.empty(k, dtype=np.float64)
    ths = np.empty(k, dtype=np.float64)
    for i in range(k):
        train = f_sorted != i
        t, _ = _best_threshold_sorted(s_sorted[train], y_sorted[train])
        test = f == i
        accs[i] = np.mean((s[test] >= t) == y[test])
        ths[i] = t
    return KFoldResult(
        accuracies=accs, thresholds=ths, mean=float(np.mean(accs)), std=float(np.std(accs))
    )


def kfold_accuracy(scores: np.ndarray, issame: np.ndarray, folds: np.ndarray) -> KFoldResult:
    """K-fold verification accuracy: for each fold, pick :func:`best_threshold` on the
    other folds and measure accuracy on the held-out fold. ``folds``: (N,) ids 0..K-1."""
    s, y = _check_scores_labels(scores, issame)
    f, k = _check_folds(folds, len(s))
    return _kfold(s, y, f, k)


# --------------------------------------------------------------------------- ROC family


def _roc(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return roc_curve(y, s, drop_intermediate=False)


def roc(scores: np.ndarray, issame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC via ``sklearn.metrics.roc_curve(drop_intermediate=False)``.

    Returns (fpr, tpr, thresholds), each (M,); thresholds decreasing, the first is ``inf``
    (fpr = tpr = 0), the last the lowest score (fpr = tpr = 1). Needs both classes.
    """
    s, y = _check_scores_labels(scores, issame)
    _check_both_classes(y, "roc")
    return _roc(s, y)


def auc(scores: np.ndarray, issame: np.ndarray) -> float:
    """Area under the ROC curve in [0, 1] (``sklearn.metrics.roc_auc_score``)."""
    s, y = _check_scores_labels(scores, issame)
    _check_both_classes(y, "auc")
    return float(roc_auc_score(y, s))


def _auc_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def _eer_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    # d = FPR - FNR = fpr + tpr - 1 rises from -1 (threshold inf) to +1 (lowest threshold).
    d = fpr + tpr - 1.0
    i = int(np.argmax(d >= 0.0))
    if d[i] == 0.0 or i == 0:
        return float(fpr[i])
    a = -d[i - 1] / (d[i] - d[i - 1])
    return float(fpr[i - 1] + a * (fpr[i] - fpr[i - 1]))


def eer(scores: np.ndarray, issame: np.ndarray) -> float:
    """Equal error rate in [0, 1]: where FPR equals FNR = 1 - TPR on the ROC, interpolating
    linearly between the two ROC points where FPR - FNR changes sign. Needs both classes."""
    s, y = _check_scores_labels(scores, issame)
    _check_both_classes(y, "eer")
    fpr, tpr, _ = _roc(s, y)
    return _eer_from_roc(fpr, tpr)


def _tar_from_roc(fpr: np.ndarray, tpr: np.ndarray, n_imp: int, far: float) -> float | None:
    allowed = math.floor(far * n_imp * (1.0 + _RATE_EPS))  # false accepts permitted
    if allowed < 1:
        return None
    fps = np.rint(fpr * n_imp)  # exact counts, non-decreasing along the curve
    j = int(np.searchsorted(fps, allowed, side="right")) - 1
    return float(tpr[j])


def tar_at_far(scores: np.ndarray, issame: np.ndarray, far: float) -> float | None:
    """True accept rate in [0, 1] at the most permissive (lowest) threshold whose false
    accept rate is <= ``far``, i.e. the highest TPR on the ROC with FPR <= ``far``,
    computed over all pairs (not per fold).

    Measurability rule: with ``n_imp`` impostor pairs, FAR moves in steps of ``1/n_imp``,
    so a target below one false accept cannot be resolved. Returns ``None`` ("not
    measurable") when ``n_imp * far < 1``, e.g. 3,000 impostors measure FAR down to
    ``1/3000`` and give ``None`` for ``1e-4``. Needs both classes.
    """
    if not 0.0 < far <= 1.0:
        raise ValueError(f"far must be in (0, 1], got {far!r}")
    s, y = _check_scores_labels(scores, issame)
    _check_both_classes(y, "tar_at_far")
    fpr, tpr, _ = _roc(s, y)
    return _tar_from_roc(fpr, tpr, len(y) - int(np.count_nonzero(y)), far)


# --------------------------------------------------------------------------- similarity


def _similarity_stats(s: np.ndarray, y: np.ndarray) -> dict[str, float]:
    ok = s != FAILED_SCORE
    g = s[ok & y]
    i = s[ok & ~y]
    nan = float("nan")
    mu_g = float(np.mean(g)) if len(g) else nan
    mu_i = float(np.mean(i)) if len(i) else nan
    d_prime = nan
    if len(g) and len(i):
        pooled = (float(np.var(g)) + float(np.var(i))) / 2.0
        if pooled > 0.0:
            d_prime = (mu_g - mu_i) / math.sqrt(pooled)
    return {
        "mean_genuine": mu_g,
        "mean_impostor": mu_i,
        "gap": mu_g - mu_i,
        "d_prime": d_prime,
    }


def similarity_stats(scores: np.ndarray, issame: np.ndarray) -> dict[str, float]:
    """Score distribution summary, excluding failed pairs (score == :data:`FAILED_SCORE`).

    Keys: ``mean_genuine``, ``mean_impostor``, ``gap`` (= mean_genuine - mean_impostor),
    ``d_prime`` = (mu_g - mu_i) / sqrt((var_g + var_i) / 2) with population variances.
    Values are plain floats; NaN where undefined (an empty class, or zero pooled variance).
    """
    s, y = _check_scores_labels(scores, issame)
    return _similarity_stats(s, y)


# --------------------------------------------------------------------------- summary


def summarize(
    scores: np.ndarray, issame: np.ndarray, folds: np.ndarray
) -> dict[str, float | int | None]:
    """All verification metrics in one flat dict of plain Python values.

    Keys: ``accuracy_mean``, ``accuracy_std`` (k-fold), ``auc``, ``eer``,
    ``tar@far=1e-01`` … ``tar@far=1e-04`` (None when not measurable, see
    :func:`tar_at_far`), ``mean_genuine``, ``mean_impostor``, ``similarity_gap``,
    ``d_prime`` (NaN where undefined), and the counts ``n_pairs``, ``n_genuine``,
    ``n_impostor`` (ints). Raises ValueError on malformed input or a single class.
    """
    s, y = _check_scores_labels(scores, issame)
    f, k = _check_folds(folds, len(s))
    _check_both_classes(y, "summarize (auc/eer)")
    n = len(s)
    n_gen = int(np.count_nonzero(y))
    n_imp = n - n_gen

    kf = _kfold(s, y, f, k)
    fpr, tpr, _ = _roc(s, y)
    stats = _similarity_stats(s, y)

    out: dict[str, float | int | None] = {
        "accuracy_mean": kf.mean,
        "accuracy_std": kf.std,
        "auc": _auc_from_roc(fpr, tpr),
        "eer": _eer_from_roc(fpr, tpr),
    }
    for far in FARS:
        out[f"tar@far={far:.0e}"] = _tar_from_roc(fpr, tpr, n_imp, far)
    out.update(
        mean_genuine=stats["mean_genuine"],
        mean_impostor=stats["mean_impostor"],
        similarity_gap=stats["gap"],
        d_prime=stats["d_prime"],
        n_pairs=n,
        n_genuine=n_gen,
        n_impostor=n_imp,
    )
    return out
