"""Replenishment, stock pools and the end-of-day accounts: storage, interest, exits.

Stock policy: one outstanding order per seller-market. When stock falls to the reorder
point ``demand_estimate * (mean lead time + safety_days)`` -- or at once when the strategy
set ``order_now`` (kept until the first close with no order outstanding) -- the
seller orders up to ``demand_estimate * (mean lead time + safety_days + cover_days)``,
unless its imports are paused. The **liquidity policy** caps
the order at what cash plus the credit line can pay for after reserving the fixed costs
until the seller's next review (``credit[CR_RESERVE_DAYS]`` days): an order never drives
the seller past its credit line. The order arrives after a lead time uniform on the
mode's [min, max] days, drawn from the LEAD_TIME stream, into the pool of its mode's kind:
the warehouse for a bulk mode, the origin for a parcel-kind mode.

Cash timing: the factory cost is paid when ordering; for bulk imports the sea freight is
paid when ordering too, and the import duty (valued at cost, regime in force on the
arrival day) and the inbound placement fee on arrival; parcel freight and duty are paid
per sale (see kernels.market). Each pool's units carry a moving-average landed cost: what
was paid for them (factory, freight, duty, inbound placement), so a sale's CM2 uses the
cost of the stock it ships, not the duty of the sale day.

End of day: warehouse storage (the market's fee schedule per unit-day, with its peak
months, or the mode's own rate), interest on drawn credit (negative cash), fixed costs and
any fulfilment-switch cost due, then the exit test. A seller exits

* **insolvent** when its equity (cash + inventory at cost) is below minus its credit
  line, or when its cash is past the credit line and the stock it holds or has in transit
  cannot bring it back within ``credit[CR_RECOVERY_DAYS]`` days (units it can sell in that
  time at its demand estimate, times the cash a unit brings in, less the fixed costs);
* for the reason its strategy gave (``exit_request``: unprofitable or strategic) when it
  is listed in no market.

An exited seller's inventory is written off (no liquidation value) and its orders in
transit are lost.

Arguments follow :mod:`cbecsim.kernels.market`: ``b`` the replication's index in the
batch, ``row``/``period`` where its outputs go, the structures of
:mod:`cbecsim.kernels.state`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import layout as L
from . import rng
from . import state as K
from .tariff import regime_duty


@njit(cache=True, _nrt=False, inline="always")
def reorder_due(stock, demand_estimate, lead_mean, safety_days, now):
    """The reorder-point rule: an order is due at or below ``demand x (lead + safety)``
    units in stock, or ``now`` (front-loading)."""
    return now or not stock > demand_estimate * (lead_mean + safety_days)


@njit(cache=True, _nrt=False)
def order_quantity(stock, demand_estimate, lead_mean, safety_days, cover_days, unit_payment, spendable,
                   now=False):
    """Units to order today (0 if none) under the reorder-point / order-up-to rule.

    ``spendable`` is what the liquidity policy leaves for the order [USD]; ``unit_payment``
    is paid (or reserved) per unit ordered. ``now``: order up to target even above the
    reorder point (front-loading).
    """
    if not reorder_due(stock, demand_estimate, lead_mean, safety_days, now):
        return np.int64(0)
    target = np.int64(math.ceil(demand_estimate * (lead_mean + safety_days + cover_days)))
    quantity = target - stock
    if quantity <= 0 or unit_payment <= 0.0:
        return np.int64(max(quantity, 0))
    affordable = np.int64(math.floor(spendable / unit_payment)) if spendable > 0.0 else np.int64(0)
    return quantity if quantity < affordable else affordable


@njit(cache=True, _nrt=False, inline="always")
def add_to_pool(state, b, s, m, pool, quantity, unit_cost):
    """``quantity`` units costing ``unit_cost`` each join a pool: its moving-average cost."""
    if pool == L.POOL_WAREHOUSE:
        held = state.warehouse_stock[b, s, m]
        state.warehouse_stock[b, s, m] = held + quantity
    else:
        held = state.stock[b, s, m] - state.warehouse_stock[b, s, m]
    total = held + quantity
    if total > 0:
        state.pool_cost[b, s, m, pool] = (held * state.pool_cost[b, s, m, pool] + quantity * unit_cost) / total
    state.stock[b, s, m] += quantity


@njit(cache=True, _nrt=False)
def inbound_fee_usd(mode_row, fee_row, usd_rate):
    """Inbound placement per unit received into a warehouse [USD/unit] (schedule fees only)."""
    if mode_row[L.MD_SCHEDULE_FEES] > 0.5:
        return fee_row[L.FE_INBOUND] * usd_rate
    return 0.0


@njit(cache=True, _nrt=False)
def import_payment_per_unit(mode_row, unit_cost, regime_row, fee_row, usd_rate):
    """Cash one unit ordered in ``mode_row`` commits [USD/unit]: the factory cost, and for a
    bulk import also its freight, the import duty and the inbound placement due on arrival
    (at today's regime and fees: what the liquidity policy reserves). ``regime_row`` is the
    bulk row of the seller's market and origin."""
    if int(mode_row[L.MD_KIND]) != L.KIND_BULK:
        return unit_cost
    return (unit_cost + mode_row[L.MD_FREIGHT] + regime_duty(L.KIND_BULK, unit_cost, regime_row)
            + inbound_fee_usd(mode_row, fee_row, usd_rate))


@njit(cache=True, _nrt=False)
def initial_warehouse_cost(tables, unit_cost, mode, usd_rate, out):
    """Landed cost of the day-0 stock of bulk listings [USD/unit], as if imported under
    day 0's regime and fees (the stock a seller starts with is already paid for).

    unit_cost, out : float64 (B, S, M); mode : int64 (B, S, M); usd_rate : float64 (B, M)
    """
    regime = tables.regime_tables[tables.regime_index[0]]
    n_batch, n_sellers, n_markets = unit_cost.shape
    for b in range(n_batch):
        for s in range(n_sellers):
            for m in range(n_markets):
                out[b, s, m] = import_payment_per_unit(tables.mode_by_origin[tables.origin[s], mode[b, s, m]],
                                                       unit_cost[b, s, m],
                                                       regime[m, tables.origin[s], L.KIND_BULK],
                                                       tables.fee_rows[tables.fee_index[0, m]], usd_rate[b, m])


@njit(cache=True, _nrt=False, no_cpython_wrapper=True, inline="always")
def receive_arrivals(b, row, period, day, regime, tables, state, out):
    """Put replication ``b``'s orders due today into their pool; pay import duty and
    inbound placement on bulk ones (into the pool's landed cost). (An exited seller has no
    orders: they were written off when it exited.)"""
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    for s in range(n_sellers):
        for m in range(n_markets):
            quantity = state.pending_quantity[b, s, m]
            if quantity <= 0 or state.pending_day[b, s, m] > day:
                continue
            state.pending_quantity[b, s, m] = 0
            f = state.pending_mode[b, s, m]
            mode_row = tables.modes[f]
            unit_cost = state.pending_cost[b, s, m]
            if int(mode_row[L.MD_KIND]) == L.KIND_BULK:
                duty = quantity * regime_duty(L.KIND_BULK, state.unit_cost[b, s, m],
                                              regime[m, state.pending_origin[b, s, m], L.KIND_BULK])
                inbound = quantity * inbound_fee_usd(mode_row, tables.fee_rows[tables.fee_index[day, m]],
                                                     state.usd_rate[b, m])
                paid = duty + inbound
                state.cash[b, s] -= paid
                state.seller_sum[b, s, K.SACC_COSTS] += paid
                state.period_sum[b, s, m, K.ACC_DUTY] += duty
                add_to_pool(state, b, s, m, L.POOL_WAREHOUSE, quantity, unit_cost + paid / quantity)
                state.pool_mode[b, s, m, L.POOL_WAREHOUSE] = f
            else:
                add_to_pool(state, b, s, m, L.POOL_ORIGIN, quantity, unit_cost)
                # The origin stock ships (and pays duty) as from its latest delivery's origin.
                state.pool_origin[b, s, m] = state.pending_origin[b, s, m]
            state.pending_cost[b, s, m] = 0.0


@njit(cache=True, _nrt=False, inline="always")
def inventory_value(state, b, s, m):
    """Stock on hand and in transit of one listing at cost [USD]: each pool at its
    moving-average landed cost, an order in transit at what was paid for it so far."""
    warehouse = state.warehouse_stock[b, s, m]
    return ((state.stock[b, s, m] - warehouse) * state.pool_cost[b, s, m, L.POOL_ORIGIN]
            + warehouse * state.pool_cost[b, s, m, L.POOL_WAREHOUSE]
            + state.pending_quantity[b, s, m] * state.pending_cost[b, s, m])


@njit(cache=True, _nrt=False)
def listing_inventory_values(state, seller0, out):
    """:func:`inventory_value` of sellers ``seller0 .. seller0 + n - 1``, into ``out`` (B, n, M)."""
    n_batch, n_sellers, n_markets = out.shape
    for b in range(n_batch):
        for i in range(n_sellers):
            for m in range(n_markets):
                out[b, i, m] = inventory_value(state, b, seller0 + i, m)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True, inline="always")
