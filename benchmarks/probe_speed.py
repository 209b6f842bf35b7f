"""Probe cross-validation against plain scikit-learn: time per fit and peak extra memory, one run.

On float32 features [n, d] with group labels it times, pinned to one BLAS thread (threadpoolctl):

* ``sklearn CV``: ``cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(C=1)))`` on the
  probe's own outer group folds (5 fits), the reference;
* ``probe CV, one C``: :func:`~latentprobe.probing.cross_validate_probe` with ``LinearProbe(Cs=(1.0,))``,
  the same 5 fits (like for like);
* ``probe CV, nested``: the default probe (3 C values x 2 inner folds + a refit per outer fold,
  35 fits; C path warm-started);
* ``GridSearchCV nested, float64``: the same nested search done as before (a float64 copy, a fresh
  cold fit per C and inner fold);
* ``sweep cell`` with and without controls: one :func:`~latentprobe.probing.probe_sweep` cell.

Ratios are to the sklearn CV time; "per fit" divides each time by its number of lbfgs fits.  Peak extra
memory is measured with tracemalloc (numpy reports its buffers to it) and divided by the input's size.

Usage: python benchmarks/probe_speed.py [--n 20000] [--d 1024] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
import tracemalloc
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's latentprobe, not an installed one

from latentprobe.probing import LinearProbe, cross_validate_probe, group_kfold_splits, probe_sweep


def data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three classes, constant within groups of 4, weakly encoded along random directions (float32).

    The class means lie about 2 noise standard deviations apart whatever ``d``, so the probe is
    neither trivial nor at chance (held-out accuracy about 0.8) and lbfgs needs realistic work.
    """
    rng = np.random.default_rng(seed)
    groups = np.arange(n) // 4
    y = rng.integers(0, 3, size=groups.max() + 1)[groups]
    X = rng.standard_normal((n, d), dtype=np.float32)
    X += (np.float32(1.5 / np.sqrt(d)) * rng.standard_normal((3, d), dtype=np.float32))[y]  # accuracy ~0.8
    return X, y, groups


def measure(fn, memory: bool) -> tuple[float, float, object]:
    """Wall time (s), peak traced allocation (bytes, 0 without ``memory``) and the result of ``fn()``."""
    if memory:
        tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    peak = 0.0
    if memory:
        peak = float(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return dt, peak, out


def legacy_nested(X: np.ndarray, y: np.ndarray, groups: np.ndarray, splits) -> float:
    """The nested search as it was done before: float64 copy, GridSearchCV with cold fits per C."""
    X64 = np.asarray(X, dtype=np.float64)
    scores = []
    for train, test in splits:
        pipe = Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression(max_iter=1000))])
        search = GridSearchCV(pipe, {"model__C": [0.1, 1.0, 10.0]}, cv=GroupKFold(2))
        search.fit(X64[train], y[train], groups=groups[train])
        scores.append(search.score(X64[test], y[test]))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (n=600, d=32), for a smoke test")
    ap.add_argument("--no-legacy", action="store_true", help="skip the (slow) GridSearchCV float64 reference")
    a = ap.parse_args(argv)
    n, d = (600, 32) if a.quick else (a.n, a.d)
    X, y, groups = data(n, d)
    splits = group_kfold_splits(groups, 5, 0)
    input_bytes = X.nbytes
    warnings.simplefilter("ignore")  # ConvergenceWarning on weak signal is not what is measured

    rows = []
    with threadpool_limits(limits=1):
        sk_pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
        cross_val_score(sk_pipe, X[:200], y[:200], cv=3)  # warm-up: imports and first-call costs
        t_sk, m_sk, s_sk = measure(lambda: cross_val_score(sk_pipe, X, y, cv=splits).mean(), memory=False)
        _, m_sk, _ = measure(lambda: cross_val_score(sk_pipe, X, y, cv=splits[:1]), memory=True)
        rows.append(("sklearn CV (reference)", 5, t_sk, m_sk, s_sk))
        one = LinearProbe(Cs=(1.0,))
        t1, _, r1 = measure(lambda: cross_validate_probe(X, y, groups, probe=one).score, memory=False)
        _, m1, _ = measure(lambda: one.fit(X[splits[0][0]], y[splits[0][0]], groups=groups[splits[0][0]]), memory=True)
        rows.append(("probe CV, one C", 5, t1, m1, r1))
        t2, _, r2 = measure(lambda: cross_validate_probe(X, y, groups).score, memory=False)
        _, m2, _ = measure(lambda: LinearProbe().fit(X[splits[0][0]], y[splits[0][0]], groups=groups[splits[0][0]]), memory=True)
        rows.append(("probe CV, nested (3 C x 2 inner)", 35, t2, m2, r2))
        if not a.no_legacy:
            t3, _, r3 = measure(lambda: legacy_nested(X, y, groups, splits), memory=False)
            rows.append(("GridSearchCV nested, float64 (before)", 35, t3, float("nan"), r3))
        cell = {(0, 0): X}
        t4, _, r4 = measure(lambda: probe_sweep(cell, y, groups, controls=False, progress=False).scores.score[0], memory=False)
        rows.append(("sweep cell, no controls", 35, t4, float("nan"), r4))
        t5, _, r5 = measure(lambda: probe_sweep(cell, y, groups, controls=True, progress=False,
                                                  control_types=np.arange(len(y)) % 10).scores.score[0], memory=False)
        rows.append(("sweep cell, with controls", 105, t5, float("nan"), r5))

    print(f"probe speed: n={n} x d={d} float32 ({input_bytes / 2**20:.1f} MiB), 5 group folds, 1 BLAS thread")
    print("| run | fits | time (s) | x sklearn CV | per fit x sklearn | peak extra mem / input | score |")
    print("|---|---|---|---|---|---|---|")
    per_fit_sk = t_sk / 5
    for name, fits, t, mem, score in rows:
        mem_s = "-" if not mem == mem else f"{mem / input_bytes:.2f}x"
        print(f"| {name} | {fits} | {t:.2f} | {t / t_sk:.2f}x | {(t / fits) / per_fit_sk:.2f}x | {mem_s} | {score:.3f} |")
    print("(memory: one outer fold's fit, traced by tracemalloc; sklearn row: one fold of cross_val_score)")


if __name__ == "__main__":
    main()
