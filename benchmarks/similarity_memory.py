"""Bounded-memory similarity: peak extra memory of the chunked analyses relative to the input size.

Prints, for a latent set of n vectors of width d (float32), the peak resident-memory growth of
chunked linear CKA, effective rank and across-instance similarity, as a ratio to the input's size.

Usage: python benchmarks/similarity_memory.py [--n 100000] [--d 3584] [--k 4]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's latentprobe, not an installed one

from latentprobe.geometry import across_instances, effective_rank, linear_cka


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=3584)
    ap.add_argument("--k", type=int, default=4)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    lat = rng.standard_normal((a.n // a.k, a.k, a.d), dtype=np.float32)
    size_mb = lat.nbytes / 2**20
    base = rss_mb()
    t = time.perf_counter()
    flat = lat.reshape(-1, a.d)
    cka = linear_cka(flat[: len(flat) // 2], flat[len(flat) // 2:], chunk_size=2048)
    er = effective_rank(flat, chunk_size=2048)
    acr = across_instances(lat, n_boot=0, chunk_size=2048)
    dt = time.perf_counter() - t
    peak = rss_mb() - base
    print(f"n={a.n} vectors x d={a.d}: input {size_mb:.0f} MB, peak extra {peak:.0f} MB "
          f"({peak / size_mb:.2f}x input), {dt:.1f} s; cka={cka:.4f} eff_rank={er:.1f} "
          f"mean_offdiag(step0)={acr.summary['mean_offdiag'].iloc[0]:.4f}")


if __name__ == "__main__":
    main()
