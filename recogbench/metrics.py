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
choose) but are left out of the similarity statistics (:func:`similarity_stats`). At a fixed
threshold (:func:`error_rates`, :func:`decisions`, :func:`frozen_operating_points`) a failed
pair is a non-match at every threshold, even one at or below :data:`FAILED_SCORE`.

Security view: :func:`threshold_at_far` calibrates a threshold on clean faces,
:func:`frozen_operating_points` applies it unchanged to occluded or inpainted faces (FMR
inflation, FNMR deflation); :func:`recovery_ratio`, :func:`bootstrap_ci` (fold-preserving
percentile bootstrap) and :func:`mcnemar` (paired test on :func:`decisions`) compare conditions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    "bootstrap_ci",
    "cosine_scores",
    "decisions",
    "eer",
    "error_rates",
    "frozen_operating_points",
    "holm",
    "kfold_accuracy",
    "mcnemar",
    "recovery_ratio",
    "roc",
    "similarity_stats",
    "summarize",
    "tar_at_far",
    "threshold_at_far",
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


# --------------------------------------------------------------------------- operating points
#
# Security view: a deployment fixes its threshold once, on clean faces, at a target false
# match rate; occlusion or inpainting then moves the score distributions under that fixed
# threshold. The functions below measure error rates at fixed thresholds, calibrate those
# thresholds, and compare conditions (recovery, bootstrap intervals, McNemar).


def _check_far(far: float) -> float:
    if not isinstance(far, (int, float, np.integer, np.floating)) or not 0.0 < far <= 1.0:
        raise ValueError(f"far must be in (0, 1], got {far!r}")
    return float(far)


def _check_threshold(threshold: float) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number, got {threshold!r}") from None
    if math.isnan(t):
        raise ValueError("threshold must not be NaN")
    return t


def _allowed_false_matches(n_imp: int, far: float) -> int:
    """Number of false matches a target ``far`` permits among ``n_imp`` impostors (the
    same rule as :func:`tar_at_far`); below 1 the target is not measurable."""
    return math.floor(far * n_imp * (1.0 + _RATE_EPS))


def _accepted(s: np.ndarray, t: float) -> np.ndarray:
    """(N,) bool: predicted "same" at threshold ``t``; failed pairs never match."""
    return (s >= t) & (s != FAILED_SCORE)


def _error_counts(s: np.ndarray, y: np.ndarray, t: float) -> tuple[int, int]:
    """(false matches, false non-matches) at threshold ``t``."""
    acc = _accepted(s, t)
    return int(np.count_nonzero(acc & ~y)), int(np.count_nonzero(~acc & y))


def _threshold_at_far(s: np.ndarray, y: np.ndarray, far: float) -> float | None:
    n_imp = len(y) - int(np.count_nonzero(y))
    allowed = _allowed_false_matches(n_imp, far)
    if allowed < 1:
        return None
    ok = s[s != FAILED_SCORE]
    if allowed >= n_imp:  # every impostor may match: the lowest usable score
        return float(ok.min()) if len(ok) else math.inf
    # The (allowed+1)-th highest impostor score must be rejected; every score above it
    # may be accepted, so the lowest threshold is the smallest score strictly above it.
    imp_desc = np.sort(s[~y])[::-1]
    v = imp_desc[allowed]
    above = ok[ok > v]
    return float(above.min()) if len(above) else math.inf


