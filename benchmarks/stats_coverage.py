"""Coverage of latentprobe's intervals against known truths, next to the percentile bootstrap used before.

Paired 0/1 effects (accuracy changes) at n = 48 and 120: exact coverage by enumerating every table of
gained / lost answers with its multinomial probability (Tango's interval; the percentile bootstrap is
computed once per table with the library's seed). Scenarios: ``latentprobe.stats.coverage.BINARY_SCENARIOS``
(true effects 0, -0.02, -0.05, -0.3; answers turn right with probability 5%, 1% or 0% and wrong with
that plus the effect). Skewed continuous outcomes at n = 30 and 120: ``--reps`` simulated samples each
(``DISTRIBUTIONS``), intervals by the studentised bootstrap (the default), BCa and the percentile
bootstrap. Columns: coverage of the true value, its Monte Carlo standard error (0 for an enumeration),
mean width, share of zero-width intervals and, for 0/1 effects, the share of samples whose interval
excludes 0 while McNemar's exact p >= 0.05.

Usage: python benchmarks/stats_coverage.py [--reps 4000] [--n-boot 2000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's latentprobe, not an installed one

from latentprobe.stats.coverage import (  # noqa: E402
    BINARY_SCENARIOS, DISTRIBUTIONS, coverage_continuous, coverage_paired_binary,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4000, help="samples per continuous scenario")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--quick", action="store_true", help="200 samples, 500 resamples, n = 48 / 30 only")
    args = ap.parse_args()
    reps, n_boot = (200, 500) if args.quick else (args.reps, args.n_boot)
    ns_binary, ns_cont = ((48,), (30,)) if args.quick else ((48, 120), (30, 120))
    t0 = time.perf_counter()
    print("| scenario | n | method | truth | coverage | MC s.e. | mean width | zero-width share "
          "| excl. 0 with exact McNemar p >= 0.05 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, p_loss, p_gain in BINARY_SCENARIOS:
        for n in ns_binary:
            for method in ("tango", "percentile"):
                r = coverage_paired_binary(n, p_loss, p_gain, method=method, n_boot=n_boot, scenario=label)
                print(f"| {label} | {n} | {method} | {r.truth:+.3f} | {r.coverage:.4f} | {r.mc_se:.4f} "
                      f"| {r.mean_width:.4f} | {r.zero_width:.4f} | {r.excludes_zero_exact_p_above:.4f} |")
    for dist in DISTRIBUTIONS:
        for n in ns_cont:
            for method in ("studentized", "bca", "percentile"):
                r = coverage_continuous(dist, n, method=method, reps=reps, n_boot=n_boot)
                print(f"| {r.scenario} | {n} | {method} | {r.truth:+.3f} | {r.coverage:.4f} | {r.mc_se:.4f} "
                      f"| {r.mean_width:.4f} | {r.zero_width:.4f} | - |")
    print(f"\n({time.perf_counter() - t0:.0f} s; continuous: {reps} samples, n_boot={n_boot})")


if __name__ == "__main__":
    main()
