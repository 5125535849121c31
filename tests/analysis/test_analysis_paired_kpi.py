"""Paired differences under common random numbers, and the Table 4 KPI table both ways."""

import numpy as np
import pytest
from scipy import stats

from analysis_data import synthetic_result
from cbecsim import analysis as ca

R, T, S, M = 40, 4, 5, 2


def crn_pair(seed_b=11):
    """Two results whose replication r shares a shock z_r (common random numbers)."""
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 30, (R, 1, 1, 1))
    a = synthetic_result(replications=R, revenue=100 + shared + rng.normal(0, 3, (R, T, S, M)), name="shock")
    b = synthetic_result(replications=R, revenue=90 + shared + rng.normal(0, 3, (R, T, S, M)), name="base",
                         run_seed=seed_b)
    return a, b


def test_paired_difference_against_a_direct_computation():
    a, b = crn_pair()
    diff = ca.paired_difference(a, b, "revenue")
    x = a["revenue"].values.sum(axis=(1, 3))[:, :3].mean(1)  # alpha's mean horizon revenue per replication
    y = b["revenue"].values.sum(axis=(1, 3))[:, :3].mean(1)
    d = x - y
    alpha = diff.sel(strategy="alpha")
    np.testing.assert_allclose(alpha["difference"], d.mean())
    half = stats.t.ppf(0.975, R - 1) * d.std(ddof=1) / np.sqrt(R)
    np.testing.assert_allclose([alpha["difference_low"], alpha["difference_high"]], [d.mean() - half, d.mean() + half])
    np.testing.assert_allclose(alpha["var_paired"], d.var(ddof=1))
    np.testing.assert_allclose(alpha["var_unpaired"], x.var(ddof=1) + y.var(ddof=1))
    np.testing.assert_allclose(alpha["variance_ratio"], d.var(ddof=1) / (x.var(ddof=1) + y.var(ddof=1)))
    # The shared shock cancels: the paired variance is a small fraction of the unpaired one,
    # and the paired interval is much narrower than the unpaired one.
    assert float(alpha["variance_ratio"]) < 0.05
    paired_width = alpha["difference_high"] - alpha["difference_low"]
    assert paired_width < 0.25 * (alpha["unpaired_high"] - alpha["unpaired_low"])
    assert diff["difference"].attrs["units"] == "USD" and diff["variance_ratio"].attrs["units"] == "1"
    # 4 periods x 2 markets x 10 USD per cell
    assert abs(float(alpha["difference"]) - 80) < 3


def test_contrast_of_two_strategies_in_one_result():
    a, _ = crn_pair()
    diff = ca.paired_difference(a, None, "revenue", contrast=("alpha", "beta"))
    per_seller = a["revenue"].values.sum(axis=(1, 3))
    d = per_seller[:, :3].mean(1) - per_seller[:, 3:].mean(1)
    assert list(diff["strategy"].values) == ["alpha - beta"]
    np.testing.assert_allclose(diff["difference"].values, [d.mean()])
    with pytest.raises(ca.ResultError, match="no strategy gamma"):
        ca.paired_difference(a, None, "revenue", contrast=("alpha", "gamma"))


def test_results_that_cannot_be_paired_are_refused():
    a, b = crn_pair(seed_b=12)
    with pytest.raises(ca.ResultError, match=r"seeds differ \(11 vs 12\)"):
        ca.paired_difference(a, b, "revenue")
    ca.paired_difference(a, b, "revenue", require_same_seed=False)
    with pytest.raises(ca.ResultError, match="replication: 40 vs 20"):
        ca.paired_difference(a, a.isel(replication=slice(0, 20)), "revenue")
    with pytest.raises(ca.ResultError, match="different strategies"):
        ca.paired_difference(a, a.assign_coords(strategy=("seller", ["beta"] * S)), "revenue")


EXTRA = ("returns", "return_rate", "rating", "listing_interruptions", "repeat_purchase_rate", "ltv", "cac",
         "dtc_revenue", "top_market_share", "delivery_days")