def storage_fee_usd(b, s, m, day, tables, state):
    """Today's storage of the listing's warehouse stock [USD]."""
    units = state.warehouse_stock[b, s, m]
    if units <= 0:
        return 0.0
    mode_row = tables.modes[state.pool_mode[b, s, m, L.POOL_WAREHOUSE]]
    if mode_row[L.MD_SCHEDULE_FEES] > 0.5:
        return units * tables.storage_fee_day[day, m] * state.usd_rate[b, m]
    return units * mode_row[L.MD_STORAGE_MONTH] * (12.0 / 365.0)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True, inline="always")
def close_day(b, row, period, day, seed, replication, tables, state, out):
    """Storage, replenishment orders, interest and fixed costs of replication ``b``, then
    the exit test (see the module docstring)."""
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    regime = tables.regime_tables[tables.regime_index[day]]
    for s in range(n_sellers):
        if not state.alive[b, s]:
            continue
        # Production moves to the new origin on the day a strategy's move takes effect:
        # orders placed from today's close ship from there (and pay its duty).
        if state.origin_switch_day[b, s] >= 0 and day >= state.origin_switch_day[b, s]:
            state.origin[b, s] = state.origin_switch_to[b, s]
            state.origin_switch_day[b, s] = -1
            out.origin[row, s] = state.origin[b, s]
        origin = state.origin[b, s]
        modes = tables.mode_by_origin[origin]  # freight and lead times from the production origin
        credit = state.credit[b, s]
        for m in range(n_markets):
            storage = storage_fee_usd(b, s, m, day, tables, state)
            if storage > 0.0:
                state.cash[b, s] -= storage
                state.seller_sum[b, s, K.SACC_COSTS] += storage
                acc = state.period_sum[b, s, m]
                acc[K.ACC_CM2] -= storage
                acc[K.ACC_FEES] += storage
                state.window[b, s, m, L.W_CM2] -= storage
                state.window[b, s, m, L.W_FEES] += storage
        for m in range(n_markets):
            # order_now waits for the first close with no order outstanding (front-loading
            # while the last order is still at sea); it is cleared once that order is decided.
            now = state.order_now[b, s, m]
            if not state.listed[b, s, m] or state.pending_quantity[b, s, m] > 0 or state.imports_paused[b, s, m]:
                continue
            state.order_now[b, s, m] = False
            f = state.mode[b, s, m]
            lead_min = int(modes[f, L.MD_LEAD_MIN])
            lead_max = int(modes[f, L.MD_LEAD_MAX])
            if not reorder_due(state.stock[b, s, m], state.demand_estimate[b, s, m], 0.5 * (lead_min + lead_max),
                               state.stock_policy[b, s, m, L.SP_SAFETY_DAYS], now):
                continue  # above the reorder point: order_quantity would be 0 (so no payment worked out)
            unit_payment = import_payment_per_unit(modes[f], state.unit_cost[b, s, m],
                                                   regime[m, origin, L.KIND_BULK],
                                                   tables.fee_rows[tables.fee_index[day, m]], state.usd_rate[b, m])
            spendable = state.cash[b, s] + state.credit_line[b, s] - state.fixed_cost[b, s] * credit[L.CR_RESERVE_DAYS]
            quantity = order_quantity(
                state.stock[b, s, m], state.demand_estimate[b, s, m], 0.5 * (lead_min + lead_max),
                state.stock_policy[b, s, m, L.SP_SAFETY_DAYS], state.stock_policy[b, s, m, L.SP_COVER_DAYS],
                unit_payment, spendable, now,
            )
            if quantity <= 0:
                continue
            lead = rng.uniform_int(lead_min, lead_max, rng.stream_key(seed, rng.LEAD_TIME, replication, day, m, s))
            paid_now = state.unit_cost[b, s, m]
            if int(modes[f, L.MD_KIND]) == L.KIND_BULK:
                paid_now += modes[f, L.MD_FREIGHT]
            state.pending_quantity[b, s, m] = quantity
            state.pending_day[b, s, m] = day + lead
            state.pending_mode[b, s, m] = f
            state.pending_origin[b, s, m] = origin
            state.pending_cost[b, s, m] = paid_now
            payment = quantity * paid_now
            state.cash[b, s] -= payment
            state.seller_sum[b, s, K.SACC_COSTS] += payment
        if state.cash[b, s] < 0.0 and credit[L.CR_INTEREST_DAY] > 0.0:
            interest = -state.cash[b, s] * credit[L.CR_INTEREST_DAY]
            state.cash[b, s] -= interest
            state.seller_sum[b, s, K.SACC_COSTS] += interest
            state.seller_sum[b, s, K.SACC_INTEREST] += interest
        overheads = state.fixed_cost[b, s] + state.switch_cost_due[b, s]
        state.switch_cost_due[b, s] = 0.0
        state.cash[b, s] -= overheads
        state.seller_sum[b, s, K.SACC_COSTS] += overheads
        reason = exit_test(b, s, day, tables, state)
        if reason != L.EXIT_SURVIVED:
            state.alive[b, s] = False
            state.exit_day[b, s] = day
            state.exit_reason[b, s] = reason
            out.exit_day[row, s] = day
            out.exit_reason[row, s] = reason
            for m in range(n_markets):
                state.listed[b, s, m] = False
                # Written off: no liquidation value.
                state.stock[b, s, m] = 0
                state.warehouse_stock[b, s, m] = 0
                state.pending_quantity[b, s, m] = 0
                state.pending_cost[b, s, m] = 0.0


