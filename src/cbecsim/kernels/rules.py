"""Threshold rules shared by the engine's tariff kernel and the policy calculator.

One function decides every low-value threshold, so ``cbecsim policies duty`` and a run
agree at the exact boundary. The legal wordings are all "at or under":

* US Section 321: articles "valued at $800 or less" (CBP notice of EO 14324, FR Doc
  2025-16802; 19 U.S.C. 1321(a)(2)(C) "not more than $800");
* EU: goods of negligible value, "intrinsic value of which does not exceed a total of
  EUR 150 per consignment" (Council Regulation (EC) 1186/2009 Art. 23), and the interim
  EUR 3 duty on consignments "not exceeding EUR 150" (Council Regulation (EU) 2026/382);
* UK: consignments of intrinsic value "not exceeding GBP 135" (HMRC INCHP02080);
* BR Remessa Conforme: first band "de US$ 0,00 ate US$ 50,00" (Portaria MF 1.086/2024).
"""

from __future__ import annotations

from numba import njit

__all__ = ["low_value_exempt"]


@njit(cache=True)
def low_value_exempt(value, threshold):
    """Whether ``value`` falls inside a low-value threshold: ``value <= threshold``.

    Parameters
    ----------
    value : float
        Customs (intrinsic) value of the parcel or consignment, in the threshold's
        currency (convert before calling).
    threshold : float
        The regime's limit, same currency.

    Returns
    -------
    bool
        True at or under the threshold (EUR 150.00 is inside the EU limit, 150.01 is not).
    """
    return value <= threshold