def threshold_at_far(scores: np.ndarray, issame: np.ndarray, far: float) -> float | None:
    """Lowest threshold whose false match rate on these pairs is <= ``far``: the operating
    point a deployment calibrates (on clean faces) for a target FMR.

    ``scores``, ``issame``: (N,). Candidates are the distinct observed scores except
    :data:`FAILED_SCORE`, plus ``+inf``. Returns the smallest candidate ``t`` with
    ``#{impostor: score >= t} <= floor(far * n_impostor)`` (with the small relative slack
    of :func:`tar_at_far`), i.e. the smallest observed score strictly above the
    ``(floor(far * n_impostor) + 1)``-th highest impostor score; ``inf`` when no score lies
    above it (ties at the top: only rejecting everything meets the target).

    Candidates include genuine scores, not only impostor ones: a genuine score between two
    impostor scores gives the same FMR and a higher TMR, so this is exactly the threshold
    :func:`tar_at_far` reports the TMR of, and ``mean(score[genuine] >= t)`` equals
    ``tar_at_far(scores, issame, far)``. (The one exception: ``far`` ~ 1 with failed genuine
    pairs, where :func:`tar_at_far` accepts at threshold ``FAILED_SCORE`` and this function,
    which never returns ``FAILED_SCORE``, keeps failed pairs as non-matches.)

    Returns ``None`` ("not measurable") when ``n_impostor * far < 1``, the rule of
    :func:`tar_at_far`; also when there are no impostor pairs. Genuine pairs are not needed.
    """
    far = _check_far(far)
    s, y = _check_scores_labels(scores, issame)
    return _threshold_at_far(s, y, far)


def error_rates(scores: np.ndarray, issame: np.ndarray, threshold: float) -> tuple[float, float]:
    """(FMR, FNMR) at a fixed ``threshold``; ``scores``, ``issame``: (N,), both classes.

    ``FMR = #{impostor: score >= t} / n_impostor`` (false match rate, a.k.a. FAR) and
    ``FNMR = #{genuine: score < t} / n_genuine`` (false non-match rate, = 1 - TAR). A failed
    pair (:data:`FAILED_SCORE`) is a non-match at every threshold, even ``t <= FAILED_SCORE``
    (where ``score >= t`` would otherwise accept it): a failed impostor is never a false
    match, a failed genuine pair always a false non-match. ``t`` may be ``±inf``, not NaN.
    """
    t = _check_threshold(threshold)
    s, y = _check_scores_labels(scores, issame)
    _check_both_classes(y, "error_rates")
    n_gen = int(np.count_nonzero(y))
    fm, fnm = _error_counts(s, y, t)
    return fm / (len(y) - n_gen), fnm / n_gen


def decisions(scores: np.ndarray, issame: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) bool: was each pair decided correctly at ``threshold``, i.e.
    ``(score >= t and not failed) == issame``. Failed pairs are non-matches at every
    threshold (as in :func:`error_rates`). Feed two conditions' outputs to :func:`mcnemar`."""
    t = _check_threshold(threshold)
    s, y = _check_scores_labels(scores, issame)
    return _accepted(s, t) == y


def operating_threshold(clean_scores: np.ndarray, issame: np.ndarray) -> float:
    """The best-accuracy threshold a deployment would freeze on clean scores.

    :func:`best_threshold` returns the edge of the best-accuracy gap (the lowest accepted
    score); this returns the middle of that gap: the same decisions on the clean scores, and
    a small drift of either class does not flip them."""
    s, y = _check_scores_labels(clean_scores, issame)
    order = np.argsort(s, kind="stable")
    best = _best_threshold_sorted(s[order], y[order])[0]
    below = s[(s < best) & (s > FAILED_SCORE)]
    if np.isfinite(best) and len(below):
        best = (float(below.max()) + best) / 2.0
    return float(best)


def _op_name(far: float) -> str:
    return f"far={far:.0e}"