@njit(cache=True, _nrt=False, no_cpython_wrapper=True, inline="always")
def exit_test(b, s, day, tables, state):
    """The reason seller ``s`` exits today (layout.EXIT_*), EXIT_SURVIVED if it stays."""
    n_markets = state.stock.shape[2]
    credit = state.credit[b, s]
    cash = state.cash[b, s]
    floor = -state.credit_line[b, s]
    listed_anywhere = False
    inventory = 0.0
    for m in range(n_markets):
        listed_anywhere = listed_anywhere or state.listed[b, s, m]
        inventory += inventory_value(state, b, s, m)
    if cash + inventory < floor:
        return L.EXIT_INSOLVENT
    if cash < floor:
        # Past the credit line: can the stock it holds bring the cash back in time?
        horizon = credit[L.CR_RECOVERY_DAYS]
        recoverable = -state.fixed_cost[b, s] * horizon
        for m in range(n_markets):
            if not state.listed[b, s, m]:
                continue
            sellable = state.stock[b, s, m]
            if state.pending_quantity[b, s, m] > 0 and state.pending_day[b, s, m] <= day + horizon:
                sellable += state.pending_quantity[b, s, m]
            units = min(float(sellable), state.demand_estimate[b, s, m] * horizon)
            margin = state.unit_cash_margin[b, s, m]
            if margin > 0.0:
                recoverable += units * margin
        if cash + recoverable < floor:
            return L.EXIT_INSOLVENT
    if not listed_anywhere:
        # It left every market: a closure, for the reason its strategy gave.
        return state.exit_request[b, s]
    return L.EXIT_SURVIVED
