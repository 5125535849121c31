"""Fee library: dated, sourced marketplace and payment fees shipped as data.

Schedules live in ``cbecsim/fees/data/*.yaml``: ``amazon_us`` (USD), ``amazon_de``
(EUR), and own-site card processors ``stripe_us``, ``stripe_eea``, ``shopify_payments_us``.
A marketplace schedule has referral fees by fee category (tiers, how they apply, the
per-item minimum), fulfilment fees by size tier and price band, monthly storage per unit
of volume with its peak months, inbound placement and returns processing per unit, the
refund administration fee and the payment fee. Every entry is in force on ``[from, to)``
and names its sources (with the date each was read), the date it was checked and a
confidence grade (H/M/L as in FACTS.md); ``assumed`` entries say why no source backs them.

Public API
----------
list_fee_schedules() -> list[FeeScheduleInfo]
fee_schedule(name) -> FeeSchedule
read_fee_file(path) -> dict[str, FeeSchedule]        (schedules of your own, same format)
resolve_fees(schedule, category, on, size_tier=None, *, unit_volume=None) -> FeeTerms
quote_sale(schedule, category, price, on, size_tier=None, *, unit_volume=None) -> FeeQuote
check_coverage(schedule, category, start, end, size_tier=None)  (config validation: FeeError on a gap)
FeeError                                             (a ValueError; one-line messages)

The per-sale rules (tiered referral fee, refund administration, price-banded fulfilment
fee, payment fee) are numba functions in :mod:`cbecsim.kernels.fee_rules`, shared with
the kernels; they are imported (and compiled) only when a fee is computed, so listing and
showing schedules needs neither numba nor numpy.
"""

from __future__ import annotations

from ._library import (
    FeeError,
    FeeScheduleInfo,
    FeeTerms,
    check_coverage,
    fee_schedule,
    list_fee_schedules,
    parse_date,
    read_fee_file,
    resolve_fees,
)
from ._quote import FeeQuote, quote_sale
from ._schema import FeeSchedule

__all__ = [
    "FeeError",
    "FeeScheduleInfo",
    "FeeSchedule",
    "FeeTerms",
    "FeeQuote",
    "list_fee_schedules",
    "fee_schedule",
    "read_fee_file",
    "resolve_fees",
    "quote_sale",
    "parse_date",
    "check_coverage",
]
