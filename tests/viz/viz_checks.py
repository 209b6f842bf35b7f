"""Small assertions shared by the viz tests."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from latentprobe import viz


def is_band(trace) -> bool:
    return trace.type == "scatter" and trace.fill == "toself"


def check_common(fig) -> None:
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text
    assert tuple(fig.layout.colorway) == viz.PALETTE
    assert fig.layout.template.layout.plot_bgcolor == "white"  # plotly_white


def check_error_bars(spec, est, lo, hi) -> None:
    """Asymmetric whiskers reach exactly from ci_low to ci_high."""
    est, lo, hi = (np.asarray(a, dtype=float) for a in (est, lo, hi))
    np.testing.assert_allclose(np.asarray(spec.array, dtype=float), hi - est, atol=1e-12)
    np.testing.assert_allclose(np.asarray(spec.arrayminus, dtype=float), est - lo, atol=1e-12)


def check_band(band, x, lo, hi) -> None:
    """A band polygon runs along ci_high and back along ci_low."""
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    x, lo, hi = (np.asarray(a, dtype=float)[order] for a in (x, lo, hi))
    np.testing.assert_allclose(np.asarray(band.x, dtype=float), np.concatenate([x, x[::-1]]))
    np.testing.assert_allclose(np.asarray(band.y, dtype=float), np.concatenate([hi, lo[::-1]]))
