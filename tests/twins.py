"""Plain-Python twins of the numba kernels in :mod:`cbecsim.kernels`.

Each twin is written from the documented rule (the kernel docstrings, ``layout.py`` and
DESIGN.md), with plain loops, Python ``int``/``float`` and the :mod:`math` module only.
NumPy arrays are used only to hold state: every element is read into a Python scalar
(``float(x)``, ``int(x)``, ``bool(x)``) before any arithmetic, so no NumPy arithmetic
or vectorisation takes part in a result.

The twins take the same arguments as their kernels -- the structures of
:mod:`cbecsim.kernels.state` (``tables``, ``state``, ``out``) -- and update the same
arrays in place, so a test can run a kernel on one copy of a state and its twin on
another and compare. Outputs are addressed by their result variable's name
(:data:`cbecsim.kernels.state.OUTPUT_FIELDS` says where each lives); the twins keep
their own scratch (Python lists), so they take no ``work``.
Where a rule leaves a floating-point evaluation order open, the twin evaluates the
documented formula in the order it is written (left to right), which is also the order
of the kernels; the parity tests then expect bit-for-bit (or 1e-12 relative) equality.

Batch twins accept an optional ``trace`` dict in which they count events (stock-outs,
budget-bound slots, exits, ...), so tests can check that a scenario really exercised a
branch and cannot pass vacuously.

Column layouts come from :mod:`cbecsim.kernels.layout` (pure integer constants).
"""

from __future__ import annotations

import math

from cbecsim.kernels import layout as L
from cbecsim.kernels.state import ACC_FLOWS, N_ACC_PERIOD, OUTPUT_FIELDS, SACC_FLOWS

# --------------------------------------------------------------------------------------
# Counter-based RNG (SplitMix64 finaliser over Weyl counters)
# --------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, the Weyl increment of SplitMix64
MIX_M1 = 0xBF58476D1CE4E5B9
MIX_M2 = 0x94D049BB133111EB
TWO_M53 = 2.0**-53

# Draw purposes: the key component that separates the uses of random numbers.
ARRIVALS = 1
DEMAND = 2
CLICKS = 3
LEAD_TIME = 4
RETURNS = 5
REPEAT = 6
DTC_REPEAT = 7
DTC_NEW = 8
LAPSE = 9
DTC_LAPSE = 10
INCIDENT = 11
INTERRUPTION = 12
FX = 13
PURCHASE_SOURCE = 14
CLICK_SPLIT = 15
ROUND_CLICKS = 16
INIT = 100
NO_DAY = -1
NO_MARKET = -1
NO_SELLER = -1

DIST_CONSTANT = 0
DIST_UNIFORM = 1
DIST_NORMAL = 2
DIST_LOGNORMAL = 3
DIST_TRIANGULAR = 4

#: Weight of today's demand in the replenishment demand estimate (a 2-week EWMA).
DEMAND_SMOOTHING = 1.0 / 14.0


def _add(array, index, value):
    """``array[index] += value`` with the addition done on Python scalars."""
    array[index] = float(array[index]) + value


def _out(out, name, index, value, add=True):
    """Add ``value`` to (or, with ``add=False``, set) output variable ``name`` at ``index``
    = (row, period, ...)."""
    group, field = OUTPUT_FIELDS[name]
    array = getattr(out, group)
    at = (field,) + tuple(index)
    if array.dtype.kind in "iub":
        array[at] = (int(array[at]) + value) if add else value
    else:
        array[at] = (float(array[at]) + value) if add else value


def _flow(state, b, s, m, name, value):
    """Add a day's ``value`` to listing (s, m)'s period sum of output flow ``name``."""
    _add(state.period_sum, (b, s, m, ACC_FLOWS[name]), value)


def _seller_flow(state, b, s, name, value):
    _add(state.seller_sum, (b, s, SACC_FLOWS[name]), value)


def _get(out, name, index):
    group, field = OUTPUT_FIELDS[name]
    return getattr(out, group)[(field,) + tuple(index)]


def market_key(seed, purpose, replication, day, market):
    """The part of a stream key shared by every seller: ``stream_key = absorb(this, seller)``."""
    return absorb(base_key(seed, purpose, replication, day), market)


def _bump(trace, name, amount=1):
    if trace is not None:
        trace[name] = trace.get(name, 0) + amount


def mix64(z):
    """SplitMix64 finaliser (Steele, Lea & Flood 2014) on a 64-bit unsigned integer.

    ``z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
    z ^= z >> 31``, all modulo 2**64.
    """
    z = int(z) & MASK64
    z = ((z ^ (z >> 30)) * MIX_M1) & MASK64
    z = ((z ^ (z >> 27)) * MIX_M2) & MASK64
    return z ^ (z >> 31)


def absorb(key, component):
    """Fold a key component (an integer >= -1) into a key:
    ``mix64(key XOR ((component + 1) * GOLDEN mod 2**64))``."""
    return mix64((int(key) & MASK64) ^ (((int(component) + 1) * GOLDEN) & MASK64))


def base_key(seed, purpose, replication, day):
    """Key of (seed, purpose, replication, day): ``mix64(seed XOR GOLDEN)`` then the three
    components absorbed in that order."""
    key = mix64((int(seed) & MASK64) ^ GOLDEN)
    key = absorb(key, purpose)
    key = absorb(key, replication)
    return absorb(key, day)


def stream_key(seed, purpose, replication, day, market, seller):
    """Key of the stream (seed, purpose, replication, day, market, seller): the base key
    with the market and then the seller absorbed (-1 for "none")."""
    return absorb(absorb(base_key(seed, purpose, replication, day), market), seller)


def uniform(key, j):
    """The j-th uniform of stream ``key``: with ``z = mix64(key + (j + 1) * GOLDEN)``
    (mod 2**64) and ``k = z >> 12`` its top 52 bits, the cell midpoint ``(k + 1/2) / 2**52``,
    exact in float64 and inside the open interval (0, 1).
    """
    z = mix64((key + (j + 1) * GOLDEN) & MASK64)
    return (float(z >> 12) + 0.5) / 2.0**52


def poisson(mean, key):
    """A Poisson(mean) variate from stream ``key``.

    * ``mean`` not > 0: 0.
    * ``mean < 10``: inversion by sequential search with uniform 0: the smallest ``k``
      with ``u <= sum_{i<=k} exp(-mean) mean**i / i!`` (pmf by the recurrence
      ``p_k = p_{k-1} * (mean * (1 / k))``, the reciprocal rounded first; the search stops
      at k = 1000 as a round-off guard).
    * ``mean >= 10``: PTRS (Hoermann 1993), NumPy's algorithm, consuming uniforms
      (0, 1), (2, 3), ... as (U + 0.5, V) pairs until acceptance; the exact test is
      ``log(V invalpha / (a / us^2 + b)) <= -mean + k log(mean) - lgamma(k + 1)``.
    """
    mean = float(mean)
    if not mean > 0.0:
        return 0
    if mean < 10.0:
        u = uniform(key, 0)
        p = math.exp(-mean)
        cumulative = p
        k = 0
        while u > cumulative and k < 1000:
            k += 1
            p *= mean * (1.0 / k)
            cumulative += p
        return k
    slam = math.sqrt(mean)
    loglam = math.log(mean)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    j = 0
    while True:
        u = uniform(key, j) - 0.5
        v = uniform(key, j + 1)
        j += 2
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + mean + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v * invalpha / (a / (us * us) + b)) <= -mean + k * loglam - math.lgamma(k + 1.0):
            return k


