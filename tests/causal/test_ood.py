"""latentprobe.causal.ood: the nearest-neighbour and norm ratios against a brute-force reference, and the
out-of-distribution flag of Z -> Y on the shipped toys (zero, shared_tensor, replace_noise flagged; swap not)."""

from __future__ import annotations

import numpy as np
import pytest

from latentprobe import schema as S
from latentprobe import toy
from latentprobe.causal import default_interventions, z_to_y
from latentprobe.causal.ood import NN_THRESHOLD, NORM_BAND, changed_steps, flag_ood, ood_reference
from latentprobe.errors import InputError
from latentprobe.report import Report
from latentprobe.report.causal_notes import MIN_OOD_EXAMPLES, zy_ood_section

FLAGGED = ("zero", "shared_tensor", "replace_noise")


def _brute(clean, z, i):
    """Per step: min_{j != i} ||z[s] - clean[j, s]|| / median_i' min_{j != i', distinct} ||clean[i', s] - clean[j, s]||."""
    n, k, _ = clean.shape
    nn, nr = [], []
    for s in range(k):
        loo = []
        for a in range(n):
            d = [np.linalg.norm(clean[a, s] - clean[b, s]) for b in range(n) if b != a]
            d = [x for x in d if x > 0]
            if d:
                loo.append(min(d))
        scale = np.median(loo)
        others = [np.linalg.norm(z[s] - clean[b, s]) for b in range(n) if b != i]
        nn.append(min(others) / scale)
        nr.append(np.linalg.norm(z[s]) / np.median([np.linalg.norm(clean[a, s]) for a in range(n)]))
    return np.array(nn), np.array(nr)


def test_ratios_match_a_brute_force_reference():
    rng = np.random.default_rng(3)
    clean = rng.normal(size=(11, 3, 6)) * np.array([1.0, 2.0, 0.5])[None, :, None] + 4.0
    clean[5] = clean[2]  # an exact copy: left out of the scale, a distance of 0 for the latent itself
    ref = ood_reference(clean)
    for i, z in [(0, rng.normal(size=(3, 6))), (2, clean[2]), (7, clean[3]), (4, np.zeros((3, 6)))]:
        nn, nr = ref.score(z, i)
        bnn, bnr = _brute(clean, z, i)
        np.testing.assert_allclose(nn, bnn, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(nr, bnr, rtol=1e-12, atol=1e-12)
    assert ref.score(clean[2], 2)[0].tolist() == [0.0, 0.0, 0.0]  # its copy (example 5) is another example
    assert ref.score(clean[3], 7)[0].tolist() == [0.0, 0.0, 0.0]  # another example's latent: a swap
    # the no-op control's ratios are the leave-one-out ones, median 1 without copies
    no_copy = ood_reference(clean[:5])
    assert np.median(no_copy.clean_nn_ratio, axis=0).tolist() == [1.0, 1.0, 1.0]
    # steps beyond the clean count score NaN; -1 leaves nothing out
    nn, nr = ref.score(np.ones((4, 6)), -1)
    assert np.isnan(nn[3]) and np.isnan(nr[3]) and np.isfinite(nn[:3]).all()


def test_reference_refuses_bad_input():
    with pytest.raises(InputError, match="at least 2"):
        ood_reference(np.ones((1, 2, 3)))
    with pytest.raises(InputError, match=r"\[n, K, d\]"):
        ood_reference(np.ones((4, 3)))
    ref = ood_reference(np.arange(24.0).reshape(4, 2, 3))
    with pytest.raises(InputError, match="width"):
        ref.score(np.ones((2, 5)), 0)
    with pytest.raises(InputError, match="example=9"):
        ref.score(np.ones((2, 3)), 9)
    # every latent of a step a copy of the others: no scale, NaN ratio (not a division by zero)
    same = ood_reference(np.ones((4, 1, 3)))
    assert np.isnan(same.nn_scale[0]) and np.isnan(same.score(np.zeros((1, 3)), 0)[0][0])


def test_flag_and_changed_steps():
    lo, hi = NORM_BAND
    assert not flag_ood(NN_THRESHOLD, 1.0) and flag_ood(NN_THRESHOLD + 1e-9, 1.0)
    assert not flag_ood(1.0, lo) and flag_ood(1.0, lo - 1e-9) and flag_ood(1.0, hi + 1e-9)
    assert not flag_ood(float("nan"), float("nan"))
    assert changed_steps("replay", None, 4) == [0, 1, 2, 3]
    assert changed_steps("redecode", [2], 4) == [2] and changed_steps("propagate", [2], 4) == [2, 3]
    assert changed_steps("propagate", [7], 4) == []


def _zy(variant, n):
    tm = toy.load(variant)
    runner = tm.runner()
    inputs = toy.toy_inputs(tm.examples("test", n))
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False)
    suite = default_interventions(trace, seed=0)
    ivs = {k: suite[k] for k in (*FLAGGED, "swap", "no_latents")}
    return z_to_y(runner, trace, ivs, modes=["redecode"], gold=inputs.gold, n_boot=50, batch_size=16,
                  chunk_size=16, progress=False), trace


