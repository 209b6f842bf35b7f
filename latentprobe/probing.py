"""Linear probing of latent-token representations.

This module answers one narrow question: *is a quantity linearly decodable
from a set of hidden states?*  It works on plain arrays (NumPy, or CPU torch
tensors) and never runs a model; capture the activations first, then probe
them here.

Everything follows scikit-learn conventions: estimators take their
hyper-parameters in ``__init__``, learned state carries a trailing underscore,
and :class:`LinearProbe` composes with :func:`sklearn.base.clone`,
:func:`sklearn.model_selection.cross_val_score` and pipelines.

Main entry points
-----------------
LinearProbe
    Standardise + L2-regularised logistic (classification) or ridge
    (regression) model whose regularisation strength is chosen by an inner,
    optionally grouped, cross-validation.
cross_validate_probe
    Nested, grouped cross-validation returning a :class:`ProbeScore` with a
    95% t-interval over the outer folds.
majority_baseline, shuffle_control, control_task_labels
    Controls: trivial predictor, label permutation, and the control task of
    Hewitt & Liang (2019).
probe_sweep
    Probe every (layer, latent step) cell and tabulate scores and controls.
compare_representations
    Probe several named representations (latent tokens, image tokens, text
    tokens, a random-weights model, ...) side by side.

What a probe does NOT show
--------------------------
A probe's accuracy shows that information is *linearly decodable* from the
representation by a supervised read-out, not that the model *uses* that
information, nor that it is computed at that position rather than copied
there.  High accuracy on a random-weights model or on the raw input tokens is
the usual sign that the probe is reading the input rather than the
computation; use :func:`compare_representations` and causal interventions
(patching, ablation) before drawing mechanistic conclusions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from jaxtyping import Float, Shaped
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm
from latentprobe.errors import ProbeError

__all__ = [
    "ProbeError",
    "LinearProbe",
    "ProbeScore",
    "ProbeSweepResult",
    "SCORE_COLUMNS",
    "group_kfold_splits",
    "cross_validate_probe",
    "majority_baseline",
    "shuffle_control",
    "control_task_labels",
    "probe_sweep",
    "compare_representations",
]

Task = Literal["classification", "regression"]

_TASKS = ("classification", "regression")

#: Columns of :attr:`ProbeSweepResult.scores`, in order.
SCORE_COLUMNS: tuple[str, ...] = (
    "target",
    "layer",
    "step",
    "task",
    "score",
    "ci_low",
    "ci_high",
    "n",
    "n_groups",
    "majority",
    "shuffle",
    "control",
    "selectivity",
    "chance",
)

# Columns shared by probe_sweep and compare_representations (all but the
# location columns "layer" and "step").
_VALUE_COLUMNS: tuple[str, ...] = tuple(c for c in SCORE_COLUMNS if c not in ("target", "layer", "step"))




# ---------------------------------------------------------------------------
# Input validation helpers
# ---------------------------------------------------------------------------


def _to_numpy(a: Any) -> np.ndarray:
    """Convert arrays, lists and (CPU or GPU) torch tensors to NumPy."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch.Tensor without importing torch
        a = a.detach().cpu()
        if hasattr(a, "is_floating_point") and a.is_floating_point():
            a = a.float()
        a = a.numpy()
    return np.asarray(a)


def _check_task(task: str) -> None:
    if task not in _TASKS:
        raise ProbeError(f"task must be 'classification' or 'regression', got {task!r}.")