def poisson_by_source(mean_a, mean_b, mean_c, key_total, key_split):
    """Three independent Poisson counts drawn as one: ``T = poisson(mean_a + mean_b + mean_c,
    key_total)``; all of T to the only positive mean, if there is one; otherwise for
    T <= 32 each unit j goes to a if uniform(key_split, j) < mean_a / total, else to b if
    below (mean_a + mean_b) / total, else to c; for larger T, a = binomial(T, mean_a / total,
    key_split), b = binomial(T - a, mean_b / (mean_b + mean_c), absorb(key_split, 0))."""
    total_mean = mean_a + mean_b + mean_c
    if not total_mean > 0.0:
        return 0, 0, 0
    total = poisson(total_mean, key_total)
    positive = [mean > 0.0 for mean in (mean_a, mean_b, mean_c)]
    if total == 0 or positive == [True, False, False]:
        return total, 0, 0
    if positive == [False, True, False]:
        return 0, total, 0
    if positive == [False, False, True]:
        return 0, 0, total
    if total <= 32:
        counts = [0, 0, 0]
        for j in range(total):
            u = uniform(key_split, j)
            if u < mean_a / total_mean:
                counts[0] += 1
            elif u < (mean_a + mean_b) / total_mean:
                counts[1] += 1
            else:
                counts[2] += 1
        return tuple(counts)
    a = binomial(total, mean_a / total_mean, key_split)
    b = binomial(total - a, mean_b / (mean_b + mean_c), absorb(key_split, 0))
    return a, b, total - a - b


def standard_exponential(key):
    """Exp(1) as ``-log(u0)``."""
    return -math.log(uniform(key, 0))


