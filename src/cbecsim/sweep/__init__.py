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

from .._lazy import lazy_attributes

# Imported on first use, so that registering ``cbecsim sweep`` in the CLI parser does not
# load the engine, dask and zarr.
_WHERE = {
    "Design": "design", "build_design": "design",
    "SweepOutcome": "runner", "SweepPlan": "runner", "SweepTaskError": "runner", "plan_sweep": "runner",
    "run_sweep": "runner",
    "Factor": "spec", "LoadedSweep": "spec", "SweepSpec": "spec", "load_sweep_spec": "spec",
    "SUMMARY_VARIABLES": "store", "IncompleteSweepError": "store", "open_sweep": "store", "read_manifest": "store",
}


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())


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
