"""Parameter sweeps: experiment designs run on a local pool or a Dask cluster, results
streamed region by region into one resumable Zarr store.

>>> from cbecsim.sweep import run_sweep, open_sweep
>>> run_sweep("configs/sweeps/us_duty_strategy_ads.yaml", "sweep.zarr", workers=2)  # doctest: +SKIP
>>> sweep = open_sweep("sweep.zarr")                                                 # doctest: +SKIP
>>> sweep["cm2"].sum(["time", "market"]).groupby("strategy").median()                # doctest: +SKIP

See :mod:`cbecsim.sweep.spec` (spec format), :mod:`cbecsim.sweep.design` (designs),
:mod:`cbecsim.sweep.store` (store layout, manifest, ``--summary-only`` contents) and
:mod:`cbecsim.sweep.executors` (where tasks run).
"""

from .design import Design, build_design
from .runner import SweepOutcome, SweepPlan, SweepTaskError, plan_sweep, run_sweep
from .spec import Factor, LoadedSweep, SweepSpec, load_sweep_spec
from .store import SUMMARY_VARIABLES, IncompleteSweepError, open_sweep, read_manifest

__all__ = [
    "run_sweep",
    "open_sweep",
    "plan_sweep",
    "load_sweep_spec",
    "build_design",
    "read_manifest",
    "Design",
    "Factor",
    "LoadedSweep",
    "SweepSpec",
    "SweepPlan",
    "SweepOutcome",
    "SweepTaskError",
    "IncompleteSweepError",
    "SUMMARY_VARIABLES",
]