def _check_X(X: Any, name: str = "X") -> np.ndarray:
    X = _to_numpy(X)
    if X.ndim != 2:
        raise ProbeError(
            f"{name} must be 2-D [n_examples, d]; got shape {X.shape}. "
            "Select one layer and latent step (e.g. features[:, layer, step]) or "
            "flatten the trailing axes with X.reshape(len(X), -1)."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ProbeError(f"{name} is empty (shape {X.shape}); pass at least one example and one feature.")
    if not np.issubdtype(X.dtype, np.number):
        raise ProbeError(f"{name} must be numeric, got dtype {X.dtype}.")
    X = np.asarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise ProbeError(
            f"{name} contains NaN or infinite values; drop or impute those examples "
            "(often a sign of overflow when activations were saved in float16)."
        )
    return X


def _check_y(y: Any, n: int, task: str) -> np.ndarray:
    y = _to_numpy(y)
    if y.ndim == 0 or y.shape[0] != n:
        got = "a scalar" if y.ndim == 0 else f"{y.shape[0]} entries"
        raise ProbeError(
            f"y has {got} but X has {n} examples; X and y must have the same length "
            "(one label per example, in the same order)."
        )
    if task == "classification":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ProbeError(
                f"classification labels must be 1-D, got shape {y.shape}; "
                "use task='regression' for vector-valued targets."
            )
        if len(np.unique(y)) < 2:
            raise ProbeError(
                f"y contains a single class ({np.unique(y)[0]!r}); a classification probe "
                "needs at least two distinct labels. Check the label extraction, or use "
                "task='regression' for a continuous target."
            )
    else:
        if y.ndim > 2:
            raise ProbeError(f"regression targets must be 1-D or 2-D [n, d'], got shape {y.shape}.")
        if not np.issubdtype(y.dtype, np.number):
            raise ProbeError(f"regression targets must be numeric, got dtype {y.dtype}; use task='classification' for labels.")
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ProbeError("regression targets contain NaN or infinite values; drop those examples.")
    return y


def _check_groups(groups: Any, n: int, name: str = "groups") -> np.ndarray:
    if groups is None:
        return np.arange(n)
    g = _to_numpy(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise ProbeError(
            f"{name} must be 1-D with one entry per example ({n}); got shape {g.shape}. "
            "Pass e.g. the image or problem id of every example."
        )
    return g


def _check_n_splits(n_splits: int, n_groups: int) -> None:
    if not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ProbeError(f"n_splits must be an integer >= 2, got {n_splits!r}.")
    if n_groups < n_splits:
        raise ProbeError(
            f"only {n_groups} distinct groups for n_splits={n_splits}; grouped "
            "cross-validation needs at least one group per fold. Lower n_splits or "
            "collect examples from more groups (images/problems)."
        )


# ---------------------------------------------------------------------------
# Estimator
# ---------------------------------------------------------------------------


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
    Cs : sequence of float, default=(0.01, 0.1, 1.0, 10.0)
        Grid of inverse regularisation strengths for logistic regression;
        smaller values mean stronger regularisation.  Ignored for regression.
    alphas : sequence of float, default=(0.1, 1.0, 10.0, 100.0, 1000.0)
        Grid of ridge penalties; larger values mean stronger regularisation.
        Ignored for classification.
    inner_cv : int, default=3
        Number of folds of the inner cross-validation.  Reduced to the number
        of available groups when fewer exist.  The search is skipped when the
        grid has a single value.
    max_iter : int, default=1000
        Maximum number of lbfgs iterations of the logistic regression.
    random_state : int, default=0
        Seed of the (ungrouped) inner fold shuffling.

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
        ``GridSearchCV.cv_results_`` of the inner search (None when skipped).
    n_features_in_ : int
        Number of features seen during fit.

    Notes
    -----
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
        Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
        alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0),
        inner_cv: int = 3,
        max_iter: int = 1000,
        random_state: int | None = 0,
    ) -> None:
        self.task = task
        self.Cs = Cs
        self.alphas = alphas
        self.inner_cv = inner_cv
        self.max_iter = max_iter
        self.random_state = random_state

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
        if not isinstance(self.inner_cv, (int, np.integer)) or self.inner_cv < 2:
            raise ProbeError(f"inner_cv must be an integer >= 2, got {self.inner_cv!r}.")
        pipe, param, grid = self._make_pipeline()

        if len(grid) == 1:
            search = None
            pipe.set_params(**{param: grid[0]})
            pipe.fit(X, y)
            best = grid[0]
        else:
            cv, fit_groups = self._inner_splitter(y, groups, X.shape[0])
            search = GridSearchCV(pipe, {param: grid}, cv=cv, refit=True, n_jobs=None, error_score=np.nan)
            with warnings.catch_warnings():
                # A failing inner split (e.g. one class in an inner training fold)
                # is scored NaN and skipped; the refit below still has to succeed.
                warnings.filterwarnings("ignore", message=".*fits failed.*")
                warnings.filterwarnings("ignore", message=".*scores are non-finite.*")
                search.fit(X, y, groups=fit_groups)
            pipe = search.best_estimator_
            best = float(search.best_params_[param])

        self.pipeline_ = pipe
        self.cv_results_ = None if search is None else search.cv_results_
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
        """Predict class labels or regression targets for ``X``."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict(self._check_inference_X(X))

    def predict_proba(self, X: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n c"]:
        """Class probabilities, columns ordered as ``classes_`` (classification only)."""
        if self.task != "classification":
            raise ProbeError("predict_proba is only defined for task='classification'; use predict for regression.")
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(self._check_inference_X(X))

    def score(self, X: Float[np.ndarray, "n d"], y: Shaped[np.ndarray, "n *k"]) -> float:
        """Accuracy (classification) or R^2 averaged uniformly over outputs (regression).

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


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeScore:
    """Cross-validated probe score.

    Attributes
    ----------
    score : float
        Mean held-out score over the outer folds (accuracy or R^2).
    fold_scores : tuple of float
        Held-out score of every outer fold.
    ci_low, ci_high : float
        95% Student-t interval of the mean over folds, clipped to [0, 1] for
        accuracy and to at most 1 for R^2.  Folds share training
        data, so this interval is approximate and tends to be too narrow; it
        does not account for variation across datasets or models.
    n : int
        Number of examples.
    n_groups : int
        Number of distinct groups.
    n_splits : int
        Number of outer folds.

    Notes
    -----
    A high score shows that the target is linearly decodable from the
    representation on held-out groups, not that the model uses it.
    """

    score: float
    fold_scores: tuple[float, ...]
    ci_low: float
    ci_high: float
    n: int
    n_groups: int
    n_splits: int


