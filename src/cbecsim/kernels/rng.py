"""Counter-based random numbers: every draw is a pure function of its key.

A stream is identified by ``(seed, purpose, replication, day, market, seller)``; the
``j``-th uniform of a stream is ``finalise(stream_key + (j + 1) * GOLDEN)``. Nothing is
carried from one draw to the next, so results do not depend on batch size, thread count,
worker count or the order in which replications are processed.

The mixing function is the SplitMix64 finaliser (Steele, Lea & Flood 2014, "Fast
splittable pseudorandom number generators", OOPSLA) applied to Weyl-sequence counters,
the construction behind ``java.util.SplittableRandom``. Keys are built by chaining the
finaliser over the key components, so different component tuples give unrelated streams.

All arithmetic is on ``uint64``: numba promotes mixed signed/unsigned integer arithmetic
to float64, so every constant and component is cast explicitly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S12 = np.uint64(12)
_TWO_M52 = 1.0 / 4503599627370496.0  # 2**-52

# Draw purposes: the last key component. New purposes are appended, never renumbered,
# so existing streams keep their values.
ARRIVALS = 1
DEMAND = 2
CLICKS = 3  # a slot position's clicks of the day (market component, then the position)
LEAD_TIME = 4
# Model layers (issue 7).
RETURNS = 5  # returned units of a seller-market-day
REPEAT = 6  # purchases besides shoppers' first: the total of repeats, DTC repeats, new DTC
DTC_REPEAT = 7  # retired (DTC repeat purchases: now split from REPEAT's total)
DTC_NEW = 8  # retired (new DTC customers: now split from REPEAT's total)
LAPSE = 9  # marketplace customers lapsing
DTC_LAPSE = 10  # DTC customers lapsing
INCIDENT = 11  # a listing's incident clock (day -1: the first; else drawn at an incident)
INTERRUPTION = 12  # length of a listing interruption
FX = 13  # daily FX shock of a currency (market component = currency index)
PURCHASE_SOURCE = 14  # the split of REPEAT's total into its sources
CLICK_SPLIT = 15  # the split of a slot position's daily clicks over the auction rounds
ROUND_CLICKS = 16  # a slot position's clicks in one auction round (tight budgets)
INIT = 100  # + parameter index: initial seller parameters (day = -1)

NO_DAY = -1
NO_MARKET = -1
NO_SELLER = -1


@njit(cache=True, _nrt=False, inline="always")
def mix64(z):
    """SplitMix64 finaliser: a bijection of uint64 with full avalanche."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, _nrt=False, inline="always")
def absorb(key, component):
    """Fold one integer key component (>= -1) into a uint64 key."""
    return mix64(key ^ (np.uint64(component + 1) * GOLDEN))


@njit(cache=True, _nrt=False)
def base_key(seed, purpose, replication, day):
    """Key of all streams of one (seed, purpose, replication, day)."""
    key = mix64(np.uint64(seed) ^ GOLDEN)
    key = absorb(key, purpose)
    key = absorb(key, replication)
    return absorb(key, day)


@njit(cache=True, _nrt=False)
def market_key(seed, purpose, replication, day, market):
    """The part of a stream key shared by every seller: ``stream_key = absorb(this, seller)``.

    Hoisted out of per-seller loops, it saves the base key's mixing per draw.
    """
    return absorb(base_key(seed, purpose, replication, day), market)


@njit(cache=True, _nrt=False)
def stream_key(seed, purpose, replication, day, market, seller):
    """Key of the stream for (seed, purpose, replication, day, market, seller).

    Market- or seller-independent streams pass ``-1`` for that component.
    """
    return absorb(market_key(seed, purpose, replication, day, market), seller)


@njit(cache=True, _nrt=False, inline="always")
def uniform(key, j):
    """The j-th uniform of stream ``key``, in the open interval (0, 1).

    The midpoint of one of 2**52 cells, ``((z >> 12) + 1/2) / 2**52``: every value is
    exact in float64, from 2**-53 to 1 - 2**-53. (With 53 bits the last midpoint would
    round to exactly 1.0.)
    """
    z = mix64(key + np.uint64(j + 1) * GOLDEN)
    return (float(z >> _S12) + 0.5) * _TWO_M52


