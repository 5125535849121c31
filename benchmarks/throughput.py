"""Throughput and memory of a full ``cbecsim run`` against a hand-written numba baseline.

Prints, for the reference config (configs/baseline.yaml: 3 markets x 60 sellers x 365
days; seller-market-days count the markets each seller serves):

* seller-market-days per second of the whole run (SimPy calendar, strategies, recorder,
  Dataset building), numba cache warm, compile time reported apart;
* the same figure for a minimal hand-written numba loop of the day-step (arrivals,
  choice, sales, accounting and flywheel in one loop, no auction, strategies or
  recording) measured in the same process, and the ratio of the two;
* scaling with two threads;
* peak resident memory of ``cbecsim run --out x.zarr`` for 1,000 and 10,000
  replications (separate processes; ``--replications-large`` to change), month resolution;
* the wall time of a second ``cbecsim run`` start (numba cache warm);
* the cost per seller-market-day with every model layer of issue 7 on (returns, ratings,
  customers and retention, DTC, compliance incidents, FX paths, capability costs, the
  CM2/LTV guardrail) against every layer off, measured alternately in the same process,
  and their ratio (target: <= 1.5), for the same live listings in both (exits off: the
  layers' cost of computation) and for the calibrated population (where the layers'
  costs also close sellers, so the per-market work is spread over fewer listings).

Usage: python benchmarks/throughput.py [--quick] [--layers-only]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit

from cbecsim.kernels import rng

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "baseline.yaml"


@njit(cache=True)
def _hand_loop(n_reps, n_days, served, shoppers, utility, organic, floor, stock0, out):
    """The day-step as one tight loop: the baseline the engine is compared with.

    Same arithmetic as the engine's market step without the auction, strategies, fees,
    replenishment process or recorder: Poisson arrivals, attention-weighted logit with an
    outside option, Poisson demand capped by stock, cash and the visibility flywheel,
    with the engine's own counter-based generator and samplers.
    """
    n_sellers, n_markets = served.shape
    total = 0.0
    stock = np.empty((n_sellers, n_markets), dtype=np.int64)
    visibility = np.zeros((n_sellers, n_markets))
    weight = np.empty(n_sellers)
    seed = np.uint64(1)
    for r in range(n_reps):
        stock[:, :] = stock0
        visibility[:, :] = 0.0
        cash = 0.0
        for d in range(n_days):
            for m in range(n_markets):
                arrivals = rng.poisson(shoppers[m], rng.stream_key(seed, rng.ARRIVALS, r, d, m, -1))
                score = 0.0
                for s in range(n_sellers):
                    if served[s, m]:
                        score += visibility[s, m] + floor
                denominator = 1.0
                for s in range(n_sellers):
                    if served[s, m]:
                        weight[s] = organic * (visibility[s, m] + floor) / score * math.exp(utility[s, m])
                        denominator += weight[s]
                for s in range(n_sellers):
                    if not served[s, m]:
                        continue
                    demanded = rng.poisson(arrivals * weight[s] / denominator,
                                           rng.stream_key(seed, rng.DEMAND, r, d, m, s))
                    sold = min(demanded, stock[s, m])
                    stock[s, m] -= sold
                    if stock[s, m] < 10:
                        stock[s, m] += 500
                    cash += sold * 3.0
                    visibility[s, m] += 0.1 * (sold - visibility[s, m])
                    out[d % out.shape[0], s, m] += sold
        total += cash
    return total


def hand_loop_rate(served: np.ndarray, shoppers: np.ndarray, reps: int) -> float:
    n_sellers, n_markets = served.shape
    utility = np.full((n_sellers, n_markets), -2.0)
    out = np.zeros((12, n_sellers, n_markets))
    _hand_loop(1, 2, served, shoppers, utility, 0.2, 0.2, 500, out)
    started = time.perf_counter()
    _hand_loop(reps, 365, served, shoppers, utility, 0.2, 0.2, 500, out)
    elapsed = time.perf_counter() - started
    return reps * 365 * served.sum() / elapsed


def engine_rate(reps: int, threads: int, resolution: str) -> tuple[float, float]:
    import cbecsim
    from cbecsim.compile import compile_scenario

    scenario = cbecsim.load_scenario(CONFIG)
    served = compile_scenario(scenario).seller_served.sum()
    started = time.perf_counter()
    cbecsim.run(scenario, replications=reps, seed=1, threads=threads, resolution=resolution)
    elapsed = time.perf_counter() - started
    return reps * 365 * served / elapsed, elapsed


#: Overrides that switch every layer off: no returns, repeat purchases, lapses, incidents,
#: rating dynamics or FX; levers at 0 (their defaults).
_MARKETS = ("US/charging", "US/audio", "EU/charging")
LAYERS_OFF = {f"markets.{m}.{field}": 0 for m in _MARKETS for field in (
    "return_rate", "repeat_purchase_rate", "customer_lapse_rate", "incidents_per_year", "rating_memory_units")}
#: Every layer on: the defaults (returns by category, retention, incidents, ratings) plus
#: every lever and FX paths.
LAYERS_ON = {
    **{f"markets.{m}.fx_volatility": 0.005 for m in _MARKETS},
    **{f"markets.{m}.repeat_purchase_rate": 0.001 for m in _MARKETS},
    **{f"sellers.{i}.{field}": value for i in range(3) for field, value in (
        ("localisation", 0.5), ("dtc_share", 0.3), ("compliance_investment", 0.5), ("ad_guardrail", "cm2_ltv"))},
}


#: Keeps every seller alive (an unreachable credit line), so layers on and off simulate the
#: same live listings: the layers' economics (capability costs, CAC) close more sellers,
#: and with fewer live listings the per-market work (arrivals, auction, Python events)
#: is spread over fewer seller-market-days, which a cost per seller-market-day would
#: charge to the layers.
NO_EXITS = {f"sellers.{i}.params.credit_line": 1e12 for i in range(3)}


def layer_costs(reps: int, rounds: int = 7) -> dict[str, tuple[float, float, float]]:
    """Per population (``"same listings"``: exits off; ``"calibrated"``: as configured):
    best-of-``rounds`` seconds per million seller-market-days with the layers off and on,
    and the median over rounds of the on / off ratio, each round timing off and on back
    to back, in alternating order (1 thread, month output), so a slow spell of a shared
    machine falls on both.

    Seller-market-days are those actually simulated: listed by a live seller
    (``listed_days``), counted the same way for every run.
    """
    import statistics

    import cbecsim

    variants = {
        ("same listings", "off"): {**LAYERS_OFF, **NO_EXITS}, ("same listings", "on"): {**LAYERS_ON, **NO_EXITS},
        ("calibrated", "off"): LAYERS_OFF, ("calibrated", "on"): LAYERS_ON,
    }
    scenarios = {key: cbecsim.load_scenario(CONFIG, overrides) for key, overrides in variants.items()}
    for scenario in scenarios.values():  # compile / warm every path first
        cbecsim.run(scenario, replications=2, seed=1, threads=1, resolution="month")
    per_million = {key: [] for key in scenarios}
    for round_ in range(rounds):
        # Alternate which of a pair runs first, so neither side always follows the other.
        order = list(scenarios) if round_ % 2 == 0 else [key for pair in zip(*[iter(scenarios)] * 2)
                                                           for key in reversed(pair)]
        for key in order:
            scenario = scenarios[key]
            started = time.perf_counter()
            result = cbecsim.run(scenario, replications=reps, seed=1, threads=1, resolution="month")
            elapsed = time.perf_counter() - started
            per_million[key].append(elapsed / float(result["listed_days"].sum()) * 1e6)
    figures = {}
    for population in ("same listings", "calibrated"):
        off, on = per_million[(population, "off")], per_million[(population, "on")]
        ratio = statistics.median(b / a for a, b in zip(off, on))
        figures[population] = (min(off), min(on), ratio)
    return figures


def _high_water_mark_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_of_run(reps: int, out_dir: Path) -> tuple[float, float]:
    """Peak RSS [MiB] and wall time [s] of ``cbecsim run`` streaming to Zarr, in a child.

    Reads the child's own high-water mark (VmHWM, reset at exec) while it runs: the
    rusage of a forked child would count the parent's memory at fork time.
    """
    out = out_dir / f"run{reps}.zarr"
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "cbecsim.cli", "run", str(CONFIG), "-n", str(reps), "--resolution", "month",
         "--out", str(out), "--overwrite", "--quiet"],
    )
    peak = 0
    while child.poll() is None:
        peak = max(peak, _high_water_mark_kib(child.pid) or 0)
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"cbecsim run -n {reps} failed with status {child.returncode}")
    return peak / 1024, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer replications, skip the 10,000 run")
    parser.add_argument("--layers-only", action="store_true", help="only the layers on / off comparison")
    args = parser.parse_args()
    numba.set_num_threads(1)
    for population, (off, on, ratio) in layer_costs(32 if args.quick else 64).items():
        print(f"model layers (issue 7), {population} population, 1 thread, month output: all off {off:.3f} s, "
              f"all on {on:.3f} s per million seller-market-days (best of 7); all on / all off = {ratio:.2f} "
              f"(median of 7 back-to-back pairs)")
    if args.layers_only:
        return
    import cbecsim
    from cbecsim.compile import compile_scenario

    reps = 64 if args.quick else 256
    scenario = cbecsim.load_scenario(CONFIG)
    compiled = compile_scenario(scenario)
    served = compiled.seller_served
    shoppers = compiled.market[:, 0].copy()
    print(f"reference config: {CONFIG.name}: {compiled.n_markets} markets x {compiled.n_sellers} sellers x "
          f"{compiled.n_days} days; {int(served.sum())} seller-markets served; cores: {os.cpu_count()}")

    started = time.perf_counter()
    cbecsim.run(scenario, replications=1, seed=1)  # compile or load from cache
    print(f"first run in this process (cache load or compile): {time.perf_counter() - started:.2f} s")

    numba.set_num_threads(1)
    baseline = hand_loop_rate(served, shoppers, reps)
    print(f"hand-written numba loop, 1 thread:          {baseline / 1e6:8.2f} M seller-market-days/s")
    for resolution in ("month", "day"):
        rate, elapsed = engine_rate(reps, 1, resolution)
        print(f"cbecsim run, 1 thread, {resolution:5s} output:      {rate / 1e6:8.2f} M seller-market-days/s "
              f"({elapsed:.2f} s for {reps} replications); ratio to hand loop {rate / baseline:.2f}")
    if numba.config.NUMBA_NUM_THREADS >= 2:
        one, _ = engine_rate(reps, 1, "month")
        two, _ = engine_rate(reps, 2, "month")
        print(f"cbecsim run, 2 threads, month output:       {two / 1e6:8.2f} M seller-market-days/s; "
              f"speed-up over 1 thread {two / one:.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cbecsim.cli", "validate", str(CONFIG)], check=True,
                       capture_output=True)
        print(f"second start (cbecsim validate, new process): {time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cbecsim.cli", "run", str(CONFIG), "-n", "1", "--quiet"], check=True)
        print(f"second `cbecsim run -n 1` (cache warm, new process): {time.perf_counter() - started:.2f} s")
        sizes = [200] if args.quick else [1000, 10000]
        peaks = []
        for n in sizes:
            peak, elapsed = peak_memory_of_run(n, Path(tmp))
            peaks.append(peak)
            print(f"peak RSS of `cbecsim run -n {n} --out x.zarr` (month): {peak:8.1f} MiB ({elapsed:.1f} s)")
        if len(peaks) == 2:
            print(f"peak memory ratio {sizes[1]} / {sizes[0]} replications: {peaks[1] / peaks[0]:.2f}")


if __name__ == "__main__":
    main()