@pytest.mark.parametrize("variant", ["mediated", "free"])
def test_toys_flag_zero_shared_tensor_and_noise_but_not_swap(variant):
    res, trace = _zy(variant, 48)
    S.ZY_SUMMARY.check(res.summary)
    S.ZY_ROWS.check(res.rows)
    s = res.summary[res.summary["mode"] == "redecode"].drop_duplicates("intervention").set_index("intervention")
    for name in FLAGGED:
        assert s.loc[name, "ood"], (name, s.loc[name, ["ood_nn_ratio", "ood_norm_ratio"]].tolist())
    assert s.loc[["zero", "shared_tensor", "replace_noise"], "ood_nn_ratio"].min() > NN_THRESHOLD
    assert not s.loc["swap", "ood"] and s.loc["swap", "ood_nn_ratio"] == 0.0
    assert not s.loc["none", "ood"]
    assert s.loc["zero", "ood_norm_ratio"] == 0.0 and s.loc["swap", "ood_norm_ratio"] == pytest.approx(1.0, abs=0.2)
    assert s.loc["no_latents", "ood"] and np.isnan(s.loc["no_latents", "ood_nn_ratio"])
    assert not res.summary.loc[res.summary["mode"] == "run", "ood"].any()
    # the rows' ratios are the reference's, median over steps
    kept = list(trace.latent_selection().indices)
    ref = ood_reference(np.stack([trace[i].z.double().numpy() for i in kept]))
    row = res.rows[(res.rows["intervention"] == "none")].iloc[3]
    j = [trace[i].example_id for i in kept].index(row["example_id"])
    assert row["ood_nn_ratio"] == pytest.approx(float(np.median(ref.clean_nn_ratio[j])), rel=1e-9)
    # the control feeds the clean latents: its score is the clean leave-one-out ratio (median of medians)
    assert s.loc["none", "ood_nn_ratio"] == pytest.approx(float(np.median(np.median(ref.clean_nn_ratio, 1))), rel=1e-9)
    # the report shows the measured table and names the flagged conditions
    doc = Report("r").add_result(res).to_html()
    assert "ood_nn_ratio" in doc and "Out of distribution: zero, shared_tensor, replace_noise, no_latents" in doc
    print(variant, s[["ood_nn_ratio", "ood_norm_ratio", "ood"]].to_dict("index"))


def test_few_examples_get_a_warning_and_old_summaries_no_table():
    import pandas as pd

    summary = pd.DataFrame({"intervention": ["none", "zero"], "mode": ["redecode"] * 2, "metric": ["kl"] * 2,
                            "ood_nn_ratio": [1.0, 1.5], "ood_norm_ratio": [1.0, 0.0], "ood": [False, True]})
    rep = Report("r")
    assert zy_ood_section(rep, summary, n_kept=MIN_OOD_EXAMPLES - 8) == ["zero"]
    doc = rep.to_html()
    assert "Few examples for the OOD score" in doc and "compares with 8 clean examples" in doc
    rep = Report("r")
    assert zy_ood_section(rep, summary, n_kept=MIN_OOD_EXAMPLES) == ["zero"]
    assert "Few examples" not in rep.to_html()
    assert zy_ood_section(Report("r"), summary.drop(columns="ood")) == []
