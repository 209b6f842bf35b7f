"""A :class:`~latentprobe.spec.LatentSpec` with its token ids read from one tokenizer (re-exported by
:mod:`latentprobe.spec`, whose :meth:`~latentprobe.spec.LatentSpec.resolve` builds it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["ResolvedSpec"]


@dataclass(frozen=True)
class ResolvedSpec:
    """A :class:`LatentSpec` with every token id read from one tokenizer (and the model's vocabulary size).

    Parameters
    ----------
    spec : LatentSpec
        The spec.
    open_id : int
        Id of the open marker.
    close_id : int | None
        Id of the close marker, if the spec has one.
    slot_id : int | None
        Id recorded at latent slots, if the spec has one.
    after_close_ids : tuple[int, ...]
        Ids forced after the close marker.
    placeholder_id : int
        Id fed at latent slots before their vectors are written.
    pad_id : int
        Padding id.
    eos_id : int | None
        The tokenizer's end-of-sequence id.
    suppress_ids : tuple[int, ...]
        Ids never generated.
    eos_ids : tuple[int, ...] | None
        A run's effective end-of-sequence ids (``None``: ``eos_id``).
    """

    spec: LatentSpec
    open_id: int
    close_id: int | None
    slot_id: int | None
    after_close_ids: tuple[int, ...]
    placeholder_id: int
    pad_id: int
    eos_id: int | None
    suppress_ids: tuple[int, ...] = ()
    eos_ids: tuple[int, ...] | None = None

    def is_eos(self, token: int) -> bool:
        """Whether ``token`` ends a sequence: one of ``eos_ids`` (a run's effective list), else ``eos_id``.

        Parameters
        ----------
        token : int
            A token id.

        Returns
        -------
        bool
        """
        if self.eos_ids is not None:
            return token in self.eos_ids
        return self.eos_id is not None and token == self.eos_id

    def with_eos(self, eos_ids: tuple[int, ...] | None) -> "ResolvedSpec":
        """A copy whose end-of-sequence ids are ``eos_ids`` (``None``: the tokenizer's ``eos_id``).

        Parameters
        ----------
        eos_ids : tuple[int, ...] | None
            The ids, or ``None``.

        Returns
        -------
        ResolvedSpec
        """
        return self if eos_ids == self.eos_ids else dataclasses.replace(self, eos_ids=eos_ids)
