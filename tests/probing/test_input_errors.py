"""Tests for latentprobe.probing: input validation errors (small synthetic data, CPU only)."""

from __future__ import annotations

import numpy as np
import pytest

from latentprobe.probing import LinearProbe, ProbeError, cross_validate_probe, probe_sweep

from ._data import grouped_data


def test_errors():
    X, y, groups = grouped_data(n_groups=10, per_group=2, d=3)
    with pytest.raises(ProbeError, match="same length"):
        cross_validate_probe(X, y[:-1], groups)
    with pytest.raises(ProbeError, match="groups"):
        cross_validate_probe(X, y, groups[:-1])
    with pytest.raises(ProbeError, match="single class"):
        cross_validate_probe(X, np.zeros(len(y), dtype=int), groups)
    with pytest.raises(ProbeError, match="single class"):
        LinearProbe().fit(X, np.ones(len(y)))
    with pytest.raises(ProbeError, match="distinct groups"):
        cross_validate_probe(X, y, groups % 3, n_splits=5)
    with pytest.raises(ProbeError, match="4-D"):
        probe_sweep(X, y, groups, progress=False)
    with pytest.raises(ProbeError, match="task"):
        cross_validate_probe(X, y, groups, task="ranking")
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ProbeError, match="NaN"):
        LinearProbe().fit(bad, y)
    assert issubclass(ProbeError, ValueError)


def test_a_list_valued_target_is_refused():
    X, y, groups = grouped_data(n_groups=10, per_group=2, d=3)
    labels = np.empty(len(y), dtype=object)
    labels[:] = [["a", "b"] if i % 2 else ["c"] for i in range(len(y))]
    with pytest.raises(ProbeError, match=r"label 0 is a list \(\['c'\]\)\. A list-valued field is not a probe target"):
        cross_validate_probe(X, labels, groups)
