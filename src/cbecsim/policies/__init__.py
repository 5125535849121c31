"""Policy library: dated customs regimes (duty, de minimis, VAT, fees) shipped as data.

Regimes live in ``cbecsim/policies/data/*.yaml``, one file per destination (US, EU, UK,
MX, BR), each holding named *regime sets* (``us_2025``, ``eu_2026``, ...). Every entry
names its source (as in FACTS.md), the date its figures were checked and FACTS.md's
confidence grade; unconfirmed figures live only in sets whose status is ``example``.

Public API
----------
list_regime_sets() -> list[RegimeSetInfo]
load_regime_set(name) -> RegimeSet
read_regime_file(path) -> dict[str, RegimeSet]       (sets of your own, same format)
quote_duty(dest, origin, mode, value, currency, date, category=None, headings=1,
           regime_sets=None) -> DutyQuote
to_duty_changes(set_names, regions) -> DutyChanges   (``changes, unsupported``)
currency_rates() -> dict[str, float]                 (fixed USD per unit; assumptions)
PolicyError                                          (a ValueError)

How an entry is chosen
----------------------
An entry is in force on ``[from, to)``. Among the entries in force whose ``modes``
include the mode, an entry naming the origin beats ``origins: all``, then one naming the
category beats ``categories: all`` (``all`` is a fallback for what no entry names).
Entries of one set naming the same origin, mode and category must not overlap in dates.

Modes: ``parcel`` (direct B2C by courier/express, valued at the transaction price),
``postal`` (direct B2C by post, where US rules differ) and ``bulk`` (B2B import to an
overseas warehouse at the declared import value, never de minimis).

Only the standard library, PyYAML and pydantic are used (no numba), so the library can be
imported by the CLI and by config tooling without compiling kernels.
"""

from __future__ import annotations

from ._changes import DutyChanges, to_duty_changes
from ._library import (
    PolicyError,
    RegimeSetInfo,
    convert,
    currency_rates,
    destinations,
    list_regime_sets,
    load_regime_set,
    read_regime_file,
)
from ._quote import DutyQuote, QuoteLine, quote_duty
from ._schema import MODES, RegimeEntry, RegimeSet

__all__ = [
    "PolicyError",
    "RegimeSetInfo",
    "RegimeSet",
    "RegimeEntry",
    "DutyQuote",
    "QuoteLine",
    "DutyChanges",
    "MODES",
    "list_regime_sets",
    "load_regime_set",
    "read_regime_file",
    "quote_duty",
    "to_duty_changes",
    "currency_rates",
    "convert",
    "destinations",
]
