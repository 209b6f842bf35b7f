"""The U-statistic intervals of the cross-instance mean cosine, and their simulated coverage."""

from __future__ import annotations

import numpy as np
import pytest

from latentprobe.errors import SimilarityError, StatsInputError
from latentprobe.geometry import SimilarityModel, across_instances, cosine_matrix, similarity_coverage
from latentprobe.stats import jackknife_u_interval, pair_bootstrap_u_interval


def _pairs(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 6)) + 0.8
    return cosine_matrix(x)


def _u(s: np.ndarray) -> float:
    n = s.shape[0]
    return float((s.sum() - np.trace(s)) / (n * (n - 1)))


def test_jackknife_equals_the_brute_force_leave_one_instance_out():
    s = _pairs(15)
    n = s.shape[0]
    r = (s.sum(axis=1) - np.diag(s)) / (n - 1)
    est, low, high, se = jackknife_u_interval(r, level=0.9)
    loo = np.array([_u(np.delete(np.delete(s, i, 0), i, 1)) for i in range(n)])
    se_brute = np.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum())
    assert est == pytest.approx(_u(s), abs=1e-12)
    assert se == pytest.approx(se_brute, rel=1e-10)
    from scipy import stats
    assert high - est == pytest.approx(stats.t.ppf(0.95, n - 1) * se_brute, rel=1e-10)
    assert est - low == pytest.approx(high - est, rel=1e-12)


def test_jackknife_is_about_twice_as_wide_as_the_per_instance_bootstrap():
    r = np.random.default_rng(0).normal(size=200)
    _, low, high, se = jackknife_u_interval(r)
    naive_se = r.std(ddof=1) / np.sqrt(r.size)
    assert se / naive_se == pytest.approx(2 * (199 / 198), rel=1e-9)  # exactly 2 (n-1)/(n-2)


def test_jackknife_columns_and_small_n():
    r = np.random.default_rng(1).normal(size=(10, 3))
    est, low, high, _ = jackknife_u_interval(r)
    for j in range(3):
        e1, l1, h1, _ = jackknife_u_interval(r[:, j])
        assert (est[j], low[j], high[j]) == pytest.approx((e1, l1, h1))
    _, low2, high2, se2 = jackknife_u_interval(np.array([0.1, 0.2]))
    assert np.isnan(low2) and np.isnan(high2) and np.isnan(se2)
    with pytest.raises(StatsInputError, match="NaN"):
        jackknife_u_interval(np.array([0.1, np.nan, 0.3]))


def test_pair_bootstrap_never_pairs_an_instance_with_its_copy():
    s = _pairs(8, seed=2)
    est, low, high = pair_bootstrap_u_interval(s, n_boot=300, seed=5)
    idx = np.random.default_rng(5).integers(0, 8, size=(300, 8))  # the documented draw
    boot = []
    for row in idx:
        vals = [s[row[a], row[b]] for a in range(8) for b in range(8) if row[a] != row[b]]
        if vals:
            boot.append(np.mean(vals))
    lo, hi = np.quantile(boot, [0.025, 0.975])
    assert est == pytest.approx(_u(s)) and low == pytest.approx(lo) and high == pytest.approx(hi)


def test_across_instances_uses_the_jackknife_by_default():
    z = np.random.default_rng(3).normal(size=(30, 2, 8)) + 0.5
    res = across_instances(z, n_boot=100)
    _, low, high, _ = jackknife_u_interval(res.per_instance)
    assert res.summary["ci_low"].tolist() == pytest.approx(low.tolist())
    assert res.summary["ci_high"].tolist() == pytest.approx(high.tolist())
    boot = across_instances(z, n_boot=100, interval="bootstrap")
    _, blow, bhigh = pair_bootstrap_u_interval(boot.matrices, n_boot=100, seed=0)
    assert boot.summary["ci_low"].tolist() == pytest.approx(blow.tolist())
    assert np.isnan(across_instances(z, n_boot=0).summary["ci_low"]).all()
    with pytest.raises(SimilarityError, match="max_matrix"):
        across_instances(z, interval="bootstrap", max_matrix=10)
    with pytest.raises(SimilarityError, match="interval"):
        across_instances(z, interval="pairs")


def test_jackknife_needs_no_matrix_and_agrees_above_max_matrix():
    z = np.random.default_rng(4).normal(size=(40, 2, 8)) + 0.5
    small, big = across_instances(z, n_boot=10), across_instances(z, n_boot=10, max_matrix=5)
    assert big.matrices is None
    assert big.summary["ci_low"].tolist() == pytest.approx(small.summary["ci_low"].tolist(), abs=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("n", [24, 120])
def test_jackknife_covers_at_its_nominal_level_and_the_former_interval_does_not(n):
    # 1,000 replications x 2 independent steps: coverage standard error about 0.005
    row = similarity_coverage(n, reps=1000).iloc[0]
    assert 0.93 <= row["coverage"] <= 0.97
    old = similarity_coverage(n, reps=1000, interval="per_instance", n_boot=200).iloc[0]
    assert old["coverage"] < 0.8
    assert row["mean_width"] / old["mean_width"] > 1.8


@pytest.mark.slow
@pytest.mark.parametrize("n", [24, 120])
def test_jackknife_covers_skewed_cosines(n):
    row = similarity_coverage(n, reps=1000, model=SimilarityModel(shift=3.0)).iloc[0]
    assert row["truth"] > 0.7  # most pair cosines are near 1: a skewed, bounded outcome
    assert 0.93 <= row["coverage"] <= 0.97
