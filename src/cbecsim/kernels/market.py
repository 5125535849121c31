"""The daily market step of one replication: auction, attention, sales and settlement.

:func:`market_day` steps one market of one replication through a day in four named
steps -- :func:`sponsored_auction`, :func:`attention_and_choice`, then per listing
:func:`sell_listing` (demand, stock, returns, customers, ratings, incidents) and the
settlement into cash, outputs and review windows. It loops over the market's **served
listings only** (``tables.market_sellers[tables.market_offsets[m]:...]``): sellers that
cannot list in the market cost nothing.

Arguments follow one pattern: ``(b, m, day, key, tables, state, out, work)`` plus the
row/period being written, with ``key`` the replication's RNG key parts. Money is USD unless
a name says ``_local`` (market currency). Randomness comes from :mod:`.rng`, keyed by the
global replication index, so a replication's path is the same in any batch.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import layout as L
from . import rng
from . import state as K
from .formulas import incident_hazard, net_price_usd, referral_fee_usd, repurchase_hazard, return_probability
from .layers import lapse_probability_today, updated_rating
from .tariff import landed_cost_per_unit

#: Weight of today's demand in the demand estimate used for replenishment (2-week EWMA).
DEMAND_SMOOTHING = 1.0 / 14.0


@njit(cache=True, _nrt=False)
def clear_gsp_auction(bids, quality, eligible, candidates, n_slots, reserve, winners, prices, scratch_score):
    """Generalised second-price auction over ``n_slots`` sponsored slots.

    The eligible ones among ``candidates`` are ranked by ``bid * quality`` (ties: the
    earlier candidate first; candidates are in ascending seller order).
    Slot k pays per click ``max(reserve, score_(k+1) / quality_k)``, never more than its
    own bid; the last filled slot with no runner-up pays the reserve.

    Parameters
    ----------
    bids, quality : float64 (S,)
        Cost-per-click bids [currency] and quality scores (> 0).
    eligible : bool (S,)
        Listings allowed into the auction (their bid is >= reserve).
    candidates : int64 (L_m,)
        Seller indices of the market's listings (only these are read).
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
    for j in range(candidates.shape[0]):
        i = candidates[j]
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


@njit(cache=True, _nrt=False)
def static_utility(market_row, brand, price_local, delivery_days):
    """The part of a listing's utility fixed between reviews:
    ``u0 + a*brand - b*log(p/ref) - d*days`` (price, fulfilment mode and levers change
    only at reviews, so it is computed once a stretch)."""
    return (
        market_row[L.MK_BASE_UTILITY]
        + market_row[L.MK_BRAND_WEIGHT] * brand
        - market_row[L.MK_PRICE_SENSITIVITY] * math.log(price_local / market_row[L.MK_REFERENCE_PRICE])
        - market_row[L.MK_DELIVERY_WEIGHT] * delivery_days
    )


@njit(cache=True, _nrt=False)
def listing_utility(market_row, brand, rating, price_local, delivery_days):
    """Deterministic utility ``u = (u0 + a*brand - b*log(p/ref) - d*days) + g*(rating-4)``
    (:func:`static_utility` plus the rating term, which moves daily)."""
    return static_utility(market_row, brand, price_local, delivery_days) \
        + market_row[L.MK_RATING_WEIGHT] * (rating - 4.0)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def prepare_stretch(b, tables, state, work):
    """Per-stretch values of replication ``b``'s listings: their static utility
    (localisation lifts brand equity)."""
    for m in range(tables.market.shape[0]):
        row = tables.market[m]
        for j in range(tables.market_offsets[m], tables.market_offsets[m + 1]):
            s = tables.market_sellers[j]
            lift = tables.seller_layer[s, L.SL_LOC_BRAND_LIFT] * state.levers[b, s, L.LV_LOCALISATION]
            brand = state.brand[b, s] + lift
            work.utility_static[b, s, m] = static_utility(
                row, brand, state.price_local[b, s, m], tables.modes[state.mode[b, s, m], L.MD_DELIVERY_DAYS]
            )