def frozen_operating_points(
    clean_scores: np.ndarray,
    issame: np.ndarray,
    scores: np.ndarray,
    fars: tuple[float, ...] = (1e-2, 1e-3),
) -> dict[str, float | None]:
    """Error rates of a condition at thresholds frozen on the clean scores of the same pairs.

    ``clean_scores``, ``issame``, ``scores``: (N,), pair i the same pair in both conditions
    (e.g. clean vs occluded or inpainted probe); both classes needed. Operating points:
    ``far=<far:.0e>`` for each far in ``fars`` (threshold :func:`threshold_at_far` on the
    clean scores) and ``best_acc`` (the middle of the gap below :func:`best_threshold` on
    the clean scores: the same clean decisions, with a margin on both sides). For each
    operating point ``op`` the keys, in this order, are

    * ``threshold@op``: the clean-calibrated threshold t (may be ``inf``);
    * ``fmr@op``, ``fnmr@op``: :func:`error_rates` of ``scores`` at t;
    * ``fmr_change@op`` = FMR(scores, t) - FMR(clean, t): impostor inflation (> 0 means the
      condition makes more impostors pass a threshold set for clean faces);
    * ``fnmr_change@op`` = FNMR(scores, t) - FNMR(clean, t): genuine deflation.

    Changes are differences of counts over the class size, so they are exact fractions.
    Every key of an op is ``None`` when its threshold is not measurable
    (``n_impostor * far < 1``). Values are plain Python floats or None.
    """
    s0, y = _check_scores_labels(clean_scores, issame)
    s1, _ = _check_scores_labels(scores, issame)
    _check_both_classes(y, "frozen_operating_points")
    fars = tuple(_check_far(f) for f in fars)
    n_gen = int(np.count_nonzero(y))
    n_imp = len(y) - n_gen

    ops: list[tuple[str, float | None]] = [(_op_name(f), _threshold_at_far(s0, y, f)) for f in fars]
    ops.append(("best_acc", operating_threshold(s0, y)))

    out: dict[str, float | None] = {}
    for op, t in ops:
        if t is None:
            out.update({f"{k}@{op}": None for k in
                        ("threshold", "fmr", "fnmr", "fmr_change", "fnmr_change")})
            continue
        fm0, fnm0 = _error_counts(s0, y, t)
        fm1, fnm1 = _error_counts(s1, y, t)
        out[f"threshold@{op}"] = float(t)
        out[f"fmr@{op}"] = fm1 / n_imp
        out[f"fnmr@{op}"] = fnm1 / n_gen
        out[f"fmr_change@{op}"] = (fm1 - fm0) / n_imp
        out[f"fnmr_change@{op}"] = (fnm1 - fnm0) / n_gen
    return out


def recovery_ratio(
    restored: float | None, occluded: float | None, clean: float | None
) -> float | None:
    """Share of the occlusion damage that restoration (inpainting) recovers:
    ``(restored - occluded) / (clean - occluded)``.

    Works for any metric where clean and occluded differ (accuracy, AUC, TAR, similarity
    gap). 1 = fully recovered, 0 = no better than occluded, < 0 = restoration made it worse,
    > 1 = better than clean. Returns ``None`` when undefined: ``|clean - occluded| < 1e-12``
    (occlusion did no measurable damage), or any input is None or NaN (e.g. an unmeasurable
    TAR or an undefined d'). Raises ValueError on infinite inputs.
    """
    vals = (restored, occluded, clean)
    if any(v is None for v in vals):
        return None
    r, o, c = (float(v) for v in vals)  # type: ignore[arg-type]
    if any(math.isnan(v) for v in (r, o, c)):
        return None
    if any(math.isinf(v) for v in (r, o, c)):
        raise ValueError(f"recovery_ratio needs finite values, got {vals!r}")
    if abs(c - o) < 1e-12:
        return None
    return (r - o) / (c - o)


# --------------------------------------------------------------------------- bootstrap

_BOOT_CHUNK = 128  # replicates processed together; results do not depend on it


