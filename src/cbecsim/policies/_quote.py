"""Duty, taxes and fees on one item or parcel under the regime in force."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Any, Sequence

from ._library import (
    PolicyError,
    _library,
    convert,
    currency_rates,
    destinations,
    load_regime_set,
    normalise_destination,
)
from ._schema import MODES, AdValoremLayer, PostalOptions, RegimeEntry, RegimeSet, percent_text

__all__ = ["QuoteLine", "DutyQuote", "quote_duty", "resolve_sets"]

_ORIGIN = re.compile(r"^[A-Z]{2}$")


@dataclasses.dataclass(frozen=True)
class QuoteLine:
    """One line of a quote's breakdown.

    Attributes
    ----------
    kind : str
        ``duty`` (a customs duty layer or option), ``exemption`` (de minimis, amount 0),
        ``vat`` (VAT, ICMS...), ``fee`` (handling fee) or ``not_applied`` (a layer of the
        entry that does not apply to this category; amount 0).
    basis : str
        Legal basis or name, e.g. ``Section 301 List 3``, ``EU fixed duty``, ``VAT``.
    amount : float
        [quote currency].
    rate : float or None
        Fraction of value where the line is ad valorem.
    note : str
    """

    kind: str
    basis: str
    amount: float
    rate: float | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class DutyQuote:
    """Duty, taxes and fees on one item/parcel, all in ``currency``.

    Attributes
    ----------
    duty : float
        Customs duty only [currency].
    vat : float
        VAT / consumption tax (ICMS in Brazil) [currency].
    fees : float
        Handling fees [currency].
    total : float
        duty + vat + fees [currency].
    currency : str
        The currency the value was given in; library amounts are converted with the fixed
        table in ``data/currency_rates.yaml``.
    rule : str
        A sentence saying which rule applied.
    source : str
        Where the figures come from (as named in FACTS.md).
    breakdown : list of QuoteLine
    destination, origin, mode, date, value, category, headings
        The question, normalised.
    regime_set, entry_id : str
        The regime entry that applied.
    confidence : str
        FACTS.md confidence grade of the entry (H, M, L or a range).
    note : str
        The entry's note (assumptions, what is not modelled).
    checked : datetime.date
        When the entry's figures were checked.
    """

    duty: float
    vat: float
    fees: float
    total: float
    currency: str
    rule: str
    source: str
    breakdown: list[QuoteLine]
    destination: str
    origin: str
    mode: str
    date: dt.date
    value: float
    category: str | None
    headings: int
    regime_set: str
    entry_id: str
    confidence: str
    note: str
    checked: dt.date

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (dates as ISO strings)."""
        data = dataclasses.asdict(self)
        data["date"] = self.date.isoformat()
        data["checked"] = self.checked.isoformat()
        return data


# --------------------------------------------------------------------------------------
# Formatting helpers for the rule sentence
# --------------------------------------------------------------------------------------


