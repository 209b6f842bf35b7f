"""Tuned lens (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with the Tuned Lens").

The logit lens reads a residual ``h`` at layer ``l`` as ``lm_head(final_norm(h))``. The tuned lens first
maps ``h`` through a learned affine translator per layer, ``h + A_l h + b_l`` (``A_l = 0``, ``b_l = 0`` at
initialisation, so an untrained lens *is* the logit lens), trained to minimise
``KL(final distribution || lens distribution)`` at the model's own positions. Residual layers follow the
trace convention (0 = input of decoder layer 0, ``i`` = output of decoder layer ``i-1``); layers
``0 .. n_layers-1`` have translators, and layer ``n_layers`` is read as is (its logit lens *is* the final
distribution).

What is followed from the reference implementation (``AlignmentResearch/tuned-lens`` at commit
``abdac0c4de23d9f6d6c8459d576ad203aec15deb``):

* translator and init: ``tuned_lens/nn/lenses.py`` (``TunedLens.__init__``: ``Linear(d, d)`` with weight
  and bias zeroed; ``transform_hidden``: ``h + translator(h)``, added residually so that weight decay pulls
  towards the identity), one translator per layer, none for the final layer;
* loss: ``tuned_lens/scripts/train_loop.py`` (``LossChoice.KL``: ``sum(p * (log p - log q))`` against the
  model's own final log-probabilities at the same position, token shift 0, averaged over positions and
  summed over layers, one backward per layer; gradient norm clipped to 1.0 over all translators);
* optimiser: ``tuned_lens/scripts/ingredients.py`` (``Optimizer``: SGD with Nesterov momentum 0.9,
  ``lr = lr_scale * (1 - momentum)``, weight decay 1e-3, no warm-up; or Adam with ``amsgrad=True``,
  ``betas=(momentum, 0.999)``, ``lr = lr_scale * 1e-3`` and ``min(1000, steps // 5)`` warm-up steps;
  linear decay as ``get_linear_schedule_with_warmup(opt, warmup, steps - warmup)``), 250 steps by default.

Differences: the reference trains on ``2**18`` tokens per step of a pretraining corpus in bf16 autocast;
here a step is a minibatch of positions (``batch_positions``) drawn from the text you give, in float32,
so a lens fits on a CPU in a minute or two. The ``tuned-lens`` package itself (0.2.0, the latest on PyPI)
does not run beside the TransformerLens this project pins: ``TunedLens.from_model`` checks
``isinstance(model, transformer_lens.HookedTransformer)``, which TransformerLens 4 removed.

A lens is tied to the weights it was fitted on: its JSON records the model's class, weights fingerprint
(:func:`latentprobe.fingerprint.weights_fingerprint`), layer count and width, and using it with another
model raises :class:`~latentprobe.errors.LensMismatchError`.

Readouts go through the final norm and LM head only, not through a family's head (LVR's ``lvr_head``,
CODI's projection): a lens fitted on a trace's latent positions reads them as the LM head would.

What a lower KL does not prove: that the model "uses" what the tuned lens reads at that layer. A
translator is a learned map and can add information the layer only holds non-linearly or not in the
readout's basis; compare it with the logit lens, and with the held-out KL it reaches.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float
from safetensors.torch import load as st_load, save as st_save
from torch import Tensor

from latentprobe.atomic import atomic_write, atomic_write_text
from latentprobe.errors import CheckpointFormatError, CheckpointNotFoundError, InputError, LensMismatchError
from latentprobe.fingerprint import weights_fingerprint
from latentprobe.readouts._tuned_core import _final, _readout, _residuals, _split, _train

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine import LatentRunner

__all__ = ["TunedLens", "TunedLensInfo", "TunedLensFit", "fit_tuned_lens", "lens_kl", "tuned_lens_path",
           "LENS_DIR_ENV", "KL_COLUMNS"]

FORMAT_VERSION = 1
TENSOR_FILE, JSON_FILE = "tuned_lens.safetensors", "tuned_lens.json"
#: Environment variable naming the folder where lenses saved by name live (default ``~/.cache/latentprobe/lenses``).
LENS_DIR_ENV = "LATENTPROBE_LENS_DIR"
#: Columns of :func:`lens_kl`'s table.
KL_COLUMNS = ("layer", "lens", "kl", "n_positions")
_OPTIMIZERS = ("sgd", "adam")


# ------------------------------------------------------------------------------------------- readout
def _model_identity(runner: LatentRunner, mode: str | None = None) -> dict[str, Any]:
    return {"model": type(runner.model).__name__, "fingerprint": weights_fingerprint(runner.model, mode=mode),
            "n_layers": int(runner.n_layers), "d_model": int(runner.hidden_size),
            "vocab_size": int(runner.parts.vocab_size)}


@dataclass(frozen=True)
class TunedLensInfo:
    """What a tuned lens was fitted on and how (stored in its JSON file).

    Parameters
    ----------
    model, fingerprint : str
        The model's class name and weights fingerprint (:func:`~latentprobe.fingerprint.weights_fingerprint`).
    n_layers, d_model, vocab_size : int
        Decoder layers, hidden size, vocabulary of the LM head.
    settings : dict
        The fit's settings and sizes (steps, optimiser, learning-rate scale, batch, seed, positions per split,
        source ``"text"`` or ``"latents"``); empty for an untrained (identity) lens.
    """

    model: str
    fingerprint: str
    n_layers: int
    d_model: int
    vocab_size: int
    settings: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- lens
class TunedLens:
    """Per-layer affine translators read through the model's final norm and LM head.

    Build one with :func:`fit_tuned_lens`, :meth:`identity` or :meth:`load`. ``weight_[l]`` (``[d, d]``) and
    ``bias_[l]`` (``[d]``) are layer ``l``'s translator, applied as ``h + h @ weight_[l].T + bias_[l]``.

    Parameters
    ----------
    info : TunedLensInfo
        The model it belongs to.
    weight, bias : Tensor, optional
        ``[n_layers, d, d]`` and ``[n_layers, d]`` (default zeros: the logit lens).

    Examples
    --------
    >>> from latentprobe import toy
    >>> runner = toy.load("mediated").runner()
    >>> lens = TunedLens.identity(runner)
    >>> h = torch.randn(3, runner.hidden_size)
    >>> bool(torch.equal(lens.logits(runner, h, 1), lens.logits(runner, h, 1, tuned=False)))
    True
    """

    def __init__(self, info: TunedLensInfo, weight: Tensor | None = None, bias: Tensor | None = None) -> None:
        L, d = int(info.n_layers), int(info.d_model)
        self.info = info
        self.weight_ = torch.zeros(L, d, d) if weight is None else weight.detach().float().contiguous()
        self.bias_ = torch.zeros(L, d) if bias is None else bias.detach().float().contiguous()
        if tuple(self.weight_.shape) != (L, d, d) or tuple(self.bias_.shape) != (L, d):
            raise InputError(f"TunedLens: weight {tuple(self.weight_.shape)} and bias {tuple(self.bias_.shape)} must be "
                             f"[{L}, {d}, {d}] and [{L}, {d}] for a model of {L} layers and hidden size {d}.")

    @classmethod
    def identity(cls, runner: LatentRunner) -> TunedLens:
        """An untrained lens for ``runner``'s model: every translator is the identity (the logit lens).

        Parameters
        ----------
        runner : LatentRunner
            The model the lens belongs to (its class, weights fingerprint and sizes are recorded).

        Returns
        -------
        TunedLens
            Zero ``weight_`` and ``bias_``: its readout equals ``lm_head(final_norm(h))`` exactly.
        """
        return cls(TunedLensInfo(**_model_identity(runner)))

    def __repr__(self) -> str:
        s = self.info.settings
        fitted = f"fitted {s.get('steps')} steps on {s.get('n_train_positions')} positions" if s else "identity"
        return (f"TunedLens({self.info.model}, {self.info.n_layers} layers, d {self.info.d_model}, {fitted}, "
                f"{self.info.fingerprint})")

    # ------------------------------------------------------------------ applying
    def check(self, runner: LatentRunner) -> None:
        """Raise :class:`~latentprobe.errors.LensMismatchError` unless the lens was fitted on ``runner``'s model.

        Parameters
        ----------
        runner : LatentRunner
            Compared by model class, layer count, hidden size, vocabulary and weights fingerprint.

        Raises
        ------
        LensMismatchError
            Any of them differs; the message lists each difference.
        """
        mode = "sampled" if self.info.fingerprint.startswith("sampled-") else "full"
        mine = asdict(self.info)
        theirs = _model_identity(runner, mode=mode)
        diff = [f"{k} {mine[k]!r} vs {theirs[k]!r}" for k in ("model", "n_layers", "d_model", "vocab_size", "fingerprint")
                if mine[k] != theirs[k]]
        if diff:
            raise LensMismatchError(
                f"this tuned lens was fitted on another model than the runner's ({'; '.join(diff)}; lens vs runner). "
                "Fit one for this model with fit_tuned_lens(runner, texts), or load the lens saved for it.")

    def translate(self, h: Float[Tensor, "... d"], layer: int) -> Float[Tensor, "... d"]:
        """Layer ``layer``'s translator applied to ``h`` (float32); the last layer, ``n_layers``, is read as is.

        Parameters
        ----------
        h : Float[Tensor, "... d"]
            Residuals at ``layer``.
        layer : int
            Residual layer, ``0 .. n_layers``.

        Returns
        -------
        Tensor
            ``h + h @ weight_[layer].T + bias_[layer]`` (``h`` itself at the last layer).
        """
        layer = self._layer(layer)
        h = h.float()
        if layer == self.info.n_layers:
            return h
        w, b = self.weight_[layer].to(h.device), self.bias_[layer].to(h.device)
        return h + F.linear(h, w, b)

    def logits(self, runner: LatentRunner, h: Float[Tensor, "... d"], layer: int, *,
               tuned: bool = True) -> Float[Tensor, "... vocab"]:
        """The lens's logits for residuals ``h`` at ``layer`` (``tuned=False``: the logit lens on the same ``h``).

        Parameters
        ----------
        runner : LatentRunner
            The model, whose final norm and LM head read the translated residual.
        h : Float[Tensor, "... d"]
            Residuals at ``layer``.
        layer : int
            Residual layer, ``0 .. n_layers``.
        tuned : bool
            ``False`` reads ``h`` untranslated (the logit lens).

        Returns
        -------
        Tensor
            ``[..., vocab]`` logits in the model's dtype.

        Raises
        ------
        LensMismatchError
            ``runner``'s model is not the one the lens was fitted on.
        """
        self.check(runner)
        with torch.no_grad():
            return _readout(runner.parts, self.translate(h, layer) if tuned else h)

    def _layer(self, layer: int) -> int:
        if not isinstance(layer, Integral) or not 0 <= int(layer) <= self.info.n_layers:
            raise InputError(f"layer={layer!r}: residual layers are 0..{self.info.n_layers} "
                             "(0 = input of decoder layer 0, i = output of decoder layer i-1).")
        return int(layer)

    # ------------------------------------------------------------------ storage
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path/tuned_lens.safetensors`` (``weight``, ``bias``) and ``path/tuned_lens.json`` (the info).

        To save under a name that :meth:`load` finds, use ``lens.save(tuned_lens_path("my-lens"))``.

        Parameters
        ----------
        path : str or PathLike
            A folder (created if needed).

        Returns
        -------
        Path
            The folder.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"save({str(path)!r}): {path} is a file; a tuned lens is saved as a folder "
                             f"({TENSOR_FILE} and {JSON_FILE}): give a folder path.")
        path.mkdir(parents=True, exist_ok=True)
        blob = st_save({"weight": self.weight_.contiguous().cpu(), "bias": self.bias_.contiguous().cpu()})
        meta = {"format": "latentprobe.tuned_lens", "format_version": FORMAT_VERSION, **asdict(self.info),
                "tensor_sha256": hashlib.sha256(blob).hexdigest()}
        atomic_write(path / TENSOR_FILE, lambda f: f.write(blob), binary=True)
        atomic_write_text(path / JSON_FILE, json.dumps(meta, indent=1, default=str))
        return path

    @classmethod
    def load(cls, path_or_name: str | os.PathLike[str], runner: LatentRunner | None = None) -> TunedLens:
        """Read a lens written by :meth:`save`, from a folder or by name (a folder under :func:`tuned_lens_path`).

        Parameters
        ----------
        path_or_name : str or PathLike
            The folder, or a bare name saved with ``lens.save(tuned_lens_path(name))``.
        runner : LatentRunner, optional
            When given, the lens is checked against its model (:meth:`check`).

        Raises
        ------
        CheckpointNotFoundError
            No lens there.
        CheckpointFormatError
            The files are damaged, from another format version, or do not match each other.
        LensMismatchError
            ``runner`` is given and holds another model.

        Returns
        -------
        TunedLens
            The lens, weights bit for bit as saved.
        """
        path = Path(path_or_name)
        if not path.exists() and os.sep not in str(path_or_name) and "/" not in str(path_or_name):
            path = tuned_lens_path(str(path_or_name))
        jf, tf = path / JSON_FILE, path / TENSOR_FILE
        if not jf.is_file() or not tf.is_file():
            raise CheckpointNotFoundError(f"{path}: no {JSON_FILE} and {TENSOR_FILE} there; save a lens with "
                                          f"TunedLens.save (by name: lens.save(tuned_lens_path(name))).")
        def bad(what: str) -> CheckpointFormatError:
            return CheckpointFormatError(f"{path}: not a readable tuned lens ({what}); re-fit and save it.")

        try:
            meta = json.loads(jf.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise bad(f"{JSON_FILE} is not JSON: {err}") from err
        if not isinstance(meta, dict) or meta.get("format") != "latentprobe.tuned_lens" \
                or meta.get("format_version") != FORMAT_VERSION:
            got = (meta.get("format"), meta.get("format_version")) if isinstance(meta, dict) else (None, None)
            raise bad(f"format {got[0]!r} version {got[1]!r}, expected 'latentprobe.tuned_lens' version {FORMAT_VERSION}")
        blob = tf.read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta.get("tensor_sha256"):
            raise bad(f"{TENSOR_FILE} does not match the SHA-256 recorded in {JSON_FILE}")
        try:
            tensors = st_load(blob)
            info = TunedLensInfo(**{k: meta[k] for k in TunedLensInfo.__dataclass_fields__})
            lens = cls(info, tensors["weight"], tensors["bias"])
        except (ValueError, KeyError, TypeError, InputError) as err:
            raise bad(f"{type(err).__name__}: {err}") from err
        if runner is not None:
            lens.check(runner)
        return lens


def tuned_lens_path(name: str) -> Path:
    """The folder of the lens saved under ``name``: ``$LATENTPROBE_LENS_DIR/name`` (default ``~/.cache/latentprobe/lenses``).

    Parameters
    ----------
    name : str
        One folder name, no separators.

    Returns
    -------
    Path
        The folder (not created).
    """
    if not name or "/" in name or os.sep in name or name in (".", ".."):
        raise InputError(f"tuned_lens_path({name!r}): a lens name is one folder name (no separators).")
    root = os.environ.get(LENS_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "latentprobe", "lenses")
    return Path(root) / name


# ----------------------------------------------------------------------------------------------- KL
def lens_kl(runner: LatentRunner, lens: TunedLens, inputs: Any, *, batch_positions: int = 64) -> pd.DataFrame:
    """Mean ``KL(final distribution || lens distribution)`` per residual layer, logit lens and tuned lens side by side.

    Parameters
    ----------
    runner : LatentRunner
        The model (the lens must have been fitted on it).
    lens : TunedLens
        The tuned lens.
    inputs : list of str, list of token-id lists, or LatentTrace
        Positions to score: give texts the lens was *not* fitted on (:class:`TunedLensFit` keeps its held-out table).
    batch_positions : int
        Positions read per batch (memory: ``batch_positions x vocab`` floats per layer).

    Returns
    -------
    pandas.DataFrame
        Columns ``layer, lens, kl, n_positions`` (``lens`` is ``"logit"`` or ``"tuned"``), in nats, averaged over
        positions; the last layer's KL is 0 for both.

    Raises
    ------
    LensMismatchError
        The lens was fitted on another model.
    """
    lens.check(runner)
    res, _ = _residuals(runner, inputs)
    return _kl_table(runner, lens, torch.cat(res), batch_positions)


def _kl_table(runner: LatentRunner, lens: TunedLens, h: Tensor, batch_positions: int) -> pd.DataFrame:
    L, n = runner.n_layers, h.shape[0]
    sums = np.zeros((2, L + 1))
    dev = runner.parts.lm_head.weight.device
    with torch.no_grad():
        for s in range(0, n, batch_positions):
            hb = h[s:s + batch_positions].to(dev)
            p, logp, _ = _final(runner.parts, hb[:, L])
            for layer in range(L + 1):
                for k, x in enumerate((hb[:, layer], lens.translate(hb[:, layer], layer))):
                    # the direct form, exact 0 where the readout is the final one (the last layer)
                    logq = _readout(runner.parts, x).float().log_softmax(-1)
                    sums[k, layer] += (p * (logp - logq)).sum().item()
    rows = [{"layer": layer, "lens": name, "kl": sums[k, layer] / max(n, 1), "n_positions": n}
            for layer in range(L + 1) for k, name in enumerate(("logit", "tuned"))]
    return pd.DataFrame(rows, columns=list(KL_COLUMNS))


# ---------------------------------------------------------------------------------------------- fit
@dataclass(frozen=True)
class TunedLensFit:
    """What :func:`fit_tuned_lens` returns.

    Parameters
    ----------
    lens : TunedLens
        The fitted lens.
    table : pandas.DataFrame
        Held-out KL per layer, logit and tuned lens (:func:`lens_kl`'s columns).
    train_examples, held_out_examples : tuple of int
        Indices of the inputs in each split (split by example, never by position within an example).
    loss : numpy.ndarray
        Training loss per step (KL summed over layers, averaged over the step's positions).
    seconds : float
        Wall time of the fit (residual capture included).
    """

    lens: TunedLens
    table: pd.DataFrame
    train_examples: tuple[int, ...]
    held_out_examples: tuple[int, ...]
    loss: np.ndarray
    seconds: float


def fit_tuned_lens(runner: LatentRunner, inputs: Any, *, held_out: float = 0.25, steps: int = 250,
                   batch_positions: int = 32, optimizer: str = "sgd", lr_scale: float = 1.0, momentum: float = 0.9,
                   weight_decay: float = 1e-3, warmup_steps: int | None = None, seed: int = 0) -> TunedLensFit:
    """Fit a tuned lens on ``runner``'s model at the positions of ``inputs``, holding some examples out.

    Parameters
    ----------
    runner : LatentRunner
        The model.
    inputs : list of str, list of token-id lists, or LatentTrace
        Texts (every position is used), or a trace recorded with ``capture_layers="all"`` (its latent positions).
    held_out : float
        Fraction of the examples (texts, or trace examples) held out for the KL table.
    steps, batch_positions : int
        Optimiser steps, and training positions per step (drawn without replacement, epoch by epoch).
    optimizer, lr_scale, momentum, weight_decay, warmup_steps :
        As the reference implementation's ``Optimizer`` (see the module docstring): ``"sgd"`` (Nesterov,
        ``lr = lr_scale * (1 - momentum)``) or ``"adam"`` (amsgrad, ``lr = lr_scale * 1e-3``).
    seed : int
        Seeds the split and the minibatch order.

    Returns
    -------
    TunedLensFit
        The lens, the held-out KL table, the split and the loss curve.

    Examples
    --------
    >>> from latentprobe import toy
    >>> runner = toy.load("mediated").runner()
    >>> texts = ["what colour is the circle ?", "what colour is the square ?", "answer : red", "answer : blue"]
    >>> fit = fit_tuned_lens(runner, texts, steps=5, batch_positions=8)
    >>> list(fit.table.columns)
    ['layer', 'lens', 'kl', 'n_positions']
    >>> fit.held_out_examples, int(fit.table["n_positions"].iloc[0]) > 0
    ((3,), True)
    """
    t0 = time.perf_counter()
    for name, v in (("steps", steps), ("batch_positions", batch_positions)):
        if not isinstance(v, Integral) or isinstance(v, bool) or v < 1:
            raise InputError(f"{name}={v!r}: give a positive integer.")
    if optimizer not in _OPTIMIZERS:
        raise InputError(f"optimizer={optimizer!r}: use one of {_OPTIMIZERS}.")
    res, source = _residuals(runner, inputs)
    train, held = _split(len(res), held_out, seed)
    h_train = torch.cat([res[i] for i in train])
    h_held = torch.cat([res[i] for i in held])
    lens = TunedLens.identity(runner)
    weight, bias, loss = _train(runner, h_train, steps=steps, batch=batch_positions, optimizer=optimizer, lr_scale=lr_scale,
                  momentum=momentum, weight_decay=weight_decay, warmup_steps=warmup_steps, seed=seed)
    settings = {"source": source, "steps": steps, "batch_positions": batch_positions, "optimizer": optimizer,
                "lr_scale": lr_scale, "momentum": momentum, "weight_decay": weight_decay, "warmup_steps": warmup_steps,
                "seed": seed, "held_out": held_out, "n_train_positions": int(h_train.shape[0]),
                "n_held_out_positions": int(h_held.shape[0]), "n_train_examples": len(train),
                "n_held_out_examples": len(held), "final_train_loss": float(loss[-1])}
    lens = TunedLens(TunedLensInfo(**{**asdict(lens.info), "settings": settings}), weight, bias)
    table = _kl_table(runner, lens, h_held, max(batch_positions, 64))
    return TunedLensFit(lens=lens, table=table, train_examples=tuple(train), held_out_examples=tuple(held),
                        loss=loss, seconds=time.perf_counter() - t0)