@njit(cache=True, _nrt=False)
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


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def pay_for_clicks(b, m, s, clicks, price_local, usd_rate, remaining, cash, window, period_sum, seller_sum):
    """Book ``clicks`` at ``price_local`` each for seller ``s``: budget left, cash, ad
    spend, acquisition spend, costs and CM2. (Arrays, not the structures: it has two call
    sites, and each site passing the structures costs compile time.)"""
    cost_local = clicks * price_local
    remaining[s] -= cost_local
    spend = cost_local * usd_rate
    acc = period_sum[b, s, m]
    acc[K.ACC_CLICKS] += clicks
    acc[K.ACC_AD_SPEND] += spend
    acc[K.ACC_ACQUISITION] += spend
    acc[K.ACC_CM2] -= spend
    seller_sum[b, s, K.SACC_COSTS] += spend
    window[s, m, L.W_AD_SPEND] += spend
    window[s, m, L.W_CM2] -= spend
    cash[b, s] -= spend


@njit(cache=True, _nrt=False)
def rank_bidders(bids, quality, eligible, candidates, depth, order, scores):
    """The ``depth`` best of the eligible ``candidates`` by ``bid * quality``, highest
    first (ties: the earlier candidate first), into ``order`` with their ``scores``;
    returns their number.

    Done once a day per market: when a winner drops out the auction's next ranking is this
    one without it (:func:`round_winners`), so it is not sorted again. A day of R rounds
    over K slots needs at most ``K * R + 1`` places: each round's K winners can each drop
    out once, and a round reads its K winners and one runner-up.
    """
    count = 0
    for j in range(candidates.shape[0]):
        i = candidates[j]
        if not eligible[i]:
            continue
        score = bids[i] * quality[i]
        if count < depth:
            position = count
            count += 1
        elif score > scores[depth - 1]:
            position = depth - 1
        else:
            continue
        while position > 0 and scores[position - 1] < score:
            scores[position] = scores[position - 1]
            order[position] = order[position - 1]
            position -= 1
        scores[position] = score
        order[position] = i
    return count


