"""Tests for the security-oriented metrics: frozen operating points, error rates, recovery,
bootstrap intervals and McNemar, against hand computations and the reference functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from recogbench import metrics as M
from recogbench.metrics import FAILED_SCORE

from .test_metrics import CASES
from .test_metrics import random_case as make_case


def labelled(gen, imp):
    s = np.r_[np.asarray(gen, float), np.asarray(imp, float)]
    y = np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]
    return s, y


# --------------------------------------------------------------------------- threshold_at_far


def test_threshold_at_far_hand_case():
    # impostors 0.0 .. 0.9, genuine {0.95, 0.92, 0.85, 0.5} (the tar_at_far hand case)
    s, y = labelled([0.95, 0.92, 0.85, 0.5], np.arange(10) / 10)
    # far=0.1: 1 false match allowed; the 2nd highest impostor (0.8) must be rejected, the
    # smallest score above it is the genuine 0.85
    assert M.threshold_at_far(s, y, 0.1) == 0.85
    assert M.threshold_at_far(s, y, 0.15) == 0.85  # floor(1.5) = 1
    # far=0.2: 2 allowed; reject 0.7 -> 0.8 (an impostor score)
    assert M.threshold_at_far(s, y, 0.2) == 0.8
    # far=0.5: 5 allowed; reject 0.4 -> 0.5 (genuine and impostor tie there)
    assert M.threshold_at_far(s, y, 0.5) == 0.5
    # far=1: every impostor may match -> the lowest score
    assert M.threshold_at_far(s, y, 1.0) == 0.0
    # far=0.05: 10 * 0.05 < 1 -> not measurable
    assert M.threshold_at_far(s, y, 0.05) is None


def test_threshold_at_far_uses_genuine_scores_between_impostors():
    # impostors {0.9, 0.1}, genuine {0.5}: at far=0.5 the impostor-only candidate 0.9 would
    # give TMR 0; the lowest threshold with <= 1 false match is 0.5, TMR 1 (= tar_at_far)
    s, y = labelled([0.5], [0.9, 0.1])
    assert M.threshold_at_far(s, y, 0.5) == 0.5
    assert M.tar_at_far(s, y, 0.5) == 1.0


def test_threshold_at_far_ties():
    # two impostors tied at the top: with 1 false match allowed only +inf meets the target
    s, y = labelled([0.5], [0.9, 0.9, 0.2, 0.1])
    assert M.threshold_at_far(s, y, 0.25) == math.inf
    assert M.tar_at_far(s, y, 0.25) == 0.0
    # with 2 allowed, the tie may pass: the smallest score above 0.2 is 0.5
    assert M.threshold_at_far(s, y, 0.5) == 0.5
    # genuine tied with impostors: imp {0.7, 0.7, 0.3}, gen {0.7, 0.5}
    s, y = labelled([0.7, 0.5], [0.7, 0.7, 0.3])
    assert M.threshold_at_far(s, y, 1 / 3) == math.inf  # exactly one allowed (3 * 1/3)
    assert M.threshold_at_far(s, y, 2 / 3) == 0.5
    assert M.error_rates(s, y, 0.5) == (2 / 3, 0.0)


def test_threshold_at_far_not_measurable_rule():
    rng = np.random.default_rng(7)
    y = np.r_[np.ones(100, bool), np.zeros(3000, bool)]
    s = rng.random(len(y))
    assert M.threshold_at_far(s, y, 1e-4) is None  # 0.3 false matches
    assert M.threshold_at_far(s, y, 1e-3) is not None  # exactly 3
    assert M.threshold_at_far(s, y, 1 / 3000) is not None
    # no impostor pairs: nothing to calibrate on; no genuine pairs: still calibratable
    assert M.threshold_at_far([0.3, 0.4], [True, True], 0.5) is None
    assert M.threshold_at_far([0.3, 0.4], [False, False], 0.5) == 0.4
    for far in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            M.threshold_at_far(s, y, far)


def test_threshold_at_far_never_failed_score():
    s, y = labelled([0.6, FAILED_SCORE], [FAILED_SCORE, FAILED_SCORE, 0.2])
    # 2nd / 3rd highest impostors are failed; the smallest usable score is 0.2
    assert M.threshold_at_far(s, y, 1 / 3) == 0.2
    assert M.threshold_at_far(s, y, 2 / 3) == 0.2
    assert M.threshold_at_far(s, y, 1.0) == 0.2  # not FAILED_SCORE although far = 1
    # all pairs failed: only +inf is a candidate
    assert M.threshold_at_far([FAILED_SCORE] * 3, [True, False, False], 1.0) == math.inf


@pytest.mark.parametrize("case", CASES)
def test_threshold_at_far_consistent_with_tar_at_far(case):
    scores, issame, _ = make_case(**case)
    n_imp = int(np.sum(~issame))
    usable = np.unique(scores[scores != FAILED_SCORE])
    for far in (0.02, 0.05, 0.1, 0.3, 0.5, 0.9):
        t = M.threshold_at_far(scores, issame, far)
        tar = M.tar_at_far(scores, issame, far)
        if n_imp * far < 1:
            assert t is None and tar is None
            continue
        assert t is not None and tar is not None
        fmr, fnmr = M.error_rates(scores, issame, t)
        assert fmr <= far + 1e-12
        assert 1.0 - fnmr == pytest.approx(tar, abs=1e-12)  # TMR at t == tar_at_far
        # it is the lowest such candidate: the next lower usable score breaks the target
        lower = usable[usable < t]
        if len(lower):
            assert M.error_rates(scores, issame, lower[-1])[0] > far


# --------------------------------------------------------------------------- error_rates


ER_S, ER_Y = labelled([0.9, 0.6, 0.4, FAILED_SCORE], [0.7, 0.3, 0.1, FAILED_SCORE, FAILED_SCORE])


def test_error_rates_hand_case():
    assert M.error_rates(ER_S, ER_Y, 0.5) == (1 / 5, 2 / 4)  # imp 0.7; gen 0.4 + failed
    assert M.error_rates(ER_S, ER_Y, 0.6) == (1 / 5, 2 / 4)  # score == t is a match
    assert M.error_rates(ER_S, ER_Y, 0.3) == (2 / 5, 1 / 4)
    assert M.error_rates(ER_S, ER_Y, math.inf) == (0.0, 1.0)
    fmr, fnmr = M.error_rates(ER_S, ER_Y, 0.5)
    assert type(fmr) is float and type(fnmr) is float


def test_error_rates_failed_pairs_never_match():
    # even at t <= FAILED_SCORE the failed pairs stay non-matches
    for t in (FAILED_SCORE, -3.0, -math.inf):
        assert M.error_rates(ER_S, ER_Y, t) == (3 / 5, 1 / 4)


def test_error_rates_validation():
    with pytest.raises(ValueError, match="NaN"):
        M.error_rates(ER_S, ER_Y, float("nan"))
    with pytest.raises(ValueError, match="both genuine and impostor"):
        M.error_rates([0.1, 0.2], [True, True], 0.5)
    with pytest.raises(ValueError):
        M.error_rates(ER_S, ER_Y[:-1], 0.5)


def test_decisions_hand_case():
    got = M.decisions(ER_S, ER_Y, 0.5)
    assert got.dtype == np.bool_
    # genuine 0.9 hit, 0.6 hit, 0.4 miss, failed miss; impostor 0.7 false match, rest rejected
    np.testing.assert_array_equal(got, [True, True, False, False, False, True, True, True, True])
    np.testing.assert_array_equal(
        M.decisions(ER_S, ER_Y, FAILED_SCORE), M.decisions(ER_S, ER_Y, -math.inf)
    )
    # accuracy from decisions == 1 - weighted error rates
    fmr, fnmr = M.error_rates(ER_S, ER_Y, 0.5)
    assert got.mean() == pytest.approx(1 - (fmr * 5 + fnmr * 4) / 9)


# --------------------------------------------------------------------------- frozen thresholds

CLEAN_GEN = [0.50, 0.55, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90]
CLEAN_IMP = [0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.60]
# Clean thresholds (10 impostors, 8 genuine):
#   far=1e-01: 1 false match allowed, reject 0.45 -> t = 0.50 (FMR 1/10: 0.60; FNMR 0)
#   far=2e-01: 2 allowed, reject 0.40 -> t = 0.45 (FMR 2/10: 0.45, 0.60; FNMR 0)
#   far=5e-02: 0.5 false matches -> not measurable
#   best_acc: t = 0.50 gives 9 + 8 = 17/18 correct (0.45: 16, 0.55: 16, 0.65: 16); the
#             frozen point sits mid-gap below it, between 0.45 and 0.50 -> 0.475
FARS = (0.1, 0.2, 0.05)
OPS = ["far=1e-01", "far=2e-01", "far=5e-02", "best_acc"]
FIELDS = ["threshold", "fmr", "fnmr", "fmr_change", "fnmr_change"]


def test_frozen_operating_points_clean_against_itself():
    s, y = labelled(CLEAN_GEN, CLEAN_IMP)
    out = M.frozen_operating_points(s, y, s, fars=FARS)
    assert list(out) == [f"{f}@{op}" for op in OPS for f in FIELDS]
    assert out["threshold@far=1e-01"] == 0.5
    assert out["threshold@far=2e-01"] == 0.45
    assert M.best_threshold(s, y) == 0.5
    assert out["threshold@best_acc"] == pytest.approx(0.475)
    assert out["fmr@far=1e-01"] == 0.1 and out["fnmr@far=1e-01"] == 0.0
    assert out["fmr@far=2e-01"] == 0.2 and out["fnmr@far=2e-01"] == 0.0
    for op in ("far=1e-01", "far=2e-01", "best_acc"):
        assert out[f"fmr_change@{op}"] == 0.0 and out[f"fnmr_change@{op}"] == 0.0
    assert all(out[f"{f}@far=5e-02"] is None for f in FIELDS)
    assert all(v is None or type(v) is float for v in out.values())


def test_frozen_operating_points_impostor_inflation():
    # occlusion pushes impostor scores up; genuine unchanged
    clean, y = labelled(CLEAN_GEN, CLEAN_IMP)
    infl, _ = labelled(CLEAN_GEN, [0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.70])
    out = M.frozen_operating_points(clean, y, infl, fars=FARS)
    # t=0.50: impostors >= 0.5 are 0.50, 0.55, 0.70 -> FMR 3/10 (clean 1/10)
    assert out["threshold@far=1e-01"] == 0.5
    assert out["fmr@far=1e-01"] == 0.3
    assert out["fmr_change@far=1e-01"] == 0.2
    # t=0.45: 0.45, 0.50, 0.55, 0.70 -> FMR 4/10 (clean 2/10)
    assert out["fmr@far=2e-01"] == 0.4
    assert out["fmr_change@far=2e-01"] == 0.2
    assert out["fmr@best_acc"] == 0.3 and out["fmr_change@best_acc"] == 0.2
    for op in ("far=1e-01", "far=2e-01", "best_acc"):
        assert out[f"fnmr@{op}"] == 0.0 and out[f"fnmr_change@{op}"] == 0.0
        assert out[f"fmr_change@{op}"] > 0


def test_frozen_operating_points_genuine_deflation():
    clean, y = labelled(CLEAN_GEN, CLEAN_IMP)
    defl, _ = labelled([0.40, 0.45, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80], CLEAN_IMP)
    out = M.frozen_operating_points(clean, y, defl, fars=FARS)
    # t=0.50: genuine 0.40, 0.45 now rejected -> FNMR 2/8; t=0.45: 0.40 -> 1/8
    assert out["fnmr@far=1e-01"] == 0.25 and out["fnmr_change@far=1e-01"] == 0.25
    assert out["fnmr@far=2e-01"] == 0.125 and out["fnmr_change@far=2e-01"] == 0.125
    assert out["fnmr_change@best_acc"] == 0.25
    for op in ("far=1e-01", "far=2e-01", "best_acc"):
        assert out[f"fmr_change@{op}"] == 0.0


def test_frozen_operating_points_failed_probe_and_defaults():
    clean, y = labelled(CLEAN_GEN, CLEAN_IMP)
    occl = clean.copy()
    occl[[0, 1, 8]] = FAILED_SCORE  # two genuine and one impostor (0.05) lose their face
    out = M.frozen_operating_points(clean, y, occl, fars=FARS)
    assert out["fnmr_change@far=1e-01"] == 0.25  # failed genuine pairs are misses
    assert out["fmr_change@far=1e-01"] == 0.0  # a failed impostor is never a false match
    # default fars (1e-2, 1e-3) need 100 / 1000 impostors: not measurable on 10
    d = M.frozen_operating_points(clean, y, occl)
    assert list(d)[:5] == [f"{f}@far=1e-02" for f in FIELDS]
    assert all(d[f"{f}@far=1e-02"] is None and d[f"{f}@far=1e-03"] is None for f in FIELDS)
    assert d["threshold@best_acc"] == pytest.approx(0.475)


def test_frozen_operating_points_validation():
    clean, y = labelled(CLEAN_GEN, CLEAN_IMP)
    with pytest.raises(ValueError):
        M.frozen_operating_points(clean, y, clean[:-1])
    with pytest.raises(ValueError, match="both genuine and impostor"):
        M.frozen_operating_points(clean, np.ones(len(y), bool), clean)
    with pytest.raises(ValueError):
        M.frozen_operating_points(clean, y, clean, fars=(0.0,))


def frozen_best(clean, y):
    """The mid-gap rule, written out: halfway from best_threshold down to the next usable score."""
    t = M.best_threshold(clean, y)
    below = clean[(clean < t) & (clean > FAILED_SCORE)]
    return (below.max() + t) / 2 if np.isfinite(t) and len(below) else t


@pytest.mark.parametrize("case", CASES)
def test_frozen_operating_points_match_error_rates(case):
    clean, issame, _ = make_case(**case)
    rng = np.random.default_rng(99)
    noisy = (clean + rng.normal(0, 0.1, len(clean))).clip(-1, 1)
    other = np.where(clean == FAILED_SCORE, clean, noisy)
    out = M.frozen_operating_points(clean, issame, other, fars=(0.05, 0.2))
    for op, far in (("far=5e-02", 0.05), ("far=2e-01", 0.2), ("best_acc", None)):
        t = out[f"threshold@{op}"]
        if far is None:
            ref = frozen_best(clean, issame)
        else:
            ref = M.threshold_at_far(clean, issame, far)
        assert t == ref
        if t is None:  # 31 pairs: too few impostors for far=0.05
            assert all(out[f"{f}@{op}"] is None for f in FIELDS)
            continue
        fmr0, fnmr0 = M.error_rates(clean, issame, t)
        fmr1, fnmr1 = M.error_rates(other, issame, t)
        assert (out[f"fmr@{op}"], out[f"fnmr@{op}"]) == (fmr1, fnmr1)
        assert out[f"fmr_change@{op}"] == pytest.approx(fmr1 - fmr0, abs=1e-15)
        assert out[f"fnmr_change@{op}"] == pytest.approx(fnmr1 - fnmr0, abs=1e-15)


# --------------------------------------------------------------------------- recovery ratio


def test_recovery_ratio_hand_values():
    assert M.recovery_ratio(0.75, 0.5, 1.0) == 0.5
    assert M.recovery_ratio(1.0, 0.5, 1.0) == 1.0
    assert M.recovery_ratio(0.5, 0.5, 1.0) == 0.0
    assert M.recovery_ratio(0.25, 0.5, 1.0) == -0.5  # restoration hurt
    assert M.recovery_ratio(1.25, 0.5, 1.0) == 1.5  # better than clean
    assert M.recovery_ratio(0.9, 0.8, 1.0) == pytest.approx(0.5)
    # similarity gaps, occlusion shrinking the gap from 0.4 to 0.1, inpainting back to 0.25
    assert M.recovery_ratio(0.25, 0.1, 0.4) == pytest.approx(0.5)
    # works whichever direction the damage goes (e.g. an error rate that occlusion raises)
    assert M.recovery_ratio(0.2, 0.3, 0.1) == pytest.approx(0.5)
    assert type(M.recovery_ratio(0.75, 0.5, 1.0)) is float


def test_recovery_ratio_undefined():
    assert M.recovery_ratio(0.7, 0.6, 0.6) is None  # no damage to recover
    assert M.recovery_ratio(0.7, 0.6, 0.6 + 1e-13) is None
    assert M.recovery_ratio(0.7, 0.6, 0.6 + 1e-9) is not None
    assert M.recovery_ratio(None, 0.5, 1.0) is None  # e.g. an unmeasurable TAR
    assert M.recovery_ratio(0.7, float("nan"), 1.0) is None  # e.g. an undefined d'
    with pytest.raises(ValueError):
        M.recovery_ratio(0.7, 0.5, math.inf)


# --------------------------------------------------------------------------- bootstrap


def big_case(n: int, seed: int = 0, k: int = 10):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    s = np.where(y, rng.normal(0.5, 0.2, n), rng.normal(0.1, 0.15, n)).clip(-1, 1)
    return s, y, rng.permutation(np.arange(n) % k)


def test_bootstrap_index_chunks_resample_within_folds():
    folds = np.array([2, 0, 1, 0, 2, 2, 1, 0, 0, 3])  # sizes 4, 2, 3, 1
    _, col_folds, _, _ = M._fold_layout(folds, 4)
    np.testing.assert_array_equal(col_folds, [0, 0, 0, 0, 1, 1, 2, 2, 2, 3])
    def draw(chunk: int) -> np.ndarray:
        gen = M._bootstrap_index_chunks(folds, 4, 300, np.random.default_rng(1), chunk=chunk)
        return np.concatenate(list(gen))

    rows = draw(64)
    assert rows.shape == (300, 10)
    # every column draws from its own fold: fold sizes are kept in every replicate
    np.testing.assert_array_equal(folds[rows], np.broadcast_to(col_folds, rows.shape))
    # the single-pair fold always contributes exactly that pair
    assert np.all(rows[:, -1] == 9)
    # with replacement: repeats occur, and every member of a fold gets drawn
    assert any(len(set(r[:4])) < 4 for r in rows)
    for fold in range(4):
        assert set(rows[:, col_folds == fold].ravel()) == set(np.flatnonzero(folds == fold))
    # rows do not depend on the chunk size
    np.testing.assert_array_equal(rows, draw(7))


@pytest.mark.parametrize("case", CASES)
def test_replicate_stats_match_reference_functions(case):
    scores, issame, folds = make_case(**case)
    k = int(folds.max()) + 1
    fars = (0.05, 0.1, 0.3)
    _, col_folds, _, _ = M._fold_layout(folds, k)
    for idx in M._bootstrap_index_chunks(folds, k, 40, np.random.default_rng(3), chunk=16):
        acc, auc_v, tars = M._replicate_stats(scores, issame, idx, col_folds, k, fars)
        for r in range(len(idx)):
            s, y = scores[idx[r]], issame[idx[r]]
            assert acc[r] == pytest.approx(M.kfold_accuracy(s, y, col_folds).mean, abs=1e-12)
            if y.all() or not y.any():
                assert np.isnan(auc_v[r]) and np.all(np.isnan(tars[:, r]))
                continue
            assert auc_v[r] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
            for m, far in enumerate(fars):
                ref = M.tar_at_far(s, y, far)
                if ref is None:
                    assert np.isnan(tars[m, r])
                else:
                    assert tars[m, r] == pytest.approx(ref, abs=1e-12)


def test_auc_by_ranks_equals_sklearn_with_ties():
    rng = np.random.default_rng(11)
    for trial in range(5):
        n = int(rng.integers(10, 400))
        y = rng.random(n) < rng.uniform(0.2, 0.8)
        y[:2] = [True, False]
        s = np.round(rng.normal(0, 1, n) + y, int(rng.integers(0, 2))).clip(-1, 1)
        s[rng.random(n) < 0.1] = FAILED_SCORE  # a block of tied failed pairs
        folds = np.arange(n) % 2
        _, col_folds, _, _ = M._fold_layout(folds, 2)
        members = np.argsort(folds, kind="stable")[None, :]  # the original data, fold-grouped
        _, auc_v, _ = M._replicate_stats(s, y, members, col_folds, 2, ())
        assert auc_v[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_bootstrap_ci_deterministic_under_seed():
    s, y, f = big_case(600)
    a = M.bootstrap_ci(s, y, f, n_boot=200, seed=5, fars=(1e-2,))
    b = M.bootstrap_ci(s, y, f, n_boot=200, seed=5, fars=(1e-2,))
    c = M.bootstrap_ci(s, y, f, n_boot=200, seed=6, fars=(1e-2,))
    assert a == b
    assert a != c
    assert a["accuracy"] != c["accuracy"] and a["auc"] != c["auc"]
    assert list(a) == ["accuracy", "auc", "tar@far=1e-02"]
    for v in a.values():
        assert isinstance(v, tuple) and len(v) == 2
        assert type(v[0]) is float and type(v[1]) is float and v[0] <= v[1]


def test_bootstrap_ci_contains_point_estimates_and_shrinks():
    widths = {}
    for n in (500, 8000):
        s, y, f = big_case(n, seed=1)
        ci = M.bootstrap_ci(s, y, f, n_boot=300, seed=0, fars=(1e-2,))
        point = {
            "accuracy": M.kfold_accuracy(s, y, f).mean,
            "auc": M.auc(s, y),
            "tar@far=1e-02": M.tar_at_far(s, y, 1e-2),
        }
        for key, v in point.items():
            lo, hi = ci[key]
            assert 0.0 <= lo <= v <= hi <= 1.0, (n, key, lo, v, hi)
        widths[n] = {key: ci[key][1] - ci[key][0] for key in point}
    for key in widths[500]:
        # 16x the pairs: about 4x narrower; require at least 2x
        assert widths[8000][key] < widths[500][key] / 2, key


def test_bootstrap_ci_alpha_widens_interval():
    s, y, f = big_case(1000, seed=2)
    ci95 = M.bootstrap_ci(s, y, f, n_boot=300, seed=0, fars=())
    ci50 = M.bootstrap_ci(s, y, f, n_boot=300, seed=0, fars=(), alpha=0.5)
    for key in ("accuracy", "auc"):
        assert ci95[key][0] <= ci50[key][0] <= ci50[key][1] <= ci95[key][1]


def test_bootstrap_ci_single_pair_folds_are_degenerate():
    # each fold holds one pair, so resampling within folds reproduces the data exactly:
    # every replicate equals the original and each interval collapses to the point value
    s, y, _ = big_case(24, seed=3)
    y[:2] = [True, False]
    f = np.arange(24)
    ci = M.bootstrap_ci(s, y, f, n_boot=50, seed=0, fars=(0.1,))
    acc = M.kfold_accuracy(s, y, f).mean
    assert ci["accuracy"] == pytest.approx((acc, acc), abs=1e-12)
    assert ci["auc"] == pytest.approx((M.auc(s, y),) * 2, abs=1e-12)
    assert ci["tar@far=1e-01"] == pytest.approx((M.tar_at_far(s, y, 0.1),) * 2, abs=1e-12)


def test_bootstrap_ci_not_measurable_and_vanishing_classes():
    s, y, f = big_case(100, seed=4)  # about 50 impostors
    ci = M.bootstrap_ci(s, y, f, n_boot=100, fars=(1e-1, 1e-2, 1e-3))
    assert ci["tar@far=1e-01"] is not None
    assert ci["tar@far=1e-02"] is None and ci["tar@far=1e-03"] is None
    # 2 folds of (genuine, impostor): 1 in 16 replicates has one class only (skipped for auc
    # and tar, without warnings); tar@0.5 is also skipped where a single impostor is drawn
    s = np.array([0.9, 0.2, 0.6, 0.4])
    y = np.array([True, False, True, False])
    ci = M.bootstrap_ci(s, y, np.array([0, 0, 1, 1]), n_boot=200, fars=(0.5,))
    assert ci["auc"] is not None and 0.0 <= ci["auc"][0] <= ci["auc"][1] <= 1.0
    assert ci["tar@far=5e-01"] is not None


def test_bootstrap_ci_validation():
    s, y, f = big_case(50)
    with pytest.raises(ValueError, match="n_boot"):
        M.bootstrap_ci(s, y, f, n_boot=0)
    with pytest.raises(ValueError, match="alpha"):
        M.bootstrap_ci(s, y, f, alpha=1.0)
    with pytest.raises(ValueError, match="both genuine and impostor"):
        M.bootstrap_ci(s, np.ones(50, bool), f)
    with pytest.raises(ValueError, match="folds"):
        M.bootstrap_ci(s, y, f[:-1])
    with pytest.raises(ValueError):
        M.bootstrap_ci(s, y, f, fars=(2.0,))


def test_bootstrap_ci_on_a_full_size_protocol():
    # speed is measured by benchmarks/bench_run.py, not asserted here
    s, y, f = big_case(7000)
    ci = M.bootstrap_ci(s, y, f, n_boot=200)
    assert ci["tar@far=1e-03"] is not None  # ~3,500 impostors measure 1e-3


# --------------------------------------------------------------------------- McNemar


def paired(b: int, c: int, both_right: int = 0, both_wrong: int = 0):
    a = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    bb = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    return np.array(a), np.array(bb)


def test_mcnemar_exact_hand_case():
    a, b = paired(8, 2, both_right=5, both_wrong=3)
    out = M.mcnemar(a, b)
    assert out == {
        "n": 18,
        "a_only": 8,
        "b_only": 2,
        "statistic": 2.0,
        "p_value": pytest.approx(0.109375, rel=1e-12),  # 2 * (1 + 10 + 45) / 1024
        "method": "exact",
    }
    assert out["p_value"] == pytest.approx(2 * stats.binom.cdf(2, 10, 0.5), rel=1e-12)
    # b=3, c=9: 2 * (C(12,0) + C(12,1) + C(12,2) + C(12,3)) / 4096
    assert M.mcnemar(*paired(3, 9))["p_value"] == pytest.approx(2 * 299 / 4096, rel=1e-12)
    # symmetric in the two conditions
    swapped = M.mcnemar(b, a)
    assert (swapped["a_only"], swapped["b_only"]) == (2, 8)
    assert swapped["p_value"] == out["p_value"]


def test_mcnemar_chi2_hand_case():
    out = M.mcnemar(*paired(30, 10, both_right=50))
    assert out["method"] == "chi2" and out["n"] == 90
    assert out["statistic"] == pytest.approx((20 - 1) ** 2 / 40)  # 9.025
    # chi-square survival function with 1 df: erfc(sqrt(x / 2))
    assert out["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)), rel=1e-10)
    assert all(type(out[key]) is float for key in ("statistic", "p_value"))
    assert all(type(out[key]) is int for key in ("n", "a_only", "b_only"))


def test_mcnemar_branch_boundary_and_no_discordance():
    assert M.mcnemar(*paired(16, 8))["method"] == "exact"  # b + c = 24
    assert M.mcnemar(*paired(17, 8))["method"] == "chi2"  # b + c = 25
    out = M.mcnemar(*paired(0, 0, both_right=4, both_wrong=2))
    assert out["p_value"] == 1.0 and out["statistic"] == 0.0 and out["method"] == "exact"
    assert M.mcnemar(*paired(5, 5))["p_value"] == 1.0


def test_mcnemar_validation_and_integer_input():
    with pytest.raises(ValueError, match="entries"):
        M.mcnemar([True, False], [True])
    with pytest.raises(ValueError):
        M.mcnemar([0.5, 1.0], [True, False])
    with pytest.raises(ValueError):
        M.mcnemar([[True]], [[False]])
    assert M.mcnemar([1, 0, 1], [0, 0, 1])["a_only"] == 1


def test_mcnemar_on_decisions_at_frozen_threshold():
    clean, y = labelled(CLEAN_GEN, CLEAN_IMP)
    infl, _ = labelled(CLEAN_GEN, [0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.70])
    t = M.best_threshold(clean, y)
    out = M.mcnemar(M.decisions(clean, y, t), M.decisions(infl, y, t))
    # impostors 0.50 and 0.55 become false matches at t = 0.5; nothing improves
    assert (out["a_only"], out["b_only"]) == (2, 0)
    assert out["p_value"] == pytest.approx(0.5)  # 2 * 0.5^2