def _fold_layout(f: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Columns of a replicate grouped by fold: (members (N,) original indices sorted by fold,
    col_folds (N,) fold of each column, col_offset (N,) start of its fold's block,
    col_size (N,) its fold's size)."""
    members = np.argsort(f, kind="stable")
    counts = np.bincount(f, minlength=k)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    col_folds = f[members]
    return members, col_folds, offsets[col_folds], counts[col_folds]


def _bootstrap_index_chunks(
    f: np.ndarray, k: int, n_boot: int, rng: np.random.Generator, chunk: int = _BOOT_CHUNK
):
    """Yield (b, N) int arrays of original pair indices, ``n_boot`` rows in all. Column j of
    every row belongs to fold ``col_folds[j]`` (see :func:`_fold_layout`) and is drawn
    uniformly, with replacement, from that fold's pairs: each fold keeps its size.

    One uniform per column from ``rng.random`` (filled row-major), so the rows do not
    depend on ``chunk``."""
    members, _, col_offset, col_size = _fold_layout(f, k)
    n = len(f)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        u = rng.random((b, n))
        pick = np.minimum((u * col_size).astype(np.int64), col_size - 1)
        yield members[col_offset + pick]
        done += b


def _replicate_stats(
    s: np.ndarray,
    y: np.ndarray,
    idx: np.ndarray,
    col_folds: np.ndarray,
    k: int,
    fars: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Metrics of the (b,) replicates ``s[idx]``, ``y[idx]`` (idx (b, N), column j in fold
    ``col_folds[j]``, columns grouped by fold in ascending fold order).

    Returns (acc (b,), auc (b,), tar (len(fars), b)), NaN where undefined (a class absent;
    TAR also where the replicate's impostors cannot measure that far). Equal to
    :func:`kfold_accuracy` ``.mean``, :func:`auc` and :func:`tar_at_far` of each replicate,
    vectorised over rows via one sort per row.
    """
    b, n = idx.shape
    S = s[idx]
    Y = y[idx]
    order = np.argsort(S, axis=1)
    Ss = np.take_along_axis(S, order, axis=1)
    Ys = np.take_along_axis(Y, order, axis=1)
    Fs = col_folds[order]
    pos = np.broadcast_to(np.arange(n), (b, n))
    diff = Ss[:, 1:] != Ss[:, :-1]
    start = np.concatenate((np.ones((b, 1), bool), diff), axis=1)
    end = np.concatenate((diff, np.ones((b, 1), bool)), axis=1)
    run_start = np.maximum.accumulate(np.where(start, pos, 0), axis=1)
    run_end = np.minimum.accumulate(np.where(end, pos, n - 1)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(b)
    zeros = np.zeros((b, 1), np.int32)
    usable = Ss != FAILED_SCORE

    # k-fold accuracy: per held-out fold, the best threshold on the other folds
    # (_best_threshold_sorted, vectorised), then accuracy on the held-out block.
    fold_start = np.searchsorted(col_folds, np.arange(k), side="left")
    fold_stop = np.searchsorted(col_folds, np.arange(k), side="right")
    # Correct predictions at t = Ss[:, j] on the training pairs = train impostors strictly
    # below t + train genuine at/above t = n_gen_tr + sum over train pairs below t of
    # (+1 impostor, -1 genuine): one exclusive cumulative sum per held-out fold.
    w_all = np.where(Ys, -1, 1).astype(np.int32)
    n_gen_fold = np.stack([np.count_nonzero(Ys & (Fs == i), axis=1) for i in range(k)], axis=1)
    n_gen_all = n_gen_fold.sum(axis=1)
    n_fold = fold_stop - fold_start
    # Work right to left so that argmax (first maximum) picks the largest threshold among
    # ties. (Resampled pairs repeat, so equal scores are the rule: count below run starts.)
    run_start_rev = np.ascontiguousarray(run_start[:, ::-1])
    fs_rev = np.ascontiguousarray(Fs[:, ::-1])
    unusable_rev = np.ascontiguousarray(~usable[:, ::-1])
    accs = np.empty((b, k))
    for i in range(k):
        n_gen_tr = n_gen_all - n_gen_fold[:, i]
        n_imp_tr = (n - n_fold[i]) - n_gen_tr
        w = np.where(Fs != i, w_all, 0)
        c = np.concatenate((zeros, np.cumsum(w, axis=1, dtype=np.int32)), axis=1)
        below = np.take_along_axis(c, run_start_rev, axis=1)
        # candidates: distinct usable training scores
        correct = np.where(unusable_rev | (fs_rev == i), -1, below + n_gen_tr[:, None])
        jr = np.argmax(correct, axis=1)  # reversed position of the best candidate
        best = correct[rows, jr]
        t = np.where(n_imp_tr >= best, np.inf, Ss[rows, n - 1 - jr])  # ties: +inf wins
        lo, hi = fold_start[i], fold_stop[i]
        accs[:, i] = np.mean((S[:, lo:hi] >= t[:, None]) == Y[:, lo:hi], axis=1)
    acc = np.mean(accs, axis=1)

    # AUC by the Mann-Whitney rank formula with average ranks for ties (= roc_auc_score).
    n_gen = np.count_nonzero(Ys, axis=1)
    n_imp = n - n_gen
    both = (n_gen > 0) & (n_imp > 0)
    avg_rank = (run_start + run_end) / 2.0 + 1.0
    rank_sum = np.sum(np.where(Ys, avg_rank, 0.0), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc_v = (rank_sum - n_gen * (n_gen + 1) / 2.0) / (n_gen * n_imp)
    auc_v = np.where(both, auc_v, np.nan)

    # TAR@FAR: genuine pairs strictly above the (allowed+1)-th highest impostor score.
    c_imp_incl = np.cumsum(~Ys, axis=1)
    c_gen_incl = np.cumsum(Ys, axis=1)
    tars = np.full((len(fars), b), np.nan)
    for m, far in enumerate(fars):
        allowed = np.floor(far * n_imp * (1.0 + _RATE_EPS)).astype(np.int64)
        need = n_imp - allowed  # rank (1-based, ascending) of the highest rejected impostor
        p = np.argmax(c_imp_incl >= need[:, None], axis=1)
        gen_at_or_below = c_gen_incl[rows, run_end[rows, p]]
        with np.errstate(invalid="ignore", divide="ignore"):
            tar = np.where(need >= 1, (n_gen - gen_at_or_below) / n_gen, 1.0)
        tars[m] = np.where(both & (allowed >= 1), tar, np.nan)
    return acc, auc_v, tars


def bootstrap_ci(
    scores: np.ndarray,
    issame: np.ndarray,
    folds: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int | None = 0,
    alpha: float = 0.05,
    fars: tuple[float, ...] = (1e-2, 1e-3),
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap ``1 - alpha`` confidence intervals, resampling pairs within folds.

    ``scores``, ``issame``, ``folds``: (N,) as for :func:`summarize`; both classes needed.
    Each of ``n_boot`` replicates draws, for every fold, as many pairs as the fold holds,
    uniformly with replacement from that fold (fold sizes, and so the K-fold protocol, are
    kept). Per replicate: ``accuracy`` = :func:`kfold_accuracy` ``.mean``, ``auc``
    (:func:`auc`, computed by the Mann-Whitney rank formula with average ranks), and
    ``tar@far=<far:.0e>`` (:func:`tar_at_far`, the replicate's own impostor count deciding
    measurability). The interval is ``(q(alpha/2), q(1 - alpha/2))`` of the replicate
    values (``numpy.percentile``, linear interpolation) as plain floats.

    Replicates where a class vanishes are skipped for ``auc`` and ``tar@...`` (as are those
    too small to measure a far); a key whose metric is not measurable on the original data
    (``n_impostor * far < 1``), or has no usable replicate, is ``None``. Deterministic for a
    given integer ``seed`` (``numpy.random.default_rng(seed)``). Vectorised over replicates:
    one sort per replicate, O(n_boot * N * (K + len(fars))) memory traffic.
    """
    s, y = _check_scores_labels(scores, issame)
    f, k = _check_folds(folds, len(s))
    _check_both_classes(y, "bootstrap_ci")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    fars = tuple(_check_far(x) for x in fars)
    n_imp = len(y) - int(np.count_nonzero(y))

    rng = np.random.default_rng(seed)
    _, col_folds, _, _ = _fold_layout(f, k)
    parts = [
        _replicate_stats(s, y, idx, col_folds, k, fars)
        for idx in _bootstrap_index_chunks(f, k, int(n_boot), rng)
    ]
    acc = np.concatenate([p[0] for p in parts])
    auc_v = np.concatenate([p[1] for p in parts])
    tars = np.concatenate([p[2] for p in parts], axis=1)

    q = [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)]

    def interval(v: np.ndarray) -> tuple[float, float] | None:
        v = v[~np.isnan(v)]
        if len(v) == 0:
            return None
        lo, hi = np.percentile(v, q)
        return float(lo), float(hi)

    out: dict[str, tuple[float, float] | None] = {
        "accuracy": interval(acc),
        "auc": interval(auc_v),
    }
    for m, far in enumerate(fars):
        measurable = _allowed_false_matches(n_imp, far) >= 1
        out[f"tar@{_op_name(far)}"] = interval(tars[m]) if measurable else None
    return out


# --------------------------------------------------------------------------- paired test


def _check_bool_1d(a: Any, name: str) -> np.ndarray:
    v = np.asarray(a)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    if v.dtype != np.bool_:
        if not np.issubdtype(v.dtype, np.integer) or not np.all((v == 0) | (v == 1)):
            raise ValueError(f"{name} must be bool or 0/1 integers, got dtype {v.dtype}")
        v = v.astype(np.bool_)
    return v


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """Paired McNemar test: do conditions A and B, decided on the same N pairs, differ?

    ``correct_a``, ``correct_b``: (N,) bool (or 0/1), pair decided correctly under each
    condition (see :func:`decisions`). Discordant counts ``b = #(A right, B wrong)`` and
    ``c = #(A wrong, B right)``. With ``b + c < 25``: exact two-sided binomial test
    (``scipy.stats.binomtest(b, b + c, 0.5)``), ``statistic = min(b, c)``. Otherwise the
    chi-square test with continuity correction, ``statistic = (|b - c| - 1)^2 / (b + c)``,
    ``p = chi2.sf(statistic, df=1)``. No discordant pair: ``statistic = 0.0``, ``p = 1.0``
    (method "exact").

    Returns ``{"n": N, "a_only": b, "b_only": c, "statistic": float, "p_value": float,
    "method": "exact" | "chi2"}`` with plain Python ints/floats.
    """
    from scipy import stats

    a = _check_bool_1d(correct_a, "correct_a")
    bb = _check_bool_1d(correct_b, "correct_b")
    if len(a) != len(bb):
        raise ValueError(f"correct_a has {len(a)} entries but correct_b has {len(bb)}")
    b = int(np.count_nonzero(a & ~bb))
    c = int(np.count_nonzero(~a & bb))
    m = b + c
    if m == 0:
        stat, p, method = 0.0, 1.0, "exact"
    elif m < 25:
        stat, p, method = float(min(b, c)), float(stats.binomtest(b, m, 0.5).pvalue), "exact"
    else:
        stat = (abs(b - c) - 1) ** 2 / m
        p, method = float(stats.chi2.sf(stat, df=1)), "chi2"
    return {
        "n": len(a),
        "a_only": b,
        "b_only": c,
        "statistic": float(stat),
        "p_value": min(p, 1.0),
        "method": method,
    }


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of ``m`` p-values tested together (family-wise error).

    The i-th smallest p-value is multiplied by ``m - i`` (i from 0), the results made
    non-decreasing in that order and capped at 1; reject where the adjusted value is below
    alpha. Controls the family-wise error rate under any dependence, and is uniformly more
    powerful than Bonferroni (scipy offers only false-discovery-rate control). Returns (m,)
    float64 in the input order; NaN entries stay NaN and do not count towards ``m``.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    idx = np.flatnonzero(ok)
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out
