"""The ``steps`` analysis record (``[analyses.steps]``) and its figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latentprobe import toy, viz
from latentprobe.analyses import Context, get_analysis
from latentprobe.causal import StepResult
from latentprobe.errors import VizInputError
from latentprobe.report import Report


@pytest.fixture(scope="module")
def result():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tm = toy.load("mediated")
        ctx = Context(tm.runner(), toy.toy_inputs(tm.examples("test", 8)), max_new_tokens=8, progress=False,
                      is_toy=True)
        rec = get_analysis("steps")
        opts = rec.Options(oracle_perturbation="counterfactual", counts=(3,), n_boot=100).resolved(ctx.defaults())
        yield rec, rec.run(ctx, opts, folder=None)
    finally:
        torch.set_num_threads(old)


def test_the_record_runs_every_condition_and_its_tables_match_the_schema(result):
    rec, res = result
    assert isinstance(res, StepResult) and rec.accepts(res)
    tables = rec.to_tables(res)
    for name, table in tables.items():
        rec.tables[name].check(table)
    assert set(res.table.condition) == {"clean", "influence", "early_exit", "count", "oracle", "format_only",
                                        "no_latents"}
    back = rec.from_tables(tables, res.config)
    pd.testing.assert_frame_equal(back.matrix(), res.matrix())
    head = rec.headline(res)
    assert "oracle injection: answers moved" in head


def test_the_section_has_the_heatmap_and_a_captioned_table(result):
    rec, res = result
    report = Report("steps")
    rec.section(report, res)
    html = report.to_html()
    assert "Step structure" in html and "moved" in html


def test_influence_heatmap_shows_the_matrix(result):
    _, res = result
    fig = viz.influence_heatmap(res)
    z = np.asarray(fig.data[0].z, dtype=float)
    k = res.config["num_latents"]
    assert z.shape == (k, k) and np.asarray(fig.data[1].z).shape == (k, 1)
    assert all(z[i, j] == 0.0 for i in range(k) for j in range(i))
    assert fig.layout.meta["kind"] == "influence_heatmap" and viz.caption_for(fig)
    with pytest.raises(VizInputError, match="influence_heatmap"):
        viz.influence_heatmap(pd.DataFrame({"z_0": [0.1]}))


STUDY = """
[study]
name = "toy-steps"
seed = 0

[model]
source = "toy:mediated"

[data]
benchmark = "toy"
split = "test"
n = 8
by = "category"

[generation]
max_new_tokens = 8
n_boot = 100

[analyses.steps]
counts = [3]
oracle_perturbation = "counterfactual"
"""


def test_a_study_file_reaches_it_and_reads_it_back(tmp_path):
    from click.testing import CliRunner

    from latentprobe import cli
    from latentprobe.study import load_result

    (tmp_path / "s.toml").write_text(STUDY)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(tmp_path / "s.toml"), "--out", str(out), "--quiet"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    back = load_result(out / "steps")
    assert isinstance(back, StepResult) and back.config["counts"] == [3]
    assert "oracle" in set(back.table.condition)
    assert "Step structure" in (out / "report.html").read_text()


def test_units_of_examples_give_the_rows_of_one_whole_run():
    """The record runs in units of batch_size examples (stored as they finish); K and the swap partners come from
    the whole trace, so the rows equal step_influence over every example at once (to float noise)."""
    from latentprobe.causal import step_influence

    tm = toy.load("mediated")
    inputs = toy.toy_inputs(tm.examples("test", 7))
    ctx = Context(tm.runner(), inputs, max_new_tokens=8, progress=False, is_toy=True)
    rec = get_analysis("steps")
    opts = rec.Options(oracle_perturbation="counterfactual", counts=(3,), n_boot=50, batch_size=3).resolved(
        ctx.defaults())
    assert [u.data for u in rec.plan(ctx, opts)] == [[0, 1, 2], [3, 4, 5], [6]]
    units = rec.run(ctx, opts, folder=None)
    moved = toy.Counterfactual(seed=0).apply(inputs)
    oracle = ctx.runner.run(**moved.run_kwargs(), max_new_tokens=8, progress=False)
    whole = step_influence(ctx.runner, ctx.trace, gold=inputs, oracle=oracle, counts=[3], n_boot=50, batch_size=8)
    key = ["example_id", "condition", "step", "target_step", "metric"]
    a = units.table.sort_values(key).reset_index(drop=True)
    b = whole.table.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key])
    np.testing.assert_allclose(a["value"], b["value"], atol=1e-5)
    flips = a[(a.metric == "flip")]
    assert (flips["value"].to_numpy() == b[(b.metric == "flip")]["value"].to_numpy()).all()
    assert units.config["num_latents"] == whole.config["num_latents"] and units.config["oracle"]


def test_counts_may_be_left_empty_where_that_is_the_default():
    """[analyses.steps] without counts (its default: no K' runs) resolves; an empty list where the default is not
    empty is still refused."""
    from latentprobe.analyses import OptionError

    tm = toy.load("mediated")
    ctx = Context(tm.runner(), toy.toy_inputs(tm.examples("test", 2)), max_new_tokens=8, progress=False, is_toy=True)
    rec = get_analysis("steps")
    assert rec.Options().resolved(ctx.defaults()).counts == ()
    assert rec.Options(counts=()).resolved(ctx.defaults()).counts == ()
    with pytest.raises(OptionError, match="non-empty"):
        get_analysis("patching").Options(perturbation="counterfactual", positions=())
