"""Accounting and model invariants on whole runs (and on random scenarios with Hypothesis)."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cbecsim

from helpers import short


def check_invariants(result: xr.Dataset) -> None:
    r = result.load()
    # Cash identity: cash_t = cash_0 + sum of revenue to t - sum of cash costs to t.
    revenue = r["revenue"].sum("market").cumsum("time")
    costs = r["costs"].cumsum("time")
    expected = r["initial_cash"] + revenue - costs
    np.testing.assert_allclose(r["cash"].values, expected.transpose(*r["cash"].dims).values, rtol=1e-9, atol=1e-6)
    # Stock never negative; counts non-negative.
    for name in ("stock", "units_sold", "lost_sales", "clicks", "shoppers"):
        assert (r[name].values >= 0).all(), name
    # Alive never returns to True after an exit; exit_day agrees with alive.
    alive = r["alive"].values.astype(int)
    assert (np.diff(alive, axis=1) <= 0).all()
    exited = ~np.isnat(r["exit_day"].values)
    np.testing.assert_array_equal(exited, ~r["alive"].isel(time=-1).values)
    # An exited seller trades no more after its exit period.
    after_exit = r["alive"].shift(time=1, fill_value=True) == False  # noqa: E712
    assert float(r["units_sold"].where(after_exit).sum()) == 0.0
    # Visibility is a share: within [0, 1] and the shares in a market sum to <= 1.
    visibility = r["visibility"].values
    assert (visibility >= 0).all() and (visibility <= 1 + 1e-6).all()
    assert (r["visibility"].sum("seller").values <= 1 + 1e-5).all()
    organic = r["organic_share"].values
    assert np.all(np.isnan(organic) | ((organic >= -1e-6) & (organic <= 1 + 1e-6)))
    # Markets a seller does not serve see no activity.
    assert float(r["units_sold"].where(~r["served"]).sum()) == 0.0
    assert float(r["ad_spend"].where(~r["served"]).sum()) == 0.0
    # Landed cost is positive wherever defined.
    landed = r["landed_cost"].values
    assert (landed[~np.isnan(landed)] > 0).all()


@pytest.mark.parametrize("config", ["baseline.yaml", "us_de_minimis_2025.yaml", "eu_fixed_duty_2026.yaml"])
def test_invariants_on_shipped_configs(config):
    result = cbecsim.run(short(config, days=150), replications=6, seed=5)
    check_invariants(result)
    assert result["alive"].values.any()


def test_lost_sales_only_when_out_of_stock():
    # A stock-out produces lost sales: start with 2 days of stock and a long lead time.
    scenario = short(days=40, **{
        "sellers.0.params.expected_daily_units": 1,
        "sellers.0.params.cover_days": 1,
        "fulfilment_modes.direct_parcel.lead_time_days": [20, 25],
    })
    result = cbecsim.run(scenario, replications=3, seed=2).load()
    lost = result["lost_sales"].values
    assert lost.sum() > 0
    # At daily resolution the stock recorded at the end of a day with lost sales is zero.
    assert (result["stock"].values[lost > 0] == 0).all()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**40),
    shoppers=st.floats(0, 60000),
    price_index=st.floats(0.3, 3.0),
    credit=st.floats(0, 50000),
    budget=st.floats(0, 500),
    resolution=st.sampled_from(["day", "week", "month"]),
)
def test_invariants_hold_on_random_scenarios(seed, shoppers, price_index, credit, budget, resolution):
    scenario = short(days=40, **{
        "markets.0.shoppers_per_day": shoppers,
        "sellers.0.params.price_index": price_index,
        "sellers.1.params.credit_line": credit,
        "sellers.2.params.daily_budget": budget,
    })
    check_invariants(cbecsim.run(scenario, replications=2, seed=seed, resolution=resolution))
