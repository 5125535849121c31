"""Behaviour the model must show, on seeded paired runs with enough replications.

Each comparison is paired by replication (common random numbers) and asserted through a
paired t statistic, so the effect is many standard errors from zero, not noise.
"""

import numpy as np

import cbecsim
from helpers import short

REPLICATIONS = 24


def paired_t(a: np.ndarray, b: np.ndarray) -> float:
    """t statistic of mean(a - b) over replications."""
    difference = np.asarray(a, float) - np.asarray(b, float)
    return difference.mean() / (difference.std(ddof=1) / np.sqrt(difference.size))


def test_duty_increase_lowers_median_cm2_of_parcel_sellers():
    base = short(days=120)
    shocked = cbecsim.load_scenario(base, {
        "duty_schedule.0.set.de_minimis": False,          # parcels become dutiable
        "duty_schedule.1.set.ad_valorem_rate": 0.55,      # US charging: 25% -> 55%
    })
    results = [cbecsim.run(s, replications=REPLICATIONS, seed=7, resolution="month") for s in (base, shocked)]
    medians = []
    for result in results:
        parcel = result.where(result.strategy == "traffic_first", drop=True)
        medians.append(parcel["cm2"].sum(["time", "market"]).median("seller").values)
    assert np.median(medians[1]) < np.median(medians[0])
    assert paired_t(medians[1], medians[0]) < -5


def test_cutting_the_ad_budget_lowers_visibility_over_the_following_weeks():
    # The same sellers keep their ads, or stop advertising from day 28 on.
    def scenario(cut_day):
        return short(days=84, **{
            "sellers.0.strategy": "user_strategies:FixedPrice",
            "sellers.0.strategy_params": {"cut_day": cut_day},
            "sellers.0.params.daily_budget": 150,
            "sellers.0.params.bid": 2.5,
        })

    keep = cbecsim.run(scenario(None), replications=REPLICATIONS, seed=9, resolution="week")
    cut = cbecsim.run(scenario(28), replications=REPLICATIONS, seed=9, resolution="week")

    def mean_visibility(result, weeks):
        chosen = result.sel(market="US/charging").isel(time=weeks)
        return (
            chosen["visibility"]
            .where(chosen.population == "user_strategies:FixedPrice")
            .mean(["time", "seller"])
            .values
        )

    before = slice(0, 4)
    after = slice(6, 12)
    np.testing.assert_array_equal(mean_visibility(keep, before), mean_visibility(cut, before))
    assert paired_t(mean_visibility(cut, after), mean_visibility(keep, after)) < -5

    # Organic visibility decays too: the flywheel, not only the lost sponsored slots.
    def organic_units(result):
        chosen = result.sel(market="US/charging").isel(time=after)
        units = chosen["units_sold"] * chosen["organic_share"].fillna(0)
        return units.where(chosen.population == "user_strategies:FixedPrice").sum(["time", "seller"]).values

    assert paired_t(organic_units(cut), organic_units(keep)) < -3


def test_a_stock_out_produces_lost_sales():
    # Over the first 20 days (before a 25-30 day replenishment can arrive), sellers who
    # start with ~2 days of stock run out and lose sales; sellers with months of stock do not.
    common = {"fulfilment_modes.direct_parcel.lead_time_days": [25, 30]}
    plenty = short(days=20, **common, **{"sellers.0.params.expected_daily_units": 100})
    scarce = short(
        days=20,
        **common,
        **{
            "sellers.0.params.expected_daily_units": 2,
            "sellers.0.params.cover_days": 0,
            "sellers.0.params.safety_days": 0,
        },
    )
    lost = []
    for scenario in (plenty, scarce):
        result = cbecsim.run(scenario, replications=REPLICATIONS, seed=4, resolution="month")
        chosen = result.where(result.strategy == "traffic_first", drop=True)
        lost.append(chosen["lost_sales"].sum(["time", "market", "seller"]).values)
    assert (lost[0] == 0).all()
    assert (lost[1] > 0).all()
    assert paired_t(lost[1], lost[0]) > 5
