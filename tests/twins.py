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

    A direct item (parcel or postal) under an active de minimis exemption (flag > 0.5)
    whose customs value is at or under the threshold pays only the flat low-value duty;
    every other import (bulk always) pays ``ad_valorem_rate * customs_value + specific_duty``.
    """
    if int(kind) != L.KIND_BULK and de_minimis > 0.5 and customs_value <= threshold:
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


def parcel_duty(kind, parcel_value, units, headings, regime_row, postal_method, ioss):
    """(duty, entry fees) of one direct parcel [USD]: the rules of the module docstring of
    cbecsim.kernels.tariff, written out case by case."""
    row = [float(x) for x in regime_row]
    exempt = row[L.RG_DE_MINIMIS] > 0.5 and parcel_value <= row[L.RG_THRESHOLD]
    flat_duty_applies = ioss > 0.5 or row[L.RG_IOSS_ONLY] < 0.5
    if exempt and flat_duty_applies:
        if row[L.RG_PER_HEADING] > 0.5:
            duty = row[L.RG_LOW_VALUE_PER_HEADING] * headings
        else:
            duty = row[L.RG_LOW_VALUE_DUTY] * units
        return duty, (row[L.RG_ENTRY_FEE] if duty > 0.0 else 0.0)
    postal_options = int(kind) == L.KIND_POSTAL and row[L.RG_POSTAL_SPECIFIC_AVAILABLE] > 0.5
    if postal_options:
        methods = {L.POSTAL_AD_VALOREM: row[L.RG_AD_VALOREM] * parcel_value,
                   L.POSTAL_SPECIFIC: row[L.RG_POSTAL_SPECIFIC]}
        if int(postal_method) == L.POSTAL_CHEAPEST:
            duty = min(methods.values())
        else:
            duty = methods[int(postal_method)]
        return duty, row[L.RG_ENTRY_FEE]
    return row[L.RG_AD_VALOREM] * parcel_value + row[L.RG_SPECIFIC] * units, row[L.RG_ENTRY_FEE]


def direct_duty_per_unit(kind, customs_value, regime_row, basket, postal_method, ioss):
    """(duty, fees) per unit over the basket: the share-weighted parcels' sums over their units."""
    duty = fees = units = 0.0
    for parcel_units, headings, share in basket:
        if share <= 0.0:
            continue
        parcel, parcel_fees = parcel_duty(kind, parcel_units * customs_value, parcel_units, headings, regime_row,
                                          postal_method, ioss)
        duty += share * parcel
        fees += share * parcel_fees
        units += share * parcel_units
    return duty / units, fees / units


def landed_cost_per_unit(kind, unit_cost, net_price, freight, handling_fee, regime_row, basket, postal_method, ioss):
    """(landed cost, duty) of one unit [USD]: ``unit_cost + freight + duty (+ parcel entry
    fees) + handling``, the duty on the cost value for bulk and over the market's basket of
    parcels valued at the net-of-VAT price for parcel and postal kinds."""
    unit_cost, net_price = float(unit_cost), float(net_price)
    if int(kind) == L.KIND_BULK:
        duty = regime_duty(kind, unit_cost, regime_row)
        return unit_cost + float(freight) + duty + float(handling_fee), duty
    duty, fees = direct_duty_per_unit(kind, net_price, regime_row, basket, postal_method, ioss)
    return unit_cost + float(freight) + duty + fees + float(handling_fee), duty


def net_price_usd(price_local, vat, usd_rate):
    """Price net of VAT in USD: ``price / (1 + vat) * usd_rate``."""
    return float(price_local) / (1.0 + float(vat)) * float(usd_rate)


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


def listing_utility(market_row, brand, rating, price_local, delivery_days, badge=0.0):
    """Within-page utility ``v = (u0 + alpha*brand - beta*log(price / ref)) + gamma*(rating - 4)
    - delta*days + badge``, in that order."""
    fixed = (
        float(market_row[L.MK_BASE_UTILITY])
        + float(market_row[L.MK_BRAND_WEIGHT]) * float(brand)
        - float(market_row[L.MK_PRICE_SENSITIVITY])
        * math.log(float(price_local) / float(market_row[L.MK_REFERENCE_PRICE]))
    )
    return (fixed + float(market_row[L.MK_RATING_WEIGHT]) * (float(rating) - 4.0)
            - float(market_row[L.MK_DELIVERY_WEIGHT]) * float(delivery_days) + float(badge))


