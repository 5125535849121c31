"""Numba kernels: pure functions over arrays (no Python objects, validation or I/O).

Each kernel has a plain-Python twin in ``tests/twins.py`` that it must match.
"""

from . import layout, rng
from .fulfilment import close_day, order_quantity, receive_arrivals
from .market import clear_gsp_auction, listing_utility, market_day, purchase_probabilities
from .tariff import duty_per_unit, landed_cost_by_mode, landed_cost_per_unit, regime_duty

__all__ = [
    "layout",
    "rng",
    "market_day",
    "clear_gsp_auction",
    "listing_utility",
    "purchase_probabilities",
    "duty_per_unit",
    "regime_duty",
    "landed_cost_per_unit",
    "landed_cost_by_mode",
    "receive_arrivals",
    "close_day",
    "order_quantity",
]
