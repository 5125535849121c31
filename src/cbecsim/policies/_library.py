"""Reading the policy library: data files, regime sets and dated currency conversion."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import importlib.resources
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from .._yaml import load_shipped
from ._fx import FX_FILE, FxError, known_currencies, usd_rate_info
from ._schema import ParcelFee, RegimeEntry, RegimeFile, RegimeSet

__all__ = [
    "PolicyError",
    "RegimeSetInfo",
    "list_regime_sets",
    "load_regime_set",
    "read_regime_file",
    "known_currencies",
    "convert",
    "convert_info",
    "destinations",
    "normalise_destination",
]

#: Data files of ``policies/data`` that are not regime files.
NON_REGIME_FILES = {FX_FILE}

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
    rates = set(known_currencies())
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
        dated: list[RegimeEntry | ParcelFee] = [*regime_set.entries, *regime_set.parcel_fees]
        for item in dated:
            unknown = sorted(item.currencies() - rates)
            if unknown:
                problems.append(
                    f"{where}: set {name}: {item.id}: currency {', '.join(unknown)} has no "
                    f"rate in {FX_FILE} (known: {', '.join(sorted(rates))})"
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
        if not resource.name.endswith(".yaml") or resource.name in NON_REGIME_FILES:
            continue
        where = f"cbecsim/policies/data/{resource.name}"
        try:
            data = load_shipped(resource.read_text(encoding="utf-8"))
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


@dataclasses.dataclass(frozen=True)
class Conversion:
    """An amount converted at a dated rate.

    Attributes
    ----------
    amount : float
        The converted amount [target currency].
    months : tuple of str
        ``YYYY-MM`` of the monthly averages used (empty when no conversion happened);
        a month marked ``(latest)`` stands in for a later day.
    """

    amount: float
    months: tuple[str, ...] = ()


def convert_info(amount: float, from_currency: str, to_currency: str, on: dt.date) -> Conversion:
    """Convert ``amount`` at the monthly average rates of ``on``'s month (see :mod:`._fx`).

    Same-currency amounts are returned unchanged, so boundaries stay exact.

    Raises
    ------
    PolicyError
        Unknown currency, or a day before the rate series starts.
    """
    if from_currency == to_currency:
        return Conversion(float(amount))
    try:
        source = usd_rate_info(from_currency, on)
        target = usd_rate_info(to_currency, on)
    except FxError as exc:
        raise PolicyError(str(exc)) from None
    months = tuple(
        f"{rate.month:%Y-%m}" + (" (latest)" if rate.clamped else "")
        for rate in (source, target)
        if rate.month is not None
    )
    return Conversion(float(amount) * source.usd_per_unit / target.usd_per_unit, months)


def convert(amount: float, from_currency: str, to_currency: str, on: dt.date) -> float:
    """``amount`` [from_currency] in [to_currency] at the monthly rates of day ``on``."""
    return convert_info(amount, from_currency, to_currency, on).amount


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
