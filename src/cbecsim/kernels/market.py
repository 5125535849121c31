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
from .layers import (
    incident_hazard,
    lapse_probability_today,
    repurchase_hazard,
    return_probability,
    updated_rating,
)
from .layout import (
    KIND_PARCEL,
    LS_CUSTOMERS,
    LS_DTC_CUSTOMERS,
    LS_INCIDENT_CLOCK,
    LS_INTERRUPTED_UNTIL,
    LS_RETURN_LOG1M_Q,
    LS_RETURN_ODDS,
    LS_RETURN_Q,
    LV_COMPLIANCE,
    LV_DTC_SHARE,
    LV_LOCALISATION,
    MD_DELIVERY_DAYS,
    MD_FREIGHT,
    MD_FULFILMENT_FEE,
    MD_HANDLING_FEE,
    MD_KIND,
    MK_BASE_UTILITY,
    MK_BRAND_WEIGHT,
    MK_DELIVERY_WEIGHT,
    MK_IMPRESSION_SHARE,
    MK_INCIDENT_RATE,
    MK_INTERRUPTION_DAYS,
    MK_LAPSE_RATE,
    MK_ORGANIC_ATTENTION,
    MK_PRICE_SENSITIVITY,
    MK_RATING_WEIGHT,
    MK_REFERENCE_PRICE,
    MK_REFERRAL_MIN,
    MK_REFERRAL_RATE,
    MK_REPEAT_RATE,
    MK_RESERVE,
    MK_RETURN_RATE,
    MK_SHOPPERS,
    MK_SLOTS,
    MK_VAT,
    MK_VISIBILITY_FLOOR,
    MK_VISIBILITY_RATE,
    O_AD_SPEND,
    O_CLICKS,
    O_CM2,
    O_DAYS,
    O_DELIVERY_UNIT_DAYS,
    O_DTC_ACQUISITION,
    O_DTC_NEW_CUSTOMERS,
    O_DTC_REVENUE,
    O_DTC_UNITS,
    O_DUTY,
    O_INCIDENTS,
    O_INTERRUPTED_DAYS,
    O_LANDED_COST,
    O_LISTED_DAYS,
    O_LOST,
    O_NEW_CUSTOMERS,
    O_ORGANIC_UNITS,
    O_REFUNDS,
    O_REPEAT_REVENUE,
    O_REPEAT_UNITS,
    O_RETURNS,
    O_REVENUE,
    O_UNITS,
    O_VISIBILITY,
    OM_SHOPPERS,
    OS_COSTS,
    SL_CRM_MULTIPLIER,
    SL_DTC_CAC,
    SL_DTC_CAPACITY,
    SL_LOC_BRAND_LIFT,
    W_AD_SPEND,
    W_CM2,
    W_DAYS,
    W_DUTY,
    W_LOST,
    W_NEW_CUSTOMERS,
    W_RETURNS,
    W_REVENUE,
    W_UNITS,
    W_VISIBILITY,
)
from .tariff import landed_cost_per_unit

#: Weight of today's demand in the demand estimate used for replenishment (2-week EWMA).
DEMAND_SMOOTHING = 1.0 / 14.0

