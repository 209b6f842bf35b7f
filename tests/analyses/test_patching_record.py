"""The ``patching`` analysis record: study key, tables checked, rebuilt from its tables, figure and headline."""

from __future__ import annotations

import pytest
import torch

from latentprobe import toy
from latentprobe.analyses import Context, OptionError, get_analysis

pytestmark = pytest.mark.slow


def test_patching_record_runs_and_round_trips():
    torch.set_num_threads(1)
    tm = toy.load("mediated")
    ctx = Context(tm.runner(), toy.toy_inputs(tm.examples("test", 6)), max_new_tokens=8, progress=False, is_toy=True)
    rec = get_analysis("patching")
    opts = rec.Options(perturbation="counterfactual", positions=("image", "latents"), layers=(0, 1),
                       modes=("redecode",), n_boot=100).resolved(ctx.defaults())
    res = rec.run(ctx, opts, folder=None)
    tables = rec.to_tables(res)
    for name, t in tables.items():
        rec.tables[name].check(t)
    back = rec.from_tables(tables, res.config)
    assert rec.accepts(back)
    assert back.table.equals(res.table)
    # mediated: the latents carry the image, so the largest flip rate is at the latents
    assert rec.headline(back)["patching (redecode)"].startswith("largest flip rate 1.000 at latents")
    (fig,) = rec.figures(back)
    assert fig.layout.meta["kind"] == "patching_heatmap"


def test_patching_options_refuse_unknown_groups():
    rec = get_analysis("patching")
    with pytest.raises(OptionError, match="nope"):
        rec.Options(perturbation="counterfactual", positions=("nope",))
