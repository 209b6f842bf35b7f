"""Tests for latentprobe.probing: LinearProbe, the estimator (small synthetic data, CPU only)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from latentprobe.probing import LinearProbe, ProbeError

from ._data import FAST, grouped_data


def test_linear_probe_classification_attributes():
    X, y, groups = grouped_data()
    probe = LinearProbe(**FAST).fit(X, y, groups=groups)
    assert probe.best_C_ in FAST["Cs"]
    np.testing.assert_array_equal(probe.classes_, [0, 1, 2])
    proba = probe.predict_proba(X)
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert probe.score(X, y) > 0.9
    assert probe.pipeline_.steps[0][0] == "scaler"
    assert probe.n_features_in_ == X.shape[1]


def test_linear_probe_regression_multioutput():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 6))
    Y = X @ rng.normal(size=(6, 4))
    probe = LinearProbe(task="regression", alphas=(0.01, 1.0)).fit(X, Y)
    assert probe.best_alpha_ in (0.01, 1.0)
    assert probe.predict(X).shape == (80, 4)
    assert probe.score(X, Y) > 0.99
    with pytest.raises(ProbeError, match="classification"):
        probe.predict_proba(X)


def test_linear_probe_sklearn_compat():
    X, y, groups = grouped_data(seed=2)
    probe = LinearProbe(Cs=(0.5,), max_iter=200, random_state=3)
    cloned = clone(probe)
    assert cloned.get_params() == probe.get_params()
    assert not hasattr(cloned, "pipeline_")
    scores = cross_val_score(probe, X, y, cv=GroupKFold(n_splits=3), groups=groups)
    assert scores.shape == (3,) and scores.mean() > 0.8
    pipe = make_pipeline(FunctionTransformer(), LinearProbe(**FAST))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
    # Regression probes are seen as regressors by scikit-learn.
    from sklearn.base import is_classifier, is_regressor

    assert is_classifier(LinearProbe()) and is_regressor(LinearProbe(task="regression"))


def test_linear_probe_feature_mismatch():
    X, y, _ = grouped_data()
    probe = LinearProbe(Cs=(1.0,)).fit(X, y)
    with pytest.raises(ProbeError, match="features"):
        probe.predict(X[:, :3])
