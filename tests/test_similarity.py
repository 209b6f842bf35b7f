"""Tests for latentprobe.similarity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latentprobe import similarity as sim

SETTINGS = settings(max_examples=30, deadline=None)


# --------------------------------------------------------------------------- #
# Reference implementations (direct, small n)
# --------------------------------------------------------------------------- #
def _ref_cosine(x, y):
    nx = np.linalg.norm(x, axis=1, keepdims=True)
    ny = np.linalg.norm(y, axis=1, keepdims=True)
    ux = np.divide(x, nx, out=np.zeros_like(x), where=nx > 0)
    uy = np.divide(y, ny, out=np.zeros_like(y), where=ny > 0)
    return ux @ uy.T


def _ref_hsic_unbiased(k, l):
    n = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    term1 = np.trace(k @ l)
    term2 = (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ k @ l @ one)
    return (term1 + term2 - term3) / (n * (n - 3))


def _ref_cka(x, y, debiased):
    if debiased:
        k, l = x @ x.T, y @ y.T
        return _ref_hsic_unbiased(k, l) / np.sqrt(
            _ref_hsic_unbiased(k, k) * _ref_hsic_unbiased(l, l)
        )
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))


def _random_orthogonal(d, rng):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


values = st.integers(-1000, 1000).map(lambda v: v / 100.0)


# --------------------------------------------------------------------------- #
# cosine_matrix
# --------------------------------------------------------------------------- #
@SETTINGS
@given(
    x=st.tuples(st.integers(1, 12), st.integers(1, 6)).flatmap(
        lambda s: arrays(np.float64, s, elements=values)
    ),
    chunk=st.integers(1, 8),
)
def test_cosine_symmetric_unit_diagonal(x, chunk):
    out = sim.cosine_matrix(x, chunk_size=chunk)
    assert out.shape == (x.shape[0],) * 2
    np.testing.assert_array_equal(out, out.T)
    nonzero = np.linalg.norm(x, axis=1) > 0
    np.testing.assert_array_equal(np.diag(out), nonzero.astype(float))
    np.testing.assert_allclose(out, np.clip(_ref_cosine(x, x), -1, 1), atol=1e-12)
    assert np.all(np.abs(out) <= 1.0)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 15), m=st.integers(2, 15))
def test_cosine_centered_equals_mean_subtracted(seed, n, m):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)) + 3.0
    y = rng.normal(size=(m, 5)) - 1.0
    xc = x - x.mean(0)
    np.testing.assert_allclose(
        sim.cosine_matrix(x, center=True, chunk_size=3), _ref_cosine(xc, xc), atol=1e-12
    )
    np.testing.assert_allclose(
        sim.cosine_matrix(x, y, center=True, chunk_size=4),
        _ref_cosine(xc, y - y.mean(0)),
        atol=1e-12,
    )


def test_cosine_zero_rows_and_torch_input():
    x = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    out = sim.cosine_matrix(torch.tensor(x, dtype=torch.float32))
    assert out.dtype == np.float64
    assert out[1, 1] == 0.0 and np.all(out[1] == 0.0)
    np.testing.assert_allclose(out[0, 2], 1 / np.sqrt(2))
    # A row equal to the mean has no direction after centring.
    y = np.array([[1.0, 2.0], [3.0, 4.0], [2.0, 3.0]])
    assert np.all(sim.cosine_matrix(y, center=True)[2] == 0.0)


def test_cosine_chunked_equals_direct():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 12)).astype(np.float32)
    y = rng.normal(size=(700, 12))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(sim.cosine_matrix(x, chunk_size=256), _ref_cosine(x64, x64), atol=1e-12)
    np.testing.assert_allclose(
        sim.cosine_matrix(x, y, center=True, chunk_size=256),
        _ref_cosine(x64 - x64.mean(0), y - y.mean(0)),
        atol=1e-12,
    )


def test_cosine_errors():
    with pytest.raises(sim.ShapeError, match="2-D"):
        sim.cosine_matrix(np.zeros((2, 3, 4)))
    with pytest.raises(sim.ShapeError, match="width"):
        sim.cosine_matrix(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(sim.NonFiniteError):
        sim.cosine_matrix(np.array([[1.0, np.nan]]))
    with pytest.raises(sim.DTypeError):
        sim.cosine_matrix(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="chunk_size"):
        sim.cosine_matrix(np.ones((2, 3)), chunk_size=0)


# --------------------------------------------------------------------------- #
# within_instance / across_instances
# --------------------------------------------------------------------------- #
def _latents(seed, n=40, k=4, d=8, offset=2.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k, d)) + offset


@pytest.mark.parametrize("center", [False, True])
def test_within_instance_matches_direct(center):
    lat = _latents(0)
    res = sim.within_instance(lat, center=center, chunk_size=7)
    data = lat - lat.reshape(-1, 8).mean(0) if center else lat
    mats = np.stack([_ref_cosine(v, v) for v in data])
    np.testing.assert_allclose(res.step_matrix, mats.mean(0), atol=1e-12)
    np.testing.assert_array_equal(res.step_matrix, res.step_matrix.T)
    assert res.consecutive.columns.tolist() == ["step", "mean", "ci_low", "ci_high", "n"]
    assert res.consecutive["step"].tolist() == [1, 2, 3]
    assert (res.consecutive["n"] == 40).all()
    cons = np.stack([mats[:, k - 1, k] for k in range(1, 4)], axis=1)
    np.testing.assert_allclose(res.consecutive_values, cons, atol=1e-12)
    np.testing.assert_allclose(res.consecutive["mean"], cons.mean(0), atol=1e-12)
    assert (res.consecutive["ci_low"] <= res.consecutive["mean"]).all()
    assert (res.consecutive["mean"] <= res.consecutive["ci_high"]).all()
    np.testing.assert_allclose(res.mean_offdiag, mats.mean(0)[~np.eye(4, dtype=bool)].mean())
    again = sim.within_instance(lat, center=center)
    pd.testing.assert_frame_equal(res.consecutive, again.consecutive)


def test_within_instance_single_step_and_errors():
    res = sim.within_instance(_latents(1, k=1))
    assert res.step_matrix.shape == (1, 1)
    assert len(res.consecutive) == 0 and np.isnan(res.mean_offdiag)
    with pytest.raises(sim.ShapeError, match="3-D"):
        sim.within_instance(np.ones((5, 8)))
    with pytest.raises(ValueError, match="n_boot"):
        sim.within_instance(_latents(1), n_boot=-1)


@pytest.mark.parametrize("center", [False, True])
def test_across_instances_matrix_path(center):
    lat = _latents(2, n=25)
    groups = np.array(list("abcab") * 5)
    res = sim.across_instances(lat, groups=groups, center=center, n_boot=200)
    assert res.matrices.shape == (4, 25, 25)
    data = lat - lat.reshape(-1, 8).mean(0) if center else lat
    off = ~np.eye(25, dtype=bool)
    same = (groups[:, None] == groups[None, :]) & off
    diff = groups[:, None] != groups[None, :]
    for k in range(4):
        ref = _ref_cosine(data[:, k], data[:, k])
        np.testing.assert_allclose(res.matrices[k], ref, atol=1e-12)
        np.testing.assert_allclose(res.summary["mean_offdiag"][k], ref[off].mean(), atol=1e-12)
        np.testing.assert_allclose(res.by_group["within_group_mean"][k], ref[same].mean(), atol=1e-12)
        np.testing.assert_allclose(res.by_group["between_group_mean"][k], ref[diff].mean(), atol=1e-12)
    assert res.summary.columns.tolist() == ["step", "mean_offdiag", "ci_low", "ci_high", "n"]
    assert res.by_group["n_within_pairs"].iloc[0] == same.sum() // 2
    assert res.by_group["n_between_pairs"].iloc[0] == diff.sum() // 2
    assert (res.summary["ci_low"] <= res.summary["ci_high"]).all()


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 30),
    k=st.integers(1, 3),
    n_groups=st.integers(1, 4),
    center=st.booleans(),
    chunk=st.integers(1, 20),
)
def test_across_large_path_equals_matrix_path(seed, n, k, n_groups, center, chunk):
    rng = np.random.default_rng(seed)
    lat = rng.normal(size=(n, k, 5)) + rng.normal(size=5)
    lat[rng.random(n) < 0.1] = 0.0  # some zero vectors
    groups = rng.integers(0, n_groups, size=n)
    kw = dict(groups=groups, center=center, n_boot=50, seed=3, chunk_size=chunk)
    full = sim.across_instances(lat, max_matrix=10_000, **kw)
    fast = sim.across_instances(lat, max_matrix=1, **kw)
    assert fast.matrices is None and full.matrices is not None
    np.testing.assert_allclose(fast.per_instance, full.per_instance, atol=1e-12)
    pd.testing.assert_frame_equal(fast.summary, full.summary, atol=1e-10)
    pd.testing.assert_frame_equal(fast.by_group, full.by_group, atol=1e-10)


def test_across_chunked_large_n_equals_direct():
    rng = np.random.default_rng(5)
    n, d = 3000, 10
    lat = (rng.normal(size=(n, 2, d)) + 1.0).astype(np.float32)
    groups = rng.integers(0, 4, size=n)
    res = sim.across_instances(lat, groups=groups, max_matrix=100, chunk_size=256, n_boot=20)
    assert res.matrices is None
    off = ~np.eye(n, dtype=bool)
    same = (groups[:, None] == groups[None, :]) & off
    for k in range(2):
        x = lat[:, k].astype(np.float64)
        ref = _ref_cosine(x, x)
        np.testing.assert_allclose(res.summary["mean_offdiag"][k], ref[off].mean(), atol=1e-12)
        np.testing.assert_allclose(res.by_group["within_group_mean"][k], ref[same].mean(), atol=1e-12)
        del ref


def test_across_errors():
    with pytest.raises(sim.TooFewSamplesError):
        sim.across_instances(_latents(0, n=1))
    with pytest.raises(sim.ShapeError, match="groups"):
        sim.across_instances(_latents(0, n=5), groups=[0, 1])
    with pytest.raises(sim.ShapeError, match="3-D"):
        sim.across_instances(np.ones((5, 8)))


# --------------------------------------------------------------------------- #
# Baselines and collapse table
# --------------------------------------------------------------------------- #
def test_random_matched_norm():
    lat = _latents(3).astype(np.float32)
    lat[0, 0] = 0.0
    rnd = sim.random_matched_norm(lat, seed=4, chunk_size=5)
    assert rnd.shape == lat.shape and rnd.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rnd, axis=-1), np.linalg.norm(lat, axis=-1), rtol=1e-5)
    assert np.all(rnd[0, 0] == 0.0)
    np.testing.assert_array_equal(rnd, sim.random_matched_norm(lat, seed=4, chunk_size=5))
    assert not np.array_equal(rnd, sim.random_matched_norm(lat, seed=5))
    # Directions are unrelated to the latents' shared offset.
    assert abs(sim.within_instance(rnd, n_boot=0).mean_offdiag) < 0.2


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


# --------------------------------------------------------------------------- #
# Linear CKA
# --------------------------------------------------------------------------- #
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(4, 40), d=st.integers(1, 30), debiased=st.booleans())
def test_cka_self_is_one(seed, n, d, debiased):
    x = np.random.default_rng(seed).normal(size=(n, d)) * 3.0 + 7.0
    assert sim.linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(6, 40),
    d1=st.integers(1, 12),
    d2=st.integers(1, 12),
    scale=st.floats(1e-3, 1e3),
    debiased=st.booleans(),
)
def test_cka_invariances(seed, n, d1, d2, scale, debiased):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    y = x[:, :1] @ rng.normal(size=(1, d2)) + rng.normal(size=(n, d2))
    base = sim.linear_cka(x, y, debiased=debiased)
    q = _random_orthogonal(d2, rng)
    assert sim.linear_cka(x, y @ q, debiased=debiased) == pytest.approx(base, abs=1e-9)
    assert sim.linear_cka(x * scale, y, debiased=debiased) == pytest.approx(base, abs=1e-9)
    assert sim.linear_cka(y, x, debiased=debiased) == pytest.approx(base, abs=1e-12)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(4, 30),
    d1=st.integers(1, 10),
    d2=st.integers(1, 10),
    debiased=st.booleans(),
    chunk=st.integers(1, 50),
)
def test_cka_matches_gram_reference(seed, n, d1, d2, debiased, chunk):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1)) + rng.normal(size=d1) * 3
    y = x[:, np.arange(d2) % d1] * 0.5 + rng.normal(size=(n, d2)) + 1.0
    ref = _ref_cka(x, y, debiased)
    got = sim.linear_cka(x, y, debiased=debiased, chunk_size=chunk)
    if np.isfinite(ref):
        assert got == pytest.approx(ref, abs=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_debiased_cka_of_independent_data_is_near_zero(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(50, 200))
    y = rng.normal(size=(50, 200))
    assert abs(sim.linear_cka(x, y, debiased=True)) < 0.1
    assert sim.linear_cka(x, y, debiased=False) > 0.3


def test_cka_chunked_equals_unchunked():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3000, 20)).astype(np.float32)
    y = (x[:, :5] @ rng.normal(size=(5, 7)) + rng.normal(size=(3000, 7))).astype(np.float32)
    for debiased in (True, False):
        a = sim.linear_cka(x, y, debiased=debiased, chunk_size=256)
        b = sim.linear_cka(x, y, debiased=debiased, chunk_size=10_000)
        assert a == pytest.approx(b, abs=1e-12)
    sub = slice(0, 300)
    assert sim.linear_cka(x[sub], y[sub], chunk_size=64) == pytest.approx(
        _ref_cka(x[sub].astype(float), y[sub].astype(float), True), abs=1e-9
    )


def test_cka_matrix_and_against():
    lat = _latents(9, n=30, k=3, d=6)
    lat[:, 2] = lat[:, 0] @ _random_orthogonal(6, np.random.default_rng(0)) * 2.0
    mat = sim.cka_matrix(lat, chunk_size=7)
    assert mat.shape == (3, 3)
    np.testing.assert_array_equal(mat, mat.T)
    np.testing.assert_array_equal(np.diag(mat), 1.0)
    assert mat[0, 2] == pytest.approx(1.0, abs=1e-9)
    assert mat[0, 1] == pytest.approx(sim.linear_cka(lat[:, 0], lat[:, 1]), abs=1e-12)
    feats = np.random.default_rng(1).normal(size=(30, 4))
    table = sim.cka_against(torch.tensor(lat), feats, debiased=False)
    assert table.columns.tolist() == ["step", "cka"] and table["step"].tolist() == [0, 1, 2]
    for k in range(3):
        assert table["cka"][k] == pytest.approx(
            sim.linear_cka(lat[:, k], feats, debiased=False), abs=1e-12
        )


def test_cka_errors():
    with pytest.raises(sim.ShapeError, match="same examples"):
        sim.linear_cka(np.ones((10, 3)), np.ones((11, 3)))
    with pytest.raises(sim.TooFewSamplesError, match="at least 4"):
        sim.linear_cka(np.eye(3), np.eye(3))
    assert sim.linear_cka(np.eye(3), np.eye(3), debiased=False) == pytest.approx(1.0)
    with pytest.raises(sim.ShapeError, match="3-D"):
        sim.cka_matrix(np.ones((10, 3)))
    with pytest.raises(sim.ShapeError, match="features"):
        sim.cka_against(_latents(0, n=10), np.ones((9, 3)))
    assert np.isnan(sim.linear_cka(np.ones((10, 3)), np.random.default_rng(0).normal(size=(10, 2))))


# --------------------------------------------------------------------------- #
# Effective rank and participation ratio
# --------------------------------------------------------------------------- #
@SETTINGS
@given(seed=st.integers(0, 10_000), k=st.integers(1, 8), extra=st.integers(0, 6), repeat=st.integers(1, 4))
def test_effective_rank_of_orthogonal_vectors(seed, k, extra, repeat):
    rng = np.random.default_rng(seed)
    d = k + extra
    q = _random_orthogonal(d, rng)[:k] * rng.uniform(0.1, 10.0)
    x = np.repeat(q, repeat, axis=0)  # repeat > 1 with n > d exercises the eigvalsh path
    assert sim.effective_rank(x, center=False, chunk_size=3) == pytest.approx(k, abs=1e-9)
    assert sim.participation_ratio(x, center=False) == pytest.approx(k, abs=1e-9)


def test_participation_ratio_isotropic_and_rank_paths():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(20_000, 10))
    assert sim.participation_ratio(x) > 9.5
    assert sim.effective_rank(x) > 9.8
    y = (rng.normal(size=(3000, 16)) * np.linspace(0.1, 3, 16)).astype(np.float32)
    s = np.linalg.svd(y.astype(np.float64) - y.astype(np.float64).mean(0), compute_uv=False)
    p = s / s.sum()
    assert sim.effective_rank(y, chunk_size=256) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-9)
    lam = s**2
    assert sim.participation_ratio(y, chunk_size=256) == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-9)
    assert sim.effective_rank(np.zeros((5, 3)), center=False) == 0.0
    with pytest.raises(sim.ShapeError, match="reshape"):
        sim.effective_rank(np.ones((4, 2, 3)))
