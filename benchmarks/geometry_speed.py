"""Chunked float32 geometry against numpy float32 one-shot computations: time and peak extra memory.

For float32 latents [n/k instances, k steps, d] it times each analysis, pinned to one BLAS thread
(threadpoolctl), next to the same statistic computed by numpy in one shot on the whole float32 array
(unit vectors, centring and Gram products materialised at full size), and measures the peak traced
allocation of both (tracemalloc; numpy reports its buffers to it) as a ratio to the input's size.
The largest difference between the two results is printed as a check.

Usage: python benchmarks/geometry_speed.py [--n 20000] [--d 3584] [--k 4] [--chunk 4096] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's latentprobe, not an installed one

from latentprobe.geometry import across_instances, effective_rank, linear_cka, within_instance


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_across(lat: np.ndarray, center: bool) -> np.ndarray:
    """Per-instance mean cosine to the other instances at each step, one shot."""
    if center:
        lat = lat - lat.reshape(-1, lat.shape[-1]).mean(axis=0)
    u = _unit(lat)
    total = u.sum(axis=0)
    return (np.einsum("ikd,kd->ik", u, total) - 1.0) / (len(u) - 1)


def np_within(lat: np.ndarray) -> np.ndarray:
    u = _unit(lat)
    return np.einsum("ikd,ild->ikl", u, u).mean(axis=0)


def np_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA in feature space (as latentprobe computes it), one shot."""
    n = len(x)
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    sx, sy = np.einsum("ij,ij->i", xc, xc).astype(np.float64), np.einsum("ij,ij->i", yc, yc).astype(np.float64)

    def hsic(frob2: float, sq_prod: float, a: float, b: float) -> float:
        return frob2 - n / (n - 2) * sq_prod + a * b / ((n - 1) * (n - 2))

    fxy = float(np.square(xc.T @ yc, dtype=np.float64).sum())
    fxx = float(np.square(xc.T @ xc, dtype=np.float64).sum())
    fyy = float(np.square(yc.T @ yc, dtype=np.float64).sum())
    hxy = hsic(fxy, float((sx * sy).sum()), sx.sum(), sy.sum())
    hxx = hsic(fxx, float((sx * sx).sum()), sx.sum(), sx.sum())
    hyy = hsic(fyy, float((sy * sy).sum()), sy.sum(), sy.sum())
    return hxy / np.sqrt(hxx * hyy)


def np_effective_rank(x: np.ndarray) -> float:
    xc = x - x.mean(axis=0)
    eig = np.clip(np.linalg.eigvalsh((xc.T @ xc).astype(np.float64)), 0.0, None)
    s = np.sqrt(eig)
    p = s[s > 0] / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def measure(fn) -> tuple[float, float, object]:
    """Wall time (s) of one call, then peak traced bytes of a second call, and the result."""
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    tracemalloc.start()
    fn()
    peak = float(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    return dt, peak, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="vectors in all (instances x steps)")
    ap.add_argument("--d", type=int, default=3584)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (n=2000, d=64), for a smoke test")
    a = ap.parse_args(argv)
    n, d, k = (2000, 64, 4) if a.quick else (a.n, a.d, a.k)
    rng = np.random.default_rng(0)
    lat = rng.standard_normal((n // k, k, d), dtype=np.float32)
    lat += 3.0 * rng.standard_normal(d, dtype=np.float32)  # a shared offset, as in hidden states
    flat = lat.reshape(-1, d)
    half = len(flat) // 2
    x, y = flat[:half], flat[half : 2 * half]
    size = lat.nbytes
    c = a.chunk

    cases = [
        ("across_instances raw", lambda: across_instances(lat, n_boot=0, max_matrix=0, chunk_size=c).per_instance,
         lambda: np_across(lat, False)),
        ("across_instances centred", lambda: across_instances(lat, center=True, n_boot=0, max_matrix=0, chunk_size=c).per_instance,
         lambda: np_across(lat, True)),
        ("within_instance", lambda: within_instance(lat, n_boot=0, chunk_size=c).step_matrix, lambda: np_within(lat)),
        ("linear_cka (debiased, halves)", lambda: linear_cka(x, y, chunk_size=c), lambda: np_cka(x, y)),
        ("effective_rank (centred)", lambda: effective_rank(flat, chunk_size=c), lambda: np_effective_rank(flat)),
    ]
    print(f"geometry speed: {len(flat)} vectors x d={d} float32 ({size / 2**20:.0f} MiB), k={k}, "
          f"chunk_size={c}, 1 BLAS thread")
    print("| analysis | latentprobe (s) | numpy one-shot (s) | time ratio | peak extra mem / input "
          "(latentprobe) | (numpy) | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    with threadpool_limits(limits=1):
        np_across(lat[:8], False)  # warm-up: first-call costs
        for name, ours, ref in cases:
            t1, m1, r1 = measure(ours)
            t2, m2, r2 = measure(ref)
            diff = float(np.max(np.abs(np.asarray(r1, dtype=np.float64) - np.asarray(r2, dtype=np.float64))))
            print(f"| {name} | {t1:.2f} | {t2:.2f} | {t1 / t2:.2f}x | {m1 / size:.2f}x | {m2 / size:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
