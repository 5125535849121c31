"""Throughput, start-up and memory of ``cbecsim run``, as ratios measured in one run.

Prints:

1. **bench_core against a hand-written loop of the same work** (configs/bench_core.yaml:
   3 markets x 20 sellers, 4 slots, one auction round, layers off; benchmarks/hand_loop.py):
   the loop's seller-market-days per second on one thread, ``cbecsim run`` of the config
   as a whole new process (start-up, compile-cache load, strategies, SimPy, writing
   nothing) on one thread, and their ratio (issue 12 target: >= 0.7);
2. **the full baseline** (configs/baseline.yaml: 3 markets x 60 sellers, every layer on)
   on one thread at month and day output: nanoseconds per seller-market-day (the
   markets each seller serves) of ``cbecsim.run`` in process; with ``--baseline-python``
   (the Python of an older checkout's venv) the same measurement of that version in the
   same run, and the ratio of the two;
3. **scaling**: two threads against one, month and day;
4. **start-up**: ``cbecsim run -n 1`` in a new process with the numba cache warm, and
   with an empty cache (cold compile), the compile taken as the difference;
5. **memory and files**: peak RSS of ``cbecsim run --out x.zarr`` and ``--out x.nc`` at
   two replication counts past the automatic batch size (month output), per replication
   and their ratio (flat = the same), and the .nc file size per replication (and the
   older version's with ``--baseline-python``);
6. **model layers** (issue 7): every layer on against every layer off, per
   seller-market-day.

Usage: python benchmarks/throughput.py [--quick] [--baseline-python PATH] [--only SECTION ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "configs" / "baseline.yaml"
BENCH_CORE = ROOT / "configs" / "bench_core.yaml"
SECTIONS = ("core", "baseline", "threads", "startup", "memory", "layers")


def served(config: Path) -> int:
    import cbecsim
    from cbecsim.compile import compile_scenario

    return int(compile_scenario(cbecsim.load_scenario(config)).seller_served.sum())


# --------------------------------------------------------------------------------------
# 1. bench_core against the hand loop
# --------------------------------------------------------------------------------------

def hand_loop_rate(reps: int) -> float:
    """Seller-market-days per second of benchmarks/hand_loop.py on bench_core, 1 thread."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cbecsim
    from cbecsim.compile import compile_scenario
    from hand_loop import hand_loop, hand_loop_inputs

    compiled = compile_scenario(cbecsim.load_scenario(BENCH_CORE), "month")
    inputs = hand_loop_inputs(compiled)
    hand_loop(1, 30, **inputs)  # compile or load from cache
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        hand_loop(reps, compiled.n_days, **inputs)
        best = min(best, time.perf_counter() - started)
    return reps * compiled.n_days * int(compiled.seller_served.sum()) / best


def process_rate(config: Path, reps: int, threads: int = 1, python: str = sys.executable,
                 resolution: str = "month") -> tuple[float, float]:
    """(seller-market-days per second, seconds) of ``cbecsim run`` as a new process."""
    command = [python, "-m", "cbecsim.cli", "run", str(config), "-n", str(reps), "--threads", str(threads),
               "--resolution", resolution, "-q"]
    subprocess.run(command[:6] + ["1"] + command[7:], check=True, capture_output=True)  # cache warm
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    days = 365
    return reps * days * served(config) / best, best


# --------------------------------------------------------------------------------------
# 2-3. The full baseline in process
# --------------------------------------------------------------------------------------

_IN_PROCESS = """
import sys, time, cbecsim
from cbecsim.compile import compile_scenario
config, reps, threads, resolution = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
scenario = cbecsim.load_scenario(config)
served = int(compile_scenario(scenario).seller_served.sum())
kwargs = dict(seed=1, resolution=resolution)
if threads:
    kwargs["threads"] = threads
cbecsim.run(scenario, replications=2, **kwargs)
best = float("inf")
for _ in range(3):
    started = time.perf_counter()
    cbecsim.run(scenario, replications=reps, **kwargs)
    best = min(best, time.perf_counter() - started)
print(best / (reps * scenario.horizon.days * served) * 1e9)
"""


