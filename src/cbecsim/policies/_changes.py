"""Regime sets -> the engine's dated duty changes (``Scenario.duty_schedule``).

The engine keeps, per market (region x category), origin and fulfilment kind (``parcel``,
``bulk``, ``postal``), a regime of the :class:`cbecsim.config.DutyFields` and applies dated
changes in date order (list order within a date); a field a change does not set keeps its
value. The library's entries have end dates and fallbacks (``origins: all``), so the
conversion re-states regimes at every boundary:

* at each date on which an entry starts or ends, every entry in force of the kinds
  touched that day is emitted in full, least specific first (``origins: all`` before
  named origins; the categories-wide change before per-category ones), so that a fallback
  never overwrites a more specific entry;
* ``modes`` map to kinds one to one (``parcel``, ``bulk``, ``postal``); ``kinds`` limits
  what is emitted (an engine without a postal kind passes ``("parcel", "bulk")`` and the
  postal rules are reported as not emitted);
* ad valorem layers are summed per category group: the change without ``categories``
  carries the layers that apply to categories no layer names; each named category gets
  its own change after it;
* de minimis (parcel and postal): ``de_minimis`` = ``applies``, ``de_minimis_threshold`` =
  the threshold; bulk is emitted with ``de_minimis: false``. Every threshold is "at or
  under" (:func:`cbecsim.kernels.rules.low_value_exempt`);
* the EU flat duty (``low_value_duty``): ``de_minimis: true``, threshold = its limit,
  ``low_value_duty_per_heading`` = the amount per distinct tariff sub-heading,
  ``low_value_duty_ioss_only``; and, for engines that still charge it per unit,
  ``low_value_duty_per_item`` = the same amount (one heading per unit) -- an engine that
  knows ``low_value_duty_per_heading`` uses it instead;
* postal options (kind ``postal``): ``ad_valorem_rate`` = the ad valorem method's rate
  (US method A: the origin's IEEPA rate; 120% / 54% for CN/HK in May-August 2025),
  ``postal_specific_per_package`` = the specific method's amount per package (method B's
  band resolved from the entry's IEEPA rate) and ``postal_specific_available`` whether a
  specific method is offered; without options, postal items follow the parcel fields;
* ``specific_per_item`` -> ``specific_duty_per_item``; ``duty_drawback_rate`` -> the
  same field (0 where the library has no sourced figure);
* the set's ``parcel_fees`` -> changes of ``entry_fee_per_parcel`` / ``broker_fee_per_parcel``
  only, for their kinds and origins, at their start (and 0 at their end); the engine
  charges them on parcels that are not de minimis exempt;
* ``announced`` = the entry's announcement date (lets strategies front-load stock);
* ``currency`` is that of the entry's money fields (the first found; others converted at
  the change date's monthly rate), or USD when it has none.

Reported as unsupported (not emitted): VAT/ICMS (a market setting, ``markets[].vat_rate``),
handling fees (``fulfilment_modes[].handling_fee_per_unit``), value bands beyond the
first (Brazil, Mexico's T-MEC bands), kinds the caller leaves out, and the end of the
sets' coverage (the engine keeps the last regime in force after it). The ends of
coverage are also returned as :class:`CoverageGap` records by :func:`coverage_gaps`, so
a scenario can drop the ones its own ``duty_schedule`` handles.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import NamedTuple, Sequence

from ._library import PolicyError, convert, load_regime_set, normalise_destination
from ._schema import PostalOptions, RegimeEntry, RegimeSet, percent_text

__all__ = ["DutyChanges", "CoverageGap", "KINDS", "to_duty_changes", "coverage_gaps"]

#: Fulfilment kinds the library can emit, in emission order.
KINDS = ("parcel", "bulk", "postal")


class DutyChanges(NamedTuple):
    """What :func:`to_duty_changes` returns; unpacks as ``changes, unsupported``.

    Attributes
    ----------
    changes : list of dict
        Engine duty changes (the ``duty_schedule`` format of :class:`cbecsim.config.DutyChange`).
    unsupported : list of str
        Human-readable notes on what the engine format cannot express and was not emitted
        (or was emitted approximately), and on the end of the sets' coverage.
    """

    changes: list[dict]
    unsupported: list[str]


@dataclasses.dataclass(frozen=True)
class CoverageGap:
    """The end of the library's coverage for some cells of the engine's regime table.

    Attributes
    ----------
    region : str
        Market region, as passed to :func:`to_duty_changes`.
    kind : str
        ``parcel``, ``bulk`` or ``postal``.
    origins : tuple of str or None
        The origins whose regime ends; None for the ``origins: all`` fallback.
    date : datetime.date
        First day with no regime.
    note : str
        The sentence :func:`to_duty_changes` puts in ``unsupported`` for this gap.
    """

    region: str
    kind: str
    origins: tuple[str, ...] | None
    date: dt.date
    note: str


def _kinds(entry_or_fee, kinds: Sequence[str]) -> list[str]:
    return [kind for kind in kinds if kind in entry_or_fee.modes]


def _rank(entry: RegimeEntry) -> tuple[int, int]:
    return int(entry.origins != "all"), int(entry.categories != "all")


def _covers(fallback: RegimeEntry, ended: RegimeEntry, kind: str) -> bool:
    """Whether ``fallback`` takes over (some of) the cells ``ended`` held."""
    if kind not in fallback.modes:
        return False
    origins_ok = fallback.origins == "all" or (
        ended.origins != "all" and bool(set(fallback.origins) & set(ended.origins))
    )
    categories_ok = fallback.categories == "all" or (
        ended.categories != "all" and bool(set(fallback.categories) & set(ended.categories))
    )
    return origins_ok and categories_ok


def _postal_fields(entry: RegimeEntry, options: PostalOptions, day: dt.date, currency: str) -> dict:
    """``ad_valorem_rate`` and the specific-method fields of an entry with postal options
    (``options``: the entry's ``postal_options``)."""
    unscoped = [layer for layer in entry.ad_valorem if layer.applies_to(None)]
    fields = {"postal_specific_available": False, "postal_specific_per_package": 0.0}
    ad_valorem = options.option("ad_valorem")
    if ad_valorem is None:
        fields["ad_valorem_rate"] = 0.0
    elif ad_valorem.method == "ad_valorem":
        assert ad_valorem.rate is not None  # PostalOption._fields_for_method
        fields["ad_valorem_rate"] = float(ad_valorem.rate)
    else:
        ad_valorem_prefix = ad_valorem.layers_prefix
        assert ad_valorem_prefix is not None  # PostalOption._fields_for_method
        fields["ad_valorem_rate"] = round(
            sum(layer.rate for layer in unscoped if layer.basis.startswith(ad_valorem_prefix)), 12)
    specific = options.option("specific")
    if specific is not None:
        # PostalOption._fields_for_method: per_package has amount and currency,
        # per_package_by_rate_band has layers_prefix, bands and currency.
        assert specific.currency is not None
        if specific.method == "per_package":
            assert specific.amount is not None
            amount = specific.amount
        else:
            specific_prefix, bands = specific.layers_prefix, specific.bands
            assert specific_prefix is not None and bands is not None
            rate = round(sum(layer.rate for layer in unscoped if layer.basis.startswith(specific_prefix)), 12)
            band = next(b for b in bands if b.max_rate is None or rate < b.max_rate
                        or (b.inclusive and rate == b.max_rate))
            amount = band.amount
        fields["postal_specific_available"] = True
        fields["postal_specific_per_package"] = convert(amount, specific.currency, currency, day)
    return fields


def _entry_currency(entry: RegimeEntry) -> str:
    for money in (entry.de_minimis, entry.low_value_duty, entry.specific_per_item):
        if money is not None:
            return money.currency
    if entry.postal_options is not None:
        for option in entry.postal_options.options:
            if option.currency:
                return option.currency
    return "USD"


def _money_fields(entry: RegimeEntry, kind: str, day: dt.date) -> tuple[str, dict]:
    """The regime fields of ``entry`` for ``kind`` (all but ``ad_valorem_rate`` for
    parcel/bulk) and their currency."""
    currency = _entry_currency(entry)
    direct = kind in ("parcel", "postal")
    fields: dict = {
        "de_minimis": False,
        "de_minimis_threshold": 0.0,
        "low_value_duty_per_item": 0.0,
        "low_value_duty_per_heading": 0.0,
        "low_value_duty_ioss_only": False,
        "specific_duty_per_item": 0.0,
        "duty_drawback_rate": float(entry.duty_drawback_rate or 0.0),
    }
    low = entry.low_value_duty
    if direct and low is not None:
        amount = convert(low.amount_per_heading, low.currency, currency, day)
        fields.update(
            de_minimis=True,
            de_minimis_threshold=convert(low.limit, low.currency, currency, day),
            low_value_duty_per_item=amount,
            low_value_duty_per_heading=amount,
            low_value_duty_ioss_only=low.ioss_only,
        )
    elif direct and entry.de_minimis is not None:
        fields["de_minimis"] = entry.de_minimis.applies
        fields["de_minimis_threshold"] = convert(entry.de_minimis.threshold, entry.de_minimis.currency, currency, day)
    if entry.specific_per_item is not None:
        fields["specific_duty_per_item"] = convert(
            entry.specific_per_item.amount, entry.specific_per_item.currency, currency, day)
    if kind == "postal" and entry.postal_options is not None:
        fields.update(_postal_fields(entry, entry.postal_options, day, currency))
    elif kind == "postal":
        fields.update(postal_specific_available=False, postal_specific_per_package=0.0)
    return currency, fields


def _category_groups(entry: RegimeEntry) -> list[tuple[list[str] | None, float]]:
    """(categories or None for the entry's own scope, summed ad valorem rate) pairs."""
    own = None if entry.categories == "all" else list(entry.categories)
    if entry.value_bands is not None:
        # Only the first band is expressible as a plain rate (reported as unsupported).
        return [(own, entry.value_bands.bands[0].rate)]
    base = round(sum(layer.rate for layer in entry.ad_valorem if layer.applies_to(None)), 12)
    groups: list[tuple[list[str] | None, float]] = [(own, base)]
    named: list[str] = []
    for layer in entry.ad_valorem:
        for category in (layer.categories or []) + (layer.categories_except or []):
            if category not in named and (own is None or category in own):
                named.append(category)
    for category in named:
        rate = round(sum(layer.rate for layer in entry.ad_valorem if layer.applies_to(category)), 12)
        groups.append(([category], rate))
    return groups


def _change(region: str, day: dt.date, currency: str, origins, categories, kinds: list[str], fields: dict,
            source: str, announced: dt.date | None) -> dict:
    change: dict = {"region": region, "date": day.isoformat(), "currency": currency}
    if origins != "all" and origins is not None:
        change["origins"] = list(origins)
    if categories is not None:
        change["categories"] = list(categories)
    change["kinds"] = kinds
    change["set"] = fields
    change["source"] = source
    if announced is not None:
        change["announced"] = announced.isoformat()
    return change


def _entry_source(regime_set: RegimeSet, entry) -> str:
    primary = f"{entry.primary_source}; " if entry.primary_source else ""
    return f"{regime_set.name}/{entry.id}: {primary}{entry.source} (confidence {entry.confidence})"


def _emit(region: str, day: dt.date, regime_set: RegimeSet, entry: RegimeEntry, kinds: list[str]) -> list[dict]:
    changes = []
    source = _entry_source(regime_set, entry)
    postal_kinds = [k for k in kinds if k == "postal" and entry.postal_options is not None]
    layer_kinds = [k for k in kinds if k not in postal_kinds]
    for categories, rate in _category_groups(entry) if layer_kinds else []:
        by_kind: list[tuple[str, str, dict]] = []
        for kind in layer_kinds:
            currency, fields = _money_fields(entry, kind, day)
            by_kind.append((kind, currency, {"ad_valorem_rate": rate, **fields}))
        # One change for several kinds when they get the same regime, else one per kind.
        grouped: list[tuple[list[str], str, dict]]
        if len(by_kind) > 1 and all(item[1:] == by_kind[0][1:] for item in by_kind):
            grouped = [([k for k, _, _ in by_kind], by_kind[0][1], by_kind[0][2])]
        else:
            grouped = [([k], c, f) for k, c, f in by_kind]
        for kind_list, currency, fields in grouped:
            changes.append(_change(region, day, currency, entry.origins, categories, kind_list, fields,
                                   source, entry.announced))
    for kind in postal_kinds:
        # The postal duty does not depend on the category (it is paid in lieu of the
        # category layers), so one change covers every category.
        currency, fields = _money_fields(entry, kind, day)
        own = None if entry.categories == "all" else list(entry.categories)
        changes.append(_change(region, day, currency, entry.origins, own, [kind], fields, source, entry.announced))
    return changes


def _fee_changes(region: str, regime_set: RegimeSet, kinds: Sequence[str]) -> list[tuple[dt.date, int, dict]]:
    """Changes of the per-parcel fee fields, as (date, order, change)."""
    out = []
    set_end = regime_set.end
    for fee in regime_set.parcel_fees:
        fee_kinds = _kinds(fee, kinds)
        if not fee_kinds:
            continue
        for field in ("entry_fee_per_parcel", "broker_fee_per_parcel"):
            money = getattr(fee, field)
            if money is None:
                continue
            start = max(fee.start, regime_set.start)
            source = _entry_source(regime_set, fee)
            out.append((start, 1, _change(region, start, money.currency, fee.origins, None, fee_kinds,
                                          {field: float(money.amount)}, source, fee.announced)))
            end = fee.end if set_end is None or (fee.end is not None and fee.end < set_end) else None
            if end is not None and not any(
                getattr(other, field) is not None and other.start == end and other.origins == fee.origins
                for other in regime_set.parcel_fees
            ):
                out.append((end, 0, _change(region, end, money.currency, fee.origins, None, fee_kinds,
                                            {field: 0.0}, f"{source}: ends", None)))
    return out


def _feature_notes(regime_set: RegimeSet, entry: RegimeEntry, kinds: Sequence[str]) -> list[str]:
    """What of ``entry`` the engine format cannot carry."""
    notes = []
    where = f"{regime_set.name}/{entry.id}"
    for rule in entry.vat:
        limit = f" up to {rule.currency} {rule.max_value:g}" if rule.max_value is not None else ""
        notes.append(f"{regime_set.name}: {rule.name} {percent_text(rule.rate)} ({rule.collected}{limit}) not emitted: "
                     f"the engine's VAT is markets[].vat_rate")
    for fee in entry.fees:
        limit = f" up to {fee.currency} {fee.max_value:g}" if fee.max_value is not None else ""
        notes.append(f"{regime_set.name}: {fee.name} {fee.currency} {fee.amount:g} per {fee.per}{limit} not "
                     f"emitted: add it to fulfilment_modes[].handling_fee_per_unit [USD]")
    if entry.value_bands is not None and len(entry.value_bands.bands) > 1:
        bands = entry.value_bands
        first = bands.bands[0]
        rest = "; ".join(
            f"{percent_text(b.rate)}" + (f" minus {bands.currency} {b.deduction:g}" if b.deduction else "")
            + f" up to {bands.currency} {b.max_value:g}" for b in bands.bands[1:]
        )
        notes.append(f"{where}: value bands emitted as the first band's {percent_text(first.rate)} for every value "
                     f"(exact up to {bands.currency} {first.max_value:g}); not expressible: {rest}")
    return notes


def _region_entries(sets: list[RegimeSet], destination: str) -> list[tuple[RegimeSet, RegimeEntry]]:
    region_sets = [s for s in sets if s.destination == destination]
    entries = [(s, e) for s in region_sets for e in s.entries]
    for i, (first_set, first) in enumerate(entries):
        for second_set, second in entries[i + 1:]:
            if first_set is not second_set and first.overlaps(second):
                raise PolicyError(
                    f"sets {first_set.name} and {second_set.name} overlap: entries {first.id} and "
                    f"{second.id} apply to the same origin, mode and category on the same days"
                )
    return entries


def _gaps(region: str, entries, kinds: Sequence[str], until: dt.date | None) -> list[CoverageGap]:
    gaps = []
    boundaries = sorted({e.end for _, e in entries if e.end is not None})
    for day in boundaries:
        if until is not None and day > until:
            continue  # the end of coverage after the horizon does not matter
        ending = [(s, e) for s, e in entries if e.end == day]
        in_force = [e for _, e in entries if e.in_force(day)]
        for regime_set, ended in ending:
            for kind in _kinds(ended, kinds):
                if any(_covers(e, ended, kind) for e in in_force):
                    continue
                origins = None if ended.origins == "all" else tuple(ended.origins)
                label = "all origins" if origins is None else "/".join(origins)
                note = (f"{region}: no regime for {kind} from {label} on or after {day} (end of the "
                        f"sets' coverage); the engine keeps the last regime in force after that date")
                if regime_set.coverage_note and regime_set.end == day:
                    note += f". {regime_set.name}: {regime_set.coverage_note}"
                gaps.append(CoverageGap(region, kind, origins, day, note))
    # One gap per (kind, origins, date): several entries can end together.
    unique = {(g.kind, g.origins, g.date): g for g in gaps}
    return list(unique.values())


def _load(set_names) -> list[RegimeSet]:
    if isinstance(set_names, (str, RegimeSet)):
        set_names = [set_names]
    return [load_regime_set(item) if isinstance(item, str) else item for item in set_names]


def _check_kinds(kinds) -> tuple[str, ...]:
    kinds = KINDS if kinds is None else tuple(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise PolicyError(f"unknown kind(s) {', '.join(bad)}; expected some of {', '.join(KINDS)}")
    return kinds


def coverage_gaps(
    set_names: Sequence[str | RegimeSet] | str,
    regions: Sequence[str] | str,
    until: dt.date | None = None,
    kinds: Sequence[str] | None = None,
) -> list[CoverageGap]:
    """The ends of the sets' coverage that :func:`to_duty_changes` reports, as records."""
    kinds = _check_kinds(kinds)
    sets = _load(set_names)
    gaps = []
    for region in [regions] if isinstance(regions, str) else regions:
        entries = _region_entries(sets, normalise_destination(region))
        gaps.extend(_gaps(region, entries, kinds, until))
    return gaps


def to_duty_changes(
    set_names: Sequence[str | RegimeSet] | str,
    regions: Sequence[str] | str,
    until: dt.date | None = None,
    kinds: Sequence[str] | None = None,
) -> DutyChanges:
    """Convert regime sets into the engine's dated duty changes.

    Parameters
    ----------
    set_names : sequence of str or RegimeSet
        Regime sets, e.g. ``["us_2025", "us_2026", "eu_2026"]``. Sets of one region must
        not hold entries that apply to the same origin, mode and category on the same day.
    regions : sequence of str
        Engine market regions to emit (e.g. ``["US", "EU"]``); a set is emitted for the
        region equal to its destination (GB is accepted for UK). Changes carry the region
        spelled as given here.
    until : datetime.date, optional
        Last day that matters (a scenario's horizon end): the end of the sets' coverage
        after it is not reported.
    kinds : sequence of {'parcel', 'bulk', 'postal'}, optional
        The fulfilment kinds the engine has; default all three. Entries' rules for other
        kinds are reported as not emitted.

    Returns
    -------
    DutyChanges
        ``(changes, unsupported)``: ``changes`` is a list of dicts with keys ``region``,
        ``date`` (ISO), ``currency``, optional ``origins`` and ``categories``, ``kinds``,
        ``set`` (the :class:`cbecsim.config.DutyFields` of the kind, in full), ``source``
        (primary, then secondary) and, where sourced, ``announced`` (ISO); ``unsupported``
        lists, as sentences, features not emitted or emitted only approximately, and the
        ends of coverage within ``until``. The mapping is described in this module's
        docstring.

    Raises
    ------
    PolicyError
        Unknown set name or kind, or overlapping entries across the sets of one region.

    Notes
    -----
    Before the first change the engine applies no duty and no exemption; after the last
    set ends it keeps the last regime (reported in ``unsupported``).
    """
    kinds = _check_kinds(kinds)
    if isinstance(regions, str):
        regions = [regions]
    sets = _load(set_names)
    changes: list[dict] = []
    notes: list[str] = []
    for region in regions:
        destination = normalise_destination(region)
        region_sets = [s for s in sets if s.destination == destination]
        if not region_sets:
            notes.append(f"{region}: none of the sets {', '.join(s.name for s in sets)} is for this region; "
                         f"nothing emitted")
            continue
        entries = _region_entries(sets, destination)
        if "postal" not in kinds:
            for regime_set in region_sets:
                postal = [e.id for e in regime_set.entries if e.postal_options is not None]
                if postal:
                    notes.append(
                        f"{regime_set.name}: postal duty options of {len(postal)} entries ({', '.join(postal)}) "
                        f"not emitted: the engine's kinds are {', '.join(kinds)} (postal sellers are "
                        f"modelled as parcels, which follow the parcel rules)"
                    )
        for regime_set, entry in entries:
            notes.extend(_feature_notes(regime_set, entry, kinds))
        for kind in kinds:
            named = [e for _, e in entries if kind in e.modes]
            if named and not any(e.origins == "all" for e in named):
                origins = sorted({o for e in named for o in e.origins})
                notes.append(
                    f"{region}: {kind} regimes name only origins {', '.join(origins)}; other "
                    f"origins get no change (the engine applies no duty and no exemption to them)"
                )
        dated: list[tuple[dt.date, int, dict]] = []
        boundaries = sorted({e.start for _, e in entries} | {e.end for _, e in entries if e.end is not None})
        for day in boundaries:
            starting = [e for _, e in entries if e.start == day]
            ending = [e for _, e in entries if e.end == day]
            touched = {k for e in starting + ending for k in _kinds(e, kinds)}
            if not touched:
                continue
            in_force = sorted(((s, e) for s, e in entries if e.in_force(day)), key=lambda item: _rank(item[1]))
            for regime_set, entry in in_force:
                entry_kinds = [k for k in _kinds(entry, kinds) if k in touched]
                if entry_kinds:
                    dated.extend((day, 0, change) for change in _emit(region, day, regime_set, entry, entry_kinds))
        for regime_set in region_sets:
            dated.extend(_fee_changes(region, regime_set, kinds))
        # Stable sort: regime re-statements keep their order, fee changes follow them.
        dated.sort(key=lambda item: (item[0], item[1]))
        changes.extend(change for _, _, change in dated)
        notes.extend(gap.note for gap in _gaps(region, entries, kinds, until))
    # The same sentence can come from several entries; keep the first of each.
    unique = list(dict.fromkeys(notes))
    return DutyChanges(changes, unique)
