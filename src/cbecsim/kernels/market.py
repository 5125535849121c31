"""The daily market step: arrivals, sponsored auction, choice, sales and accounting.

Shapes: ``B`` replications in the batch, ``S`` sellers, ``M`` markets, ``T`` output
periods, ``K`` sponsored slots. Money is USD unless a name says ``_local`` (market
currency). All kernels are pure functions of their arrays; randomness comes from
:mod:`cbecsim.kernels.rng` keyed by the global replication index ``replication0 + b``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import rng
from .layout import (
    KIND_PARCEL,
    MD_DELIVERY_DAYS,
    MD_FREIGHT,
    MD_FULFILMENT_FEE,
    MD_HANDLING_FEE,
    MD_KIND,
    MK_BASE_UTILITY,
    MK_BRAND_WEIGHT,
    MK_DELIVERY_WEIGHT,
    MK_IMPRESSION_SHARE,
    MK_ORGANIC_ATTENTION,
    MK_PRICE_SENSITIVITY,
    MK_RATING_WEIGHT,
    MK_REFERENCE_PRICE,
    MK_REFERRAL_MIN,
    MK_REFERRAL_RATE,
    MK_RESERVE,
    MK_SHOPPERS,
    MK_SLOTS,
    MK_USD_RATE,
    MK_VAT,
    MK_VISIBILITY_FLOOR,
    MK_VISIBILITY_RATE,
    O_AD_SPEND,
    O_CLICKS,
    O_CM2,
    O_DAYS,
    O_DUTY,
    O_LANDED_COST,
    O_LOST,
    O_ORGANIC_UNITS,
    O_REVENUE,
    O_UNITS,
    O_VISIBILITY,
    OM_SHOPPERS,
    OS_COSTS,
    W_AD_SPEND,
    W_CM2,
    W_DAYS,
    W_DUTY,
    W_LOST,
    W_REVENUE,
    W_UNITS,
    W_VISIBILITY,
)
from .tariff import landed_cost_per_unit

#: Weight of today's demand in the demand estimate used for replenishment (2-week EWMA).
DEMAND_SMOOTHING = 1.0 / 14.0


@njit(cache=True)
def clear_gsp_auction(bids, quality, eligible, n_slots, reserve, winners, prices, scratch_score):
    """Generalised second-price auction over ``n_slots`` sponsored slots.

    Eligible listings are ranked by ``bid * quality`` (ties: lower seller index first).
    Slot k pays per click ``max(reserve, score_(k+1) / quality_k)``, never more than its
    own bid; the last filled slot with no runner-up pays the reserve.

    Parameters
    ----------
    bids, quality : float64 (S,)
        Cost-per-click bids [currency] and quality scores (> 0).
    eligible : bool (S,)
        Listings allowed into the auction (their bid is >= reserve).
    n_slots : int
    reserve : float
    winners : int64 (>= n_slots + 1,)
        Output: seller index of each filled slot (entry n_slots holds the runner-up).
    prices : float64 (>= n_slots,)
        Output: cost per click of each filled slot.
    scratch_score : float64 (>= n_slots + 1,)
        Work space; winners doubles as the index work space.

    Returns
    -------
    int
        Number of filled slots.
    """
    keep = n_slots + 1
    count = 0
    for i in range(bids.shape[0]):
        if not eligible[i]:
            continue
        score = bids[i] * quality[i]
        if count < keep:
            position = count
            count += 1
        elif score > scratch_score[keep - 1]:
            position = keep - 1
        else:
            continue
        while position > 0 and scratch_score[position - 1] < score:
            scratch_score[position] = scratch_score[position - 1]
            winners[position] = winners[position - 1]
            position -= 1
        scratch_score[position] = score
        winners[position] = i
    filled = count if count < n_slots else n_slots
    for k in range(filled):
        i = winners[k]
        runner_up = scratch_score[k + 1] if k + 1 < count else 0.0
        price = runner_up / quality[i]
        if price < reserve:
            price = reserve
        if price > bids[i]:
            price = bids[i]
        prices[k] = price
    return filled


@njit(cache=True)
def listing_utility(market_row, brand, rating, price_local, delivery_days):
    """Deterministic utility ``u = u0 + a*brand + g*(rating-4) - b*log(p/ref) - d*days``."""
    return (
        market_row[MK_BASE_UTILITY]
        + market_row[MK_BRAND_WEIGHT] * brand
        + market_row[MK_RATING_WEIGHT] * (rating - 4.0)
        - market_row[MK_PRICE_SENSITIVITY] * math.log(price_local / market_row[MK_REFERENCE_PRICE])
        - market_row[MK_DELIVERY_WEIGHT] * delivery_days
    )


@njit(cache=True)
def purchase_probabilities(attention, utility, out):
    """Attention-weighted multinomial logit with an outside option.

    ``P(buy i) = a_i exp(u_i) / (1 + sum_j a_j exp(u_j))``; listings with zero
    attention have probability 0. Writes ``out`` (S,) and returns the sum over listings.
    """
    denominator = 1.0
    for i in range(attention.shape[0]):
        if attention[i] > 0.0:
            out[i] = attention[i] * math.exp(utility[i])
            denominator += out[i]
        else:
            out[i] = 0.0
    total = 0.0
    for i in range(attention.shape[0]):
        out[i] = out[i] / denominator
        total += out[i]
    return total


@njit(cache=True)
def market_day_one(b, m, day, period, seed, replication,
                   market, season, click_through, modes, regime, origin,
                   alive, brand, rating, cash,
                   listed, price_local, bid_local, budget_local, mode, unit_cost, stock,
                   visibility_score, demand_estimate, landed_now, window,
                   out_sm, out_s, out_m,
                   eligible, winners, prices, scratch, sponsored_attention, attention,
                   utility, probability):
    """One market, one day, one replication of the batch (see :func:`market_day`)."""
    n_sellers = alive.shape[1]
    row = market[m]
    usd_rate = row[MK_USD_RATE]
    vat = row[MK_VAT]

    shoppers = rng.poisson(
        row[MK_SHOPPERS] * season[m],
        rng.stream_key(seed, rng.ARRIVALS, replication, day, m, rng.NO_SELLER),
    )
    out_m[b, period, m, OM_SHOPPERS] += shoppers

    # --- sponsored auction -------------------------------------------------------------
    reserve = row[MK_RESERVE]
    for s in range(n_sellers):
        sponsored_attention[s] = 0.0
        scratch[s] = rating[b, s] / 5.0  # auction quality: rating relevance, in (0, 1]
        bid = bid_local[b, s, m]
        eligible[s] = (
            alive[b, s]
            and listed[b, s, m]
            and stock[b, s, m] > 0
            and bid >= reserve
            and bid > 0.0
            and budget_local[b, s, m] >= bid
        )
    n_slots = int(row[MK_SLOTS])
    filled = clear_gsp_auction(
        bid_local[b, :, m], scratch[:n_sellers], eligible, n_slots, reserve, winners, prices,
        scratch[n_sellers:],
    )
    impression_share = row[MK_IMPRESSION_SHARE]
    for k in range(filled):
        s = winners[k]
        slot_attention = impression_share * click_through[m, k]
        raw_clicks = rng.poisson(
            shoppers * slot_attention,
            rng.stream_key(seed, rng.CLICKS, replication, day, m, s),
        )
        clicks = raw_clicks
        if prices[k] > 0.0:  # free clicks (zero reserve, no runner-up) never exhaust a budget
            affordable = np.int64(math.floor(budget_local[b, s, m] / prices[k]))
            if affordable < clicks:
                clicks = affordable
        if raw_clicks > 0:
            # The budget runs out part-way through the day: the ad is shown to a matching
            # share of the day's shoppers only.
            slot_attention *= clicks / raw_clicks
        sponsored_attention[s] = slot_attention
        spend = clicks * prices[k] * usd_rate
        out_sm[b, period, s, m, O_CLICKS] += clicks
        out_sm[b, period, s, m, O_AD_SPEND] += spend
        window[b, s, m, W_AD_SPEND] += spend
        cash[b, s] -= spend
        out_s[b, period, s, OS_COSTS] += spend
        out_sm[b, period, s, m, O_CM2] -= spend
        window[b, s, m, W_CM2] -= spend

    # --- organic attention and choice --------------------------------------------------
    floor = row[MK_VISIBILITY_FLOOR]
    total_score = 0.0
    for s in range(n_sellers):
        if alive[b, s] and listed[b, s, m]:
            total_score += visibility_score[b, s, m] + floor
    organic_mass = row[MK_ORGANIC_ATTENTION]
    total_attention = 0.0
    for s in range(n_sellers):
        if alive[b, s] and listed[b, s, m]:
            organic = organic_mass * (visibility_score[b, s, m] + floor) / total_score
            attention[s] = organic + sponsored_attention[s]
            utility[s] = listing_utility(
                row, brand[b, s], rating[b, s], price_local[b, s, m],
                modes[mode[b, s, m], MD_DELIVERY_DAYS],
            )
        else:
            attention[s] = 0.0
            utility[s] = 0.0
        total_attention += attention[s]
    purchase_probabilities(attention[:n_sellers], utility[:n_sellers], probability)

    # --- sales, accounting, flywheel ---------------------------------------------------
    smoothing = row[MK_VISIBILITY_RATE]
    referral_rate = row[MK_REFERRAL_RATE]
    referral_min = row[MK_REFERRAL_MIN]
    for s in range(n_sellers):
        sold = np.int64(0)
        if alive[b, s]:
            f = mode[b, s, m]
            kind = int(modes[f, MD_KIND])
            price = price_local[b, s, m]
            net_price = price / (1.0 + vat) * usd_rate
            landed, duty = landed_cost_per_unit(
                kind, unit_cost[b, s, m], net_price, modes[f, MD_FREIGHT],
                modes[f, MD_HANDLING_FEE], regime[m, origin[s], kind],
            )
            landed_now[b, s, m] = landed
            out_sm[b, period, s, m, O_LANDED_COST] += landed
            out_sm[b, period, s, m, O_DAYS] += 1.0
            if listed[b, s, m]:
                demanded = np.int64(0)
                if probability[s] > 0.0:
                    demanded = rng.poisson(
                        shoppers * probability[s],
                        rng.stream_key(seed, rng.DEMAND, replication, day, m, s),
                    )
                available = stock[b, s, m]
                sold = demanded if demanded < available else available
                lost = demanded - sold
                stock[b, s, m] = available - sold
                demand_estimate[b, s, m] += DEMAND_SMOOTHING * (demanded - demand_estimate[b, s, m])

                referral = max(referral_rate * price, referral_min) * usd_rate
                fee = modes[f, MD_FULFILMENT_FEE]
                revenue = sold * net_price
                cm2 = revenue - sold * (landed + referral + fee)
                # Cash paid at sale: platform fees and handling always; for parcels also
                # the freight and the duty (bulk freight and duty were paid on import).
                paid = sold * (referral + fee + modes[f, MD_HANDLING_FEE])
                duty_paid = 0.0
                if kind == KIND_PARCEL:
                    duty_paid = sold * duty
                    paid += sold * modes[f, MD_FREIGHT] + duty_paid
                cash[b, s] += revenue - paid
                out_s[b, period, s, OS_COSTS] += paid
                share = attention[s] / total_attention if total_attention > 0.0 else 0.0
                organic_units = sold * (attention[s] - sponsored_attention[s]) / attention[s] if sold > 0 else 0.0

                o = out_sm[b, period, s, m]
                o[O_REVENUE] += revenue
                o[O_UNITS] += sold
                o[O_LOST] += lost
                o[O_DUTY] += duty_paid
                o[O_CM2] += cm2
                o[O_VISIBILITY] += share
                o[O_ORGANIC_UNITS] += organic_units
                w = window[b, s, m]
                w[W_REVENUE] += revenue
                w[W_UNITS] += sold
                w[W_LOST] += lost
                w[W_CM2] += cm2
                w[W_VISIBILITY] += share
                w[W_DAYS] += 1.0
                w[W_DUTY] += sold * duty
        visibility_score[b, s, m] += smoothing * (sold - visibility_score[b, s, m])


@njit(cache=True, parallel=True)
def market_day(day, period, seed, replication0,
               market, season, click_through, modes, regime, origin,
               alive, brand, rating, cash,
               listed, price_local, bid_local, budget_local, mode, unit_cost, stock,
               visibility_score, demand_estimate, landed_now, window,
               out_sm, out_s, out_m):
    """Advance every market of every replication in the batch by one day.

    Parameters
    ----------
    day : int
        Day index from the horizon start (RNG key component).
    period : int
        Output period index the day's flows are added to.
    seed : int
    replication0 : int
        Global index of the batch's first replication.
    market : float64 (M, N_MARKET_COLUMNS)
    season : float64 (M,)
        Today's seasonal multiplier of the shopper rate.
    click_through : float64 (M, K_max)
        Click-through by sponsored position.
    modes : float64 (F, N_MODE_COLUMNS)
    regime : float64 (M, O, 2, N_REGIME_COLUMNS)
        Duty regime in force today by market, origin and kind [USD].
    origin : int64 (S,)
    alive : bool (B, S); brand, rating, cash : float64 (B, S)
    listed : bool (B, S, M)
    price_local, bid_local, budget_local, unit_cost : float64 (B, S, M)
    mode, stock : int64 (B, S, M)
    visibility_score, demand_estimate, landed_now : float64 (B, S, M)
    window : float64 (B, S, M, N_WINDOW)
    out_sm : float64 (B, T, S, M, N_OUT_SM); out_s : (B, T, S, N_OUT_S); out_m : (B, T, M, N_OUT_M)
    """
    for b in prange(alive.shape[0]):
        market_day_replication(
            b, day, period, seed, replication0 + b,
            market, season, click_through, modes, regime, origin,
            alive, brand, rating, cash,
            listed, price_local, bid_local, budget_local, mode, unit_cost, stock,
            visibility_score, demand_estimate, landed_now, window,
            out_sm, out_s, out_m,
        )


@njit(cache=True)
def market_day_replication(b, day, period, seed, replication,
                           market, season, click_through, modes, regime, origin,
                           alive, brand, rating, cash,
                           listed, price_local, bid_local, budget_local, mode, unit_cost, stock,
                           visibility_score, demand_estimate, landed_now, window,
                           out_sm, out_s, out_m):
    """Every market of replication ``b`` of the batch for one day (serial).

    Kept separate from :func:`market_day` so the parallel loop's body is one call: numba
    compiles a serial function far better than the body of a ``prange`` loop.
    """
    n_sellers = alive.shape[1]
    k_max = click_through.shape[1]
    eligible = np.empty(n_sellers, dtype=np.bool_)
    winners = np.empty(k_max + 1, dtype=np.int64)
    prices = np.empty(k_max + 1, dtype=np.float64)
    scratch = np.empty(n_sellers + k_max + 1, dtype=np.float64)
    sponsored_attention = np.empty(n_sellers, dtype=np.float64)
    attention = np.empty(n_sellers, dtype=np.float64)
    utility = np.empty(n_sellers, dtype=np.float64)
    probability = np.empty(n_sellers, dtype=np.float64)
    for m in range(market.shape[0]):
        market_day_one(
            b, m, day, period, seed, replication,
            market, season, click_through, modes, regime, origin,
            alive, brand, rating, cash,
            listed, price_local, bid_local, budget_local, mode, unit_cost, stock,
            visibility_score, demand_estimate, landed_now, window,
            out_sm, out_s, out_m,
            eligible, winners, prices, scratch, sponsored_attention, attention,
            utility, probability,
        )
