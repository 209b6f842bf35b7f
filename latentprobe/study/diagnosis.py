"""Did the study's model enter latent mode? The check after the clean run, before any analysis.

A model that never opens latent mode (an untrained or mismatched checkpoint, a prompt in another
format, a preset that does not fit) leaves nothing for the analyses to measure. :func:`diagnose_latent_mode`
reads the clean run: the share of examples that entered latent mode and, for the examples that did
not, what the model chose instead at the open decision (the first generated position): its top
tokens and their probabilities, and the probability it gave the open marker (from the trace's
``first_token_logprobs``, the model's own distribution before any logits processor).
``latentprobe run`` stops with :class:`~latentprobe.errors.LatentModeError` (exit 1) when no example
entered, and writes the diagnosis to ``DIR/diagnosis.json``.

Examples
--------
>>> from latentprobe import toy
>>> tm = toy.load("mediated")
>>> ex = tm.examples("test", 4)
>>> runner = tm.runner()
>>> d = diagnose_latent_mode(runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=8, progress=False), runner)
>>> d.n, d.n_entered, d.never_opened
(4, 4, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latentprobe.engine import LatentRunner
    from latentprobe.trace import LatentTrace

__all__ = ["LatentModeDiagnosis", "diagnose_latent_mode", "TOP_K"]

TOP_K = 5  #: tokens listed per open decision


@dataclass(frozen=True)
class LatentModeDiagnosis:
    """What the clean run says about latent mode.

    Attributes
    ----------
    n, n_entered : int
        Examples run, and those that entered latent mode.
    open : str
        The study's ``[generation] open`` (``"auto"`` or ``"force"``).
    open_mode : str
        The spec's ``open_mode`` (``"emitted"``: the model chooses the open marker itself).
    open_token : str or None
        The open marker (``None`` where the spec has no token to choose).
    p_open : float or None
        The open marker's probability at the open decision, averaged over the examples that did not
        enter (``None`` when every example entered, or the spec has no marker to choose).
    top_tokens : tuple of (str, float)
        The top tokens at the open decision by probability averaged over the examples that did not enter.
    examples : tuple of dict
        Per example: ``example_id``, ``entered``, ``n_latents``, ``answer``, and for those that did not
        enter ``p_open`` and ``top`` (``[[token, probability], ...]``).
    """

    n: int
    n_entered: int
    open: str
    open_mode: str
    open_token: str | None
    p_open: float | None
    top_tokens: tuple[tuple[str, float], ...]
    examples: tuple[dict[str, Any], ...] = field(repr=False, default=())

    @property
    def share(self) -> float:
        """The share of examples that entered latent mode."""
        return self.n_entered / self.n if self.n else float("nan")

    @property
    def never_opened(self) -> bool:
        """No example entered latent mode."""
        return self.n_entered == 0

    def summary(self) -> str:
        """``"4 of 6 examples (67%)"``.

        Returns
        -------
        str
        """
        return f"{self.n_entered} of {self.n} examples ({100 * self.share:.0f}%)"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (``diagnosis.json``).

        Returns
        -------
        dict
            The attributes, ``share`` and ``p_open_mean`` (``p_open``), the examples as a list.
        """
        return {"n": self.n, "n_entered": self.n_entered, "share": self.share, "open": self.open,
                "open_mode": self.open_mode, "open_token": self.open_token, "p_open_mean": self.p_open,
                "top_tokens": [[t, p] for t, p in self.top_tokens], "examples": list(self.examples)}

    def message(self, where: str) -> str:
        """The error text: what happened, what the model chose instead, the fix.

        Parameters
        ----------
        where : str
            The study file (or other place), named first.

        Returns
        -------
        str
        """
        head = f"{where}: the model never entered latent mode on the clean run (0 of {self.n} examples)"
        seen = ""
        if self.top_tokens:
            tops = ", ".join(f"{t!r} {p:.3g}" for t, p in self.top_tokens)
            seen = (f"; at the open decision (the first generated position) its top tokens were {tops} "
                    "(mean probability)")
            if self.p_open is not None:
                seen += f", and the open marker {self.open_token!r} had {self.p_open:.3g}"
        if self.open_mode != "emitted":
            fix = (f"this spec opens latent mode itself (open_mode = {self.open_mode!r}): check the preset and "
                   "num_latents against the checkpoint")
        elif self.open == "force":
            fix = ("open = \"force\" is set, yet nothing opened: check that max_new_tokens leaves room for the "
                   "latent segment and that the preset's open marker is the checkpoint's")
        else:
            fix = ("to measure the latents anyway, force the open marker at the first generated position with "
                   "open = \"force\" in [generation] (latentprobe.engine.ForceOpen, in every generation of the "
                   "study); otherwise check that the preset matches the checkpoint and that the prompt is the "
                   "family's (its [prompt] template or messages, the system prompt)")
        return f"{head}{seen}. No analysis can measure latents that were never produced; {fix}."


def _token(tokenizer: Any, token_id: int) -> str:
    return str(tokenizer.decode([int(token_id)]))


def diagnose_latent_mode(trace: LatentTrace, runner: LatentRunner, *, open_setting: str = "auto",
                         top_k: int = TOP_K) -> LatentModeDiagnosis:
    """Read a clean run's latent-mode decisions (see the module docstring).

    Parameters
    ----------
    trace : LatentTrace
        The clean run.
    runner : LatentRunner
        Its runner (spec, open marker id, tokenizer).
    open_setting : str
        The study's ``[generation] open``, recorded and used for the advice.
    top_k : int
        Tokens listed at the open decision.

    Returns
    -------
    LatentModeDiagnosis
    """
    import torch

    spec = runner.spec
    emitted = spec.open_mode == "emitted"
    open_id = getattr(getattr(runner, "rspec", None), "open_id", None) if emitted else None
    tok = runner.tokenizer
    rows: list[dict[str, Any]] = []
    dists = []
    for e in trace:
        row: dict[str, Any] = {"example_id": e.example_id, "entered": bool(e.entered_latent_mode),
                               "n_latents": int(e.num_latents), "answer": e.answer_text}
        lp = e.first_token_logprobs
        if not e.entered_latent_mode and lp is not None:
            probs = lp.detach().float().exp()
            dists.append(probs)
            top = torch.topk(probs, min(top_k, probs.numel()))
            row["top"] = [[_token(tok, i), round(float(p), 6)]
                          for p, i in zip(top.values.tolist(), top.indices.tolist())]
            row["p_open"] = None if open_id is None else float(probs[int(open_id)])
        rows.append(row)
    n_entered = sum(r["entered"] for r in rows)
    top_tokens: tuple[tuple[str, float], ...] = ()
    p_open = None
    if dists:
        mean = torch.stack(dists).mean(0)
        top = torch.topk(mean, min(top_k, mean.numel()))
        top_tokens = tuple((_token(tok, i), round(float(p), 6)) for p, i in zip(top.values.tolist(),
                                                                                top.indices.tolist()))
        if open_id is not None:
            p_open = float(mean[int(open_id)])
            p_open = None if math.isnan(p_open) else p_open
    marker = getattr(spec, "open_token", None)
    return LatentModeDiagnosis(n=len(rows), n_entered=n_entered, open=open_setting, open_mode=str(spec.open_mode),
                               open_token=marker if isinstance(marker, str) else None, p_open=p_open,
                               top_tokens=top_tokens, examples=tuple(rows))