@njit(cache=True, _nrt=False)
def round_winners(order, scores, ranked, eligible, bids, quality, n_slots, reserve, winners, prices):
    """The GSP outcome among the ranked bidders still eligible (as
    :func:`clear_gsp_auction` over them): winners of the first ``n_slots`` places, slot k
    paying ``max(reserve, score of the next eligible / quality_k)``, at most its bid.
    Returns the number of filled slots."""
    filled = 0
    runner_up = 0.0
    for j in range(ranked):
        i = order[j]
        if not eligible[i]:
            continue
        if filled == n_slots:
            runner_up = scores[j]
            break
        winners[filled] = i
        prices[filled] = scores[j]  # the score for now; made a price below
        filled += 1
    for k in range(filled):
        i = winners[k]
        following = prices[k + 1] if k + 1 < filled else runner_up
        price = following / quality[i]
        if price < reserve:
            price = reserve
        if price > bids[i]:
            price = bids[i]
        prices[k] = price
    return filled


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def sponsored_auction(b, m, row, period, day, seed, replication, shoppers, tables, state, out, work):
    """Today's sponsored auction in market ``m``: clicks, spend and sponsored attention.

    ``market[MK_AUCTION_ROUNDS]`` = R auctions a day, each over an equal share of the
    shoppers: a bidder whose budget runs out leaves its slot to the next bidders for the
    rest of the day (budget pacing) instead of the slot standing empty until midnight.
    Slot position k's clicks in one round are Poisson(mu_k / R), ``mu_k = shoppers *
    impression_share * ctr_k``, independent across rounds, whoever holds the slot. The
    bidders are ranked once (:func:`rank_bidders`); a round's winners are the first
    still-eligible ones (:func:`round_winners`).

    How the clicks are drawn depends only on the state (so the law is the same either
    way), to draw as few as the day needs:

    * **ample budgets** -- every winner of the first ranking could pay for twice its slot's
      expected clicks and stay at or above its bid: one Poisson(mu_k) total per slot a day
      (``CLICKS`` stream, component k). If every winner can pay for its total and stay at
      or above its bid, no round changes the ranking and the day is that one auction;
      otherwise the rounds are played with slot k's round-r clicks ``Binomial(clicks left,
      1 / (R - r))`` of its total (``CLICK_SPLIT``, components k then r) -- the
      multinomial split of a Poisson total, i.e. independent Poisson draws per round;
    * **tight budgets** (otherwise): the rounds are played with Poisson(mu_k / R) clicks
      for each filled slot and round (``ROUND_CLICKS``, components k then r).

    Clicks beyond what the remaining budget affords are not shown: the ad then reaches a
    matching share of the round's shoppers only. Writes ``work.sponsored_attention`` for
    the market's sellers (share of shoppers who click or see a sponsored listing).
    """
    row_m = tables.market[m]
    reserve = row_m[L.MK_RESERVE]
    n_slots = int(row_m[L.MK_SLOTS])
    rounds = int(row_m[L.MK_AUCTION_ROUNDS])
    impression_share = row_m[L.MK_IMPRESSION_SHARE]
    usd_rate = state.usd_rate[b, m]
    eligible = work.eligible[b]
    remaining = work.remaining[b]
    quality = work.scratch[b]
    winners = work.winners[b]
    prices = work.prices[b]
    slot_clicks = work.slot_clicks[b]
    order = work.order[b]
    scores = work.score[b]
    bids = state.bid_local[b, :, m]
    any_bidder = False
    for j in range(tables.market_offsets[m], tables.market_offsets[m + 1]):
        s = tables.market_sellers[j]
        work.sponsored_attention[b, s] = 0.0
        quality[s] = state.rating[b, s] / 5.0  # auction quality: rating relevance, in (0, 1]
        remaining[s] = state.budget_local[b, s, m]
        bid = bids[s]
        eligible[s] = (
            work.up[b, s] and state.stock[b, s, m] > 0 and bid >= reserve and bid > 0.0 and remaining[s] >= bid
        )
        any_bidder = any_bidder or eligible[s]
    if not any_bidder or n_slots == 0 or not shoppers > 0:
        return
    candidates = tables.market_sellers[tables.market_offsets[m] : tables.market_offsets[m + 1]]
    ranked = rank_bidders(bids, quality, eligible, candidates, n_slots * rounds + 1, order, scores)
    filled = round_winners(order, scores, ranked, eligible, bids, quality, n_slots, reserve, winners, prices)
    ample = True
    for k in range(filled):
        s = winners[k]
        expected = shoppers * impression_share * tables.click_through[m, k]
        if prices[k] > 0.0 and remaining[s] - 2.0 * expected * prices[k] < bids[s]:
            ample = False
            break
    split = False
    if ample:
        key_clicks = rng.market_key(seed, rng.CLICKS, replication, day, m)
        for k in range(n_slots):
            slot_clicks[k] = rng.poisson(
                shoppers * impression_share * tables.click_through[m, k], rng.absorb(key_clicks, k)
            )
        for k in range(filled):
            s = winners[k]
            if prices[k] > 0.0 and remaining[s] - slot_clicks[k] * prices[k] < bids[s]:
                split = True
                break
        if not split:  # the whole day as one auction: no budget binds in any round
            for k in range(filled):
                s = winners[k]
                work.sponsored_attention[b, s] += impression_share * tables.click_through[m, k]
                if slot_clicks[k] > 0:
                    pay_for_clicks(
                        b,
                        m,
                        s,
                        slot_clicks[k],
                        prices[k],
                        usd_rate,
                        remaining,
                        state.cash,
                        state.window[b],
                        state.period_sum,
                        state.seller_sum,
                    )
            return
    key_rounds = rng.market_key(seed, rng.CLICK_SPLIT if split else rng.ROUND_CLICKS, replication, day, m)
    if not split:
        # Each slot's round mean is the same in every round: PTRS's constants once a slot.
        for k in range(n_slots):
            mean = shoppers * impression_share * tables.click_through[m, k] / rounds
            if mean >= 10.0:
                ptrs = rng.ptrs_constants(mean)
                work.ptrs[b, k, 0], work.ptrs[b, k, 1], work.ptrs[b, k, 2], work.ptrs[b, k, 3] = ptrs
    rerun = False
    for auction_round in range(rounds):
        if rerun:
            filled = round_winners(order, scores, ranked, eligible, bids, quality, n_slots, reserve, winners, prices)
            rerun = False
        last = n_slots if split else filled  # a split consumes every slot's total
        for k in range(last):
            if split:
                # Slot k's clicks this round: a binomial share of what is left of its total.
                left = slot_clicks[k]
                if auction_round == rounds - 1:
                    raw_clicks = left
                elif left > 0:
                    raw_clicks = rng.binomial(
                        left, 1.0 / (rounds - auction_round), rng.absorb(rng.absorb(key_rounds, k), auction_round)
                    )
                else:
                    raw_clicks = np.int64(0)
                slot_clicks[k] = left - raw_clicks
                if k >= filled:
                    continue  # an empty slot: its clicks are never made
            else:
                mean = shoppers * impression_share * tables.click_through[m, k] / rounds
                key = rng.absorb(rng.absorb(key_rounds, k), auction_round)
                if mean >= 10.0:
                    p = work.ptrs[b, k]
                    raw_clicks = rng.poisson_ptrs_with(mean, p[0], p[1], p[2], p[3], key)
                else:
                    raw_clicks = rng.poisson(mean, key)
            s = winners[k]
            slot_attention = impression_share * tables.click_through[m, k]
            clicks = raw_clicks
            if prices[k] > 0.0:  # free clicks (zero reserve, no runner-up) never exhaust a budget
                affordable = np.int64(math.floor(remaining[s] / prices[k]))
                if affordable < clicks:
                    clicks = affordable
            if raw_clicks > 0:
                # The budget runs out part-way through the round: the ad is shown to a
                # matching share of the round's shoppers only.
                slot_attention *= clicks / raw_clicks
            work.sponsored_attention[b, s] += slot_attention / rounds
            if clicks > 0:
                pay_for_clicks(
                    b,
                    m,
                    s,
                    clicks,
                    prices[k],
                    usd_rate,
                    remaining,
                    state.cash,
                    state.window[b],
                    state.period_sum,
                    state.seller_sum,
                )
            if remaining[s] < bids[s]:
                eligible[s] = False
                rerun = True


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def attention_and_choice(b, m, tables, state, work):
    """Organic plus sponsored attention and the MNL weight of each listing that is up.

    Organic attention is the market's organic mass shared in proportion to visibility
    score + floor among listings that are up; a listing's weight is attention x
    exp(utility) (localisation adds to brand equity). Returns ``(1 + sum of weights,
    total attention)``: ``P(buy i) = weight_i / denominator``.
    """
    row = tables.market[m]
    floor = row[L.MK_VISIBILITY_FLOOR]
    lo, hi = tables.market_offsets[m], tables.market_offsets[m + 1]
    total_score = 0.0
    for j in range(lo, hi):
        s = tables.market_sellers[j]
        if work.up[b, s]:
            total_score += state.visibility_score[b, s, m] + floor
    organic_mass = row[L.MK_ORGANIC_ATTENTION]
    denominator = 1.0
    total_attention = 0.0
    for j in range(lo, hi):
        s = tables.market_sellers[j]
        if work.up[b, s]:
            attention = (
                organic_mass * (state.visibility_score[b, s, m] + floor) / total_score + work.sponsored_attention[b, s]
            )
            utility = work.utility_static[b, s, m] + row[L.MK_RATING_WEIGHT] * (state.rating[b, s] - 4.0)
            weight = attention * math.exp(utility) if attention > 0.0 else 0.0
        else:
            attention = 0.0
            weight = 0.0
        work.attention[b, s] = attention
        work.weight[b, s] = weight
        denominator += weight
        total_attention += attention
    return denominator, total_attention


