"""Same seed, same bits: across batch sizes, thread counts; common random numbers."""

import numba
import numpy as np
import pytest
import xarray as xr

import cbecsim
from helpers import short


def _data(dataset: xr.Dataset) -> xr.Dataset:
    return dataset.drop_attrs()


#: Every model layer and lever of issue 7 switched on (FX paths included).
LAYERS_ON = {
    "markets.EU/charging.fx_volatility": 0.01,
    "markets.US/charging.incidents_per_year": 12.0,
    "markets.US/charging.repeat_purchase_rate": 0.01,
    "sellers.0.localisation": 0.5,
    "sellers.0.ad_guardrail": "cm2_ltv",
    "sellers.0.compliance_investment": 0.5,
    "sellers.1.dtc_share": 0.5,
    "sellers.1.ad_guardrail": "roas",
    "sellers.1.strategy": "staged_roadmap",
    "sellers.2.market_selection": "fit",
    "sellers.2.max_top_market_share": 0.6,
    "sellers.2.localisation": 0.3,
    "sellers.2.dtc_share": 0.2,
}


@pytest.fixture(scope="module", params=["foundation", "layers_on"])
def scenario(request):
    return short(days=45, **(LAYERS_ON if request.param == "layers_on" else {}))


@pytest.fixture(scope="module")
def reference(scenario):
    return cbecsim.run(scenario, replications=9, seed=11, batch_size=9, threads=1)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_bit_identical_for_any_batch_size(scenario, reference, batch_size):
    other = cbecsim.run(scenario, replications=9, seed=11, batch_size=batch_size, threads=1)
    xr.testing.assert_identical(_data(reference), _data(other))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 cores for 2 numba threads")
def test_bit_identical_for_any_thread_count(scenario, reference):
    other = cbecsim.run(scenario, replications=9, seed=11, batch_size=4, threads=2)
    xr.testing.assert_identical(_data(reference), _data(other))


def test_replication_is_independent_of_the_run_size(scenario, reference):
    # Replications 0..3 of a 4-replication run are replications 0..3 of a 9-replication run.
    small = cbecsim.run(scenario, replications=4, seed=11)
    xr.testing.assert_identical(_data(small), _data(reference.isel(replication=slice(0, 4))))


def test_another_seed_gives_other_numbers(scenario, reference):
    other = cbecsim.run(scenario, replications=9, seed=12, batch_size=9)
    assert not np.array_equal(other["shoppers"].values, reference["shoppers"].values)
    assert not np.array_equal(other["revenue"].values, reference["revenue"].values)


def test_common_random_numbers_across_duty_rates(scenario, reference):
    # Only the US charging duty rate differs: every replication sees the same shoppers.
    higher = cbecsim.load_scenario(scenario, {"duty_schedule.1.set.ad_valorem_rate": 0.6,
                                              "duty_schedule.0.set.de_minimis": False})
    other = cbecsim.run(higher, replications=9, seed=11)
    np.testing.assert_array_equal(other["shoppers"].values, reference["shoppers"].values)
    assert not np.array_equal(other["duty_paid"].values, reference["duty_paid"].values)
