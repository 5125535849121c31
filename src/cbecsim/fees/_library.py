"""Reading the fee library and resolving a schedule into the fees of one sale."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import importlib.resources
import math
import types
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from .._yaml import load_shipped
from ._schema import (
    CUBIC_METRES_PER_CUBIC_FOOT,
    DatedEntry,
    FeeFile,
    FeeSchedule,
    Source,
    finite_or_inf,
)

__all__ = [
    "FeeError",
    "FeeScheduleInfo",
    "FeeTerms",
    "list_fee_schedules",
    "fee_schedule",
    "read_fee_file",
    "resolve_fees",
    "parse_date",
    "fee_category_of",
    "check_coverage",
]


class FeeError(ValueError):
    """A fee question the library cannot answer, or fee data that is invalid.

    The message is one or more complete sentences meant for the user (the CLI prints it
    after ``error:``; a config loader can prefix it with the field path).
    """


@dataclasses.dataclass(frozen=True)
class FeeScheduleInfo:
    """Summary of one schedule, as listed by :func:`list_fee_schedules`.

    Attributes
    ----------
    name, kind, marketplace, region, currency, description : str
    start : datetime.date
        First day any of its fees is in force.
    end : datetime.date or None
        First day none is any more; None when open-ended.
    categories : tuple of str
        Fee categories (empty for payment schedules, which accept any category).
    size_tiers : tuple of str
    """

    name: str
    kind: str
    marketplace: str
    region: str
    currency: str
    start: dt.date
    end: dt.date | None
    categories: tuple[str, ...]
    size_tiers: tuple[str, ...]
    description: str


# --------------------------------------------------------------------------------------
# Reading the data files
# --------------------------------------------------------------------------------------


def _data_dir():
    return importlib.resources.files("cbecsim.fees").joinpath("data")


def _validation_lines(error: ValidationError) -> list[str]:
    """One readable line per pydantic problem: ``dotted.path: message``."""
    lines = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        for line in message.split("\n"):
            lines.append(f"{path}: {line}" if path else line)
    return lines


def _parse_document(data: Any, where: str) -> dict[str, FeeSchedule]:
    """Validate one data file into its schedules (each keeps the sources it cites)."""
    if not isinstance(data, dict):
        raise FeeError(f"{where}: expected a YAML mapping with 'sources' and 'schedules'")
    try:
        document = FeeFile.model_validate(data)
    except ValidationError as exc:
        raise FeeError("\n".join(f"{where}: {line}" for line in _validation_lines(exc))) from None
    schedules: dict[str, FeeSchedule] = {}
    problems: list[str] = []
    for name, raw in document.schedules.items():
        if not isinstance(raw, dict):
            problems.append(f"{where}: schedule {name}: expected a mapping")
            continue
        raw = dict(raw)
        if raw.setdefault("name", name) != name:
            problems.append(f"{where}: schedule {name}: its 'name' field says {raw['name']!r}")
            continue
        try:
            schedule = FeeSchedule.model_validate(raw)
        except ValidationError as exc:
            problems.extend(f"{where}: schedule {name}: {line}" for line in _validation_lines(exc))
            continue
        for label, entry in schedule.entries():
            unknown = [key for key in entry.source if key not in document.sources]
            if unknown:
                problems.append(
                    f"{where}: schedule {name}: {label} ({entry.span()}): unknown source "
                    f"{', '.join(unknown)} (sources: {', '.join(sorted(document.sources))})"
                )
        schedule._sources = dict(document.sources)
        schedules[name] = schedule
    if problems:
        raise FeeError("\n".join(problems))
    return schedules


def read_fee_file(path: str | Path) -> dict[str, FeeSchedule]:
    """Read and validate a fee file of your own (same format as the shipped ones).

    Parameters
    ----------
    path : str or Path
        A YAML file with ``sources`` and ``schedules`` (see
        ``cbecsim/fees/data/amazon_us.yaml`` for a documented example).

    Returns
    -------
    dict of str to FeeSchedule
        Pass one to :func:`resolve_fees` in place of a shipped schedule's name.

    Raises
    ------
    FeeError
        Unreadable file, invalid YAML or data (one line per problem).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FeeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FeeError(f"{path}: not valid YAML: {exc}") from None
    return _parse_document(data, str(path))


