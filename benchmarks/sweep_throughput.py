"""Throughput of ``cbecsim sweep`` next to a single ``cbecsim.run`` of the same work.

A Latin-hypercube sweep of POINTS points x REPLICATIONS replications over the reference
config (configs/baseline.yaml: 3 markets x 60 sellers, 100 seller-markets served) --
factors: the US duty on CN chargers (0-145%) and the US/charging reserve price per click
(USD 0.05-0.50), which change neither dims nor the seller-market-days simulated --
run on WORKERS local worker processes (one numba thread each), written to a Zarr store.
Next to it, in the same process and on the same machine, ``cbecsim.run`` of the base
scenario with POINTS x REPLICATIONS replications and ``threads=WORKERS`` (the same
threads budget), streamed to a Zarr store. Both at the same resolution and horizon.

Prints seller-market-days per second of each (wall time, numba cache warm, worker
start-up included for the sweep), their ratio (target >= 0.80), and the peak RSS of each
sweep worker process (its high-water mark, reported by the worker after each task;
bounded by one task's rectangle, not by the sweep). ``--memory-check`` runs a sweep of
POINTS / 10 points too, to show the per-worker peak does not grow with the sweep.

Usage: python benchmarks/sweep_throughput.py [--points 200] [--replications 100]
       [--days 365] [--resolution month] [--workers 2] [--memory-check]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "baseline.yaml"


def _spec(folder: Path, points: int, replications: int, days: int | None, resolution: str) -> Path:
    import cbecsim

    base = cbecsim.load_scenario(CONFIG)
    settings = {}
    if days is not None:
        settings["horizon.end"] = (base.horizon.start + dt.timedelta(days=days - 1)).isoformat()
    spec = {
        "name": "throughput",
        "base": str(CONFIG),
        "set": settings,
        "factors": [
            {"name": "us_charging_duty", "path": "duty_schedule.1.set.ad_valorem_rate", "min": 0.0, "max": 1.45},
            {"name": "us_charging_reserve_cpc", "path": "markets.US/charging.reserve_price", "min": 0.05,
             "max": 0.5},
        ],
        "design": "lhs",
        "points": points,
        "replications": replications,
        "seed": 1,
        "resolution": resolution,
    }
    path = folder / f"spec_{points}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _sweep(spec: Path, out: Path, workers: int):
    from cbecsim.sweep import plan_sweep, run_sweep

    plan = plan_sweep(spec)
    started = time.perf_counter()
    outcome = run_sweep(spec, out, workers=workers)
    return plan, outcome, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--days", type=int, default=None, help="shorten the horizon (default: the config's 365)")
    parser.add_argument("--resolution", choices=["day", "week", "month"], default="month")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory-check", action="store_true", help="also run POINTS/10 points, compare peak RSS")
    args = parser.parse_args()

    import cbecsim
    from cbecsim.compile import compile_scenario

    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as tmp:
        folder = Path(tmp)
        spec = _spec(folder, args.points, args.replications, args.days, args.resolution)
        from cbecsim.sweep import load_sweep_spec

        base = load_sweep_spec(spec).base
        compiled = compile_scenario(base, args.resolution)
        per_replication = compiled.n_days * int(compiled.seller_served.sum())
        total_reps = args.points * args.replications
        work = per_replication * total_reps
        print(f"reference config {CONFIG.name}: {compiled.n_markets} markets x {compiled.n_sellers} sellers x "
              f"{compiled.n_days} days ({int(compiled.seller_served.sum())} seller-markets), {args.resolution} "
              f"output; cores: {os.cpu_count()}; workers/threads: {args.workers}")
        print(f"work: {args.points} points x {args.replications} replications = {total_reps:,} replications = "
              f"{work:,} seller-market-days on each side")
        cbecsim.run(base, replications=1, seed=1, resolution=args.resolution)  # numba cache load / compile

        plan, outcome, sweep_seconds = _sweep(spec, folder / "sweep.zarr", args.workers)
        sweep_rate = outcome.seller_market_days / sweep_seconds
        assert outcome.seller_market_days == work, (outcome.seller_market_days, work)
        print(f"cbecsim sweep, {args.workers} worker processes: {sweep_rate / 1e6:7.2f} M seller-market-days/s "
              f"({sweep_seconds:.1f} s; {plan.n_tasks} tasks of {plan.points_per_task} point(s) x "
              f"{plan.replications_per_task} replications)")

        started = time.perf_counter()
        cbecsim.run(base, replications=total_reps, seed=1, threads=args.workers, resolution=args.resolution,
                    out=folder / "run.zarr")
        run_seconds = time.perf_counter() - started
        run_rate = work / run_seconds
        print(f"cbecsim.run, threads={args.workers}:          {run_rate / 1e6:7.2f} M seller-market-days/s "
              f"({run_seconds:.1f} s, streamed to Zarr)")
        print(f"ratio sweep / single run: {sweep_rate / run_rate:.2f} (target >= 0.80)")
        peaks = sorted(outcome.peak_rss_mib.values())
        print(f"peak RSS per sweep worker: {', '.join(f'{p:.0f}' for p in peaks)} MiB "
              f"({len(peaks)} workers; task budget {plan.points_per_task} x {plan.replications_per_task} "
              f"replications)")
        if args.memory_check:
            small = _spec(folder, max(1, args.points // 10), args.replications, args.days, args.resolution)
            small_plan, small_outcome, _ = _sweep(small, folder / "small.zarr", args.workers)
            small_peaks = sorted(small_outcome.peak_rss_mib.values())
            print(f"peak RSS per worker, {max(1, args.points // 10)}-point sweep: "
                  f"{', '.join(f'{p:.0f}' for p in small_peaks)} MiB (tasks of {small_plan.points_per_task} x "
                  f"{small_plan.replications_per_task})")


if __name__ == "__main__":
    main()
