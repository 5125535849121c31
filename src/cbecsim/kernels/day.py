"""The day loop inside the kernel: one call advances a batch through a stretch of days.

The engine calls :func:`advance` once per stretch between review events (a strategy
review, a fork), so a replication's state stays hot in cache for the whole stretch and
the calendar's per-event cost is paid per review, not per day. Replications run in
parallel on the engine's threads (the kernel releases the GIL; each thread advances its
own replications); each one is stepped by the serial :func:`advance_replication`.

There is one entry point from Python, :func:`advance`: a stretch of zero days with
``receive_first`` only receives a day's arrivals (day 0, or each world after a fork).
Every further entry point would be compiled (and cached) with its own copy of the steps.

Within day ``d`` of a stretch, in this order (the regime in force is
``tables.regime_tables[tables.regime_index[d]]``, so dated duty changes need no event):

1. FX rates of the day (:func:`cbecsim.kernels.layers.advance_fx`), when they move;
2. every market (:func:`cbecsim.kernels.market.market_day`): shoppers, auction, choice,
   sales, returns, customers, ratings, incidents, settlement, flywheel;
3. capability costs (:func:`cbecsim.kernels.layers.charge_capabilities`);
4. replenishment orders, fixed costs, exits (:func:`cbecsim.kernels.fulfilment.close_day`);
5. on the last day of an output period, :func:`close_period` (snapshots, ratios, means);
6. the arrivals of day ``d + 1`` (:func:`cbecsim.kernels.fulfilment.receive_arrivals`), so
   a review on day ``d + 1`` sees that morning's stock, as the SimPy calendar ordered it
   (arrivals at d+0.1, reviews at d+0.2, the market at d+0.5) -- except after the last
   day of a stretch with ``receive_last`` False: then the next stretch receives them first
   (``receive_first``: day 0, and each world after a fork, under its own regime).
"""

from __future__ import annotations

import math

from numba import njit

from . import layout as L
from . import state as K
from .fulfilment import close_day, inventory_value, receive_arrivals
from .layers import advance_fx, charge_capabilities
from .market import market_day, prepare_stretch


def _ratio(numerator, denominator):
    return numerator / denominator if denominator > 0.0 else math.nan