def with_layer_variables(result):
    """The variables of the returns / compliance / retention / DTC layers, with values set by hand."""
    units = result["units_sold"].astype(float)
    sm = units.dims
    s = ("replication", "time", "seller")
    ones = np.ones(units.shape)
    return result.assign(
        returns=(sm, 0.1 * units.values),                       # return rate 10%
        return_rate=(sm, np.full(units.shape, 0.1)),
        rating=(s, np.full(units.shape[:3], 4.5)),
        listing_interruptions=(sm, np.where(np.arange(units.shape[3]) == 0, 1.0, 0.0) * ones),  # 1 per period
        repeat_purchase_rate=(sm, 0.3 * ones),
        ltv=(sm, 60.0 * ones),
        cac=(sm, 20.0 * ones),                                   # LTV/CAC = 3
        dtc_revenue=(sm, 5.0 * ones),
        top_market_share=(s, np.full(units.shape[:3], 0.4)),     # <= 50% for every seller
        delivery_days=(sm, 5.0 * ones),
    )


def kpi_values(table, strategy="alpha"):
    rows = table[table["strategy"] == strategy].set_index("kpi")
    return rows


def test_kpi_table_computes_every_kpi_when_the_variables_are_present():
    base = synthetic_result(replications=6, periods=4, margin=0.2)
    table = ca.kpi_table(with_layer_variables(base))
    rows = kpi_values(table)
    assert (rows["status"] == "ok").all(), rows["status"].to_dict()
    expected = {"cm2_margin": 0.2, "cm2_nonnegative_share": 1.0, "return_rate": 0.1, "return_rate_trend": 0.0,
                "listing_interruptions": 4.0, "top_market_share": 0.4, "top_market_share_le_50": 1.0,
                "delivery_days": 5.0, "repeat_purchase_rate": 0.3, "ltv_cac": 3.0, "organic_share": 0.5}
    for kpi, value in expected.items():
        assert rows.loc[kpi, "value"] == pytest.approx(value, abs=1e-9), kpi
    assert rows.loc["top_market_share", "source"] == "top_market_share, revenue"
    assert bool(rows.loc["top_market_share", "meets_target"]) is True
    assert bool(rows.loc["ltv_cac", "meets_target"]) is True
    assert set(table.columns) >= {"strategy", "stage", "kpi", "value", "ci_low", "ci_high", "units", "status"}
    assert sorted(table["stage"].unique()) == [1, 2, 3]


def test_kpi_table_says_not_modelled_for_every_missing_variable():
    base = synthetic_result(replications=6)
    assert not any(v in base for v in EXTRA)
    rows = kpi_values(ca.kpi_table(base))
    missing = {
        "return_rate": "not modelled: needs variable returns and units_sold (or return_rate and units_sold)",
        "listing_interruptions": "not modelled: needs variable listing_interruptions",
        "delivery_days": "not modelled: needs variable delivery_days",
        "repeat_purchase_rate": "not modelled: needs variable repeat_purchase_rate",
        "ltv_cac": "not modelled: needs variable ltv and cac",
    }
    for kpi, status in missing.items():
        assert rows.loc[kpi, "status"] == status
        assert np.isnan(rows.loc[kpi, "value"])
    # computable from the core variables: CM2 from cm2/revenue, top-market share from revenue by
    # market (2 markets with equal revenue -> 50%), organic share from organic_share.
    assert rows.loc["cm2_margin", "value"] == pytest.approx(0.2)
    assert rows.loc["top_market_share", "value"] == pytest.approx(0.5)
    assert rows.loc["top_market_share", "source"] == "revenue"
    assert rows.loc["top_market_share_le_50", "value"] == pytest.approx(1.0)
    assert rows.loc["organic_share", "value"] == pytest.approx(0.5)


def test_kpi_table_on_a_sweep_has_one_block_per_scenario():
    runs = {"low": synthetic_result(margin=0.1), "high": synthetic_result(margin=-0.1)}
    table = ca.kpi_table(ca.combine_runs(runs, factors={"duty": [0.1, 0.9]}))
    margin = table[table["kpi"] == "cm2_margin"].set_index(["scenario", "strategy"])["value"]
    assert margin[("low", "alpha")] == pytest.approx(0.1)
    assert margin[("high", "beta")] == pytest.approx(-0.1)
    share = table[table["kpi"] == "cm2_nonnegative_share"].set_index(["scenario", "strategy"])["value"]
    assert share[("high", "alpha")] == 0.0
