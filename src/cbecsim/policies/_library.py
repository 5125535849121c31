"""Reading the policy library: data files, regime sets and the fixed currency table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import importlib.resources
import math
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from ._schema import RegimeFile, RegimeSet

__all__ = [
    "PolicyError",
    "RegimeSetInfo",
    "list_regime_sets",
    "load_regime_set",
    "read_regime_file",
    "currency_rates",
    "convert",
    "destinations",
    "normalise_destination",
]

#: The file of fixed exchange rates, among the regime files in ``policies/data``.
RATES_FILE = "currency_rates.yaml"

#: Other spellings of a destination code (ISO GB for the United Kingdom).
DESTINATION_ALIASES = {"GB": "UK"}


class PolicyError(ValueError):
    """A policy question the library cannot answer, or policy data that is invalid.

    The message is one or more complete sentences meant for the user (the CLI prints it
    after ``error:``).
    """


@dataclasses.dataclass(frozen=True)
class RegimeSetInfo:
    """Summary of one regime set, as listed by :func:`list_regime_sets`.

    Attributes
    ----------
    name : str
    destination : str
        Destination region code (US, EU, UK, MX, BR).
    start : datetime.date
        First day covered.
    end : datetime.date or None
        First day no longer covered; None when open-ended.
    entries : int
        Number of regime entries.
    description : str
    status : str
        ``default`` (used when no sets are named), ``variant`` or ``example``.
    member_state : str or None
        For EU variants with national rules (e.g. IT, RO).
    """

    name: str
    destination: str
    start: dt.date
    end: dt.date | None
    entries: int
    description: str
    status: str
    member_state: str | None = None


def _data_dir():
    return importlib.resources.files("cbecsim.policies").joinpath("data")


def _format_validation(error: ValidationError, raw: Any) -> list[str]:
    """One readable line per pydantic problem, naming entries by their id."""
    lines = []
    for item in error.errors(include_url=False):
        parts: list[str] = []
        node = raw
        for part in item["loc"]:
            label = str(part)
            if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
                entry_id = node.get("id") if isinstance(node, dict) else None
                label = f"{part} (id {entry_id})" if entry_id else str(part)
            elif isinstance(node, dict):
                node = node.get(part)
            else:
                node = None
            parts.append(label)
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        path = ".".join(parts)
        for line in message.split("\n"):
            lines.append(f"{path}: {line}" if path else line)
    return lines


def _parse_document(data: Any, where: str) -> dict[str, RegimeSet]:
    """Validate one data file's mapping into its regime sets."""
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: expected a YAML mapping with 'destination' and 'sets'")
    try:
        document = RegimeFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError("\n".join(f"{where}: {line}" for line in _format_validation(exc, data))) from None
    sets: dict[str, RegimeSet] = {}
    problems: list[str] = []
    rates = currency_rates()
    for name, raw in document.sets.items():
        if not isinstance(raw, dict):
            problems.append(f"{where}: set {name}: expected a mapping with 'entries'")
            continue
        raw = dict(raw)
        if raw.setdefault("name", name) != name:
            problems.append(f"{where}: set {name}: its 'name' field says {raw['name']!r}")
            continue
        raw.setdefault("destination", document.destination)
        try:
            regime_set = RegimeSet.model_validate(raw)
        except ValidationError as exc:
            problems.extend(f"{where}: set {name}: {line}" for line in _format_validation(exc, raw))
            continue
        for entry in regime_set.entries:
            unknown = sorted(entry.currencies() - set(rates))
            if unknown:
                problems.append(
                    f"{where}: set {name}: entry {entry.id}: currency {', '.join(unknown)} has no "
                    f"rate in {RATES_FILE} (known: {', '.join(sorted(rates))})"
                )
        sets[name] = regime_set
    if problems:
        raise PolicyError("\n".join(problems))
    return sets


