"""Tests for latentprobe.geometry: collapse_table and norm_table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latentprobe import geometry as sim



def test_collapse_table():
    rng = np.random.default_rng(6)
    n, k, d = 30, 3, 12
    collapsed = np.ones((n, k, d)) * 5.0 + 0.05 * rng.normal(size=(n, k, d))
    text = rng.normal(size=(n, k, d))
    table = sim.collapse_table(
        collapsed, baselines={"text_tokens": text}, groups=np.arange(n) % 3, chunk_size=16
    )
    assert len(table) == 6
    assert set(table["source"]) == {"latent", "text_tokens", "random_matched_norm"}
    assert set(table["centering"]) == {"raw", "centered"}
    expected = [
        "source", "centering", "within_instance_mean", "consecutive_mean",
        "across_instance_mean", "effective_rank", "participation_ratio", "mean_norm",
        "within_group_mean", "between_group_mean",
    ]
    assert table.columns.tolist() == expected
    row = table.set_index(["source", "centering"])
    assert row.loc[("latent", "raw"), "within_instance_mean"] > 0.99
    assert row.loc[("latent", "raw"), "across_instance_mean"] > 0.99
    assert abs(row.loc[("latent", "centered"), "across_instance_mean"]) < 0.1
    assert abs(row.loc[("random_matched_norm", "raw"), "across_instance_mean"]) < 0.2
    np.testing.assert_allclose(
        row.loc[("latent", "raw"), "mean_norm"],
        np.linalg.norm(collapsed, axis=-1).mean(),
    )
    flat = collapsed.reshape(-1, d)
    np.testing.assert_allclose(
        row.loc[("latent", "centered"), "effective_rank"], sim.effective_rank(flat, center=True)
    )
    w = sim.within_instance(text, n_boot=0)
    np.testing.assert_allclose(row.loc[("text_tokens", "raw"), "within_instance_mean"], w.mean_offdiag)
    np.testing.assert_allclose(
        row.loc[("text_tokens", "raw"), "consecutive_mean"], w.consecutive_values.mean()
    )
    with pytest.raises(sim.ShapeError, match="same instances"):
        sim.collapse_table(collapsed, baselines={"bad": text[:10]})
    with pytest.raises(ValueError, match="reserved"):
        sim.collapse_table(collapsed, baselines={"latent": text})


def test_norm_table():
    rng = np.random.default_rng(7)
    lat = rng.normal(size=(20, 3, 6)) * 4.0
    emb = rng.normal(size=(50, 6))
    table = sim.norm_table(torch.tensor(lat), emb)
    assert table.columns.tolist() == ["source", "step", "mean_norm", "std_norm", "ratio_to_embedding"]
    assert table["source"].tolist() == ["latent"] * 3 + ["token_embedding"]
    assert table["step"].iloc[:3].tolist() == [0, 1, 2] and pd.isna(table["step"].iloc[3])
    norms = np.linalg.norm(lat, axis=-1)
    en = np.linalg.norm(emb, axis=-1)
    np.testing.assert_allclose(table["mean_norm"], np.append(norms.mean(0), en.mean()))
    np.testing.assert_allclose(table["std_norm"], np.append(norms.std(0), en.std()))
    np.testing.assert_allclose(table["ratio_to_embedding"].iloc[:3], norms.mean(0) / en.mean())
    with pytest.raises(sim.ShapeError, match="width"):
        sim.norm_table(lat, np.ones((5, 7)))
