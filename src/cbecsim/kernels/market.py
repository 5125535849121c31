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
from .fee_rules import banded_fee, payment_fee, referral_fee, referral_refund
from .formulas import incident_hazard, net_price_usd, repurchase_hazard, return_probability
from .layers import lapse_probability_today, updated_rating
from .tariff import direct_duty_per_unit, direct_landed_cost, landed_cost_per_unit

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
def static_utility(market_row, brand, price_local):
    """The part of a listing's utility fixed between reviews: ``u0 + a*brand - b*log(p/ref)``
    (price and levers change only at reviews, so it is computed once a stretch)."""
    return (
        market_row[L.MK_BASE_UTILITY]
        + market_row[L.MK_BRAND_WEIGHT] * brand
        - market_row[L.MK_PRICE_SENSITIVITY] * math.log(price_local / market_row[L.MK_REFERENCE_PRICE])
    )


@njit(cache=True, _nrt=False)
def listing_utility(market_row, brand, rating, price_local, delivery_days, badge=0.0):
    """Within-page utility ``v = (u0 + a*brand - b*log(p/ref)) + g*(rating-4) - d*days + badge``
    (:func:`static_utility` plus the terms that move daily: the rating, and the delivery
    days and badge of the stock pool that serves the listing), in that order, as
    :func:`attention_and_choice` evaluates it."""
    return (static_utility(market_row, brand, price_local) + market_row[L.MK_RATING_WEIGHT] * (rating - 4.0)
            - market_row[L.MK_DELIVERY_WEIGHT] * delivery_days + badge)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def prepare_stretch(b, tables, state, work):
    """Per-stretch values of replication ``b``'s listings: their static utility without
    the delivery term (localisation lifts brand equity), and the mode each stock pool
    ships with: the listing's mode for the pool of its kind (a parcel-kind mode ships the
    origin stock, a bulk mode holds the warehouse stock); and whether each market can see
    repeat or DTC purchases (the levers move only at reviews)."""
    for m in range(tables.market.shape[0]):
        row = tables.market[m]
        repeats = row[L.MK_REPEAT_RATE] > 0.0
        for j in range(tables.market_offsets[m], tables.market_offsets[m + 1]):
            s = tables.market_sellers[j]
            repeats = repeats or state.levers[b, s, L.LV_DTC_SHARE] * tables.seller_layer[s, L.SL_DTC_CAPACITY] > 0.0
            lift = tables.seller_layer[s, L.SL_LOC_BRAND_LIFT] * state.levers[b, s, L.LV_LOCALISATION]
            brand = state.brand[b, s] + lift
            work.utility_static[b, s, m] = static_utility(row, brand, state.price_local[b, s, m])
            work.direct_duty_key[b, s, m] = -1  # a stretch may run under other tables (a forked world)
            work.sale_memo[b, s, m, K.SALE_FEE_ROW] = math.nan  # so are the fee rows and the modes
            work.choice_memo[b, s, m, K.CHOICE_RATING] = math.nan  # and the static utility changed
            f = state.mode[b, s, m]
            if int(tables.modes[f, L.MD_KIND]) == L.KIND_BULK:
                state.pool_mode[b, s, m, L.POOL_WAREHOUSE] = f
            else:
                state.pool_mode[b, s, m, L.POOL_ORIGIN] = f
        work.repeats_possible[b, m] = repeats


@njit(cache=True, _nrt=False)
def referral_fee_local(price_local, vat, fee_row, tiers):
    """Referral fee on one unit under a market's fee row [market currency]: the schedule's
    tiers and minimum on the price with VAT (EU stores) or without (US: net of sales tax)."""
    base = price_local if fee_row[L.FE_REFERRAL_GROSS] > 0.5 else price_local / (1.0 + vat)
    return referral_fee(base, tiers, fee_row[L.FE_REFERRAL_MIN], int(fee_row[L.FE_REFERRAL_RULE]))


@njit(cache=True, _nrt=False)
def fulfilment_fee_usd(mode_row, fee_row, bands, price_local, usd_rate):
    """Fulfilment fee of one unit shipped in mode ``mode_row`` [USD/unit]: a bulk mode that
    takes its fees from the market's schedule pays the schedule's fee of the unit's price
    band (surcharge included); any other mode its own ``fulfilment_fee_per_unit``."""
    if mode_row[L.MD_SCHEDULE_FEES] > 0.5 and fee_row[L.FE_HAS_FULFILMENT] > 0.5:
        return banded_fee(price_local, bands, fee_row[L.FE_FULFILMENT_SURCHARGE]) * usd_rate
    return mode_row[L.MD_FULFILMENT_FEE]