def read_regime_file(path: str | Path) -> dict[str, RegimeSet]:
    """Read and validate a regime file of your own (same format as the shipped ones).

    Parameters
    ----------
    path : str or Path
        A YAML file with ``destination``, ``currency`` and ``sets`` (see
        ``cbecsim/policies/data/us.yaml`` for a documented example).

    Returns
    -------
    dict of str to RegimeSet
        The file's sets by name; pass them to :func:`quote_duty` (``regime_sets``) or
        :func:`to_duty_changes` to override the shipped ones.

    Raises
    ------
    PolicyError
        Unreadable file, invalid YAML or data (one line per problem, including
        overlapping entries named by id).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    return _parse_document(data, str(path))


@functools.lru_cache(maxsize=1)
def _library() -> dict[str, RegimeSet]:
    """All shipped regime sets by name, validated once."""
    sets: dict[str, RegimeSet] = {}
    for resource in sorted(_data_dir().iterdir(), key=lambda r: r.name):
        if not resource.name.endswith(".yaml") or resource.name == RATES_FILE:
            continue
        where = f"cbecsim/policies/data/{resource.name}"
        try:
            data = yaml.safe_load(resource.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise PolicyError(f"{where}: not valid YAML: {exc}") from None
        for name, regime_set in _parse_document(data, where).items():
            if name in sets:
                raise PolicyError(f"{where}: set {name} is also defined in another data file")
            sets[name] = regime_set
    _check_defaults_disjoint(sets.values())
    return sets


def _check_defaults_disjoint(sets: Iterable[RegimeSet]) -> None:
    """Default sets of one destination must not cover the same day (quotes would be ambiguous)."""
    by_destination: dict[str, list[RegimeSet]] = {}
    for regime_set in sets:
        if regime_set.status == "default":
            by_destination.setdefault(regime_set.destination, []).append(regime_set)
    for destination, group in by_destination.items():
        group.sort(key=lambda s: s.start)
        for earlier, later in zip(group, group[1:]):
            if earlier.end is None or earlier.end > later.start:
                raise PolicyError(
                    f"default sets {earlier.name} and {later.name} of {destination} cover the same "
                    f"days ({earlier.name} to {earlier.end or 'open'}, {later.name} from {later.start})"
                )


@functools.lru_cache(maxsize=1)
def currency_rates() -> dict[str, float]:
    """Fixed exchange rates [USD per unit] from ``data/currency_rates.yaml``.

    These are assumptions, not sourced figures (see the file's note).
    """
    data = yaml.safe_load(_data_dir().joinpath(RATES_FILE).read_text(encoding="utf-8"))
    rates = {str(code): float(rate) for code, rate in data["usd_per_unit"].items()}
    bad = [code for code, rate in rates.items() if not (rate > 0 and math.isfinite(rate))]
    if bad:
        raise PolicyError(f"{RATES_FILE}: rates must be positive (not {', '.join(bad)})")
    return rates


def convert(amount: float, from_currency: str, to_currency: str) -> float:
    """Convert ``amount`` [from_currency] to [to_currency] with the fixed rate table.

    Same-currency amounts are returned unchanged, so boundaries stay exact.
    """
    if from_currency == to_currency:
        return float(amount)
    rates = currency_rates()
    for code in (from_currency, to_currency):
        if code not in rates:
            raise PolicyError(
                f"unknown currency {code!r}; known: {', '.join(sorted(rates))} (fixed rates in {RATES_FILE})"
            )
    return float(amount) * rates[from_currency] / rates[to_currency]


def normalise_destination(code: str) -> str:
    """Upper-case a destination code and resolve aliases (GB -> UK)."""
    code = str(code).strip().upper()
    return DESTINATION_ALIASES.get(code, code)


def destinations() -> list[str]:
    """Destination codes the shipped library covers."""
    return sorted({s.destination for s in _library().values()})


def load_regime_set(name: str) -> RegimeSet:
    """One shipped regime set, validated.

    Parameters
    ----------
    name : str
        E.g. ``us_2025``, ``eu_2026``, ``eu_2026_it``, ``us_2026_s122_15pct_example``.

    Raises
    ------
    PolicyError
        Unknown name (the message lists the known ones), or invalid data.
    """
    library = _library()
    if name not in library:
        raise PolicyError(f"unknown regime set {name!r}; known sets: {', '.join(sorted(library))}")
    return library[name]


def list_regime_sets() -> list[RegimeSetInfo]:
    """Every shipped regime set, by destination then start date.

    Returns
    -------
    list of RegimeSetInfo
    """
    infos = [
        RegimeSetInfo(
            name=s.name,
            destination=s.destination,
            start=s.start,
            end=s.end,
            entries=len(s.entries),
            description=s.description,
            status=s.status,
            member_state=s.member_state,
        )
        for s in _library().values()
    ]
    return sorted(infos, key=lambda i: (i.destination, i.start, i.status != "default", i.name))