def standard_normal(key):
    """Box-Muller, cosine branch: ``sqrt(-2 log u0) * cos(2 pi u1)`` from uniforms 0, 1."""
    u1 = uniform(key, 0)
    u2 = uniform(key, 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


BINOMIAL_INVERSION_MAX_MEAN = 10.0


def binomial(n, p, key):
    """A Binomial(n, p) variate: 0 for n <= 0 or p not > 0, n for p >= 1; otherwise with
    q = min(p, 1 - p) (mirrored draw n - k when p > 1/2): while n q < 10, inversion from 0
    with uniform 0 (f(0) = exp(n log1p(-q)), f(k+1) = f(k) ((n - k) (1/(k + 1))) q/(1 - q),
    the reciprocal rounded first; search capped at min(n, 1000)); else BTRS (Hoermann 1993) with uniforms 2i,
    2i+1 of the key:
    spq = sqrt(n q (1-q)), b = 1.15 + 2.53 spq, a = -0.0873 + 0.0248 b + 0.01 q,
    c = n q + 1/2, alpha = (2.83 + 5.1/b) spq, v_r = 0.92 - 4.2/b, m = floor((n+1) q);
    k = floor((2a/us + b) u + c) with u = U - 1/2, us = 1/2 - |u|; accept at once when
    us >= 0.07 and V <= v_r; reject k outside 0..n; else accept when
    log(V alpha / (a/us^2 + b)) <= log(f(k)/f(m)), computed with lgamma."""
    n = int(n)
    p = float(p)
    if n <= 0 or not p > 0.0:
        return 0
    if p >= 1.0:
        return n
    mirrored = p > 0.5
    q = 1.0 - p if mirrored else p
    mean = n * q
    if mean < BINOMIAL_INVERSION_MAX_MEAN:
        u = uniform(key, 0)
        f = math.exp(n * math.log1p(-q))
        cumulative = f
        ratio = q / (1.0 - q)
        k = 0
        while u > cumulative and k < min(n, 1000):
            f *= (n - k) * (1.0 / (k + 1)) * ratio
            k += 1
            cumulative += f
        draw = k
    else:
        spq = math.sqrt(mean * (1.0 - q))
        b = 1.15 + 2.53 * spq
        a = -0.0873 + 0.0248 * b + 0.01 * q
        alpha = (2.83 + 5.1 / b) * spq
        v_r = 0.92 - 4.2 / b
        m = math.floor((n + 1) * q)
        i = 0
        while True:
            u = uniform(key, i) - 0.5
            v = uniform(key, i + 1)
            i += 2
            us = 0.5 - abs(u)
            k = math.floor((2.0 * a / us + b) * u + mean + 0.5)
            if us >= 0.07 and v <= v_r:
                break
            if k < 0 or k > n:
                continue
            log_ratio = (
                math.lgamma(m + 1.0)
                + math.lgamma(n - m + 1.0)
                - math.lgamma(k + 1.0)
                - math.lgamma(n - k + 1.0)
                + (k - m) * math.log(q / (1.0 - q))
            )
            if math.log(v * alpha / (a / (us * us) + b)) <= log_ratio:
                break
        draw = k
    return n - draw if mirrored else draw


def uniform_int(low, high, key):
    """An integer uniform on [low, high]: ``low + floor(u0 * (high - low + 1))``, the draw
    clipped to ``high`` in case of round-off."""
    span = int(high) - int(low) + 1
    draw = math.floor(uniform(key, 0) * span)
    if draw >= span:
        draw = span - 1
    return int(low) + draw


def sample_parameter(code, a, b, c, key):
    """One draw of an initial seller parameter.

    constant: ``a``; uniform(low=a, high=b): ``a + (b - a) u0``; normal(mean=a, sd=b):
    ``a + b z``; lognormal(median=a, sigma=b): ``a exp(b z)``; triangular(low=a, mode=b,
    high=c) by inversion with u0: below the mode's CDF ``F(mode) = (mode - low) / (high
    - low)`` it is ``low + sqrt(u (high - low)(mode - low))``, above it ``high - sqrt((1 -
    u)(high - low)(high - mode))``; a degenerate (high == low) triangle gives ``low``.
    ``z`` is :func:`standard_normal` of the key.
    """
    a, b, c = float(a), float(b), float(c)
    if code == DIST_CONSTANT:
        return a
    if code == DIST_UNIFORM:
        return a + (b - a) * uniform(key, 0)
    if code == DIST_NORMAL:
        return a + b * standard_normal(key)
    if code == DIST_LOGNORMAL:
        return a * math.exp(b * standard_normal(key))
    u = uniform(key, 0)
    low, mode, high = a, b, c
    if high == low:
        return low
    cut = (mode - low) / (high - low)
    if u < cut:
        return low + math.sqrt(u * (high - low) * (mode - low))
    return high - math.sqrt((1.0 - u) * (high - low) * (high - mode))


def fill_parameter(code, a, b, c, seed, purpose, replication0, seller0, per_market, out):
    """Fill ``out`` (B, S, M) with draws keyed (seed, purpose, replication0 + i, day -1,
    market m or -1, seller0 + j); seller-level draws (``per_market`` False) are repeated
    over the markets."""
    n_batch, n_sellers, n_markets = out.shape
    for i in range(n_batch):
        for j in range(n_sellers):
            if per_market:
                for m in range(n_markets):
                    key = stream_key(seed, purpose, replication0 + i, NO_DAY, m, seller0 + j)
                    out[i, j, m] = sample_parameter(code, a, b, c, key)
            else:
                key = stream_key(seed, purpose, replication0 + i, NO_DAY, NO_MARKET, seller0 + j)
                value = sample_parameter(code, a, b, c, key)
                for m in range(n_markets):
                    out[i, j, m] = value


# --------------------------------------------------------------------------------------
# Tariff
# --------------------------------------------------------------------------------------


def duty_per_unit(kind, customs_value, ad_valorem_rate, specific_duty, de_minimis, threshold, low_value_duty):
    """Customs duty on one unit [USD].

    A parcel under an active de minimis exemption (flag > 0.5) whose customs value is at or
    under the threshold pays only the flat low-value duty; every other import (bulk
    always) pays ``ad_valorem_rate * customs_value + specific_duty``.
    """
    if int(kind) == L.KIND_PARCEL and de_minimis > 0.5 and customs_value <= threshold:
        return float(low_value_duty)
    return float(ad_valorem_rate) * float(customs_value) + float(specific_duty)


def regime_duty(kind, customs_value, regime_row):
    """:func:`duty_per_unit` with the regime as a row (RG_* columns) of the regime table."""
    return duty_per_unit(
        kind,
        customs_value,
        float(regime_row[L.RG_AD_VALOREM]),
        float(regime_row[L.RG_SPECIFIC]),
        float(regime_row[L.RG_DE_MINIMIS]),
        float(regime_row[L.RG_THRESHOLD]),
        float(regime_row[L.RG_LOW_VALUE_DUTY]),
    )


def landed_cost_per_unit(kind, unit_cost, net_price, freight, handling_fee, regime_row):
    """(landed cost, duty) of one unit [USD]: ``unit_cost + freight + duty + handling``,
    the duty valued at the net-of-VAT price for parcels and at the unit cost for bulk."""
    unit_cost, net_price = float(unit_cost), float(net_price)
    customs_value = net_price if int(kind) == L.KIND_PARCEL else unit_cost
    duty = regime_duty(kind, customs_value, regime_row)
    return unit_cost + float(freight) + duty + float(handling_fee), duty


def net_price_usd(price_local, vat, usd_rate):
    """Price net of VAT in USD: ``price / (1 + vat) * usd_rate``."""
    return float(price_local) / (1.0 + float(vat)) * float(usd_rate)


def landed_cost_by_mode(market, usd_rate, modes, regime, origin, price_local, unit_cost, out):
    """``out[b, s, m, f]``: landed cost per unit of every seller-market under every mode,
    the regime row being ``regime[m, origin[s], kind of f]``, the price converted at
    ``usd_rate[b, m]``."""
    n_batch, n_sellers, n_markets = price_local.shape
    for b in range(n_batch):
        for s in range(n_sellers):
            for m in range(n_markets):
                net_price = net_price_usd(price_local[b, s, m], market[m, L.MK_VAT], usd_rate[b, m])
                for f in range(modes.shape[0]):
                    kind = int(modes[f, L.MD_KIND])
                    out[b, s, m, f] = landed_cost_per_unit(
                        kind,
                        unit_cost[b, s, m],
                        net_price,
                        modes[f, L.MD_FREIGHT],
                        modes[f, L.MD_HANDLING_FEE],
                        regime[m, int(origin[s]), kind],
                    )[0]


# --------------------------------------------------------------------------------------
# Market: auction, utility, choice, the daily step
# --------------------------------------------------------------------------------------


def clear_gsp_auction(bids, quality, eligible, n_slots, reserve):
    """Generalised second-price auction; returns ``(winners, prices)`` lists.

    Eligible listings are ranked by score ``bid * quality``, highest first, ties to the
    lower index; the first ``n_slots`` fill the slots. Slot k pays per click
    ``max(reserve, score_(k+1) / quality_k)`` capped at its own bid, where score_(k+1) is
    the next-ranked eligible score (0 when there is none, so the last slot with no
    runner-up pays the reserve). Implemented as a full sort, not the kernel's bounded
    insertion.
    """
    ranked = sorted(
        (i for i in range(len(bids)) if eligible[i]),
        key=lambda i: (-(float(bids[i]) * float(quality[i])), i),
    )
    scores = [float(bids[i]) * float(quality[i]) for i in ranked]
    filled = min(len(ranked), int(n_slots))
    winners, prices = [], []
    for k in range(filled):
        i = ranked[k]
        runner_up = scores[k + 1] if k + 1 < len(ranked) else 0.0
        price = min(max(float(reserve), runner_up / float(quality[i])), float(bids[i]))
        winners.append(i)
        prices.append(price)
    return winners, prices


def listing_utility(market_row, brand, rating, price_local, delivery_days):
    """``u = (u0 + alpha*brand - beta*log(price / ref) - delta*days) + gamma*(rating - 4)``:
    the part fixed between reviews first, then the rating term."""
    fixed = (
        float(market_row[L.MK_BASE_UTILITY])
        + float(market_row[L.MK_BRAND_WEIGHT]) * float(brand)
        - float(market_row[L.MK_PRICE_SENSITIVITY])
        * math.log(float(price_local) / float(market_row[L.MK_REFERENCE_PRICE]))
        - float(market_row[L.MK_DELIVERY_WEIGHT]) * float(delivery_days)
    )
    return fixed + float(market_row[L.MK_RATING_WEIGHT]) * (float(rating) - 4.0)


def purchase_probabilities(attention, utility, out=None):
    """Attention-weighted MNL with an outside option:
    ``P_i = a_i exp(u_i) / (1 + sum_{j: a_j > 0} a_j exp(u_j))``, 0 where ``a_i <= 0``.

    Returns ``(probabilities, their sum)``; ``out`` (if given) is filled too.
    """
    weights = [float(a) * math.exp(float(u)) if float(a) > 0.0 else 0.0 for a, u in zip(attention, utility)]
    denominator = 1.0
    for w, a in zip(weights, attention):
        if float(a) > 0.0:
            denominator += w
    probabilities = [w / denominator for w in weights]
    total = 0.0
    for p in probabilities:
        total += p
    if out is not None:
        for i, p in enumerate(probabilities):
            out[i] = p
    return probabilities, total


def listings_of(tables, m):
    """Seller indices of market ``m``'s served listings, ascending."""
    lo, hi = int(tables.market_offsets[m]), int(tables.market_offsets[m + 1])
    return [int(s) for s in tables.market_sellers[lo:hi]]


def _pay_for_clicks(b, m, s, row, period, clicks, price, usd_rate, remaining, state, out):
    cost_local = clicks * price
    remaining[s] -= cost_local
    spend = cost_local * usd_rate
    _flow(state, b, s, m, "clicks", clicks)
    _flow(state, b, s, m, "ad_spend", spend)
    _flow(state, b, s, m, "acquisition_spend", spend)
    _flow(state, b, s, m, "cm2", -spend)
    _seller_flow(state, b, s, "costs", spend)
    _add(state.window, (b, s, m, L.W_AD_SPEND), spend)
    _add(state.window, (b, s, m, L.W_CM2), -spend)
    state.cash[b, s] = float(state.cash[b, s]) - spend


def sponsored_auction(b, m, row, period, day, seed, replication, shoppers, up, tables, state, out, trace=None):
    """Sponsored clicks of market ``m`` today; returns each seller's sponsored attention.

    The listings in the auction: up, in stock, ``bid >= reserve``, ``bid > 0``, ``budget
    >= bid``; quality = rating / 5; R = auction_rounds rounds; a round's auction is
    :func:`clear_gsp_auction` over the listings still in it; ``mu_k = N *
    impression_share * ctr_k`` for slot position k < n_slots.

    *Ample budgets* -- in the first auction every winner s of slot k has ``budget_s - 2
    mu_k price_k >= bid_s`` (or price 0): draw ``T_k ~ Poisson(mu_k)`` (CLICKS, market
    component, then k). If then every winner has ``budget_s - T_k price_k >= bid_s`` (or
    price 0), winner s of slot k gets ``T_k`` clicks and sponsored attention
    ``impression_share * ctr_k``: done. Otherwise the rounds are played with slot k's
    round-r clicks ``Binomial(left_k, 1 / (R - r))`` of what is left of T_k (CLICK_SPLIT,
    then k, then r; the last round takes all that is left), for every slot k < n_slots.

    *Tight budgets* (otherwise): the rounds are played with ``Poisson(mu_k / R)`` clicks
    for each filled slot k of round r (ROUND_CLICKS, then k, then r).

    In the rounds: the auction is re-run when a winner left; an empty slot's clicks are
    lost; clicks are capped at ``floor(budget left / price)`` (no cap at price 0), a
    capped slot keeping the share ``clicks / raw clicks`` of its attention; sponsored
    attention adds ``slot attention / R``; a winner whose budget left falls below its bid
    leaves the later rounds. Spend ``clicks * price * usd_rate`` is paid from cash and
    booked as ad spend, acquisition spend, costs and negative CM2 (outputs and window).
    """
    market_row = tables.market[m]
    reserve = float(market_row[L.MK_RESERVE])
    n_slots = int(market_row[L.MK_SLOTS])
    rounds = int(market_row[L.MK_AUCTION_ROUNDS])
    impression_share = float(market_row[L.MK_IMPRESSION_SHARE])
    usd_rate = float(state.usd_rate[b, m])
    candidates = listings_of(tables, m)
    sponsored = {s: 0.0 for s in candidates}
    remaining = {s: float(state.budget_local[b, s, m]) for s in candidates}
    bids = {s: float(state.bid_local[b, s, m]) for s in candidates}
    quality = {s: float(state.rating[b, s]) / 5.0 for s in candidates}
    eligible = {
        s: up[s] and int(state.stock[b, s, m]) > 0 and bids[s] >= reserve and bids[s] > 0.0 and remaining[s] >= bids[s]
        for s in candidates
    }
    if not any(eligible.values()) or n_slots == 0 or not shoppers > 0:
        return sponsored
    mu = [shoppers * impression_share * float(tables.click_through[m, k]) for k in range(n_slots)]

    def auction():
        winners, prices = clear_gsp_auction(
            [bids[s] for s in candidates],
            [quality[s] for s in candidates],
            [eligible[s] for s in candidates],
            n_slots,
            reserve,
        )
        return [candidates[i] for i in winners], prices

    def pay(s, clicks, price):
        _pay_for_clicks(b, m, s, row, period, clicks, price, usd_rate, remaining, state, out)

    winners, prices = auction()
    _bump(trace, "slots_filled", len(winners))
    ample = all(
        price == 0.0 or remaining[s] - 2.0 * mu[k] * price >= bids[s]
        for k, (s, price) in enumerate(zip(winners, prices))
    )
    split = False
    if ample:
        key_clicks = market_key(seed, CLICKS, replication, day, m)
        totals = [poisson(mu[k], absorb(key_clicks, k)) for k in range(n_slots)]
        split = not all(
            price == 0.0 or remaining[s] - totals[k] * price >= bids[s]
            for k, (s, price) in enumerate(zip(winners, prices))
        )
        if not split:
            _bump(trace, "one_auction_days")
            for k, (s, price) in enumerate(zip(winners, prices)):
                sponsored[s] += impression_share * float(tables.click_through[m, k])
                if price == 0.0:
                    _bump(trace, "free_clicks")
                if totals[k] > 0:
                    pay(s, totals[k], price)
            return sponsored
        _bump(trace, "split_days")
    else:
        _bump(trace, "tight_budget_days")
    key_rounds = market_key(seed, CLICK_SPLIT if split else ROUND_CLICKS, replication, day, m)
    left = list(totals) if split else None
    rerun = False
    for r in range(rounds):
        if rerun:
            winners, prices = auction()
            rerun = False
        for k in range(n_slots if split else len(winners)):
            if split:
                if r == rounds - 1:
                    raw = left[k]
                elif left[k] > 0:
                    raw = binomial(left[k], 1.0 / (rounds - r), absorb(absorb(key_rounds, k), r))
                else:
                    raw = 0
                left[k] -= raw
                if k >= len(winners):
                    continue
            else:
                raw = poisson(mu[k] / rounds, absorb(absorb(key_rounds, k), r))
            s, price = winners[k], prices[k]
            slot_attention = impression_share * float(tables.click_through[m, k])
            if price > 0.0:
                affordable = math.floor(remaining[s] / price)
                clicks = raw if raw < affordable else affordable
            else:
                _bump(trace, "free_clicks")
                clicks = raw
            if clicks < raw:
                _bump(trace, "budget_bound")
            if raw > 0:
                slot_attention = slot_attention * (clicks / raw)
            sponsored[s] += slot_attention / rounds
            if clicks > 0:
                pay(s, clicks, price)
            if remaining[s] < bids[s]:
                eligible[s] = False
                rerun = True
    return sponsored


def market_day(b, m, row, period, day, seed, replication, regime, tables, state, out, trace=None):
    """One market ``m``, one day, replication ``b`` of the batch (global ``replication``),
    outputs to ``row`` / ``period``. Only the market's served listings take part.

    1. Shoppers ``N ~ Poisson(shoppers_per_day * season[day, m])`` (ARRIVALS stream,
       seller -1), added to ``shoppers``.
    2. A listing is *up* when its seller is alive, it is listed and not interrupted
       (``day >= layer_sm[..., LS_INTERRUPTED_UNTIL]``).
    3. The auction (:func:`sponsored_auction`).
    4. Organic attention of each listing that is up: ``organic_mass * (v + floor) /
       sum(v + floor)`` plus its sponsored attention; MNL weight ``attention *
       exp(listing_utility)`` (delivery days of the listing's mode, brand lifted by
       localisation), ``P = weight / (1 + sum of weights)``.
    5. For each listing of a live seller, :func:`sell_listing`.
    6. Flywheel for every listing: ``v <- v + lambda * (sold - v)`` with sold the
       marketplace units (0 when not trading).
    """
    market_row = tables.market[m]
    shoppers = poisson(
        float(market_row[L.MK_SHOPPERS]) * float(tables.season[day, m]),
        stream_key(seed, ARRIVALS, replication, day, m, NO_SELLER),
    )
    _out(out, "shoppers", (row, period, m), shoppers)
    candidates = listings_of(tables, m)
    up = {
        s: bool(state.alive[b, s])
        and bool(state.listed[b, s, m])
        and day >= float(state.layer_sm[b, s, m, L.LS_INTERRUPTED_UNTIL])
        for s in candidates
    }
    sponsored = sponsored_auction(b, m, row, period, day, seed, replication, shoppers, up, tables, state, out, trace)

    floor = float(market_row[L.MK_VISIBILITY_FLOOR])
    total_score = 0.0
    for s in candidates:
        if up[s]:
            total_score += float(state.visibility_score[b, s, m]) + floor
    organic_mass = float(market_row[L.MK_ORGANIC_ATTENTION])
    attention, weight = {}, {}
    denominator, total_attention = 1.0, 0.0
    for s in candidates:
        if up[s]:
            attention[s] = organic_mass * (float(state.visibility_score[b, s, m]) + floor) / total_score + sponsored[s]
            lifted_brand = float(state.brand[b, s]) + float(tables.seller_layer[s, L.SL_LOC_BRAND_LIFT]) * float(
                state.levers[b, s, L.LV_LOCALISATION]
            )
            utility = listing_utility(
                market_row,
                lifted_brand,
                state.rating[b, s],
                state.price_local[b, s, m],
                tables.modes[int(state.mode[b, s, m]), L.MD_DELIVERY_DAYS],
            )
            weight[s] = attention[s] * math.exp(utility) if attention[s] > 0.0 else 0.0
        else:
            attention[s], weight[s] = 0.0, 0.0
        denominator += weight[s]
        total_attention += attention[s]
    smoothing = float(market_row[L.MK_VISIBILITY_RATE])
    for s in candidates:
        sold = 0
        if bool(state.alive[b, s]):
            sold = sell_listing(
                b,
                m,
                s,
                row,
                period,
                day,
                seed,
                replication,
                shoppers,
                weight[s] / denominator,
                attention[s],
                sponsored[s],
                total_attention,
                regime,
                tables,
                state,
                out,
                trace,
            )
        v = float(state.visibility_score[b, s, m])
        state.visibility_score[b, s, m] = v + smoothing * (sold - v)


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
    attention,
    sponsored,
    total_attention,
    regime,
    tables,
    state,
    out,
    trace=None,
):
    """One listing of a live seller for one day; returns the marketplace units sold (first
    purchases + marketplace repeats) for the flywheel.

    Landed cost under the day's regime (``landed_now``; the period's landed-cost sum and
    alive days). If not listed, nothing more. Otherwise, streams ``stream_key(seed,
    PURPOSE, replication, day, m, s)``:

    * Demand: marketplace first purchases ``Poisson(N P)`` (DEMAND; none when P = 0);
      with ``loc`` the localisation lever and ``h = repeat_rate * (1 + retention_lift *
      loc)``: marketplace repeats ``Poisson(C h)`` (only when C > 0, h > 0 and the
      listing is not interrupted), DTC repeats ``Poisson(C_dtc * (h * crm))`` (C_dtc > 0,
      h > 0), new DTC customers ``Poisson(dtc_share * capacity)``, the three drawn by
      poisson_by_source (total: REPEAT, split: PURCHASE_SOURCE). Stock serves them in that
      order; the rest is lost; the demand EWMA uses the total demanded.
    * Money: revenue ``units * net``; CM2 ``revenue - mp * (landed + referral + fee) - dtc
      * (landed + fee) - CAC * new DTC`` with referral ``max(rate * price, min) *
      usd_rate``; cash pays ``mp * (referral + fee + handling) + dtc * (fee + handling)``,
      for parcels ``+ units * freight + units * duty``, then the CAC. Returns
      ``Binomial(units, r * (1 - cut * loc))`` (RETURNS; units > 0, p > 0): the refund
      ``returned * net`` and, for parcels, return freight ``returned * freight`` are paid;
      CM2 loses ``refund + return freight - returned * unit cost``; the returned units go
      back to stock.
    * Customers: ``C <- C - Binomial(C, w) + first purchases`` (LAPSE), likewise DTC
      (DTC_LAPSE) with the new DTC customers, where ``w = 1 - exp(7 log1p(-lapse))`` on
      the last day of each week (``(day + 1) % 7 == 0``; 1 if lapse >= 1) and 0 otherwise.
    * Rating (units > 0, memory > 0): ``e = 5 - p_r * returned / units - p_d * delivery
      days``; ``rating += units / (units + memory) * (e - rating)``, clipped to 1..5.
    * Incident (listing not interrupted today): hazard ``h_i = incident_rate *
      multiplier[day, m] * (1 - compliance_cut * compliance)``; if h_i > 0 it is taken off
      the listing's incident clock; when the clock reaches 0 or below, the listing is down
      until day ``day + 2 + Poisson(mean_days - 1)`` (INTERRUPTION), one incident is
      booked, and the clock is reset to ``-log(u0)`` of INCIDENT.
    * Outputs and review windows; the period's visibility share ``attention / total``,
      organic units ``sold * (attention - sponsored) / attention``, repeat units, delivery
      unit-days, and the running revenue and new customers (LTV).
    """
    market_row = tables.market[m]
    f = int(state.mode[b, s, m])
    mode_row = tables.modes[f]
    kind = int(mode_row[L.MD_KIND])
    usd_rate = float(state.usd_rate[b, m])
    price = float(state.price_local[b, s, m])
    net_price = net_price_usd(price, market_row[L.MK_VAT], usd_rate)
    freight = float(mode_row[L.MD_FREIGHT])
    handling = float(mode_row[L.MD_HANDLING_FEE])
    landed, duty = landed_cost_per_unit(
        kind, state.unit_cost[b, s, m], net_price, freight, handling, regime[m, int(tables.origin[s]), kind]
    )
    acc = (b, s, m)
    _add(state.period_sum, acc + (K_ACC["landed"],), landed)
    _add(state.period_sum, acc + (K_ACC["days"],), 1.0)
    if not bool(state.listed[b, s, m]):
        return 0
    lsm = (b, s, m)
    sl = [float(x) for x in tables.seller_layer[s]]
    loc = float(state.levers[b, s, L.LV_LOCALISATION])
    interrupted = day < float(state.layer_sm[lsm + (L.LS_INTERRUPTED_UNTIL,)])
    if interrupted:
        _bump(trace, "interrupted_listing_days")
    demanded = 0
    if probability > 0.0:
        demanded = poisson(shoppers * probability, stream_key(seed, DEMAND, replication, day, m, s))
    customers = int(state.layer_sm[lsm + (L.LS_CUSTOMERS,)])
    dtc_customers = int(state.layer_sm[lsm + (L.LS_DTC_CUSTOMERS,)])
    hazard = float(market_row[L.MK_REPEAT_RATE]) * (1.0 + sl[L.SL_LOC_RETENTION_LIFT] * loc)
    repeat_mean = customers * hazard if customers > 0 and hazard > 0.0 and not interrupted else 0.0
    dtc_repeat_mean = dtc_customers * (hazard * sl[L.SL_CRM_MULTIPLIER]) if dtc_customers > 0 and hazard > 0.0 else 0.0
    dtc_rate = float(state.levers[b, s, L.LV_DTC_SHARE]) * sl[L.SL_DTC_CAPACITY]
    repeat_demanded, dtc_repeat_demanded, dtc_new_demanded = poisson_by_source(
        repeat_mean,
        dtc_repeat_mean,
        dtc_rate,
        stream_key(seed, REPEAT, replication, day, m, s),
        stream_key(seed, PURCHASE_SOURCE, replication, day, m, s),
    )
    available = int(state.stock[b, s, m])
    served = []
    for wanted in (demanded, repeat_demanded, dtc_repeat_demanded, dtc_new_demanded):
        got = min(wanted, available)
        available -= got
        served.append(got)
    sold, repeat_sold, dtc_repeat_sold, dtc_new_sold = served
    total_demanded = demanded + repeat_demanded + dtc_repeat_demanded + dtc_new_demanded
    marketplace_units = sold + repeat_sold
    dtc_units = dtc_repeat_sold + dtc_new_sold
    units = marketplace_units + dtc_units
    lost = total_demanded - units
    if lost > 0:
        _bump(trace, "stockouts")
    if repeat_sold > 0:
        _bump(trace, "repeat_sales")
    if dtc_units > 0:
        _bump(trace, "dtc_sales")
    estimate = float(state.demand_estimate[b, s, m])
    state.demand_estimate[b, s, m] = estimate + DEMAND_SMOOTHING * (total_demanded - estimate)

    referral = max(float(market_row[L.MK_REFERRAL_RATE]) * price, float(market_row[L.MK_REFERRAL_MIN])) * usd_rate
    fee = float(mode_row[L.MD_FULFILMENT_FEE])
    revenue = units * net_price
    cm2 = revenue - marketplace_units * (landed + referral + fee) - dtc_units * (landed + fee)
    paid = marketplace_units * (referral + fee + handling) + dtc_units * (fee + handling)
    duty_paid = 0.0
    if kind == L.KIND_PARCEL:
        duty_paid = units * duty
        paid = paid + (units * freight + duty_paid)
        if duty_paid > 0.0:
            _bump(trace, "parcel_duty_sales")
    acquisition = dtc_new_sold * sl[L.SL_DTC_CAC]
    cm2 = cm2 - acquisition
    paid = paid + acquisition
    p_return = float(market_row[L.MK_RETURN_RATE]) * (1.0 - sl[L.SL_LOC_RETURN_CUT] * loc)
    returned = 0
    if units > 0 and p_return > 0.0:
        returned = binomial(units, p_return, stream_key(seed, RETURNS, replication, day, m, s))
        if p_return <= 0.5:  # the kernel keeps q, log1p(-q) and q / (1 - q) of the listing
            state.layer_sm[lsm + (L.LS_RETURN_Q,)] = p_return
            state.layer_sm[lsm + (L.LS_RETURN_LOG1M_Q,)] = math.log1p(-p_return)
            state.layer_sm[lsm + (L.LS_RETURN_ODDS,)] = p_return / (1.0 - p_return)
    if returned > 0:
        _bump(trace, "returns")
    refund = returned * net_price
    return_freight = returned * freight if kind == L.KIND_PARCEL else 0.0
    cm2 = cm2 - (refund + return_freight - returned * float(state.unit_cost[b, s, m]))
    paid = paid + (refund + return_freight)
    state.stock[b, s, m] = available + returned
    state.cash[b, s] = float(state.cash[b, s]) + (revenue - paid)
    _seller_flow(state, b, s, "costs", paid)
    share = attention / total_attention if total_attention > 0.0 else 0.0
    organic_units = sold * (attention - sponsored) / attention if sold > 0 else 0.0

    lapse = float(market_row[L.MK_LAPSE_RATE])
    weekly = 0.0
    if lapse > 0.0 and (day + 1) % 7 == 0:
        weekly = 1.0 if lapse >= 1.0 else -math.expm1(7 * math.log1p(-lapse))
    lapsed = 0
    if customers > 0 and weekly > 0.0:
        lapsed = binomial(customers, weekly, stream_key(seed, LAPSE, replication, day, m, s))
        _bump(trace, "lapse_draws")
    dtc_lapsed = 0
    if dtc_customers > 0 and weekly > 0.0:
        dtc_lapsed = binomial(dtc_customers, weekly, stream_key(seed, DTC_LAPSE, replication, day, m, s))
    state.layer_sm[lsm + (L.LS_CUSTOMERS,)] = customers - lapsed + sold
    state.layer_sm[lsm + (L.LS_DTC_CUSTOMERS,)] = dtc_customers - dtc_lapsed + dtc_new_sold
    delivery_days = float(mode_row[L.MD_DELIVERY_DAYS])
    memory = float(market_row[L.MK_RATING_MEMORY])
    if units > 0 and memory > 0.0:
        r = float(state.rating[b, s])
        experience = (
            5.0
            - float(market_row[L.MK_RATING_RETURN_PENALTY]) * (returned / units)
            - float(market_row[L.MK_RATING_DELIVERY_PENALTY]) * delivery_days
        )
        r = r + units / (units + memory) * (experience - r)
        state.rating[b, s] = min(max(r, 1.0), 5.0)
    incidents = 0
    if not interrupted:
        incident = (
            float(market_row[L.MK_INCIDENT_RATE])
            * float(tables.incident_multiplier[day, m])
            * (1.0 - sl[L.SL_COMPLIANCE_CUT] * float(state.levers[b, s, L.LV_COMPLIANCE]))
        )
        if incident > 0.0:
            clock = float(state.layer_sm[lsm + (L.LS_INCIDENT_CLOCK,)]) - incident
            if clock <= 0.0:
                length = 1 + poisson(
                    float(market_row[L.MK_INTERRUPTION_DAYS]) - 1.0,
                    stream_key(seed, INTERRUPTION, replication, day, m, s),
                )
                state.layer_sm[lsm + (L.LS_INTERRUPTED_UNTIL,)] = day + 1 + length
                incidents = 1
                clock = standard_exponential(stream_key(seed, INCIDENT, replication, day, m, s))
                _bump(trace, "incidents")
            state.layer_sm[lsm + (L.LS_INCIDENT_CLOCK,)] = clock
    repeat_units = repeat_sold + dtc_repeat_sold

    for name, value in (
        ("revenue", revenue),
        ("duty_paid", duty_paid),
        ("cm2", cm2),
        ("refunds", refund),
        ("repeat_revenue", repeat_units * net_price),
        ("dtc_revenue", dtc_units * net_price),
        ("acquisition_spend", acquisition),
        ("units_sold", units),
        ("lost_sales", lost),
        ("returns", returned),
        ("listing_interruptions", incidents),
        ("interrupted_days", 1 if interrupted else 0),
        ("listed_days", 1),
        ("new_customers", sold + dtc_new_sold),
        ("dtc_new_customers", dtc_new_sold),
        ("dtc_units", dtc_units),
    ):
        _flow(state, b, s, m, name, value)
    for name, value in (
        ("visibility", share),
        ("organic_units", organic_units),
        ("repeat_units", repeat_units),
        ("delivery_unit_days", units * delivery_days),
        ("cum_revenue", revenue),
        ("cum_new_customers", sold + dtc_new_sold),
    ):
        _add(state.period_sum, acc + (K_ACC[name],), value)
    w = (b, s, m)
    for column, value in (
        (L.W_REVENUE, revenue),
        (L.W_UNITS, units),
        (L.W_LOST, lost),
        (L.W_CM2, cm2),
        (L.W_VISIBILITY, share),
        (L.W_DAYS, 1.0),
        (L.W_DUTY, units * duty),
        (L.W_NEW_CUSTOMERS, sold + dtc_new_sold),
        (L.W_RETURNS, returned),
    ):
        _add(state.window, w + (column,), value)
    return marketplace_units