def _t_interval(values: Sequence[float], task: str, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval over folds, clipped to the attainable range.

    Accuracy lies in [0, 1] and R^2 is at most 1, so the interval is clipped
    there.  A single fold gives a zero-width interval.
    """
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if v.size < 2:
        return mean, mean, mean
    sem = float(v.std(ddof=1)) / math.sqrt(v.size)
    half = float(stats.t.ppf(0.5 + level / 2.0, df=v.size - 1)) * sem
    low = mean - half if task == "regression" else max(0.0, mean - half)
    return mean, low, min(1.0, mean + half)


@dataclass(frozen=True, eq=False)
class ProbeSweepResult:
    """Scores of a probe sweep over layers and latent steps.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per (target, layer, step) with columns :data:`SCORE_COLUMNS`.
        ``majority`` is the most-frequent-class accuracy (mean training target's
        R^2 for regression), ``shuffle`` the score with permuted training
        labels, ``control`` the control-task score, ``selectivity`` =
        ``score - control`` and ``chance`` 1/n_classes (0 for regression).
        Control columns are NaN when the sweep ran with ``controls=False``.

    Notes
    -----
    The best cell is where the target is *most linearly decodable*; that is
    not evidence that the model computes or uses the target there.  Cells are
    not corrected for multiple comparisons.
    """

    scores: pd.DataFrame

    def best(self, by: str = "score") -> pd.Series:
        """Row with the highest ``by`` (default ``"score"``); ties go to the earliest layer/step."""
        if by not in self.scores.columns:
            raise ProbeError(f"unknown column {by!r}; choose one of {list(self.scores.columns)}.")
        col = self.scores[by]
        if col.isna().all():
            raise ProbeError(f"column {by!r} is all NaN (run the sweep with controls=True to fill control columns).")
        return self.scores.loc[col.idxmax()]

    def pivot(self, values: str = "score") -> pd.DataFrame:
        """Layer x step table of ``values`` (default ``"score"``)."""
        if values not in self.scores.columns:
            raise ProbeError(f"unknown column {values!r}; choose one of {list(self.scores.columns)}.")
        if self.scores["target"].nunique() > 1:
            raise ProbeError("scores hold several targets; filter to one target before pivoting.")
        return self.scores.pivot(index="layer", columns="step", values=values)


# ---------------------------------------------------------------------------
# Cross-validation
# ---------------------------------------------------------------------------


def group_kfold_splits(
    groups: Shaped[np.ndarray, " n"], n_splits: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded group k-fold: every group lies entirely in one test fold.

    Groups are shuffled with ``seed`` and assigned, largest first, to the fold
    with the fewest examples so far, which keeps folds balanced in size.

    Parameters
    ----------
    groups : array of shape (n,)
        Group id of every example (e.g. the image id of each latent).
    n_splits : int, default=5
        Number of folds; must not exceed the number of distinct groups.
    seed : int, default=0
        Seed of the group shuffling.

    Returns
    -------
    list of (train_idx, test_idx)
        Sorted integer index arrays, one pair per fold.
    """
    g = _to_numpy(groups)
    if g.ndim != 1:
        raise ProbeError(f"groups must be 1-D, got shape {g.shape}.")
    uniq, inv, sizes = np.unique(g, return_inverse=True, return_counts=True)
    _check_n_splits(n_splits, len(uniq))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    fold_sizes = np.zeros(n_splits, dtype=np.int64)
    for gi in order:
        f = int(np.argmin(fold_sizes))
        fold_of_group[gi] = f
        fold_sizes[f] += sizes[gi]
    fold_of_example = fold_of_group[inv]
    splits = []
    for f in range(n_splits):
        test = np.flatnonzero(fold_of_example == f)
        train = np.flatnonzero(fold_of_example != f)
        _assert_disjoint_groups(g, train, test)
        splits.append((train, test))
    return splits


def _assert_disjoint_groups(groups: np.ndarray, train: np.ndarray, test: np.ndarray) -> None:
    overlap = np.intersect1d(groups[train], groups[test])
    assert overlap.size == 0, f"group leakage: groups {overlap[:5].tolist()} appear in both train and test"


def _prepare(X: Any, y: Any, groups: Any, task: str, n_splits: int):
    _check_task(task)
    X = _check_X(X)
    y = _check_y(y, X.shape[0], task)
    g = _check_groups(groups, X.shape[0])
    _check_n_splits(n_splits, len(np.unique(g)))
    return X, y, g


def _run_folds(
    X: np.ndarray,
    y_fit: np.ndarray,
    y_eval: np.ndarray,
    g: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    task: str,
    probe: LinearProbe | None,
    train_labels: Any = None,
) -> ProbeScore:
    """Fit on ``y_fit[train]`` (or ``train_labels(fold, train)``) and score on ``y_eval[test]``."""
    template = LinearProbe(task=task) if probe is None else probe
    if getattr(template, "task", task) != task:
        raise ProbeError(f"probe.task={template.task!r} does not match task={task!r}; pass a probe built for the same task.")
    fold_scores = []
    for k, (train, test) in enumerate(splits):
        _assert_disjoint_groups(g, train, test)
        y_train = y_fit[train] if train_labels is None else train_labels(k, train)
        if task == "classification" and len(np.unique(y_train)) < 2:
            raise ProbeError(
                f"outer fold {k} has a single class in its training data; use fewer "
                "n_splits, more groups, or groups that each hold examples of several classes."
            )
        est = clone(template)
        est.fit(X[train], y_train, groups=g[train])
        fold_scores.append(float(est.score(X[test], y_eval[test])))
    mean, lo, hi = _t_interval(fold_scores, task)
    return ProbeScore(
        score=mean,
        fold_scores=tuple(fold_scores),
        ci_low=lo,
        ci_high=hi,
        n=int(X.shape[0]),
        n_groups=int(len(np.unique(g))),
        n_splits=len(splits),
    )


def cross_validate_probe(
    X: Float[np.ndarray, "n d"],
    y: Shaped[np.ndarray, "n *k"],
    groups: Shaped[np.ndarray, " n"] | None,
    *,
    task: Task = "classification",
    n_splits: int = 5,
    seed: int = 0,
    probe: LinearProbe | None = None,
) -> ProbeScore:
    """Nested, grouped cross-validation of a linear probe.

    The outer loop is a seeded group k-fold (:func:`group_kfold_splits`), so
    all examples of one group (e.g. every latent of one image) are either in
    training or in test, never both; this is asserted for every fold.  Inside
    each outer training set, :class:`LinearProbe` picks its regularisation by
    a grouped inner cross-validation.

    Parameters
    ----------
    X : array of shape (n, d)
        Representations.
    y : array of shape (n,) or (n, d')
        Labels (classification) or targets (regression).
    groups : array of shape (n,) or None
        Group ids.  ``None`` treats every example as its own group, which
        overestimates generalisation when examples share an image or problem.
    task : {"classification", "regression"}, default="classification"
    n_splits : int, default=5
        Number of outer folds.
    seed : int, default=0
        Seed of the fold assignment.
    probe : LinearProbe, optional
        Unfitted template probe (cloned per fold); defaults to
        ``LinearProbe(task=task)``.

    Returns
    -------
    ProbeScore

    Raises
    ------
    ProbeError
        On mismatched lengths, a single class, non-finite values, or fewer
        distinct groups than ``n_splits``.

    Notes
    -----
    A score above chance shows the target is linearly decodable from ``X`` on
    unseen groups, not that the model relies on it.
    """
    X, y, g = _prepare(X, y, groups, task, n_splits)
    splits = group_kfold_splits(g, n_splits, seed)
    return _run_folds(X, y, y, g, splits, task, probe)


# ---------------------------------------------------------------------------
# Controls
# ---------------------------------------------------------------------------


def majority_baseline(
    y_train: Shaped[np.ndarray, "n *k"],
    y_test: Shaped[np.ndarray, "m *k"],
    *,
    task: Task | None = None,
) -> float:
    """Score of an input-blind predictor fitted on ``y_train``, evaluated on ``y_test``.

    For classification this is the accuracy of always predicting the most
    frequent training class (ties: the smallest label).  For regression it is
    the R^2 of always predicting the training mean, which is at most 0.
    ``task=None`` infers the task: 1-D non-float labels are classification,
    float or 2-D targets regression.

    A probe that does not beat this number has learned nothing beyond the
    label frequencies; beating it does not by itself show the representation
    is the source of the information.
    """
    y_train, y_test = _to_numpy(y_train), _to_numpy(y_test)
    if len(y_train) == 0 or len(y_test) == 0:
        raise ProbeError("majority_baseline needs non-empty y_train and y_test.")
    if task is None:
        task = "classification" if y_train.ndim == 1 and not np.issubdtype(y_train.dtype, np.floating) else "regression"
    _check_task(task)
    if task == "classification":
        values, counts = np.unique(y_train, return_counts=True)
        return float(np.mean(y_test == values[np.argmax(counts)]))
    mean = np.mean(np.asarray(y_train, dtype=np.float64), axis=0)
    pred = np.broadcast_to(mean, np.shape(y_test))
    return float(r2_score(y_test, pred, multioutput="uniform_average"))


def _majority_over_folds(y: np.ndarray, splits, task: str) -> float:
    return float(np.mean([majority_baseline(y[train], y[test], task=task) for train, test in splits]))


def _permute_across_groups(y: np.ndarray, g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give every group the labels of another (randomly chosen) group.

    Group ids are permuted; the j-th example of group ``a`` receives the label
    of the (j mod size)-th example of the group that ``a`` is mapped to.  When
    labels are constant within groups this is exactly a permutation of group
    labels; with equal-sized groups it is a permutation of examples.
    """
    uniq, inv = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inv == i) for i in range(len(uniq))]
    perm = rng.permutation(len(uniq))
    out = np.empty_like(y)
    for i, idx in enumerate(members):
        src = members[perm[i]]
        out[idx] = y[src[np.arange(len(idx)) % len(src)]]
    return out


def shuffle_control(
    X: Float[np.ndarray, "n d"],
    y: Shaped[np.ndarray, "n *k"],
    groups: Shaped[np.ndarray, " n"] | None,
    *,
    task: Task = "classification",
    n_splits: int = 5,
    seed: int = 0,
    probe: LinearProbe | None = None,
) -> ProbeScore:
    """Permutation control: same nested CV, but training labels shuffled across groups.

    In every outer fold the training labels are permuted at the group level
    while the test labels stay true: group ids are shuffled (seeded) and each
    group takes over the labels of the group it is mapped to, so all examples
    of a group move together.  Uses the
    same folds as :func:`cross_validate_probe` with the same ``seed``.

    The result estimates what the probe scores when the label-representation
    link is broken; it should be near :func:`majority_baseline`.  A real score
    above it shows decodability beyond chance, not that the model uses it.
    """
    X, y, g = _prepare(X, y, groups, task, n_splits)
    splits = group_kfold_splits(g, n_splits, seed)
    rng = np.random.default_rng([seed, 1])

    def train_labels(k: int, train: np.ndarray) -> np.ndarray:
        return _permute_across_groups(y[train], g[train], rng)

    return _run_folds(X, y, y, g, splits, task, probe, train_labels=train_labels)


def control_task_labels(
    y: Shaped[np.ndarray, "n *k"],
    types: Shaped[np.ndarray, " n"],
    seed: int = 0,
) -> np.ndarray:
    """Control-task targets in the style of Hewitt & Liang (2019).

    Every distinct type id gets one label drawn at random from the empirical
    distribution of ``y`` (the target of a uniformly drawn example, so class
    frequencies are preserved in expectation); all examples of a type share
    that label.  Works for 1-D labels and for 2-D regression targets.

    Parameters
    ----------
    y : array of shape (n,) or (n, d')
        Real labels, only used for their empirical distribution.
    types : array of shape (n,)
        Type id of every example; in :func:`probe_sweep` this defaults to the
        group id (e.g. the image id).
    seed : int, default=0

    Returns
    -------
    ndarray shaped like ``y``

    Notes
    -----
    A probe that scores well on the control task can memorise type identity;
    *selectivity* (task score minus control score) measures how much of the
    task score exceeds that capacity.  High selectivity does not show the
    model uses the information either.
    """
    y = _to_numpy(y)
    types = _to_numpy(types)
    if types.ndim != 1 or y.ndim == 0 or types.shape[0] != y.shape[0]:
        raise ProbeError(
            f"types must be 1-D with one entry per example; got {types.shape} for y of shape {y.shape}."
        )
    if y.shape[0] == 0:
        raise ProbeError("y is empty; control_task_labels needs at least one example.")
    _, inv = np.unique(types, return_inverse=True)
    rng = np.random.default_rng(seed)
    source = rng.integers(0, y.shape[0], size=int(inv.max()) + 1)
    return y[source[inv]].copy()


# ---------------------------------------------------------------------------
# Sweeps
# ---------------------------------------------------------------------------


def _chance(y: np.ndarray, task: str) -> float:
    return 1.0 / len(np.unique(y)) if task == "classification" else 0.0


def _probe_with_controls(
    X: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    *,
    task: str,
    splits,
    control_y: np.ndarray | None,
    controls: bool,
    seed: int,
    probe: LinearProbe | None,
    majority: float,
    chance: float,
    label: str,
) -> dict[str, Any]:
    res = _run_folds(X, y, y, g, splits, task, probe)
    shuffle = control = float("nan")
    if controls:
        rng = np.random.default_rng([seed, 1])
        try:
            shuffle = _run_folds(
                X, y, y, g, splits, task, probe,
                train_labels=lambda k, tr: _permute_across_groups(y[tr], g[tr], rng),
            ).score
        except ProbeError as err:
            warnings.warn(f"{label}: shuffle control skipped ({err})", RuntimeWarning, stacklevel=3)
        try:
            assert control_y is not None
            control = _run_folds(X, control_y, control_y, g, splits, task, probe).score
        except ProbeError as err:
            warnings.warn(f"{label}: control task skipped ({err})", RuntimeWarning, stacklevel=3)
    return {
        "task": task,
        "score": res.score,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "n": res.n,
        "n_groups": res.n_groups,
        "majority": majority,
        "shuffle": shuffle,
        "control": control,
        "selectivity": res.score - control,
        "chance": chance,
    }


def _cells_from_features(
    features: Any, layers: Iterable[Hashable] | None, steps: Iterable[Hashable] | None
) -> list[tuple[Hashable, Hashable, Any]]:
    if isinstance(features, Mapping):
        if not features:
            raise ProbeError("features dict is empty; map (layer, step) -> array [n, d].")
        for key in features:
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ProbeError(f"features dict keys must be (layer, step) tuples, got {key!r}.")
        layer_set = None if layers is None else set(layers)
        step_set = None if steps is None else set(steps)
        keys = [k for k in features if (layer_set is None or k[0] in layer_set) and (step_set is None or k[1] in step_set)]
        try:
            keys = sorted(keys)
        except TypeError:
            pass
        cells = [(k[0], k[1], features[k]) for k in keys]
    else:
        arr = _to_numpy(features)
        if arr.ndim != 4:
            raise ProbeError(
                f"features must be a 4-D array [n, layers, steps, d] or a dict "
                f"(layer, step) -> [n, d]; got an array of shape {arr.shape}."
            )
        n_layers, n_steps = arr.shape[1], arr.shape[2]
        layer_idx = list(range(n_layers)) if layers is None else [int(i) for i in layers]
        step_idx = list(range(n_steps)) if steps is None else [int(i) for i in steps]
        for name, idx, size in (("layers", layer_idx, n_layers), ("steps", step_idx, n_steps)):
            bad = [i for i in idx if not -size <= i < size]
            if bad:
                raise ProbeError(f"{name} {bad} out of range for features with {size} {name}.")
        cells = [(li, si, arr[:, li, si, :]) for li in layer_idx for si in step_idx]
    if not cells:
        raise ProbeError("no (layer, step) cell left after filtering by layers/steps; check the requested indices.")
    return cells


def probe_sweep(
    features: Float[np.ndarray, "n L K d"] | Mapping[tuple[Hashable, Hashable], Float[np.ndarray, "n d"]],
    y: Shaped[np.ndarray, "n *k"],
    groups: Shaped[np.ndarray, " n"] | None,
    *,
    task: Task = "classification",
    target_name: str = "target",
    layers: Iterable[Hashable] | None = None,
    steps: Iterable[Hashable] | None = None,
    controls: bool = True,
    n_splits: int = 5,
    seed: int = 0,
    control_types: Shaped[np.ndarray, " n"] | None = None,
    probe: LinearProbe | None = None,
    progress: bool = True,
) -> ProbeSweepResult:
    """Probe every (layer, latent step) cell with nested grouped CV and controls.

    Parameters
    ----------
    features : array [n, L, K, d] or dict (layer, step) -> array [n, d]
        Hidden states: examples x layers x latent steps x width.  For arrays,
        ``layer`` and ``step`` in the result are axis indices.
    y : array of shape (n,) or (n, d')
        Labels, or continuous targets for ``task="regression"`` (e.g.
        mean-pooled vision features; scored by R^2 averaged over outputs).
    groups : array of shape (n,) or None
        Group ids (e.g. image ids); folds never split a group.
    task : {"classification", "regression"}, default="classification"
    target_name : str, default="target"
        Value of the ``target`` column, so sweeps over several targets can be
        concatenated.
    layers, steps : iterable, optional
        Subset of layers / steps to probe (indices for arrays, key values for
        dicts).  Default: all.
    controls : bool, default=True
        Also run the shuffle control and the control task (about 3x the cost).
        ``majority`` and ``chance`` are always filled.
    n_splits : int, default=5
    seed : int, default=0
        Seeds the folds, the shuffle and the control-task labels.  All cells
        share the same folds and control labels.
    control_types : array of shape (n,), optional
        Type ids of the control task; default: ``groups``.
    probe : LinearProbe, optional
        Template probe; default ``LinearProbe(task=task)``.
    progress : bool, default=True
        Show a tqdm progress bar.

    Returns
    -------
    ProbeSweepResult
        ``scores`` has one row per cell and columns :data:`SCORE_COLUMNS`.

    Notes
    -----
    The layer/step with the highest score is where the target is most
    linearly decodable, not where the model computes or uses it; scores on
    many cells are not corrected for multiple comparisons.
    """
    _check_task(task)
    cells = _cells_from_features(features, layers, steps)
    n = _to_numpy(cells[0][2]).shape[0]
    y = _check_y(y, n, task)
    g = _check_groups(groups, n)
    _check_n_splits(n_splits, len(np.unique(g)))
    splits = group_kfold_splits(g, n_splits, seed)
    types = g if control_types is None else _check_groups(control_types, n, name="control_types")
    control_y = control_task_labels(y, types, seed) if controls else None
    majority = _majority_over_folds(y, splits, task)
    chance = _chance(y, task)

    rows = []
    for layer, step, X in tqdm(cells, desc=f"probing {target_name}", disable=not progress):
        X = _check_X(X, name=f"features[{layer!r}, {step!r}]")
        if X.shape[0] != n:
            raise ProbeError(f"features[{layer!r}, {step!r}] has {X.shape[0]} examples, expected {n} like the other cells.")
        row = {"target": target_name, "layer": layer, "step": step}
        row.update(
            _probe_with_controls(
                X, y, g, task=task, splits=splits, control_y=control_y, controls=controls, seed=seed,
                probe=probe, majority=majority, chance=chance, label=f"layer={layer!r}, step={step!r}",
            )
        )
        rows.append(row)
    return ProbeSweepResult(scores=pd.DataFrame(rows, columns=list(SCORE_COLUMNS)))


def compare_representations(
    representations: Mapping[str, Float[np.ndarray, "n d"]],
    y: Shaped[np.ndarray, "n *k"],
    groups: Shaped[np.ndarray, " n"] | None,
    *,
    task: Task = "classification",
    target_name: str = "target",
    controls: bool = True,
    n_splits: int = 5,
    seed: int = 0,
    control_types: Shaped[np.ndarray, " n"] | None = None,
    probe: LinearProbe | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Run the same probe, folds and controls on several named representations.

    Use it to put latent tokens next to image-token states, text-token states
    and a random-weights model: if a random-weights model or the input tokens
    decode the target as well as the latents, the probe is reading the input,
    not the latent computation.

    Parameters
    ----------
    representations : dict str -> array [n, d]
        Named representations of the same n examples, in the same order
        (widths may differ).
    y, groups, task, target_name, controls, n_splits, seed, control_types, probe, progress
        As in :func:`probe_sweep`.

    Returns
    -------
    pandas.DataFrame
        One row per name, columns ``representation``, ``target`` followed by
        the :func:`probe_sweep` score columns (``task``, ``score``,
        ``ci_low``, ``ci_high``, ``n``, ``n_groups``, ``majority``,
        ``shuffle``, ``control``, ``selectivity``, ``chance``).

    Notes
    -----
    Equal scores mean the target is equally linearly decodable, not that the
    representations encode it in the same way or that the model uses either.
    """
    _check_task(task)
    if not isinstance(representations, Mapping) or not representations:
        raise ProbeError("representations must be a non-empty dict mapping a name to an array [n, d].")
    arrays = {name: _check_X(X, name=f"representations[{name!r}]") for name, X in representations.items()}
    sizes = {name: X.shape[0] for name, X in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ProbeError(f"representations have different numbers of examples {sizes}; all must describe the same examples.")
    n = next(iter(sizes.values()))
    y = _check_y(y, n, task)
    g = _check_groups(groups, n)
    _check_n_splits(n_splits, len(np.unique(g)))
    splits = group_kfold_splits(g, n_splits, seed)
    types = g if control_types is None else _check_groups(control_types, n, name="control_types")
    control_y = control_task_labels(y, types, seed) if controls else None
    majority = _majority_over_folds(y, splits, task)
    chance = _chance(y, task)

    rows = []
    for name, X in tqdm(arrays.items(), desc=f"probing {target_name}", disable=not progress):
        row: dict[str, Any] = {"representation": name, "target": target_name}
        row.update(
            _probe_with_controls(
                X, y, g, task=task, splits=splits, control_y=control_y, controls=controls, seed=seed,
                probe=probe, majority=majority, chance=chance, label=f"representation {name!r}",
            )
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=["representation", "target", *_VALUE_COLUMNS])
