"""Policy library: dated customs regimes (duty, de minimis, VAT, fees) shipped as data.

Regimes live in ``cbecsim/policies/data/*.yaml``, one file per destination (US, EU, UK,
MX, BR), each holding named *regime sets* (``us_2025``, ``eu_2026``, ...). Every entry
names its primary source (executive order / Federal Register document, CBP CSMS message,
Official Journal reference, DOF / DOU text -- or why none was located), the secondary
sources it was read in, the day they were read (``checked``), a confidence grade (H, M, L
as in FACTS.md) and, where sourced, the day the rule was announced; unconfirmed figures
live only in sets whose status is ``example``. Exchange rates are monthly averages in
``data/fx_monthly.yaml`` (Federal Reserve G.5; ECB for RON), applied by the day of import.

Public API
----------
list_regime_sets() -> list[RegimeSetInfo]
load_regime_set(name) -> RegimeSet
read_regime_file(path) -> dict[str, RegimeSet]       (sets of your own, same format)
quote_duty(dest, origin, mode, value, currency, date, category=None, headings=1,
           regime_sets=None, items=1, ioss=True, postal_method=None) -> DutyQuote
to_duty_changes(set_names, regions, until=None, kinds=None) -> DutyChanges
                                                     (``changes, unsupported, gaps``)
monthly_usd_rates(currency) -> dict[date, float]     (USD per unit, first day of month)
usd_rate(currency, on) -> float                      (the month's average; sourced)
fx_coverage(currency), latest_usd_rates(), known_currencies()
PolicyError                                          (a ValueError)

How an entry is chosen
----------------------
An entry is in force on ``[from, to)``. Among the entries in force whose ``modes``
include the mode, an entry naming the origin beats ``origins: all``, then one naming the
category beats ``categories: all`` (``all`` is a fallback for what no entry names).
Entries of one set naming the same origin, mode and category must not overlap in dates.

Modes: ``parcel`` (direct B2C by courier/express, valued at the transaction price),
``postal`` (direct B2C by post, where US rules differ: the carrier elects one duty method
for all its parcels) and ``bulk`` (B2B import to an overseas warehouse at the declared
import value, never de minimis). A quote is for one parcel of ``items`` units in
``headings`` distinct tariff sub-headings; per-unit figures spread it over the units.

Importing the package uses only the standard library, PyYAML and pydantic (no numba), so
the CLI and config tooling stay light; :func:`quote_duty` loads the engine's threshold
rule (``cbecsim.kernels.rules.low_value_exempt``, numba) on first use, so both sides
decide "at or under the threshold" with the same function.
"""

from __future__ import annotations

from ._changes import KINDS, CoverageGap, DutyChanges, coverage_gaps, to_duty_changes
from ._fx import FxError, fx_coverage, latest_usd_rates, monthly_usd_rates, usd_rate, usd_rate_info
from ._library import (
    PolicyError,
    RegimeSetInfo,
    convert,
    destinations,
    known_currencies,
    list_regime_sets,
    load_regime_set,
    read_regime_file,
)
from ._quote import DutyQuote, QuoteLine, quote_duty
from ._schema import MODES, POSTAL_ELECTIONS, RegimeEntry, RegimeSet

__all__ = [
    "PolicyError",
    "RegimeSetInfo",
    "RegimeSet",
    "RegimeEntry",
    "DutyQuote",
    "QuoteLine",
    "DutyChanges",
    "CoverageGap",
    "KINDS",
    "coverage_gaps",
    "MODES",
    "POSTAL_ELECTIONS",
    "list_regime_sets",
    "load_regime_set",
    "read_regime_file",
    "quote_duty",
    "to_duty_changes",
    "convert",
    "destinations",
    "known_currencies",
    "monthly_usd_rates",
    "usd_rate",
    "usd_rate_info",
    "fx_coverage",
    "latest_usd_rates",
    "FxError",
]
