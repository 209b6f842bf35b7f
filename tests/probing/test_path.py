"""The warm-started, shared-fold inner search selects what GridSearchCV selects; float32 stays float32."""

from __future__ import annotations

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from latentprobe.probing import LinearProbe, ProbeError, probe_sweep
from latentprobe.probing._checks import _check_X

from ._data import grouped_data

CS = (0.01, 0.1, 1.0, 10.0)


def _slow_path(X, y, groups):
    """The inner search as GridSearchCV does it: float64, a cold fit per C and inner fold."""
    pipe = Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression(max_iter=1000))])
    search = GridSearchCV(pipe, {"model__C": list(CS)}, cv=GroupKFold(2), error_score=np.nan)
    return search.fit(np.asarray(X, dtype=np.float64), y, groups=groups)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_warm_path_selects_like_grid_search(seed, dtype):
    X, y, groups = grouped_data(n_groups=60, per_group=3, d=12, signal=0.8, seed=seed)
    train, test = groups % 4 != 0, groups % 4 == 0
    X = X.astype(dtype)
    slow = _slow_path(X[train], y[train], groups[train])
    probe = LinearProbe(Cs=CS).fit(X[train], y[train], groups=groups[train])
    assert probe.best_C_ == slow.best_params_["model__C"]
    assert probe.score(X[test], y[test]) == pytest.approx(slow.score(X[test].astype(np.float64), y[test]), abs=1e-12)
    np.testing.assert_allclose(probe.cv_results_["mean_test_score"], slow.cv_results_["mean_test_score"], atol=0.02)


def test_cold_path_reproduces_grid_search_exactly():
    X, y, groups = grouped_data(n_groups=50, per_group=2, d=10, signal=0.7, seed=5)
    slow = _slow_path(X, y, groups)
    probe = LinearProbe(Cs=CS, warm_start=False).fit(X, y, groups=groups)
    assert probe.best_C_ == slow.best_params_["model__C"]
    for key in ("mean_test_score", "split0_test_score", "split1_test_score", "rank_test_score"):
        np.testing.assert_allclose(probe.cv_results_[key], slow.cv_results_[key], rtol=0, atol=1e-12)
    np.testing.assert_allclose(probe.predict_proba(X), slow.predict_proba(X), rtol=1e-6, atol=1e-9)


def test_float32_features_are_not_copied_to_float64():
    X, y, groups = grouped_data()
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    assert _check_X(X32) is X32
    assert _check_X(X32.astype(np.float16)).dtype == np.float32
    probe = LinearProbe(Cs=(0.1, 1.0)).fit(X32, y, groups=groups)
    assert probe.pipeline_.named_steps["model"].coef_.dtype == np.float32
    with pytest.raises(ProbeError, match="NaN or infinite"):
        bad = X32.copy()
        bad[3, 2] = np.inf
        _check_X(bad)


def _sweep_data():
    X, y, groups = grouped_data(n_groups=30, per_group=2, d=6, n_classes=2, seed=4)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(len(y), 2, 2, 6))
    features[:, 1, 1] = X
    return features, y, groups


def test_controls_per_cell_match_the_full_sweep():
    features, y, groups = _sweep_data()
    kw = dict(n_splits=3, probe=LinearProbe(Cs=(1.0,)), progress=False, control_types=np.arange(len(y)) % 4)
    full = probe_sweep(features, y, groups, controls=True, **kw).scores
    some = probe_sweep(features, y, groups, controls=[(1, 1)], **kw).scores
    picked = (some.layer == 1) & (some.step == 1)
    cols = ["score", "shuffle", "control", "selectivity", "selectivity_ci_low", "selectivity_ci_high", "control_recur",
            "majority", "chance"]
    np.testing.assert_array_equal(some.loc[picked, cols].to_numpy(), full.loc[picked, cols].to_numpy())
    assert some.loc[~picked, ["shuffle", "control", "selectivity", "selectivity_ci_low"]].isna().all().all()
    np.testing.assert_array_equal(some.score, full.score)
    with pytest.raises(ProbeError, match="not probed"):
        probe_sweep(features, y, groups, controls=[(5, 0)], **kw)


def test_n_jobs_gives_the_same_rows():
    features, y, groups = _sweep_data()
    kw = dict(n_splits=3, probe=LinearProbe(Cs=(0.1, 1.0)), progress=False, control_types=np.arange(len(y)) % 4)
    serial = probe_sweep(features, y, groups, **kw).scores
    # threads instead of worker processes: same code path, without the cost of starting interpreters
    with parallel_config(backend="threading"):
        parallel = probe_sweep(features, y, groups, n_jobs=2, **kw).scores
    np.testing.assert_array_equal(serial.to_numpy(), parallel.to_numpy())
