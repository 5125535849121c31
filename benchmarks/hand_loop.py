"""A hand-written numba loop of the core market day: the reference ``cbecsim run`` of
``configs/bench_core.yaml`` is measured against (benchmarks/throughput.py).

It does the same model work as the engine on that config, written as one tight loop per
replication with no structures, no SimPy, no Python strategies and no Dataset: Poisson
shoppers; one 4-slot GSP auction a day with budgets (clicks Poisson per slot, capped by
the budget left); organic attention by visibility score plus sponsored attention and an
attention-weighted logit with an outside option; Poisson demand (exact thinning) capped
by stock; landed cost with the day's ad valorem duty (a tariff jump mid-year), referral
fee on the price, freight and duty paid per parcel; the sales flywheel and the demand
EWMA; reorder point / order-up-to replenishment with uniform lead times paid at order;
fixed costs and exit below the credit line; a weekly review that sets each listing's
budget to 28% of its trailing revenue per day (at least 20); and monthly sums of revenue,
units, ad spend, CM2 and clicks per seller-market. Random numbers come from the engine's
own counter-based generator and samplers (:mod:`cbecsim.kernels.rng`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cbecsim.kernels import rng


@njit(cache=True)
def hand_loop(n_reps, n_days, shoppers, reference, slots, ctr, impression_share, organic_mass, floor,
              base_utility, beta, rating_weight, delta, delivery_days, referral_rate, referral_min, freight,
              duty_day, duty_before, duty_after, unit_cost0, price_index, bid0, budget0, cash0, credit,
              fixed_cost, expected0, lead_min, lead_max, safety, cover, rating, month_of_day, out):
    """Simulate ``n_reps`` replications; ``out`` (12, S, M, 5) gets monthly sums of
    revenue, units, ad spend, CM2 and clicks of the last replication. Returns the sum of
    final cash over replications (so no work can be optimised away)."""
    n_sellers, n_markets = unit_cost0.shape[1], unit_cost0.shape[2]
    seed = np.uint64(1)
    stock = np.empty((n_sellers, n_markets), dtype=np.int64)
    pending = np.zeros((n_sellers, n_markets), dtype=np.int64)
    pending_day = np.zeros((n_sellers, n_markets), dtype=np.int64)
    visibility = np.zeros((n_sellers, n_markets))
    demand_estimate = np.empty((n_sellers, n_markets))
    budget = np.empty((n_sellers, n_markets))
    trailing = np.zeros((n_sellers, n_markets))
    price = np.empty((n_sellers, n_markets))
    cash = np.empty(n_sellers)
    alive = np.empty(n_sellers, dtype=np.bool_)
    weight = np.empty(n_sellers)
    remaining = np.empty(n_sellers)
    eligible = np.empty(n_sellers, dtype=np.bool_)
    sponsored = np.empty(n_sellers)
    winners = np.empty(slots + 1, dtype=np.int64)
    win_score = np.empty(slots + 1)
    total = 0.0
    lead_mean = 0.5 * (lead_min + lead_max)
    for r in range(n_reps):
        u = r % unit_cost0.shape[0]
        for s in range(n_sellers):
            cash[s] = cash0
            alive[s] = True
            for m in range(n_markets):
                price[s, m] = price_index[u, s, m] * reference[m]
                demand_estimate[s, m] = expected0
                stock[s, m] = np.int64(math.ceil(expected0 * (lead_mean + safety + cover)))
                pending[s, m] = 0
                visibility[s, m] = 0.0
                budget[s, m] = budget0
                trailing[s, m] = 0.0
        out[:, :, :, :] = 0.0
        for d in range(n_days):
            month = month_of_day[d]
            duty_rate = duty_after if d >= duty_day else duty_before
            # Arrivals.
            for s in range(n_sellers):
                for m in range(n_markets):
                    if pending[s, m] > 0 and pending_day[s, m] <= d:
                        if alive[s]:
                            stock[s, m] += pending[s, m]
                        pending[s, m] = 0
            for m in range(n_markets):
                arrivals = rng.poisson(shoppers[m], rng.stream_key(seed, rng.ARRIVALS, r, d, m, -1))
                # One GSP auction over `slots` slots.
                count = 0
                for s in range(n_sellers):
                    sponsored[s] = 0.0
                    remaining[s] = budget[s, m]
                    bid = bid0[u, s, m]
                    eligible[s] = alive[s] and stock[s, m] > 0 and bid >= 0.1 and remaining[s] >= bid
                    if not eligible[s]:
                        continue
                    value = bid * rating / 5.0
                    position = count if count < slots + 1 else slots
                    if count < slots + 1:
                        count += 1
                    elif value <= win_score[slots]:
                        continue
                    while position > 0 and win_score[position - 1] < value:
                        win_score[position] = win_score[position - 1]
                        winners[position] = winners[position - 1]
                        position -= 1
                    win_score[position] = value
                    winners[position] = s
                filled = count if count < slots else slots
                for k in range(filled):
                    s = winners[k]
                    runner_up = win_score[k + 1] if k + 1 < count else 0.0
                    cpc = min(max(0.1, runner_up / (rating / 5.0)), bid0[u, s, m])
                    raw = rng.poisson(
                        arrivals * impression_share * ctr[k], rng.stream_key(seed, rng.CLICKS, r, d, m, k)
                    )
                    clicks = min(raw, np.int64(math.floor(remaining[s] / cpc)))
                    attention = impression_share * ctr[k]
                    if raw > 0:
                        attention *= clicks / raw
                    sponsored[s] = attention
                    spend = clicks * cpc
                    remaining[s] -= spend
                    cash[s] -= spend
                    out[month, s, m, 2] += spend
                    out[month, s, m, 3] -= spend
                    out[month, s, m, 4] += clicks
                # Organic attention and choice.
                total_score = 0.0
                for s in range(n_sellers):
                    if alive[s]:
                        total_score += visibility[s, m] + floor
                denominator = 1.0
                for s in range(n_sellers):
                    weight[s] = 0.0
                    if alive[s]:
                        a = organic_mass * (visibility[s, m] + floor) / total_score + sponsored[s]
                        utility = (
                            base_utility
                            + rating_weight * (rating - 4.0)
                            - beta * math.log(price[s, m] / reference[m])
                            - delta * delivery_days
                        )
                        weight[s] = a * math.exp(utility)
                        denominator += weight[s]
                for s in range(n_sellers):
                    sold = np.int64(0)
                    if alive[s]:
                        demanded = rng.poisson(
                            arrivals * weight[s] / denominator, rng.stream_key(seed, rng.DEMAND, r, d, m, s)
                        )
                        sold = demanded if demanded < stock[s, m] else stock[s, m]
                        stock[s, m] -= sold
                        net = price[s, m]
                        duty = duty_rate * net
                        landed = unit_cost0[u, s, m] + freight + duty
                        referral = max(referral_rate * net, referral_min)
                        revenue = sold * net
                        cm2 = revenue - sold * (landed + referral)
                        cash[s] += revenue - sold * (referral + freight + duty)
                        demand_estimate[s, m] += (demanded - demand_estimate[s, m]) / 14.0
                        trailing[s, m] += revenue
                        out[month, s, m, 0] += revenue
                        out[month, s, m, 1] += sold
                        out[month, s, m, 3] += cm2
                    visibility[s, m] += 0.1 * (sold - visibility[s, m])
            # Close: orders, fixed costs, exits.
            for s in range(n_sellers):
                if not alive[s]:
                    continue
                for m in range(n_markets):
                    if pending[s, m] > 0 or stock[s, m] > demand_estimate[s, m] * (lead_mean + safety):
                        continue
                    target = np.int64(math.ceil(demand_estimate[s, m] * (lead_mean + safety + cover)))
                    affordable = np.int64(math.floor((cash[s] + credit) / unit_cost0[u, s, m]))
                    quantity = min(target - stock[s, m], affordable)
                    if quantity <= 0:
                        continue
                    lead = rng.uniform_int(lead_min, lead_max, rng.stream_key(seed, rng.LEAD_TIME, r, d, m, s))
                    pending[s, m] = quantity
                    pending_day[s, m] = d + lead
                    cash[s] -= quantity * unit_cost0[u, s, m]
                cash[s] -= fixed_cost
                if cash[s] < -credit:
                    alive[s] = False
            # Weekly review: budget at 28% of trailing revenue per day.
            if (d + 1) % 7 == 0:
                for s in range(n_sellers):
                    for m in range(n_markets):
                        budget[s, m] = max(0.28 * trailing[s, m] / 7.0, 20.0)
                        trailing[s, m] = 0.0
        for s in range(n_sellers):
            total += cash[s]
    return total


def hand_loop_inputs(compiled, seed: int = 1, draws: int = 64):
    """The hand loop's arguments from a compiled bench_core scenario: market parameters
    from its tables, seller parameters drawn by the engine (``draws`` replications'
    worth, reused cyclically), output buffer for 12 months."""
    from cbecsim.compile import draw_parameters
    from cbecsim.kernels import layout as L

    market = compiled.market
    modes = compiled.modes
    p = draw_parameters(compiled, seed, 0, draws)
    regime_days = compiled.regime_days
    before = compiled.regime_tables[0][0, 0, L.KIND_PARCEL, L.RG_AD_VALOREM]
    after = compiled.regime_tables[-1][0, 0, L.KIND_PARCEL, L.RG_AD_VALOREM]
    month = (compiled.dates.month - 1).to_numpy().astype(np.int64)
    return dict(
        shoppers=market[:, L.MK_SHOPPERS].copy(),
        reference=market[:, L.MK_REFERENCE_PRICE].copy(),
        slots=int(market[0, L.MK_SLOTS]),
        ctr=compiled.tables.click_through[0].copy(),
        impression_share=float(market[0, L.MK_IMPRESSION_SHARE]),
        organic_mass=float(market[0, L.MK_ORGANIC_ATTENTION]),
        floor=float(market[0, L.MK_VISIBILITY_FLOOR]),
        base_utility=float(market[0, L.MK_BASE_UTILITY]),
        beta=float(market[0, L.MK_PRICE_SENSITIVITY]),
        rating_weight=float(market[0, L.MK_RATING_WEIGHT]),
        delta=float(market[0, L.MK_DELIVERY_WEIGHT]),
        delivery_days=float(modes[0, L.MD_DELIVERY_DAYS]),
        referral_rate=float(market[0, L.MK_REFERRAL_RATE]),
        referral_min=float(market[0, L.MK_REFERRAL_MIN]),
        freight=float(modes[0, L.MD_FREIGHT]),
        duty_day=int(regime_days[-1]),
        duty_before=float(before),
        duty_after=float(after),
        unit_cost0=p["unit_cost"],
        price_index=p["price_index"],
        bid0=p["bid"],
        budget0=float(p["daily_budget"][0, 0, 0]),
        cash0=float(p["initial_cash"][0, 0, 0]),
        credit=float(p["credit_line"][0, 0, 0]),
        fixed_cost=float(p["fixed_cost_per_day"][0, 0, 0]),
        expected0=float(p["expected_daily_units"][0, 0, 0]),
        lead_min=int(modes[0, L.MD_LEAD_MIN]),
        lead_max=int(modes[0, L.MD_LEAD_MAX]),
        safety=float(p["safety_days"][0, 0, 0]),
        cover=float(p["cover_days"][0, 0, 0]),
        rating=float(p["rating"][0, 0, 0]),
        month_of_day=month,
        out=np.zeros((12, compiled.n_sellers, compiled.n_markets, 5)),
    )
