"""The inputs of an experiment (:class:`InputSet`) and seeded pairings of examples (:func:`derangement`)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from latentprobe.display import Summarized, clip, describe, short_list
from latentprobe.errors import InputError

__all__ = ["InputSet", "Relabel", "derangement"]

#: ``relabel(image_meta, question_meta) -> (gold, meta_updates) | None``: see :attr:`InputSet.relabel`.
Relabel = Callable[[Mapping[str, Any], Mapping[str, Any]], "tuple[str | None, dict[str, Any]] | None"]


@dataclass(frozen=True, eq=False, repr=False)
class InputSet(Summarized):
    """The inputs of an experiment, one entry per example, all aligned.

    Attributes
    ----------
    example_ids : tuple of str
        Unique ids; perturbations keep them (and their order) so runs pair up.
    prompts : tuple
        Prompt strings or token-id sequences, as :meth:`LatentRunner.run` takes them.
    images : tuple or None
        One entry per example (``None``, an ``HxWx3`` uint8 array, or a list of them), or ``None``
        for a text-only model.
    gold : tuple or None
        Gold answers (``None`` entries where unknown), or ``None`` when no answer is known.
    meta : tuple of dict
        Per-example metadata (``image_id`` tells examples showing the same image apart; a dataset
        may store more, e.g. :func:`latentprobe.toy.perturbations.toy_inputs` keeps the toy example).
    relabel : callable or None
        ``relabel(image_meta, question_meta)``: the gold answer when the question of the example
        with ``question_meta`` is asked about the image of the example with ``image_meta``, with
        the metadata the combined example should carry, as ``(gold, meta_updates)`` (gold ``None``
        when the question is not well posed there), or ``None`` when it cannot tell. Swaps use it
        to recompute gold answers; without it their gold is ``None``.
    """

    example_ids: tuple[str, ...]
    prompts: tuple[Any, ...]
    images: tuple[Any, ...] | None = None
    gold: tuple[str | None, ...] | None = None
    meta: tuple[dict[str, Any], ...] = ()
    relabel: Relabel | None = None

    def __post_init__(self) -> None:
        n = len(self.example_ids)
        object.__setattr__(self, "example_ids", tuple(str(e) for e in self.example_ids))
        object.__setattr__(self, "prompts", tuple(self.prompts))
        if self.images is not None:
            object.__setattr__(self, "images", tuple(self.images))
        if self.gold is not None:
            object.__setattr__(self, "gold", tuple(None if g is None else str(g) for g in self.gold))
        meta = tuple(dict(m) for m in self.meta) if self.meta else tuple({} for _ in range(n))
        object.__setattr__(self, "meta", meta)
        if len(set(self.example_ids)) != n:
            raise InputError("InputSet.example_ids must be unique; results are matched on them.")
        for name in ("prompts", "images", "gold", "meta"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise InputError(f"InputSet.{name} has {len(v)} entries for {n} example_ids; give one per example.")

    def __len__(self) -> int:
        return len(self.example_ids)

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        n = len(self)
        rows = [("example ids", short_list(self.example_ids))]
        if n:
            first = self.prompts[0]
            kind = ("chat messages" if isinstance(first, (list, tuple)) and first and isinstance(first[0], dict)
                    else "token ids" if isinstance(first, (list, tuple)) else "strings")
            text = first if isinstance(first, str) else repr(first)
            rows.append(("prompts", f"{kind}; first: {clip(repr(text) if isinstance(first, str) else text, 70)}"))
        if self.images is not None:
            counts = [len(_image_list(im)) for im in self.images]
            first_image = next((_image_list(im)[0] for im in self.images if _image_list(im)), None)
            rows.append(("images", f"{sum(counts)} in {sum(1 for c in counts if c)} example(s)"
                         + (f"; first {describe(np.asarray(first_image))}" if first_image is not None else "")))
        if self.gold is not None:
            known = [g for g in self.gold if g is not None]
            rows.append(("gold", f"{len(known)} of {n} known; {short_list(known)}"))
        keys = sorted({k for m in self.meta for k in m})
        if keys:
            rows.append(("meta keys", short_list(keys, 8, 24)))
        if self.relabel is not None:
            rows.append(("relabel", getattr(self.relabel, "__name__", type(self.relabel).__name__)))
        return f"InputSet: {n} example(s)", rows

    def select(self, indices: Sequence[int]) -> "InputSet":
        """The examples at ``indices`` (in that order).

        Parameters
        ----------
        indices : Sequence[int]
            Positions of the examples to keep.

        Returns
        -------
        InputSet
        """
        idx = [int(i) for i in indices]
        return InputSet(
            example_ids=tuple(self.example_ids[i] for i in idx),
            prompts=tuple(self.prompts[i] for i in idx),
            images=None if self.images is None else tuple(self.images[i] for i in idx),
            gold=None if self.gold is None else tuple(self.gold[i] for i in idx),
            meta=tuple(self.meta[i] for i in idx), relabel=self.relabel,
        )

    def replace(self, **changes: Any) -> "InputSet":
        """A copy with some fields changed (checked again).

        Returns
        -------
        InputSet
        """
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """A short hash of ids, prompts, images and gold (recorded in sweep configs).

        Returns
        -------
        str
        """
        h = hashlib.sha1()
        for i in range(len(self)):
            h.update(self.example_ids[i].encode())
            h.update(repr(self.prompts[i]).encode())
            if self.images is not None:
                for im in _image_list(self.images[i]):
                    a = np.ascontiguousarray(np.asarray(im))
                    h.update(str(a.shape).encode())
                    h.update(a.tobytes())
            if self.gold is not None:
                h.update(repr(self.gold[i]).encode())
        return h.hexdigest()[:16]

    def run_kwargs(self) -> dict[str, Any]:
        """``prompts``, ``images`` and ``example_ids`` for :meth:`LatentRunner.run`.

        Returns
        -------
        dict[str, Any]
        """
        return {"prompts": list(self.prompts), "images": None if self.images is None else list(self.images),
                "example_ids": list(self.example_ids)}


def _image_list(entry: Any) -> list[Any]:
    if entry is None:
        return []
    if isinstance(entry, (list, tuple)):
        return list(entry)
    return [entry]


def _map_image(entry: Any, fn: Callable[[np.ndarray], np.ndarray]) -> Any:
    if entry is None:
        return None
    if isinstance(entry, (list, tuple)):
        return [fn(np.asarray(im)) for im in entry]
    return fn(np.asarray(entry))


def derangement(n: int, seed: int = 0, groups: Sequence[Any] | None = None, max_tries: int = 1000) -> tuple[int, ...]:
    """A seeded random permutation ``m`` of ``range(n)`` with ``m[i] != i`` for every ``i``.

    With ``groups``, also ``groups[m[i]] != groups[i]`` (e.g. never pair two questions about the
    same image, which would make an image swap a no-op). Drawn by rejection sampling from
    ``numpy.random.default_rng(seed)`` (uniform over valid permutations); when ``max_tries`` draws
    fail (many examples share a group), a valid one is built instead: examples are put in a random
    order grouped by label and each is paired with the one ``m`` places further (``m`` = the
    largest group's size), cyclically. Raises :class:`InputError` when none exists (one group holds
    more than half of the examples).

    Parameters
    ----------
    n : int
        Number of examples.
    seed : int
        Seed of the draw.
    groups : Sequence[Any] | None
        A label per example (e.g. the image id).
    max_tries : int
        Draws before the constructed fallback.

    Returns
    -------
    tuple[int, ...]
    """
    if n < 2:
        raise InputError(f"a derangement needs at least 2 examples, got {n}.")
    rng = np.random.default_rng(seed)
    g = None if groups is None else np.asarray([str(x) for x in groups])
    if g is not None and len(g) != n:
        raise InputError(f"derangement: {len(g)} group labels for {n} examples.")
    idx = np.arange(n)
    for _ in range(max_tries):
        p = rng.permutation(n)
        if np.any(p == idx):
            continue
        if g is not None and np.any(g[p] == g):
            continue
        return tuple(int(x) for x in p)
    labels = g if g is not None else np.asarray([str(i) for i in range(n)])
    uniq = list(dict.fromkeys(labels.tolist()))
    sizes = {u: int(np.sum(labels == u)) for u in uniq}
    m = max(sizes.values())
    if 2 * m > n:
        raise InputError(
            f"no derangement of {n} examples exists: {m} of them share one group, more than half; "
            "pass an explicit mapping."
        )
    order = []
    for u in (uniq[i] for i in rng.permutation(len(uniq))):
        members = np.flatnonzero(labels == u)
        order.extend(int(x) for x in members[rng.permutation(len(members))])
    out = [0] * n
    for pos, i in enumerate(order):
        out[i] = order[(pos + m) % n]
    return tuple(out)
