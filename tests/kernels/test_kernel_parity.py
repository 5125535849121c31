"""Parity of the numba kernels with their plain-Python twins (``tests/twins.py``).

Tiers in this file:

* RNG: exact equality of keys (uint64) and uniforms, exact Poisson integers on a grid of
  means, plus statistical checks (Poisson moments, uniform chi-square) at fixed seeds;
* scalar kernels (tariff, GSP auction, utility, MNL, order quantity): Hypothesis inputs,
  exact equality;
* batch kernels (``receive_arrivals``, ``market_day``, ``close_day``) run in the engine's
  daily order on a real state compiled from ``configs/baseline.yaml``, one copy through
  the kernels and one through the twins, compared after every kernel call; the same run
  is checked for invariants and for having really exercised stock-outs, binding budgets,
  exits, bulk arrivals and dutiable parcels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

import twins
from cbecsim.compile import compile_scenario, copy_state, initial_state, work_space
from cbecsim.config import load_scenario
from cbecsim.kernels import day as day_kernel
from cbecsim.kernels import fulfilment, rng, tariff
from cbecsim.kernels import layers as layer_kernels
from cbecsim.kernels import layout as L
from cbecsim.kernels import market as market_kernels
from cbecsim.kernels.state import OUTPUT_FIELDS, Outputs, State, Tables
from cbecsim.results import allocate_outputs
from helpers import ROOT

BASELINE = ROOT / "configs" / "baseline.yaml"
SEED = 20250101
MASK64 = (1 << 64) - 1
RTOL = 1e-12

HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _u64(n: int, seed: int) -> list[int]:
    """``n`` pseudo-random 64-bit integers plus the edge values, as Python ints."""
    drawn = np.random.default_rng(seed).integers(0, MASK64, size=n, dtype=np.uint64, endpoint=True)
    return [0, 1, MASK64, twins.GOLDEN, 1 << 63] + [int(z) for z in drawn]


def _keys(n: int, purpose: int = rng.DEMAND) -> list[int]:
    """``n`` stream keys as the simulation builds them (kernel keys, as Python ints)."""
    return [
        int(rng.stream_key(np.uint64(SEED), purpose, r // 7, r % 7 - 1, r % 3 - 1, r % 5 - 1))
        for r in range(n)
    ]


# ======================================================================================
# RNG
# ======================================================================================


def test_rng_constants_match_twin():
    assert int(rng.GOLDEN) == twins.GOLDEN
    assert (rng.ARRIVALS, rng.DEMAND, rng.CLICKS, rng.LEAD_TIME, rng.INIT) == (
        twins.ARRIVALS, twins.DEMAND, twins.CLICKS, twins.LEAD_TIME, twins.INIT,
    )
    assert (rng.DIST_CONSTANT, rng.DIST_UNIFORM, rng.DIST_NORMAL, rng.DIST_LOGNORMAL, rng.DIST_TRIANGULAR) == (
        twins.DIST_CONSTANT, twins.DIST_UNIFORM, twins.DIST_NORMAL, twins.DIST_LOGNORMAL, twins.DIST_TRIANGULAR,
    )
    assert market_kernels.DEMAND_SMOOTHING == twins.DEMAND_SMOOTHING


def test_mix64_matches_splitmix64_finaliser():
    for z in _u64(2000, 1):
        assert int(rng.mix64(np.uint64(z))) == twins.mix64(z), hex(z)
    # Reference value of the SplitMix64 finaliser (first output of SplitMix64 seeded 0
    # is mix64(GOLDEN) = 0xE220A8397B1DCDAF).
    assert twins.mix64(twins.GOLDEN) == 0xE220A8397B1DCDAF


def test_absorb_base_key_and_stream_key_match():
    components = [-1, 0, 1, 2, 3, 99, 100, 123, 4096, 10**6, 2**40]
    for key in _u64(60, 2):
        for component in components:
            assert int(rng.absorb(np.uint64(key), component)) == twins.absorb(key, component)
    for seed in [0, 1, SEED, 2**63 - 1]:
        for purpose in [rng.ARRIVALS, rng.DEMAND, rng.CLICKS, rng.LEAD_TIME, rng.INIT + 7]:
            for replication in [0, 1, 7, 100_000]:
                for day in [-1, 0, 364]:
                    expected = twins.base_key(seed, purpose, replication, day)
                    assert int(rng.base_key(np.uint64(seed), purpose, replication, day)) == expected
                    for market, seller in [(-1, -1), (0, -1), (-1, 0), (2, 59), (9, 1000)]:
                        assert int(rng.stream_key(np.uint64(seed), purpose, replication, day, market, seller)) == (
                            twins.stream_key(seed, purpose, replication, day, market, seller)
                        )


def test_uniforms_match_exactly():
    for key in _u64(600, 3) + _keys(200):
        for j in (0, 1, 2, 3, 10, 1000, 2**31):
            u = rng.uniform(np.uint64(key), j)
            assert u == twins.uniform(key, j), (hex(key), j)
            assert 0.0 < u < 1.0


def _unxorshift(z: int, shift: int) -> int:
    x = z
    for _ in range(64 // shift + 1):
        x = z ^ (x >> shift)
    return x & MASK64


def _unmix64(z: int) -> int:
    """Inverse of the SplitMix64 finaliser (it is a bijection of uint64)."""
    z = _unxorshift(z, 31)
    z = (z * pow(twins.MIX_M2, -1, 1 << 64)) & MASK64
    z = _unxorshift(z, 27)
    z = (z * pow(twins.MIX_M1, -1, 1 << 64)) & MASK64
    return _unxorshift(z, 30)


def test_uniform_never_returns_one():
    """rng.uniform promises the open interval (0, 1) for every key and counter.

    The counters whose finalised value has all top bits set are the extreme cells (with 53
    bits, ``float(2**53 - 1) + 0.5`` rounded to 2**53, i.e. exactly 1.0: fixed by using 52
    bits). The key is found by inverting the finaliser, so the case is hit deterministically.
    """
    for top in (MASK64, 0x7FFFFFFFFFFFF800 | (1 << 63)):
        preimage = _unmix64(top)
        assert twins.mix64(preimage) == top
        key = (preimage - twins.GOLDEN) & MASK64  # uniform j = 0 finalises key + GOLDEN
        u = rng.uniform(np.uint64(key), 0)
        assert 0.0 < u < 1.0, f"rng.uniform(key={key:#x}, j=0) returned {u!r}"


POISSON_MEANS = [0.0, 1e-3, 0.5, 3.0, 9.99, 10.0, 37.5, 1e3, 1e5]


@pytest.mark.parametrize("mean", POISSON_MEANS)
def test_poisson_matches_exactly(mean):
    keys = _keys(400) + _u64(100, 4)
    for key in keys:
        assert int(rng.poisson(mean, np.uint64(key))) == twins.poisson(mean, key), (mean, hex(key))
    assert rng.poisson(-1.0, np.uint64(1)) == twins.poisson(-1.0, 1) == 0
    assert rng.poisson(math.nan, np.uint64(1)) == twins.poisson(math.nan, 1) == 0


@pytest.mark.parametrize("mean", POISSON_MEANS)
def test_poisson_moments(mean):
    """Sample mean and variance of 20 000 kernel draws within 5 standard errors."""
    n = 20_000
    draws = np.array(
        [rng.poisson(mean, np.uint64(rng.stream_key(np.uint64(SEED), rng.DEMAND, r, 3, 1, 2))) for r in range(n)],
        dtype=np.float64,
    )
    if mean == 0.0:
        assert not draws.any()
        return
    assert draws.min() >= 0
    sample_mean = draws.mean()
    sample_var = draws.var(ddof=1)
    se_mean = math.sqrt(mean / n)
    # Var(s^2) ~ (mu4 - sigma^4) / n, with mu4 = mean (1 + 3 mean) for a Poisson.
    se_var = math.sqrt((mean + 2.0 * mean * mean) / n)
    assert abs(sample_mean - mean) <= 5.0 * se_mean, (sample_mean, mean)
    assert abs(sample_var - mean) <= 5.0 * se_var, (sample_var, mean)


@pytest.mark.parametrize("mean", [10.0, 37.5, 400.0, 5000.0])
def test_poisson_rejection_branch_has_the_poisson_distribution(mean):
    """Chi-square goodness of fit of 40 000 PTRS draws (mean >= 10; the log-factorial table
    below 4096 and lgamma above) against scipy.stats.poisson, cells with expected count
    >= 20 and the tails pooled; p-value > 1e-4."""
    from scipy import stats

    draws = np.array([rng.poisson(mean, np.uint64(rng.stream_key(np.uint64(SEED), rng.DEMAND, r, 5, 0, 1)))
                      for r in range(40_000)])
    low, high = int(mean - 8 * math.sqrt(mean)), int(mean + 8 * math.sqrt(mean)) + 1
    support = np.arange(max(low, 0), high)
    expected = stats.poisson.pmf(support, mean) * draws.size
    keep = expected >= 20
    cells = support[keep]
    observed = np.array([(draws == k).sum() for k in cells])
    obs = np.concatenate([[(draws < cells[0]).sum()], observed, [(draws > cells[-1]).sum()]])
    exp = np.concatenate([[stats.poisson.cdf(cells[0] - 1, mean)], stats.poisson.pmf(cells, mean),
                          [stats.poisson.sf(cells[-1], mean)]]) * draws.size
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-4


def test_log_factorial_table_is_lgamma():
    for k in (0, 1, 2, 10, 170, 4095, 4096, 10**6):
        assert rng.log_factorial(k) == pytest.approx(math.lgamma(k + 1.0), rel=1e-15, abs=0)
    assert rng.log_factorial(4095.0) == rng.LOG_FACTORIAL[4095]


def _chi_square_uniform(values: np.ndarray, bins: int) -> float:
    counts = np.bincount(np.floor(values * bins).astype(np.int64), minlength=bins)
    expected = len(values) / bins
    return float(((counts - expected) ** 2 / expected).sum())


def test_uniforms_pass_chi_square():
    """100 equal bins; the statistic must lie within 5 sd of its df (~N(df, 2 df))."""
    n, bins = 100_000, 100
    limit = (bins - 1) + 5.0 * math.sqrt(2.0 * (bins - 1))
    key = np.uint64(rng.stream_key(np.uint64(SEED), rng.CLICKS, 3, 17, 1, 4))
    along_counter = np.array([rng.uniform(key, j) for j in range(n)])
    across_keys = np.array(
        [rng.uniform(np.uint64(rng.stream_key(np.uint64(SEED), rng.ARRIVALS, r, 0, 0, -1)), 0) for r in range(n)]
    )
    for values in (along_counter, across_keys):
        assert 0.0 < values.min() and values.max() < 1.0
        assert _chi_square_uniform(values, bins) < limit
        assert abs(values.mean() - 0.5) < 5.0 * math.sqrt(1.0 / 12.0 / n)


def test_standard_normal_and_uniform_int_match():
    for key in _keys(300, rng.LEAD_TIME) + _u64(100, 5):
        assert rng.standard_normal(np.uint64(key)) == twins.standard_normal(key)
        for low, high in [(0, 0), (1, 1), (5, 10), (40, 60), (-3, 3), (0, 10**9)]:
            drawn = rng.uniform_int(low, high, np.uint64(key))
            assert drawn == twins.uniform_int(low, high, key)
            assert low <= drawn <= high


DISTRIBUTIONS = [
    (twins.DIST_CONSTANT, 4.3, 0.0, 0.0),
    (twins.DIST_UNIFORM, 0.75, 0.9, 0.0),
    (twins.DIST_UNIFORM, 2.0, 2.0, 0.0),
    (twins.DIST_NORMAL, 10.0, 2.5, 0.0),
    (twins.DIST_LOGNORMAL, 6.0, 0.15, 0.0),
    (twins.DIST_TRIANGULAR, 1.0, 2.0, 5.0),
    (twins.DIST_TRIANGULAR, 1.0, 1.0, 5.0),
    (twins.DIST_TRIANGULAR, 1.0, 5.0, 5.0),
    (twins.DIST_TRIANGULAR, 3.0, 3.0, 3.0),
]


@pytest.mark.parametrize("code,a,b,c", DISTRIBUTIONS)
def test_sample_parameter_matches(code, a, b, c):
    for key in _keys(200, rng.INIT + 3):
        value = rng.sample_parameter(code, a, b, c, np.uint64(key))
        assert value == twins.sample_parameter(code, a, b, c, key)
        if code == twins.DIST_TRIANGULAR:
            assert a <= value <= c


@pytest.mark.parametrize("per_market", [False, True])
@pytest.mark.parametrize("code,a,b,c", DISTRIBUTIONS[1:6])
def test_fill_parameter_matches(code, a, b, c, per_market):
    kernel_out = np.full((3, 5, 4), np.nan)
    twin_out = np.full((3, 5, 4), np.nan)
    rng.fill_parameter(code, a, b, c, np.uint64(SEED), rng.INIT + 2, 11, 20, per_market, kernel_out)
    twins.fill_parameter(code, a, b, c, SEED, rng.INIT + 2, 11, 20, per_market, twin_out)
    assert np.array_equal(kernel_out, twin_out)
    if not per_market:
        assert (kernel_out == kernel_out[:, :, :1]).all()


# ======================================================================================
# Tariff
# ======================================================================================

money = st.floats(0.0, 2000.0, allow_nan=False, allow_infinity=False)
rate = st.floats(0.0, 1.5, allow_nan=False, allow_infinity=False)


@st.composite
def regime_rows(draw):
    row = np.zeros(L.N_REGIME_COLUMNS)
    row[L.RG_AD_VALOREM] = draw(st.sampled_from([0.0, 0.075, 0.25]) | rate)
    row[L.RG_SPECIFIC] = draw(st.sampled_from([0.0, 3.24]) | st.floats(0.0, 50.0))
    row[L.RG_DE_MINIMIS] = draw(st.sampled_from([0.0, 1.0]))
    row[L.RG_THRESHOLD] = draw(st.sampled_from([0.0, 150.0 * 1.08, 800.0]) | money)
    row[L.RG_LOW_VALUE_DUTY] = draw(st.sampled_from([0.0, 3.24]) | st.floats(0.0, 10.0))
    row[L.RG_LOW_VALUE_PER_HEADING] = draw(st.sampled_from([0.0, 3.5]) | st.floats(0.0, 10.0))
    row[L.RG_PER_HEADING] = draw(st.sampled_from([0.0, 1.0]))
    row[L.RG_IOSS_ONLY] = draw(st.sampled_from([0.0, 1.0]))
    row[L.RG_POSTAL_SPECIFIC] = draw(st.sampled_from([0.0, 80.0, 100.0]) | st.floats(0.0, 300.0))
    row[L.RG_POSTAL_SPECIFIC_AVAILABLE] = draw(st.sampled_from([0.0, 1.0]))
    row[L.RG_ENTRY_FEE] = draw(st.sampled_from([0.0, 2.62, 5.19]))
    return row


@st.composite
def baskets(draw):
    """(NB, N_BASKET) parcel compositions, shares summing to about 1, some padding rows."""
    n = draw(st.integers(1, 4))
    rows = np.zeros((n + draw(st.integers(0, 2)), L.N_BASKET))
    weights = np.array([draw(st.floats(0.05, 1.0)) for _ in range(n)])
    for i in range(n):
        units = draw(st.integers(1, 6))
        rows[i] = (units, draw(st.integers(1, units)), weights[i] / weights.sum())
    return rows


KINDS = st.sampled_from([L.KIND_PARCEL, L.KIND_BULK, L.KIND_POSTAL])
POSTAL_METHODS = st.sampled_from([L.POSTAL_AD_VALOREM, L.POSTAL_SPECIFIC, L.POSTAL_CHEAPEST])


@HYPOTHESIS
@given(kind=KINDS, value=money, row=regime_rows(), at_threshold=st.booleans())
def test_duty_per_unit_and_regime_duty_match(kind, value, row, at_threshold):
    if at_threshold:  # the "at or under" boundary
        value = float(row[L.RG_THRESHOLD])
    args = (row[L.RG_AD_VALOREM], row[L.RG_SPECIFIC], row[L.RG_DE_MINIMIS], row[L.RG_THRESHOLD],
            row[L.RG_LOW_VALUE_DUTY])
    expected = twins.duty_per_unit(kind, value, *args)
    assert tariff.duty_per_unit(kind, value, *args) == expected
    assert tariff.regime_duty(kind, value, row) == twins.regime_duty(kind, value, row) == expected


@HYPOTHESIS
@given(kind=st.sampled_from([L.KIND_PARCEL, L.KIND_POSTAL]), value=money, units=st.integers(1, 6),
       headings=st.integers(1, 6), row=regime_rows(), method=POSTAL_METHODS, ioss=st.sampled_from([0.0, 1.0]),
       at_threshold=st.booleans())
def test_parcel_duty_matches(kind, value, units, headings, row, method, ioss, at_threshold):
    if at_threshold:
        value = float(row[L.RG_THRESHOLD])
    expected = twins.parcel_duty(kind, value, float(units), float(headings), row, method, ioss)
    assert tariff.parcel_duty(kind, value, float(units), float(headings), row, method, ioss) == expected


@HYPOTHESIS
@given(kind=KINDS, unit_cost=st.floats(0.01, 500.0), net_price=st.floats(0.01, 2000.0),
       freight=st.floats(0.0, 20.0), handling=st.floats(0.0, 5.0), row=regime_rows(), basket=baskets(),
       method=POSTAL_METHODS, ioss=st.sampled_from([0.0, 1.0]))
def test_landed_cost_per_unit_matches(kind, unit_cost, net_price, freight, handling, row, basket, method, ioss):
    landed, duty = tariff.landed_cost_per_unit(kind, unit_cost, net_price, freight, handling, row, basket, method,
                                               ioss)
    expected_landed, expected_duty = twins.landed_cost_per_unit(kind, unit_cost, net_price, freight, handling, row,
                                                                basket, method, ioss)
    assert (landed, duty) == (expected_landed, expected_duty)


# ======================================================================================
# Auction, utility and choice
# ======================================================================================


@st.composite
def auctions(draw):
    n = draw(st.integers(0, 12))
    # Few distinct values so that equal scores (ties) are common.
    bid_values = st.sampled_from([0.0, 0.05, 0.1, 0.5, 1.0, 1.25, 2.0]) | st.floats(0.0, 5.0)
    bids = draw(st.lists(bid_values, min_size=n, max_size=n))
    quality = draw(st.lists(st.sampled_from([0.2, 0.5, 0.8, 1.0]) | st.floats(0.2, 1.0), min_size=n, max_size=n))
    reserve = draw(st.sampled_from([0.0, 0.1, 0.5]) | st.floats(0.0, 1.0))
    wanted = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    # The kernel's contract: an eligible listing bids at least the reserve (and > 0).
    eligible = [w and b >= reserve and b > 0.0 for w, b in zip(wanted, bids)]
    n_slots = draw(st.integers(0, 6))
    return bids, quality, eligible, n_slots, reserve


@HYPOTHESIS
@given(auction=auctions())
def test_gsp_auction_matches(auction):
    bids, quality, eligible, n_slots, reserve = auction
    winners = np.full(n_slots + 1, -1, dtype=np.int64)
    prices = np.full(n_slots + 1, np.nan)
    scratch = np.full(n_slots + 1, np.nan)
    filled = market_kernels.clear_gsp_auction(
        np.array(bids, dtype=np.float64),
        np.array(quality, dtype=np.float64),
        np.array(eligible, dtype=np.bool_),
        np.arange(len(bids), dtype=np.int64),
        n_slots,
        reserve,
        winners,
        prices,
        scratch,
    )
    expected_winners, expected_prices = twins.clear_gsp_auction(bids, quality, eligible, n_slots, reserve)
    assert filled == len(expected_winners)
    assert list(winners[:filled]) == expected_winners
    assert list(prices[:filled]) == expected_prices
    for k in range(filled):
        i = winners[k]
        assert eligible[i]
        assert reserve <= prices[k] <= bids[i]


def test_gsp_auction_hand_example():
    """Scores 2.0, 1.6, 1.6 (tie: index 1 before 2), 0.4; two slots, reserve 0.1."""
    bids = [2.0, 2.0, 1.6, 0.4]
    quality = [1.0, 0.8, 1.0, 1.0]
    winners, prices = twins.clear_gsp_auction(bids, quality, [True] * 4, 2, 0.1)
    assert winners == [0, 1]
    assert prices == [pytest.approx(1.6), pytest.approx(1.6 / 0.8)]
    kernel_winners = np.zeros(3, dtype=np.int64)
    kernel_prices = np.zeros(3)
    filled = market_kernels.clear_gsp_auction(
        np.array(bids),
        np.array(quality),
        np.ones(4, dtype=np.bool_),
        np.arange(4, dtype=np.int64),
        2,
        0.1,
        kernel_winners,
        kernel_prices,
        np.zeros(3),
    )
    # Only the candidates are read: without listing 0, listing 1 wins and 2 follows.
    filled = market_kernels.clear_gsp_auction(
        np.array(bids),
        np.array(quality),
        np.ones(4, dtype=np.bool_),
        np.array([1, 2, 3], dtype=np.int64),
        2,
        0.1,
        kernel_winners,
        kernel_prices,
        np.zeros(3),
    )
    assert filled == 2 and list(kernel_winners[:2]) == [1, 2]
    filled = market_kernels.clear_gsp_auction(
        np.array(bids),
        np.array(quality),
        np.ones(4, dtype=np.bool_),
        np.arange(4, dtype=np.int64),
        2,
        0.1,
        kernel_winners,
        kernel_prices,
        np.zeros(3),
    )
    assert filled == 2 and list(kernel_winners[:2]) == winners and list(kernel_prices[:2]) == prices
    # A lone bidder pays the reserve.
    assert twins.clear_gsp_auction([1.0], [0.9], [True], 4, 0.1) == ([0], [0.1])


def test_gsp_auction_work_arrays_as_documented():
    """The docstring asks for ``winners`` and ``scratch`` of length >= n_slots + 1.

    Run in pure Python (``py_func``, which bounds-checks where compiled code would write
    past the end) with arrays of exactly the documented sizes.
    """
    n_slots = 2
    winners = np.full(n_slots + 1, -1, dtype=np.int64)
    prices = np.zeros(n_slots)
    scratch = np.zeros(n_slots + 1)
    plain = getattr(market_kernels.clear_gsp_auction, "py_func", market_kernels.clear_gsp_auction)  # no JIT: itself
    filled = plain(
        np.array([1.0, 0.9, 0.8]),
        np.ones(3),
        np.ones(3, dtype=np.bool_),
        np.arange(3, dtype=np.int64),
        n_slots,
        0.1,
        winners,
        prices,
        scratch,
    )
    assert filled == 2 and list(winners[:n_slots]) == [0, 1]


@st.composite
def market_rows(draw):
    row = np.zeros(L.N_MARKET_COLUMNS)
    row[L.MK_BASE_UTILITY] = draw(st.floats(-5.0, 2.0))
    row[L.MK_BRAND_WEIGHT] = draw(st.floats(0.0, 3.0))
    row[L.MK_RATING_WEIGHT] = draw(st.floats(0.0, 2.0))
    row[L.MK_PRICE_SENSITIVITY] = draw(st.floats(0.0, 6.0))
    row[L.MK_DELIVERY_WEIGHT] = draw(st.floats(0.0, 0.5))
    row[L.MK_REFERENCE_PRICE] = draw(st.floats(1.0, 200.0))
    return row


@HYPOTHESIS
@given(
    row=market_rows(),
    brand=st.floats(0.0, 2.0),
    rating=st.floats(1.0, 5.0),
    price=st.floats(1e-6, 1000.0),
    days=st.sampled_from([0.0, 2.0, 7.0]) | st.floats(0.0, 60.0),
)
def test_listing_utility_matches(row, brand, rating, price, days):
    expected = twins.listing_utility(row, brand, rating, price, days, 0.41)
    assert market_kernels.listing_utility(row, brand, rating, price, days, 0.41) == expected


@HYPOTHESIS
@given(
    data=st.lists(
        st.tuples(st.sampled_from([0.0, -0.1]) | st.floats(0.0, 2.0), st.floats(-20.0, 5.0)),
        min_size=0,
        max_size=12,
    ),
    nest=st.sampled_from([1.0, 0.5]) | st.floats(0.05, 1.0),
)
def test_purchase_probabilities_match(data, nest):
    attention = np.array([a for a, _ in data], dtype=np.float64)
    utility = np.array([u for _, u in data], dtype=np.float64)
    out = np.full(len(data), np.nan)
    total = market_kernels.purchase_probabilities(attention, utility, nest, out)
    expected, expected_total = twins.purchase_probabilities(attention, utility, nest)
    np.testing.assert_allclose(out, expected, rtol=RTOL, atol=0.0)
    assert total == pytest.approx(expected_total, rel=RTOL, abs=0.0)
    assert (out >= 0.0).all() and total < 1.0
    assert (out[attention <= 0.0] == 0.0).all()


def test_nested_logit_hand_example():
    """Two listings examined alike, within-page utilities 0 and ln 2, lambda 0.5, by hand:
    D = 1 + 2 = 3, inside share sqrt(3) / (1 + sqrt(3)) = 0.633975, P = (1/3, 2/3) x that."""
    out = np.zeros(2)
    total = market_kernels.purchase_probabilities(np.array([1.0, 1.0]), np.array([0.0, math.log(2.0)]), 0.5, out)
    inside = math.sqrt(3.0) / (1.0 + math.sqrt(3.0))
    np.testing.assert_allclose(out, [inside / 3.0, 2.0 * inside / 3.0], rtol=1e-15)
    assert total == pytest.approx(0.633975, abs=1e-6)
    # lambda = 1 is the plain multinomial logit: 1 / (1 + 3) and 2 / (1 + 3).
    market_kernels.purchase_probabilities(np.array([1.0, 1.0]), np.array([0.0, math.log(2.0)]), 1.0, out)
    np.testing.assert_allclose(out, [0.25, 0.5], rtol=1e-15)


# ======================================================================================
# Fulfilment: the order rule
# ======================================================================================


@HYPOTHESIS
@given(
    stock=st.integers(0, 3000),
    demand=st.sampled_from([0.0, 1.0, 25.0]) | st.floats(0.0, 200.0),
    lead=st.integers(2, 120).map(lambda x: x / 2.0),
    safety=st.floats(0.0, 30.0),
    cover=st.floats(0.0, 90.0),
    unit_payment=st.sampled_from([0.0, 6.0]) | st.floats(0.01, 50.0),  # unit costs are clipped at >= 0.01
    spendable=st.sampled_from([0.0, -1.0, 1e9]) | st.floats(-1e5, 1e6),
)
def test_order_quantity_matches(stock, demand, lead, safety, cover, unit_payment, spendable):
    quantity = fulfilment.order_quantity(stock, demand, lead, safety, cover, unit_payment, spendable)
    assert quantity == twins.order_quantity(stock, demand, lead, safety, cover, unit_payment, spendable)
    assert quantity >= 0
    if quantity > 0 and unit_payment > 0.0:
        assert quantity * unit_payment <= spendable * (1.0 + RTOL)


# ======================================================================================
# The day loop on a real scenario, through the typed state
# ======================================================================================

N_DAYS = 30
N_BATCH = 3
REPLICATION0 = 7
POLICY_DAY = 10  # a regime change is put in force at the start of this day


@pytest.fixture(scope="module")
def compiled():
    return compile_scenario(load_scenario(BASELINE), resolution="day")


def _population(compiled, strategy: str) -> range:
    p = compiled.population_strategies.index(strategy)
    slc = compiled.population_slices[p]
    return range(slc.start, slc.stop)


def _with_policy_change(compiled) -> Tables:
    """The tables with a regime change on POLICY_DAY: US parcels lose de minimis, the EU
    charges a flat EUR 3 on exempt low-value parcels, bulk imports to the US pay USD 0.5
    per item more."""
    regime = compiled.regime_tables[-1].copy()
    us = [m for m, name in enumerate(compiled.market_names) if name.startswith("US/")]
    eu = [m for m, name in enumerate(compiled.market_names) if name.startswith("EU/")]
    for m in us:
        regime[m, :, L.KIND_PARCEL, L.RG_DE_MINIMIS] = 0.0
        regime[m, :, L.KIND_BULK, L.RG_SPECIFIC] += 0.5
        # Dutiable parcels pay the informal-entry MPF; parcel returns get 99% drawback.
        regime[m, :, L.KIND_PARCEL, L.RG_ENTRY_FEE] = 2.62
        regime[m, :, L.KIND_PARCEL, L.RG_DRAWBACK] = 0.99
    for m in eu:
        regime[m, :, L.KIND_PARCEL, L.RG_LOW_VALUE_DUTY] = 3.0 * 1.08
        regime[m, :, L.KIND_PARCEL, L.RG_LOW_VALUE_PER_HEADING] = 3.0 * 1.08
        regime[m, :, L.KIND_PARCEL, L.RG_PER_HEADING] = 1.0
    tables = compiled.tables
    first = tables.regime_tables[tables.regime_index[0]]
    index = np.where(np.arange(compiled.n_days) < POLICY_DAY, 0, 1).astype(np.int64)
    # Few sponsored impressions in US/audio (the top slot expects about two clicks a day), so
    # that a day's click totals sometimes exceed what ample budgets were sized for.
    market = tables.market.copy()
    market[compiled.market_names.index("US/audio"), L.MK_IMPRESSION_SHARE] = 4.4e-4
    # EU sales ship half in one-item parcels, half in 3 units of 2 sub-headings.
    basket = np.zeros((compiled.n_markets, 2, L.N_BASKET))
    basket[:, 0] = (1.0, 1.0, 1.0)
    for m in eu:
        basket[m] = ((1.0, 1.0, 0.5), (3.0, 2.0, 0.5))
    # A second origin (index 1, duty rates 40% of the first's) that production can move to.
    def with_second_origin(table):
        other = table[:, :1].copy()
        other[..., L.RG_AD_VALOREM] *= 0.4
        return np.concatenate([table, other], axis=1)

    # ... whose freight is 20% dearer and lead times 2 days longer.
    second_modes = tables.mode_by_origin[:1].copy()
    second_modes[..., L.MD_FREIGHT] *= 1.2
    second_modes[..., L.MD_LEAD_MIN] += 2
    second_modes[..., L.MD_LEAD_MAX] += 2
    return tables._replace(regime_tables=np.stack([with_second_origin(first), with_second_origin(regime)]),
                           regime_index=index, market=market, basket=basket,
                           mode_by_origin=np.concatenate([tables.mode_by_origin, second_modes]))


def _stressed_state(compiled) -> State:
    """Baseline initial state with forced situations in replication 0 (1 and 2 untouched
    apart from one budget cut): stock-outs, binding budgets, exits (one with an order in
    transit, one after a cash-limited order), bulk arrivals and an unlisted live market."""
    state = initial_state(compiled, SEED, REPLICATION0, N_BATCH)
    traffic = list(_population(compiled, "traffic_first"))
    brand = list(_population(compiled, "brand_matrix"))
    diversified = list(_population(compiled, "diversified"))
    warehouse = compiled.mode_names.index("overseas_warehouse")
    us_charging = compiled.market_names.index("US/charging")
    us_audio = compiled.market_names.index("US/audio")
    eu_charging = compiled.market_names.index("EU/charging")
    b = 0
    # Low stock: stock-outs, then (cash-permitting) reorders that arrive within the run.
    for s, units in zip(traffic[:5], [0, 1, 2, 3, 5]):
        state.stock[b, s, us_charging] = units
    # Tiny budgets: one or two clicks' worth, so the budget binds.
    for s in traffic[5:10]:
        state.budget_local[b, s, us_charging] = 1.5 * state.bid_local[b, s, us_charging]
    state.budget_local[1, traffic[5], us_charging] = state.bid_local[1, traffic[5], us_charging]
    # Exit on day 0 with an order in transit (written off when it falls due): no sales
    # (unlisted) and cash just above -credit_line, less than one day's fixed cost.
    s = traffic[10]
    state.listed[b, s, :] = False
    state.cash[b, s] = -state.credit_line[b, s] + 0.5 * state.fixed_cost[b, s]
    state.pending_quantity[b, s, us_charging] = 40
    state.pending_day[b, s, us_charging] = 3
    # A cash-limited order: empty shelf, a few units' worth of spendable cash.
    s = traffic[11]
    state.stock[b, s, us_charging] = 0
    state.cash[b, s] = -state.credit_line[b, s] + 4.2 * state.unit_cost[b, s, us_charging]
    # Bulk shipments arriving before and after the policy change (duty paid on arrival).
    for s, day in [(brand[0], 2), (brand[1], POLICY_DAY + 2)]:
        for m in (us_charging, us_audio):
            state.pending_quantity[b, s, m] = 120
            state.pending_day[b, s, m] = day
            state.pending_mode[b, s, m] = warehouse
            state.stock[b, s, m] = 3
    # Production moves to origin 1 (tables of _with_policy_change): low-stock traffic-first
    # sellers from day 0 (their parcels' next deliveries come from there), and one bulk
    # shipment already made there (its duty on arrival at origin 1's rate).
    for s in traffic[:5]:
        state.origin_switch_day[b, s] = 0
        state.origin_switch_to[b, s] = 1
    state.pending_origin[b, brand[1], us_charging] = 1
    # A live seller that has stopped listing in one of its markets.
    state.listed[b, diversified[0], eu_charging] = False
    # Both stock pools at once: a warehouse listing with a few units left in the warehouse
    # and origin stock shipped by parcel; imports paused on one listing; an order placed
    # above the reorder point (front-loading) on another.
    s = diversified[1]
    state.mode[b, s, us_charging] = warehouse
    state.warehouse_stock[b, s, us_charging] = 4
    state.pool_cost[b, s, us_charging, 1] = 14.0
    state.imports_paused[b, diversified[2], us_charging] = True
    state.stock[b, diversified[2], us_charging] = 2
    state.order_now[b, diversified[3], us_charging] = True
    state.stock_policy[b, diversified[3], us_charging, L.SP_COVER_DAYS] += 60.0
    # Closures: sellers with ample cash that list nowhere, one for the default (strategic)
    # reason, one for the reason its strategy gave (unprofitable).
    state.listed[b, traffic[12], :] = False
    state.listed[b, traffic[13], :] = False
    state.exit_request[b, traffic[13]] = L.EXIT_UNPROFITABLE
    # Interest: a seller drawing on its credit line.
    state.cash[b, diversified[4]] = -0.5 * state.credit_line[b, diversified[4]]
    # Budgets that never bind (replication 2, EU): the day's auction is played once.
    state.budget_local[2, :, eu_charging] = 1e7
    # Budgets for a few more clicks than the (few) expected in US/audio (replications 1 and 2):
    # sometimes a day's totals exceed them and the rounds are played.
    state.budget_local[1:, :, us_audio] = 5.5 * state.bid_local[1:, :, us_audio]
    return state


def _var(out: Outputs, name: str) -> np.ndarray:
    """Result variable ``name`` as the kernels wrote it, (rows, periods, ...)."""
    group, index = OUTPUT_FIELDS[name]
    return getattr(out, group)[index]


def _mismatches(kernel: dict, twin: dict) -> list[str]:
    problems = []
    for name, k in kernel.items():
        t = twin[name]
        if k.shape != t.shape or k.dtype != t.dtype:
            problems.append(f"{name}: shape/dtype {k.shape} {k.dtype} vs {t.shape} {t.dtype}")
        elif k.dtype.kind in "biu":
            if not np.array_equal(k, t):
                where = np.argwhere(k != t)[:3].tolist()
                problems.append(f"{name}: differs at {where}")
        else:
            close = np.isclose(k, t, rtol=RTOL, atol=0.0) | (k == t) | (np.isnan(k) & np.isnan(t))
            if not close.all():
                where = np.argwhere(~close)[:3].tolist()
                problems.append(
                    f"{name}: differs at {where}: kernel {[k[tuple(w)] for w in where]} "
                    f"twin {[t[tuple(w)] for w in where]}"
                )
    return problems


def _arrays(state: State, out: Outputs) -> dict:
    arrays = dict(state._asdict())
    arrays.update({f"out.{name}": array for name, array in out._asdict().items()})
    return arrays


def _advance_both(day0: int, day1: int, receive_first: bool, tables: Tables, kernel_state: State,
                  kernel_out: Outputs, twin_state: State, twin_out: Outputs, work, trace: dict) -> list[str]:
    """The stretch ``[day0, day1)`` on the kernel copy and on the twin copy; their mismatches."""
    day_kernel.advance(day0, day1, receive_first, True, np.uint64(SEED), REPLICATION0, 0, 0, N_BATCH, tables,
                       kernel_state, kernel_out, work)
    twins.advance(day0, day1, receive_first, True, SEED, REPLICATION0, 0, 0, N_BATCH, tables, twin_state, twin_out,
                  trace)
    found = _mismatches(_arrays(kernel_state, kernel_out), _arrays(twin_state, twin_out))
    return [f"days {day0}..{day1} : {p}" for p in found]


def _simulate_both(compiled, state: State, tables: Tables | None = None) -> dict:
    """Run N_DAYS days one stretch a day on a kernel copy and a twin copy of ``state``.

    Day 0's arrivals first (a stretch of no days), then day d's stretch [d, d + 1) with
    the arrivals of d + 1 (strategy reviews are not kernels and are left out). Both copies
    are compared after every stretch; per-day snapshots of the kernel copy are kept for
    the invariants.
    """
    tables = _with_policy_change(compiled) if tables is None else tables
    kernel_state, twin_state = copy_state(state), copy_state(state)
    kernel_out, twin_out = allocate_outputs(compiled, N_BATCH), allocate_outputs(compiled, N_BATCH)
    work = work_space(compiled, N_BATCH)
    trace: dict = {}
    problems: list[str] = []
    history = {
        "stock_open": [],
        "alive": [],
        "exit_day": [],
        "listed": [],
        "budget_local": [],
        "bid_local": [],
        "interrupted": [],
        "customers": [],
        "usd_rate": [],
    }

    def step(day0: int, day1: int, receive_first: bool) -> None:
        found = _advance_both(day0, day1, receive_first, tables, kernel_state, kernel_out, twin_state, twin_out,
                              work, trace)
        if not problems:  # report the first divergence only; later ones follow from it
            problems.extend(found)

    step(0, 0, True)
    for day in range(N_DAYS):
        # The state the market step of `day` starts from (after the morning's arrivals;
        # FX moves inside the stretch, so today's rate is kept after it).
        history["stock_open"].append(kernel_state.stock.copy())
        history["interrupted"].append(kernel_state.layer_sm[..., L.LS_INTERRUPTED_UNTIL] > day)
        history["customers"].append(kernel_state.layer_sm[..., :2].copy())
        history["budget_local"].append(kernel_state.budget_local.copy())
        history["bid_local"].append(kernel_state.bid_local.copy())
        step(day, day + 1, False)
        history["usd_rate"].append(kernel_state.usd_rate.copy())
        history["alive"].append(kernel_state.alive.copy())
        history["exit_day"].append(kernel_state.exit_day.copy())
        history["listed"].append(kernel_state.listed.copy())

    return {
        "problems": problems,
        "trace": trace,
        "state": kernel_state,
        "out": kernel_out,
        "history": {k: np.stack(v) for k, v in history.items()},
        "initial": state,
        "tables": tables,
        "compiled": compiled,
    }


@pytest.fixture(scope="module")
def natural_run(compiled):
    return _simulate_both(compiled, initial_state(compiled, SEED, REPLICATION0, N_BATCH))


@pytest.fixture(scope="module")
def stressed_run(compiled):
    return _simulate_both(compiled, _stressed_state(compiled))


def test_batch_kernels_match_twins_on_baseline(natural_run):
    assert natural_run["problems"] == []
    assert natural_run["trace"].get("slots_filled", 0) > 0


def test_batch_kernels_match_twins_under_stress(stressed_run):
    assert stressed_run["problems"] == []


def test_stress_run_exercised_every_branch(stressed_run):
    """The forced situations really happened (so the parity and invariants are not vacuous)."""
    trace, out, state = stressed_run["trace"], stressed_run["out"], stressed_run["state"]
    assert trace.get("stockouts", 0) > 0 and _var(out, "lost_sales").sum() > 0
    assert trace.get("budget_bound", 0) > 0
    # Every way of playing a day's auction ran: one auction, a split of the day's totals
    # over the rounds, and rounds drawn one by one under tight budgets.
    for way in ("one_auction_days", "split_days", "tight_budget_days"):
        assert trace.get(way, 0) > 0, way
    assert trace.get("exits", 0) >= 2 and (state.exit_day >= 0).sum() >= 2 and not state.alive.all()
    assert trace.get("written_off", 0) >= 1  # an exit with stock or an order in transit
    for reason in (L.EXIT_INSOLVENT, L.EXIT_UNPROFITABLE, L.EXIT_STRATEGIC):
        assert trace.get(f"exit_{reason}", 0) >= 1, reason
    np.testing.assert_array_equal(state.exit_reason[state.alive], 0)
    assert (state.exit_reason[~state.alive] > 0).all()
    np.testing.assert_array_equal(out.exit_reason, state.exit_reason)
    for branch in ("warehouse_sales", "two_pool_sales", "storage_days", "interest_days", "paused_imports",
                   "orders_now", "warehouse_cost_averaged"):
        assert trace.get(branch, 0) > 0, branch
    assert trace.get("cash_limited_orders", 0) >= 1
    assert trace.get("bulk_arrivals", 0) >= 2 and _var(out, "duty_paid")[:, :POLICY_DAY].sum() > 0
    assert trace.get("arrivals", 0) > trace["bulk_arrivals"]  # parcel-mode replenishments too
    assert trace.get("parcel_duty_sales", 0) > 0  # dutiable parcels after the policy change
    assert trace.get("parcel_drawback", 0) > 0  # parcel returns exported back with drawback
    assert trace.get("origin_moves", 0) >= 5 and trace.get("origin_stock_moved", 0) >= 1  # production moved
    assert (state.origin[0, list(_population(stressed_run["compiled"], "traffic_first"))[:5]] == 1).all()
    assert trace.get("orders", 0) > 0
    # Stock ran out: some live listing had an empty shelf at the start of a market day.
    assert (stressed_run["history"]["stock_open"] == 0).any()
    # The exit days are in the outputs as in the state.
    np.testing.assert_array_equal(out.exit_day, state.exit_day)


def _invariants(run, compiled):
    """Invariants of the kernel copy's daily outputs (day resolution: period == day)."""
    out = run["out"]
    days = slice(0, N_DAYS)
    history = run["history"]
    usd_rate = np.moveaxis(history["usd_rate"], 0, 1)[:, :, None, :]  # (B, D, 1, M), the day's FX rate
    reserve = compiled.market[:, L.MK_RESERVE]
    units = _var(out, "units_sold")[:, days].astype(float)
    lost = _var(out, "lost_sales")[:, days]
    clicks = _var(out, "clicks")[:, days].astype(float)
    spend = _var(out, "ad_spend")[:, days]
    stock_open = np.moveaxis(history["stock_open"], 0, 1)  # (B, D, S, M)
    served = compiled.seller_served

    # Stock never negative, at any point we can see it.
    assert (history["stock_open"] >= 0).all() and (run["state"].stock >= 0).all()
    # Sold <= demanded (= sold + lost) and sold <= stock on the shelf that morning.
    assert (units >= 0).all() and (lost >= 0).all()
    assert (units <= stock_open).all()

    # Ad spend per day never exceeds the daily budget [USD].
    budget_usd = np.moveaxis(history["budget_local"], 0, 1) * usd_rate
    assert (spend <= budget_usd * (1.0 + RTOL)).all()
    # Price per click between the reserve and the slot's own bid.
    bid = np.moveaxis(history["bid_local"], 0, 1)
    paid = clicks > 0
    assert paid.any()
    cpc_local = spend[paid] / (clicks[paid] * np.broadcast_to(usd_rate, clicks.shape)[paid])
    assert (cpc_local <= bid[paid] * (1.0 + RTOL)).all()
    assert (cpc_local >= np.broadcast_to(reserve, clicks.shape)[paid] * (1.0 - RTOL)).all()
    assert (spend[~paid] == 0.0).all()
    # Markets a seller cannot list in cost nothing and hold nothing.
    for name in ("revenue", "ad_spend", "units_sold", "clicks", "listed_days"):
        assert (_var(out, name)[:, days][..., ~served] == 0).all(), name
    assert np.isnan(_var(out, "landed_cost")[:, days][..., ~served]).all()

    # Visibility shares in a market sum to at most 1 each day.
    visibility = _var(out, "visibility")[:, days].astype(float)
    shares = visibility.sum(axis=2)  # (B, D, M)
    assert (visibility >= 0.0).all()
    assert (shares <= 1.0 + 1e-6).all()  # float32 storage
    assert (shares > 0.99).any()

    # Exited sellers never come back and stop trading.
    alive = history["alive"]  # (D, B, S) after each close
    assert not (alive[1:] & ~alive[:-1]).any()
    assert not (alive & ~run["initial"].alive).any()
    np.testing.assert_array_equal(np.moveaxis(_var(out, "alive")[:, days], 1, 0), alive)
    exit_day = history["exit_day"]
    for d in range(alive.shape[0]):
        dead = ~alive[d]
        assert (exit_day[d][dead] >= 0).all() and (exit_day[d][dead] <= d).all()
        assert (exit_day[d][alive[d]] == -1).all()
        assert not history["listed"][d][dead].any()
        if d + 1 < alive.shape[0]:
            assert (exit_day[d + 1][dead] == exit_day[d][dead]).all()
            later = units[:, d + 1 :][np.broadcast_to(dead[:, None, :, None], units[:, d + 1 :].shape)]
            later_clicks = clicks[:, d + 1 :][np.broadcast_to(dead[:, None, :, None], clicks[:, d + 1 :].shape)]
            assert not later.any() and not later_clicks.any()
    # Shoppers arrived in every market every day.
    assert (_var(out, "shoppers")[:, days] > 0).all()

    # Cash identity: every cash movement is either revenue or a booked cost.
    initial, final = run["initial"], run["state"]
    revenue = _var(out, "revenue")[:, days].sum(axis=(1, 3))
    costs = _var(out, "costs")[:, days].sum(axis=1)
    np.testing.assert_allclose(final.cash, initial.cash + revenue - costs, rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(_var(out, "cash")[:, N_DAYS - 1], final.cash)
    # The (never reset) review windows equal the sums of the daily outputs.
    for w, name in [
        (L.W_REVENUE, "revenue"),
        (L.W_UNITS, "units_sold"),
        (L.W_LOST, "lost_sales"),
        (L.W_AD_SPEND, "ad_spend"),
        (L.W_CM2, "cm2"),
    ]:
        np.testing.assert_allclose(final.window[..., w], _var(out, name)[:, days].sum(axis=1), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(final.window[..., L.W_VISIBILITY], visibility.sum(axis=1), rtol=1e-6, atol=1e-6)


def test_invariants_on_baseline_run(natural_run, compiled):
    _invariants(natural_run, compiled)


def test_invariants_on_stressed_run(stressed_run, compiled):
    _invariants(stressed_run, compiled)
    assert (stressed_run["state"].exit_day >= 0).any()


@njit
def _market_day_kernel(b, m, row, period, day, seed, replication, regime, tables, state, out, work):
    # The market step has no wrapper for calls from Python (it is compiled into the day
    # loop only); this one calls it as the day loop does.
    market_kernels.prepare_stretch(b, tables, state, work)
    for j in range(tables.market_offsets[m], tables.market_offsets[m + 1]):
        s = tables.market_sellers[j]
        work.up[b, s] = (
            state.alive[b, s] and state.listed[b, s, m] and day >= state.layer_sm[b, s, m, L.LS_INTERRUPTED_UNTIL]
        )
    market_kernels.market_day(b, m, row, period, day, seed, replication, regime, tables, state, out, work)


def test_market_day_matches(compiled):
    """The market step called directly, market by market, matches its twin."""
    state = _stressed_state(compiled)
    tables = compiled.tables
    kernel_state, twin_state = copy_state(state), copy_state(state)
    kernel_out, twin_out = allocate_outputs(compiled, N_BATCH), allocate_outputs(compiled, N_BATCH)
    work = work_space(compiled, N_BATCH)
    day = 4
    regime = compiled.regime_on(day)
    for b in range(N_BATCH):
        for m in range(compiled.n_markets):
            _market_day_kernel(
                b, m, b, day, day, np.uint64(SEED), REPLICATION0 + b, regime, tables, kernel_state, kernel_out, work
            )
            twins.market_day(b, m, b, day, day, SEED, REPLICATION0 + b, regime, tables, twin_state, twin_out)
            assert _mismatches(_arrays(kernel_state, kernel_out), _arrays(twin_state, twin_out)) == [], (b, m)


def test_batch_size_does_not_change_a_replication(compiled):
    """DESIGN.md section 4: a replication's path is the same whatever batch it runs in,
    and whichever thread's range of the batch it is in."""
    days = 5
    runs = []
    for replication0, n_batch, ranges in [
        (REPLICATION0, 3, [(0, 3)]),
        (REPLICATION0 + 1, 1, [(0, 1)]),
        (REPLICATION0, 3, [(0, 1), (1, 3)]),
    ]:
        state = initial_state(compiled, SEED, replication0, n_batch)
        out = allocate_outputs(compiled, n_batch)
        work = work_space(compiled, n_batch)
        for b0, b1 in ranges:
            day_kernel.advance(
                0, days, True, True, np.uint64(SEED), replication0, 0, b0, b1, compiled.tables, state, out, work
            )
        runs.append((replication0, _arrays(state, out)))
    (_, big), (_, single), (_, split) = runs
    for name, value in single.items():
        per_seller_only = ("out.exit_day", "out.initial_cash", "out.exit_reason", "out.origin")
        axis = 1 if name.startswith("out.") and name not in per_seller_only else 0
        assert np.array_equal(np.take(big[name], [1], axis=axis), value, equal_nan=value.dtype.kind == "f"), name
        assert np.array_equal(big[name], split[name], equal_nan=value.dtype.kind == "f"), name


def test_zero_reserve_lone_bidder(compiled):
    """``reserve_price: 0`` is a valid config (``ge=0``). A slot with no runner-up then
    pays the reserve, 0 per click: its clicks cost nothing, so the budget cannot cap them
    and they must stay non-negative (the twin: clicks = raw clicks, spend 0)."""
    market = compiled.market.copy()
    market[:, L.MK_RESERVE] = 0.0
    tables = compiled.tables._replace(market=market)
    state = initial_state(compiled, SEED, REPLICATION0, 1)
    lone = 0
    state.bid_local[:, [s for s in range(compiled.n_sellers) if s != lone], :] = 0.0
    kernel_state, twin_state = copy_state(state), copy_state(state)
    kernel_out, twin_out = allocate_outputs(compiled, 1), allocate_outputs(compiled, 1)
    trace: dict = {}
    day_kernel.advance(
        0,
        1,
        True,
        True,
        np.uint64(SEED),
        REPLICATION0,
        0,
        0,
        1,
        tables,
        kernel_state,
        kernel_out,
        work_space(compiled, 1),
    )
    twins.advance(0, 1, True, True, SEED, REPLICATION0, 0, 0, 1, tables, twin_state, twin_out, trace)
    assert trace.get("free_clicks", 0) >= 1
    clicks = _var(kernel_out, "clicks")
    assert (clicks >= 0).all() and clicks[0, 0, lone].sum() > 0, f"clicks of the lone bidder: {clicks[0, 0, lone]}"
    assert _var(kernel_out, "ad_spend")[0, 0, lone].sum() == 0.0
    assert _mismatches(_arrays(kernel_state, kernel_out), _arrays(twin_state, twin_out)) == []


# ======================================================================================
# Model layers (issue 7): binomial sampler, layer rules, FX, capability costs, and the
# batch kernels on a state where every layer is active
# ======================================================================================


def test_layer_purposes_are_new_and_match_twin():
    purposes = (
        rng.RETURNS,
        rng.REPEAT,
        rng.DTC_REPEAT,
        rng.DTC_NEW,
        rng.LAPSE,
        rng.DTC_LAPSE,
        rng.INCIDENT,
        rng.INTERRUPTION,
        rng.FX,
        rng.PURCHASE_SOURCE,
    )
    assert purposes == (
        twins.RETURNS,
        twins.REPEAT,
        twins.DTC_REPEAT,
        twins.DTC_NEW,
        twins.LAPSE,
        twins.DTC_LAPSE,
        twins.INCIDENT,
        twins.INTERRUPTION,
        twins.FX,
        twins.PURCHASE_SOURCE,
    )
    # Existing streams keep their purposes; the new ones collide with none of them.
    existing = {rng.ARRIVALS, rng.DEMAND, rng.CLICKS, rng.LEAD_TIME}
    assert len(set(purposes)) == len(purposes) and not set(purposes) & existing
    assert max(purposes) < rng.INIT
    assert rng.BINOMIAL_INVERSION_MAX_MEAN == twins.BINOMIAL_INVERSION_MAX_MEAN


BINOMIAL_CASES = [
    (0, 0.3),
    (1, 0.5),
    (5, 0.0),
    (5, 1.0),
    (7, 0.115),
    (40, 0.5),
    (41, 0.9),
    (300, 0.03),
    (5000, 1.0 / 365.0),
    (4000, 0.12),
    (10**6, 0.002),
    (10**6, 0.7),
    (3, 1e-12),
]


@pytest.mark.parametrize("n,p", BINOMIAL_CASES)
def test_binomial_matches_exactly_and_stays_in_range(n, p):
    for key in _keys(300, rng.RETURNS) + _u64(50, 6):
        drawn = rng.binomial(n, p, np.uint64(key))
        assert drawn == twins.binomial(n, p, key), (n, p, hex(key))
        assert 0 <= drawn <= n


def test_binomial_with_kept_logarithms_draws_the_same():
    """rng.binomial_small_q (the returns draw, given log1p(-q) and q / (1 - q)) is
    rng.binomial for every case with 0 < q <= 1/2, on both branches."""
    cases = [(n, p) for n, p in BINOMIAL_CASES if n > 0 and 0.0 < p <= 0.5]
    assert any(n * p >= rng.BINOMIAL_INVERSION_MAX_MEAN for n, p in cases)
    for n, p in cases:
        for key in _keys(200, rng.RETURNS):
            kept = rng.binomial_small_q(n, p, math.log1p(-p), p / (1.0 - p), np.uint64(key))
            assert kept == rng.binomial(n, p, np.uint64(key)), (n, p, hex(key))


@pytest.mark.parametrize("n,p", [(20, 0.115), (2000, 0.05), (10**5, 0.01), (60, 0.8)])
def test_binomial_moments(n, p):
    """Mean and variance of 20 000 draws within 5 standard errors (both branches)."""
    draws = np.array(
        [
            rng.binomial(n, p, np.uint64(rng.stream_key(np.uint64(SEED), rng.RETURNS, r, 1, 2, 3)))
            for r in range(20_000)
        ],
        dtype=float,
    )
    mean, var = n * p, n * p * (1 - p)
    assert abs(draws.mean() - mean) <= 5 * math.sqrt(var / draws.size)
    assert abs(draws.var(ddof=1) - var) <= 5 * var * math.sqrt(2.0 / draws.size) + 1e-9


@pytest.mark.parametrize("n,p", [(60, 0.2), (400, 1.0 / 36.5), (5000, 1.0 / 365.0), (10**6, 0.7)])
def test_binomial_rejection_branch_has_the_binomial_distribution(n, p):
    """Chi-square goodness of fit of 40 000 draws (the BTRS branch, mean >= 10) against the
    exact pmf (scipy.stats.binom), cells with expected count >= 20; p-value > 1e-4."""
    from scipy import stats

    draws = np.array(
        [rng.binomial(n, p, np.uint64(rng.stream_key(np.uint64(SEED), rng.LAPSE, r, 4, 0, 1))) for r in range(40_000)]
    )
    q = min(p, 1 - p)
    assert n * q >= rng.BINOMIAL_INVERSION_MAX_MEAN
    support = (
        np.arange(n + 1)
        if n <= 10_000
        else np.arange(int(n * p - 8 * math.sqrt(n * p * (1 - p))), int(n * p + 8 * math.sqrt(n * p * (1 - p))))
    )
    expected = stats.binom.pmf(support, n, p) * draws.size
    observed = np.bincount(draws - support[0], minlength=support.size)[: support.size]
    keep = expected >= 20
    # Pool the tails into one cell each side so that every draw is counted.
    obs = np.concatenate(
        [
            [observed[support < support[keep][0]].sum() + (draws < support[0]).sum()],
            observed[keep],
            [observed[support > support[keep][-1]].sum() + (draws > support[-1]).sum()],
        ]
    )
    exp = np.concatenate(
        [
            [stats.binom.cdf(support[keep][0] - 1, n, p) * draws.size],
            expected[keep],
            [stats.binom.sf(support[keep][-1], n, p) * draws.size],
        ]
    )
    chi2, pvalue = stats.chisquare(obs, exp * obs.sum() / exp.sum())
    assert pvalue > 1e-4, (chi2, pvalue)


SOURCE_CASES = [
    (0.0, 0.0, 0.0),
    (2.5, 0.0, 0.0),
    (0.0, 1.2, 0.0),
    (0.0, 0.0, 0.9),
    (2.5, 0.7, 0.9),
    (0.3, 0.0, 0.9),
    (30.0, 8.0, 5.0),
    (1e-9, 4.0, 2.0),
]


@pytest.mark.parametrize("means", SOURCE_CASES)
def test_poisson_by_source_matches_twin(means):
    """Bit-identical to the twin on both split paths (per unit, T <= 32; binomials above)."""
    totals = set()
    for key in _keys(300, rng.REPEAT):
        split_key = np.uint64(rng.absorb(np.uint64(key), 7))
        drawn = rng.poisson_by_source(*means, np.uint64(key), split_key)
        assert tuple(int(x) for x in drawn) == twins.poisson_by_source(*means, key, int(split_key)), (means, hex(key))
        assert min(drawn) >= 0
        totals.add(sum(drawn) > rng.SPLIT_BY_UNIT_MAX)
    if sum(means) > 40:
        assert totals == {True, False}  # both split paths ran


@pytest.mark.parametrize("means", [(2.5, 0.7, 0.9), (30.0, 8.0, 5.0)])
def test_poisson_by_source_gives_independent_poisson_counts(means):
    """Poisson splitting: each count has its Poisson mean and variance (5 standard errors)
    and the counts are uncorrelated (|r| < 5/sqrt(n)), over 40 000 draws."""
    draws = np.array(
        [
            rng.poisson_by_source(
                *means,
                np.uint64(rng.stream_key(np.uint64(SEED), rng.REPEAT, r, 2, 1, 0)),
                np.uint64(rng.stream_key(np.uint64(SEED), rng.PURCHASE_SOURCE, r, 2, 1, 0)),
            )
            for r in range(40_000)
        ],
        dtype=float,
    )
    n = draws.shape[0]
    for column, mean in enumerate(means):
        assert abs(draws[:, column].mean() - mean) <= 5 * math.sqrt(mean / n)
        assert abs(draws[:, column].var(ddof=1) - mean) <= 5 * math.sqrt((mean + 2 * mean**2) / n)
    correlation = np.corrcoef(draws.T)
    assert np.abs(correlation[np.triu_indices(3, 1)]).max() < 5 / math.sqrt(n)


def test_weekly_lapse_probability_compounds_the_daily_rate():
    daily = 1.0 / 365.0
    weekly = [layer_kernels.lapse_probability_today(day, daily) for day in range(21)]
    assert [day for day, p in enumerate(weekly) if p > 0] == [6, 13, 20]
    assert weekly[6] == pytest.approx(1 - (1 - daily) ** 7, rel=1e-14)
    assert layer_kernels.lapse_probability_today(6, 0.0) == 0.0
    assert layer_kernels.lapse_probability_today(13, 1.0) == 1.0


def test_first_incident_clocks_match_their_stream_and_are_exponential():
    clocks = np.empty((3, 400, 2))
    layer_kernels.first_incident_clocks(np.uint64(SEED), 7, clocks)
    for b, s, m in [(0, 0, 0), (2, 399, 1), (1, 17, 0)]:
        key = twins.stream_key(SEED, twins.INCIDENT, 7 + b, twins.NO_DAY, m, s)
        assert clocks[b, s, m] == twins.standard_exponential(key)
    # Exp(1): mean 1 and P(E > 1) = exp(-1), within 5 standard errors of 2 400 draws.
    assert abs(clocks.mean() - 1.0) <= 5 / math.sqrt(clocks.size)
    tail = (clocks > 1.0).mean()
    assert abs(tail - math.exp(-1)) <= 5 * math.sqrt(math.exp(-1) * (1 - math.exp(-1)) / clocks.size)


def test_incident_clock_gives_the_daily_incident_probability():
    """An Exp(1) clock run down by a daily hazard h fires on day t with probability
    (1 - e^-h) e^-(t-1)h: the geometric law of the daily rule P(incident | none yet) =
    1 - exp(-h). Checked on the first incident day of 20 000 clocks (the kernel's rule:
    subtract h, fire at <= 0) against that geometric pmf, chi-square p > 1e-4."""
    from scipy import stats

    hazard = 0.15
    clocks = np.empty((20_000, 1, 1))
    layer_kernels.first_incident_clocks(np.uint64(SEED), 0, clocks)
    days = np.ceil(clocks.ravel() / hazard).astype(int)  # the first t with E - t h <= 0
    support = np.arange(1, 40)
    expected = stats.geom.pmf(support, -math.expm1(-hazard)) * days.size
    observed = np.bincount(days, minlength=support[-1] + 1)[1 : support[-1] + 1]
    keep = expected >= 20
    obs = np.append(observed[keep], days.size - observed[keep].sum())
    exp = np.append(expected[keep], days.size - expected[keep].sum())
    assert stats.chisquare(obs, exp).pvalue > 1e-4


@njit
def _advance_fx_kernel(b, day, seed, replication, tables, state):
    layer_kernels.advance_fx(b, day, seed, replication, tables, state)


@pytest.fixture(scope="module")
def fx_compiled():
    return compile_scenario(load_scenario(BASELINE, {"horizon.end": "2025-01-10"}), resolution="day")


@HYPOTHESIS
@given(seed=st.integers(0, 2**32 - 1))
def test_advance_fx_matches(fx_compiled, seed):
    g = np.random.default_rng(seed)
    B, C = 3, 2
    M = fx_compiled.n_markets
    market = fx_compiled.market.copy()
    market[:, L.MK_FX_VOLATILITY] = g.choice([0.0, 0.004, 0.02], M)
    market_currency = g.integers(0, C, M)
    active = np.zeros(C, dtype=bool)
    active[market_currency[market[:, L.MK_FX_VOLATILITY] > 0]] = True
    fx_base = np.broadcast_to(g.uniform(0.5, 1.5, M), (fx_compiled.n_days, M)).copy()
    tables = fx_compiled.tables._replace(
        market=market, market_currency=market_currency, currency_active=active, fx_base=fx_base, fx_active=True
    )
    start = g.normal(size=(B, C))
    states = [
        initial_state(fx_compiled, SEED, 5, B)._replace(fx_walk=start.copy(), usd_rate=np.full((B, M), np.nan))
        for _ in range(2)
    ]
    for day in range(3):
        for b in range(B):
            _advance_fx_kernel(b, day, np.uint64(SEED), 5 + b, tables, states[0])
            twins.advance_fx(b, day, SEED, 5 + b, tables, states[1])
        assert np.array_equal(states[0].fx_walk, states[1].fx_walk)
        assert np.allclose(states[0].usd_rate, states[1].usd_rate, rtol=RTOL, atol=0)
    # A market without volatility keeps its base rate exactly.
    still = market[:, L.MK_FX_VOLATILITY] == 0
    assert (states[0].usd_rate[:, still] == np.broadcast_to(fx_base[0], (B, M))[:, still]).all()


LAYER_OVERRIDES = {
    "markets.EU/charging.fx_volatility": 0.01,
    "markets.US/charging.incidents_per_year": 25.0,
    "markets.US/audio.incidents_per_year": 25.0,
    "markets.EU/charging.incidents_per_year": 25.0,
    "markets.US/charging.repeat_purchase_rate": 0.02,
    "markets.US/charging.customer_lapse_rate": 0.05,
    "markets.US/audio.customer_lapse_rate": 0.05,
    "sellers.0.localisation": 0.6,
    "sellers.1.dtc_share": 0.8,
    "sellers.1.ad_guardrail": "cm2_ltv",
    "sellers.2.compliance_investment": 0.5,
    "sellers.2.dtc_share": 0.3,
    "sellers.2.localisation": 0.3,
}


@pytest.fixture(scope="module")
def compiled_layers():
    return compile_scenario(load_scenario(BASELINE, LAYER_OVERRIDES), resolution="day")


def _layered_tables(compiled) -> Tables:
    """The stress run's policy change, and new rules in the US from POLICY_DAY: a raised
    incident hazard for 10 days."""
    tables = _with_policy_change(compiled)
    multiplier = tables.incident_multiplier.copy()
    us = [m for m, name in enumerate(compiled.market_names) if name.startswith("US/")]
    multiplier[POLICY_DAY : POLICY_DAY + 10, us] = 3.0
    return tables._replace(incident_multiplier=multiplier)


def _layered_state(compiled) -> State:
    """The stressed state plus customers (one stock large enough for the binomial's
    normal branch), an interruption in progress and one-off costs due."""
    state = _stressed_state(compiled)
    traffic = list(_population(compiled, "traffic_first"))
    brand = list(_population(compiled, "brand_matrix"))
    us_charging = compiled.market_names.index("US/charging")
    state.layer_sm[..., L.LS_CUSTOMERS] = np.where(compiled.seller_served, 300.0, 0.0)
    state.layer_sm[:, brand, :, L.LS_DTC_CUSTOMERS] = 80.0
    state.layer_sm[1, traffic[3], us_charging, L.LS_CUSTOMERS] = 400_000.0
    state.layer_sm[0, traffic[0], us_charging, L.LS_INTERRUPTED_UNTIL] = 6.0
    state.layer_sm[2, brand[2], us_charging, L.LS_INTERRUPTED_UNTIL] = 3.0
    state.one_off_cost[0, :5] = 1234.5
    return state


@pytest.fixture(scope="module")
def layered_run(compiled_layers):
    return _simulate_both(compiled_layers, _layered_state(compiled_layers), _layered_tables(compiled_layers))


def test_batch_kernels_match_twins_with_every_layer_on(layered_run, compiled_layers):
    assert compiled_layers.tables.fx_active
    assert layered_run["problems"] == []
    trace = layered_run["trace"]
    for event in (
        "incidents",
        "interrupted_listing_days",
        "returns",
        "repeat_sales",
        "dtc_sales",
        "capability_charges",
        "stockouts",
        "lapse_draws",
    ):
        assert trace.get(event, 0) > 0, event
    out = layered_run["out"]
    assert _var(out, "acquisition_spend").sum() > _var(out, "ad_spend").sum()  # DTC acquisition too
    assert _var(out, "capability_costs").sum() > 0
    assert _var(out, "listing_interruptions").sum() >= 5


def _compare_in_stretches(compiled, state: State, tables: Tables, stretch: int) -> list[str]:
    """:func:`_simulate_both` with stretches of ``stretch`` days, as the engine runs them
    between reviews: the kernel keeps values across the days of a stretch (parcel duty,
    sale and choice memos) that the twin works out again every day."""
    kernel_state, twin_state = copy_state(state), copy_state(state)
    kernel_out, twin_out = allocate_outputs(compiled, N_BATCH), allocate_outputs(compiled, N_BATCH)
    work = work_space(compiled, N_BATCH)
    bounds = [(0, 0, True)] + [(d, min(d + stretch, N_DAYS), False) for d in range(0, N_DAYS, stretch)]
    for day0, day1, receive_first in bounds:
        problems = _advance_both(day0, day1, receive_first, tables, kernel_state, kernel_out, twin_state, twin_out,
                                 work, {})
        if problems:  # the first divergence only; later ones follow from it
            return problems
    return []


@pytest.mark.parametrize("ratings_move", [True, False])
def test_batch_kernels_match_twins_over_week_long_stretches(compiled_layers, ratings_move):
    """Every layer on, FX moving daily, the regime change of POLICY_DAY and a fee change on
    POLICY_DAY + 2, all inside week-long stretches: what the kernel keeps within a stretch
    must be worked out again when its inputs change. With fixed ratings, a listing's
    serving pool changing (warehouse stock arriving or selling out) is what changes its
    choice utility within a stretch."""
    tables = _layered_tables(compiled_layers)
    fee_index = tables.fee_index.copy()
    fee_index[POLICY_DAY + 2:] = (fee_index[POLICY_DAY + 2:] + 1) % tables.fee_rows.shape[0]
    tables = tables._replace(fee_index=fee_index)
    if not ratings_move:
        market = tables.market.copy()
        market[:, L.MK_RATING_MEMORY] = 0.0
        tables = tables._replace(market=market)
    assert POLICY_DAY % 7 != 0 and (POLICY_DAY + 2) % 7 != 0 and tables.fx_active
    assert _compare_in_stretches(compiled_layers, _layered_state(compiled_layers), tables, 7) == []


def test_layer_invariants(layered_run, compiled_layers):
    """Returns <= units sold; customers never negative; an interrupted listing sells
    nothing on the marketplace (no clicks either); repeat revenue within revenue and LTV
    consistent with it; and every accounting invariant of the foundation."""
    _invariants(layered_run, compiled_layers)
    out = layered_run["out"]
    days = slice(0, N_DAYS)
    history = layered_run["history"]
    units, returns = _var(out, "units_sold")[:, days], _var(out, "returns")[:, days]
    assert (returns >= 0).all() and (returns <= units).all() and returns.sum() > 0
    customers = history["customers"]
    assert (customers >= 0).all() and (layered_run["state"].layer_sm[..., :2] >= 0).all()
    assert (customers == np.round(customers)).all()
    interrupted = np.moveaxis(history["interrupted"], 0, 1)  # (B, D, S, M) at the market step
    assert interrupted.sum() > 0
    marketplace_units = units - _var(out, "dtc_units")[:, days]
    assert (marketplace_units[interrupted] == 0).all()
    assert (_var(out, "clicks")[:, days][interrupted] == 0).all()
    assert (_var(out, "visibility")[:, days][interrupted] == 0).all()
    np.testing.assert_array_equal(_var(out, "interrupted_days")[:, days], interrupted.astype(np.int32))
    # Repeat and DTC revenue are parts of revenue, priced like every other unit.
    revenue = _var(out, "revenue")[:, days]
    repeat_revenue = _var(out, "repeat_revenue")[:, days]
    assert (repeat_revenue <= revenue * (1 + RTOL) + 1e-9).all()
    assert (_var(out, "dtc_revenue")[:, days] <= revenue * (1 + RTOL) + 1e-9).all()
    # LTV x customers acquired = first-purchase revenue + repeat revenue, to date.
    cumulative_new = _var(out, "new_customers")[:, days].cumsum(axis=1)
    first_purchase_revenue = (revenue - repeat_revenue).cumsum(axis=1)
    has = cumulative_new > 0
    ltv = _var(out, "ltv")[:, days]
    assert np.isnan(ltv[~has & compiled_layers.seller_served]).all()
    np.testing.assert_allclose(
        (ltv * cumulative_new)[has], (first_purchase_revenue + repeat_revenue.cumsum(axis=1))[has], rtol=1e-9
    )
    # Capability costs are a part of the costs.
    assert (_var(out, "capability_costs")[:, days] <= _var(out, "costs")[:, days] * (1 + RTOL)).all()
    ratings = layered_run["state"].rating
    assert (ratings >= 1.0).all() and (ratings <= 5.0).all()
    assert not np.array_equal(ratings, layered_run["initial"].rating)  # ratings moved
    np.testing.assert_allclose(_var(out, "rating")[:, N_DAYS - 1], ratings, rtol=1e-6)  # float32 storage
