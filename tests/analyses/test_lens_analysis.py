"""``[analyses.lens]``: the lens record runs from a study file (the tiny CODI checkpoint in CODI's own layout,
text questions in GSM8k-Aug's layout), writes its tables as declared, and rebuilds its report section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from latentprobe import cli, toy
from latentprobe.analyses import Context, get_analysis
from latentprobe.readouts.tables import LENS_CELLS, LENS_COMMITMENT, LENS_ROWS, LENS_TRAJECTORY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))


def test_lens_record_on_the_toy_checks_its_tables_and_figures():
    tm = toy.load("mediated")
    ex = tm.examples("test", 6)
    ctx = Context(tm.runner(), toy.toy_inputs(ex), max_new_tokens=8, progress=False, is_toy=True)
    record = get_analysis("lens")
    opts = record.Options(positions=("latents", "close"), top_k=3, targets=("target_colour",)).resolved(ctx.defaults())
    res = record.run(ctx, opts, folder=None)
    tables = record.to_tables(res)
    for name, schema in (("trajectory", LENS_TRAJECTORY), ("commitment", LENS_COMMITMENT), ("cells", LENS_CELLS),
                         ("tokens", LENS_ROWS)):
        schema.check(tables[name])
    # the target field's value of each example that has one is scored as that token, at every cell
    from latentprobe.analyses.readouts import field_values

    vals = dict(zip(ctx.inputs.example_ids, field_values(ctx.inputs, "target_colour")))
    have = {eid: v for eid, v in vals.items() if v != "none"}
    assert 0 < len(have) < 6
    scored = tables["tokens"][tables["tokens"].target == "target_colour"]
    assert len(scored) == len(have) * (4 + 1) * (ctx.runner.n_layers + 1)  # four latents and the close marker
    tok = ctx.runner.tokenizer
    assert all(tok.convert_tokens_to_ids(have[eid]) == t for eid, t in zip(scored.example_id, scored.token_id))
    assert set(tables["trajectory"].target) == {"answer", "gold", "target_colour"}
    figs = record.figures(res)
    assert [f.layout.meta["kind"] for f in figs] == ["lens_rank_heatmap", "lens_rank_heatmap"]
    back = record.from_tables(tables, res.config)
    assert back.table.equals(res.table) and record.headline(back) == record.headline(res)


@pytest.mark.slow
def test_lens_runs_from_a_study_file_on_a_codi_checkpoint(tmp_path):
    pytest.importorskip("peft")
    from checkpoints import save_codi_checkpoint, save_gpt2_base

    base = save_gpt2_base(tmp_path / "gpt2")
    save_codi_checkpoint(tmp_path / "codi", base, r=128)  # load_codi's default rank
    (tmp_path / "gsm").mkdir()
    qs = ["what is the red circle ?", "what colour is the square ?", "one two three ?", "four five six ?"]
    rows = [{"question": q, "cot": "<<1+1=2>>", "answer": "two"} for q in qs]
    (tmp_path / "gsm" / "test.json").write_text(json.dumps(rows))
    study = tmp_path / "codi.toml"
    study.write_text(f'[study]\nname = "codi-lens"\n[model]\nsource = "{tmp_path / "codi"}"\npreset = "codi"\n'
                     f'base = "{base}"\n[data]\nbenchmark = "gsm8k-aug"\nroot = "gsm"\n[prompt]\n'
                     'template = "{question}"\n[generation]\nmax_new_tokens = 10\n'
                     '[analyses.lens]\npositions = ["latents", "last_prompt", "first_answer"]\ntop_k = 4\n'
                     'head = "projection"\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    cells = pd.read_csv(out / "lens" / "cells.csv")
    assert set(cells.position_group) == {"latents", "last_prompt", "first_answer"}
    assert sorted(set(cells.layer)) == [0, 1, 2] and cells.example_id.nunique() == 4
    assert set(cells[cells.position_group == "latents"].step) == set(range(6))  # CODI's six latents
    tokens = pd.read_csv(out / "lens" / "tokens.csv")
    assert {"top", "answer", "gold"} <= set(tokens.target)
    assert json.loads((out / "lens" / "config.json").read_text())["head"] == "projection"
    assert "Lens: what the latents say" in (out / "report.html").read_text()
