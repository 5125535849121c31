"""Duty, taxes and fees on one parcel (or bulk consignment) under the regime in force."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Any, Sequence

from ._library import (
    PolicyError,
    _library,
    convert_info,
    destinations,
    known_currencies,
    load_regime_set,
    normalise_destination,
)
from ._schema import (
    MODES,
    POSTAL_ELECTIONS,
    AdValoremLayer,
    PostalOptions,
    RegimeEntry,
    RegimeSet,
    percent_text,
)

__all__ = ["QuoteLine", "DutyQuote", "quote_duty", "resolve_sets", "exempt_at_or_under"]

_ORIGIN = re.compile(r"^[A-Z]{2}$")


def exempt_at_or_under(value: float, threshold: float) -> bool:
    """The engine's threshold rule (``cbecsim.kernels.rules.low_value_exempt``), from Python.

    Imported on first use so that ``import cbecsim.policies`` does not load numba.
    """
    from ..kernels.rules import low_value_exempt

    return bool(low_value_exempt(float(value), float(threshold)))


@dataclasses.dataclass(frozen=True)
class QuoteLine:
    """One line of a quote's breakdown.

    Attributes
    ----------
    kind : str
        ``duty`` (a customs duty layer or option), ``exemption`` (de minimis, amount 0),
        ``vat`` (VAT, ICMS...), ``fee`` (handling, entry or broker fee) or ``not_applied``
        (a layer of the entry that does not apply to this category; amount 0).
    basis : str
        Legal basis or name, e.g. ``Section 301 List 3``, ``EU fixed duty``, ``VAT``.
    amount : float
        [quote currency], for the whole parcel.
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
    """Duty, taxes and fees on one parcel of ``items`` units, all in ``currency``.

    Attributes
    ----------
    duty : float
        Customs duty on the parcel [currency].
    vat : float
        VAT / consumption tax (ICMS in Brazil) on the parcel [currency].
    fees : float
        Handling, entry and broker fees on the parcel [currency].
    total : float
        duty + vat + fees [currency].
    duty_per_unit, total_per_unit : float
        ``duty`` and ``total`` spread over the parcel's ``items`` units [currency/unit].
    currency : str
        The currency the value was given in; library amounts in other currencies are
        converted at the monthly average rate of ``date`` (``data/fx_monthly.yaml``).
    rule : str
        A sentence saying which rule applied.
    source : str
        The secondary sources the entry was read in.
    primary_source : str
        The legal text (EO / FR document, CSMS, OJ, DOF, DOU reference), or why none.
    breakdown : list of QuoteLine
    destination, origin, mode, date, value, category, headings, items, ioss
        The question, normalised (``value`` is the parcel's customs value).
    postal_method : str or None
        The postal duty method applied (``ad_valorem`` or ``specific``) when postal
        options were in force, else None.
    regime_set, entry_id : str
        The regime entry that applied.
    confidence : str
        Confidence grade of the entry (H, M, L or a range).
    note : str
        The entry's note (assumptions, what is not modelled).
    checked : datetime.date
        When the entry's sources were read.
    announced : datetime.date or None
        When the rule was announced or published, where sourced.
    fx_months : list of str
        Months of the exchange rates used (``YYYY-MM``; ``(latest)`` marks the last
        published month standing in for a later day); empty when no conversion happened.
    """

    duty: float
    vat: float
    fees: float
    total: float
    duty_per_unit: float
    total_per_unit: float
    currency: str
    rule: str
    source: str
    primary_source: str
    breakdown: list[QuoteLine]
    destination: str
    origin: str
    mode: str
    date: dt.date
    value: float
    category: str | None
    headings: int
    items: int
    ioss: bool
    postal_method: str | None
    regime_set: str
    entry_id: str
    confidence: str
    note: str
    checked: dt.date
    announced: dt.date | None
    fx_months: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (dates as ISO strings)."""
        data = dataclasses.asdict(self)
        for key in ("date", "checked", "announced"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
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


def _as_count(value: Any, name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise PolicyError(f"{name} must be a whole number >= 1, got {value!r}")
    if value < 1:
        raise PolicyError(f"{name} must be >= 1 ({what}), got {value}")
    return value


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


class _Context:
    """What every step of one quote needs: the day, the currency, conversions made."""

    def __init__(self, day: dt.date, currency: str):
        self.day = day
        self.currency = currency
        self.months: list[str] = []

    def convert(self, amount: float, from_currency: str, to_currency: str | None = None) -> float:
        """``amount`` [from_currency] in ``to_currency`` (default: the quote's) at ``day``'s rate."""
        result = convert_info(amount, from_currency, to_currency or self.currency, self.day)
        for month in result.months:
            if month not in self.months:
                self.months.append(month)
        return result.amount


def _layers_for(entry: RegimeEntry, category: str | None) -> tuple[list[AdValoremLayer], list[AdValoremLayer]]:
    """(layers that apply to the category, category-scoped layers that do not)."""
    applied: list[AdValoremLayer] = []
    skipped: list[AdValoremLayer] = []
    for layer in entry.ad_valorem:
        (applied if layer.applies_to(category) else skipped).append(layer)
    return applied, skipped


def _layer_rate(layers: Sequence[AdValoremLayer], prefix: str | None = None) -> float:
    """Sum of the layers' rates (those whose basis starts with ``prefix``, if given).

    Rates are given to a few decimals: rounding the sum removes float noise such as
    0.2 + 0.1 = 0.30000000000000004 without changing any real figure.
    """
    return round(sum(layer.rate for layer in layers if prefix is None or layer.basis.startswith(prefix)), 12)


def _postal_duty(
    options: PostalOptions, entry: RegimeEntry, value: float, ctx: _Context, category: str | None,
    election: str | None,
) -> tuple[float, list[QuoteLine], str, str]:
    """The postal duty under the carrier's election: (amount, lines, rule phrase, method)."""
    applied, _ = _layers_for(entry, category)
    currency = ctx.currency
    evaluated = {}
    for option in options.options:
        # PostalOption._fields_for_method guarantees the fields each method reads.
        if option.method == "ad_valorem":
            assert option.rate is not None
            rate = float(option.rate)
            amount, text = rate * value, f"{percent_text(rate)} of value"
        elif option.method == "ad_valorem_from_layers":
            rate = _layer_rate(applied, option.layers_prefix)
            amount, text = rate * value, f"{percent_text(rate)} of value (the {option.layers_prefix} rate)"
        elif option.method == "per_package":
            assert option.amount is not None and option.currency is not None
            amount = ctx.convert(option.amount, option.currency)
            rate, text = None, f"{_limit(option.amount, option.currency)} per postal package"
        else:  # per_package_by_rate_band
            assert option.bands is not None and option.currency is not None
            band_rate = _layer_rate(applied, option.layers_prefix)
            for band in option.bands:
                below = band.max_rate is None or band_rate < band.max_rate
                if below or (band.inclusive and band_rate == band.max_rate):
                    break
            amount = ctx.convert(band.amount, option.currency)
            rate = None
            text = (
                f"{_limit(band.amount, option.currency)} per postal package "
                f"({option.layers_prefix} rate {percent_text(band_rate)})"
            )
        evaluated[option.kind] = (amount, option, rate, text)
    asked = election or options.default_election
    basis_of_choice = "asked for" if election else "the default election"
    if asked == "cheapest_per_parcel":
        # min() keeps the first of equal amounts: ties go to the option listed first.
        method = min(evaluated, key=lambda kind: evaluated[kind][0])
        why = "the cheaper method for this parcel (a bound: a carrier elects one method for all its parcels)"
    elif asked in evaluated:
        method = asked
        why = f"the {asked.replace('_', ' ')} method, {basis_of_choice}"
        if not election and options.election_note.startswith("ASSUMPTION"):
            why += " (an assumption: no source names the carriers' election)"
    else:
        method = next(iter(evaluated))
        why = f"the {method.replace('_', ' ')} method: the {asked} method is not offered on {ctx.day}"
    amount, option, rate, text = evaluated[method]
    others = "; ".join(f"{o.label}: {t} = {_money(a, currency)}" for a, o, _, t in evaluated.values())
    rule = f"postal duty {text} ({option.label}; {why}; of {others}; in lieu of other duties)"
    line = QuoteLine("duty", f"postal duty, {option.label}", amount, rate, option.note or options.note)
    return amount, [line], rule, method


def _duty(
    entry: RegimeEntry,
    mode: str,
    value: float,
    ctx: _Context,
    category: str | None,
    headings: int,
    items: int,
    ioss: bool,
    postal_method: str | None,
) -> tuple[float, list[QuoteLine], list[str], bool, str | None]:
    """Customs duty on the parcel [currency], its breakdown, rule phrases, whether the
    parcel is dutiable (not de minimis exempt) and the postal method applied."""
    phrases: list[str] = []
    lines: list[QuoteLine] = []
    direct = mode != "bulk"
    dm = entry.de_minimis
    if direct and dm is not None and dm.applies:
        if exempt_at_or_under(ctx.convert(value, ctx.currency, dm.currency), dm.threshold):
            lines.append(QuoteLine("exemption", "de minimis", 0.0, None, dm.note))
            return (
                0.0,
                lines,
                [f"de minimis: value at or under {_limit(dm.threshold, dm.currency)}, no duty"],
                False,
                None,
            )
        phrases.append(f"value above the {_limit(dm.threshold, dm.currency)} de minimis threshold")
    elif direct and dm is not None:
        phrases.append(
            f"de minimis ({_limit(dm.threshold, dm.currency)}) does not apply" + (f": {dm.note}" if dm.note else "")
        )
    elif not direct:
        phrases.append("bulk import, always dutiable (never de minimis)")

    if mode == "postal" and entry.postal_options is not None:
        amount, postal_lines, rule, method = _postal_duty(
            entry.postal_options, entry, value, ctx, category, postal_method
        )
        return amount, lines + postal_lines, phrases + [rule], True, method

    low = entry.low_value_duty
    if direct and low is not None:
        in_scope = ioss or not low.ioss_only
        low_value = ctx.convert(value, ctx.currency, low.currency)
        under = exempt_at_or_under(low_value, low.limit) if low.inclusive else low_value < low.limit
        limit_text = f"{'of' if low.inclusive else 'under'} {_limit(low.limit, low.currency)}" + (
            " or less" if low.inclusive else ""
        )
        if under and in_scope:
            per_heading = ctx.convert(low.amount_per_heading, low.currency)
            amount = per_heading * headings
            lines.append(QuoteLine("duty", "fixed duty per tariff sub-heading", amount, None, low.note))
            phrases.append(
                f"fixed duty {_limit(low.amount_per_heading, low.currency)} x {headings} tariff "
                f"sub-heading{'s' if headings != 1 else ''} on a parcel {limit_text}"
                + ("" if low.ioss_only else ", whatever the VAT scheme")
            )
            return amount, lines, phrases, True, None
        if under:
            phrases.append("no fixed duty: it is for IOSS sellers only; normal tariff")
        else:
            phrases.append(
                f"value not {'at or under' if low.inclusive else 'under'} "
                f"{_limit(low.limit, low.currency)}: no fixed duty, normal tariff"
            )

    if entry.value_bands is not None:
        bands = entry.value_bands
        value_in_band_currency = ctx.convert(value, ctx.currency, bands.currency)
        lower = 0.0
        for band in bands.bands:
            if exempt_at_or_under(value_in_band_currency, band.max_value):
                break
            lower = band.max_value
        else:
            raise PolicyError(
                f"value {_money(value, ctx.currency)} is above {_limit(bands.bands[-1].max_value, bands.currency)}, "
                f"the top of this regime ({entry.id}); the library has no rule for it"
            )
        deduction = ctx.convert(band.deduction, bands.currency)
        amount = max(band.rate * value - deduction, 0.0)
        band_text = (
            f"band over {_limit(lower, bands.currency)} up to {_limit(band.max_value, bands.currency)}"
            if lower
            else f"band up to {_limit(band.max_value, bands.currency)}"
        )
        text = f"{percent_text(band.rate)} of value" + (
            f" minus {_limit(band.deduction, bands.currency)}" if band.deduction else ""
        )
        lines.append(QuoteLine("duty", "import tax by value band", amount, band.rate, f"{band_text}; {bands.note}"))
        phrases.append(f"{text} ({band_text})")
        return amount, lines, phrases, True, None

    applied, skipped = _layers_for(entry, category)
    total_rate = _layer_rate(applied)
    amount = total_rate * value
    for layer in applied:
        lines.append(QuoteLine("duty", layer.basis, layer.rate * value, layer.rate, layer.note))
    for layer in skipped:
        scope = (
            f"applies to {', '.join(layer.categories)} only"
            if layer.categories
            else f"not for {', '.join(layer.categories_except or [])}"
        )
        lines.append(QuoteLine("not_applied", layer.basis, 0.0, layer.rate, scope))
    listed = (
        " + ".join(
            f"{layer.basis} {percent_text(layer.rate)}" + (" (assumed)" if layer.assumed else "") for layer in applied
        )
        or "no layers"
    )
    phrases.append(f"{percent_text(total_rate)} of value ({listed})")
    scoped = [layer for layer in skipped if layer.categories and layer.rate > 0]
    if scoped and not any(layer.categories for layer in applied):
        text = "; ".join(f"{layer.basis} for {', '.join(layer.categories or [])}" for layer in scoped)
        if category is None:
            phrases.append(f"no category given, so category-specific layers are not applied ({text})")
        else:
            phrases.append(f"category {category!r} is not mapped to: {text}")
    specific = entry.specific_per_item
    if specific is not None and specific.amount > 0:
        extra = ctx.convert(specific.amount, specific.currency) * items
        amount += extra
        lines.append(QuoteLine("duty", "specific duty per item", extra))
        phrases.append(f"plus {_limit(specific.amount, specific.currency)} per item x {items}")
    return amount, lines, phrases, True, None


def _vat(
    entry: RegimeEntry, value: float, duty: float, ctx: _Context, ioss: bool
) -> tuple[float, list[QuoteLine], list[str]]:
    for rule in entry.vat:
        if rule.ioss is not None and rule.ioss != ioss:
            continue
        if rule.max_value is not None and not exempt_at_or_under(
            ctx.convert(value, ctx.currency, rule.currency), rule.max_value
        ):
            continue
        if rule.base == "value":
            base, base_text = value, "value"
        elif rule.base == "value_plus_duty":
            base, base_text = value + duty, "value + duty"
        else:
            base, base_text = (value + duty) / (1.0 - rule.rate), "(value + duty) / (1 - rate), tax-inclusive"
        amount = rule.rate * base
        where = {"checkout": "at checkout", "point_of_sale": "at the point of sale", "import": "at import"}[
            rule.collected
        ]
        text = f"{rule.name} {percent_text(rule.rate)} collected {where} on {base_text}"
        if rule.recoverable:
            text += " (recoverable input VAT for a registered importer)"
        return amount, [QuoteLine("vat", rule.name, amount, rule.rate, rule.note)], [text]
    return 0.0, [], []


def _fees(
    regime_set: RegimeSet,
    entry: RegimeEntry,
    mode: str,
    origin: str,
    value: float,
    items: int,
    dutiable: bool,
    ctx: _Context,
) -> tuple[float, list[QuoteLine], list[str]]:
    total, lines, phrases = 0.0, [], []
    for fee in entry.fees:
        if fee.max_value is not None and not exempt_at_or_under(
            ctx.convert(value, ctx.currency, fee.currency), fee.max_value
        ):
            continue
        count = items if fee.per == "item" else 1
        amount = ctx.convert(fee.amount, fee.currency) * count
        total += amount
        lines.append(QuoteLine("fee", fee.name, amount, None, fee.note))
        phrases.append(
            f"{fee.name} {_limit(fee.amount, fee.currency)} per {fee.per}" + (f" x {count}" if count > 1 else "")
        )
    if dutiable:
        for parcel_fee in regime_set.parcel_fees:
            if not (parcel_fee.in_force(ctx.day) and parcel_fee.applies_to(origin, mode)):
                continue
            for label, money in (
                ("entry fee", parcel_fee.entry_fee_per_parcel),
                ("broker fee", parcel_fee.broker_fee_per_parcel),
            ):
                if money is None:
                    continue
                amount = ctx.convert(money.amount, money.currency)
                total += amount
                lines.append(QuoteLine("fee", f"{label} ({parcel_fee.id})", amount, None, parcel_fee.note))
                phrases.append(f"{label} {_limit(money.amount, money.currency)} per dutiable parcel ({parcel_fee.id})")
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
    items: int | None = None,
    ioss: bool = True,
    postal_method: str | None = None,
) -> DutyQuote:
    """Duty, taxes and fees on ONE parcel (or bulk consignment) under the regime in force.

    Parameters
    ----------
    dest : str
        Destination: US, EU, UK (or GB), MX, BR.
    origin : str
        Two-letter ISO code of the country the goods come from, e.g. CN (XT: goods
        CBP determines transshipped, in the US library).
    mode : {'parcel', 'postal', 'bulk'}
        ``parcel``: direct B2C by courier/express, valued at the transaction price;
        ``postal``: direct B2C by post (US rules differ); ``bulk``: B2B import to an
        overseas warehouse at the declared import value, never de minimis.
    value : float
        Customs value of the whole parcel (all its items), net of VAT [currency], >= 0.
    currency : str
        Currency of ``value`` and of every amount returned (library amounts are
        converted at the monthly average rate of ``date``, ``data/fx_monthly.yaml``).
    date : datetime.date or str
        Day of import (YYYY-MM-DD).
    category : str, optional
        Product category (``charging``, ``audio``, ``batteries``): selects the MFN line
        and category-specific layers such as the US Section 301 lists. Without it those
        layers are not applied and the rule sentence says so.
    headings : int
        Distinct tariff sub-headings in the parcel (EU flat duty: EUR 3 each), 1..items.
    regime_sets : sequence of set names or RegimeSet, optional
        The sets to consult; default: the destination's ``default`` sets.
    items : int, optional
        Units in the parcel (>= 1; default: ``headings``, one unit per sub-heading);
        per-unit figures are the parcel's spread over them.
    ioss : bool
        Whether the seller is registered in the EU's Import One-Stop Shop (selects the
        VAT collection and, where a regime limits its flat duty to IOSS sellers, the duty).
    postal_method : {'ad_valorem', 'specific', 'cheapest_per_parcel'}, optional
        The US postal carrier's duty method; default: the entry's sourced or stated
        default election (``ad_valorem``). ``cheapest_per_parcel`` is a bound, not an
        election a carrier can make.

    Returns
    -------
    DutyQuote

    Raises
    ------
    PolicyError
        Unknown destination, mode, currency, postal method or set; date outside the
        sets' coverage or before the FX series; no entry for this origin/mode; negative
        value; items or headings < 1, or headings > items; value above a regime's top
        band (Brazil USD 3,000, Mexico USD 2,500).

    Notes
    -----
    Rule precedence inside the entry in force: de minimis exemption (parcel/postal, value
    at or under the threshold) -> postal options -> flat low-value duty (parcel/postal,
    value at or under its limit, or strictly under for a ``value_below`` limit) -> value
    bands -> the sum of the ad valorem layers (+ a specific duty per item). Every "at or
    under" test is :func:`cbecsim.kernels.rules.low_value_exempt`, the engine's rule.
    Entry and broker fees per parcel apply to parcels that are not de minimis exempt.
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
    if currency not in known_currencies():
        raise PolicyError(f"unknown currency {currency!r}; known: {', '.join(known_currencies())}")
    day = _as_date(date)
    heading_count = _as_count(headings, "headings", "distinct tariff sub-headings in the parcel")
    item_count = heading_count if items is None else _as_count(items, "items", "units in the parcel")
    if heading_count > item_count:
        raise PolicyError(
            f"headings ({heading_count}) cannot exceed items ({item_count}): each sub-heading holds at least one unit"
        )
    if not isinstance(ioss, bool):
        raise PolicyError(f"ioss must be true or false, got {ioss!r}")
    if postal_method is not None:
        postal_method = str(postal_method).strip().lower()
        if postal_method not in POSTAL_ELECTIONS:
            raise PolicyError(f"unknown postal method {postal_method!r}; expected one of {', '.join(POSTAL_ELECTIONS)}")
    category = None if category is None or not str(category).strip() else str(category).strip().lower()

    sets = resolve_sets(destination, regime_sets)
    if not any(s.covers(day) for s in sets):
        ends = [s.coverage_note for s in sets if s.coverage_note and s.end is not None and day >= s.end]
        raise PolicyError(
            f"date {day} is outside the library's coverage for {destination} ({_coverage_text(sets)})"
            + (f". {ends[-1]}" if ends else "")
        )
    regime_set, entry = _find_entry(sets, destination, mode, origin_code, category, day)

    ctx = _Context(day, currency)
    duty, duty_lines, duty_phrases, dutiable, method = _duty(
        entry, mode, amount, ctx, category, heading_count, item_count, ioss, postal_method
    )
    vat, vat_lines, vat_phrases = _vat(entry, amount, duty, ctx, ioss)
    fees, fee_lines, fee_phrases = _fees(regime_set, entry, mode, origin_code, amount, item_count, dutiable, ctx)
    subject = f"{destination} {mode}, {origin_code}" + (f", {category}" if category else "")
    if item_count > 1:
        subject += f", {item_count} items"
    rule = f"{subject}, {day}: " + "; ".join(duty_phrases + vat_phrases + fee_phrases)
    if ctx.months:
        rule += f"; FX: monthly average {', '.join(ctx.months)}"
    rule += f" [{regime_set.name}/{entry.id}, confidence {entry.confidence}]"
    total = duty + vat + fees
    return DutyQuote(
        duty=duty,
        vat=vat,
        fees=fees,
        total=total,
        duty_per_unit=duty / item_count,
        total_per_unit=total / item_count,
        currency=currency,
        rule=rule,
        source=entry.source,
        primary_source=entry.primary_source or "not given",
        breakdown=duty_lines + vat_lines + fee_lines,
        destination=destination,
        origin=origin_code,
        mode=mode,
        date=day,
        value=amount,
        category=category,
        headings=heading_count,
        items=item_count,
        ioss=ioss,
        postal_method=method,
        regime_set=regime_set.name,
        entry_id=entry.id,
        confidence=entry.confidence,
        note=entry.note,
        checked=entry.checked,
        announced=entry.announced,
        fx_months=list(ctx.months),
    )