@njit(cache=True, _nrt=False, inline="always")
def serving_pool(state, b, s, m):
    """The stock pool that serves the listing's next sale: the warehouse while it holds
    stock, else the origin (parcels)."""
    return L.POOL_WAREHOUSE if state.warehouse_stock[b, s, m] > 0 else L.POOL_ORIGIN


@njit(cache=True, _nrt=False, inline="always")
def inside_share(denominator, nest):
    """Share of shoppers who buy one of the page's listings: ``D^lambda / (1 + D^lambda)``
    with ``D = sum_j w_j exp(v_j)`` (nested logit, outside option alone in its nest; ``v``
    the within-nest utility, i.e. the nested logit's utility over lambda)."""
    if not denominator > 0.0:
        return 0.0
    inclusive = math.exp(nest * math.log(denominator))
    return inclusive / (1.0 + inclusive)


@njit(cache=True, _nrt=False)
def purchase_probabilities(examination, utility, nest, out):
    """Nested logit over a results page with an outside option.

    ``P(buy i) = w_i exp(v_i) / D * D^lambda / (1 + D^lambda)`` with
    ``D = sum_j w_j exp(v_j)``, ``w`` the examination weight of each listing (0: not on
    the page, probability 0), ``v`` the within-nest utility and ``lambda = nest`` in (0, 1]
    (1: plain multinomial logit). With ``v = ... - beta log p``: own-price elasticity
    ``-beta ((1 - s_i|g) + lambda s_i|g (1 - s_g))``, cross ``beta s_j|g (1 - lambda (1 -
    s_g))``, all prices together ``-beta lambda (1 - s_g)`` (``s_g`` the inside share).
    Writes ``out`` (S,) and returns the sum over listings.
    """
    denominator = 0.0
    for i in range(examination.shape[0]):
        if examination[i] > 0.0:
            out[i] = examination[i] * math.exp(utility[i])
            denominator += out[i]
        else:
            out[i] = 0.0
    inside = inside_share(denominator, nest)
    total = 0.0
    for i in range(examination.shape[0]):
        out[i] = out[i] / denominator * inside if denominator > 0.0 else 0.0
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


@njit(cache=True, _nrt=False, no_cpython_wrapper=True, inline="always")
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
        # A seller can spend on ads only what cash and its credit line still allow.
        liquidity = (state.cash[b, s] + state.credit_line[b, s]) / usd_rate
        remaining[s] = state.budget_local[b, s, m] if state.budget_local[b, s, m] < liquidity else max(liquidity, 0.0)
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


@njit(cache=True, _nrt=False, inline="always")
def ranks_before(state, b, m, s, t):
    """Listing ``s`` ranks above ``t`` organically: higher flywheel score, then higher
    rating (the relevance signal the auction also uses), then the lower seller index."""
    score_s = state.visibility_score[b, s, m]
    score_t = state.visibility_score[b, t, m]
    if score_s != score_t:
        return score_s > score_t
    if state.rating[b, s] != state.rating[b, t]:
        return state.rating[b, s] > state.rating[b, t]
    return s < t


@njit(cache=True, _nrt=False, inline="always")
def exp_utility(b, s, m, row, tables, state, work):
    """``exp(v)`` of listing ``(s, m)``, ``v`` its within-nest utility: the stretch's static
    part plus the rating term, the delivery days and the delivery badge of the mode of the
    stock pool that serves it. Kept in ``work.choice_memo`` and worked out again only when
    the rating or that mode changes (the static part changes only between stretches)."""
    mode = state.pool_mode[b, s, m, serving_pool(state, b, s, m)]
    rating = state.rating[b, s]
    memo = work.choice_memo[b, s, m]
    if memo[K.CHOICE_RATING] != rating or memo[K.CHOICE_MODE] != mode:
        serving = tables.modes[mode]
        utility = (work.utility_static[b, s, m] + row[L.MK_RATING_WEIGHT] * (rating - 4.0)
                   - row[L.MK_DELIVERY_WEIGHT] * serving[L.MD_DELIVERY_DAYS] + serving[L.MD_BADGE_UTILITY])
        memo[K.CHOICE_RATING] = rating
        memo[K.CHOICE_MODE] = mode
        memo[K.CHOICE_EXP_UTILITY] = math.exp(utility)
    return memo[K.CHOICE_EXP_UTILITY]