def _money(amount: float, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


def _limit(amount: float, currency: str) -> str:
    # Thresholds are round figures: show them without needless decimals.
    return f"{currency} {amount:,g}" if float(amount).is_integer() else _money(amount, currency)


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise PolicyError(f"date must be YYYY-MM-DD, got {value!r}") from None
    raise PolicyError(f"date must be a datetime.date or a YYYY-MM-DD string, got {value!r}")


def _as_value(value: Any) -> float:
    if isinstance(value, bool):
        raise PolicyError(f"value must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PolicyError(f"value must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise PolicyError(f"value must be a finite number, got {value!r}")
    if number < 0:
        raise PolicyError(f"value must be >= 0, got {number:g}")
    return number


def _as_headings(headings: Any) -> int:
    if isinstance(headings, bool) or not isinstance(headings, int):
        if isinstance(headings, float) and headings.is_integer():
            headings = int(headings)
        else:
            raise PolicyError(f"headings must be a whole number >= 1, got {headings!r}")
    if headings < 1:
        raise PolicyError(f"headings must be >= 1 (distinct tariff sub-headings in the parcel), got {headings}")
    return headings


def resolve_sets(destination: str, regime_sets: Sequence[str | RegimeSet] | str | RegimeSet | None) -> list[RegimeSet]:
    """The regime sets to consult for ``destination``: the default ones, or those named.

    Raises
    ------
    PolicyError
        Unknown set name, or a named set for another destination.
    """
    if regime_sets is None:
        chosen = [s for s in _library().values() if s.destination == destination and s.status == "default"]
        return sorted(chosen, key=lambda s: s.start)
    if isinstance(regime_sets, (str, RegimeSet)):
        regime_sets = [regime_sets]
    chosen = []
    for item in regime_sets:
        regime_set = load_regime_set(item) if isinstance(item, str) else item
        if not isinstance(regime_set, RegimeSet):
            raise PolicyError(f"regime_sets must hold set names or RegimeSet objects, got {item!r}")
        if regime_set.destination != destination:
            raise PolicyError(
                f"regime set {regime_set.name} is for {regime_set.destination}, not {destination}"
            )
        chosen.append(regime_set)
    if not chosen:
        raise PolicyError("regime_sets is empty: name at least one set, or pass None for the defaults")
    return chosen


def _coverage_text(sets: Sequence[RegimeSet]) -> str:
    return ", ".join(f"{s.name} {s.start} to {s.end or 'open'}" for s in sorted(sets, key=lambda s: s.start))


def _matches(entry: RegimeEntry, mode: str, origin: str, category: str | None) -> bool:
    if mode not in entry.modes:
        return False
    if entry.origins != "all" and origin not in entry.origins:
        return False
    if entry.categories != "all" and (category is None or category not in entry.categories):
        return False
    return True


def _find_entry(
    sets: Sequence[RegimeSet], destination: str, mode: str, origin: str, category: str | None, day: dt.date
) -> tuple[RegimeSet, RegimeEntry]:
    """The entry in force: an entry naming the origin beats ``origins: all``; then an entry
    naming the category beats ``categories: all``."""
    candidates = [
        (regime_set, entry)
        for regime_set in sets
        for entry in regime_set.entries
        if entry.in_force(day) and _matches(entry, mode, origin, category)
    ]
    if not candidates:
        in_force = [
            f"{'/'.join(e.origins) if e.origins != 'all' else 'other origins'} {'+'.join(e.modes)}"
            for s in sets
            for e in s.entries
            if e.in_force(day)
        ]
        covered = f" Entries in force that day cover: {'; '.join(in_force)}." if in_force else ""
        what = f"{destination} {mode} from {origin}" + (f", category {category}" if category else "")
        raise PolicyError(
            f"no regime entry for {what} on {day} in {', '.join(s.name for s in sets)}.{covered}"
        )

    def specificity(item: tuple[RegimeSet, RegimeEntry]) -> tuple[bool, bool]:
        return item[1].origins != "all", item[1].categories != "all"

    best = max(specificity(c) for c in candidates)
    winners = [c for c in candidates if specificity(c) == best]
    if len(winners) > 1:
        names = " and ".join(f"{s.name}/{e.id}" for s, e in winners)
        raise PolicyError(f"ambiguous: entries {names} both apply to {destination} {mode} from {origin} on {day}")
    return winners[0]


# --------------------------------------------------------------------------------------
# The duty
# --------------------------------------------------------------------------------------


def _layers_for(entry: RegimeEntry, category: str | None) -> tuple[list[AdValoremLayer], list[AdValoremLayer]]:
    """(layers that apply to the category, category-scoped layers that do not)."""
    applied, skipped = [], []
    for layer in entry.ad_valorem:
        if layer.categories is None or (category is not None and category in layer.categories):
            applied.append(layer)
        else:
            skipped.append(layer)
    return applied, skipped


def _postal_duty(
    options: PostalOptions, entry: RegimeEntry, value: float, currency: str, category: str | None
) -> tuple[float, list[QuoteLine], str]:
    """The cheaper of the postal options for the shipper (who elects the method)."""
    applied, _ = _layers_for(entry, category)
    evaluated = []
    for option in options.options:
        if option.method == "ad_valorem":
            rate = float(option.rate)
            amount, text = rate * value, f"{percent_text(rate)} of value"
        elif option.method == "ad_valorem_from_layers":
            rate = round(sum(l.rate for l in applied if l.basis.startswith(option.layers_prefix)), 12)
            amount, text = rate * value, f"{percent_text(rate)} of value (the {option.layers_prefix} rate)"
        elif option.method == "per_item":
            amount = convert(option.amount, option.currency, currency)
            rate, text = None, f"{_limit(option.amount, option.currency)} per item"
        else:  # per_item_by_rate_band
            band_rate = round(sum(l.rate for l in applied if l.basis.startswith(option.layers_prefix)), 12)
            for band in option.bands:
                if band.max_rate is None or band_rate < band.max_rate or (band.inclusive and band_rate == band.max_rate):
                    break
            amount = convert(band.amount, option.currency, currency)
            rate = None
            text = f"{_limit(band.amount, option.currency)} per item ({option.layers_prefix} rate {percent_text(band_rate)})"
        evaluated.append((amount, option, rate, text))
    # min() keeps the first of equal amounts: ties go to the option listed first.
    amount, option, rate, text = min(evaluated, key=lambda item: item[0])
    others = "; ".join(f"{o.label}: {t} = {_money(a, currency)}" for a, o, _, t in evaluated)
    rule = (
        f"{text} ({option.label}; the shipper elects the method and the cheaper one for the "
        f"shipper is applied, of {others}; in lieu of other duties)"
    )
    line = QuoteLine("duty", f"postal duty, {option.label}", amount, rate, option.note or options.note)
    return amount, [line], rule


def _duty(
    entry: RegimeEntry, mode: str, value: float, currency: str, category: str | None, headings: int
) -> tuple[float, list[QuoteLine], list[str]]:
    """Customs duty [currency], its breakdown, and rule phrases."""
    phrases: list[str] = []
    lines: list[QuoteLine] = []
    direct = mode != "bulk"
    dm = entry.de_minimis
    if direct and dm is not None and dm.applies:
        if convert(value, currency, dm.currency) <= dm.threshold:
            lines.append(QuoteLine("exemption", "de minimis", 0.0, None, dm.note))
            return 0.0, lines, [f"de minimis: value at or under {_limit(dm.threshold, dm.currency)}, no duty"]
        phrases.append(f"value above the {_limit(dm.threshold, dm.currency)} de minimis threshold")
    elif direct and dm is not None:
        phrases.append(f"de minimis ({_limit(dm.threshold, dm.currency)}) does not apply" + (f": {dm.note}" if dm.note else ""))
    elif not direct:
        phrases.append("bulk import, always dutiable (never de minimis)")

    if mode == "postal" and entry.postal_options is not None:
        amount, postal_lines, rule = _postal_duty(entry.postal_options, entry, value, currency, category)
        return amount, lines + postal_lines, phrases + [rule]

    low = entry.low_value_duty
    if direct and low is not None:
        if convert(value, currency, low.currency) < low.value_below:
            per_heading = convert(low.amount_per_heading, low.currency, currency)
            amount = per_heading * headings
            lines.append(QuoteLine("duty", "fixed duty per tariff sub-heading", amount, None, low.note))
            phrases.append(
                f"fixed duty {_limit(low.amount_per_heading, low.currency)} x {headings} tariff "
                f"sub-heading{'s' if headings != 1 else ''} on a parcel under {_limit(low.value_below, low.currency)}"
            )
            return amount, lines, phrases
        phrases.append(f"value not under {_limit(low.value_below, low.currency)}: no fixed duty, normal tariff")

    if entry.value_bands is not None:
        bands = entry.value_bands
        value_in_band_currency = convert(value, currency, bands.currency)
        lower = 0.0
        for band in bands.bands:
            if value_in_band_currency <= band.max_value:
                break
            lower = band.max_value
        else:
            raise PolicyError(
                f"value {_money(value, currency)} is above {_limit(bands.bands[-1].max_value, bands.currency)}, "
                f"the top of this regime ({entry.id}); the library has no rule for it"
            )
        deduction = convert(band.deduction, bands.currency, currency)
        amount = max(band.rate * value - deduction, 0.0)
        band_text = f"band over {_limit(lower, bands.currency)} up to {_limit(band.max_value, bands.currency)}"
        text = f"{percent_text(band.rate)} of value" + (
            f" minus {_limit(band.deduction, bands.currency)}" if band.deduction else ""
        )
        lines.append(QuoteLine("duty", "import tax by value band", amount, band.rate, f"{band_text}; {bands.note}"))
        phrases.append(f"{text} ({band_text})")
        return amount, lines, phrases

    applied, skipped = _layers_for(entry, category)
    # Rates are given to a few decimals: rounding the sum removes float noise such as
    # 0.2 + 0.1 = 0.30000000000000004 without changing any real figure.
    total_rate = round(sum(layer.rate for layer in applied), 12)
    amount = total_rate * value
    for layer in applied:
        lines.append(QuoteLine("duty", layer.basis, layer.rate * value, layer.rate, layer.note))
    for layer in skipped:
        lines.append(QuoteLine("not_applied", layer.basis, 0.0, layer.rate, f"applies to {', '.join(layer.categories)} only"))
    listed = " + ".join(
        f"{layer.basis} {percent_text(layer.rate)}" + (" (assumed)" if layer.assumed else "") for layer in applied
    ) or "no layers"
    phrases.append(f"{percent_text(total_rate)} of value ({listed})")
    if skipped and not any(layer.categories for layer in applied):
        scoped = "; ".join(f"{l.basis} for {', '.join(l.categories)}" for l in skipped)
        if category is None:
            phrases.append(f"no category given, so category-specific layers are not applied ({scoped})")
        else:
            phrases.append(f"category {category!r} is not mapped to: {scoped}")
    specific = entry.specific_per_item
    if specific is not None and specific.amount > 0:
        extra = convert(specific.amount, specific.currency, currency)
        amount += extra
        lines.append(QuoteLine("duty", "specific duty per item", extra))
        phrases.append(f"plus {_limit(specific.amount, specific.currency)} per item")
    return amount, lines, phrases


def _vat(entry: RegimeEntry, value: float, duty: float, currency: str) -> tuple[float, list[QuoteLine], list[str]]:
    for rule in entry.vat:
        if rule.max_value is not None and convert(value, currency, rule.currency) > rule.max_value:
            continue
        if rule.base == "value":
            base, base_text = value, "value"
        elif rule.base == "value_plus_duty":
            base, base_text = value + duty, "value + duty"
        else:
            base, base_text = (value + duty) / (1.0 - rule.rate), "(value + duty) / (1 - rate), tax-inclusive"
        amount = rule.rate * base
        where = {"checkout": "at checkout", "point_of_sale": "at the point of sale", "import": "at import"}[rule.collected]
        text = f"{rule.name} {percent_text(rule.rate)} collected {where} on {base_text}"
        if rule.recoverable:
            text += " (recoverable input VAT for a registered importer)"
        return amount, [QuoteLine("vat", rule.name, amount, rule.rate, rule.note)], [text]
    return 0.0, [], []


def _fees(entry: RegimeEntry, value: float, currency: str) -> tuple[float, list[QuoteLine], list[str]]:
    total, lines, phrases = 0.0, [], []
    for fee in entry.fees:
        if fee.max_value is not None and convert(value, currency, fee.currency) > fee.max_value:
            continue
        # One item/parcel/consignment per quote, so every basis charges once.
        amount = convert(fee.amount, fee.currency, currency)
        total += amount
        lines.append(QuoteLine("fee", fee.name, amount, None, fee.note))
        phrases.append(f"{fee.name} {_limit(fee.amount, fee.currency)} per {fee.per}")
    return total, lines, phrases


def quote_duty(
    dest: str,
    origin: str,
    mode: str,
    value: float,
    currency: str,
    date: dt.date | str,
    category: str | None = None,
    headings: int = 1,
    regime_sets: Sequence[str | RegimeSet] | str | RegimeSet | None = None,
) -> DutyQuote:
    """Duty, taxes and fees on ONE item/parcel under the regime in force on ``date``.

    Parameters
    ----------
    dest : str
        Destination: US, EU, UK (or GB), MX, BR.
    origin : str
        Two-letter ISO code of the country the goods ship from, e.g. CN.
    mode : {'parcel', 'postal', 'bulk'}
        ``parcel``: direct B2C by courier/express, valued at the transaction price;
        ``postal``: direct B2C by post (US rules differ); ``bulk``: B2B import to an
        overseas warehouse at the declared import value, never de minimis.
    value : float
        Customs value of the item/parcel, net of VAT [currency], >= 0.
    currency : str
        Currency of ``value`` and of every amount returned (library amounts are converted
        with the fixed rates of ``data/currency_rates.yaml``).
    date : datetime.date or str
        Day of import (YYYY-MM-DD).
    category : str, optional
        Product category (e.g. ``charging``, ``audio``): selects category-specific layers
        such as the US Section 301 lists. Without it those layers are not applied and the
        rule sentence says so.
    headings : int
        Distinct 6-digit tariff sub-headings in the parcel (EU fixed duty: EUR 3 each).
    regime_sets : sequence of set names or RegimeSet, optional
        The sets to consult; default: the destination's ``default`` sets.

    Returns
    -------
    DutyQuote

    Raises
    ------
    PolicyError
        Unknown destination, mode, currency or set; date outside the sets' coverage; no
        entry for this origin/mode; negative value; headings < 1; value above a regime's
        top band (Brazil USD 3,000).

    Notes
    -----
    Rule precedence inside the entry in force: de minimis exemption (parcel/postal, value
    at or under the threshold) -> postal options -> fixed low-value duty (parcel/postal,
    value strictly under its limit) -> value bands -> the sum of the ad valorem layers
    (+ a specific duty per item).

    US postal items: the shipper elects between an ad valorem and a per-item option
    (120% or USD 100 from 2025-05-02; 54% or USD 100 from 2025-05-14; method A, the IEEPA
    rate x value, or method B, USD 80/160/200 by IEEPA band, from 2025-08-29). The library
    records no election, so the quote applies **the cheaper option for the shipper** and
    says which one in ``rule``, listing both.
    """
    destination = normalise_destination(dest)
    known = destinations()
    if regime_sets is not None and not isinstance(regime_sets, str):
        # Sets of the user's own (read_regime_file) may cover destinations the library does not.
        supplied = [regime_sets] if isinstance(regime_sets, RegimeSet) else regime_sets
        known = sorted(set(known) | {s.destination for s in supplied if isinstance(s, RegimeSet)})
    if destination not in known:
        raise PolicyError(f"unknown destination {dest!r}; the library covers {', '.join(known)}")
    mode = str(mode).strip().lower()
    if mode not in MODES:
        raise PolicyError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    origin_code = str(origin).strip().upper()
    if not _ORIGIN.match(origin_code):
        raise PolicyError(f"origin must be a two-letter ISO country code such as CN, got {origin!r}")
    amount = _as_value(value)
    currency = str(currency).strip().upper()
    if currency not in currency_rates():
        raise PolicyError(
            f"unknown currency {currency!r}; known: {', '.join(sorted(currency_rates()))}"
        )
    day = _as_date(date)
    heading_count = _as_headings(headings)
    category = None if category is None or not str(category).strip() else str(category).strip().lower()

    sets = resolve_sets(destination, regime_sets)
    if not any(s.covers(day) for s in sets):
        raise PolicyError(
            f"date {day} is outside the library's coverage for {destination} ({_coverage_text(sets)})"
        )
    regime_set, entry = _find_entry(sets, destination, mode, origin_code, category, day)

    duty, duty_lines, duty_phrases = _duty(entry, mode, amount, currency, category, heading_count)
    vat, vat_lines, vat_phrases = _vat(entry, amount, duty, currency)
    fees, fee_lines, fee_phrases = _fees(entry, amount, currency)
    subject = f"{destination} {mode}, {origin_code}" + (f", {category}" if category else "")
    rule = f"{subject}, {day}: " + "; ".join(duty_phrases + vat_phrases + fee_phrases)
    rule += f" [{regime_set.name}/{entry.id}, confidence {entry.confidence}]"
    return DutyQuote(
        duty=duty,
        vat=vat,
        fees=fees,
        total=duty + vat + fees,
        currency=currency,
        rule=rule,
        source=entry.source,
        breakdown=duty_lines + vat_lines + fee_lines,
        destination=destination,
        origin=origin_code,
        mode=mode,
        date=day,
        value=amount,
        category=category,
        headings=heading_count,
        regime_set=regime_set.name,
        entry_id=entry.id,
        confidence=entry.confidence,
        note=entry.note,
        checked=entry.checked,
    )