#: The period accumulators of State.period_sum, by name (kernels.state ACC_* order).
K_ACC = {
    "days": 0,
    "landed": 1,
    "visibility": 2,
    "organic_units": 3,
    "repeat_units": 4,
    "delivery_unit_days": 5,
    "cum_revenue": 24,
    "cum_new_customers": 25,
}


def _ratio(numerator, denominator):
    return float(numerator) / float(denominator) if float(denominator) > 0.0 else math.nan


def close_period(b, row, period, tables, state, out):
    """Period end of replication ``b``. The outputs of the period's flows are their period
    sums (listing flows for served listings, seller costs for every seller), which then
    restart at 0. Per seller: cash, alive, rating and the top-market share (largest market
    revenue / total, NaN without revenue). Per served listing: stock, customers
    (marketplace + DTC), landed cost (sum / alive days), CAC (acquisition spend / new
    customers), LTV (running revenue / running new customers), visibility (sum of daily
    shares / days in the period), organic share, return rate, repeat-purchase rate and
    delivery days (per unit sold): NaN where the denominator is 0. Every period
    accumulator but the running two restarts at 0."""
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    days = float(tables.period_days[period])
    for s in range(n_sellers):
        _out(out, "cash", (row, period, s), float(state.cash[b, s]), add=False)
        for name, index in SACC_FLOWS.items():
            _out(out, name, (row, period, s), float(state.seller_sum[b, s, index]), add=False)
            state.seller_sum[b, s, index] = 0.0
        _out(out, "alive", (row, period, s), bool(state.alive[b, s]), add=False)
        _out(out, "rating", (row, period, s), float(state.rating[b, s]), add=False)
        revenues = [float(state.period_sum[b, s, m, ACC_FLOWS["revenue"]]) for m in range(n_markets)]
        top = 0.0
        for revenue in revenues:
            top = max(top, revenue)
        total = 0.0
        for revenue in revenues:
            total += revenue
        _out(out, "top_market_share", (row, period, s), _ratio(top, total), add=False)
    for m in range(n_markets):
        for s in listings_of(tables, m):
            acc = [float(x) for x in state.period_sum[b, s, m]]
            o = (row, period, s, m)
            for name, index in ACC_FLOWS.items():
                _out(out, name, o, acc[index], add=False)
            units = acc[ACC_FLOWS["units_sold"]]
            _out(out, "stock", o, int(state.stock[b, s, m]), add=False)
            _out(
                out,
                "customers",
                o,
                int(state.layer_sm[b, s, m, L.LS_CUSTOMERS] + state.layer_sm[b, s, m, L.LS_DTC_CUSTOMERS]),
                add=False,
            )
            _out(out, "landed_cost", o, _ratio(acc[K_ACC["landed"]], acc[K_ACC["days"]]), add=False)
            _out(out, "cac", o, _ratio(acc[ACC_FLOWS["acquisition_spend"]], acc[ACC_FLOWS["new_customers"]]), add=False)
            _out(out, "ltv", o, _ratio(acc[K_ACC["cum_revenue"]], acc[K_ACC["cum_new_customers"]]), add=False)
            _out(out, "visibility", o, acc[K_ACC["visibility"]] / days, add=False)
            _out(out, "organic_share", o, _ratio(acc[K_ACC["organic_units"]], units), add=False)
            _out(out, "return_rate", o, _ratio(acc[ACC_FLOWS["returns"]], units), add=False)
            _out(out, "repeat_purchase_rate", o, _ratio(acc[K_ACC["repeat_units"]], units), add=False)
            _out(out, "delivery_days", o, _ratio(acc[K_ACC["delivery_unit_days"]], units), add=False)
            for a in range(N_ACC_PERIOD):
                state.period_sum[b, s, m, a] = 0.0