@functools.lru_cache(maxsize=1)
def _library() -> dict[str, FeeSchedule]:
    """All shipped schedules by name, validated once."""
    schedules: dict[str, FeeSchedule] = {}
    for resource in sorted(_data_dir().iterdir(), key=lambda r: r.name):
        if not resource.name.endswith(".yaml"):
            continue
        where = f"cbecsim/fees/data/{resource.name}"
        try:
            data = load_shipped(resource.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise FeeError(f"{where}: not valid YAML: {exc}") from None
        for name, schedule in _parse_document(data, where).items():
            if name in schedules:
                raise FeeError(f"{where}: schedule {name} is also defined in another data file")
            schedules[name] = schedule
    return schedules


def fee_schedule(name: str) -> FeeSchedule:
    """One shipped schedule, validated.

    Raises
    ------
    FeeError
        Unknown name (the message lists the known ones), or invalid data.
    """
    library = _library()
    if name not in library:
        raise FeeError(f"unknown fee schedule {name!r}; known schedules: {', '.join(sorted(library))}")
    return library[name]


def list_fee_schedules() -> list[FeeScheduleInfo]:
    """Every shipped schedule, by region then name."""
    infos = [
        FeeScheduleInfo(
            name=s.name, kind=s.kind, marketplace=s.marketplace, region=s.region,
            currency=s.currency, start=s.start, end=s.end,
            categories=tuple(s.categories), size_tiers=tuple(s.size_tiers),
            description=s.description,
        )
        for s in _library().values()
    ]
    return sorted(infos, key=lambda i: (i.region, i.kind != "marketplace", i.name))


def parse_date(value: dt.date | str, what: str = "date") -> dt.date:
    """A ``datetime.date`` from a date or ISO text (``YYYY-MM-DD``)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise FeeError(f"{what} must be a date as YYYY-MM-DD, got {value!r}") from None


# --------------------------------------------------------------------------------------
# Resolving a schedule
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FeeTerms:
    """The fees of one schedule for one fee category and size tier on one day.

    Amounts are in ``currency``, per unit. How the numbers apply to a sale (the kernels
    call the same functions, :mod:`cbecsim.kernels.fee_rules`):

    * referral fee = ``referral_fee(price, referral_tiers_array(), referral_min, rule)``,
      ``rule`` from ``referral_rule``: ``marginal`` = each rate on the portion of the price
      inside its tier (Amazon electronics accessories: 15% of the portion up to USD 100,
      8% of any portion above); ``whole_price`` = the rate of the tier holding the price
      on all of it (Amazon apparel); then the greater of that and ``referral_min``. The
      price is net of sales tax (US) or VAT included (EU stores): ``referral_base``;
    * on a full refund the seller gets the referral fee back less the refund
      administration fee ``min(refund_admin_rate * referral, refund_admin_max)``;
    * fulfilment fee = ``banded_fee(price, fulfilment_bands_array(), fulfilment_surcharge_rate)``;
      ``fulfilment_fee_per_unit`` is that fee when it does not depend on the price (one
      band), else None;
    * storage: ``storage_per_unit_month[m - 1]`` for a unit of ``unit_volume``
      [``unit_volume_unit``] held all of calendar month ``m`` (the rate per
      ``storage_volume_unit`` is ``storage_rate_per_volume_month``); a unit-day costs that
      over the days of the month;
    * inbound placement per unit received into the warehouse; returns processing per unit
      returned; payment fee ``payment_fee_rate * price + payment_fee_fixed`` per sale.

    ``sources`` maps each field to the source(s) it came from, the date read and checked,
    the confidence grade, and ``ASSUMED`` / ``derived`` where that applies; ``assumed``
    lists the fields whose figure no source gave.
    """

    schedule: str
    kind: str
    marketplace: str
    date: dt.date
    currency: str
    category: str | None
    requested_category: str
    size_tier: str | None
    referral_base: str
    referral_rule: str
    referral_tiers: tuple[tuple[float, float], ...]
    referral_min: float
    fulfilment_fee_bands: tuple[tuple[float, bool, float], ...]
    fulfilment_surcharge_rate: float
    fulfilment_fee_per_unit: float | None
    storage_per_unit_month: tuple[float, ...]
    storage_rate_per_volume_month: tuple[float, ...]
    storage_volume_unit: str | None
    unit_volume: float
    unit_volume_unit: str | None
    inbound_placement_per_unit: float
    returns_processing_per_unit: float
    refund_admin_rate: float
    refund_admin_max: float
    payment_fee_rate: float
    payment_fee_fixed: float
    payment_fee_refunded_on_return: bool | None
    sources: Mapping[str, str]
    assumed: tuple[str, ...]

    # Arrays for the kernels ------------------------------------------------------------

    def referral_tiers_array(self):
        """``referral_tiers`` as a float64 array of shape (K, 2): (upper bound, rate)."""
        import numpy as np

        return np.array(self.referral_tiers, dtype=np.float64).reshape(-1, 2)

    def referral_rule_code(self) -> int:
        """``REFERRAL_MARGINAL`` (0) or ``REFERRAL_WHOLE_PRICE`` (1) for the kernels."""
        return 1 if self.referral_rule == "whole_price" else 0

    def fulfilment_bands_array(self):
        """``fulfilment_fee_bands`` as a float64 array of shape (K, 3): (bound, inclusive, fee)."""
        import numpy as np

        rows = [(upper, 1.0 if inclusive else 0.0, fee) for upper, inclusive, fee in self.fulfilment_fee_bands]
        return np.array(rows, dtype=np.float64).reshape(-1, 3)

    def storage_array(self):
        """``storage_per_unit_month`` as a float64 array of shape (12,), January first."""
        import numpy as np

        return np.array(self.storage_per_unit_month, dtype=np.float64)

    # The fees of one sale ---------------------------------------------------------------

    def referral_fee(self, price: float) -> float:
        """Referral fee on a unit sold at ``price`` [currency]."""
        from ..kernels import fee_rules

        return float(fee_rules.referral_fee(float(price), self.referral_tiers_array(),
                                            float(self.referral_min), self.referral_rule_code()))

    def refund_admin_fee(self, price: float) -> float:
        """Refund administration fee kept when a unit sold at ``price`` is refunded [currency]."""
        from ..kernels import fee_rules

        return float(fee_rules.refund_admin_fee(self.referral_fee(price), float(self.refund_admin_rate),
                                                float(self.refund_admin_max)))

    def referral_refund(self, price: float) -> float:
        """Referral fee credited back when a unit sold at ``price`` is refunded in full [currency]."""
        return self.referral_fee(price) - self.refund_admin_fee(price)

    def fulfilment_fee(self, price: float) -> float:
        """Fulfilment fee of a unit sold at ``price`` [currency/unit], surcharge included."""
        from ..kernels import fee_rules

        return float(fee_rules.banded_fee(float(price), self.fulfilment_bands_array(),
                                          float(self.fulfilment_surcharge_rate)))

    def payment_fee(self, price: float) -> float:
        """Payment fee on one sale at ``price`` [currency]."""
        from ..kernels import fee_rules

        return float(fee_rules.payment_fee(float(price), float(self.payment_fee_rate),
                                           float(self.payment_fee_fixed)))

    def storage_for_month(self, month: int) -> float:
        """Storage of one reference unit held all of calendar month ``month`` [currency]."""
        return self.storage_per_unit_month[month - 1]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``inf`` bounds as None, dates as ISO text)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "date":
                value = value.isoformat()
            elif field.name == "referral_tiers":
                value = [{"up_to": None if math.isinf(u) else u, "rate": r} for u, r in value]
            elif field.name == "fulfilment_fee_bands":
                value = [{"max_price": None if math.isinf(u) else u, "inclusive": i, "fee": f} for u, i, f in value]
            elif field.name == "sources":
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out


def _describe(entry: DatedEntry, sources: Mapping[str, Source]) -> str:
    """Source line of one entry: what was read, where, when, and how sure we are."""
    cited = []
    for key in entry.source:
        src = sources.get(key)
        cited.append(f"{src.title} ({src.publisher}), {src.url}, read {src.read}" if src else key)
    text = " + ".join(cited) + f"; checked {entry.checked}; confidence {entry.confidence}"
    if entry.derived:
        text += f"; derived: {entry.derived}"
    if entry.assumed:
        text += f"; ASSUMED: {entry.note or 'no source gave this figure'}"
    return text


def _in_force(entries, day: dt.date, schedule: str, label: str):
    for entry in entries:
        if entry.in_force(day):
            return entry
    spans = ", ".join(e.span() for e in sorted(entries, key=lambda e: e.start)) or "none"
    raise FeeError(f"fee schedule {schedule} has no {label} fee in force on {day} (its entries cover: {spans})")


def fee_category_of(schedule: FeeSchedule, category: str) -> str:
    """The fee category ``category`` names (directly or by alias) in ``schedule``.

    Raises
    ------
    FeeError
        Not a category or alias of the schedule (the message lists the valid names).
    """
    found = schedule.resolve_category(category)
    if found is None:
        aliases = sorted(a for c in schedule.categories.values() for a in c.aliases)
        raise FeeError(
            f"unknown fee category {category!r} for fee schedule {schedule.name}; known categories: "
            f"{', '.join(sorted(schedule.categories))}" + (f" (aliases: {', '.join(aliases)})" if aliases else "")
        )
    return found


_NOT_CHARGED = "not charged by this channel (payment-processor schedule)"


def resolve_fees(
    schedule: str | FeeSchedule,
    category: str,
    on: dt.date | str,
    size_tier: str | None = None,
    *,
    unit_volume: float | None = None,
) -> FeeTerms:
    """The fees of ``schedule`` for ``category`` on day ``on``.

    Parameters
    ----------
    schedule : str or FeeSchedule
        A shipped schedule's name (``amazon_us``, ``amazon_de``, ``stripe_us``, ...; see
        :func:`list_fee_schedules`) or a schedule from :func:`read_fee_file`.
    category : str
        A fee category of the schedule (``electronics_accessories``) or one of its
        aliases (``charging``, ``audio``); any text for payment schedules.
    on : datetime.date or str
        The day of the sale (``YYYY-MM-DD``).
    size_tier : str, optional
        A size tier of the schedule (default: its ``default_size_tier``).
    unit_volume : float, optional
        Volume of one unit in the size tier's ``volume_unit`` for the storage fee
        (default: the tier's reference unit).

    Raises
    ------
    FeeError
        Unknown schedule, category or size tier (the message lists the valid names), no
        entry in force on the day, or a non-positive ``unit_volume``.
    """
    if isinstance(schedule, FeeSchedule):
        fees = schedule
    else:
        fees = fee_schedule(str(schedule))
    day = parse_date(on, "the fee date")
    sources = fees.sources
    name = fees.name
    described: dict[str, str] = {}
    assumed: list[str] = []

    def note(fields: tuple[str, ...], entry: DatedEntry) -> None:
        for field in fields:
            described[field] = _describe(entry, sources)
            if entry.assumed:
                assumed.append(field)

    if fees.kind == "payment":
        payment = _in_force(fees.payment, day, name, "payment")
        note(("payment_fee_rate", "payment_fee_fixed"), payment)
        for field in ("referral_tiers", "referral_min", "fulfilment_fee_bands", "storage_per_unit_month",
                      "inbound_placement_per_unit", "returns_processing_per_unit", "refund_admin_rate",
                      "refund_admin_max"):
            described[field] = _NOT_CHARGED
        return FeeTerms(
            schedule=name, kind=fees.kind, marketplace=fees.marketplace, date=day, currency=fees.currency,
            category=None, requested_category=category, size_tier=None, referral_base=fees.referral_base,
            referral_rule="marginal", referral_tiers=((math.inf, 0.0),), referral_min=0.0,
            fulfilment_fee_bands=((math.inf, True, 0.0),), fulfilment_surcharge_rate=0.0,
            fulfilment_fee_per_unit=0.0, storage_per_unit_month=(0.0,) * 12,
            storage_rate_per_volume_month=(0.0,) * 12, storage_volume_unit=None, unit_volume=0.0, unit_volume_unit=None,
            inbound_placement_per_unit=0.0, returns_processing_per_unit=0.0, refund_admin_rate=0.0,
            refund_admin_max=0.0, payment_fee_rate=payment.rate, payment_fee_fixed=payment.fixed,
            payment_fee_refunded_on_return=payment.refunded_on_return,
            sources=types.MappingProxyType(described), assumed=tuple(assumed),
        )

    fee_category = fee_category_of(fees, category)
    tier_name = size_tier if size_tier is not None else fees.default_size_tier
    if tier_name not in fees.size_tiers:
        raise FeeError(
            f"unknown size tier {tier_name!r} for fee schedule {name}; known size tiers: "
            f"{', '.join(sorted(fees.size_tiers))}"
        )
    tier = fees.size_tiers[tier_name]
    cat = fees.categories[fee_category]

    referral = _in_force(cat.referral, day, name, f"referral ({fee_category})")
    note(("referral_tiers", "referral_min"), referral)
    returns = _in_force(cat.returns_processing, day, name, f"returns_processing ({fee_category})")
    note(("returns_processing_per_unit",), returns)
    fulfilment = _in_force(tier.fulfilment, day, name, f"fulfilment ({tier_name})")
    note(("fulfilment_fee_bands", "fulfilment_fee_per_unit"), fulfilment)
    inbound = _in_force(tier.inbound_placement, day, name, f"inbound_placement ({tier_name})")
    note(("inbound_placement_per_unit",), inbound)
    storage = _in_force(fees.storage[tier.storage_class], day, name, f"storage ({tier.storage_class})")
    admin = _in_force(fees.refund_admin, day, name, "refund_admin")
    note(("refund_admin_rate", "refund_admin_max"), admin)
    payment = _in_force(fees.payment, day, name, "payment")
    note(("payment_fee_rate", "payment_fee_fixed"), payment)

    volume = tier.unit_volume if unit_volume is None else float(unit_volume)
    if not volume > 0:
        raise FeeError(f"unit_volume must be > 0 [{tier.volume_unit}], got {unit_volume!r}")
    # Storage rates are quoted per ft3 or per m3; the unit volume is in the tier's unit.
    factor = 1.0
    if storage.per != tier.volume_unit:
        factor = CUBIC_METRES_PER_CUBIC_FOOT if storage.per == "m3" else 1.0 / CUBIC_METRES_PER_CUBIC_FOOT
    rates = storage.monthly_rates()
    per_unit = tuple(rate * volume * factor for rate in rates)
    described["storage_per_unit_month"] = (
        _describe(storage, sources)
        + f"; per unit = rate per {storage.per} x unit volume {volume:g} {tier.volume_unit}"
        + (" (the size tier's reference unit, an assumption: " + tier.unit_note + ")" if unit_volume is None else "")
    )
    if storage.assumed:
        assumed.append("storage_per_unit_month")
    if unit_volume is None:
        assumed.append("unit_volume")
        described["unit_volume"] = f"ASSUMED: reference unit of size tier {tier_name}: {tier.unit_note}"
    else:
        described["unit_volume"] = "given by the caller"

    bands = tuple((finite_or_inf(b.max_price), b.inclusive, b.fee) for b in fulfilment.bands)
    single = bands[0][2] * (1.0 + fulfilment.surcharge_rate) if len(bands) == 1 else None
    return FeeTerms(
        schedule=name, kind=fees.kind, marketplace=fees.marketplace, date=day, currency=fees.currency,
        category=fee_category, requested_category=category, size_tier=tier_name,
        referral_base=fees.referral_base, referral_rule=referral.rule,
        referral_tiers=tuple((finite_or_inf(t.up_to), t.rate) for t in referral.tiers),
        referral_min=referral.minimum, fulfilment_fee_bands=bands,
        fulfilment_surcharge_rate=fulfilment.surcharge_rate, fulfilment_fee_per_unit=single,
        storage_per_unit_month=per_unit, storage_rate_per_volume_month=rates,
        storage_volume_unit=storage.per, unit_volume=volume, unit_volume_unit=tier.volume_unit,
        inbound_placement_per_unit=inbound.per_unit, returns_processing_per_unit=returns.per_unit,
        refund_admin_rate=admin.rate, refund_admin_max=admin.maximum,
        payment_fee_rate=payment.rate, payment_fee_fixed=payment.fixed,
        payment_fee_refunded_on_return=payment.refunded_on_return,
        sources=types.MappingProxyType(described), assumed=tuple(dict.fromkeys(assumed)),
    )


def check_coverage(
    schedule: str | FeeSchedule,
    category: str,
    start: dt.date | str,
    end: dt.date | str,
    size_tier: str | None = None,
) -> None:
    """Check that every fee resolves on every day of ``[start, end]`` (both included).

    Meant for config validation: a scenario that names a schedule, category and size tier
    can be refused before any work if a fee has no entry on some day of its horizon.
    Coverage can only stop on ``start`` or on a day an entry ends, so those days are the
    only ones tried.

    Raises
    ------
    FeeError
        As :func:`resolve_fees` for the first day that fails (unknown names included).
    """
    fees = schedule if isinstance(schedule, FeeSchedule) else fee_schedule(str(schedule))
    first, last = parse_date(start, "start"), parse_date(end, "end")
    if last < first:
        raise FeeError(f"end ({last}) is before start ({first})")
    days = {first} | {e.end for _, e in fees.entries() if e.end is not None and first < e.end <= last}
    for day in sorted(days):
        resolve_fees(fees, category, day, size_tier)