def inside_share(denominator, nest):
    """``D^lambda / (1 + D^lambda)`` (0 when D = 0)."""
    if not denominator > 0.0:
        return 0.0
    inclusive = math.exp(float(nest) * math.log(denominator))
    return inclusive / (1.0 + inclusive)


def purchase_probabilities(examination, utility, nest, out=None):
    """Nested logit over the page: ``P_i = w_i exp(v_i) / D * D^lambda / (1 + D^lambda)``,
    ``D = sum_{j: w_j > 0} w_j exp(v_j)``; 0 where ``w_i <= 0``.

    Returns ``(probabilities, their sum)``; ``out`` (if given) is filled too.
    """
    weights = [float(a) * math.exp(float(u)) if float(a) > 0.0 else 0.0 for a, u in zip(examination, utility)]
    denominator = 0.0
    for w in weights:
        denominator += w
    inside = inside_share(denominator, nest)
    probabilities = [w / denominator * inside if denominator > 0.0 else 0.0 for w in weights]
    total = 0.0
    for p in probabilities:
        total += p
    if out is not None:
        for i, p in enumerate(probabilities):
            out[i] = p
    return probabilities, total


# --------------------------------------------------------------------------------------
# Marketplace fees (the rules of cbecsim.kernels.fee_rules, from the fee library's wording)
# --------------------------------------------------------------------------------------


def referral_fee(price, tiers, minimum, rule):
    """Marginal tiers (rule 0): each rate on the portion of the price in its tier; whole
    price (rule 1): the rate of the first tier whose bound the price does not exceed; then
    the greater of that and the minimum."""
    p = max(float(price), 0.0)
    rows = [(float(u), float(r)) for u, r in tiers]
    if int(rule) == 0:
        fee, lower = 0.0, 0.0
        for upper, rate in rows:
            if p <= lower:
                break
            fee += rate * (min(p, upper) - lower)
            lower = upper
    else:
        rate = rows[-1][1]
        for upper, r in rows:
            if p <= upper:
                rate = r
                break
        fee = rate * p
    return fee if fee > float(minimum) else float(minimum)


def banded_fee(price, bands, surcharge):
    """The fee of the first band holding the price (a bound itself belongs to a band
    marked inclusive), times ``1 + surcharge``."""
    rows = [(float(u), float(i), float(f)) for u, i, f in bands]
    fee = rows[-1][2]
    for upper, inclusive, value in rows:
        if price < upper or (inclusive > 0.5 and price == upper):
            fee = value
            break
    return fee * (1.0 + float(surcharge))


def referral_fee_local(price_local, vat, fee_row, tiers):
    """The market's referral fee on one unit [market currency]: on the VAT-inclusive price
    when the schedule says so, else on the price net of VAT."""
    price = float(price_local)
    base = price if float(fee_row[L.FE_REFERRAL_GROSS]) > 0.5 else price / (1.0 + float(vat))
    return referral_fee(base, tiers, fee_row[L.FE_REFERRAL_MIN], fee_row[L.FE_REFERRAL_RULE])


def fulfilment_fee_usd(mode_row, fee_row, bands, price_local, usd_rate):
    """Schedule fees (bulk mode with schedule fees, schedule with fulfilment bands): the
    banded fee in USD; otherwise the mode's own fee."""
    if float(mode_row[L.MD_SCHEDULE_FEES]) > 0.5 and float(fee_row[L.FE_HAS_FULFILMENT]) > 0.5:
        return banded_fee(float(price_local), bands, fee_row[L.FE_FULFILMENT_SURCHARGE]) * float(usd_rate)
    return float(mode_row[L.MD_FULFILMENT_FEE])


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
    >= bid``, the budget being at most ``(cash + credit line) / usd_rate``; quality =
    rating / 5; R = auction_rounds rounds; a round's auction is
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
    # The day's budget is at most what cash and the credit line allow [market currency].
    remaining = {}
    for s in candidates:
        liquidity = (float(state.cash[b, s]) + float(state.credit_line[b, s])) / usd_rate
        budget = float(state.budget_local[b, s, m])
        remaining[s] = budget if budget < liquidity else max(liquidity, 0.0)
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


def serving_pool(state, b, s, m):
    """The warehouse while it holds stock, else the origin."""
    return L.POOL_WAREHOUSE if int(state.warehouse_stock[b, s, m]) > 0 else L.POOL_ORIGIN


def organic_order(tables, state, b, m):
    """The market's served listings by flywheel score, then rating, highest first, then
    seller index (a total order: a full sort, not the kernel's insertion on yesterday's order)."""
    return sorted(listings_of(tables, m),
                  key=lambda s: (-float(state.visibility_score[b, s, m]), -float(state.rating[b, s]), s))


