"""Result containers of the statistics: :class:`Effect`, :class:`McNemarResult` and their table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import pandas as pd

from latentprobe.errors import StatsInputError
from latentprobe.schema import EFFECTS

__all__ = ["SMALL_SAMPLE_N", "Effect", "McNemarResult", "effects_frame", "small_sample_note"]

#: Below this many examples an :class:`Effect` carries a small-sample note.
SMALL_SAMPLE_N = 30


# ---------------------------------------------------------------------------
# Result containers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """One estimated effect with its uncertainty.

    Attributes
    ----------
    name : str
        Label of the effect (for example ``"NIE"`` or ``"accuracy_difference"``).
    estimate : float
        Point estimate computed on the full sample.
    ci_low, ci_high : float
        Bounds of the percentile bootstrap confidence interval.
    n : int
        Number of examples the estimate is based on.
    p_value : float or None
        p-value of an accompanying exact test (McNemar for accuracy
        differences); ``None`` when no test was run.
    method : str
        Short description of how the interval (and p-value) were obtained.
    note : str
        Caveats, e.g. ``"small sample (n=12 < 30): interval is unreliable"``;
        empty when there is nothing to flag.
    confidence : float
        Nominal coverage of the interval (0.95 by default).

    Notes
    -----
    An interval that excludes zero is evidence of a non-zero effect *on the
    population the examples were drawn from, under the model and settings
    used*; it is not a multiple-comparison-corrected test, and it does not
    show that the effect is mechanistically meaningful.
    """

    name: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    p_value: float | None
    method: str
    note: str = ""
    confidence: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """Whether the confidence interval lies strictly on one side of zero.

        Returns
        -------
        bool
            ``True`` when ``ci_low > 0`` or ``ci_high < 0``. This is not a
            correction for multiple comparisons.
        """
        return bool(self.ci_low > 0.0 or self.ci_high < 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Return the effect as a flat dictionary (one row of a table).

        Returns
        -------
        dict
            Field names mapped to values, plus ``excludes_zero``.
        """
        d = asdict(self)
        d["excludes_zero"] = self.excludes_zero
        return d


@dataclass(frozen=True)
class McNemarResult:
    """Result of McNemar's exact test on paired binary outcomes.

    Attributes
    ----------
    b : int
        Number of examples where condition A is right and B is wrong.
    c : int
        Number of examples where condition A is wrong and B is right.
    n : int
        Total number of paired examples (including concordant ones).
    p_value : float
        Two-sided exact binomial p-value of ``b`` successes in ``b + c``
        trials with probability 0.5; 1.0 when ``b + c == 0``.

    Notes
    -----
    The test only uses discordant pairs. With few discordant pairs it has
    little power, so a large p-value does not show that the two conditions
    are equivalent.
    """

    b: int
    c: int
    n: int
    p_value: float

    @property
    def discordant(self) -> int:
        """Number of discordant pairs ``b + c``."""
        return self.b + self.c

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a flat dictionary.

        Returns
        -------
        dict[str, Any]
        """
        return asdict(self)


def effects_frame(effects: Sequence[Effect]) -> pd.DataFrame:
    """Tidy table of effects, one row per effect.

    Parameters
    ----------
    effects : sequence of Effect
        Effects to tabulate, in the order they should appear.

    Returns
    -------
    pandas.DataFrame
        Columns ``name, estimate, ci_low, ci_high, n, p_value, method, note,
        confidence, excludes_zero``; an empty frame with these columns when
        ``effects`` is empty.
    """
    rows = []
    for i, e in enumerate(effects):
        if not isinstance(e, Effect):
            raise StatsInputError(
                f"effects[{i}] is a {type(e).__name__}, expected an Effect; "
                "pass the objects returned by bootstrap_ci, paired_bootstrap_diff, "
                "accuracy_difference or mediation_effects."
            )
        rows.append(e.to_dict())
    return EFFECTS.frame(rows)


def small_sample_note(n: int) -> str:
    """Caveat string for a sample of ``n`` examples.

    Parameters
    ----------
    n : int
        Number of examples.

    Returns
    -------
    str
        ``"small sample (n=<n> < 30): interval is unreliable"`` when
        ``n < SMALL_SAMPLE_N``, otherwise the empty string.
    """
    if n < SMALL_SAMPLE_N:
        return f"small sample (n={n} < {SMALL_SAMPLE_N}): interval is unreliable"
    return ""
