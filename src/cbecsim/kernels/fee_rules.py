"""Marketplace fee rules on one sale: plain-float numba functions, written once.

The fee library (:mod:`cbecsim.fees`) resolves a dated schedule into numbers; these
functions turn those numbers into the fee on one unit. They are ``@njit(cache=True)``, so
the kernels call them inside their loops and the library (and the tests) call the very
same compiled code from Python. Only numpy and numba are imported.

Conventions
-----------
``price`` is the total sales price of one unit in the schedule's currency (for Amazon:
item price plus any delivery and gift-wrap charges; net of sales tax in the US, VAT
included in the EU -- see ``FeeTerms.referral_base``).

Referral tiers are a float64 array of shape ``(K, 2)``: row ``k`` is
``(upper_price_bound_k, rate_k)``, bounds strictly increasing, the last bound ``inf``.
Two rules read the same array (``rule`` argument):

``REFERRAL_MARGINAL`` (0)
    Each rate applies to the *portion* of the price inside its tier, as Amazon words it
    for electronics accessories: "15% for the portion of the total sales price up to
    $100.00, and 8% for any portion of the total sales price greater than $100.00".
    fee = sum_k rate_k * max(0, min(price, upper_k) - upper_{k-1}), with upper_{-1} = 0.
    A USD 120 charger pays 0.15 * 100 + 0.08 * 20 = USD 16.60.

``REFERRAL_WHOLE_PRICE`` (1)
    One rate applies to the *whole* price: the rate of the first tier whose upper bound
    the price does not exceed (bounds inclusive), as Amazon words it for apparel: "5% for
    products with a total sales price of $15.00 or less, 10% for ... greater than $15.00
    and less than or equal to $20.00, 17% for ... greater than $20.00".

Either way the fee is the greater of the percentage fee and the per-item ``minimum``
("sellers pay the greater of the referral fee or the per-item minimum referral fee").

Fulfilment price bands are a float64 array of shape ``(K, 3)``: row ``k`` is
``(upper_price_bound_k, inclusive_k, fee_k)`` with ``inclusive_k`` 1.0 when a price equal
to the bound belongs to band k (Amazon: "$10 to $50") and 0.0 when it does not ("priced
below $10"); bounds non-decreasing, the last ``inf``.
"""

from __future__ import annotations

from numba import njit

__all__ = [
    "REFERRAL_MARGINAL",
    "REFERRAL_WHOLE_PRICE",
    "referral_fee",
    "refund_admin_fee",
    "referral_refund",
    "banded_fee",
    "payment_fee",
    "storage_fee_per_unit_day",
]

#: ``rule`` code: each rate on the portion of the price inside its tier.
REFERRAL_MARGINAL = 0
#: ``rule`` code: the rate of the tier holding the whole price applies to all of it.
REFERRAL_WHOLE_PRICE = 1


@njit(cache=True)
def referral_fee(price, tiers, minimum, rule):
    """Referral fee on one unit [currency].

    Parameters
    ----------
    price : float
        Total sales price of the unit [currency]; a negative price counts as 0.
    tiers : float64 array, shape (K, 2)
        ``(upper_price_bound, rate)`` rows, bounds increasing, last bound ``inf``.
    minimum : float
        Per-item minimum referral fee [currency] (0 where the schedule has none).
    rule : int
        ``REFERRAL_MARGINAL`` (0) or ``REFERRAL_WHOLE_PRICE`` (1); see the module docstring.

    Returns
    -------
    float
        ``max(percentage fee, minimum)`` [currency].
    """
    p = price if price > 0.0 else 0.0
    fee = 0.0
    if rule == REFERRAL_MARGINAL:
        lower = 0.0
        for k in range(tiers.shape[0]):
            upper = tiers[k, 0]
            if p <= lower:
                break
            top = p if p < upper else upper
            fee += tiers[k, 1] * (top - lower)
            lower = upper
    else:
        rate = tiers[tiers.shape[0] - 1, 1]
        for k in range(tiers.shape[0]):
            if p <= tiers[k, 0]:
                rate = tiers[k, 1]
                break
        fee = rate * p
    return fee if fee > minimum else minimum


@njit(cache=True)
def refund_admin_fee(referral, admin_rate, admin_max):
    """Refund administration fee Amazon keeps when a unit is refunded in full [currency].

    ``min(admin_rate * referral, admin_max)``: "Lesser of $5 or 20% of referral fees"
    (US; EUR 5 in the EU stores), per line item of the refund.
    """
    admin = admin_rate * referral
    return admin if admin < admin_max else admin_max


@njit(cache=True)
def referral_refund(referral, admin_rate, admin_max):
    """Referral fee credited back to the seller on a full refund [currency].

    "Amazon will refund you the amount of the referral fee you paid for the items, minus
    the applicable refund administration fee": ``referral - refund_admin_fee(...)``.
    """
    return referral - refund_admin_fee(referral, admin_rate, admin_max)


@njit(cache=True)
def banded_fee(price, bands, surcharge_rate):
    """Per-unit fee chosen by the price band of the unit, times ``1 + surcharge_rate``.

    Parameters
    ----------
    price : float
        Sales price of the unit [currency].
    bands : float64 array, shape (K, 3)
        ``(upper_price_bound, inclusive, fee)`` rows; see the module docstring.
    surcharge_rate : float
        Proportional surcharge on the fee (e.g. a fuel and logistics surcharge), 0 if none.

    Returns
    -------
    float
        Fee of the first band holding ``price`` [currency/unit], surcharge included.
    """
    fee = bands[bands.shape[0] - 1, 2]
    for k in range(bands.shape[0]):
        upper = bands[k, 0]
        if price < upper or (bands[k, 1] > 0.5 and price == upper):
            fee = bands[k, 2]
            break
    return fee * (1.0 + surcharge_rate)


@njit(cache=True)
def payment_fee(price, rate, fixed):
    """Card payment fee on one sale [currency]: ``rate * price + fixed`` (0 for no sale)."""
    if price <= 0.0:
        return 0.0
    return rate * price + fixed


@njit(cache=True)
def storage_fee_per_unit_day(storage_per_unit_month, month, days_in_month):
    """Storage charged for one unit held one day [currency/unit/day].

    Amazon bills the daily average volume of a calendar month at that month's rate, so a
    unit held one day of month ``month`` (1-12) costs the month's fee divided by the days
    in the month. ``storage_per_unit_month`` is the float64 array of shape (12,) of
    ``FeeTerms.storage_per_unit_month`` (January first).
    """
    return storage_per_unit_month[month - 1] / days_in_month

