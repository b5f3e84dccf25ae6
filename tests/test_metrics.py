"""Tests for recogbench.metrics against brute-force references and hand-computed cases."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from recogbench import metrics as M
from recogbench.metrics import FAILED_SCORE

# --------------------------------------------------------------------------- references


def brute_best_threshold(scores: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """O(n^2) reference: try every distinct non-failed score and +inf; ties -> larger t."""
    cands = sorted({float(x) for x in scores if x != FAILED_SCORE}) + [math.inf]
    best_t, best_acc = None, -1.0
    for t in cands:  # ascending, so ">=" keeps the largest threshold among ties
        acc = float(np.mean((scores >= t) == issame))
        if acc >= best_acc:
            best_t, best_acc = t, acc
    return best_t, best_acc


def brute_kfold(scores, issame, folds):
    k = int(folds.max()) + 1
    accs, ths = [], []
    for i in range(k):
        tr, te = folds != i, folds == i
        t, _ = brute_best_threshold(scores[tr], issame[tr])
        ths.append(t)
        accs.append(float(np.mean((scores[te] >= t) == issame[te])))
    return np.array(accs), np.array(ths)


def random_case(
    seed: int, n: int = 200, k: int = 5, decimals: int | None = None, n_failed: int = 0
):
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.5
    scores = np.where(issame, rng.normal(0.4, 0.25, n), rng.normal(0.1, 0.2, n)).clip(-1, 1)
    if decimals is not None:  # heavy ties and repeated scores
        scores = np.round(scores, decimals)
    if n_failed:
        scores[rng.choice(n, n_failed, replace=False)] = FAILED_SCORE
    folds = rng.permutation(np.arange(n) % k)
    return scores, issame, folds


CASES = [
    dict(seed=0),
    dict(seed=1, decimals=1),
    dict(seed=2, decimals=2, n_failed=15),
    dict(seed=3, n=57, k=4, decimals=1, n_failed=5),
    dict(seed=4, n=31, k=3, decimals=0),
    dict(seed=5, n=300, k=10, n_failed=40),
]


# --------------------------------------------------------------------------- cosine


def test_cosine_scores_rowwise_and_clipped():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]])
    b = np.array([[1.0, 0.0], [1.0, 0.0], [0.8, 0.6], [-1.0000001, 0.0]])
    out = M.cosine_scores(a, b)
    assert out.dtype == np.float64 and out.shape == (4,)
    np.testing.assert_allclose(out, [1.0, 0.0, 0.96, -1.0])
    assert out.min() >= -1.0


def test_cosine_scores_float32_and_bad_shapes():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 8)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    out = M.cosine_scores(a, a)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        M.cosine_scores(a, a[:4])
    with pytest.raises(ValueError):
        M.cosine_scores(a[0], a[0])


# --------------------------------------------------------------------------- best threshold


@pytest.mark.parametrize("case", CASES)
def test_best_threshold_matches_brute_force(case):
    scores, issame, _ = random_case(**case)
    t = M.best_threshold(scores, issame)
    t_ref, acc_ref = brute_best_threshold(scores, issame)
    assert t == t_ref
    assert float(np.mean((scores >= t) == issame)) == acc_ref


def test_best_threshold_hand_case_and_tie_breaking():
    # scores:  0.1  0.4  0.6  0.9 ; labels: F T F T
    s = np.array([0.1, 0.4, 0.6, 0.9])
    y = np.array([False, True, False, True])
    # t=0.1 -> 2/4, t=0.4 -> 3/4, t=0.6 -> 2/4, t=0.9 -> 3/4, inf -> 2/4: tie -> larger, 0.9
    assert M.best_threshold(s, y) == 0.9
    # a perfectly separable case: the threshold is the lowest genuine score
    assert M.best_threshold([0.2, 0.3, 0.7, 0.8], [False, False, True, True]) == 0.7
    # all impostors: reject everything
    assert M.best_threshold([0.2, 0.3], [False, False]) == math.inf


def test_best_threshold_ties_within_equal_scores():
    # equal scores must move together: t=0.5 accepts all three 0.5s
    s = np.array([0.5, 0.5, 0.5, 0.2])
    y = np.array([True, True, False, False])
    # t=0.2 -> 2/4, t=0.5 -> 3/4, inf -> 2/4
    assert M.best_threshold(s, y) == 0.5


def test_best_threshold_accepts_int_labels_and_rejects_garbage():
    assert M.best_threshold([0.1, 0.9], [0, 1]) == 0.9
    with pytest.raises(ValueError, match="issame"):
        M.best_threshold([0.1, 0.9], [0, 2])
    with pytest.raises(ValueError, match="finite"):
        M.best_threshold([0.1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="entries"):
        M.best_threshold([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        M.best_threshold(np.zeros((2, 2)), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="FAILED_SCORE"):
        M.best_threshold([-3.0, 0.5], [0, 1])


# --------------------------------------------------------------------------- failed pairs


def test_failed_pairs_never_match():
    # Three failed genuine pairs and one impostor. A threshold at FAILED_SCORE would accept
    # the failed pairs and score 3/4; it must not be a candidate.
    s = np.array([FAILED_SCORE, FAILED_SCORE, FAILED_SCORE, 0.5])
    y = np.array([True, True, True, False])
    assert M.best_threshold(s, y) == math.inf
    res = M.kfold_accuracy(s, y, np.array([0, 1, 0, 1]))
    assert np.all(res.thresholds > FAILED_SCORE)
    np.testing.assert_array_equal(res.accuracies, [0.0, 0.5])


def test_failed_pairs_lower_accuracy_but_not_similarity():
    s = np.array([0.9, 0.8, 0.1, 0.2, FAILED_SCORE, FAILED_SCORE])
    y = np.array([True, True, False, False, True, False])
    folds = np.array([0, 1, 0, 1, 0, 1])
    # fold 0 train on fold 1 -> {0.8 T, 0.2 F, FAILED F}: best t = 0.8 (3/3)
    # fold 0 test {0.9 T, 0.1 F, FAILED T} -> 2/3 (the failed genuine is a miss)
    # fold 1 train on fold 0 -> {0.9 T, 0.1 F, FAILED T}: t=0.9 -> 2/3, t=0.1 and inf -> 1/3
    # fold 1 test {0.8 T, 0.2 F, FAILED F} with t=0.9 -> 2/3
    res = M.kfold_accuracy(s, y, folds)
    np.testing.assert_array_equal(res.thresholds, [0.8, 0.9])
    np.testing.assert_allclose(res.accuracies, [2 / 3, 2 / 3])
    st = M.similarity_stats(s, y)
    assert st["mean_genuine"] == pytest.approx(0.85)
    assert st["mean_impostor"] == pytest.approx(0.15)


# --------------------------------------------------------------------------- k-fold


@pytest.mark.parametrize("case", CASES)
def test_kfold_matches_brute_force(case):
    scores, issame, folds = random_case(**case)
    res = M.kfold_accuracy(scores, issame, folds)
    accs, ths = brute_kfold(scores, issame, folds)
    np.testing.assert_array_equal(res.thresholds, ths)
    np.testing.assert_allclose(res.accuracies, accs, rtol=0, atol=1e-15)
    assert res.mean == pytest.approx(np.mean(accs))
    assert res.std == pytest.approx(np.std(accs))  # ddof=0
    assert isinstance(res.mean, float) and isinstance(res.std, float)


def test_kfold_hand_computed_four_folds_of_four():
    # Fold 0: genuine 0.9, 0.8  impostor 0.3, 0.2
    # Fold 1: genuine 0.7, 0.4  impostor 0.5, 0.1
    # Fold 2: genuine 0.6, 0.6  impostor 0.6, 0.0
    # Fold 3: genuine 0.3, 0.9  impostor 0.45, 0.35
    s = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.4, 0.5, 0.1, 0.6, 0.6, 0.6, 0.0, 0.3, 0.9, 0.45, 0.35])
    y = np.array([1, 1, 0, 0] * 4, dtype=bool)
    folds = np.repeat(np.arange(4), 4)
    res = M.kfold_accuracy(s, y, folds)
    # Correct predictions on the 12 training pairs, per candidate threshold:
    # Hold out fold 0: t=0.6 -> 9 (0.5, 0.7 -> 8): t=0.6; fold 0 at 0.6 -> 4/4.
    # Hold out fold 1: t=0.6 -> 10 (0.45, 0.8 -> 9): t=0.6;
    #   fold 1 at 0.6: 0.7 T ok, 0.4 T miss, 0.5 F ok, 0.1 F ok -> 3/4.
    # Hold out fold 2: t=0.7 -> 10 (0.4, 0.5, 0.8 -> 9): t=0.7;
    #   fold 2 at 0.7: 0.6 T miss x2, 0.6 F ok, 0.0 F ok -> 2/4.
    # Hold out fold 3: t=0.4 -> 10 and t=0.6 -> 10 tie; the larger wins: t=0.6;
    #   fold 3 at 0.6: 0.3 T miss, 0.9 T ok, 0.45 F ok, 0.35 F ok -> 3/4.
    np.testing.assert_array_equal(res.thresholds, [0.6, 0.6, 0.7, 0.6])
    np.testing.assert_array_equal(res.accuracies, [1.0, 0.75, 0.5, 0.75])
    assert res.mean == pytest.approx(0.75)
    assert res.std == pytest.approx(math.sqrt((0.25**2 + 0 + 0.25**2 + 0) / 4))


def test_kfold_result_is_frozen_and_validates_folds():
    s, y, f = random_case(0, n=20, k=2)
    res = M.kfold_accuracy(s, y, f)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.mean = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="at least 2 folds"):
        M.kfold_accuracy(s, y, np.zeros(20, dtype=int))
    with pytest.raises(ValueError, match="empty"):
        M.kfold_accuracy(s, y, np.where(f == 1, 2, 0))
    with pytest.raises(ValueError, match="integer"):
        M.kfold_accuracy(s, y, f.astype(float))
    with pytest.raises(ValueError, match=">= 0"):
        M.kfold_accuracy(s, y, f - 1)


# --------------------------------------------------------------------------- ROC / AUC / EER


@pytest.mark.parametrize("case", CASES)
def test_roc_and_auc_match_sklearn(case):
    scores, issame, folds = random_case(**case)
    fpr, tpr, th = M.roc(scores, issame)
    rf, rt, rth = roc_curve(issame, scores, drop_intermediate=False)
    np.testing.assert_array_equal(fpr, rf)
    np.testing.assert_array_equal(tpr, rt)
    np.testing.assert_array_equal(th, rth)
    # with drop_intermediate=False every distinct score is a point
    assert len(th) == len(np.unique(scores)) + 1
    ref = roc_auc_score(issame, scores)
    assert M.auc(scores, issame) == pytest.approx(ref, abs=1e-12)
    assert M.summarize(scores, issame, folds)["auc"] == pytest.approx(ref, abs=1e-12)


def test_auc_hand_case():
    # genuine {0.9, 0.3}, impostor {0.5, 0.1}: 3 of 4 genuine/impostor orderings correct
    assert M.auc([0.9, 0.3, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)


def test_eer_separable_is_zero():
    assert M.eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0


def test_eer_fully_inverted_is_one():
    assert M.eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 1.0


def test_eer_interpolated_hand_case():
    # genuine {0.9, 0.8, 0.3}, impostor {0.5, 0.2}. ROC (fpr, tpr):
    # inf (0,0) 0.9 (0,1/3) 0.8 (0,2/3) 0.5 (1/2,2/3) 0.3 (1/2,1) 0.2 (1,1).
    # FPR - FNR goes -1/3 -> +1/6 between (0,2/3) and (1/2,2/3): crossing at fpr = 1/3.
    assert M.eer([0.9, 0.8, 0.3, 0.5, 0.2], [1, 1, 1, 0, 0]) == pytest.approx(1 / 3)


def test_eer_exact_roc_point():
    # genuine {0.9, 0.6}, impostor {0.7, 0.1}: at t=0.7 fpr=1/2, tpr=1/2 -> EER 0.5
    assert M.eer([0.9, 0.6, 0.7, 0.1], [1, 1, 0, 0]) == pytest.approx(0.5)


@pytest.mark.parametrize("case", CASES)
def test_eer_is_where_fpr_equals_fnr(case):
    scores, issame, _ = random_case(**case)
    e = M.eer(scores, issame)
    fpr, tpr, _ = M.roc(scores, issame)
    fnr = 1 - tpr
    # The EER lies between FPR and FNR at the ROC points bracketing the crossing.
    i = int(np.argmax(fpr >= fnr))
    lo = min(fpr[i - 1], fnr[i], fpr[i])
    hi = max(fnr[i - 1], fpr[i], fnr[i])
    assert lo - 1e-12 <= e <= hi + 1e-12
    assert 0.0 <= e <= 1.0


@pytest.mark.parametrize("fn", [M.roc, M.auc, M.eer])
def test_roc_family_needs_both_classes(fn):
    with pytest.raises(ValueError, match="both genuine and impostor"):
        fn([0.1, 0.2], [True, True])


# --------------------------------------------------------------------------- TAR @ FAR


def test_tar_at_far_measurability_rule():
    rng = np.random.default_rng(7)
    n_imp = 3000
    y = np.r_[np.ones(100, bool), np.zeros(n_imp, bool)]
    s = rng.random(len(y))
    assert M.tar_at_far(s, y, 1e-4) is None  # 3000 * 1e-4 = 0.3 < 1
    assert M.tar_at_far(s, y, 1e-3) is not None  # 3000 * 1e-3 = 3 (exactly at the edge: 3 FAs)
    assert M.tar_at_far(s, y, 1 / 3000) is not None  # exactly one false accept allowed
    # boundary: 10,000 impostors can measure 1e-4, 9,999 cannot
    y2 = np.r_[np.ones(10, bool), np.zeros(10_000, bool)]
    s2 = rng.random(len(y2))
    assert M.tar_at_far(s2, y2, 1e-4) is not None
    assert M.tar_at_far(s2[:-1], y2[:-1], 1e-4) is None


def test_tar_at_far_hand_case():
    imp = np.arange(10) / 10  # 0.0 .. 0.9: one false accept per 0.1 step below 1
    gen = np.array([0.95, 0.92, 0.85, 0.5])
    s = np.r_[gen, imp]
    y = np.r_[np.ones(4, bool), np.zeros(10, bool)]
    # far=0.1 allows 1 FA: lowest threshold with <=1 FA is 0.85 (accepts imp 0.9) -> 3/4
    assert M.tar_at_far(s, y, 0.1) == pytest.approx(0.75)
    # far=0.2 allows 2 FAs: threshold 0.8 -> still 3/4 of genuine
    assert M.tar_at_far(s, y, 0.2) == pytest.approx(0.75)
    # far=0.15 allows 1 FA (floor(1.5)) -> 3/4
    assert M.tar_at_far(s, y, 0.15) == pytest.approx(0.75)
    # far=0.6 allows 6 FAs: threshold 0.4 accepts 0.5 too -> 1.0
    assert M.tar_at_far(s, y, 0.6) == 1.0
    # far=0.5 allows 5 FAs: threshold 0.5 (imps 0.5..0.9) -> all genuine accepted
    assert M.tar_at_far(s, y, 0.5) == 1.0
    # far=0.4 allows 4 FAs: threshold 0.6 -> 0.5 rejected -> 3/4
    assert M.tar_at_far(s, y, 0.4) == pytest.approx(0.75)


def test_tar_at_far_genuine_tied_with_impostor():
    # genuine 0.9 ties with impostor 0.9; 2 impostors -> far=0.5 allows 1 FA
    s = np.array([0.9, 0.7, 0.9, 0.1])
    y = np.array([True, True, False, False])
    assert M.tar_at_far(s, y, 0.5) == pytest.approx(1.0)  # t=0.7: FA = {0.9}
    # with zero FAs allowed nothing is measurable for 2 impostors at far < 0.5
    assert M.tar_at_far(s, y, 0.4) is None


@pytest.mark.parametrize("case", CASES)
def test_tar_at_far_matches_brute_force(case):
    scores, issame, _ = random_case(**case)
    n_imp = int(np.sum(~issame))
    for far in (0.05, 0.1, 0.3):
        best = 0.0
        for t in np.unique(scores):
            if np.sum((scores >= t) & ~issame) <= far * n_imp + 1e-9:
                best = max(best, float(np.mean(scores[issame] >= t)))
        got = M.tar_at_far(scores, issame, far)
        if n_imp * far < 1:
            assert got is None
        else:
            assert got == pytest.approx(best)


def test_tar_at_far_bad_far():
    with pytest.raises(ValueError):
        M.tar_at_far([0.1, 0.9], [0, 1], 0.0)
    with pytest.raises(ValueError):
        M.tar_at_far([0.1, 0.9], [0, 1], 1.5)


def test_fars_constant():
    assert M.FARS == (1e-1, 1e-2, 1e-3, 1e-4)


# --------------------------------------------------------------------------- similarity stats


def test_similarity_stats_by_hand():
    s = np.array([0.8, 0.6, 0.1, 0.3, FAILED_SCORE, FAILED_SCORE])
    y = np.array([True, True, False, False, True, False])
    st = M.similarity_stats(s, y)
    assert st["mean_genuine"] == pytest.approx(0.7)
    assert st["mean_impostor"] == pytest.approx(0.2)
    assert st["gap"] == pytest.approx(0.5)
    # var_g = var_i = 0.01 (population) -> d' = 0.5 / sqrt(0.01) = 5
    assert st["d_prime"] == pytest.approx(5.0)
    assert all(type(v) is float for v in st.values())


def test_d_prime_unequal_variances():
    s = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # genuine {1, 0} var .25; impostor {0,0,0,0} var 0
    y = np.array([True, True, False, False, False, False])
    st = M.similarity_stats(s, y)
    assert st["d_prime"] == pytest.approx(0.5 / math.sqrt(0.125))


def test_similarity_stats_undefined_is_nan():
    st = M.similarity_stats([0.5, 0.5, 0.2, 0.2], [1, 1, 0, 0])  # zero variance
    assert st["gap"] == pytest.approx(0.3)
    assert math.isnan(st["d_prime"])
    st = M.similarity_stats([0.5, FAILED_SCORE], [1, 0])  # every impostor failed
    assert st["mean_genuine"] == 0.5
    assert math.isnan(st["mean_impostor"]) and math.isnan(st["d_prime"])


# --------------------------------------------------------------------------- summarize

SUMMARY_KEYS = [
    "accuracy_mean",
    "accuracy_std",
    "auc",
    "eer",
    "tar@far=1e-01",
    "tar@far=1e-02",
    "tar@far=1e-03",
    "tar@far=1e-04",
    "mean_genuine",
    "mean_impostor",
    "similarity_gap",
    "d_prime",
    "n_pairs",
    "n_genuine",
    "n_impostor",
]


def test_summarize_keys_types_and_values():
    scores, issame, folds = random_case(5, n=300, k=10, n_failed=40)
    out = M.summarize(scores, issame, folds)
    assert list(out) == SUMMARY_KEYS
    for key, v in out.items():
        if key.startswith("n_"):
            assert type(v) is int, key
        elif key.startswith("tar@"):
            assert v is None or type(v) is float, key
        else:
            assert type(v) is float, key
    n_imp = int(np.sum(~issame))
    assert out["n_pairs"] == 300
    assert out["n_genuine"] == 300 - n_imp and out["n_impostor"] == n_imp
    # ~150 impostors: 1e-1, 1e-2 measurable; 1e-3, 1e-4 not
    assert out["tar@far=1e-01"] is not None and out["tar@far=1e-02"] is not None
    assert out["tar@far=1e-03"] is None and out["tar@far=1e-04"] is None
    kf = M.kfold_accuracy(scores, issame, folds)
    assert out["accuracy_mean"] == kf.mean and out["accuracy_std"] == kf.std
    assert out["eer"] == M.eer(scores, issame)
    assert out["tar@far=1e-01"] == M.tar_at_far(scores, issame, 0.1)
    st = M.similarity_stats(scores, issame)
    assert out["similarity_gap"] == st["gap"] and out["d_prime"] == st["d_prime"]
    assert out["mean_genuine"] == st["mean_genuine"] and out["mean_impostor"] == st["mean_impostor"]


def test_summarize_validates_inputs():
    s, y, f = random_case(0, n=20, k=2)
    with pytest.raises(ValueError, match="both genuine and impostor"):
        M.summarize(s, np.ones(20, bool), f)
    with pytest.raises(ValueError, match="entries"):
        M.summarize(s, y[:-1], f)
    with pytest.raises(ValueError, match="folds"):
        M.summarize(s, y, f[:-1])
    bad = s.copy()
    bad[3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        M.summarize(bad, y, f)
    with pytest.raises(ValueError, match="empty"):
        M.summarize(np.zeros(0), np.zeros(0, bool), np.zeros(0, int))
