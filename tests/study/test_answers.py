"""A study's answers: answers.csv (the answer browser's table), the per-condition counts with one rule for
unreadable answers, the report's warning, and the browser drawn and filtered in headless Chromium."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from latentprobe import cli, schema
from latentprobe.study.answers import answer_summary

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.main, list(args), standalone_mode=True, catch_exceptions=False)
    return res.exit_code, res.output


def test_answer_summary_counts_by_the_one_rule():
    rows = schema.ANSWER_ROWS.frame([
        {"example_id": "a", "condition": "clean", "answer": "B", "parsed": "B", "parse_method": "letter",
         "correct": 1.0, "n_latents": 4},
        {"example_id": "b", "condition": "clean", "answer": "", "parsed": "", "parse_method": "empty",
         "correct": np.nan, "n_latents": 0},
        {"example_id": "c", "condition": "clean", "answer": "A or B", "parsed": "", "parse_method": "ambiguous",
         "correct": np.nan, "n_latents": 4},
        {"example_id": "d", "condition": "clean", "answer": "C", "parsed": "", "parse_method": "no_gold",
         "correct": np.nan, "n_latents": 4},
        {"example_id": "a", "condition": "z_to_y: zero (redecode)", "answer": "A", "parsed": "A",
         "parse_method": "letter", "correct": 0.0, "n_latents": 4}])
    s = answer_summary(rows).set_index("condition")
    schema.ANSWER_SUMMARY.check(answer_summary(rows))
    clean = s.loc["clean"]
    # three answers had a gold: one right, one empty and one ambiguous (unreadable: counted as wrong)
    assert (clean["n"], clean["n_unparseable"], clean["n_empty"]) == (4, 2, 1)
    assert clean["share_unparseable"] == pytest.approx(2 / 3) and clean["accuracy"] == pytest.approx(1 / 3)
    assert clean["share_latent_mode"] == pytest.approx(3 / 4)
    assert s.loc["z_to_y: zero (redecode)", "accuracy"] == 0.0


@pytest.mark.slow
def test_toy_study_answers_csv_browser_and_filter(toy_run):
    out = toy_run
    wide = pd.read_csv(out / "answers.csv", dtype={"example_id": str})
    sample = pd.read_csv(out / "sample.csv", dtype={"example_id": str})
    assert list(wide.example_id) == list(sample.example_id)
    assert list(wide.columns[:10]) == ["example_id", "question", "answer", "gold", "correct", "parsed",
                                       "parse_method", "n_latents", "entered", "z_to_y: none (propagate): answer"]
    # each condition's column holds that condition's answers, example by example
    zy = pd.read_csv(out / "z_to_y" / "rows.csv", dtype={"example_id": str, "answer": str}, keep_default_na=False)
    swap = zy[(zy.intervention == "swap") & (zy["mode"] == "redecode")].set_index("example_id")["answer"]
    col = wide.set_index("example_id")["z_to_y: swap (redecode): answer"].fillna("")
    assert len(swap) and (col.loc[swap.index] == swap).all()
    assert "decompose: treated: parsed" in wide.columns
    html = (out / "report.html").read_text()
    assert 'id="answers"' in html and "class=\"table-filter\"" in html and "answers.csv" in html
    from test_report import chromium_dom

    target = wide.example_id.iloc[3]
    dom = chromium_dom(out / "report.html", query=f"filter={target}")
    table = re.search(r'<input type="search" class="table-filter" data-table="(table-\d+)"', dom).group(1)
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
    rows = re.findall(r"<tr( style=\"display: none;\")?>(.*?)</tr>", body, re.S)
    shown = [r for hidden, r in rows if not hidden]
    assert len(rows) == len(wide) and len(shown) == 1 and target in shown[0]


@pytest.mark.slow
def test_codi_study_whose_answers_are_all_empty_says_so(tmp_path):
    pytest.importorskip("peft")
    import torch
    from checkpoints import save_codi_checkpoint, save_gpt2_base
    from transformers import GPT2LMHeadModel

    base = save_gpt2_base(tmp_path / "gpt2")
    model = GPT2LMHeadModel.from_pretrained(base)
    with torch.no_grad():  # every final state is the same vector, whose top token is eos: every answer is empty
        eos = model.config.eos_token_id
        direction = torch.randn(model.config.n_embd)
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(direction)
        model.transformer.wte.weight[eos] = direction * 10
    model.save_pretrained(base)
    save_codi_checkpoint(tmp_path / "codi", base, r=128)  # the loader's default LoRA rank
    (tmp_path / "gsm").mkdir()  # GSM8k-Aug in CODI's layout
    (tmp_path / "gsm" / "test.json").write_text(json.dumps(
        [{"question": f"what is {i} plus one ?", "cot": "<<1+1=2>>", "answer": str(i + 1)} for i in range(6)]))
    study = tmp_path / "codi.toml"
    study.write_text(f'[study]\nname = "codi"\n[model]\nsource = "{tmp_path / "codi"}"\npreset = "codi"\n'
                     f'base = "{base}"\n[data]\nbenchmark = "gsm8k-aug"\nroot = "gsm"\n[prompt]\n'
                     'template = "{question}"\n[generation]\nmax_new_tokens = 12\nn_boot = 20\nscorer = "numeric"\n'
                     '[analyses.z_to_y]\ninterventions = ["zero"]\nmodes = ["redecode"]\n')
    out = tmp_path / "out"
    code, text = _cli("run", str(study), "--out", str(out), "--quiet")
    # every answer is empty: no effect can be right, so z_to_y stops the study (an error, not a number) ...
    assert code == 1 and "EmptyAnswersError" in text and "every one of the 6 answers is empty" in text, text
    wide = pd.read_csv(out / "answers.csv", keep_default_na=False)
    assert (wide["answer"] == "").all() and set(wide["parse_method"]) == {"empty"}
    # ... and the report written then says what happened: the unreadable answers, the warning, the stop
    html = (out / "report.html").read_text()
    answers = html[html.index('id="answers"'):html.index("answer browser")]
    assert "n_unparseable" in answers and "Mostly unreadable answers" in answers
    assert re.search(r"<td>clean</td><td[^>]*>6</td><td[^>]*>6</td><td[^>]*>6</td>", answers), answers[:3000]
    assert "Stopped by an error" in html and "re-running the same study repeats it" in html