def advance_fx(b, day, seed, replication, tables, state):
    """Add ``standard_normal(stream_key(seed, FX, replication, day, c, -1))`` to the walk
    of every active currency c, then ``usd_rate[b, m] = fx_base[day, m] * exp(volatility_m
    * walk[currency of m])``."""
    for c in range(state.fx_walk.shape[1]):
        if bool(tables.currency_active[c]):
            state.fx_walk[b, c] = float(state.fx_walk[b, c]) + standard_normal(
                stream_key(seed, FX, replication, day, c, NO_SELLER)
            )
    for m in range(tables.market.shape[0]):
        walk = float(state.fx_walk[b, int(tables.market_currency[m])])
        state.usd_rate[b, m] = float(tables.fx_base[day, m]) * math.exp(
            float(tables.market[m, L.MK_FX_VOLATILITY]) * walk
        )


def charge_capabilities(b, row, period, tables, state, out, trace=None):
    """Each live seller pays ``loc * loc_cost_day + compliance * compliance_cost_day`` per
    listed market, plus its analytics cost per day and any one-off cost (then set to 0);
    the total, when > 0, leaves cash and is booked in costs and capability costs."""
    n_sellers, n_markets = state.listed.shape[1], state.listed.shape[2]
    for s in range(n_sellers):
        if not bool(state.alive[b, s]):
            continue
        layer = tables.seller_layer[s]
        per_market = float(state.levers[b, s, L.LV_LOCALISATION]) * float(layer[L.SL_LOC_COST_DAY]) + float(
            state.levers[b, s, L.LV_COMPLIANCE]
        ) * float(layer[L.SL_COMPLIANCE_COST_DAY])
        total = float(layer[L.SL_ANALYTICS_COST_DAY]) + float(state.one_off_cost[b, s])
        state.one_off_cost[b, s] = 0.0
        if per_market > 0.0:
            for m in range(n_markets):
                if bool(state.listed[b, s, m]):
                    total += per_market
        if total > 0.0:
            _bump(trace, "capability_charges")
            state.cash[b, s] = float(state.cash[b, s]) - total
            _seller_flow(state, b, s, "costs", total)
            _seller_flow(state, b, s, "capability_costs", total)