ratio = njit(cache=True, _nrt=False, inline="always")(_ratio)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def close_period(b, row, period, tables, state, out):
    """End of output period ``period`` for replication ``b``: write the period's flows
    (summed in the period accumulators), the period-end levels (cash, equity = cash +
    inventory at cost, alive, rating, stock, inventory value, customers), the ratios and
    means of the period (landed cost, visibility,
    organic share, return rate, repeat-purchase rate, delivery days, CAC, LTV to date,
    top-market share), and reset the period accumulators.

    Ratios are NaN where their denominator is 0 (no sales, no new customers, ...), as the
    result variables document. Cells of markets a seller cannot list in keep the fill
    value of their output (0, or NaN for ratios).
    """
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    days = tables.period_days[period]
    f8, f4, i4 = out.sm_f8, out.sm_f4, out.sm_i4
    for s in range(n_sellers):
        out.s_f8[K.OS_CASH, row, period, s] = state.cash[b, s]
        out.s_f8[K.OS_COSTS, row, period, s] = state.seller_sum[b, s, K.SACC_COSTS]
        out.s_f8[K.OS_CAPABILITY_COSTS, row, period, s] = state.seller_sum[b, s, K.SACC_CAPABILITY_COSTS]
        out.s_f8[K.OS_INTEREST, row, period, s] = state.seller_sum[b, s, K.SACC_INTEREST]
        for a in range(K.N_SACC):
            state.seller_sum[b, s, a] = 0.0
        equity = state.cash[b, s]
        for m in range(n_markets):
            equity += inventory_value(state, b, s, m)
        out.s_f8[K.OS_EQUITY, row, period, s] = equity
        out.s_b1[K.OS_ALIVE, row, period, s] = state.alive[b, s]
        out.s_f4[K.OS_RATING, row, period, s] = state.rating[b, s]
        top = 0.0
        total = 0.0
        for m in range(n_markets):
            revenue = state.period_sum[b, s, m, K.ACC_REVENUE]
            total += revenue
            if revenue > top:
                top = revenue
        out.s_f4[K.OS_TOP_SHARE, row, period, s] = ratio(top, total)
    for m in range(n_markets):
        for j in range(tables.market_offsets[m], tables.market_offsets[m + 1]):
            s = tables.market_sellers[j]
            acc = state.period_sum[b, s, m]
            units = acc[K.ACC_UNITS]
            f8[K.O_REVENUE, row, period, s, m] = acc[K.ACC_REVENUE]
            f8[K.O_AD_SPEND, row, period, s, m] = acc[K.ACC_AD_SPEND]
            f8[K.O_DUTY, row, period, s, m] = acc[K.ACC_DUTY]
            f8[K.O_CM2, row, period, s, m] = acc[K.ACC_CM2]
            f8[K.O_REFUNDS, row, period, s, m] = acc[K.ACC_REFUNDS]
            f8[K.O_REPEAT_REVENUE, row, period, s, m] = acc[K.ACC_REPEAT_REVENUE]
            f8[K.O_ACQUISITION, row, period, s, m] = acc[K.ACC_ACQUISITION]
            f8[K.O_DTC_REVENUE, row, period, s, m] = acc[K.ACC_DTC_REVENUE]
            f8[K.O_FEES, row, period, s, m] = acc[K.ACC_FEES]
            f8[K.O_INVENTORY_VALUE, row, period, s, m] = inventory_value(state, b, s, m)
            i4[K.O_UNITS_FROM_WAREHOUSE, row, period, s, m] = acc[K.ACC_UNITS_FROM_WAREHOUSE]
            i4[K.O_UNITS, row, period, s, m] = acc[K.ACC_UNITS]
            i4[K.O_LOST, row, period, s, m] = acc[K.ACC_LOST]
            i4[K.O_CLICKS, row, period, s, m] = acc[K.ACC_CLICKS]
            i4[K.O_RETURNS, row, period, s, m] = acc[K.ACC_RETURNS]
            i4[K.O_INCIDENTS, row, period, s, m] = acc[K.ACC_INCIDENTS]
            i4[K.O_INTERRUPTED_DAYS, row, period, s, m] = acc[K.ACC_INTERRUPTED_DAYS]
            i4[K.O_LISTED_DAYS, row, period, s, m] = acc[K.ACC_LISTED_DAYS]
            i4[K.O_NEW_CUSTOMERS, row, period, s, m] = acc[K.ACC_NEW_CUSTOMERS]
            i4[K.O_DTC_NEW_CUSTOMERS, row, period, s, m] = acc[K.ACC_DTC_NEW_CUSTOMERS]
            i4[K.O_DTC_UNITS, row, period, s, m] = acc[K.ACC_DTC_UNITS]
            i4[K.O_STOCK, row, period, s, m] = state.stock[b, s, m]
            i4[K.O_CUSTOMERS, row, period, s, m] = \
                state.layer_sm[b, s, m, L.LS_CUSTOMERS] + state.layer_sm[b, s, m, L.LS_DTC_CUSTOMERS]
            f8[K.O_LANDED_COST, row, period, s, m] = ratio(acc[K.ACC_LANDED], acc[K.ACC_DAYS])
            f8[K.O_CAC, row, period, s, m] = ratio(acc[K.ACC_ACQUISITION], acc[K.ACC_NEW_CUSTOMERS])
            f8[K.O_LTV, row, period, s, m] = ratio(acc[K.ACC_CUM_REVENUE], acc[K.ACC_CUM_NEW_CUSTOMERS])
            # Mean over the period's days (not the seller's trading days), so the shares of
            # a market's sellers sum to at most 1 even when one exits part-way through.
            f4[K.O_VISIBILITY, row, period, s, m] = acc[K.ACC_VISIBILITY] / days
            f4[K.O_ORGANIC_SHARE, row, period, s, m] = ratio(acc[K.ACC_ORGANIC_UNITS], units)
            f4[K.O_RETURN_RATE, row, period, s, m] = ratio(acc[K.ACC_RETURNS], units)
            f4[K.O_REPEAT_RATE, row, period, s, m] = ratio(acc[K.ACC_REPEAT_UNITS], units)
            f4[K.O_DELIVERY_DAYS, row, period, s, m] = ratio(acc[K.ACC_DELIVERY_UNIT_DAYS], units)
            for a in range(K.N_ACC_PERIOD):
                acc[a] = 0.0


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def advance_replication(b, day0, day1, receive_first, receive_last, seed, replication, row, tables, state, out, work):
    """Days ``day0 .. day1 - 1`` of replication ``b`` (global index ``replication``),
    writing its outputs to ``row`` (see the module docstring for the order)."""
    n_days = tables.period_of_day.shape[0]
    n_markets = tables.market.shape[0]
    prepare_stretch(b, tables, state, work)
    # Day d's arrivals open day d (one call site: every further site is compiled anew).
    for day in range(day0, day1 + 1):
        if day < n_days and (day > day0 or receive_first) and (day < day1 or receive_last):
            receive_arrivals(b, row, tables.period_of_day[day], day,
                             tables.regime_tables[tables.regime_index[day]], tables, state, out)
        if day == day1:
            break
        period = tables.period_of_day[day]
        regime = tables.regime_tables[tables.regime_index[day]]
        if tables.fx_active:
            advance_fx(b, day, seed, replication, tables, state)
        for m in range(n_markets):
            market_day(b, m, row, period, day, seed, replication, regime, tables, state, out, work)
        charge_capabilities(b, row, period, tables, state, out)
        close_day(b, row, period, day, seed, replication, tables, state, out)
        if tables.period_last_day[day]:
            close_period(b, row, period, tables, state, out)


@njit(cache=True, _nrt=False, nogil=True)
def advance(day0, day1, receive_first, receive_last, seed, replication0, row0, b0, b1, tables, state, out, work):
    """Advance replications ``b0 .. b1 - 1`` of the batch through days ``day0 .. day1 - 1``.

    Serial and without the GIL: the engine runs disjoint ranges of replications on
    several threads at once (each replication's path depends on its own state and
    streams only, so the split never changes a result).

    Parameters
    ----------
    day0, day1 : int
        The stretch (day indices from the horizon start; RNG key components).
    receive_first : bool
        First receive the arrivals of day ``day0`` (day 0, and the first stretch after a
        fork; otherwise the previous stretch received them).
    receive_last : bool
        Also receive the arrivals of day ``day1`` (else the next stretch must, with
        ``receive_first``).
    seed : uint64
    replication0 : int
        Global index of the batch's first replication (RNG key component).
    row0 : int
        Row of the batch's first replication in the output arrays (0 for per-batch
        buffers, ``replication0 - first`` for arrays that hold the whole run).
    b0, b1 : int
        The replications of the batch this call advances.
    tables : state.Tables; state : state.State (B replications); out : state.Outputs;
    work : state.Work (B rows)
    """
    for b in range(b0, b1):
        advance_replication(
            b, day0, day1, receive_first, receive_last, seed, replication0 + b, row0 + b, tables, state, out, work
        )
