"""Z -> Y summaries adjust their p-values over the intervention x mode cells of each metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentprobe.causal import summarize_z_to_y
from latentprobe.schema import ZY_SUMMARY
from latentprobe.stats import adjust_pvalues
from latentprobe import viz


def _rows(rng: np.random.Generator, n: int = 60) -> pd.DataFrame:
    frames = []
    ref = (rng.random(n) < 0.8).astype(float)
    for name, flip_p in (("none", 0.0), ("zero", 0.6), ("noise", 0.05), ("swap", 0.02)):
        for mode in ("replay", "propagate"):
            flip = rng.random(n) < flip_p
            cor = np.where(flip, 1.0 - ref, ref)
            frames.append(pd.DataFrame({
                "example_id": [f"e{i}" for i in range(n)], "chunk": 0, "intervention": name, "mode": mode,
                "answer": "a", "ref_answer": "a", "clean_answer": "a", "gold": "a", "correct": cor,
                "ref_correct": ref, "flip": flip, "changed_vs_clean": flip, "gold_logprob": np.nan,
                "ref_gold_logprob": np.nan, "kl": np.nan, "recorded_logprob": np.nan,
                "ref_recorded_logprob": np.nan, "n_latents": 4}))
    return pd.concat(frames, ignore_index=True)


def test_p_values_are_adjusted_per_metric_over_the_intervened_cells():
    s = summarize_z_to_y(_rows(np.random.default_rng(0)), n_boot=200, clean_correct=np.ones(60))
    ZY_SUMMARY.check(s)
    change = s[s["metric"] == "accuracy_change"]
    cells = change[change["intervention"] != "none"]
    assert len(cells) == 6
    assert cells["p_holm"].tolist() == pytest.approx(adjust_pvalues(cells["p_value"], "holm").tolist())
    assert cells["p_bh"].tolist() == pytest.approx(adjust_pvalues(cells["p_value"], "fdr_bh").tolist())
    # the no-op control and the original run are not in the family; metrics without a test have no adjusted p
    assert change.loc[change["intervention"] == "none", "p_holm"].isna().all()
    assert s.loc[s["metric"] != "accuracy_change", ["p_holm", "p_bh"]].isna().all().all()
    assert (cells.loc[cells["intervention"] == "zero", "p_holm"] < 0.05).all()


def test_zy_bars_star_only_the_surviving_effects():
    s = summarize_z_to_y(_rows(np.random.default_rng(0)), n_boot=200)
    fig = viz.zy_bars(s, metrics=["accuracy_change"])
    starred = {(t.name, x) for t in fig.data for x, txt in zip(t.x, t.text) if txt == "★"}
    change = s[(s["metric"] == "accuracy_change") & (s["p_holm"] <= 0.05)]
    assert starred == set(zip(change["mode"], change["intervention"]))
    assert ("replay", "zero") in starred and not any(x == "none" for _, x in starred)
    assert "survives Holm" in fig.layout.title.subtitle.text
    assert "survives Holm" in fig.layout.meta["caption"]
    plain = viz.zy_bars(s, metrics=["accuracy_change"], mark=None)
    assert all(set(t.text or ()) <= {""} for t in plain.data)