@njit(cache=True, _nrt=False, no_cpython_wrapper=True, inline="always")
def attention_and_choice(b, m, tables, state, work):
    """The day's results page of market ``m`` and each listing's nested-logit weight.

    Organic ranking: the market's served listings sorted by flywheel score (ties: rating,
    then seller index) -- yesterday's order, re-sorted by insertion (the scores move
    slowly, so the order is nearly sorted). The listings that are up take the organic
    positions in that order; position r (0 = top) is examined with weight
    ``organic_attention * (1 + r)^-eta`` up to ``page_size`` positions
    (``tables.position_weight``), beyond it not at all. A listing's examination weight is
    that plus its sponsored attention (the share of shoppers its ads reach today). Its
    nested-logit weight is ``w_i exp(v_i)``, ``v_i`` the within-nest utility: the static
    part plus the rating term, the delivery days and the delivery badge of the mode of the
    stock pool that serves it. Returns ``(D,
    inside share, total examination)``: ``P(buy i) = weight_i / D * inside share``.
    """
    row = tables.market[m]
    lo, hi = tables.market_offsets[m], tables.market_offsets[m + 1]
    order = state.rank_order[b]
    for j in range(lo + 1, hi):
        s = order[j]
        i = j
        while i > lo and ranks_before(state, b, m, s, order[i - 1]):
            order[i] = order[i - 1]
            i -= 1
        order[i] = s
    nest = row[L.MK_NEST]
    positions = tables.position_weight.shape[1]
    rank = 0
    denominator = 0.0
    total_attention = 0.0
    for j in range(lo, hi):
        s = order[j]
        if work.up[b, s]:
            attention = work.sponsored_attention[b, s]
            if rank < positions:
                attention += tables.position_weight[m, rank]
            rank += 1
            weight = attention * exp_utility(b, s, m, row, tables, state, work) if attention > 0.0 else 0.0
        else:
            attention = 0.0
            weight = 0.0
        work.attention[b, s] = attention
        work.weight[b, s] = weight
        denominator += weight
        total_attention += attention
    return denominator, inside_share(denominator, nest), total_attention


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
    repeats,
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
    ``repeats`` is ``work.repeats_possible[b, m]``: False when the market has no repeat
    purchases and no DTC share this stretch, so no repeat or DTC demand is worked out.

    Demand by source: marketplace first purchases ``Poisson(N P_i)`` (none while
    interrupted: not on the page), repeat purchases ``Poisson(C h)`` (not while
    interrupted), DTC repeats ``Poisson(C_dtc h crm)``, new DTC customers
    ``Poisson(dtc_share capacity)`` paying the CAC (the three drawn together by
    rng.poisson_by_source); stock serves them in that order.

    Stock pools: a sale ships from the overseas warehouse while it holds stock, else from
    the origin by parcel. A warehouse unit costs its pool's moving-average landed cost
    (factory cost, bulk freight, import duty and inbound placement paid when it arrived)
    plus handling and the fulfilment fee (the market's fee schedule by price band, or the
    mode's own fee); an origin unit costs its pool's cost plus parcel freight, the duty and
    entry fees per unit of the market's basket of parcels valued at the sale value under
    today's regime (tariff.direct_duty_per_unit), handling and the mode's fee. Marketplace units pay
    the referral fee (the schedule's tiers and minimum, on the price with or without VAT as
    the schedule says), DTC units the card payment fee. Cash: factory cost (and bulk
    freight, duty, inbound placement) were paid before; what a sale pays is paid today.

    Returns ``Binomial(units of each pool, r (1 - cut loc))``: the price is refunded, the
    referral fee credited back less the refund administration fee, a warehouse return
    pays the returns-processing fee, a parcel return its return freight and gets the
    duty paid on it back at the regime's drawback rate (``duty_paid`` is net of it); the unit goes
    back to its pool at its cost (so CM2 gets the unit's cost back; freight and fees of
    the sale are lost). Customers: ``C <- C + first purchases`` and, at the close of each
    week, ``C <- C - Binomial(C, 1 - (1 - lapse)^7)``. Incidents: a listing that is up
    goes down from tomorrow for ``1 + Poisson(mean - 1)`` days when its Exp(1) incident
    clock, run down by each day's hazard, runs out. Returns the marketplace units sold
    (they drive the flywheel).
    """
    row_m = tables.market[m]
    usd_rate = state.usd_rate[b, m]
    price = state.price_local[b, s, m]
    fee_row = tables.fee_index[day, m]
    fees_m = tables.fee_rows[fee_row]
    warehouse_mode_index = state.pool_mode[b, s, m, L.POOL_WAREHOUSE]
    warehouse_mode = tables.modes[warehouse_mode_index]
    sale = work.sale_memo[b, s, m]
    if (sale[K.SALE_FEE_ROW] != fee_row or sale[K.SALE_PRICE] != price or sale[K.SALE_USD_RATE] != usd_rate
            or sale[K.SALE_WAREHOUSE_MODE] != warehouse_mode_index):
        sale[K.SALE_NET_PRICE] = net_price_usd(price, row_m[L.MK_VAT], usd_rate)
        sale[K.SALE_REFERRAL_LOCAL] = referral_fee_local(
            price, row_m[L.MK_VAT], fees_m, tables.fee_referral_tiers[fee_row]
        )
        sale[K.SALE_WAREHOUSE_FEE] = fulfilment_fee_usd(
            warehouse_mode, fees_m, tables.fee_fulfilment_bands[fee_row], price, usd_rate
        )
        sale[K.SALE_FEE_ROW] = fee_row
        sale[K.SALE_PRICE] = price
        sale[K.SALE_USD_RATE] = usd_rate
        sale[K.SALE_WAREHOUSE_MODE] = warehouse_mode_index
    net_price = sale[K.SALE_NET_PRICE]
    referral_local = sale[K.SALE_REFERRAL_LOCAL]
    referral = referral_local * usd_rate
    # The origin pool ships by parcel: landed cost at today's duty on the sale value.
    stock_origin = state.pool_origin[b, s, m]
    origin_mode = tables.mode_by_origin[stock_origin, state.pool_mode[b, s, m, L.POOL_ORIGIN]]
    origin_kind = int(origin_mode[L.MD_KIND])
    origin_cost = state.pool_cost[b, s, m, L.POOL_ORIGIN]
    freight = origin_mode[L.MD_FREIGHT]
    origin_handling = origin_mode[L.MD_HANDLING_FEE]
    origin_fee = origin_mode[L.MD_FULFILMENT_FEE]
    seller_row = tables.seller_layer[s]
    if origin_kind == L.KIND_BULK:
        origin_landed, duty = landed_cost_per_unit(
            origin_kind, origin_cost, net_price, freight, origin_handling, regime[m, stock_origin, origin_kind],
            tables.basket[m], int(seller_row[L.SL_POSTAL_METHOD]), seller_row[L.SL_IOSS],
        )
    else:  # as landed_cost_per_unit, with the basket's duty worked out again only when it can change
        regime_key = (tables.regime_index[day] * tables.regime_tables.shape[2] + stock_origin) * L.N_KINDS + origin_kind
        duty, entry_fees = direct_duty_kept(
            b, s, m, regime_key, origin_kind, net_price, regime[m, stock_origin, origin_kind], tables.basket[m],
            int(seller_row[L.SL_POSTAL_METHOD]), seller_row[L.SL_IOSS], work,
        )
        origin_landed = direct_landed_cost(origin_cost, freight, duty, entry_fees, origin_handling)
    # The warehouse pool: its moving-average landed cost, handling and fulfilment fee.
    warehouse_cost = state.pool_cost[b, s, m, L.POOL_WAREHOUSE]
    warehouse_handling = warehouse_mode[L.MD_HANDLING_FEE]
    schedule_fees = warehouse_mode[L.MD_SCHEDULE_FEES] > 0.5
    warehouse_fee = sale[K.SALE_WAREHOUSE_FEE]
    warehouse_stock = state.warehouse_stock[b, s, m]
    acc = state.period_sum[b, s, m]
    if warehouse_stock > 0:
        acc[K.ACC_LANDED] += warehouse_cost + warehouse_handling
        state.unit_cash_margin[b, s, m] = net_price - referral - warehouse_fee - warehouse_handling
    else:
        acc[K.ACC_LANDED] += origin_landed
        state.unit_cash_margin[b, s, m] = net_price - referral - (origin_landed - origin_cost) - origin_fee
    acc[K.ACC_DAYS] += 1.0
    if not state.listed[b, s, m]:
        return np.int64(0)
    lsm = state.layer_sm[b, s, m]
    localisation = state.levers[b, s, L.LV_LOCALISATION]
    interrupted = day < lsm[L.LS_INTERRUPTED_UNTIL]
    demanded = np.int64(0)
    if probability > 0.0:
        demanded = rng.poisson(shoppers * probability, rng.absorb(keys[0], s))
    customers = np.int64(lsm[L.LS_CUSTOMERS])
    dtc_customers = np.int64(lsm[L.LS_DTC_CUSTOMERS])
    repeat_mean = dtc_repeat_mean = dtc_new_mean = 0.0
    if repeats:  # else the market's repeat rate and every DTC share are 0: all three means are 0
        hazard = repurchase_hazard(row_m[L.MK_REPEAT_RATE], seller_row[L.SL_LOC_RETENTION_LIFT], localisation)
        if customers > 0 and hazard > 0.0 and not interrupted:
            repeat_mean = customers * hazard
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
    # The warehouse ships first; the rest goes by parcel from the origin.
    warehouse_units = units if units < warehouse_stock else warehouse_stock
    origin_units = units - warehouse_units

    revenue = units * net_price
    payment = 0.0
    if dtc_units > 0:
        payment = payment_fee(price * usd_rate, seller_row[L.SL_PAYMENT_RATE], seller_row[L.SL_PAYMENT_FIXED])
    selling_fees = (warehouse_units * warehouse_fee + origin_units * origin_fee + marketplace_units * referral
                    + dtc_units * payment)
    cm2 = revenue - warehouse_units * (warehouse_cost + warehouse_handling) - origin_units * origin_landed \
        - selling_fees
    # Cash paid at sale: fees and handling; an origin unit also its parcel freight and duty.
    paid = selling_fees + warehouse_units * warehouse_handling + origin_units * (origin_landed - origin_cost)
    duty_paid = origin_units * duty
    acquisition = dtc_new_sold * seller_row[L.SL_DTC_CAC]
    cm2 -= acquisition
    paid += acquisition
    # Returns, drawn per pool (the warehouse draw first; an origin draw absorbs 1 more).
    returned_warehouse = np.int64(0)
    returned_origin = np.int64(0)
    p_return = return_probability(row_m[L.MK_RETURN_RATE], seller_row[L.SL_LOC_RETURN_CUT], localisation)
    if units > 0 and p_return > 0.0:
        key_returns = rng.absorb(keys[3], s)
        if p_return <= 0.5 and lsm[L.LS_RETURN_Q] != p_return:  # first use, or the lever moved
            lsm[L.LS_RETURN_Q] = p_return
            lsm[L.LS_RETURN_LOG1M_Q] = math.log1p(-p_return)
            lsm[L.LS_RETURN_ODDS] = p_return / (1.0 - p_return)
        if warehouse_units > 0:
            returned_warehouse = returned_units(warehouse_units, p_return, lsm, key_returns)
        if origin_units > 0:
            returned_origin = returned_units(origin_units, p_return, lsm, rng.absorb(key_returns, 1))
    returned = returned_warehouse + returned_origin
    refund = returned * net_price
    fees_back = 0.0
    if returned > 0:
        # Marketplace refunds credit the referral fee back less the administration fee.
        credit = referral_refund(referral_local, fees_m[L.FE_REFUND_ADMIN_RATE], fees_m[L.FE_REFUND_ADMIN_MAX])
        fees_back = returned * (marketplace_units / units) * credit * usd_rate
        if schedule_fees:
            fees_back -= returned_warehouse * fees_m[L.FE_RETURNS_PROCESSING] * usd_rate
    return_freight = returned_origin * freight
    cm2 += fees_back - refund - return_freight + returned_warehouse * warehouse_cost + returned_origin * origin_cost
    paid += refund + return_freight - fees_back
    # A parcel return travels back to the origin (exported): the duty paid on it today is
    # refunded at the regime's drawback rate (US rejected/unused merchandise drawback,
    # 19 U.S.C. 1313(c), 99%, where the library sources it). A warehouse return is
    # restocked in the market, so nothing is exported and nothing is refunded.
    if returned_origin > 0 and duty > 0.0:
        drawback_rate = regime[m, stock_origin, origin_kind, L.RG_DRAWBACK]
        if drawback_rate > 0.0:
            drawback = returned_origin * duty * drawback_rate
            cm2 += drawback
            paid -= drawback
            duty_paid -= drawback
    selling_fees -= fees_back
    state.stock[b, s, m] = available + returned
    state.warehouse_stock[b, s, m] = warehouse_stock - warehouse_units + returned_warehouse
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
    unit_delivery_days = (warehouse_units * warehouse_mode[L.MD_DELIVERY_DAYS]
                          + origin_units * origin_mode[L.MD_DELIVERY_DAYS])
    if units > 0 and row_m[L.MK_RATING_MEMORY] > 0.0:
        state.rating[b, s] = updated_rating(state.rating[b, s], units, returned, unit_delivery_days / units, row_m)
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
    acc[K.ACC_FEES] += selling_fees
    acc[K.ACC_UNITS] += units
    acc[K.ACC_UNITS_FROM_WAREHOUSE] += warehouse_units
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
    acc[K.ACC_DELIVERY_UNIT_DAYS] += unit_delivery_days
    acc[K.ACC_CUM_REVENUE] += revenue
    acc[K.ACC_CUM_NEW_CUSTOMERS] += new_customers
    w = state.window[b, s, m]
    w[L.W_REVENUE] += revenue
    w[L.W_UNITS] += units
    w[L.W_LOST] += lost
    w[L.W_CM2] += cm2
    w[L.W_VISIBILITY] += share
    w[L.W_DAYS] += 1.0
    w[L.W_DUTY] += duty_paid
    w[L.W_NEW_CUSTOMERS] += new_customers
    w[L.W_RETURNS] += returned
    w[L.W_FEES] += selling_fees
    w[L.W_UNITS_FROM_WAREHOUSE] += warehouse_units
    return marketplace_units


@njit(cache=True, _nrt=False, inline="always")
def direct_duty_kept(b, s, m, key, kind, customs_value, regime_row, basket, postal_method, ioss, work):
    """:func:`cbecsim.kernels.tariff.direct_duty_per_unit` of listing ``(s, m)``, kept in
    ``work.direct_duty`` and worked out again only when its inputs change: the regime row
    (``key``: regime table, origin, kind) or the customs value (the price, the FX rate).
    The market's basket, the postal method and IOSS are fixed for the run. The same
    function of the same inputs, so the same bits."""
    kept = work.direct_duty[b, s, m]
    if work.direct_duty_key[b, s, m] != key or kept[0] != customs_value:
        duty, fees = direct_duty_per_unit(kind, customs_value, regime_row, basket, postal_method, ioss)
        work.direct_duty_key[b, s, m] = key
        kept[0] = customs_value
        kept[1] = duty
        kept[2] = fees
    return kept[1], kept[2]


@njit(cache=True, _nrt=False, inline="always")
def returned_units(units, p_return, lsm, key):
    """Returns among ``units`` sold: Binomial(units, p), with the listing's kept logarithms
    below p = 0.5 (rng.binomial_small_q)."""
    if p_return <= 0.5:
        return rng.binomial_small_q(units, p_return, lsm[L.LS_RETURN_LOG1M_Q], lsm[L.LS_RETURN_ODDS], key)
    return rng.binomial(units, p_return, key)


@njit(cache=True, _nrt=False, no_cpython_wrapper=True, inline="always")
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
    denominator, inside, total_attention = attention_and_choice(b, m, tables, state, work)
    # The market parts of the day's stream keys, for the layers that can draw today (a
    # key costs five mixing rounds; an incident's keys are made when one happens).
    unused = np.uint64(0)
    repeats = work.repeats_possible[b, m]
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
                work.weight[b, s] / denominator * inside if denominator > 0.0 else 0.0,
                total_attention,
                keys,
                repeats,
                weekly_lapse,
                regime,
                tables,
                state,
                out,
                work,
            )
        # The flywheel runs on marketplace sales (DTC sales do not rank the listing).
        state.visibility_score[b, s, m] += smoothing * (marketplace_units - state.visibility_score[b, s, m])
