"""cbecsim: Monte Carlo policy-shock simulation of cross-border e-commerce sellers.

Quick start::

    import cbecsim
    scenario = cbecsim.load_scenario("configs/us_de_minimis_2025.yaml", ["replications=50"])
    result = cbecsim.run(scenario, seed=1, resolution="week")
    result["cm2"].sum(["time", "market"]).groupby("strategy").median()
"""

__version__ = "0.1.0"

from ._lazy import lazy_attributes

# Public names, imported on first use: the command line (``cbecsim --help``, ``validate``,
# ``policies``) then starts without loading numba and xarray.
_WHERE = {
    "run": "api",
    "shock": "shock",
    "ShockResult": "shock",
    "estimate_output_bytes": "api",
    "ConfigError": "config",
    "Scenario": "config",
    "load_scenario": "config",
    "VARIABLES": "results",
    "OutputError": "results",
    "open_results": "results",
    "SellerView": "strategies",
    "Strategy": "strategies",
    "optimize": "optimize",
    "OptimizeResult": "optimize",
}


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())


__all__ = [
    "__version__",
    "load_scenario",
    "run",
    "shock",
    "ShockResult",
    "open_results",
    "estimate_output_bytes",
    "Scenario",
    "Strategy",
    "SellerView",
    "ConfigError",
    "OutputError",
    "VARIABLES",
    "optimize",
    "OptimizeResult",
]
