"""Which policy-library notes a scenario still needs to read (``cbecsim validate``).

Converting regime sets into the engine's duty changes (:func:`cbecsim.policies.to_duty_changes`)
comes with notes on what the engine cannot carry. Many do not concern a given scenario:
its markets already set the VAT rate, no seller ships that way, or its own
``duty_schedule`` sets the regime where the sets' coverage ends. :func:`sort_policy_notes`
splits the notes into those the scenario does not handle (shown by ``validate``) and the
others, each with the reason it is handled (shown by ``validate --verbose``).

A note of a form not listed here is always shown.
"""

from __future__ import annotations

import re

from .config import Scenario

__all__ = ["sort_policy_notes", "NOTE_FORMS"]

_POSTAL_RULES = re.compile(
    r"^(?P<region>[^:]+): postal items follow the parcel rules in the engine \(no postal kind\)$"
)
_POSTAL_ONLY = re.compile(
    r"^(?P<where>[^:]+): (postal duty options (of \d+ entries )?\(.*\)|a postal-only regime) not emitted: "
    r"(the engine has no postal kind|the engine's kinds are )"
)
_VAT = re.compile(r"^(?P<set>[^:/]+): .* not emitted: the engine's VAT is markets\[\]\.vat_rate$")
_FEE = re.compile(r"^(?P<set>[^:/]+): .* not emitted: add it to fulfilment_modes\[\]\.handling_fee_per_unit")
_NAMED_ORIGINS = re.compile(
    r"^(?P<region>[^:]+): (?P<kind>parcel|bulk) regimes name only origins "
    r"(?P<origins>.+); other origins get no change"
)
_COVERAGE_END = re.compile(
    r"^(?P<region>[^:]+): no regime for (?P<kind>parcel|bulk|postal) from (?P<origins>.+) on or after "
    r"(?P<day>\d{4}-\d{2}-\d{2}) \(end of the sets' coverage\)"
)
_VALUE_BANDS = re.compile(r"^[^:]+: value bands emitted as the first band's")
_FIXED_PER_HEADING = re.compile(r"^[^:]+: fixed duty .* per tariff sub-heading emitted as")
_NOTHING_EMITTED = re.compile(r"^[^:]+: none of the sets .* is for this region; nothing emitted$")

#: Every note form of :mod:`cbecsim.policies._changes`. VAT, fees, named origins and the
#: end of coverage can be handled by the scenario; the others (postal items modelled as
#: parcels, value bands, the per-heading duty, a set for no region) are approximations of
#: the engine that no config can remove, and are always shown.
NOTE_FORMS = {
    "postal rules": _POSTAL_RULES,
    "postal-only options": _POSTAL_ONLY,
    "VAT": _VAT,
    "fee": _FEE,
    "named origins": _NAMED_ORIGINS,
    "coverage end": _COVERAGE_END,
    "value bands": _VALUE_BANDS,
    "fixed duty per heading": _FIXED_PER_HEADING,
    "nothing emitted": _NOTHING_EMITTED,
}


def _set_regions(scenario: Scenario, set_name: str) -> list[str]:
    from .policies import list_regime_sets
    from .policies._library import normalise_destination

    destination = {info.name: info.destination for info in list_regime_sets()}.get(set_name)
    if destination is None:
        return []
    return sorted(
        {m.region for m in scenario.markets if normalise_destination(m.region) == normalise_destination(destination)}
    )


def _shipments(scenario: Scenario, region: str):
    """(population, market, fulfilment kind, mode) of every population serving ``region``."""
    markets = {m.name: m for m in scenario.markets}
    for pop in scenario.sellers:
        if pop.count == 0:
            continue
        for name in pop.markets:
            market = markets.get(name)
            if market is None or market.region != region:
                continue
            mode = scenario.fulfilment_of(pop, name)
            yield pop, market, scenario.fulfilment_modes[mode].kind, mode


def _origins(text: str) -> set[str] | None:
    """``"all origins"`` -> None; ``"CN/HK"`` or ``"CN, HK"`` -> {"CN", "HK"}."""
    if text.strip() == "all origins":
        return None
    return {part.strip() for part in re.split(r"[/,]", text) if part.strip()}


def _reason(scenario: Scenario, note: str) -> str | None:
    """Why ``note`` does not concern ``scenario``, or None if it does."""
    if match := _VAT.match(note):
        regions = _set_regions(scenario, match["set"])
        markets = [m for m in scenario.markets if m.region in regions]
        if markets and all(m.vat_rate > 0 for m in markets):
            return (
                "the markets of "
                + ", ".join(regions)
                + " set vat_rate ("
                + ", ".join(f"{m.name} {m.vat_rate:g}" for m in markets)
                + ")"
            )
        return None
    if match := _FEE.match(note):
        regions = _set_regions(scenario, match["set"])
        used = {mode for region in regions for _, _, _, mode in _shipments(scenario, region)}
        if used and all(scenario.fulfilment_modes[mode].handling_fee_per_unit > 0 for mode in used):
            return f"the fulfilment modes used there ({', '.join(sorted(used))}) set handling_fee_per_unit"
        if regions and not used:
            return f"no seller serves {', '.join(regions)}"
        return None
    if match := _NAMED_ORIGINS.match(note):
        named = _origins(match["origins"]) or set()
        others = {
            pop.origin
            for pop, _, kind, _ in _shipments(scenario, match["region"])
            if kind == match["kind"] and pop.origin not in named
        }
        if not others:
            return f"every seller shipping {match['kind']} to {match['region']} is from {', '.join(sorted(named))}"
        return None
    if match := _COVERAGE_END.match(note):
        region, kind, day = match["region"], match["kind"], match["day"]
        origins = _origins(match["origins"])
        affected = {
            (pop.origin, market.category)
            for pop, market, shipped, _ in _shipments(scenario, region)
            if shipped == kind and (origins is None or pop.origin in origins)
        }
        if not affected:
            return f"no seller ships {kind} to {region} from {match['origins']}"

        def covered(origin: str, category: str) -> bool:
            return any(
                change.region == region
                and change.date.isoformat() == day
                and (change.kinds is None or kind in change.kinds)
                and (change.origins is None or origin in change.origins)
                and (change.categories is None or category in change.categories)
                for change in scenario.duty_schedule
            )

        if all(covered(origin, category) for origin, category in affected):
            return f"the config's own duty_schedule sets the {region} regime on {day}"
        return None
    return None


def sort_policy_notes(scenario: Scenario) -> tuple[list[str], list[tuple[str, str]]]:
    """``(notes the scenario does not handle, [(handled note, why), ...])``, in order; the
    ends of coverage the scenario's own ``duty_schedule`` fills come first among the handled."""
    shown, handled = [], list(scenario.handled_policy_notes)
    for note in scenario.policy_notes:
        reason = _reason(scenario, note)
        if reason is None:
            shown.append(note)
        else:
            handled.append((note, reason))
    return shown, handled
