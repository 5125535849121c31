"""The cost of a shock analysis against one run: the counterfactual forked at the change.

``cbecsim shock`` simulates a scenario and its counterfactual on common random numbers;
the counterfactual is forked from the shocked world's state on the fork day
(:func:`cbecsim.api.run_pair`), so the days before it are simulated once. With the
change in the second half of the horizon the pair should cost at most 1.5 single runs
(issue 15). Measured here in one process, back to back, medians of ``--repeats`` runs:

* ``run``: :func:`cbecsim.run` of the shocked scenario, in memory (with ``--write``:
  written to a ``.nc`` file, as ``cbecsim shock`` writes its worlds);
* ``pair, forked``: :func:`cbecsim.api.run_pair` at the plan's fork day (with
  ``--write``: both worlds written to ``.nc`` files);
* ``pair, unforked``: the same pair with ``fork_day`` 0 (both worlds from day 0), the
  cost without forking.

The scenario is configs/eu_fixed_duty_2026.yaml and the change removed is ``--without``
(default ``duty_schedule.0``: the config's own US change of 2026-07-24, which has no
announcement, so the fork is its date, day 204 of 365, in the second half; ``eu_2026``
forks on 2026-04-02, where sellers first see the EUR 3 duty coming).

The days simulated are the floor of the ratio (1.44 runs with the default change); above
it are the fork's copy of the shared days' outputs into the counterfactual's own arrays
(fresh memory: on the 2-core development VM, first touching 200 MB took 0.2-0.5 s against
0.02 s to copy into memory already touched) and, with ``--write``, deflating the second
world's file, which a single run does not do.

Usage: python benchmarks/shock_fork.py [--replications 100] [--repeats 3] [--without duty_schedule.0] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cbecsim
from cbecsim.api import run_pair
from cbecsim.shock import plan_shock

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "eu_fixed_duty_2026.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--write", action="store_true", help="write each world to a .nc file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--without", default="duty_schedule.0")
    parser.add_argument("--resolution", default="week")
    args = parser.parse_args()
    scenario = cbecsim.load_scenario(CONFIG)
    plan = plan_shock(scenario, [args.without])
    kwargs = dict(replications=args.replications, seed=1, resolution=args.resolution, threads=1)
    cbecsim.run(plan.shocked, **{**kwargs, "replications": 1})  # compile and warm up

    def timed(function) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    folder = Path(tempfile.mkdtemp(prefix="cbecsim-shock-fork-"))
    files: dict = {}
    single_out: dict = {}
    if args.write:
        files = dict(out_shocked=folder / "shocked.nc", out_counterfactual=folder / "counterfactual.nc",
                     overwrite=True)
        single_out = dict(out=folder / "run.nc", overwrite=True)
    single = timed(lambda: cbecsim.run(plan.shocked, **single_out, **kwargs))
    forked = timed(lambda: run_pair(plan.shocked, plan.counterfactual, plan.fork_day, **files, **kwargs))
    unforked = timed(lambda: run_pair(plan.shocked, plan.counterfactual, 0, **files, **kwargs))
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    days = scenario.horizon.days
    where = "to .nc files" if args.write else "in memory"
    print(f"{scenario.name} without {args.without}: fork {plan.fork_date} (day {plan.fork_day} of {days}), "
          f"{args.replications} replications, {args.resolution} output {where}, 1 thread, median of {args.repeats}")
    print(f"  run (shocked world only)  {single:7.2f} s   1.00")
    print(f"  pair, forked              {forked:7.2f} s   {forked / single:.2f}  "
          f"(days simulated: {(2 * days - plan.fork_day) / days:.2f} runs)")
    print(f"  pair, unforked            {unforked:7.2f} s   {unforked / single:.2f}")
    print(f"forked / run = {forked / single:.2f} (target <= 1.5 with the change in the second half)")


if __name__ == "__main__":
    main()