#: Most terms an inversion search adds; far past any mean below 10 (the pmf underflows),
#: it only stops a search whose uniform lies above the rounded cumulative sum.
INVERSION_TERMS = 1000
#: ``RECIPROCAL[k] = 1 / (k + 1)`` (correctly rounded): the inversion searches multiply by
#: it instead of dividing, which takes several times longer on the loop's critical path.
RECIPROCAL = 1.0 / np.arange(1, INVERSION_TERMS + 1, dtype=np.float64)


#: ``LOG_FACTORIAL[k] = lgamma(k + 1) = log(k!)`` for k below 4096 (32 KiB), from Python's
#: ``math.lgamma``: the rejection samplers' exact tests look these up instead of calling
#: lgamma, their costliest step.
LOG_FACTORIAL = np.array([math.lgamma(k + 1.0) for k in range(4096)])


@njit(cache=True, _nrt=False, inline="always")
def log_factorial(k):
    """``log(k!)`` for an integer-valued ``k >= 0``: the table below 4096, else lgamma."""
    if k < 4096:
        return LOG_FACTORIAL[np.int64(k)]
    return math.lgamma(k + 1.0)


@njit(cache=True, _nrt=False)
def poisson(mean, key):
    """A Poisson(mean) variate from stream ``key`` (exact; int64).

    Inversion by sequential search for mean < 10 (one uniform); for mean >= 10 the
    transformed rejection method PTRS of Hoermann (1993), "The transformed rejection
    method for generating Poisson random variables", Insurance: Mathematics and
    Economics 12(1), 39-45 -- the algorithm NumPy uses -- drawing uniforms 0, 1, 2, ...
    """
    if not mean > 0.0:
        return np.int64(0)
    if mean >= 10.0:
        return _poisson_ptrs(mean, key)
    u = uniform(key, 0)
    p = math.exp(-mean)
    cumulative = p
    k = 0
    # INVERSION_TERMS is far past any mean < 10; it only guards against u ~ 1 round-off.
    while u > cumulative and k < INVERSION_TERMS:
        p *= mean * RECIPROCAL[k]  # mean / (k + 1), without the division's latency
        k += 1
        cumulative += p
    return np.int64(k)


@njit(cache=True, _nrt=False)
def ptrs_constants(mean):
    """The constants of PTRS for ``mean >= 10``: ``(b, a, v_r, 1/alpha)``. A caller that
    draws several variates with one mean (a slot's clicks in each auction round) computes
    them once for :func:`poisson_ptrs_with`."""
    slam = math.sqrt(mean)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    vr = 0.9277 - 3.6224 / (b - 2.0)
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    return b, a, vr, invalpha


@njit(cache=True, _nrt=False)
def poisson_ptrs_with(mean, b, a, vr, invalpha, key):
    """PTRS (see :func:`poisson`) for ``mean >= 10`` given :func:`ptrs_constants` of it:
    the same draws as :func:`poisson`."""
    # The exact test's constant, computed on first need: the squeeze accepts most draws
    # without it.
    loglam = 0.0
    exact_ready = False
    j = 0
    while True:
        u = uniform(key, j) - 0.5
        v = uniform(key, j + 1)
        j += 2
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + mean + 0.43)
        if us >= 0.07 and v <= vr:
            return np.int64(k)
        if k < 0 or (us < 0.013 and v > us):
            continue
        if not exact_ready:
            loglam = math.log(mean)
            exact_ready = True
        # Hoermann's test log(v) + log(invalpha) - log(a / us^2 + b) <= log f(k), as one log.
        if math.log(v * invalpha / (a / (us * us) + b)) <= -mean + k * loglam - log_factorial(k):
            return np.int64(k)


@njit(cache=True, _nrt=False)
def _poisson_ptrs(mean, key):
    """PTRS (see :func:`poisson`) for ``mean >= 10``."""
    b, a, vr, invalpha = ptrs_constants(mean)
    return poisson_ptrs_with(mean, b, a, vr, invalpha, key)


#: Largest total :func:`poisson_by_source` splits unit by unit (one uniform each, cheaper
#: than two binomial draws for small totals); larger totals are split by two binomials.
SPLIT_BY_UNIT_MAX = 32


