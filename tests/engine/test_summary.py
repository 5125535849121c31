"""The run summary's figures computed by hand: one CM2 margin (pooled), exit reasons."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cbecsim.analysis import replication_values
from cbecsim.summary import exit_reason_table, strategy_summary


def _tiny() -> xr.Dataset:
    """Two replications, one period, three sellers (two traffic_first, one brand_matrix), one market."""
    rtsm = ("replication", "time", "seller", "market")
    revenue = np.array([[100.0, 300.0, 500.0], [200.0, 200.0, 400.0]]).reshape(2, 1, 3, 1)
    cm2 = np.array([[50.0, 30.0, 100.0], [-20.0, 60.0, 40.0]]).reshape(2, 1, 3, 1)
    return xr.Dataset(
        {
            "revenue": (rtsm, revenue),
            "cm2": (rtsm, cm2),
            "visibility": (rtsm, np.full((2, 1, 3, 1), 0.1)),
            "cash": (("replication", "time", "seller"), np.full((2, 1, 3), 1000.0)),
            "alive": (("replication", "time", "seller"), np.array([[[True, False, True]], [[True, True, True]]])),
            "served": (("seller", "market"), np.ones((3, 1), dtype=bool)),
            "exit_reason": (("replication", "seller"),
                            np.array([["survived", "insolvent", "survived"], ["survived", "survived", "survived"]])),
        },
        coords={"strategy": ("seller", ["traffic_first", "traffic_first", "brand_matrix"]),
                "population": ("seller", ["a", "a", "b"])},
    )


def test_cm2_margin_is_pooled_per_replication_and_the_seller_median_is_named_apart():
    table = strategy_summary(_tiny())
    # traffic_first: (50 + 30) / (100 + 300) = 0.2 and (-20 + 60) / (200 + 200) = 0.1.
    assert table.loc["traffic_first", "cm2_margin_median"] == pytest.approx(0.15)
    assert table.loc["traffic_first", "cm2_margin_p05"] == pytest.approx(0.1 + 0.05 * 0.1)
    # its sellers' own margins: 0.5, 0.1, -0.1, 0.3 -> median 0.2.
    assert table.loc["traffic_first", "median_seller_cm2_margin"] == pytest.approx(0.2)
    # the analysis' per-replication values agree with the summary's pooled margin
    values = replication_values(_tiny(), "cm2_margin").sel(strategy="traffic_first").values
    np.testing.assert_allclose(values, [0.2, 0.1])


def test_exit_reason_shares_per_strategy():
    table = exit_reason_table(_tiny())
    assert list(table.columns) == ["survived", "insolvent"]
    assert table.loc["traffic_first", "insolvent"] == pytest.approx(0.25)
    assert table.loc["brand_matrix", "survived"] == pytest.approx(1.0)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)
