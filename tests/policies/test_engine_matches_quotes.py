"""The engine charges what ``cbecsim policies duty`` quotes (issue 14).

For every regime set of the policy library, one run at day resolution over the set's
span with one seller per origin x fulfilment kind (courier parcel, postal under each
carrier election, bulk). On the day before, of and after every change date the duty the
*run* charged is compared with :func:`cbecsim.policies.quote_duty`:

* parcel and postal: the run's ``duty_paid / units_sold`` of that day (the ledger), and
  its entry and broker fees as ``landed_cost - unit cost - freight - duty`` (the day's
  landed cost of a unit shipped from origin);
* bulk: the landed cost per unit of new stock the run showed the seller's strategy that
  day (``view.landed_cost_by_mode``, computed by the kernel that charges arrivals) less
  unit cost and freight.

Each market is priced in the currency of its set's amounts, so that neither side converts
money and the comparison is exact up to rounding. The ``monthly`` cases run with
``fx_path: monthly`` and compare in USD: the quote converts the parcel's USD value and the
set's EUR amounts at the month's average rate, the engine prices and regimes at the same
rates, across month boundaries (2026-07-01's day before is in June).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import cbecsim
from cbecsim.policies import PolicyError, quote_duty, to_duty_changes, usd_rate
from user_strategies import RecordsCosts

UNIT_COST = 6.0
PARCEL_FREIGHT, POSTAL_FREIGHT, BULK_FREIGHT = 4.5, 2.5, 0.6
ELECTIONS = ("ad_valorem", "specific", "cheapest_per_parcel")

# (destination, sets, currency of the market, VAT, categories, origins, first day, last day, price, FX path)
CASES = [
    ("US", ["us_2025", "us_2026"], "USD", 0.0, ["charging", "audio", "batteries"],
     ["CN", "HK", "VN", "IN", "MX", "XT", "DE"], "2025-01-01", "2026-07-23", 25.0, "fixed"),
    ("EU", ["eu_2025", "eu_2026"], "EUR", 0.213, ["charging"], ["CN", "DE"], "2025-01-01", "2026-12-31", 30.0,
     "fixed"),
    # EUR 60 a unit with VAT (EUR 49.46 net): parcels of one and two units, both under EUR 150.
    ("EU", ["eu_2025", "eu_2026"], "EUR", 0.213, ["charging"], ["CN"], "2025-01-01", "2026-12-31", 60.0,
     "monthly"),
    ("UK", None, "GBP", 0.20, ["charging"], ["CN"], "2025-01-01", "2026-06-30", 30.0, "fixed"),
    ("UK", None, "GBP", 0.20, ["charging"], ["CN"], "2025-01-01", "2026-06-30", 30.0, "monthly"),
    ("MX", None, "USD", 0.16, ["charging"], ["CN", "US"], "2025-01-01", "2025-12-31", 40.0, "fixed"),
    # Brazil's first value band only (USD 30 < USD 50): the engine has no value bands beyond
    # it, which to_duty_changes reports as not emitted.
    ("BR", None, "USD", 0.0, ["charging"], ["CN"], "2024-07-15", "2025-06-30", 30.0, "fixed"),
]


def _scenario(dest, sets, currency, vat, categories, origins, first, last, price, fx, return_rate=0.0):
    # No returns by default: a parcel return gets drawback, and duty_paid is net of it
    # (tested on its own below).
    markets = [
        {"region": dest, "category": c, "currency": currency, "shoppers_per_day": 20000, "reference_price": price,
         "vat_rate": vat, "sponsored_slots": 2, "click_through": [0.1, 0.05], "return_rate": return_rate}
        for c in categories
    ]
    modes = {
        "parcel": {"kind": "parcel", "freight_per_unit": PARCEL_FREIGHT, "delivery_days": 7,
                   "lead_time_days": [3, 3]},
        "postal": {"kind": "postal", "freight_per_unit": POSTAL_FREIGHT, "delivery_days": 14,
                   "lead_time_days": [3, 3]},
        "bulk": {"kind": "bulk", "freight_per_unit": BULK_FREIGHT, "delivery_days": 2, "lead_time_days": [30, 30],
                 "schedule_fees": False},
    }
    params = {"initial_cash": 1e9, "credit_line": 0, "fixed_cost_per_day": 0, "unit_cost": UNIT_COST,
              "price_index": 1.0, "daily_budget": 0.0, "bid": 0.0, "expected_daily_units": 200,
              "cover_days": 60, "safety_days": 30}
    sellers = []
    for origin in origins:
        sellers.append({"name": f"{origin}-parcel", "strategy": "user_strategies:FixedPrice", "count": 1,
                        "origin": origin, "markets": [m["region"] + "/" + m["category"] for m in markets],
                        "fulfilment": "parcel", "params": params})
        for election in ELECTIONS:
            sellers.append({"name": f"{origin}-postal-{election}", "strategy": "user_strategies:FixedPrice",
                            "count": 1, "origin": origin, "postal_duty_method": election,
                            "markets": [m["region"] + "/" + m["category"] for m in markets],
                            "fulfilment": "postal", "params": params})
        sellers.append({"name": f"{origin}-bulk", "strategy": "user_strategies:RecordsCosts", "count": 1,
                        "origin": origin, "markets": [m["region"] + "/" + m["category"] for m in markets],
                        "fulfilment": "bulk", "review_days": 1, "strategy_params": {"key": f"{dest}-{origin}"},
                        "params": params})
    policy = sets if sets is not None else sorted(
        {info.name for info in cbecsim.policies.list_regime_sets()
         if info.destination == dest and info.status == "default"})
    config = {
        "name": f"duty-{dest}", "horizon": {"start": first, "end": last}, "seed": 1, "replications": 1,
        "markets": markets, "fulfilment_modes": modes, "policy": policy, "duty_schedule": [], "sellers": sellers,
    }
    if fx == "monthly":
        config["fx_path"] = "monthly"
        for market in markets:  # two units a parcel: the threshold is on the parcel's value
            market["basket"] = [{"units": 2, "headings": 1, "share": 0.5}, {"units": 1, "headings": 1, "share": 0.5}]
    else:
        config["currency_rates"] = {"USD": 1.0} if currency == "USD" else {"USD": 1.0, currency: 1.25}
    return config


def _check_days(dest, sets, first, last):
    changes, _ = to_duty_changes(sets, [dest])
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    days = set()
    for change in changes:
        day = dt.date.fromisoformat(change["date"])
        for d in (day - dt.timedelta(days=1), day, day + dt.timedelta(days=1)):
            if start <= d <= end:
                days.add(d)
    return sorted(days)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[-1]}" for c in CASES])
def test_engine_duty_from_a_run_matches_the_quote(case):
    dest, sets, currency, vat, categories, origins, first, last, price, fx = case
    config = _scenario(*case)
    sets = config["policy"]
    result = cbecsim.run(config, resolution="day")
    net_price = price / (1.0 + vat)
    start = dt.date.fromisoformat(first)
    compared = {"parcel": 0, "postal": 0, "bulk": 0}
    mismatches = []
    for day in _check_days(dest, sets, first, last):
        t = (day - start).days
        # USD per unit of the market's currency that day
        rate = usd_rate(currency, day) if fx == "monthly" else config["currency_rates"][currency]
        for m, category in enumerate(categories):
            for s, seller in enumerate(config["sellers"]):
                origin, kind = seller["origin"], seller["fulfilment"]
                election = seller.get("postal_duty_method")
                # The parcels a unit ships in: the monthly cases' basket holds parcels of 2 and 1 units.
                parcels = (2, 1) if fx == "monthly" and kind != "bulk" else (1,)
                if kind == "bulk":
                    value, quote_currency = UNIT_COST, "USD"
                elif fx == "monthly":
                    value, quote_currency = net_price * rate, "USD"
                else:
                    value, quote_currency = net_price, currency
                try:
                    quotes = [quote_duty(dest, origin, kind, units * value, quote_currency, day, category=category,
                                         regime_sets=sets, items=units, headings=1,
                                         postal_method=election if kind == "postal" else None)
                              for units in parcels]
                except PolicyError:
                    continue  # no entry for this origin and kind: the library emits no change either
                # Per unit over the basket: the parcels' sums over their units (shares 1/2, 1/2).
                quoted_units = sum(q.items for q in quotes)
                quoted_duty = sum(q.duty for q in quotes) / quoted_units
                quoted_fees = sum(line.amount for q in quotes for line in q.breakdown if line.kind == "fee") \
                    / quoted_units
                # The quote's money is in quote_currency; the engine's in USD.
                to_quote = 1.0 if quote_currency == "USD" else 1.0 / rate
                if kind == "bulk":
                    landed = RecordsCosts.records[f"{dest}-{origin}"][t][0, 0, m, 2]
                    engine_duty, engine_fees = landed - UNIT_COST - BULK_FREIGHT, 0.0
                    quoted_fees = 0.0
                else:
                    cell = result.isel(replication=0, time=t, seller=s, market=m)
                    units = int(cell["units_sold"])
                    if units == 0:
                        continue
                    engine_duty = float(cell["duty_paid"]) / units * to_quote
                    freight = PARCEL_FREIGHT if kind == "parcel" else POSTAL_FREIGHT
                    engine_fees = (float(cell["landed_cost"]) - UNIT_COST - freight) * to_quote - engine_duty
                compared[kind] += 1
                if not (np.isclose(engine_duty, quoted_duty, rtol=1e-9, atol=1e-9)
                        and np.isclose(engine_fees, quoted_fees, rtol=1e-9, atol=1e-9)):
                    mismatches.append((str(day), category, seller["name"], engine_duty, quoted_duty, engine_fees,
                                       quoted_fees, quotes[0].rule))
    assert mismatches == [], mismatches[:10]
    # Every kind the library has entries for was compared on some day (MX has no postal entries).
    kinds = {mode for name in sets for entry in cbecsim.policies.load_regime_set(name).entries for mode in entry.modes}
    assert kinds and all(compared[kind] > 0 for kind in kinds), (compared, kinds)


def test_parcel_returns_get_the_drawback_the_library_sources():
    # us_2026 from 2026-02-24 (Section 122 10% on CN chargers + Section 301 25% + fentanyl
    # 10%...): drawback 99% of the duty on goods exported (CSMS 67844987; 19 U.S.C. 1313).
    # A parcel return is shipped back to the origin, so the run's net duty on a day is
    # duty x (units sold - 0.99 x parcel returns).
    case = ("US", ["us_2026"], "USD", 0.0, ["charging"], ["CN"], "2026-02-17", "2026-03-08", 25.0, "fixed")
    config = _scenario(*case, return_rate=0.2)
    config["sellers"] = [s for s in config["sellers"] if s["fulfilment"] == "parcel"]
    result = cbecsim.run(config, resolution="day").isel(replication=0, seller=0, market=0)
    start = dt.date(2026, 2, 17)
    checked = with_returns = 0
    for t in range(result.sizes["time"]):
        day = start + dt.timedelta(days=t)
        quote = quote_duty("US", "CN", "parcel", 25.0, "USD", day, category="charging", regime_sets=["us_2026"])
        drawback = 0.99 if day >= dt.date(2026, 2, 24) else 0.0
        units, returns = int(result["units_sold"][t]), int(result["returns"][t])
        assert float(result["duty_paid"][t]) == pytest.approx(quote.duty * (units - drawback * returns), rel=1e-12)
        checked += 1
        with_returns += drawback > 0 and returns > 0 and quote.duty > 0
    assert checked == 20 and with_returns >= 5