@njit(cache=True, _nrt=False, no_cpython_wrapper=True, inline="always")
def sell_listing(
    b,
    m,
    s,
    row,
    period,
    day,
    seed,
    replication,
    shoppers,
    probability,
    total_attention,
    keys,
    weekly_lapse,
    regime,
    tables,
    state,
    out,
    work,
):
    """Demand, sales, returns, customers, rating, incident and settlement of one listing.

    ``keys`` holds the market parts of the day's streams (DEMAND, REPEAT, PURCHASE_SOURCE,
    RETURNS, LAPSE, DTC_LAPSE; 0 for a layer that cannot draw today); each draw absorbs the
    seller. An incident's keys (INCIDENT, INTERRUPTION) are made when one happens.
    Demand by source: marketplace first purchases ``Poisson(N P_i)`` (none while
    interrupted: no attention), repeat purchases ``Poisson(C h)`` (not while
    interrupted), DTC repeats ``Poisson(C_dtc h crm)``, new DTC customers
    ``Poisson(dtc_share capacity)`` paying the CAC (the three drawn together by
    rng.poisson_by_source); stock serves them in that order. Returns ``Binomial(units,
    r (1 - cut loc))`` refund the price, lose freight, duty and fees (parcels also pay
    return freight) and restock the unit at its factory cost. Customers: ``C <- C + first
    purchases`` and, at the close of each week, ``C <- C - Binomial(C, 1 - (1 - lapse)^7)``.
    Incidents: a listing that is up goes down from tomorrow for ``1 + Poisson(mean - 1)``
    days when its Exp(1) incident clock, run down by each day's hazard, runs out.
    Returns the marketplace units sold (they drive the flywheel).
    """
    row_m = tables.market[m]
    f = state.mode[b, s, m]
    mode_row = tables.modes[f]
    kind = int(mode_row[L.MD_KIND])
    usd_rate = state.usd_rate[b, m]
    price = state.price_local[b, s, m]
    net_price = net_price_usd(price, row_m[L.MK_VAT], usd_rate)
    unit_cost = state.unit_cost[b, s, m]
    freight = mode_row[L.MD_FREIGHT]
    handling = mode_row[L.MD_HANDLING_FEE]
    landed, duty = landed_cost_per_unit(
        kind, unit_cost, net_price, freight, handling, regime[m, tables.origin[s], kind]
    )
    acc = state.period_sum[b, s, m]
    acc[K.ACC_LANDED] += landed
    acc[K.ACC_DAYS] += 1.0
    if not state.listed[b, s, m]:
        return np.int64(0)
    lsm = state.layer_sm[b, s, m]
    seller_row = tables.seller_layer[s]
    localisation = state.levers[b, s, L.LV_LOCALISATION]
    interrupted = day < lsm[L.LS_INTERRUPTED_UNTIL]
    demanded = np.int64(0)
    if probability > 0.0:
        demanded = rng.poisson(shoppers * probability, rng.absorb(keys[0], s))
    customers = np.int64(lsm[L.LS_CUSTOMERS])
    dtc_customers = np.int64(lsm[L.LS_DTC_CUSTOMERS])
    hazard = repurchase_hazard(row_m[L.MK_REPEAT_RATE], seller_row[L.SL_LOC_RETENTION_LIFT], localisation)
    repeat_mean = 0.0
    if customers > 0 and hazard > 0.0 and not interrupted:
        repeat_mean = customers * hazard
    dtc_repeat_mean = 0.0
    if dtc_customers > 0 and hazard > 0.0:
        dtc_repeat_mean = dtc_customers * (hazard * seller_row[L.SL_CRM_MULTIPLIER])
    dtc_new_mean = state.levers[b, s, L.LV_DTC_SHARE] * seller_row[L.SL_DTC_CAPACITY]
    repeat_demanded = dtc_repeat_demanded = dtc_new_demanded = np.int64(0)
    if repeat_mean > 0.0 or dtc_repeat_mean > 0.0 or dtc_new_mean > 0.0:
        repeat_demanded, dtc_repeat_demanded, dtc_new_demanded = rng.poisson_by_source(
            repeat_mean,
            dtc_repeat_mean,
            dtc_new_mean,
            rng.absorb(keys[1], s),
            rng.absorb(keys[2], s),
        )
    # Stock serves marketplace first purchases, then repeats, then new DTC buyers.
    available = state.stock[b, s, m]
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
    state.demand_estimate[b, s, m] += DEMAND_SMOOTHING * (total_demanded - state.demand_estimate[b, s, m])

    referral = referral_fee_usd(price, row_m[L.MK_REFERRAL_RATE], row_m[L.MK_REFERRAL_MIN], usd_rate)
    fee = mode_row[L.MD_FULFILMENT_FEE]
    revenue = units * net_price
    # DTC units pay no referral fee.
    cm2 = revenue - marketplace_units * (landed + referral + fee) - dtc_units * (landed + fee)
    # Cash paid at sale: platform fees and handling always; for parcels also the freight
    # and the duty (bulk freight and duty were paid on import).
    paid = marketplace_units * (referral + fee + handling) + dtc_units * (fee + handling)
    duty_paid = 0.0
    if kind == L.KIND_PARCEL:
        duty_paid = units * duty
        paid += units * freight + duty_paid
    acquisition = dtc_new_sold * seller_row[L.SL_DTC_CAC]
    cm2 -= acquisition
    paid += acquisition
    # Returns: the price is refunded; freight, duty and fees are lost (a parcel also pays
    # return freight); the unit goes back to stock at its factory cost.
    returned = np.int64(0)
    p_return = return_probability(row_m[L.MK_RETURN_RATE], seller_row[L.SL_LOC_RETURN_CUT], localisation)
    if units > 0 and p_return > 0.0:
        if p_return <= 0.5:
            if lsm[L.LS_RETURN_Q] != p_return:  # first use, or the lever moved
                lsm[L.LS_RETURN_Q] = p_return
                lsm[L.LS_RETURN_LOG1M_Q] = math.log1p(-p_return)
                lsm[L.LS_RETURN_ODDS] = p_return / (1.0 - p_return)
            returned = rng.binomial_small_q(
                units,
                p_return,
                lsm[L.LS_RETURN_LOG1M_Q],
                lsm[L.LS_RETURN_ODDS],
                rng.absorb(keys[3], s),
            )
        else:
            returned = rng.binomial(units, p_return, rng.absorb(keys[3], s))
    refund = returned * net_price
    return_freight = returned * freight if kind == L.KIND_PARCEL else 0.0
    cm2 -= refund + return_freight - returned * unit_cost
    paid += refund + return_freight
    state.stock[b, s, m] = available + returned
    state.cash[b, s] += revenue - paid
    state.seller_sum[b, s, K.SACC_COSTS] += paid
    share = work.attention[b, s] / total_attention if total_attention > 0.0 else 0.0
    organic_units = (
        sold * (work.attention[b, s] - work.sponsored_attention[b, s]) / work.attention[b, s] if sold > 0 else 0.0
    )

    # Customers: each first purchase is a new customer; at the close of each week
    # customers lapse (weekly_lapse is 0 on the other days).
    lapsed = np.int64(0)
    if customers > 0 and weekly_lapse > 0.0:
        lapsed = rng.binomial(customers, weekly_lapse, rng.absorb(keys[4], s))
    dtc_lapsed = np.int64(0)
    if dtc_customers > 0 and weekly_lapse > 0.0:
        dtc_lapsed = rng.binomial(dtc_customers, weekly_lapse, rng.absorb(keys[5], s))
    lsm[L.LS_CUSTOMERS] = customers - lapsed + sold
    lsm[L.LS_DTC_CUSTOMERS] = dtc_customers - dtc_lapsed + dtc_new_sold
    delivery_days = mode_row[L.MD_DELIVERY_DAYS]
    if units > 0 and row_m[L.MK_RATING_MEMORY] > 0.0:
        state.rating[b, s] = updated_rating(state.rating[b, s], units, returned, delivery_days, row_m)
    # Compliance incident: the day's hazard runs down the listing's incident clock, an
    # Exp(1) amount of hazard; the incident comes on the day it runs out, so P(incident
    # today | none before) = 1 - exp(-hazard) with one draw per incident, not per day.
    incidents = 0
    if not interrupted and row_m[L.MK_INCIDENT_RATE] > 0.0:
        hazard = incident_hazard(
            row_m[L.MK_INCIDENT_RATE],
            tables.incident_multiplier[day, m],
            seller_row[L.SL_COMPLIANCE_CUT],
            state.levers[b, s, L.LV_COMPLIANCE],
        )
        if hazard > 0.0:
            clock = lsm[L.LS_INCIDENT_CLOCK] - hazard
            if clock <= 0.0:
                length = 1 + rng.poisson(
                    row_m[L.MK_INTERRUPTION_DAYS] - 1.0, rng.stream_key(seed, rng.INTERRUPTION, replication, day, m, s)
                )
                lsm[L.LS_INTERRUPTED_UNTIL] = day + 1 + length
                incidents = 1
                clock = rng.standard_exponential(rng.stream_key(seed, rng.INCIDENT, replication, day, m, s))
            lsm[L.LS_INCIDENT_CLOCK] = clock
    repeat_units = repeat_sold + dtc_repeat_sold
    new_customers = sold + dtc_new_sold

    acc[K.ACC_REVENUE] += revenue
    acc[K.ACC_DUTY] += duty_paid
    acc[K.ACC_CM2] += cm2
    acc[K.ACC_REFUNDS] += refund
    acc[K.ACC_REPEAT_REVENUE] += repeat_units * net_price
    acc[K.ACC_DTC_REVENUE] += dtc_units * net_price
    acc[K.ACC_ACQUISITION] += acquisition
    acc[K.ACC_UNITS] += units
    acc[K.ACC_LOST] += lost
    acc[K.ACC_RETURNS] += returned
    acc[K.ACC_INCIDENTS] += incidents
    acc[K.ACC_INTERRUPTED_DAYS] += 1.0 if interrupted else 0.0
    acc[K.ACC_LISTED_DAYS] += 1.0
    acc[K.ACC_NEW_CUSTOMERS] += new_customers
    acc[K.ACC_DTC_NEW_CUSTOMERS] += dtc_new_sold
    acc[K.ACC_DTC_UNITS] += dtc_units
    acc[K.ACC_VISIBILITY] += share
    acc[K.ACC_ORGANIC_UNITS] += organic_units
    acc[K.ACC_REPEAT_UNITS] += repeat_units
    acc[K.ACC_DELIVERY_UNIT_DAYS] += units * delivery_days
    acc[K.ACC_CUM_REVENUE] += revenue
    acc[K.ACC_CUM_NEW_CUSTOMERS] += new_customers
    w = state.window[b, s, m]
    w[L.W_REVENUE] += revenue
    w[L.W_UNITS] += units
    w[L.W_LOST] += lost
    w[L.W_CM2] += cm2
    w[L.W_VISIBILITY] += share
    w[L.W_DAYS] += 1.0
    w[L.W_DUTY] += units * duty
    w[L.W_NEW_CUSTOMERS] += new_customers
    w[L.W_RETURNS] += returned
    return marketplace_units


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def market_day(b, m, row, period, day, seed, replication, regime, tables, state, out, work):
    """One market, one day, one replication: arrivals, auction, choice, every listing's
    sales and settlement, and the visibility flywheel (on marketplace sales)."""
    row_m = tables.market[m]
    shoppers = rng.poisson(
        row_m[L.MK_SHOPPERS] * tables.season[day, m],
        rng.stream_key(seed, rng.ARRIVALS, replication, day, m, rng.NO_SELLER),
    )
    out.m_i4[K.OM_SHOPPERS, row, period, m] += shoppers
    lo, hi = tables.market_offsets[m], tables.market_offsets[m + 1]
    for j in range(lo, hi):
        s = tables.market_sellers[j]
        # A listing is up when its seller is alive and it is listed and not interrupted
        # (compliance incident); only listings that are up get ads or attention today.
        work.up[b, s] = (
            state.alive[b, s] and state.listed[b, s, m] and day >= state.layer_sm[b, s, m, L.LS_INTERRUPTED_UNTIL]
        )
    sponsored_auction(b, m, row, period, day, seed, replication, shoppers, tables, state, out, work)
    denominator, total_attention = attention_and_choice(b, m, tables, state, work)
    # The market parts of the day's stream keys, for the layers that can draw today (a
    # key costs five mixing rounds; an incident's keys are made when one happens).
    unused = np.uint64(0)
    repeats = row_m[L.MK_REPEAT_RATE] > 0.0
    if not repeats:
        for j in range(lo, hi):
            s = tables.market_sellers[j]
            repeats = repeats or state.levers[b, s, L.LV_DTC_SHARE] * tables.seller_layer[s, L.SL_DTC_CAPACITY] > 0.0
    weekly_lapse = lapse_probability_today(day, row_m[L.MK_LAPSE_RATE])
    lapse_today = weekly_lapse > 0.0
    keys = (
        rng.market_key(seed, rng.DEMAND, replication, day, m),
        rng.market_key(seed, rng.REPEAT, replication, day, m) if repeats else unused,
        rng.market_key(seed, rng.PURCHASE_SOURCE, replication, day, m) if repeats else unused,
        rng.market_key(seed, rng.RETURNS, replication, day, m) if row_m[L.MK_RETURN_RATE] > 0.0 else unused,
        rng.market_key(seed, rng.LAPSE, replication, day, m) if lapse_today else unused,
        rng.market_key(seed, rng.DTC_LAPSE, replication, day, m) if lapse_today else unused,
    )
    smoothing = row_m[L.MK_VISIBILITY_RATE]
    for j in range(lo, hi):
        s = tables.market_sellers[j]
        marketplace_units = np.int64(0)
        if state.alive[b, s]:
            marketplace_units = sell_listing(
                b,
                m,
                s,
                row,
                period,
                day,
                seed,
                replication,
                shoppers,
                work.weight[b, s] / denominator,
                total_attention,
                keys,
                weekly_lapse,
                regime,
                tables,
                state,
                out,
                work,
            )
        # The flywheel runs on marketplace sales (DTC sales do not rank the listing).
        state.visibility_score[b, s, m] += smoothing * (marketplace_units - state.visibility_score[b, s, m])
