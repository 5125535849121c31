"""Scalar rules used by both the kernels and the review layer, each written once.

Every rule is one undecorated Python function compiled twice: ``numba.njit`` for the
kernels (the name without suffix) and ``numba.vectorize`` for the review layer's NumPy
arrays (``*_array``, broadcasting like a ufunc). So the market kernel, the strategies'
``SellerView.unit_margin`` and the market-selection score cannot drift apart: they run
the same source. Units: money in USD unless a name says ``_local`` (market currency).
"""

from __future__ import annotations

import functools

from numba import njit, vectorize


def _net_price_usd(price_local, vat, usd_rate):
    """Price net of VAT in USD: ``price / (1 + vat) * usd_rate`` [USD/unit]."""
    return price_local / (1.0 + vat) * usd_rate


def _referral_fee_usd(price_local, rate, minimum_local, usd_rate):
    """Marketplace referral fee on one unit: ``max(rate * price, minimum) * usd_rate`` [USD].

    On the VAT-inclusive price, as marketplaces charge it.
    """
    return max(rate * price_local, minimum_local) * usd_rate


def _return_probability(base_rate, return_cut, localisation):
    """Probability a sold unit is returned: ``base * (1 - cut * localisation)``."""
    return base_rate * (1.0 - return_cut * localisation)


def _repurchase_hazard(base_hazard, retention_lift, localisation):
    """Daily repurchase hazard of a marketplace customer: ``h0 * (1 + lift * loc)`` [1/day]."""
    return base_hazard * (1.0 + retention_lift * localisation)


def _incident_hazard(base_hazard, rule_change_multiplier, compliance_cut, compliance):
    """Daily incident hazard of a listing: ``h0 * mult(t) * (1 - cut * compliance)`` [1/day]."""
    return base_hazard * rule_change_multiplier * (1.0 - compliance_cut * compliance)


net_price_usd = njit(cache=True, _nrt=False, inline="always")(_net_price_usd)
referral_fee_usd = njit(cache=True, _nrt=False, inline="always")(_referral_fee_usd)
return_probability = njit(cache=True, _nrt=False)(_return_probability)
repurchase_hazard = njit(cache=True, _nrt=False)(_repurchase_hazard)
incident_hazard = njit(cache=True, _nrt=False)(_incident_hazard)


def _unit_margin_usd(price_local, vat, usd_rate, landed_cost, referral_fee, fulfilment_fee):
    """Contribution of one marketplace unit before ads [USD/unit]: net price - landed cost
    - referral fee - fulfilment fee (the fees as the kernels charge them, in USD)."""
    return net_price_usd(price_local, vat, usd_rate) - landed_cost - referral_fee - fulfilment_fee


unit_margin_usd = njit(cache=True, _nrt=False)(_unit_margin_usd)


class _LazyUfunc:
    """The ``numba.vectorize`` ufunc of ``function``, built on its first call.

    Building a ufunc compiles its loop wrapper even with ``cache=True`` (about 65 ms
    each here, and the first one in a process also starts numba's compiler, 0.5 s):
    done at import it made ``import cbecsim`` 0.7 s slower, for rules a run may never
    call. Calls broadcast like a ufunc's.
    """

    def __init__(self, signatures: list[str], function):
        self._signatures = signatures
        self._function = function
        self._ufunc = None
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        ufunc = self._ufunc
        if ufunc is None:  # two threads may both build it: the same ufunc, harmless
            ufunc = self._ufunc = vectorize(self._signatures, cache=True)(self._function)
        return ufunc(*args, **kwargs)


_F8_3 = ["float64(float64, float64, float64)"]
net_price_usd_array = _LazyUfunc(_F8_3, _net_price_usd)
return_probability_array = _LazyUfunc(_F8_3, _return_probability)
repurchase_hazard_array = _LazyUfunc(_F8_3, _repurchase_hazard)
referral_fee_usd_array = _LazyUfunc(["float64(float64, float64, float64, float64)"], _referral_fee_usd)
incident_hazard_array = _LazyUfunc(["float64(float64, float64, float64, float64)"], _incident_hazard)
unit_margin_usd_array = _LazyUfunc(["float64(float64, float64, float64, float64, float64, float64)"],
                                   _unit_margin_usd)