def in_process_ns(config: Path, reps: int, threads: int, resolution: str, python: str = sys.executable) -> float:
    """Nanoseconds per seller-market-day of ``cbecsim.run`` (best of 3), in a child process."""
    result = subprocess.run([python, "-c", _IN_PROCESS, str(config), str(reps), str(threads), resolution],
                            check=True, capture_output=True, text=True, cwd=ROOT)
    return float(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# 4. Start-up
# --------------------------------------------------------------------------------------

def start_seconds(cache_dir: str | None = None) -> float:
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cbecsim.cli", "run", str(BASELINE), "-n", "1", "-q"], check=True,
                   env=env, capture_output=True)
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------
# 5. Memory and files
# --------------------------------------------------------------------------------------

def _high_water_mark_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory(reps: int, out: Path, python: str = sys.executable) -> tuple[float, float, int]:
    """Peak RSS [MiB], wall time [s] and output size [bytes] of ``cbecsim run --out``, month."""
    started = time.perf_counter()
    child = subprocess.Popen([python, "-m", "cbecsim.cli", "run", str(BASELINE), "-n", str(reps), "--resolution",
                              "month", "--out", str(out), "--overwrite", "--quiet"], cwd=ROOT)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _high_water_mark_kib(child.pid) or 0)
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"cbecsim run -n {reps} --out {out} failed with status {child.returncode}")
    size = sum(p.stat().st_size for p in out.rglob("*")) if out.is_dir() else out.stat().st_size
    return peak / 1024, elapsed, size


# --------------------------------------------------------------------------------------
# 6. Model layers (issue 7)
# --------------------------------------------------------------------------------------

_MARKETS = ("US/charging", "US/audio", "EU/charging")
LAYERS_OFF = {f"markets.{m}.{field}": 0 for m in _MARKETS for field in (
    "return_rate", "repeat_purchase_rate", "customer_lapse_rate", "incidents_per_year", "rating_memory_units")}
LAYERS_ON = {
    **{f"markets.{m}.fx_volatility": 0.005 for m in _MARKETS},
    **{f"markets.{m}.repeat_purchase_rate": 0.001 for m in _MARKETS},
    **{f"sellers.{i}.{field}": value for i in range(3) for field, value in (
        ("localisation", 0.5), ("dtc_share", 0.3), ("compliance_investment", 0.5), ("ad_guardrail", "cm2_ltv"))},
}
NO_EXITS = {f"sellers.{i}.params.credit_line": 1e12 for i in range(3)}