#: Sponsored auctions a day per market, each over 1/AUCTION_ROUNDS of the shoppers, with
#: the bidders' remaining daily budgets ([assumption]: budget pacing in four parts of the
#: day, so a slot whose winner's budget is spent goes to the next bidder).
AUCTION_ROUNDS = 4


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
                   usd_rate_now, incident_multiplier, seller_layer, levers, layer_sm,
                   up, eligible, winners, prices, scratch, sponsored_attention, attention,
                   utility, probability):
    """One market, one day, one replication of the batch (see :func:`market_day`)."""
    n_sellers = alive.shape[1]
    row = market[m]
    usd_rate = usd_rate_now[b, m]
    vat = row[MK_VAT]

    shoppers = rng.poisson(
        row[MK_SHOPPERS] * season[m],
        rng.stream_key(seed, rng.ARRIVALS, replication, day, m, rng.NO_SELLER),
    )
    out_m[b, period, m, OM_SHOPPERS] += shoppers

    # --- sponsored auction -------------------------------------------------------------
    # AUCTION_ROUNDS auctions a day, each over an equal share of the shoppers: a bidder
    # whose budget runs out leaves the slot to the next bidders for the rest of the day
    # (budget pacing) instead of the slot standing empty until midnight.
    reserve = row[MK_RESERVE]
    remaining = utility  # work space (S,): budget left today [currency]; utility is set below
    for s in range(n_sellers):
        sponsored_attention[s] = 0.0
        scratch[s] = rating[b, s] / 5.0  # auction quality: rating relevance, in (0, 1]
        remaining[s] = budget_local[b, s, m]
        # A listing is up when its seller is alive and it is listed and not interrupted
        # (compliance incident); only listings that are up get ads or attention today.
        up[s] = alive[b, s] and listed[b, s, m] and day >= layer_sm[b, s, m, LS_INTERRUPTED_UNTIL]
        bid = bid_local[b, s, m]
        eligible[s] = up[s] and stock[b, s, m] > 0 and bid >= reserve and bid > 0.0 and remaining[s] >= bid
    n_slots = int(row[MK_SLOTS])
    impression_share = row[MK_IMPRESSION_SHARE]
    round_shoppers = shoppers / AUCTION_ROUNDS
    key_clicks = rng.market_key(seed, rng.CLICKS, replication, day, m)
    # Between rounds only a winner whose budget left falls below its bid drops out; when
    # none does, the next round's ranking and prices are the same, so it is not re-run.
    rerun = True
    filled = 0
    for auction_round in range(AUCTION_ROUNDS):
        if rerun:
            filled = clear_gsp_auction(
                bid_local[b, :, m], scratch[:n_sellers], eligible, n_slots, reserve, winners, prices,
                scratch[n_sellers:],
            )
            rerun = False
        for k in range(filled):
            s = winners[k]
            slot_attention = impression_share * click_through[m, k]
            raw_clicks = rng.poisson(
                round_shoppers * slot_attention,
                rng.absorb(rng.absorb(key_clicks, s), auction_round),
            )
            clicks = raw_clicks
            if prices[k] > 0.0:  # free clicks (zero reserve, no runner-up) never exhaust a budget
                affordable = np.int64(math.floor(remaining[s] / prices[k]))
                if affordable < clicks:
                    clicks = affordable
            if raw_clicks > 0:
                # The budget runs out part-way through the round: the ad is shown to a
                # matching share of the round's shoppers only.
                slot_attention *= clicks / raw_clicks
            sponsored_attention[s] += slot_attention / AUCTION_ROUNDS
            cost_local = clicks * prices[k]
            remaining[s] -= cost_local
            if remaining[s] < bid_local[b, s, m]:
                eligible[s] = False
                rerun = True
            spend = cost_local * usd_rate
            out_sm[b, period, s, m, O_CLICKS] += clicks
            out_sm[b, period, s, m, O_AD_SPEND] += spend
            window[b, s, m, W_AD_SPEND] += spend
            cash[b, s] -= spend
            out_s[b, period, s, OS_COSTS] += spend
            out_sm[b, period, s, m, O_CM2] -= spend
            window[b, s, m, W_CM2] -= spend

    # --- organic attention and choice --------------------------------------------------
    # Only listings that are up get attention (an interrupted one gets none at all).
    floor = row[MK_VISIBILITY_FLOOR]
    total_score = 0.0
    for s in range(n_sellers):
        if up[s]:
            total_score += visibility_score[b, s, m] + floor
    organic_mass = row[MK_ORGANIC_ATTENTION]
    total_attention = 0.0
    for s in range(n_sellers):
        if up[s]:
            organic = organic_mass * (visibility_score[b, s, m] + floor) / total_score
            attention[s] = organic + sponsored_attention[s]
            # Localisation adds to brand equity (localised content, service, warranty).
            utility[s] = listing_utility(
                row, brand[b, s] + seller_layer[s, SL_LOC_BRAND_LIFT] * levers[b, s, LV_LOCALISATION],
                rating[b, s], price_local[b, s, m], modes[mode[b, s, m], MD_DELIVERY_DAYS],
            )
        else:
            attention[s] = 0.0
            utility[s] = 0.0
        total_attention += attention[s]
    purchase_probabilities(attention[:n_sellers], utility[:n_sellers], probability)

    # --- sales, layers, accounting, flywheel ----------------------------------------------
    smoothing = row[MK_VISIBILITY_RATE]
    referral_rate = row[MK_REFERRAL_RATE]
    referral_min = row[MK_REFERRAL_MIN]
    # Market parts of the streams' keys (rng.stream_key = absorb(this, seller)).
    key_demand = rng.market_key(seed, rng.DEMAND, replication, day, m)
    key_repeat = rng.market_key(seed, rng.REPEAT, replication, day, m)
    key_source = rng.market_key(seed, rng.PURCHASE_SOURCE, replication, day, m)
    key_returns = rng.market_key(seed, rng.RETURNS, replication, day, m)
    key_lapse = rng.market_key(seed, rng.LAPSE, replication, day, m)
    key_dtc_lapse = rng.market_key(seed, rng.DTC_LAPSE, replication, day, m)
    key_incident = rng.market_key(seed, rng.INCIDENT, replication, day, m)
    key_interruption = rng.market_key(seed, rng.INTERRUPTION, replication, day, m)
    weekly_lapse = lapse_probability_today(day, row[MK_LAPSE_RATE])
    for s in range(n_sellers):
        marketplace_units = np.int64(0)
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
                lsm = layer_sm[b, s, m]
                seller_row = seller_layer[s]
                localisation = levers[b, s, LV_LOCALISATION]
                interrupted = day < lsm[LS_INTERRUPTED_UNTIL]
                # Demand by source: marketplace first purchases (shoppers' choice), repeat
                # purchases of marketplace customers (not while interrupted), of DTC
                # customers, and new DTC customers bought at the CAC.
                demanded = np.int64(0)
                if probability[s] > 0.0:
                    demanded = rng.poisson(
                        shoppers * probability[s],
                        rng.absorb(key_demand, s),
                    )
                customers = np.int64(lsm[LS_CUSTOMERS])
                dtc_customers = np.int64(lsm[LS_DTC_CUSTOMERS])
                hazard = repurchase_hazard(row[MK_REPEAT_RATE], localisation, seller_row)
                repeat_mean = 0.0
                if customers > 0 and hazard > 0.0 and not interrupted:
                    repeat_mean = customers * hazard
                dtc_repeat_mean = 0.0
                if dtc_customers > 0 and hazard > 0.0:
                    dtc_repeat_mean = dtc_customers * (hazard * seller_row[SL_CRM_MULTIPLIER])
                dtc_new_mean = levers[b, s, LV_DTC_SHARE] * seller_row[SL_DTC_CAPACITY]
                repeat_demanded, dtc_repeat_demanded, dtc_new_demanded = rng.poisson_by_source(
                    repeat_mean, dtc_repeat_mean, dtc_new_mean, rng.absorb(key_repeat, s), rng.absorb(key_source, s),
                )
                # Stock serves marketplace first purchases, then repeats, then new DTC buyers.
                available = stock[b, s, m]
                sold = demanded if demanded < available else available
                available -= sold
                repeat_sold = repeat_demanded if repeat_demanded < available else available
                available -= repeat_sold
                dtc_repeat_sold = dtc_repeat_demanded if dtc_repeat_demanded < available else available
                available -= dtc_repeat_sold
                dtc_new_sold = dtc_new_demanded if dtc_new_demanded < available else available
                available -= dtc_new_sold
                total_demanded = demanded + repeat_demanded + dtc_repeat_demanded + dtc_new_demanded
                marketplace_units = sold + repeat_sold
                dtc_units = dtc_repeat_sold + dtc_new_sold
                units = marketplace_units + dtc_units
                lost = total_demanded - units
                demand_estimate[b, s, m] += DEMAND_SMOOTHING * (total_demanded - demand_estimate[b, s, m])

                referral = max(referral_rate * price, referral_min) * usd_rate
                fee = modes[f, MD_FULFILMENT_FEE]
                freight = modes[f, MD_FREIGHT]
                revenue = units * net_price
                # DTC units pay no referral fee.
                cm2 = revenue - marketplace_units * (landed + referral + fee) - dtc_units * (landed + fee)
                # Cash paid at sale: platform fees and handling always; for parcels also
                # the freight and the duty (bulk freight and duty were paid on import).
                paid = marketplace_units * (referral + fee + modes[f, MD_HANDLING_FEE]) + dtc_units * (
                    fee + modes[f, MD_HANDLING_FEE])
                duty_paid = 0.0
                if kind == KIND_PARCEL:
                    duty_paid = units * duty
                    paid += units * freight + duty_paid
                acquisition = dtc_new_sold * seller_row[SL_DTC_CAC]
                cm2 -= acquisition
                paid += acquisition
                # Returns: the price is refunded; freight, duty and fees are lost (a parcel
                # also pays return freight); the unit goes back to stock at its factory cost.
                returned = np.int64(0)
                p_return = return_probability(row[MK_RETURN_RATE], localisation, seller_row)
                if units > 0 and p_return > 0.0:
                    if p_return <= 0.5:
                        if lsm[LS_RETURN_Q] != p_return:  # first use, or the lever moved
                            lsm[LS_RETURN_Q] = p_return
                            lsm[LS_RETURN_LOG1M_Q] = math.log1p(-p_return)
                            lsm[LS_RETURN_ODDS] = p_return / (1.0 - p_return)
                        returned = rng.binomial_small_q(
                            units, p_return, lsm[LS_RETURN_LOG1M_Q], lsm[LS_RETURN_ODDS], rng.absorb(key_returns, s),
                        )
                    else:
                        returned = rng.binomial(units, p_return, rng.absorb(key_returns, s))
                refund = returned * net_price
                return_freight = returned * freight if kind == KIND_PARCEL else 0.0
                cm2 -= refund + return_freight - returned * unit_cost[b, s, m]
                paid += refund + return_freight
                stock[b, s, m] = available + returned
                cash[b, s] += revenue - paid
                out_s[b, period, s, OS_COSTS] += paid
                share = attention[s] / total_attention if total_attention > 0.0 else 0.0
                organic_units = sold * (attention[s] - sponsored_attention[s]) / attention[s] if sold > 0 else 0.0

                # Customers: each first purchase is a new customer; at the close of each
                # week customers lapse (weekly_lapse is 0 on the other days).
                lapsed = np.int64(0)
                if customers > 0 and weekly_lapse > 0.0:
                    lapsed = rng.binomial(customers, weekly_lapse, rng.absorb(key_lapse, s))
                dtc_lapsed = np.int64(0)
                if dtc_customers > 0 and weekly_lapse > 0.0:
                    dtc_lapsed = rng.binomial(dtc_customers, weekly_lapse, rng.absorb(key_dtc_lapse, s))
                lsm[LS_CUSTOMERS] = customers - lapsed + sold
                lsm[LS_DTC_CUSTOMERS] = dtc_customers - dtc_lapsed + dtc_new_sold
                delivery_days = modes[f, MD_DELIVERY_DAYS]
                if units > 0:
                    rating[b, s] = updated_rating(rating[b, s], units, returned, delivery_days, row)
                # Compliance incident: the listing is down from tomorrow for 1 + Poisson days.
                # The day's hazard runs down the listing's incident clock, an Exp(1) amount
                # of hazard; the incident comes on the day it runs out, so P(incident today
                # | none before) = 1 - exp(-hazard) with one draw per incident, not per day.
                incidents = 0.0
                if not interrupted:
                    hazard = incident_hazard(
                        row[MK_INCIDENT_RATE], incident_multiplier[m], levers[b, s, LV_COMPLIANCE], seller_row,
                    )
                    if hazard > 0.0:
                        clock = lsm[LS_INCIDENT_CLOCK] - hazard
                        if clock <= 0.0:
                            length = 1 + rng.poisson(row[MK_INTERRUPTION_DAYS] - 1.0, rng.absorb(key_interruption, s))
                            lsm[LS_INTERRUPTED_UNTIL] = day + 1 + length
                            incidents = 1.0
                            clock = rng.standard_exponential(rng.absorb(key_incident, s))
                        lsm[LS_INCIDENT_CLOCK] = clock
                repeat_units = repeat_sold + dtc_repeat_sold

                o = out_sm[b, period, s, m]
                o[O_REVENUE] += revenue
                o[O_UNITS] += units
                o[O_LOST] += lost
                o[O_DUTY] += duty_paid
                o[O_CM2] += cm2
                o[O_VISIBILITY] += share
                o[O_ORGANIC_UNITS] += organic_units
                o[O_RETURNS] += returned
                o[O_REFUNDS] += refund
                o[O_INCIDENTS] += incidents
                o[O_INTERRUPTED_DAYS] += 1.0 if interrupted else 0.0
                o[O_LISTED_DAYS] += 1.0
                o[O_NEW_CUSTOMERS] += sold + dtc_new_sold
                o[O_DTC_NEW_CUSTOMERS] += dtc_new_sold
                o[O_REPEAT_UNITS] += repeat_units
                o[O_REPEAT_REVENUE] += repeat_units * net_price
                o[O_DTC_UNITS] += dtc_units
                o[O_DTC_REVENUE] += dtc_units * net_price
                o[O_DTC_ACQUISITION] += acquisition
                o[O_DELIVERY_UNIT_DAYS] += units * delivery_days
                w = window[b, s, m]
                w[W_REVENUE] += revenue
                w[W_UNITS] += units
                w[W_LOST] += lost
                w[W_CM2] += cm2
                w[W_VISIBILITY] += share
                w[W_DAYS] += 1.0
                w[W_DUTY] += units * duty
                w[W_NEW_CUSTOMERS] += sold + dtc_new_sold
                w[W_RETURNS] += returned
        # The flywheel runs on marketplace sales (DTC sales do not rank the listing).
        visibility_score[b, s, m] += smoothing * (marketplace_units - visibility_score[b, s, m])