@njit(cache=True, _nrt=False)
def poisson_by_source(mean_a, mean_b, mean_c, key_total, key_split):
    """Three independent Poisson variates with means ``mean_a, mean_b, mean_c`` (int64 each).

    Drawn as their total ``T ~ Poisson(mean_a + mean_b + mean_c)`` from ``key_total`` and
    a multinomial split of ``T`` with probabilities proportional to the means (Poisson
    splitting: the same joint law as three separate draws, for one Poisson draw). With
    one positive mean there is no split. Otherwise, for ``T <= SPLIT_BY_UNIT_MAX`` unit
    ``j`` goes to source a when uniform ``j`` of ``key_split`` is below ``mean_a / total``,
    else to b when below ``(mean_a + mean_b) / total``, else to c; for larger ``T``,
    ``a ~ Binomial(T, mean_a / total)`` from ``key_split`` and ``b ~ Binomial(T - a,
    mean_b / (mean_b + mean_c))`` from ``absorb(key_split, 0)``.
    """
    zero = np.int64(0)
    total_mean = mean_a + mean_b + mean_c
    if not total_mean > 0.0:
        return zero, zero, zero
    total = poisson(total_mean, key_total)
    if total == 0 or (mean_b == 0.0 and mean_c == 0.0):
        return total, zero, zero
    if mean_a == 0.0 and mean_c == 0.0:
        return zero, total, zero
    if mean_a == 0.0 and mean_b == 0.0:
        return zero, zero, total
    if total <= SPLIT_BY_UNIT_MAX:
        share_a = mean_a / total_mean
        share_ab = (mean_a + mean_b) / total_mean
        a = zero
        below_ab = zero
        # Counted without branches: a unit's source is a coin flip the CPU cannot predict.
        for j in range(total):
            u = uniform(key_split, j)
            a += np.int64(u < share_a)
            below_ab += np.int64(u < share_ab)
        return a, below_ab - a, total - below_ab
    a = binomial(total, mean_a / total_mean, key_split)
    b = binomial(total - a, mean_b / (mean_b + mean_c), absorb(key_split, 0))
    return a, b, total - a - b


@njit(cache=True, _nrt=False)
def standard_normal(key):
    """A N(0, 1) variate from uniforms 0 and 1 of ``key`` (Box-Muller, cosine branch)."""
    u1 = uniform(key, 0)
    u2 = uniform(key, 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True, _nrt=False)
def standard_exponential(key):
    """An Exp(1) variate from uniform 0 of ``key``: ``-log(u)``."""
    return -math.log(uniform(key, 0))


@njit(cache=True, _nrt=False)
def uniform_int(low, high, key):
    """An integer uniform on [low, high] from uniform 0 of ``key``."""
    span = high - low + 1
    draw = np.int64(math.floor(uniform(key, 0) * span))
    if draw >= span:  # cannot happen for u < 1, kept for safety against round-off
        draw = span - 1
    return low + draw


#: Largest binomial mean drawn by inversion; at or above it, transformed rejection (BTRS).
BINOMIAL_INVERSION_MAX_MEAN = 10.0


@njit(cache=True, _nrt=False)
def binomial(n, p, key):
    """A Binomial(n, p) variate from stream ``key`` (exact; int64, always within 0..n).

    With ``q = min(p, 1 - p)`` (the draw is mirrored, ``n - k``, when p > 1/2) and mean
    ``n q``: below ``BINOMIAL_INVERSION_MAX_MEAN``, inversion by sequential search from 0
    with uniform 0 (pmf by the recurrence ``f(k+1) = f(k) (n-k) [1/(k+1)] q/(1-q)``,
    ``f(0) = exp(n log1p(-q))``, at most ``INVERSION_TERMS`` terms); from it on, the
    transformed rejection method with squeeze BTRS of Hoermann (1993), "The generation of binomial random variates", J.
    Statist. Comput. Simul. 46, 101-110 -- constant expected time -- drawing uniforms
    0, 1, 2, ..., with the exact log-pmf ratio (:func:`log_factorial`) in the acceptance test.
    """
    if n <= 0 or not p > 0.0:
        return np.int64(0)
    if p >= 1.0:
        return np.int64(n)
    mirrored = p > 0.5
    q = 1.0 - p if mirrored else p
    if n * q >= BINOMIAL_INVERSION_MAX_MEAN:
        draw = _binomial_btrs(n, q, n * q, key)
    else:
        draw = binomial_small_q(n, q, math.log1p(-q), q / (1.0 - q), key)
    if mirrored:
        return np.int64(n) - draw
    return draw