def layer_costs(reps: int, rounds: int = 5) -> tuple[float, float, float]:
    """Best-of-``rounds`` seconds per million live listing-days with the layers off and on
    (exits off, so both simulate the same listings; 1 thread, month) and the median of
    the on / off ratios of back-to-back pairs in alternating order."""
    import cbecsim

    variants = {"off": {**LAYERS_OFF, **NO_EXITS}, "on": {**LAYERS_ON, **NO_EXITS}}
    scenarios = {key: cbecsim.load_scenario(BASELINE, overrides) for key, overrides in variants.items()}
    for scenario in scenarios.values():
        cbecsim.run(scenario, replications=2, seed=1, threads=1, resolution="month")
    per_million: dict[str, list[float]] = {key: [] for key in scenarios}
    for round_ in range(rounds):
        for key in (("off", "on") if round_ % 2 == 0 else ("on", "off")):
            started = time.perf_counter()
            result = cbecsim.run(scenarios[key], replications=reps, seed=1, threads=1, resolution="month")
            per_million[key].append((time.perf_counter() - started) / float(result["listed_days"].sum()) * 1e6)
    ratio = statistics.median(b / a for a, b in zip(per_million["off"], per_million["on"]))
    return min(per_million["off"]), min(per_million["on"]), ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer replications")
    parser.add_argument("--baseline-python", metavar="PATH",
                        help="the python of an older cbecsim checkout's venv, measured in the same run")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args()
    only = set(args.only or SECTIONS)
    quick = args.quick
    print(f"cores: {os.cpu_count()}; python {sys.version.split()[0]}")

    if "core" in only:
        reps_hand, reps_run = (200, 2000) if quick else (400, 10000)
        hand = hand_loop_rate(reps_hand)
        rate, seconds = process_rate(BENCH_CORE, reps_run)
        print(f"[core] hand-written loop, bench_core, 1 thread: {hand / 1e6:6.2f} M seller-market-days/s "
              f"({1e9 / hand:.0f} ns each)")
        print(f"[core] cbecsim run configs/bench_core.yaml -n {reps_run} --threads 1, whole process: "
              f"{rate / 1e6:6.2f} M/s ({1e9 / rate:.0f} ns each, {seconds:.1f} s); ratio to the hand loop "
              f"{rate / hand:.2f} (target >= 0.7)")

    if "baseline" in only:
        reps = 64 if quick else 256
        for resolution in ("month", "day"):
            ns = in_process_ns(BASELINE, reps, 1, resolution)
            line = (f"[baseline] cbecsim.run configs/baseline.yaml, {reps} replications, 1 thread, {resolution}: "
                    f"{ns:5.0f} ns per seller-market-day")
            if args.baseline_python:
                old = in_process_ns(BASELINE, reps, 1, resolution, args.baseline_python)
                line += f"; older version {old:5.0f} ns; speed-up {old / ns:.2f}x"
            print(line)

    if "threads" in only:
        reps = 64 if quick else 256
        for resolution in ("month", "day"):
            one = in_process_ns(BASELINE, reps, 1, resolution)
            two = in_process_ns(BASELINE, reps, 2, resolution)
            print(f"[threads] baseline, {resolution}: 1 thread {one:.0f} ns, 2 threads {two:.0f} ns per "
                  f"seller-market-day (wall); speed-up {one / two:.2f}x (target >= 1.7)")

    if "startup" in only:
        start_seconds()  # cache warm
        warm = min(start_seconds() for _ in range(3))
        with tempfile.TemporaryDirectory() as cache:
            cold = start_seconds(cache)
        print(f"[startup] cbecsim run configs/baseline.yaml -n 1, new process: warm cache {warm:.2f} s "
              f"(target < 2), empty cache {cold:.2f} s, so compiling takes {cold - warm:.1f} s (target < 25)")

    if "memory" in only:
        # Both counts past the automatic batch size (at most 512 a thread), so a streamed run
        # keeps the same buffers at both and any growth is per replication.
        sizes = (1024, 2048) if quick else (1024, 10240)
        with tempfile.TemporaryDirectory() as tmp:
            for suffix in (".zarr", ".nc"):
                figures = [peak_memory(n, Path(tmp) / f"run{n}{suffix}") for n in sizes]
                (p0, _, s0), (p1, t1, s1) = figures
                print(f"[memory] cbecsim run --out x{suffix} (month): peak RSS {p0:.0f} MiB at {sizes[0]}, "
                      f"{p1:.0f} MiB at {sizes[1]} replications: {(p1 - p0) / (sizes[1] - sizes[0]) * 1024:.1f} KiB "
                      f"per replication, ratio {p1 / p0:.2f}; output {s1 / sizes[1] / 1024:.0f} KiB per replication")
                if args.baseline_python:
                    old = peak_memory(sizes[0], Path(tmp) / f"old{sizes[0]}{suffix}", args.baseline_python)
                    old1 = peak_memory(sizes[1], Path(tmp) / f"old{sizes[1]}{suffix}", args.baseline_python)
                    per_old = (old1[0] - old[0]) / (sizes[1] - sizes[0]) * 1024
                    per_new = (p1 - p0) / (sizes[1] - sizes[0]) * 1024
                    print(f"[memory] older version, x{suffix}: {per_old:.1f} KiB memory and "
                          f"{old1[2] / sizes[1] / 1024:.0f} KiB output per replication; ratios new / old: memory "
                          f"{per_new / per_old:.2f}, output {(s1 / sizes[1]) / (old1[2] / sizes[1]):.2f}")
                for leftover in Path(tmp).iterdir():
                    shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()

    if "layers" in only:
        off, on, ratio = layer_costs(32 if quick else 64)
        print(f"[layers] every layer off {off:.3f} s, on {on:.3f} s per million live listing-days (1 thread, month, "
              f"exits off); on / off = {ratio:.2f}")


if __name__ == "__main__":
    main()
