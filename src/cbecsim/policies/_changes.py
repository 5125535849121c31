"""Regime sets -> the engine's dated duty changes (``Scenario.duty_schedule``).

The engine keeps, per market (region x category), origin and fulfilment kind (parcel,
bulk), a regime of five fields -- ``ad_valorem_rate``, ``de_minimis``,
``de_minimis_threshold``, ``low_value_duty_per_item``, ``specific_duty_per_item`` -- and
applies dated changes in date order (list order within a date); a field a change does not
set keeps its value. The library's entries have end dates and fallbacks (``origins:
all``), so the conversion re-states regimes at every boundary:

* at each date on which an entry starts or ends, every entry in force of the kinds
  touched that day is emitted in full (all five fields), least specific first
  (``origins: all`` before named origins, ``categories: all`` before named categories),
  so that a fallback never overwrites a more specific entry;
* ``modes``: ``parcel`` -> kind ``parcel``; ``bulk`` -> kind ``bulk``; ``postal`` is
  mapped away (postal-only entries are not emitted, reported as unsupported);
* ad valorem layers are summed; layers scoped to categories (US Section 301 lists)
  become one extra change per category, after the entry's change for all its categories;
* de minimis (parcel kind only): ``de_minimis`` = ``applies``, ``de_minimis_threshold`` =
  the threshold; bulk is emitted with ``de_minimis: false``;
* EU-style fixed duty (``low_value_duty``) -> ``de_minimis: true``, threshold = its value
  limit, ``low_value_duty_per_item`` = the amount for one heading (reported: one heading
  per item, and the engine's threshold is inclusive while the rule is "under");
* ``specific_per_item`` -> ``specific_duty_per_item``;
* ``currency`` is that of the entry's money fields (the first found, others converted
  with the fixed rate table), or USD when it has none.

Reported as unsupported (not emitted): VAT/ICMS (a market setting, ``markets[].vat_rate``),
handling fees (``fulfilment_modes[].handling_fee_per_unit``), postal rules and options,
Brazil's value bands (the first band's rate is emitted), and the end of the sets'
coverage (the engine keeps the last regime in force after it).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple, Sequence

from ._library import PolicyError, convert, load_regime_set, normalise_destination
from ._schema import RegimeEntry, RegimeSet, percent_text

__all__ = ["DutyChanges", "to_duty_changes"]

_KINDS = ("parcel", "bulk")


class DutyChanges(NamedTuple):
    """What :func:`to_duty_changes` returns; unpacks as ``changes, unsupported``.

    Attributes
    ----------
    changes : list of dict
        Engine duty changes (the ``duty_schedule`` format of :class:`cbecsim.config.DutyChange`).
    unsupported : list of str
        Human-readable notes on what the engine format cannot express and was not emitted
        (or was emitted approximately).
    """

    changes: list[dict]
    unsupported: list[str]


def _kinds(entry: RegimeEntry) -> list[str]:
    return [kind for kind in _KINDS if kind in entry.modes]


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


def _money_fields(entry: RegimeEntry, kind: str) -> tuple[str, dict]:
    """The five regime fields of ``entry`` for ``kind`` and their currency."""
    amounts: list[tuple[str, float, str]] = []  # (field, amount, currency)
    de_minimis = False
    if kind == "parcel" and entry.low_value_duty is not None:
        low = entry.low_value_duty
        de_minimis = True
        amounts += [("de_minimis_threshold", low.value_below, low.currency),
                    ("low_value_duty_per_item", low.amount_per_heading, low.currency)]
    elif kind == "parcel" and entry.de_minimis is not None:
        de_minimis = entry.de_minimis.applies
        amounts.append(("de_minimis_threshold", entry.de_minimis.threshold, entry.de_minimis.currency))
    if entry.specific_per_item is not None:
        amounts.append(("specific_duty_per_item", entry.specific_per_item.amount, entry.specific_per_item.currency))
    currency = amounts[0][2] if amounts else "USD"
    fields = {
        "de_minimis": de_minimis,
        "de_minimis_threshold": 0.0,
        "low_value_duty_per_item": 0.0,
        "specific_duty_per_item": 0.0,
    }
    for name, amount, code in amounts:
        fields[name] = convert(amount, code, currency)
    return currency, fields


def _category_groups(entry: RegimeEntry) -> list[tuple[list[str] | None, float]]:
    """(categories or None for the entry's own scope, summed ad valorem rate) pairs."""
    if entry.value_bands is not None:
        # Only the first band is expressible as a plain rate (reported as unsupported).
        return [(None if entry.categories == "all" else list(entry.categories), entry.value_bands.bands[0].rate)]
    base = round(sum(layer.rate for layer in entry.ad_valorem if layer.categories is None), 12)
    own = None if entry.categories == "all" else list(entry.categories)
    groups: list[tuple[list[str] | None, float]] = [(own, base)]
    scoped: list[str] = []
    for layer in entry.ad_valorem:
        for category in layer.categories or []:
            if category not in scoped and (own is None or category in own):
                scoped.append(category)
    for category in scoped:
        rate = round(base + sum(
            layer.rate for layer in entry.ad_valorem if layer.categories and category in layer.categories
        ), 12)
        groups.append(([category], rate))
    return groups


def _emit(region: str, day: dt.date, regime_set: RegimeSet, entry: RegimeEntry, kinds: list[str]) -> list[dict]:
    changes = []
    for categories, rate in _category_groups(entry):
        by_kind = []
        for kind in kinds:
            currency, fields = _money_fields(entry, kind)
            by_kind.append((kind, currency, {"ad_valorem_rate": rate, **fields}))
        # One change for both kinds when they get the same regime, else one per kind.
        if len(by_kind) > 1 and all(item[1:] == by_kind[0][1:] for item in by_kind):
            by_kind = [([k for k, _, _ in by_kind], by_kind[0][1], by_kind[0][2])]
        else:
            by_kind = [([k], c, f) for k, c, f in by_kind]
        for kind_list, currency, fields in by_kind:
            change: dict = {"region": region, "date": day.isoformat(), "currency": currency}
            if entry.origins != "all":
                change["origins"] = list(entry.origins)
            if categories is not None:
                change["categories"] = list(categories)
            change["kinds"] = kind_list
            change["set"] = fields
            change["source"] = f"{regime_set.name}/{entry.id}: {entry.source} (confidence {entry.confidence})"
            changes.append(change)
    return changes


def _feature_notes(regime_set: RegimeSet, entry: RegimeEntry) -> list[str]:
    """What of ``entry`` the engine format cannot carry."""
    notes = []
    where = f"{regime_set.name}/{entry.id}"
    if "postal" in entry.modes and not _kinds(entry):
        what = "postal duty options (" + ", ".join(o.label for o in entry.postal_options.options) + ")" \
            if entry.postal_options else "a postal-only regime"
        notes.append(f"{where}: {what} not emitted: the engine has no postal kind (postal sellers "
                     f"are modelled as parcels, which follow the parcel rules)")
    for rule in entry.vat:
        limit = f" up to {rule.currency} {rule.max_value:g}" if rule.max_value is not None else ""
        notes.append(f"{regime_set.name}: {rule.name} {percent_text(rule.rate)} ({rule.collected}{limit}) not emitted: "
                     f"the engine's VAT is markets[].vat_rate")
    for fee in entry.fees:
        limit = f" up to {fee.currency} {fee.max_value:g}" if fee.max_value is not None else ""
        notes.append(f"{regime_set.name}: {fee.name} {fee.currency} {fee.amount:g} per {fee.per}{limit} not "
                     f"emitted: add it to fulfilment_modes[].handling_fee_per_unit [USD]")
    if entry.value_bands is not None:
        bands = entry.value_bands
        first = bands.bands[0]
        rest = "; ".join(
            f"{percent_text(b.rate)}" + (f" minus {bands.currency} {b.deduction:g}" if b.deduction else "")
            + f" up to {bands.currency} {b.max_value:g}" for b in bands.bands[1:]
        )
        notes.append(f"{where}: value bands emitted as the first band's {percent_text(first.rate)} for every value "
                     f"(exact up to {bands.currency} {first.max_value:g}); not expressible: {rest}")
    if entry.low_value_duty is not None and "parcel" in entry.modes:
        low = entry.low_value_duty
        notes.append(f"{where}: fixed duty {low.currency} {low.amount_per_heading:g} per tariff sub-heading "
                     f"emitted as {low.currency} {low.amount_per_heading:g} per item (one heading per item); it "
                     f"applies under {low.currency} {low.value_below:g} but the engine's threshold is "
                     f"inclusive, so exactly {low.currency} {low.value_below:g} also pays it")
    return notes


def to_duty_changes(
    set_names: Sequence[str | RegimeSet] | str,
    regions: Sequence[str] | str,
    until: dt.date | None = None,
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

    Returns
    -------
    DutyChanges
        ``(changes, unsupported)``: ``changes`` is a list of dicts with keys ``region``,
        ``date`` (ISO), ``currency``, optional ``origins`` and ``categories``, ``kinds``,
        ``set`` (all of ``ad_valorem_rate``, ``de_minimis``, ``de_minimis_threshold``,
        ``low_value_duty_per_item``, ``specific_duty_per_item``) and ``source``;
        ``unsupported`` lists, as sentences, features not emitted or emitted only
        approximately. The mapping is described in this module's docstring.

    Raises
    ------
    PolicyError
        Unknown set name, or overlapping entries across the sets of one region.

    Notes
    -----
    Before the first change the engine applies no duty and no exemption; after the last
    set ends it keeps the last regime (reported in ``unsupported``).
    """
    if isinstance(set_names, (str, RegimeSet)):
        set_names = [set_names]
    if isinstance(regions, str):
        regions = [regions]
    sets = [load_regime_set(item) if isinstance(item, str) else item for item in set_names]
    changes: list[dict] = []
    notes: list[str] = []
    for region in regions:
        destination = normalise_destination(region)
        region_sets = [s for s in sets if s.destination == destination]
        if not region_sets:
            notes.append(f"{region}: none of the sets {', '.join(s.name for s in sets)} is for this region; "
                         f"nothing emitted")
            continue
        entries = [(s, e) for s in region_sets for e in s.entries]
        for i, (first_set, first) in enumerate(entries):
            for second_set, second in entries[i + 1:]:
                if first_set is not second_set and first.overlaps(second):
                    raise PolicyError(
                        f"sets {first_set.name} and {second_set.name} overlap: entries {first.id} and "
                        f"{second.id} apply to the same origin, mode and category on the same days"
                    )
        if any("postal" in e.modes and _kinds(e) for _, e in entries):
            notes.append(f"{region}: postal items follow the parcel rules in the engine (no postal kind)")
        for regime_set, entry in entries:
            notes.extend(_feature_notes(regime_set, entry))
        for kind in _KINDS:
            named = [e for _, e in entries if kind in e.modes]
            if named and not any(e.origins == "all" for e in named):
                origins = sorted({o for e in named for o in e.origins})
                notes.append(f"{region}: {kind} regimes name only origins {', '.join(origins)}; other "
                             f"origins get no change (the engine applies no duty and no exemption to them)")
        boundaries = sorted({e.start for _, e in entries} | {e.end for _, e in entries if e.end is not None})
        for day in boundaries:
            starting = [e for _, e in entries if e.start == day]
            ending = [e for _, e in entries if e.end == day]
            touched = {k for e in starting + ending for k in _kinds(e)}
            if not touched:
                continue
            in_force = sorted(
                ((s, e) for s, e in entries if e.in_force(day)), key=lambda item: _rank(item[1])
            )
            for regime_set, entry in in_force:
                kinds = [k for k in _kinds(entry) if k in touched]
                if kinds:
                    changes.extend(_emit(region, day, regime_set, entry, kinds))
            if until is not None and day > until:
                continue  # the end of coverage after the horizon does not matter
            for ended in ending:
                for kind in _kinds(ended):
                    if not any(_covers(e, ended, kind) for _, e in in_force):
                        origins = "all origins" if ended.origins == "all" else "/".join(ended.origins)
                        notes.append(
                            f"{region}: no regime for {kind} from {origins} on or after {day} (end of the "
                            f"sets' coverage); the engine keeps the last regime in force after that date"
                        )
    # The same sentence can come from several entries; keep the first of each.
    unique = list(dict.fromkeys(notes))
    return DutyChanges(changes, unique)
