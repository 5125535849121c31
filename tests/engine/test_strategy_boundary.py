"""Strategies see read-only observations and act only through their decisions: a write
to an observation, an impossible decision or an exception stops the run with a message
naming the population, the strategy, the day and the replication (exit 3 in the CLI)."""

import numpy as np
import pytest

import cbecsim
from cbecsim.errors import UserCodeError
from helpers import CONFIGS, cli, short


def _user(strategy: str, **params):
    return short(days=40, **{"sellers.0.strategy": f"user_strategies:{strategy}", "sellers.0.strategy_params": params})


def test_a_strategy_that_writes_to_its_view_is_stopped_with_its_name():
    with pytest.raises(UserCodeError) as caught:
        cbecsim.run(_user("WritesCash", day=7), replications=3, seed=1)
    error = caught.value
    assert error.strategy == "user_strategies:WritesCash" and error.day == 7
    text = str(error)
    assert "user_strategies:WritesCash" in text and "read-only" in text
    assert "price, bid, daily_budget" in text  # what the strategy may write instead


def test_the_cli_exits_3_and_writes_nothing(tmp_path):
    out = tmp_path / "r.nc"
    result = cli("run", str(CONFIGS / "baseline.yaml"), "-n", "2", "--out", str(out), "-q",
                 "--set", "horizon.end=2025-02-10", "--set", "sellers.0.strategy=user_strategies:WritesCash")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "user_strategies:WritesCash" in lines[0] and "day 7" in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_nan_price_names_the_replication_and_the_day():
    with pytest.raises(UserCodeError) as caught:
        cbecsim.run(_user("NanPrice", day=14, replication_in_batch=1), replications=3, seed=1, batch_size=3,
                    threads=1)
    error = caught.value
    assert error.day == 14 and error.replication == "1" and "price" in error.message and "nan" in error.message


def test_a_strategy_may_act_through_its_return_value():
    """No ads from day 0 through the return value: no clicks and no ad spend at all."""
    result = cbecsim.run(_user("ReturnsDecisions", cut_day=0), replications=2, seed=1, resolution="week")
    chosen = result.sel(seller=result.population == "user_strategies:ReturnsDecisions")
    first_review = 7  # the budgets before the first review are the config's
    assert (chosen["ad_spend"].isel(time=slice(first_review // 7 + 1, None)).values == 0).all()
    others = result.sel(seller=result.population != "user_strategies:ReturnsDecisions")
    assert float(others["ad_spend"].sum()) > 0


def test_the_views_observations_are_read_only_and_the_decisions_copies():
    seen = {}

    class Probe:
        def __init__(self, params):
            pass

        def initialise(self, view):
            pass

        def review(self, view):
            seen["cash_writeable"] = view.cash.flags.writeable
            seen["price_writeable"] = view.price.flags.writeable
            seen["price_shares_state"] = np.shares_memory(view.price, view.unit_cost)

    import user_strategies

    user_strategies.Probe = Probe
    try:
        cbecsim.run(_user("Probe"), replications=1, seed=1)
    finally:
        del user_strategies.Probe
    assert seen == {"cash_writeable": False, "price_writeable": True, "price_shares_state": False}
