"""Shared synthetic data of the probing tests."""

from __future__ import annotations

import numpy as np

# A small grid keeps the nested CV cheap.
FAST = dict(Cs=(0.1, 1.0), inner_cv=2)


def grouped_data(n_groups=40, per_group=3, d=8, n_classes=3, signal=2.0, seed=0):
    """Labels constant within a group, linearly encoded in X along fixed directions."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    group_labels = rng.integers(0, n_classes, size=n_groups)
    y = group_labels[groups]
    directions = rng.normal(size=(n_classes, d))
    X = signal * directions[y] + rng.normal(size=(len(y), d))
    return X, y, groups
