"""Replenishment (stochastic lead times) and end-of-day accounting with exit.

Stock policy: one outstanding order per seller-market. When stock falls to the reorder
point ``demand_estimate * (mean lead time + safety_days)`` the seller orders up to
``demand_estimate * (mean lead time + safety_days + cover_days)``, limited to what its
cash and credit line can pay for. The order arrives after a lead time uniform on the
mode's [min, max] days, drawn from the LEAD_TIME stream.

Cash timing: the factory cost is paid when ordering; for bulk imports the sea freight is
paid when ordering too and the import duty on arrival (valued at cost, regime in force on
the arrival day); parcel freight and duty are paid per sale (see kernels.market).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import rng
from .layout import (
    KIND_BULK,
    MD_FREIGHT,
    MD_KIND,
    MD_LEAD_MAX,
    MD_LEAD_MIN,
    O_DUTY,
    OS_COSTS,
    SP_COVER_DAYS,
    SP_SAFETY_DAYS,
)
from .tariff import regime_duty


@njit(cache=True)
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


@njit(cache=True, parallel=True)
def receive_arrivals(day, period, modes, regime, origin, alive, cash, unit_cost, stock,
                     pending_quantity, pending_day, pending_mode, out_sm, out_s):
    """Put orders due today into stock; pay import duty on bulk shipments.

    Shapes as in :func:`cbecsim.kernels.market.market_day`; ``pending_*`` are (B, S, M).
    A seller that has exited receives nothing (its orders are written off).
    """
    n_batch, n_sellers, n_markets = stock.shape
    for b in prange(n_batch):
        for s in range(n_sellers):
            for m in range(n_markets):
                quantity = pending_quantity[b, s, m]
                if quantity <= 0 or pending_day[b, s, m] > day:
                    continue
                pending_quantity[b, s, m] = 0
                if not alive[b, s]:
                    continue
                stock[b, s, m] += quantity
                f = pending_mode[b, s, m]
                if int(modes[f, MD_KIND]) == KIND_BULK:
                    duty = quantity * regime_duty(KIND_BULK, unit_cost[b, s, m], regime[m, origin[s], KIND_BULK])
                    cash[b, s] -= duty
                    out_s[b, period, s, OS_COSTS] += duty
                    out_sm[b, period, s, m, O_DUTY] += duty


@njit(cache=True, parallel=True)
def close_day(day, period, seed, replication0, modes, stock_policy,
              alive, listed, cash, credit_line, fixed_cost, exit_day,
              mode, unit_cost, stock, demand_estimate,
              pending_quantity, pending_day, pending_mode, out_s):
    """Place replenishment orders, charge fixed costs and retire insolvent sellers.

    A seller whose cash ends the day below ``-credit_line``, or that is listed in no market
    (it delisted everywhere: a closure), exits: ``alive`` becomes False for good, every
    listing is removed and ``exit_day`` is set to ``day``.

    Parameters
    ----------
    stock_policy : float64 (B, S, M, N_STOCK)
    credit_line, fixed_cost : float64 (B, S) [USD], [USD/day]
    exit_day : int64 (B, S), -1 while alive
    Other arrays as in :func:`receive_arrivals`.
    """
    n_batch, n_sellers, n_markets = stock.shape
    for b in prange(n_batch):
        replication = replication0 + b
        for s in range(n_sellers):
            if alive[b, s]:
                for m in range(n_markets):
                    if not listed[b, s, m] or pending_quantity[b, s, m] > 0:
                        continue
                    f = mode[b, s, m]
                    lead_min = int(modes[f, MD_LEAD_MIN])
                    lead_max = int(modes[f, MD_LEAD_MAX])
                    unit_payment = unit_cost[b, s, m]
                    if int(modes[f, MD_KIND]) == KIND_BULK:
                        unit_payment += modes[f, MD_FREIGHT]
                    quantity = order_quantity(
                        stock[b, s, m], demand_estimate[b, s, m], 0.5 * (lead_min + lead_max),
                        stock_policy[b, s, m, SP_SAFETY_DAYS], stock_policy[b, s, m, SP_COVER_DAYS],
                        unit_payment, cash[b, s] + credit_line[b, s],
                    )
                    if quantity <= 0:
                        continue
                    lead = rng.uniform_int(
                        lead_min, lead_max,
                        rng.stream_key(seed, rng.LEAD_TIME, replication, day, m, s),
                    )
                    pending_quantity[b, s, m] = quantity
                    pending_day[b, s, m] = day + lead
                    pending_mode[b, s, m] = f
                    payment = quantity * unit_payment
                    cash[b, s] -= payment
                    out_s[b, period, s, OS_COSTS] += payment
                cash[b, s] -= fixed_cost[b, s]
                out_s[b, period, s, OS_COSTS] += fixed_cost[b, s]
                # Insolvent, or closed: a seller listed in no market has left the business
                # (otherwise it would linger, paying overheads, as a "survivor").
                listed_anywhere = False
                for m in range(n_markets):
                    listed_anywhere = listed_anywhere or listed[b, s, m]
                if cash[b, s] < -credit_line[b, s] or not listed_anywhere:
                    alive[b, s] = False
                    exit_day[b, s] = day
                    for m in range(n_markets):
                        listed[b, s, m] = False
