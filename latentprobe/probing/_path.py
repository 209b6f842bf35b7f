"""Regularisation path of :class:`~latentprobe.probing.LinearProbe`: the inner search without GridSearchCV.

The inner search scores every grid value on every inner fold and keeps the best mean, like
:class:`~sklearn.model_selection.GridSearchCV` with ``refit=True`` and ``error_score=nan`` (same
splits, same scorer, same tie-breaking: the first grid value with the best mean wins, NaN means rank
last, all-NaN picks the first value).  It differs in cost only:

* each inner fold is standardised once and the scaled block is reused for the whole grid;
* logistic fits run along the grid in increasing ``C`` (strong to weak regularisation) with
  ``warm_start=True``, so each fit starts from the previous solution, as
  :class:`~sklearn.linear_model.LogisticRegressionCV` does along its path;
* the final refit on all training data is a cold fit at the chosen value, as GridSearchCV's refit;
* float32 input stays float32 (lbfgs and ``StandardScaler`` accept it; the scaler accumulates its
  means and variances in float64).

Warm starts move each lbfgs solution only within the solver tolerance (lbfgs stops once the gradient of
the mean loss is below ``tol=1e-4``; after a warm start that often takes 0-2 iterations), so the
validation scores can differ from cold fits by an example near the decision boundary.  The selected
value and the held-out score match the cold-started search on the tested data; ``warm=False`` gives
GridSearchCV's cold fits exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

__all__: list[str] = []


@dataclass(frozen=True)
class PathResult:
    """Outcome of the inner search: the refitted pipeline, the chosen value and a cv_results_-style dict."""

    pipeline: Pipeline
    best: float
    cv_results: dict[str, Any]


def _model(task: str, value: float, max_iter: int, warm: bool = False) -> Any:
    if task == "classification":
        return LogisticRegression(solver="lbfgs", max_iter=max_iter, C=value, warm_start=warm)
    return Ridge(alpha=value)


def _score(model: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy (classification) or uniform-average R^2 (regression), the estimators' own ``score``."""
    return float(model.score(X, y))


def _order(task: str, grid: list[float]) -> list[int]:
    """Fitting order along the grid: strong to weak regularisation (C up, alpha down)."""
    idx = list(range(len(grid)))
    return sorted(idx, key=lambda i: grid[i]) if task == "classification" else sorted(idx, key=lambda i: -grid[i])


def _best_index(means: np.ndarray) -> int:
    """GridSearchCV's choice: the first best mean, NaN ranked last, all-NaN gives the first value."""
    if np.isnan(means).all():
        return 0
    filled = np.where(np.isnan(means), np.nanmin(means) - 1.0, means)
    return int(np.argmax(filled))


def fit_path(
    X: np.ndarray,
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    *,
    task: str,
    param: str,
    grid: list[float],
    max_iter: int,
    warm: bool = True,
) -> PathResult:
    """Score ``grid`` on the inner ``splits`` along a warm-started path, then refit on all of ``X``.

    Parameters
    ----------
    X, y
        Training data of the probe (already validated; float32 or float64).
    splits
        Inner (train, validation) index pairs, as the inner splitter yields them.
    task, param, grid, max_iter
        The probe's task, the search parameter name (``"model__C"`` or ``"model__alpha"``), its grid
        (in the user's order) and the lbfgs iteration cap.
    warm
        Warm-start each logistic fit from the previous grid value's solution (else cold fits).

    Returns
    -------
    PathResult
    """
    scores = np.full((len(grid), len(splits)), np.nan)
    order = _order(task, grid)
    for s, (tr, va) in enumerate(splits):
        y_tr = y[tr]
        if task == "classification" and len(np.unique(y_tr)) < 2:
            continue  # GridSearchCV scores a failing fit NaN (error_score=nan)
        # X[tr] and X[va] are fresh copies (fancy indexing), standardised in place: no third copy
        scaler = StandardScaler(copy=False)
        X_tr = scaler.fit_transform(X[tr])
        X_va = scaler.transform(X[va])
        model = None
        for gi in order:
            if model is None or not warm or task != "classification":
                model = _model(task, grid[gi], max_iter, warm)
            else:
                model.set_params(C=grid[gi])
            model.fit(X_tr, y_tr)
            scores[gi, s] = _score(model, X_va, y[va])
    with np.errstate(invalid="ignore"):
        means = scores.mean(axis=1)
    best_i = _best_index(means)
    best = grid[best_i]

    scaler = StandardScaler().fit(X)
    model = _model(task, best, max_iter)
    model.fit(scaler.transform(X), y)
    pipeline = Pipeline([("scaler", scaler), ("model", model)])
    return PathResult(pipeline=pipeline, best=float(best), cv_results=_cv_results(param, grid, scores, means))


def _cv_results(param: str, grid: list[float], scores: np.ndarray, means: np.ndarray) -> dict[str, Any]:
    """The score entries of ``GridSearchCV.cv_results_`` (no timings)."""
    results: dict[str, Any] = {
        "params": [{param: v} for v in grid],
        f"param_{param}": np.ma.MaskedArray(np.asarray(grid, dtype=object), mask=False),
    }
    for s in range(scores.shape[1]):
        results[f"split{s}_test_score"] = scores[:, s].copy()
    results["mean_test_score"] = means
    with np.errstate(invalid="ignore"):
        results["std_test_score"] = scores.std(axis=1)
    ranks = np.ones(len(grid), dtype=np.int32)
    if not np.isnan(means).all():
        filled = np.where(np.isnan(means), np.nanmin(means) - 1.0, means)
        ranks = rankdata(-filled, method="min").astype(np.int32)
    results["rank_test_score"] = ranks
    return results
