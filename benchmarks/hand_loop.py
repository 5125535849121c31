"""A hand-written numba loop of the core market day: the reference ``cbecsim run`` of
``configs/bench_core.yaml`` is measured against (benchmarks/throughput.py).

It does the model work of the engine on that config -- written as one tight loop per
replication, with no structures, no SimPy calendar, no Python strategies and no Dataset:

* Poisson shoppers per market and day;
* one 4-slot GSP auction a day with budgets (bidders ranked by bid x rating/5, the next
  score over the slot's quality as price; clicks Poisson per slot, capped by the budget
  left; an ad that runs out of budget reaches a matching share of the shoppers);
* organic attention by visibility score plus sponsored attention and an attention-weighted
  logit with an outside option (utility with the price term and the rating);
* Poisson demand (exact thinning) capped by stock, lost sales;
* landed cost with the day's ad valorem duty (the mid-year tariff jump), referral fee on
  the price, freight and duty paid per parcel, cash;
* the sales flywheel and the demand EWMA; reorder point / order-up-to replenishment with
  uniform lead times, paid at order; fixed costs and exit below the credit line;
* the weekly review of the traffic-first rule: pass a share of the margin shortfall into
  the price (at most 10% a step, between the list price and +30%), leave a market after 8
  reviews with negative CM2, and set budgets at 28% of trailing revenue with pacing;
* the outputs the engine records for that config, summed per month and seller-market:
  revenue, units, lost sales, ad spend, clicks, duty, CM2, listed days, the landed cost
  and visibility sums, organic units, stock at the month end; costs and cash per seller.

Random numbers come from the engine's own counter-based generator and samplers
(:mod:`cbecsim.kernels.rng`). The loop is a reference for speed, not a second engine: its
results are not compared with the engine's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cbecsim.kernels import rng

#: Output fields of the hand loop, per (month, seller, market).
FIELDS = ("revenue", "units", "lost", "ad_spend", "clicks", "duty", "cm2", "listed_days", "landed_sum",
          "visibility_sum", "organic_units", "stock")


@njit(cache=True)
def hand_loop(n_reps, n_days, shoppers, reference, slots, ctr, impression_share, organic_mass, floor,
              base_utility, beta, rating_weight, delta, delivery_days, referral_rate, referral_min, freight,
              duty_day, duty_before, duty_after, unit_cost0, price_index, bid0, budget0, cash0, credit,
              fixed_cost, expected0, lead_min, lead_max, safety, cover, rating, month_of_day, out, seller_out):
    """Simulate ``n_reps`` replications; ``out`` (12, S, M, len(FIELDS)) and ``seller_out``
    (12, S, 2: costs, cash) get the last replication's monthly outputs. Returns the sum of
    final cash over replications (so no work can be optimised away)."""
    n_sellers, n_markets = unit_cost0.shape[1], unit_cost0.shape[2]
    seed = np.uint64(1)
    stock = np.empty((n_sellers, n_markets), dtype=np.int64)
    pending = np.zeros((n_sellers, n_markets), dtype=np.int64)
    pending_day = np.zeros((n_sellers, n_markets), dtype=np.int64)
    visibility = np.zeros((n_sellers, n_markets))
    demand_estimate = np.empty((n_sellers, n_markets))
    budget = np.empty((n_sellers, n_markets))
    bid = np.empty((n_sellers, n_markets))
    pacing = np.empty((n_sellers, n_markets))
    listed = np.empty((n_sellers, n_markets), dtype=np.bool_)
    negative_reviews = np.zeros((n_sellers, n_markets), dtype=np.int64)
    window = np.zeros((n_sellers, n_markets, 4))  # revenue, ad spend, cm2, days
    price = np.empty((n_sellers, n_markets))
    list_price = np.empty((n_sellers, n_markets))
    cash = np.empty(n_sellers)
    alive = np.empty(n_sellers, dtype=np.bool_)
    weight = np.empty(n_sellers)
    attention = np.empty(n_sellers)
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
                list_price[s, m] = price[s, m]
                demand_estimate[s, m] = expected0
                stock[s, m] = np.int64(math.ceil(expected0 * (lead_mean + safety + cover)))
                pending[s, m] = 0
                visibility[s, m] = 0.0
                budget[s, m] = budget0
                bid[s, m] = bid0[u, s, m]
                pacing[s, m] = 1.0
                listed[s, m] = True
                negative_reviews[s, m] = 0
                for w in range(4):
                    window[s, m, w] = 0.0
        out[:, :, :, :] = 0.0
        seller_out[:, :, :] = 0.0
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
                    eligible[s] = alive[s] and listed[s, m] and stock[s, m] > 0 and bid[s, m] >= 0.1 \
                        and remaining[s] >= bid[s, m]
                    if not eligible[s]:
                        continue
                    value = bid[s, m] * rating / 5.0
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
                    cpc = min(max(0.1, runner_up / (rating / 5.0)), bid[s, m])
                    key = rng.stream_key(seed, rng.CLICKS, r, d, m, k)
                    raw = rng.poisson(arrivals * impression_share * ctr[k], key)
                    clicks = min(raw, np.int64(math.floor(remaining[s] / cpc)))
                    share = impression_share * ctr[k]
                    if raw > 0:
                        share *= clicks / raw
                    sponsored[s] = share
                    spend = clicks * cpc
                    remaining[s] -= spend
                    cash[s] -= spend
                    window[s, m, 1] += spend
                    window[s, m, 2] -= spend
                    out[month, s, m, 3] += spend
                    out[month, s, m, 4] += clicks
                    out[month, s, m, 6] -= spend
                    seller_out[month, s, 0] += spend
                # Organic attention and choice.
                total_score = 0.0
                for s in range(n_sellers):
                    if alive[s] and listed[s, m]:
                        total_score += visibility[s, m] + floor
                denominator = 1.0
                total_attention = 0.0
                for s in range(n_sellers):
                    weight[s] = 0.0
                    attention[s] = 0.0
                    if alive[s] and listed[s, m]:
                        attention[s] = organic_mass * (visibility[s, m] + floor) / total_score + sponsored[s]
                        utility = (base_utility + rating_weight * (rating - 4.0)
                                   - beta * math.log(price[s, m] / reference[m]) - delta * delivery_days)
                        weight[s] = attention[s] * math.exp(utility)
                        denominator += weight[s]
                        total_attention += attention[s]
                for s in range(n_sellers):
                    sold = np.int64(0)
                    if alive[s]:
                        net = price[s, m]
                        duty = duty_rate * net
                        landed = unit_cost0[u, s, m] + freight + duty
                        out[month, s, m, 8] += landed
                    if alive[s] and listed[s, m]:
                        demanded = rng.poisson(arrivals * weight[s] / denominator,
                                               rng.stream_key(seed, rng.DEMAND, r, d, m, s))
                        sold = demanded if demanded < stock[s, m] else stock[s, m]
                        stock[s, m] -= sold
                        referral = max(referral_rate * net, referral_min)
                        revenue = sold * net
                        cm2 = revenue - sold * (landed + referral)
                        paid = sold * (referral + freight + duty)
                        cash[s] += revenue - paid
                        demand_estimate[s, m] += (demanded - demand_estimate[s, m]) / 14.0
                        window[s, m, 0] += revenue
                        window[s, m, 2] += cm2
                        window[s, m, 3] += 1.0
                        o = out[month, s, m]
                        o[0] += revenue
                        o[1] += sold
                        o[2] += demanded - sold
                        o[5] += sold * duty
                        o[6] += cm2
                        o[7] += 1.0
                        o[9] += attention[s] / total_attention
                        if sold > 0:
                            o[10] += sold * (attention[s] - sponsored[s]) / attention[s]
                        seller_out[month, s, 0] += paid
                    visibility[s, m] += 0.1 * (sold - visibility[s, m])
            # Close: orders, fixed costs, exits.
            for s in range(n_sellers):
                if not alive[s]:
                    continue
                still_listed = False
                for m in range(n_markets):
                    still_listed = still_listed or listed[s, m]
                    if not listed[s, m] or pending[s, m] > 0 \
                            or stock[s, m] > demand_estimate[s, m] * (lead_mean + safety):
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
                    seller_out[month, s, 0] += quantity * unit_cost0[u, s, m]
                cash[s] -= fixed_cost
                seller_out[month, s, 0] += fixed_cost
                if cash[s] < -credit or not still_listed:
                    alive[s] = False
            if d + 1 == n_days or month_of_day[d + 1] != month:
                for s in range(n_sellers):
                    seller_out[month, s, 1] = cash[s]
                    for m in range(n_markets):
                        out[month, s, m, 11] = stock[s, m]
            # Weekly review (the traffic-first rule).
            if (d + 1) % 7 == 0:
                for s in range(n_sellers):
                    if not alive[s]:
                        continue
                    for m in range(n_markets):
                        days = window[s, m, 3]
                        net = price[s, m]
                        margin = net - (unit_cost0[u, s, m] + freight + duty_rate * net) \
                            - max(referral_rate * net, referral_min)
                        step = min(max(0.5 * (0.12 - margin / net), -0.1), 0.1)
                        price[s, m] = min(max(price[s, m] * (1.0 + step), list_price[s, m]), 1.3 * list_price[s, m])
                        if listed[s, m] and days > 0:
                            negative_reviews[s, m] = negative_reviews[s, m] + 1 if window[s, m, 2] < 0 else 0
                            if negative_reviews[s, m] >= 8:
                                listed[s, m] = False
                        revenue_day = window[s, m, 0] / days if days > 0 else 0.0
                        spend_day = window[s, m, 1] / days if days > 0 else 0.0
                        target_spend = 0.28 * revenue_day
                        negative = window[s, m, 2] < 0
                        underspent = not negative and spend_day < 0.9 * target_spend
                        if underspent:
                            pacing[s, m] = min(pacing[s, m] * 1.1, 3.0)
                            bid[s, m] = min(bid[s, m] * 1.1, 1.45)
                        elif spend_day > 1.1 * target_spend:
                            pacing[s, m] = max(pacing[s, m] / 1.1, 1.0)
                        new_budget = max(target_spend * pacing[s, m], 20.0)
                        if negative:
                            bid[s, m] *= 0.75
                            new_budget = min(new_budget, budget[s, m]) * 0.5
                        budget[s, m] = new_budget
                        for w in range(4):
                            window[s, m, w] = 0.0
        for s in range(n_sellers):
            total += cash[s]
    return total


def hand_loop_inputs(compiled, seed: int = 1, draws: int = 64):
    """The hand loop's arguments from a compiled bench_core scenario: market parameters
    from its tables, seller parameters drawn by the engine (``draws`` replications'
    worth, reused cyclically), output buffers for 12 months."""
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
        shoppers=market[:, L.MK_SHOPPERS].copy(), reference=market[:, L.MK_REFERENCE_PRICE].copy(),
        slots=int(market[0, L.MK_SLOTS]), ctr=compiled.tables.click_through[0].copy(),
        impression_share=float(market[0, L.MK_IMPRESSION_SHARE]), organic_mass=float(market[0, L.MK_ORGANIC_ATTENTION]),
        floor=float(market[0, L.MK_VISIBILITY_FLOOR]), base_utility=float(market[0, L.MK_BASE_UTILITY]),
        beta=float(market[0, L.MK_PRICE_SENSITIVITY]), rating_weight=float(market[0, L.MK_RATING_WEIGHT]),
        delta=float(market[0, L.MK_DELIVERY_WEIGHT]), delivery_days=float(modes[0, L.MD_DELIVERY_DAYS]),
        referral_rate=float(market[0, L.MK_REFERRAL_RATE]), referral_min=float(market[0, L.MK_REFERRAL_MIN]),
        freight=float(modes[0, L.MD_FREIGHT]), duty_day=int(regime_days[-1]), duty_before=float(before),
        duty_after=float(after), unit_cost0=p["unit_cost"], price_index=p["price_index"], bid0=p["bid"],
        budget0=float(p["daily_budget"][0, 0, 0]), cash0=float(p["initial_cash"][0, 0, 0]),
        credit=float(p["credit_line"][0, 0, 0]), fixed_cost=float(p["fixed_cost_per_day"][0, 0, 0]),
        expected0=float(p["expected_daily_units"][0, 0, 0]), lead_min=int(modes[0, L.MD_LEAD_MIN]),
        lead_max=int(modes[0, L.MD_LEAD_MAX]), safety=float(p["safety_days"][0, 0, 0]),
        cover=float(p["cover_days"][0, 0, 0]), rating=float(p["rating"][0, 0, 0]), month_of_day=month,
        out=np.zeros((12, compiled.n_sellers, compiled.n_markets, len(FIELDS))),
        seller_out=np.zeros((12, compiled.n_sellers, 2)),
    )