@njit(cache=True, _nrt=False)
def binomial_small_q(n, q, log1m_q, odds, key):
    """:func:`binomial` for ``n > 0`` and ``0 < q <= 1/2``, given ``log1m_q = log1p(-q)`` and
    ``odds = q / (1 - q)``: the same draws. A caller that draws often with one ``q``
    (a listing's return probability) keeps the two and saves their cost per draw.
    """
    mean = n * q
    if mean >= BINOMIAL_INVERSION_MAX_MEAN:
        return _binomial_btrs(n, q, mean, key)
    u = uniform(key, 0)
    f = math.exp(n * log1m_q)
    cumulative = f
    k = 0
    limit = n if n < INVERSION_TERMS else INVERSION_TERMS
    while u > cumulative and k < limit:
        f *= (n - k) * RECIPROCAL[k] * odds  # (n - k) / (k + 1) * odds
        k += 1
        cumulative += f
    return np.int64(k)


@njit(cache=True, _nrt=False)
def _binomial_btrs(n, q, mean, key):
    """BTRS (see :func:`binomial`) for ``q <= 1/2`` and ``n q >= BINOMIAL_INVERSION_MAX_MEAN``."""
    spq = math.sqrt(mean * (1.0 - q))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * q
    c = mean + 0.5
    alpha = (2.83 + 5.1 / b) * spq
    v_r = 0.92 - 4.2 / b
    # The exact test's constants, computed on first need: the squeeze accepts most draws
    # without them.
    mode = 0.0
    log_odds = 0.0
    log_f_mode = 0.0
    exact_ready = False
    j = 0
    while True:
        u = uniform(key, j) - 0.5
        v = uniform(key, j + 1)
        j += 2
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if us >= 0.07 and v <= v_r:
            break
        if k < 0 or k > n:
            continue
        if not exact_ready:
            mode = math.floor((n + 1) * q)
            log_odds = math.log(q / (1.0 - q))
            log_f_mode = log_factorial(mode) + log_factorial(n - mode)
            exact_ready = True
        # log f(k) / f(mode), exactly.
        log_ratio = log_f_mode - log_factorial(k) - log_factorial(n - k) + (k - mode) * log_odds
        if math.log(v * alpha / (a / (us * us) + b)) <= log_ratio:
            break
    return np.int64(k)


# Distribution codes of initial seller parameters (see cbecsim.compile).
DIST_CONSTANT = 0
DIST_UNIFORM = 1
DIST_NORMAL = 2
DIST_LOGNORMAL = 3
DIST_TRIANGULAR = 4


@njit(cache=True, _nrt=False)
def sample_parameter(code, a, b, c, key):
    """One draw of an initial seller parameter.

    ``code`` is a DIST_* constant; (a, b, c) are: constant (value), uniform (low, high),
    normal (mean, sd), lognormal (median, sigma), triangular (low, mode, high).
    """
    if code == DIST_CONSTANT:
        return a
    if code == DIST_UNIFORM:
        return a + (b - a) * uniform(key, 0)
    if code == DIST_NORMAL:
        return a + b * standard_normal(key)
    if code == DIST_LOGNORMAL:
        return a * math.exp(b * standard_normal(key))
    # triangular by inversion
    u = uniform(key, 0)
    low, mode, high = a, b, c
    if high == low:
        return low
    cut = (mode - low) / (high - low)
    if u < cut:
        return low + math.sqrt(u * (high - low) * (mode - low))
    return high - math.sqrt((1.0 - u) * (high - low) * (high - mode))


@njit(cache=True, _nrt=False)
def fill_parameter(code, a, b, c, seed, purpose, replication0, seller0, per_market, out):
    """Fill ``out`` (n_batch, n_sellers[, n_markets]) with draws of one parameter.

    ``out`` is 3-D (n_batch, n_sellers, n_markets); with ``per_market`` False every market
    of a seller gets the seller-level draw (market component -1). Replication index is
    ``replication0 + i`` and seller index ``seller0 + j``, so draws are independent of
    the batch a replication falls in.
    """
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