def market_day(b, m, row, period, day, seed, replication, regime, tables, state, out, trace=None):
    """One market ``m``, one day, replication ``b`` of the batch (global ``replication``),
    outputs to ``row`` / ``period``. Only the market's served listings take part.

    1. Shoppers ``N ~ Poisson(shoppers_per_day * season[day, m])`` (ARRIVALS stream,
       seller -1), added to ``shoppers``.
    2. A listing is *up* when its seller is alive, it is listed and not interrupted
       (``day >= layer_sm[..., LS_INTERRUPTED_UNTIL]``).
    3. The auction (:func:`sponsored_auction`).
    4. The results page: the listings in :func:`organic_order` (kept in ``rank_order``);
       the r-th listing that is up (r = 0, 1, ...) is examined with
       ``position_weight[m, r]`` (0 beyond the table), plus its sponsored attention;
       weight ``w exp(v)`` with v from :func:`listing_utility` (brand lifted by
       localisation; delivery days and badge of the mode of the pool that serves it), ``P
       = weight / D * inside_share(D, lambda)``.
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

    order = organic_order(tables, state, b, m)
    lo = int(tables.market_offsets[m])
    for j, s in enumerate(order):
        state.rank_order[b, lo + j] = s
    positions = tables.position_weight.shape[1]
    attention, weight = {s: 0.0 for s in candidates}, {s: 0.0 for s in candidates}
    denominator, total_attention, rank = 0.0, 0.0, 0
    for s in order:
        if not up[s]:
            continue
        examination = sponsored[s]
        if rank < positions:
            examination += float(tables.position_weight[m, rank])
        rank += 1
        attention[s] = examination
        lifted_brand = float(state.brand[b, s]) + float(tables.seller_layer[s, L.SL_LOC_BRAND_LIFT]) * float(
            state.levers[b, s, L.LV_LOCALISATION]
        )
        serving = tables.modes[int(state.pool_mode[b, s, m, serving_pool(state, b, s, m)])]
        utility = listing_utility(market_row, lifted_brand, state.rating[b, s], state.price_local[b, s, m],
                                  serving[L.MD_DELIVERY_DAYS], serving[L.MD_BADGE_UTILITY])
        weight[s] = examination * math.exp(utility) if examination > 0.0 else 0.0
    for s in order:
        denominator += weight[s]
        total_attention += attention[s]
    inside = inside_share(denominator, market_row[L.MK_NEST])
    smoothing = float(market_row[L.MK_VISIBILITY_RATE])
    for s in candidates:
        sold = 0
        if bool(state.alive[b, s]):
            probability = weight[s] / denominator * inside if denominator > 0.0 else 0.0
            sold = sell_listing(b, m, s, row, period, day, seed, replication, shoppers, probability, attention[s],
                                sponsored[s], total_attention, regime, tables, state, out, trace)
        v = float(state.visibility_score[b, s, m])
        state.visibility_score[b, s, m] = v + smoothing * (sold - v)


def sell_listing(b, m, s, row, period, day, seed, replication, shoppers, probability, attention, sponsored,
                 total_attention, regime, tables, state, out, trace=None):
    """One listing of a live seller for one day; returns the marketplace units sold (first
    purchases + marketplace repeats) for the flywheel.

    Unit costs of the two pools: the origin pool (its mode a parcel kind) costs its pool
    cost + freight + duty on the net price under today's regime + handling, plus the
    mode's fee; the warehouse pool its pool cost + handling, plus the fulfilment fee
    (:func:`fulfilment_fee_usd` at the price). Referral: :func:`referral_fee_local` x
    usd_rate per marketplace unit; DTC units pay ``rate * price * usd_rate + fixed``. The
    serving pool's landed cost goes into the period's landed-cost sum (alive days) and
    its cash per unit (net - referral - selling costs) into ``unit_cash_margin``. If not
    listed, nothing more. Otherwise (streams ``stream_key(seed, PURPOSE, replication,
    day, m, s)``):

    * Demand as before: marketplace first purchases ``Poisson(N P)`` (DEMAND), repeats,
      DTC repeats and new DTC customers by poisson_by_source (REPEAT, PURCHASE_SOURCE);
      stock serves them in that order; the warehouse ships first (``min(units,
      warehouse stock)``), the origin the rest.
    * CM2 ``revenue - wh * (wh cost + handling) - origin * origin landed - fees - CAC *
      new DTC`` with fees = ``wh * wh fee + origin * origin fee + mp * referral + dtc *
      payment``; cash pays the fees, handling and the origin's freight and duty, and the
      CAC; ``duty_paid = origin units * duty``.
    * Returns per pool: ``Binomial(wh units, p)`` (RETURNS key) then ``Binomial(origin
      units, p)`` (that key absorbing 1). Refund ``returned * net``; fees back =
      ``returned * mp / units * (referral - min(admin rate * referral, admin max)) *
      usd_rate`` less ``wh returned * returns processing * usd_rate`` for schedule
      fees; origin returns pay return freight; CM2 ``+= fees back - refund - return
      freight + wh returned * wh cost + origin returned * origin cost``; the returns go
      back to their pools.
    * Customers, rating (delivery days the units' mean), incidents, outputs and windows as
      before, plus fees, units from the warehouse.
    """
    market_row = tables.market[m]
    usd_rate = float(state.usd_rate[b, m])
    price = float(state.price_local[b, s, m])
    net_price = net_price_usd(price, market_row[L.MK_VAT], usd_rate)
    fee_row_index = int(tables.fee_index[day, m])
    fee_row = tables.fee_rows[fee_row_index]
    referral_local = referral_fee_local(price, market_row[L.MK_VAT], fee_row, tables.fee_referral_tiers[fee_row_index])
    referral = referral_local * usd_rate
    # The origin stock ships with its origin's freight (mode_by_origin).
    origin_mode = tables.mode_by_origin[int(state.pool_origin[b, s, m]), int(state.pool_mode[b, s, m, L.POOL_ORIGIN])]
    origin_kind = int(origin_mode[L.MD_KIND])
    origin_cost = float(state.pool_cost[b, s, m, L.POOL_ORIGIN])
    freight = float(origin_mode[L.MD_FREIGHT])
    origin_handling = float(origin_mode[L.MD_HANDLING_FEE])
    origin_fee = float(origin_mode[L.MD_FULFILMENT_FEE])
    origin_landed, duty = landed_cost_per_unit(origin_kind, origin_cost, net_price, freight, origin_handling,
                                               regime[m, int(state.pool_origin[b, s, m]), origin_kind],
                                               tables.basket[m],
                                               int(tables.seller_layer[s, L.SL_POSTAL_METHOD]),
                                               float(tables.seller_layer[s, L.SL_IOSS]))
    warehouse_mode = tables.modes[int(state.pool_mode[b, s, m, L.POOL_WAREHOUSE])]
    warehouse_cost = float(state.pool_cost[b, s, m, L.POOL_WAREHOUSE])
    warehouse_handling = float(warehouse_mode[L.MD_HANDLING_FEE])
    schedule_fees = float(warehouse_mode[L.MD_SCHEDULE_FEES]) > 0.5
    warehouse_fee = fulfilment_fee_usd(warehouse_mode, fee_row, tables.fee_fulfilment_bands[fee_row_index], price,
                                       usd_rate)
    warehouse_stock = int(state.warehouse_stock[b, s, m])
    acc = (b, s, m)
    if warehouse_stock > 0:
        _add(state.period_sum, acc + (K_ACC["landed"],), warehouse_cost + warehouse_handling)
        state.unit_cash_margin[b, s, m] = net_price - referral - warehouse_fee - warehouse_handling
    else:
        _add(state.period_sum, acc + (K_ACC["landed"],), origin_landed)
        state.unit_cash_margin[b, s, m] = net_price - referral - (origin_landed - origin_cost) - origin_fee
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
    warehouse_units = min(units, warehouse_stock)
    origin_units = units - warehouse_units
    if warehouse_units > 0:
        _bump(trace, "warehouse_sales")
    if warehouse_units > 0 and origin_units > 0:
        _bump(trace, "two_pool_sales")

    revenue = units * net_price
    payment = 0.0
    if dtc_units > 0:
        payment = sl[L.SL_PAYMENT_RATE] * (price * usd_rate) + sl[L.SL_PAYMENT_FIXED]
    fees = (warehouse_units * warehouse_fee + origin_units * origin_fee + marketplace_units * referral
            + dtc_units * payment)
    cm2 = revenue - warehouse_units * (warehouse_cost + warehouse_handling) - origin_units * origin_landed - fees
    paid = fees + warehouse_units * warehouse_handling + origin_units * (origin_landed - origin_cost)
    duty_paid = origin_units * duty
    if duty_paid > 0.0:
        _bump(trace, "parcel_duty_sales")
    acquisition = dtc_new_sold * sl[L.SL_DTC_CAC]
    cm2 = cm2 - acquisition
    paid = paid + acquisition
    p_return = float(market_row[L.MK_RETURN_RATE]) * (1.0 - sl[L.SL_LOC_RETURN_CUT] * loc)
    returned_warehouse = returned_origin = 0
    if units > 0 and p_return > 0.0:
        key = stream_key(seed, RETURNS, replication, day, m, s)
        if p_return <= 0.5:  # the kernel keeps q, log1p(-q) and q / (1 - q) of the listing
            state.layer_sm[lsm + (L.LS_RETURN_Q,)] = p_return
            state.layer_sm[lsm + (L.LS_RETURN_LOG1M_Q,)] = math.log1p(-p_return)
            state.layer_sm[lsm + (L.LS_RETURN_ODDS,)] = p_return / (1.0 - p_return)
        if warehouse_units > 0:
            returned_warehouse = binomial(warehouse_units, p_return, key)
        if origin_units > 0:
            returned_origin = binomial(origin_units, p_return, absorb(key, 1))
    returned = returned_warehouse + returned_origin
    if returned > 0:
        _bump(trace, "returns")
    refund = returned * net_price
    fees_back = 0.0
    if returned > 0:
        admin = min(float(fee_row[L.FE_REFUND_ADMIN_RATE]) * referral_local, float(fee_row[L.FE_REFUND_ADMIN_MAX]))
        fees_back = returned * (marketplace_units / units) * (referral_local - admin) * usd_rate
        if schedule_fees:
            fees_back -= returned_warehouse * float(fee_row[L.FE_RETURNS_PROCESSING]) * usd_rate
    return_freight = returned_origin * freight
    cm2 = cm2 + (fees_back - refund - return_freight + returned_warehouse * warehouse_cost
                 + returned_origin * origin_cost)
    paid = paid + (refund + return_freight - fees_back)
    fees = fees - fees_back
    # Drawback: a parcel return is exported back to the origin; its duty comes back at the rate.
    drawback_rate = float(regime[m, int(state.pool_origin[b, s, m]), origin_kind][L.RG_DRAWBACK])
    if returned_origin > 0 and duty > 0.0 and drawback_rate > 0.0:
        drawback = returned_origin * duty * drawback_rate
        cm2, paid, duty_paid = cm2 + drawback, paid - drawback, duty_paid - drawback
        _bump(trace, "parcel_drawback")
    state.stock[b, s, m] = available + returned
    state.warehouse_stock[b, s, m] = warehouse_stock - warehouse_units + returned_warehouse
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
    unit_delivery_days = (warehouse_units * float(warehouse_mode[L.MD_DELIVERY_DAYS])
                          + origin_units * float(origin_mode[L.MD_DELIVERY_DAYS]))
    memory = float(market_row[L.MK_RATING_MEMORY])
    if units > 0 and memory > 0.0:
        r = float(state.rating[b, s])
        experience = (
            5.0
            - float(market_row[L.MK_RATING_RETURN_PENALTY]) * (returned / units)
            - float(market_row[L.MK_RATING_DELIVERY_PENALTY]) * (unit_delivery_days / units)
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
        ("fees", fees),
        ("units_sold", units),
        ("units_from_warehouse", warehouse_units),
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
        ("delivery_unit_days", unit_delivery_days),
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
        (L.W_DUTY, duty_paid),
        (L.W_NEW_CUSTOMERS, sold + dtc_new_sold),
        (L.W_RETURNS, returned),
        (L.W_FEES, fees),
        (L.W_UNITS_FROM_WAREHOUSE, warehouse_units),
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
    "cum_revenue": 26,
    "cum_new_customers": 27,
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
        equity = float(state.cash[b, s])
        for m in range(n_markets):
            equity += inventory_value(state, b, s, m)
        _out(out, "equity", (row, period, s), equity, add=False)
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
            _out(out, "inventory_value", o, inventory_value(state, b, s, m), add=False)
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


def order_quantity(stock, demand_estimate, lead_mean, safety_days, cover_days, unit_payment, spendable, now=False):
    """Reorder-point / order-up-to rule, limited by what can be paid.

    No order while ``stock > d * (lead_mean + safety_days)`` (unless ``now``); otherwise
    order up to ``ceil(d * (lead_mean + safety_days + cover_days))``, at most
    ``floor(spendable / unit_payment)`` units (none when ``spendable <= 0``; no limit when
    the units are free).
    """
    stock = int(stock)
    demand_estimate = float(demand_estimate)
    if not now and stock > demand_estimate * (float(lead_mean) + float(safety_days)):
        return 0
    target = math.ceil(demand_estimate * (float(lead_mean) + float(safety_days) + float(cover_days)))
    quantity = target - stock
    if quantity <= 0 or unit_payment <= 0.0:
        return max(quantity, 0)
    affordable = math.floor(float(spendable) / float(unit_payment)) if spendable > 0.0 else 0
    return min(quantity, affordable)


def inbound_fee_usd(mode_row, fee_row, usd_rate):
    """Inbound placement per unit [USD] for a mode with schedule fees, else 0."""
    if float(mode_row[L.MD_SCHEDULE_FEES]) > 0.5:
        return float(fee_row[L.FE_INBOUND]) * float(usd_rate)
    return 0.0


def import_payment_per_unit(mode_row, unit_cost, regime_row, fee_row, usd_rate):
    """Factory cost; for bulk also freight + import duty at cost + inbound placement."""
    if int(mode_row[L.MD_KIND]) != L.KIND_BULK:
        return float(unit_cost)
    return (float(unit_cost) + float(mode_row[L.MD_FREIGHT]) + regime_duty(L.KIND_BULK, unit_cost, regime_row)
            + inbound_fee_usd(mode_row, fee_row, usd_rate))


def add_to_pool(state, b, s, m, pool, quantity, unit_cost):
    """Units join a pool at ``unit_cost``: the pool's moving-average cost."""
    warehouse = int(state.warehouse_stock[b, s, m])
    held = warehouse if pool == L.POOL_WAREHOUSE else int(state.stock[b, s, m]) - warehouse
    if pool == L.POOL_WAREHOUSE:
        state.warehouse_stock[b, s, m] = warehouse + quantity
    total = held + quantity
    if total > 0:
        state.pool_cost[b, s, m, pool] = (held * float(state.pool_cost[b, s, m, pool]) + quantity * unit_cost) / total
    state.stock[b, s, m] = int(state.stock[b, s, m]) + quantity


def inventory_value(state, b, s, m):
    """Stock at cost: origin units x origin cost + warehouse units x warehouse cost + in
    transit x what was paid per unit."""
    warehouse = int(state.warehouse_stock[b, s, m])
    return ((int(state.stock[b, s, m]) - warehouse) * float(state.pool_cost[b, s, m, L.POOL_ORIGIN])
            + warehouse * float(state.pool_cost[b, s, m, L.POOL_WAREHOUSE])
            + int(state.pending_quantity[b, s, m]) * float(state.pending_cost[b, s, m]))


def receive_arrivals(b, row, period, day, regime, tables, state, out, trace=None):
    """Orders due (``pending_day <= day``) leave the pending slot (an exited seller has
    none: they are written off at its exit). A bulk shipment pays the import duty ``quantity * duty(bulk, unit_cost)``
    under the regime in force and the inbound placement (cash, costs; duty in duty paid)
    and joins the warehouse pool at (paid at order + paid now / quantity) per unit, the
    pool taking the shipment's mode; a parcel-kind order joins the origin pool at its
    factory cost."""
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    for s in range(n_sellers):
        for m in range(n_markets):
            quantity = int(state.pending_quantity[b, s, m])
            if quantity <= 0 or int(state.pending_day[b, s, m]) > day:
                continue
            state.pending_quantity[b, s, m] = 0
            _bump(trace, "arrivals")
            f = int(state.pending_mode[b, s, m])
            mode_row = tables.modes[f]
            unit_cost = float(state.pending_cost[b, s, m])
            if int(mode_row[L.MD_KIND]) == L.KIND_BULK:
                _bump(trace, "bulk_arrivals")
                duty = quantity * regime_duty(
                    L.KIND_BULK, state.unit_cost[b, s, m], regime[m, int(state.pending_origin[b, s, m]), L.KIND_BULK]
                )
                inbound = quantity * inbound_fee_usd(mode_row, tables.fee_rows[int(tables.fee_index[day, m])],
                                                     state.usd_rate[b, m])
                paid = duty + inbound
                state.cash[b, s] = float(state.cash[b, s]) - paid
                _seller_flow(state, b, s, "costs", paid)
                _flow(state, b, s, m, "duty_paid", duty)
                if int(state.warehouse_stock[b, s, m]) > 0:
                    _bump(trace, "warehouse_cost_averaged")
                add_to_pool(state, b, s, m, L.POOL_WAREHOUSE, quantity, unit_cost + paid / quantity)
                state.pool_mode[b, s, m, L.POOL_WAREHOUSE] = f
            else:
                add_to_pool(state, b, s, m, L.POOL_ORIGIN, quantity, unit_cost)
                if int(state.pool_origin[b, s, m]) != int(state.pending_origin[b, s, m]):
                    _bump(trace, "origin_stock_moved")
                state.pool_origin[b, s, m] = state.pending_origin[b, s, m]
            state.pending_cost[b, s, m] = 0.0


def storage_fee_usd(b, s, m, day, tables, state):
    """Warehouse units x the schedule's storage per unit-day x usd_rate (schedule fees),
    else x the mode's storage per unit-month x 12 / 365."""
    units = int(state.warehouse_stock[b, s, m])
    if units <= 0:
        return 0.0
    mode_row = tables.modes[int(state.pool_mode[b, s, m, L.POOL_WAREHOUSE])]
    if float(mode_row[L.MD_SCHEDULE_FEES]) > 0.5:
        return units * float(tables.storage_fee_day[day, m]) * float(state.usd_rate[b, m])
    return units * float(mode_row[L.MD_STORAGE_MONTH]) * (12.0 / 365.0)


def exit_test(b, s, day, tables, state):
    """Insolvent when cash + inventory < -credit line, or when cash < -credit line and cash
    + the cash the stock can bring within the recovery days (listed markets: min(stock +
    orders arriving by then, demand estimate x days) x positive unit cash margin, less
    fixed costs x days) stays below it; else the strategy's reason when listed nowhere;
    else survived."""
    n_markets = state.stock.shape[2]
    cash = float(state.cash[b, s])
    floor = -float(state.credit_line[b, s])
    inventory = 0.0
    for m in range(n_markets):
        inventory += inventory_value(state, b, s, m)
    if cash + inventory < floor:
        return L.EXIT_INSOLVENT
    if cash < floor:
        horizon = float(state.credit[b, s, L.CR_RECOVERY_DAYS])
        recoverable = -float(state.fixed_cost[b, s]) * horizon
        for m in range(n_markets):
            if not bool(state.listed[b, s, m]):
                continue
            sellable = int(state.stock[b, s, m])
            if int(state.pending_quantity[b, s, m]) > 0 and int(state.pending_day[b, s, m]) <= day + horizon:
                sellable += int(state.pending_quantity[b, s, m])
            units = min(float(sellable), float(state.demand_estimate[b, s, m]) * horizon)
            margin = float(state.unit_cash_margin[b, s, m])
            if margin > 0.0:
                recoverable += units * margin
        if cash + recoverable < floor:
            return L.EXIT_INSOLVENT
    if not any(bool(x) for x in state.listed[b, s]):
        return int(state.exit_request[b, s])
    return L.EXIT_SURVIVED


def close_day(b, row, period, day, seed, replication, tables, state, out, trace=None):
    """End of day for each live seller of replication ``b``:

    * storage of every market's warehouse stock (cash, costs, CM2 and fees of the period
      and the window);
    * markets in order: ``order_now`` is read; a listed market with no pending order and
      imports not paused clears it and orders :func:`order_quantity` units (mean lead time of
      its mode, stock policy, unit payment :func:`import_payment_per_unit` under today's
      regime and fees, spendable = cash + credit line - fixed cost x reserve days), paying
      the factory cost (and bulk freight) now, arriving after ``uniform_int(lead_min,
      lead_max)`` days (LEAD_TIME stream);
    * interest ``-cash x daily rate`` when cash < 0; the fixed cost and any switch cost due;
    * :func:`exit_test`: an exit sets alive False, exit_day and exit_reason (state and
      output), removes every listing and writes the stock and orders off.
    """
    modes = tables.modes
    regime = tables.regime_tables[int(tables.regime_index[day])]
    n_sellers, n_markets = state.stock.shape[1], state.stock.shape[2]
    for s in range(n_sellers):
        if not bool(state.alive[b, s]):
            continue
        switch_day = int(state.origin_switch_day[b, s])
        if 0 <= switch_day <= day:  # production moves today: orders from this close ship from there
            state.origin[b, s] = state.origin_switch_to[b, s]
            state.origin_switch_day[b, s] = -1
            out.origin[row, s] = state.origin[b, s]
            _bump(trace, "origin_moves")
        origin = int(state.origin[b, s])
        modes = tables.mode_by_origin[origin]  # orders: freight and lead times from the production origin
        for m in range(n_markets):
            storage = storage_fee_usd(b, s, m, day, tables, state)
            if storage > 0.0:
                _bump(trace, "storage_days")
                state.cash[b, s] = float(state.cash[b, s]) - storage
                _seller_flow(state, b, s, "costs", storage)
                _flow(state, b, s, m, "cm2", -storage)
                _flow(state, b, s, m, "fees", storage)
                _add(state.window, (b, s, m, L.W_CM2), -storage)
                _add(state.window, (b, s, m, L.W_FEES), storage)
        for m in range(n_markets):
            now = bool(state.order_now[b, s, m])
            if not bool(state.listed[b, s, m]) or int(state.pending_quantity[b, s, m]) > 0:
                continue
            if bool(state.imports_paused[b, s, m]):
                _bump(trace, "paused_imports")
                continue
            state.order_now[b, s, m] = False
            f = int(state.mode[b, s, m])
            lead_min = int(modes[f, L.MD_LEAD_MIN])
            lead_max = int(modes[f, L.MD_LEAD_MAX])
            unit_payment = import_payment_per_unit(modes[f], state.unit_cost[b, s, m],
                                                   regime[m, origin, L.KIND_BULK],
                                                   tables.fee_rows[int(tables.fee_index[day, m])],
                                                   state.usd_rate[b, m])
            spendable = (float(state.cash[b, s]) + float(state.credit_line[b, s])
                         - float(state.fixed_cost[b, s]) * float(state.credit[b, s, L.CR_RESERVE_DAYS]))
            policy = state.stock_policy[b, s, m]
            arguments = (state.stock[b, s, m], state.demand_estimate[b, s, m], 0.5 * (lead_min + lead_max),
                         policy[L.SP_SAFETY_DAYS], policy[L.SP_COVER_DAYS])
            quantity = order_quantity(*arguments, unit_payment, spendable, now)
            if quantity <= 0:
                continue
            _bump(trace, "orders")
            if now:
                _bump(trace, "orders_now")
            if quantity < order_quantity(*arguments, 0.0, 0.0, now):
                _bump(trace, "cash_limited_orders")
            lead = uniform_int(lead_min, lead_max, stream_key(seed, LEAD_TIME, replication, day, m, s))
            paid_now = float(state.unit_cost[b, s, m])
            if int(modes[f, L.MD_KIND]) == L.KIND_BULK:
                paid_now += float(modes[f, L.MD_FREIGHT])
            state.pending_quantity[b, s, m] = quantity
            state.pending_day[b, s, m] = day + lead
            state.pending_mode[b, s, m] = f
            state.pending_origin[b, s, m] = origin
            state.pending_cost[b, s, m] = paid_now
            payment = quantity * paid_now
            state.cash[b, s] = float(state.cash[b, s]) - payment
            _seller_flow(state, b, s, "costs", payment)
        rate = float(state.credit[b, s, L.CR_INTEREST_DAY])
        if float(state.cash[b, s]) < 0.0 and rate > 0.0:
            _bump(trace, "interest_days")
            interest = -float(state.cash[b, s]) * rate
            state.cash[b, s] = float(state.cash[b, s]) - interest
            _seller_flow(state, b, s, "costs", interest)
            _seller_flow(state, b, s, "interest", interest)
        overheads = float(state.fixed_cost[b, s]) + float(state.switch_cost_due[b, s])
        state.switch_cost_due[b, s] = 0.0
        state.cash[b, s] = float(state.cash[b, s]) - overheads
        _seller_flow(state, b, s, "costs", overheads)
        reason = exit_test(b, s, day, tables, state)
        if reason != L.EXIT_SURVIVED:
            _bump(trace, "exits")
            _bump(trace, f"exit_{reason}")
            if any(int(q) > 0 for q in state.pending_quantity[b, s]) or any(int(x) > 0 for x in state.stock[b, s]):
                _bump(trace, "written_off")
            state.alive[b, s] = False
            state.exit_day[b, s] = day
            state.exit_reason[b, s] = reason
            out.exit_day[row, s] = day
            out.exit_reason[row, s] = reason
            for m in range(n_markets):
                state.listed[b, s, m] = False
                state.stock[b, s, m] = 0
                state.warehouse_stock[b, s, m] = 0
                state.pending_quantity[b, s, m] = 0
                state.pending_cost[b, s, m] = 0.0


def start_stretch(b, tables, state):
    """A stretch starts: each served listing's pool of its mode's kind ships with its mode."""
    for m in range(tables.market.shape[0]):
        for s in listings_of(tables, m):
            f = int(state.mode[b, s, m])
            pool = L.POOL_WAREHOUSE if int(tables.modes[f, L.MD_KIND]) == L.KIND_BULK else L.POOL_ORIGIN
            state.pool_mode[b, s, m, pool] = f


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
        start_stretch(b, tables, state)
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
