"""Dated exchange rates: monthly averages from ``data/fx_monthly.yaml`` (sourced there).

The file stores units of each currency per US dollar, one row per calendar month; this
module turns them into USD per unit and answers "what rate applies on day D": the
rate of D's month. A day after a currency's last published month takes that last month
(:func:`fx_coverage` says where the series ends, and quotes name the month used); a day
before the first month is refused.

Only the standard library and PyYAML are used, so the engine's default FX path and the
policy library read the same figures without importing numba.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import math
import re
from typing import NamedTuple

from .._yaml import load_shipped

__all__ = [
    "FX_FILE",
    "FxError",
    "FxRate",
    "known_currencies",
    "monthly_usd_rates",
    "usd_rate",
    "usd_rate_info",
    "fx_coverage",
    "latest_usd_rates",
]

#: The data file of monthly rates, among the files of ``policies/data``.
FX_FILE = "fx_monthly.yaml"

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class FxError(ValueError):
    """An exchange-rate question the data cannot answer (unknown currency, date too early)."""


class FxRate(NamedTuple):
    """A rate and the month it comes from.

    Attributes
    ----------
    usd_per_unit : float
        USD per one unit of the currency (1.0 for USD).
    month : datetime.date or None
        First day of the month whose average was used; None for USD.
    clamped : bool
        True when the day asked for is after the currency's last published month, so
        the last month was used instead.
    """

    usd_per_unit: float
    month: dt.date | None
    clamped: bool


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, dict[dt.date, float]]:
    """``{currency: {first day of month: USD per unit}}``, validated once."""
    resource = importlib.resources.files("cbecsim.policies").joinpath("data").joinpath(FX_FILE)
    data = load_shipped(resource.read_text(encoding="utf-8"))
    rows = data.get("units_per_usd") if isinstance(data, dict) else None
    if not isinstance(rows, dict) or not rows:
        raise FxError(f"{FX_FILE}: expected a mapping 'units_per_usd' of months to rates")
    table: dict[str, dict[dt.date, float]] = {}
    for key, rates in rows.items():
        match = _MONTH.match(str(key))
        if not match or not isinstance(rates, dict):
            raise FxError(f"{FX_FILE}: bad row {key!r} (expected 'YYYY-MM: {{CUR: units per USD}}')")
        month = dt.date(int(match.group(1)), int(match.group(2)), 1)
        for code, units in rates.items():
            units = float(units)
            if not (units > 0 and math.isfinite(units)):
                raise FxError(f"{FX_FILE}: {key} {code}: rate must be positive, got {units!r}")
            table.setdefault(str(code), {})[month] = 1.0 / units
    for code, series in table.items():
        months = sorted(series)
        # A gap would silently reuse an older month: refuse it.
        for earlier, later in zip(months, months[1:]):
            if (later.year * 12 + later.month) - (earlier.year * 12 + earlier.month) != 1:
                raise FxError(f"{FX_FILE}: {code} has a gap between {earlier:%Y-%m} and {later:%Y-%m}")
        table[code] = dict(sorted(series.items()))
    return table


def known_currencies() -> list[str]:
    """ISO codes with a rate (USD included)."""
    return sorted({"USD", *_table()})


def _series(currency: str) -> dict[dt.date, float]:
    code = str(currency).strip().upper()
    table = _table()
    if code not in table:
        raise FxError(f"unknown currency {currency!r}; known: {', '.join(known_currencies())} ({FX_FILE})")
    return table[code]


def monthly_usd_rates(currency: str) -> dict[dt.date, float]:
    """The monthly series of ``currency``: first day of month -> USD per unit.

    USD returns ``{}`` (its rate is 1 on every day). Raises :class:`FxError` for an
    unknown currency.
    """
    if str(currency).strip().upper() == "USD":
        return {}
    return dict(_series(currency))


def fx_coverage(currency: str) -> tuple[dt.date, dt.date] | None:
    """(first month, last month) of ``currency``'s series; None for USD."""
    series = monthly_usd_rates(currency)
    if not series:
        return None
    months = list(series)
    return months[0], months[-1]


def usd_rate_info(currency: str, on: dt.date) -> FxRate:
    """USD per unit of ``currency`` on day ``on``, with the month used (see :class:`FxRate`)."""
    if str(currency).strip().upper() == "USD":
        return FxRate(1.0, None, False)
    series = _series(currency)
    month = dt.date(on.year, on.month, 1)
    first, last = next(iter(series)), next(reversed(series))
    if month < first:
        raise FxError(
            f"no {currency} rate for {on}: the monthly series starts {first:%Y-%m} ({FX_FILE})"
        )
    if month > last:
        return FxRate(series[last], last, True)
    return FxRate(series[month], month, False)


def usd_rate(currency: str, on: dt.date) -> float:
    """USD per one unit of ``currency`` on day ``on`` (the month's average rate).

    Days after the series' last month use the last month; days before its first month
    raise :class:`FxError`.
    """
    return usd_rate_info(currency, on).usd_per_unit


def latest_usd_rates() -> dict[str, float]:
    """USD per unit of every known currency at its latest published month (USD = 1)."""
    rates = {"USD": 1.0}
    for code, series in _table().items():
        rates[code] = next(reversed(series.values()))
    return rates
