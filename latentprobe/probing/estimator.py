"""The probe estimator: :class:`LinearProbe`, a scikit-learn-style linear read-out.

Hyper-parameters are stored by ``__init__``, learned state ends in ``_``, and the probe composes
with :func:`sklearn.base.clone`, :func:`sklearn.model_selection.cross_val_score` and pipelines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import Float, Shaped
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from latentprobe.errors import ProbeError
from latentprobe.probing._checks import Task, _check_groups, _check_task, _check_X, _check_y, _to_numpy
from latentprobe.probing._path import fit_path
from latentprobe.validate import integer

__all__ = ["LinearProbe"]


class LinearProbe(BaseEstimator):
    """Linear read-out with cross-validated L2 regularisation.

    Features are standardised, then an L2-penalised logistic regression
    (``task="classification"``) or ridge regression (``task="regression"``)
    is fitted.  The regularisation strength is chosen from a grid by an inner
    cross-validation on the training data only: grouped
    (:class:`~sklearn.model_selection.GroupKFold`) when ``groups`` is passed to
    :meth:`fit`, otherwise :class:`~sklearn.model_selection.StratifiedKFold`
    (classification) or :class:`~sklearn.model_selection.KFold` (regression).

    Parameters
    ----------
    task : {"classification", "regression"}, default="classification"
        Kind of target.  Regression accepts 1-D or 2-D (multi-output) targets,
        e.g. mean-pooled vision features.
    Cs : sequence of float, default=(0.1, 1.0, 10.0)
        Grid of inverse regularisation strengths for logistic regression;
        smaller values mean stronger regularisation.  Ignored for regression.
        Pass a wider grid (e.g. ``(0.01, 0.1, 1.0, 10.0)``) for very wide,
        few-example representations that need strong regularisation.
    alphas : sequence of float, default=(0.1, 1.0, 10.0, 100.0, 1000.0)
        Grid of ridge penalties; larger values mean stronger regularisation.
        Ignored for classification.
    inner_cv : int, default=2
        Number of folds of the inner cross-validation.  Reduced to the number
        of available groups when fewer exist.  The search is skipped when the
        grid has a single value.
    max_iter : int, default=1000
        Maximum number of lbfgs iterations of the logistic regression.
    random_state : int, default=0
        Seed of the (ungrouped) inner fold shuffling.
    warm_start : bool, default=True
        Fit the logistic grid in increasing ``C``, each fit starting from the
        previous solution (as :class:`~sklearn.linear_model.LogisticRegressionCV`
        does).  About 2x faster; the validation scores can differ from cold
        fits by an example near the boundary (lbfgs stops within its
        tolerance).  ``False`` reproduces
        :class:`~sklearn.model_selection.GridSearchCV` exactly.

    Attributes
    ----------
    pipeline_ : sklearn.pipeline.Pipeline
        ``StandardScaler`` followed by the fitted linear model, refitted on
        all training data with the selected regularisation.
    best_C_ : float
        Selected inverse regularisation (classification only).
    best_alpha_ : float
        Selected ridge penalty (regression only).
    classes_ : ndarray of shape (n_classes,)
        Class labels seen during fit (classification only).
    cv_results_ : dict or None
        Score entries of ``GridSearchCV.cv_results_`` (``params``, ``param_*``,
        ``split<i>_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``; no timings) of the inner search (None when skipped).
    n_features_in_ : int
        Number of features seen during fit.

    Notes
    -----
    The inner search standardises each inner fold once and reuses it for
    the whole grid, with GridSearchCV's folds, scorer and tie-breaking; the
    final model is a cold refit on all training data at the chosen value.
    float32 input is kept in float32 (no float64 copy); other numeric dtypes
    are fitted in float64.

    A probe's accuracy shows that information is linearly decodable from the
    representation, not that the model uses it.  A flexible enough probe can
    also memorise; compare against :func:`shuffle_control` and the
    :func:`control_task_labels` control task (selectivity).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 4)); y = (X[:, 0] > 0).astype(int)
    >>> LinearProbe().fit(X, y).score(X, y) > 0.9
    True
    """

    def __init__(
        self,
        task: Task = "classification",
        Cs: Sequence[float] = (0.1, 1.0, 10.0),
        alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0),
        inner_cv: int = 2,
        max_iter: int = 1000,
        random_state: int | None = 0,
        warm_start: bool = True,
    ) -> None:
        self.task = task
        self.Cs = Cs
        self.alphas = alphas
        self.inner_cv = inner_cv
        self.max_iter = max_iter
        self.random_state = random_state
        self.warm_start = warm_start

    # -- scikit-learn integration ------------------------------------------

    def __sklearn_tags__(self):  # noqa: D105
        from sklearn.utils import ClassifierTags, RegressorTags

        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        if self.task == "regression":
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            tags.target_tags.multi_output = True
        else:
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        return tags

    # -- fitting -------------------------------------------------------------

    def _make_pipeline(self) -> tuple[Pipeline, str, list[float]]:
        if self.task == "classification":
            model: BaseEstimator = LogisticRegression(solver="lbfgs", max_iter=self.max_iter)
            param, grid = "model__C", [float(c) for c in self.Cs]
        else:
            model = Ridge()
            param, grid = "model__alpha", [float(a) for a in self.alphas]
        if len(grid) == 0 or any(not (v > 0) for v in grid):
            name = "Cs" if self.task == "classification" else "alphas"
            raise ProbeError(f"{name} must be a non-empty sequence of positive numbers, got {grid!r}.")
        return Pipeline([("scaler", StandardScaler()), ("model", model)]), param, grid

    def fit(
        self,
        X: Float[np.ndarray, "n d"],
        y: Shaped[np.ndarray, "n *k"],
        groups: Shaped[np.ndarray, " n"] | None = None,
    ) -> LinearProbe:
        """Fit the probe, selecting regularisation by inner cross-validation.

        Parameters
        ----------
        X : array of shape (n, d)
            Representations, one row per example.
        y : array of shape (n,) or (n, d')
            Class labels (classification) or continuous targets (regression).
        groups : array of shape (n,), optional
            Group id of each example (e.g. the image id).  When given, the
            inner folds never split a group between training and validation.

        Returns
        -------
        self : LinearProbe
            The fitted probe.
        """
        _check_task(self.task)
        X = _check_X(X)
        y = _check_y(y, X.shape[0], self.task)
        integer(self.inner_cv, "inner_cv", minimum=2, where="LinearProbe", hint="folds of the inner C search",
                error=ProbeError)
        pipe, param, grid = self._make_pipeline()

        if len(grid) == 1:
            results = None
            pipe.set_params(**{param: grid[0]})
            pipe.fit(X, y)
            best = grid[0]
        else:
            cv, fit_groups = self._inner_splitter(y, groups, X.shape[0])
            splits = list(cv.split(X, y, fit_groups))
            path = fit_path(
                X, y, splits, task=self.task, param=param, grid=grid, max_iter=self.max_iter, warm=bool(self.warm_start)
            )
            pipe, best, results = path.pipeline, path.best, path.cv_results

        self.pipeline_ = pipe
        self.cv_results_ = results
        self.n_features_in_ = X.shape[1]
        if self.task == "classification":
            self.best_C_ = best
            self.classes_ = pipe.classes_
        else:
            self.best_alpha_ = best
        return self

    def _inner_splitter(self, y: np.ndarray, groups: Any, n: int):
        if groups is not None:
            g = _check_groups(groups, n)
            n_groups = len(np.unique(g))
            if n_groups < 2:
                raise ProbeError(
                    "groups has a single distinct value, so no grouped inner split is "
                    "possible; pass groups=None or a single-value grid (Cs=(1.0,))."
                )
            return GroupKFold(n_splits=min(self.inner_cv, n_groups)), g
        if self.task == "classification":
            _, counts = np.unique(y, return_counts=True)
            k = max(2, min(self.inner_cv, int(counts.max())))
            return StratifiedKFold(n_splits=k, shuffle=True, random_state=self.random_state), None
        if n < 2:
            raise ProbeError("need at least 2 examples to cross-validate the ridge penalty.")
        return KFold(n_splits=min(self.inner_cv, n), shuffle=True, random_state=self.random_state), None

    # -- inference -------------------------------------------------------------

    def predict(self, X: Float[np.ndarray, "n d"]) -> np.ndarray:
        """Predict class labels or regression targets for ``X``.

        Parameters
        ----------
        X : Float[np.ndarray, "n d"]
            Features ``[n, d]``.

        Returns
        -------
        np.ndarray
        """
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict(self._check_inference_X(X))

    def predict_proba(self, X: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n c"]:
        """Class probabilities, columns ordered as ``classes_`` (classification only).

        Parameters
        ----------
        X : Float[np.ndarray, "n d"]
            Features ``[n, d]``.

        Returns
        -------
        np.ndarray
            ``[n, classes]``.
        """
        if self.task != "classification":
            raise ProbeError("predict_proba is only defined for task='classification'; use predict for regression.")
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(self._check_inference_X(X))

    def score(self, X: Float[np.ndarray, "n d"], y: Shaped[np.ndarray, "n *k"]) -> float:
        """Accuracy (classification) or R^2 averaged uniformly over outputs (regression).

        Parameters
        ----------
        X : Float[np.ndarray, "n d"]
            Features ``[n, d]``.
        y : Shaped[np.ndarray, "n *k"]
            Targets.

        Returns
        -------
        float
            Accuracy, or R^2 for regression.

        Notes
        -----
        R^2 is 0 for predicting the mean of ``y`` itself and negative for
        worse-than-mean predictions; it is not bounded below.
        """
        check_is_fitted(self, "pipeline_")
        pred = self.predict(X)
        y = _to_numpy(y)
        if self.task == "classification":
            return float(accuracy_score(np.ravel(y) if y.ndim == 2 and y.shape[1] == 1 else y, pred))
        return float(r2_score(y, pred, multioutput="uniform_average"))

    def _check_inference_X(self, X: Any) -> np.ndarray:
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ProbeError(
                f"X has {X.shape[1]} features but the probe was fitted on {self.n_features_in_}; "
                "use the same layer/step representation for fitting and prediction."
            )
        return X