# --------------------------------------------------------------------------------------
# Fulfilment
# --------------------------------------------------------------------------------------


def order_quantity(stock, demand_estimate, lead_mean, safety_days, cover_days, unit_payment, spendable):
    """Reorder-point / order-up-to rule, limited by what can be paid.

    No order while ``stock > d * (lead_mean + safety_days)``; otherwise order up to
    ``ceil(d * (lead_mean + safety_days + cover_days))``, at most ``floor(spendable /
    unit_payment)`` units (none when ``spendable <= 0``; no limit when the units are free).
    """
    stock = int(stock)
    demand_estimate = float(demand_estimate)
    if stock > demand_estimate * (float(lead_mean) + float(safety_days)):
        return 0
    target = math.ceil(demand_estimate * (float(lead_mean) + float(safety_days) + float(cover_days)))
    quantity = target - stock
    if quantity <= 0 or unit_payment <= 0.0:
        return max(quantity, 0)
    affordable = math.floor(float(spendable) / float(unit_payment)) if spendable > 0.0 else 0
    return min(quantity, affordable)


def receive_arrivals(b, row, period, day, regime, tables, state, out, trace=None):
    """Orders due (``pending_day <= day``) leave the pending slot; a live seller's go into
    stock, and a bulk shipment pays ``quantity * duty(bulk, unit_cost)`` under the regime
    in force (cash, costs, duty paid). An exited seller's orders are written off."""
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    for s in range(n_sellers):
        for m in range(n_markets):
            quantity = int(state.pending_quantity[b, s, m])
            if quantity <= 0 or int(state.pending_day[b, s, m]) > day:
                continue
            state.pending_quantity[b, s, m] = 0
            if not bool(state.alive[b, s]):
                _bump(trace, "written_off")
                continue
            _bump(trace, "arrivals")
            state.stock[b, s, m] = int(state.stock[b, s, m]) + quantity
            f = int(state.pending_mode[b, s, m])
            if int(tables.modes[f, L.MD_KIND]) == L.KIND_BULK:
                _bump(trace, "bulk_arrivals")
                duty = quantity * regime_duty(
                    L.KIND_BULK, state.unit_cost[b, s, m], regime[m, int(tables.origin[s]), L.KIND_BULK]
                )
                state.cash[b, s] = float(state.cash[b, s]) - duty
                _seller_flow(state, b, s, "costs", duty)
                _flow(state, b, s, m, "duty_paid", duty)


