"""Replenishment (stochastic lead times) and end-of-day accounting with exit, per replication.

Stock policy: one outstanding order per seller-market. When stock falls to the reorder
point ``demand_estimate * (mean lead time + safety_days)`` the seller orders up to
``demand_estimate * (mean lead time + safety_days + cover_days)``, limited to what its
cash and credit line can pay for. The order arrives after a lead time uniform on the
mode's [min, max] days, drawn from the LEAD_TIME stream.

Cash timing: the factory cost is paid when ordering; for bulk imports the sea freight is
paid when ordering too and the import duty on arrival (valued at cost, regime in force on
the arrival day); parcel freight and duty are paid per sale (see kernels.market).

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


@njit(cache=True, _nrt=False)
def order_quantity(stock, demand_estimate, lead_mean, safety_days, cover_days, unit_payment, spendable):
    """Units to order today (0 if none) under the reorder-point / order-up-to rule.

    ``spendable`` is cash + credit line [USD]; ``unit_payment`` is paid per unit ordered.
    """
    if stock > demand_estimate * (lead_mean + safety_days):
        return np.int64(0)
    target = np.int64(math.ceil(demand_estimate * (lead_mean + safety_days + cover_days)))
    quantity = target - stock
    if quantity <= 0 or unit_payment <= 0.0:
        return np.int64(max(quantity, 0))
    affordable = np.int64(math.floor(spendable / unit_payment)) if spendable > 0.0 else np.int64(0)
    return quantity if quantity < affordable else affordable


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def receive_arrivals(b, row, period, day, regime, tables, state, out):
    """Put replication ``b``'s orders due today into stock; pay import duty on bulk ones.

    A seller that has exited receives nothing (its orders are written off).
    """
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    for s in range(n_sellers):
        for m in range(n_markets):
            quantity = state.pending_quantity[b, s, m]
            if quantity <= 0 or state.pending_day[b, s, m] > day:
                continue
            state.pending_quantity[b, s, m] = 0
            if not state.alive[b, s]:
                continue
            state.stock[b, s, m] += quantity
            f = state.pending_mode[b, s, m]
            if int(tables.modes[f, L.MD_KIND]) == L.KIND_BULK:
                duty = quantity * regime_duty(L.KIND_BULK, state.unit_cost[b, s, m],
                                              regime[m, tables.origin[s], L.KIND_BULK])
                state.cash[b, s] -= duty
                state.seller_sum[b, s, K.SACC_COSTS] += duty
                state.period_sum[b, s, m, K.ACC_DUTY] += duty


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def close_day(b, row, period, day, seed, replication, tables, state, out):
    """Place replication ``b``'s replenishment orders, charge fixed costs, retire insolvent sellers.

    A seller whose cash ends the day below ``-credit_line``, or that is listed in no market
    (it delisted everywhere: a closure), exits: ``alive`` becomes False for good, every
    listing is removed and ``exit_day`` is set to ``day``.
    """
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    modes = tables.modes
    for s in range(n_sellers):
        if not state.alive[b, s]:
            continue
        for m in range(n_markets):
            if not state.listed[b, s, m] or state.pending_quantity[b, s, m] > 0:
                continue
            f = state.mode[b, s, m]
            lead_min = int(modes[f, L.MD_LEAD_MIN])
            lead_max = int(modes[f, L.MD_LEAD_MAX])
            unit_payment = state.unit_cost[b, s, m]
            if int(modes[f, L.MD_KIND]) == L.KIND_BULK:
                unit_payment += modes[f, L.MD_FREIGHT]
            quantity = order_quantity(
                state.stock[b, s, m], state.demand_estimate[b, s, m], 0.5 * (lead_min + lead_max),
                state.stock_policy[b, s, m, L.SP_SAFETY_DAYS], state.stock_policy[b, s, m, L.SP_COVER_DAYS],
                unit_payment, state.cash[b, s] + state.credit_line[b, s],
            )
            if quantity <= 0:
                continue
            lead = rng.uniform_int(lead_min, lead_max, rng.stream_key(seed, rng.LEAD_TIME, replication, day, m, s))
            state.pending_quantity[b, s, m] = quantity
            state.pending_day[b, s, m] = day + lead
            state.pending_mode[b, s, m] = f
            payment = quantity * unit_payment
            state.cash[b, s] -= payment
            state.seller_sum[b, s, K.SACC_COSTS] += payment
        state.cash[b, s] -= state.fixed_cost[b, s]
        state.seller_sum[b, s, K.SACC_COSTS] += state.fixed_cost[b, s]
        # Insolvent, or closed: a seller listed in no market has left the business
        # (otherwise it would linger, paying overheads, as a "survivor").
        listed_anywhere = False
        for m in range(n_markets):
            listed_anywhere = listed_anywhere or state.listed[b, s, m]
        if state.cash[b, s] < -state.credit_line[b, s] or not listed_anywhere:
            state.alive[b, s] = False
            state.exit_day[b, s] = day
            out.exit_day[row, s] = day
            for m in range(n_markets):
                state.listed[b, s, m] = False
