"""latentprobe.causal.xz: ``prefix_changed`` (the text generated before the open marker) and the summary per
group, on the shipped ``mediated`` toy made to write one word before opening latent mode."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from latentprobe import schema as S
from latentprobe import toy
from latentprobe.causal import x_to_z
from latentprobe.causal.xz import pre_latent_ids
from latentprobe.perturbations import ImageSwap
from latentprobe.report import Report

MAX_NEW = 12


@dataclass(frozen=True)
class WordThenOpen:
    """After the prompt's last token, write one of ``words``, then open latent mode. With ``by_image`` the word
    is picked by a digit of the model's own log-probability of the first word there (the prompt's last position
    reads the image, so the word depends on the image); otherwise it is always the first word."""

    words: tuple[int, ...]
    open_id: int
    last_prompt_id: int
    by_image: bool

    def __call__(self, ids, scores, index):
        if self.open_id in ids:
            return scores
        out = torch.full_like(scores, float("-inf"))
        if ids[-1] in self.words:
            out[self.open_id] = 0.0
        elif ids[-1] == self.last_prompt_id:
            pick = int(math.floor(float(scores[self.words[0]]) * 1e3)) % len(self.words) if self.by_image else 0
            out[self.words[pick]] = 0.0
        else:
            return scores
        return out


@pytest.fixture(scope="module")
def setup():
    tm = toy.load("mediated")
    runner = tm.runner()
    inputs = toy.toy_inputs(tm.examples("test", 24))
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=MAX_NEW, progress=False)
    tok = runner.tokenizer
    words = tuple(tok.convert_tokens_to_ids(w) for w in ("zero", "one"))
    last = {int(e.input_ids[e.prompt_len - 1]) for e in trace}
    assert len(last) == 1
    return runner, inputs, words, last.pop()


def _processor(runner, words, last, by_image):
    return WordThenOpen(words, runner.rspec.open_id, last, by_image)


def test_a_prefix_that_depends_on_the_image_splits_the_examples(setup):
    runner, inputs, words, last = setup
    proc = _processor(runner, words, last, by_image=True)
    pert = ImageSwap(seed=0)
    xz = x_to_z(runner, inputs, pert, layers=[0], max_new_tokens=MAX_NEW, logits_processor=proc, n_boot=50,
                baselines=False, progress=False)
    # the reference: both runs on their own, pre-latent ids compared directly
    kw = dict(max_new_tokens=MAX_NEW, logits_processor=proc, progress=False)
    clean = runner.run(**inputs.run_kwargs(), **kw)
    treated = runner.run(**pert.bind(inputs).apply(inputs, list(range(len(inputs)))).run_kwargs(), **kw)
    expect = {c.example_id: pre_latent_ids(c) != pre_latent_ids(t) for c, t in zip(clean, treated)}
    assert all(len(pre_latent_ids(c)) == 1 and pre_latent_ids(c)[0] in words for c in clean)
    rows = xz.rows
    S.XZ_ROWS.check(rows)
    got = rows.groupby("example_id")["prefix_changed"].agg(["min", "max"])
    assert (got["min"] == got["max"]).all()  # one value per example
    assert got["min"].to_dict() == {k: v for k, v in expect.items() if k in got.index}
    n_changed = int(got["min"].sum())
    assert 0 < n_changed < len(got)  # both groups present
    assert xz.config["prefix_changed"] == {"image_swap": {"n_kept": len(got), "n_prefix_changed": n_changed}}
    # the groups' summaries: one row set per group, and the overall mean is their weighted mean
    by = xz.by_prefix
    S.XZ_BY_PREFIX.check(by)
    assert set(by["prefix_changed"]) == {False, True} and set(by["source"]) == {"latent"}
    for metric in ("cosine", "rel_l2"):
        for step in range(4):
            cell = dict(metric=metric, step=step, layer=0)
            g = by[(by.metric == metric) & (by.step == step) & (by.layer == 0)].set_index("prefix_changed")
            assert g.loc[True, "n"] == n_changed and g.loc[False, "n"] == len(got) - n_changed
            s = xz.summary
            all_ = s[(s.source == "latent") & (s.metric == metric) & (s.step == step) & (s.layer == 0)].iloc[0]
            mix = (g.loc[True, "estimate"] * n_changed + g.loc[False, "estimate"] * (len(got) - n_changed)) / len(got)
            assert all_["estimate"] == pytest.approx(mix, rel=1e-12), cell
            sub = rows[(rows.source == "latent") & (rows.step == step) & (rows.layer == 0) & rows.prefix_changed]
            assert g.loc[True, "estimate"] == pytest.approx(float(np.mean(sub[metric])), rel=1e-12)
    doc = Report("r").add_result(xz).to_html()
    assert f"{n_changed} of {len(got)} kept examples" in doc and "prefix_changed" in doc


def test_a_prefix_that_stays_is_never_flagged(setup):
    runner, inputs, words, last = setup
    proc = _processor(runner, words, last, by_image=False)
    xz = x_to_z(runner, inputs, ImageSwap(seed=0), layers=[0], max_new_tokens=MAX_NEW, logits_processor=proc,
                n_boot=50, baselines=False, progress=False)
    assert len(xz.rows) and not xz.rows["prefix_changed"].any()
    n = xz.rows["example_id"].nunique()
    assert xz.config["prefix_changed"] == {"image_swap": {"n_kept": n, "n_prefix_changed": 0}}
    assert set(xz.by_prefix["prefix_changed"]) == {False}
    lat = xz.summary[xz.summary.source == "latent"].reset_index(drop=True)
    grp = xz.by_prefix.drop(columns="prefix_changed").reset_index(drop=True)
    np.testing.assert_array_equal(grp["estimate"].to_numpy(), lat["estimate"].to_numpy())
    doc = Report("r").add_result(xz).to_html()
    assert f"0 of {n} kept examples" in doc