def close_day(b, row, period, day, seed, replication, tables, state, out, trace=None):
    """End of day for each live seller of replication ``b``, markets in order:

    * a listed market with no pending order orders :func:`order_quantity` units (mean lead
      time of its mode, stock policy, unit payment = unit cost, plus freight for bulk,
      spendable = cash + credit line at that moment); the order arrives after
      ``uniform_int(lead_min, lead_max)`` days (LEAD_TIME stream of (day, market, seller))
      and is paid now (cash, costs);
    * the fixed cost of the day is paid;
    * if cash < -credit_line, or the seller is listed in no market (a closure), it exits for
      good: alive False, exit_day = day (state and output), every listing removed.
    """
    modes = tables.modes
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    for s in range(n_sellers):
        if not bool(state.alive[b, s]):
            continue
        for m in range(n_markets):
            if not bool(state.listed[b, s, m]) or int(state.pending_quantity[b, s, m]) > 0:
                continue
            f = int(state.mode[b, s, m])
            lead_min = int(modes[f, L.MD_LEAD_MIN])
            lead_max = int(modes[f, L.MD_LEAD_MAX])
            unit_payment = float(state.unit_cost[b, s, m])
            if int(modes[f, L.MD_KIND]) == L.KIND_BULK:
                unit_payment += float(modes[f, L.MD_FREIGHT])
            spendable = float(state.cash[b, s]) + float(state.credit_line[b, s])
            policy = state.stock_policy[b, s, m]
            quantity = order_quantity(
                state.stock[b, s, m],
                state.demand_estimate[b, s, m],
                0.5 * (lead_min + lead_max),
                policy[L.SP_SAFETY_DAYS],
                policy[L.SP_COVER_DAYS],
                unit_payment,
                spendable,
            )
            if quantity <= 0:
                continue
            _bump(trace, "orders")
            wanted = order_quantity(
                state.stock[b, s, m],
                state.demand_estimate[b, s, m],
                0.5 * (lead_min + lead_max),
                policy[L.SP_SAFETY_DAYS],
                policy[L.SP_COVER_DAYS],
                0.0,
                0.0,
            )
            if quantity < wanted:
                _bump(trace, "cash_limited_orders")
            lead = uniform_int(lead_min, lead_max, stream_key(seed, LEAD_TIME, replication, day, m, s))
            state.pending_quantity[b, s, m] = quantity
            state.pending_day[b, s, m] = day + lead
            state.pending_mode[b, s, m] = f
            payment = quantity * unit_payment
            state.cash[b, s] = float(state.cash[b, s]) - payment
            _seller_flow(state, b, s, "costs", payment)
        state.cash[b, s] = float(state.cash[b, s]) - float(state.fixed_cost[b, s])
        _seller_flow(state, b, s, "costs", float(state.fixed_cost[b, s]))
        if float(state.cash[b, s]) < -float(state.credit_line[b, s]) or not any(bool(x) for x in state.listed[b, s]):
            _bump(trace, "exits")
            state.alive[b, s] = False
            state.exit_day[b, s] = day
            out.exit_day[row, s] = day
            for m in range(n_markets):
                state.listed[b, s, m] = False