@njit(cache=True, parallel=True)
def market_day(day, period, seed, replication0,
               market, season, click_through, modes, regime, origin,
               alive, brand, rating, cash,
               listed, price_local, bid_local, budget_local, mode, unit_cost, stock,
               visibility_score, demand_estimate, landed_now, window,
               out_sm, out_s, out_m,
               usd_rate, incident_multiplier, seller_layer, levers, layer_sm):
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
    usd_rate : float64 (B, M)
        Today's USD per unit of each market's currency (see kernels.layers.advance_fx).
    incident_multiplier : float64 (M,)
        Today's rule-change multiplier of the compliance-incident hazard.
    seller_layer : float64 (S, N_SELLER_LAYER); levers : float64 (B, S, N_LEVERS)
    layer_sm : float64 (B, S, M, N_LAYER_SM)
        Customers, DTC customers and the day each listing's interruption ends.

    Model layers (issue 7), per live listed seller-market: marketplace first purchases
    ``Poisson(N P_i)`` (none while interrupted: no attention, no auction); repeat purchases
    ``Poisson(C h)`` with ``h = h0 (1 + lift loc)`` (not while interrupted), DTC repeats
    ``Poisson(C_dtc h crm)``, new DTC customers ``Poisson(dtc_share capacity)`` each paying
    the CAC (these three drawn together by rng.poisson_by_source); stock serves them in
    that order. Returns ``Binomial(units, r (1 - cut loc))``
    refund the price, lose freight, duty and fees (parcels also pay return freight) and
    restock the unit at its factory cost. Customers: ``C <- C + first purchases``, and at
    the close of each week ``C <- C - Binomial(C, 1 - (1 - lapse)^7)`` (never negative;
    see layers.lapse_probability_today). Rating: see layers.updated_rating. Incidents:
    with probability ``1 - exp(-h0 mult(t) (1 - cut compliance))`` a listing that is up
    goes down from tomorrow for ``1 + Poisson(mean - 1)`` days (drawn as an Exp(1)
    incident clock run down by each day's hazard; see layers.first_incident_clocks).
    """
    for b in prange(alive.shape[0]):
        market_day_replication(
            b, day, period, seed, replication0 + b,
            market, season, click_through, modes, regime, origin,
            alive, brand, rating, cash,
            listed, price_local, bid_local, budget_local, mode, unit_cost, stock,
            visibility_score, demand_estimate, landed_now, window,
            out_sm, out_s, out_m,
            usd_rate, incident_multiplier, seller_layer, levers, layer_sm,
        )


@njit(cache=True)
def market_day_replication(b, day, period, seed, replication,
                           market, season, click_through, modes, regime, origin,
                           alive, brand, rating, cash,
                           listed, price_local, bid_local, budget_local, mode, unit_cost, stock,
                           visibility_score, demand_estimate, landed_now, window,
                           out_sm, out_s, out_m,
                           usd_rate, incident_multiplier, seller_layer, levers, layer_sm):
    """Every market of replication ``b`` of the batch for one day (serial).

    Kept separate from :func:`market_day` so the parallel loop's body is one call: numba
    compiles a serial function far better than the body of a ``prange`` loop.
    """
    n_sellers = alive.shape[1]
    k_max = click_through.shape[1]
    up = np.empty(n_sellers, dtype=np.bool_)
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
            usd_rate, incident_multiplier, seller_layer, levers, layer_sm,
            up, eligible, winners, prices, scratch, sponsored_attention, attention,
            utility, probability,
        )
