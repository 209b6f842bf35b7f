"""The one latent-count rule: which examples of a trace an analysis keeps, and why the others were left out.

:class:`~latentprobe.trace.LatentTrace` applies it (``stack``, ``features``, ``kept_indices``,
``latent_selection``); both names are re-exported by :mod:`latentprobe.trace`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import pandas as pd

from latentprobe.schema import LATENT_SELECTION

__all__ = ["LatentSelection", "modal_latent_count"]


def modal_latent_count(counts: Iterable[int]) -> int | None:
    """The number of latents an analysis keeps: the most common non-zero count, ties to the largest.

    Every analysis that needs examples with equally many latents (``trace.stack`` and
    ``trace.features``, the probes and geometry on them, ``z_to_y``, ``default_interventions``,
    the inter-instance similarity of ``x_to_z``) keeps the examples whose count this returns, so
    they all analyse the same subset.

    Examples with no latents never count (they did not enter latent mode). When several counts are
    equally common the largest wins: more latent steps are then analysed per example, and on
    families whose count varies because generation stops early (an end-token stop, as in Mirage or
    LVR), the largest count is the one closest to the model's full latent budget, not a truncated
    run. The rule depends only on the multiset of counts, never on their order.

    Parameters
    ----------
    counts : iterable of int
        The examples' latent counts (``[e.num_latents for e in trace]``).

    Returns
    -------
    int or None
        The count to keep; ``None`` when no count is positive.

    Examples
    --------
    >>> from latentprobe.trace import modal_latent_count
    >>> modal_latent_count([4, 4, 2, 0, 0, 0])
    4
    >>> modal_latent_count([1, 1, 8, 8])  # a tie: the larger count
    8
    >>> modal_latent_count([0, 0]) is None
    True
    """
    tally = Counter(int(c) for c in counts if int(c) > 0)
    if not tally:
        return None
    best = max(tally.values())
    return max(k for k, v in tally.items() if v == best)


@dataclass(frozen=True)
class LatentSelection:
    """Which examples of a trace an analysis keeps, and why the others were left out.

    Attributes
    ----------
    num_latents : int or None
        The latent count kept (:func:`modal_latent_count` unless one was asked for); ``None`` when
        no example has latents.
    indices : tuple of int
        Positions (in the trace) of the kept examples.
    n_examples, n_no_latents, n_other_count : int
        Examples in the trace; left out because they have no latents; left out because they have
        another positive count.
    rule : str
        ``"modal"`` (the most common positive count, ties to the largest) or ``"given"``.
    """

    num_latents: int | None
    indices: tuple[int, ...]
    n_examples: int
    n_no_latents: int
    n_other_count: int
    rule: str = "modal"

    @property
    def n_kept(self) -> int:
        return len(self.indices)

    @classmethod
    def of(cls, counts: Sequence[int], num_latents: int | None = None) -> "LatentSelection":
        """The selection on examples with latent counts ``counts`` (``num_latents=None``: the modal rule).

        Parameters
        ----------
        counts : sequence of int
            Each example's number of latents.
        num_latents : int, optional
            The count to keep.

        Returns
        -------
        LatentSelection
        """
        counts = [int(c) for c in counts]
        rule = "modal" if num_latents is None else "given"
        k = modal_latent_count(counts) if num_latents is None else int(num_latents)
        kept = tuple(i for i, c in enumerate(counts) if k is not None and c == k)
        zeros = sum(c == 0 for c in counts)
        return cls(k, kept, len(counts), zeros if k != 0 else 0, len(counts) - len(kept) - (zeros if k != 0 else 0), rule)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts (no indices), keyed by the :class:`~latentprobe.schema.LATENT_SELECTION`
        columns: the ``kept`` entry of ``z_to_y``'s config.

        Returns
        -------
        dict[str, Any]
        """
        T = LATENT_SELECTION
        return {T.NUM_LATENTS: self.num_latents, T.N_EXAMPLES: self.n_examples, T.N_KEPT: self.n_kept,
                T.N_NO_LATENTS: self.n_no_latents, T.N_OTHER_COUNT: self.n_other_count, T.RULE: self.rule}

    def frame(self) -> pd.DataFrame:
        """The counts as a one-row :class:`~latentprobe.schema.LATENT_SELECTION` table.

        Returns
        -------
        pandas.DataFrame
        """
        return LATENT_SELECTION.frame([self.to_dict()])
