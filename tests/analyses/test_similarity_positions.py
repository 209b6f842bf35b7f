"""``[analyses.latent_similarity] positions``: the across-instance similarity of the latents next to the
position groups downstream of them, as tables and a figure beside the analysis' other outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latentprobe import geometry, readouts, toy
from latentprobe.analyses import Context, get_analysis
from latentprobe.errors import LatentProbeError, StudyError
from latentprobe.schema_similarity import POSITION_SIMILARITY, POSITION_SIMILARITY_GAP


@pytest.fixture(scope="module")
def ctx():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tm = toy.load("blind")
        yield Context(tm.runner(), toy.toy_inputs(tm.examples("test", 12)), max_new_tokens=8, progress=False,
                      is_toy=True, capture_positions="image")
    finally:
        torch.set_num_threads(old)


def _run(ctx, **options):
    rec = get_analysis("latent_similarity")
    return rec, rec.run(ctx, rec.Options(n_boot=50, **options).resolved(ctx.defaults()), None)


def test_positions_write_the_tables_the_geometry_call_gives(ctx):
    rec, res = _run(ctx, positions=("close", "image"), layers=(0, 4))
    POSITION_SIMILARITY.check(res["positions"])
    POSITION_SIMILARITY_GAP.check(res["position_gap"])
    pf = readouts.position_features(ctx.runner, ctx.trace, ("latents", "close", "image"), layers=[0, 4])
    want = geometry.position_similarity(pf)
    pd.testing.assert_frame_equal(res["positions"], want.table)
    pd.testing.assert_frame_equal(res["position_gap"], want.gap)
    assert res["positions"][["position_group", "layer"]].values.tolist() == [
        [g, l] for g in ("latents", "close", "image") for l in (0, 4)]
    # the analysis' other outputs are all still there
    assert len(res["across"]) == 4 and list(dict.fromkeys(res["across_sources"].source))[0] == "latent"
    assert "maps" in res and res["consecutive_baseline"].empty
    tables = rec.to_tables(res)
    assert set(tables) == set(rec.tables) and tables["positions"].equals(res["positions"])
    kinds = [f.layout.meta["kind"] for f in rec.figures(res)]
    assert kinds[-1] == "position_similarity_lines"
    back = rec.from_tables(tables, {})
    assert back["position_gap"].equals(res["position_gap"])


def test_without_positions_the_tables_are_empty_and_no_figure_is_drawn(ctx):
    rec, res = _run(ctx)
    assert res["positions"].empty and res["position_gap"].empty
    POSITION_SIMILARITY.check(res["positions"])
    assert "position_similarity_lines" not in [f.layout.meta["kind"] for f in rec.figures(res)]


def test_layers_out_of_range_and_unknown_groups_are_refused(ctx):
    n_res = ctx.runner.n_layers + 1
    with pytest.raises(StudyError, match=f"'layers': \\[{n_res}\\] out of range"):
        _run(ctx, positions=("close",), layers=(0, n_res))
    with pytest.raises(LatentProbeError, match="positions"):
        get_analysis("latent_similarity").Options(positions=("answer_logits",))


def test_the_blind_latents_are_less_instance_specific_than_the_image_positions_with_one_question():
    tm = toy.load("blind")
    ex = tm.examples("test", 12)
    inputs = toy.toy_inputs(ex)
    one = type(inputs)(example_ids=inputs.example_ids, prompts=(inputs.prompts[0],) * len(ex), images=inputs.images)
    c = Context(tm.runner(), one, max_new_tokens=8, progress=False, is_toy=True)
    _, res = _run(c, positions=("image",), layers=(2,))
    gap = res["position_gap"].iloc[0]
    assert gap.reference_mean == pytest.approx(1.0, abs=1e-5) and gap.difference > 0 and gap.ci_low > 0
    assert np.isclose(res["positions"].set_index("position_group").loc["latents", "spread"], 0.0)


def test_the_study_key_reads_groups_and_layers(tmp_path):
    from pathlib import Path

    from latentprobe.study import load_study

    base = (Path(__file__).parents[2] / "examples" / "studies" / "toy.toml").read_text()
    path = tmp_path / "positions.toml"
    path.write_text(base + '\n[analyses.latent_similarity]\npositions = ["close", "first_answer"]\nlayers = "all"\n')
    opts = load_study(path).analyses["latent_similarity"]
    assert opts.positions == ("close", "first_answer") and opts.layers is None
    path.write_text(base + '\n[analyses.latent_similarity]\npositions = ["closing"]\n')
    with pytest.raises(LatentProbeError, match="closing"):
        load_study(path)


def test_a_position_similarity_result_goes_into_a_report(ctx):
    from latentprobe.report import Report

    pf = readouts.position_features(ctx.runner, ctx.trace, ("latents", "close", "image"), layers=[2, 4])
    res = geometry.position_similarity(pf)
    rec = get_analysis("latent_similarity")
    assert rec.accepts(res) and rec.summary_of(res) is res.table
    tables = rec.to_tables(res)
    assert tables["positions"] is res.table and tables["position_gap"] is res.gap and tables["across"].empty
    head = rec.headline(res)
    gap = res.gap.set_index("position_group")
    assert list(head) == ["latents - close cosine (layer 4)", "latents - image cosine (layer 4)"]
    image4 = gap.loc["image"].query("layer == 4").difference.iloc[0]
    assert head["latents - image cosine (layer 4)"].startswith(f"{image4:.3f} [")
    html = Report("positions").add_result(res).to_html()
    assert "Similarity across examples per position group" in html and "position_similarity_lines" in html


def test_a_study_writes_the_tables_and_draws_the_figure(tmp_path):
    from click.testing import CliRunner

    from latentprobe import cli

    study = tmp_path / "positions.toml"
    study.write_text('[study]\nname = "positions"\nseed = 0\n\n[model]\nsource = "toy:blind"\n\n[data]\n'
                     'benchmark = "toy"\nsplit = "test"\nn = 12\n\n[generation]\nmax_new_tokens = 8\nn_boot = 20\n\n'
                     '[analyses.latent_similarity]\npositions = ["close", "image"]\nlayers = [0, 4]\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "latent_similarity" / "positions.csv")
    gap = pd.read_csv(out / "latent_similarity" / "position_gap.csv")
    assert table[["position_group", "layer"]].values.tolist() == [[g, l] for g in ("latents", "close", "image")
                                                                  for l in (0, 4)]
    assert gap.position_group.tolist() == ["close", "close", "image", "image"] and set(gap.n) == {12}
    assert (out / "latent_similarity" / "across_sources.csv").is_file()
    assert (out / "latent_similarity" / "maps.npz").is_file()
    assert "position_similarity_lines" in (out / "report.html").read_text()
