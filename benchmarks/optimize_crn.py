"""Common random numbers in ``cbecsim optimize``: the same regret for fewer simulated days.

A selection problem of the kind the optimiser solves at every step: K candidate lever
settings (the diversified population's ``cm_share``, the contribution-capped share of
ads), two policy futures (configs/optimize/traffic_first_us_truce.yaml: the Geneva truce
holds / ends), robust score = worst case over futures of the pooled CM2 margin. The
estimator picks the candidate with the best estimated score from n replications per
candidate and future; its *regret* is the true score of the true best minus the true
score of the pick (true scores from REFERENCE separate replications).

* common random numbers (what optimize does): every candidate uses the same replication
  indices, so replication r of two candidates shares its shoppers, lead times and
  parameter draws;
* independent streams: each candidate uses its own, disjoint replication indices.

All values come from one simulated pool per candidate and future (replications
0 .. POOL-1, evaluated with :func:`cbecsim.optimize.evaluate.evaluate_candidate`, the
optimiser's own evaluation); each of MACRO macro-repetitions draws, for CRN, one random
set of n indices shared by all candidates, and for independent streams K disjoint sets.
Cost = n x K x futures x seller-market-days per replication. The script reports the mean
regret against n for both, then the ratio of the cost independent streams need to reach
the regret CRN reaches at n = N0, measured in this one run (target >= 3).

Usage: python benchmarks/optimize_crn.py [--candidates 6] [--n0 3] [--max-n 24]
       [--reference 200] [--macro 4000] [--days 180] [--sellers 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
FUTURES = ROOT / "configs" / "optimize" / "traffic_first_us_truce.yaml"


def simulate(args) -> tuple[np.ndarray, np.ndarray, int, list[float]]:
    """Per-replication outcome (K, F, POOL) and reference true means (K, F); smd per replication."""
    import cbecsim
    from cbecsim.config import read_scenario_file
    from cbecsim.optimize.evaluate import evaluate_candidate

    base = read_scenario_file(ROOT / "configs" / "us_de_minimis_2025.yaml")
    start = cbecsim.load_scenario(base).horizon.start
    settings = {"horizon.end": (start + dt.timedelta(days=args.days - 1)).isoformat(),
                **{f"sellers.{i}.count": args.sellers for i in range(3)}}
    from cbecsim.config import apply_overrides

    base = apply_overrides(base, settings)
    futures = yaml.safe_load(FUTURES.read_text())["futures"]
    names = list(futures)
    levels = list(np.linspace(0.1, 0.9, args.candidates))
    pool = args.candidates * args.max_n
    values = np.empty((len(levels), len(names), pool + args.reference))
    smd_per_replication = 0
    for k, level in enumerate(levels):
        result = evaluate_candidate({
            "base": base, "overrides": {"sellers.2.strategy_params.cm_share": float(level)},
            "futures": [[n, futures[n].get("set", {})] for n in names], "focal": 2, "outcomes": ["cm2_margin"],
            "seed": 20250101, "first": 0, "count": pool + args.reference, "resolution": "month",
            "batch_size": None, "threads": 1, "tag": f"candidate{k}"})
        if "error" in result:
            raise SystemExit(result["error"])
        for f, name in enumerate(names):
            values[k, f] = result["values"]["cm2_margin"][name]
        smd_per_replication = result["seller_market_days"] // ((pool + args.reference) * len(names))
    return values[:, :, :pool], values[:, :, pool:].mean(axis=2), smd_per_replication, levels


def regret_curve(sample: np.ndarray, true_scores: np.ndarray, n: int, crn: bool, macro: int,
                 rng: np.random.Generator) -> float:
    """Mean regret of picking argmax of the estimated worst-case score from n replications."""
    K, F, pool = sample.shape
    best = true_scores.max()
    regrets = np.empty(macro)
    for m in range(macro):
        if crn:
            index = np.broadcast_to(rng.choice(pool, n, replace=False), (K, n))
        else:
            index = rng.permutation(pool)[:K * n].reshape(K, n)
        means = np.take_along_axis(sample, np.repeat(index[:, None, :], F, axis=1), axis=2).mean(axis=2)
        estimated = means.min(axis=1)  # worst case over futures
        regrets[m] = best - true_scores[int(np.argmax(estimated))]
    return float(regrets.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--n0", type=int, default=3, help="replications per candidate for CRN's target regret")
    parser.add_argument("--max-n", type=int, default=24, help="largest n tried for independent streams")
    parser.add_argument("--reference", type=int, default=200, help="replications for the true scores")
    parser.add_argument("--macro", type=int, default=4000, help="macro-repetitions of the selection")
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--sellers", type=int, default=4, help="sellers per population")
    args = parser.parse_args()

    started = time.perf_counter()
    sample, reference, smd, levels = simulate(args)
    simulated = time.perf_counter() - started
    true_scores = reference.min(axis=1)
    print(f"candidates cm_share = {', '.join(f'{v:.2f}' for v in levels)}; true worst-case CM2 margin "
          f"{', '.join(f'{v:.4f}' for v in true_scores)} (from {args.reference} reference replications)")
    print(f"{sample.shape[2] + args.reference} replications x {len(levels)} candidates x 2 futures simulated in "
          f"{simulated:.1f} s; {smd:,} seller-market-days per replication and future")
    rng = np.random.default_rng(17)
    target = regret_curve(sample, true_scores, args.n0, True, args.macro, rng)
    print(f"\n{'n':>4} {'CRN regret':>12} {'independent regret':>20}")
    reached = None
    curve = {}
    for n in sorted({1, 2, args.n0, *range(2, args.max_n + 1, 2)}):
        crn = regret_curve(sample, true_scores, n, True, args.macro, rng) if n <= args.max_n else float("nan")
        independent = regret_curve(sample, true_scores, n, False, args.macro, rng)
        curve[n] = (crn, independent)
        print(f"{n:>4} {crn:>12.5f} {independent:>20.5f}")
        if reached is None and independent <= target:
            reached = n
    cost = lambda n: n * len(levels) * 2 * smd  # noqa: E731
    print(f"\nCRN at n = {args.n0}: mean regret {target:.5f} for {cost(args.n0):,} seller-market-days")
    if reached is None:
        print(f"independent streams do not reach it by n = {args.max_n} ({cost(args.max_n):,} seller-market-days): "
              f"ratio > {args.max_n / args.n0:.1f}")
        ratio = args.max_n / args.n0
    else:
        ratio = reached / args.n0
        print(f"independent streams reach it at n = {reached}: {cost(reached):,} seller-market-days")
        print(f"ratio (independent / CRN seller-market-days for the same regret): {ratio:.1f}")
    print("target >= 3: " + ("met" if ratio >= 3 else "NOT met"))


if __name__ == "__main__":
    main()