# --------------------------------------------------------------------------------------
# The day loop
# --------------------------------------------------------------------------------------


def advance(day0, day1, receive_first, receive_last, seed, replication0, row0, b0, b1, tables, state, out, trace=None):
    """Replications ``b0 .. b1 - 1`` (global ``replication0 + b``, output row ``row0 + b``)
    through days ``day0 .. day1 - 1``. For each day d: the arrivals of d open it (on day0
    only with ``receive_first``); FX when it moves; every market in order
    (:func:`market_day`) under the regime ``regime_tables[regime_index[d]]``; capability
    costs; :func:`close_day`; :func:`close_period` on a period's last day. The arrivals of
    day1 close the stretch when ``receive_last`` (and day1 is inside the horizon)."""
    n_days = len(tables.period_of_day)
    for b in range(b0, b1):
        replication, row = int(replication0) + b, int(row0) + b
        for day in range(day0, day1 + 1):
            if day < n_days and (day > day0 or receive_first) and (day < day1 or receive_last):
                receive_arrivals(
                    b,
                    row,
                    int(tables.period_of_day[day]),
                    day,
                    tables.regime_tables[int(tables.regime_index[day])],
                    tables,
                    state,
                    out,
                    trace,
                )
            if day == day1:
                break
            period = int(tables.period_of_day[day])
            regime = tables.regime_tables[int(tables.regime_index[day])]
            if bool(tables.fx_active):
                advance_fx(b, day, seed, replication, tables, state)
            for m in range(tables.market.shape[0]):
                market_day(b, m, row, period, day, seed, replication, regime, tables, state, out, trace)
            charge_capabilities(b, row, period, tables, state, out, trace)
            close_day(b, row, period, day, seed, replication, tables, state, out, trace)
            if bool(tables.period_last_day[day]):
                close_period(b, row, period, tables, state, out)
