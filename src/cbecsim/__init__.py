"""cbecsim: Monte Carlo policy-shock simulation of cross-border e-commerce sellers.

Quick start::

    import cbecsim
    scenario = cbecsim.load_scenario("configs/us_de_minimis_2025.yaml", ["replications=50"])
    result = cbecsim.run(scenario, seed=1, resolution="week")
    result["cm2"].sum(["time", "market"]).groupby("strategy").median()
"""

__version__ = "0.1.0"

from .api import estimate_output_bytes, run  # noqa: E402
from .config import ConfigError, Scenario, load_scenario  # noqa: E402
from .results import VARIABLES, OutputError, open_results  # noqa: E402
from .strategies import SellerView, Strategy  # noqa: E402

__all__ = [
    "__version__",
    "load_scenario",
    "run",
    "open_results",
    "estimate_output_bytes",
    "Scenario",
    "Strategy",
    "SellerView",
    "ConfigError",
    "OutputError",
    "VARIABLES",
]
