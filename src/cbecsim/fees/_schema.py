"""Pydantic models of the fee library's data files (``fees/data/*.yaml``).

A data file holds ``sources`` (what was read, where, and when) and named ``schedules``.
A schedule is one channel's fees in one currency: a marketplace (referral fee by fee
category, fulfilment by size tier, storage, inbound placement, returns processing,
refund administration) or a payment processor (card fee for an own site). Every fee is a
list of *dated entries*, each in force on ``[from, to)``; entries of one list must not
overlap. Every entry names its source (a key of ``sources``), the date its figure was
checked and a confidence grade (H = two or more consistent reputable sources, M = one,
L = vendor or blog, as in FACTS.md). An entry whose figure no source gave is
``assumed: true`` and says why in its ``note``; one computed from sourced figures gives
its rule in ``derived``.

The models are frozen so one validated copy can be cached and shared.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

__all__ = [
    "Source",
    "DatedEntry",
    "ReferralTier",
    "ReferralEntry",
    "PriceBand",
    "FulfilmentEntry",
    "StorageEntry",
    "PerUnitEntry",
    "RefundAdminEntry",
    "PaymentEntry",
    "FeeCategory",
    "SizeTier",
    "FeeSchedule",
    "FeeFile",
    "CUBIC_METRES_PER_CUBIC_FOOT",
]

#: 1 ft = 0.3048 m exactly, so 1 ft3 = 0.3048**3 m3.
CUBIC_METRES_PER_CUBIC_FOOT = 0.3048**3

_CONFIDENCE = r"^[HML](-[HML])?$"
_CURRENCY = r"^[A-Z]{3}$"
_NAME = r"^[a-z0-9_]+$"


class _Frozen(BaseModel):
    """Base model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Source(_Frozen):
    """One page read for the library."""

    title: str = Field(min_length=1)
    url: str = Field(min_length=1)
    publisher: str = Field(min_length=1, description="who published it (Amazon, Stripe, a blog, ...)")
    read: dt.date = Field(description="the date the page was read for this library")
    note: str = ""


class DatedEntry(_Frozen):
    """What every fee entry carries: dates, provenance and grade."""

    start: dt.date = Field(alias="from", description="first day in force")
    end: dt.date | None = Field(default=None, alias="to", description="first day no longer in force; None = open")
    source: list[str] = Field(min_length=1, description="keys of the file's `sources`")
    checked: dt.date = Field(description="the date the figure was checked against its source")
    confidence: str = Field(pattern=_CONFIDENCE)
    assumed: bool = Field(default=False, description="no source gave this figure; `note` says why it was chosen")
    derived: str | None = Field(default=None, description="the rule that computed it from sourced figures")
    note: str = ""

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _dates(self):
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"'to' ({self.end}) must be after 'from' ({self.start})")
        return self

    def in_force(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)

    def span(self) -> str:
        return f"{self.start} to {self.end or 'open'}"


class ReferralTier(_Frozen):
    """A referral rate up to a price bound (``up_to: null`` = no bound)."""

    up_to: float | None = Field(default=None, gt=0, description="upper price bound [currency]")
    rate: float = Field(ge=0, le=1)


class ReferralEntry(DatedEntry):
    """Referral fee of one fee category: tiers, how they apply, and the per-item minimum."""

    rule: Literal["marginal", "whole_price"] = Field(
        description="marginal: each rate on the portion of the price in its tier; "
        "whole_price: the rate of the tier holding the price on all of it (bounds inclusive)"
    )
    tiers: list[ReferralTier] = Field(min_length=1)
    minimum: float = Field(ge=0, description="per-item minimum referral fee [currency]")

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: list[ReferralTier]) -> list[ReferralTier]:
        bounds = [t.up_to for t in tiers[:-1] if t.up_to is not None]
        if tiers[-1].up_to is not None:
            raise ValueError("the last referral tier must be open (up_to: null)")
        if len(bounds) != len(tiers) - 1 or any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:])):
            raise ValueError("referral tiers must have strictly increasing up_to bounds")
        return tiers


class PriceBand(_Frozen):
    """A per-unit fee for prices up to a bound (``max_price: null`` = no bound)."""

    max_price: float | None = Field(default=None, gt=0, description="upper price bound [currency]")
    inclusive: bool = Field(default=True, description="whether a price equal to max_price is in this band")
    fee: float = Field(ge=0, description="[currency/unit]")


class FulfilmentEntry(DatedEntry):
    """Fulfilment fee per unit of one size tier, by price band."""

    bands: list[PriceBand] = Field(min_length=1)
    surcharge_rate: float = Field(
        default=0.0, ge=0, description="proportional surcharge on the band fee (fuel and logistics)"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        # `fee_per_unit: x` is one open band.
        if isinstance(data, dict) and "fee_per_unit" in data:
            data = dict(data)
            if "bands" in data:
                raise ValueError("give either fee_per_unit or bands, not both")
            data["bands"] = [{"max_price": None, "fee": data.pop("fee_per_unit")}]
        return data

    @field_validator("bands")
    @classmethod
    def _bands(cls, bands: list[PriceBand]) -> list[PriceBand]:
        if bands[-1].max_price is not None:
            raise ValueError("the last price band must be open (max_price: null)")
        bounds = [b.max_price for b in bands[:-1] if b.max_price is not None]
        if len(bounds) != len(bands) - 1 or any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:])):
            raise ValueError("price bands must have strictly increasing max_price bounds")
        return bands


class StorageEntry(DatedEntry):
    """Monthly storage rate per unit of volume, with its peak months."""

    per: Literal["ft3", "m3"] = Field(description="the volume unit the rates are quoted per")
    off_peak: float = Field(ge=0, description="[currency per volume unit per month]")
    peak: float = Field(ge=0, description="[currency per volume unit per month]")
    peak_months: list[int] = Field(min_length=1, description="calendar months (1-12) charged at the peak rate")

    @field_validator("peak_months")
    @classmethod
    def _months(cls, months: list[int]) -> list[int]:
        if any(m < 1 or m > 12 for m in months) or len(set(months)) != len(months):
            raise ValueError("peak_months must be distinct month numbers 1-12")
        return sorted(months)

    def monthly_rates(self) -> tuple[float, ...]:
        """Rate of each calendar month, January first [currency per volume unit per month]."""
        return tuple(self.peak if m in self.peak_months else self.off_peak for m in range(1, 13))


class PerUnitEntry(DatedEntry):
    """A fee per unit (inbound placement per unit received, returns processing per unit returned)."""

    per_unit: float = Field(ge=0, description="[currency/unit]")


class RefundAdminEntry(DatedEntry):
    """Share of the referral fee kept on a full refund, capped per line item."""

    rate: float = Field(ge=0, le=1, description="share of the referral fee kept")
    maximum: float = Field(ge=0, description="cap per refunded line item [currency]")


class PaymentEntry(DatedEntry):
    """Card payment fee on a sale: ``rate * price + fixed``."""

    rate: float = Field(ge=0, lt=1)
    fixed: float = Field(ge=0, description="[currency per transaction]")
    refunded_on_return: bool | None = Field(
        default=None, description="whether the fee comes back when the sale is refunded; None = not known"
    )


def _check_disjoint(entries: Sequence[DatedEntry], what: str) -> None:
    ordered = sorted(entries, key=lambda e: e.start)
    for first, second in zip(ordered, ordered[1:]):
        if first.end is None or first.end > second.start:
            raise ValueError(f"{what}: entries {first.span()} and {second.span()} overlap")


class FeeCategory(_Frozen):
    """A marketplace fee category: its referral fee and its returns processing fee."""

    description: str = Field(min_length=1)
    aliases: list[str] = Field(
        default_factory=list, description="other names accepted for this category (e.g. a market's category)"
    )
    referral: list[ReferralEntry] = Field(min_length=1)
    returns_processing: list[PerUnitEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _disjoint(self) -> "FeeCategory":
        _check_disjoint(self.referral, "referral")
        _check_disjoint(self.returns_processing, "returns_processing")
        return self


class SizeTier(_Frozen):
    """A fulfilment size tier: its fee, its inbound placement fee and a reference unit."""

    description: str = Field(min_length=1)
    storage_class: str = Field(pattern=_NAME, description="key of the schedule's `storage`")
    unit_volume: float = Field(gt=0, description="volume of the reference unit, in `volume_unit`")
    volume_unit: Literal["ft3", "m3"]
    unit_note: str = Field(min_length=1, description="what the reference unit is (an assumption: units vary)")
    fulfilment: list[FulfilmentEntry] = Field(min_length=1)
    inbound_placement: list[PerUnitEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _disjoint(self) -> "SizeTier":
        _check_disjoint(self.fulfilment, "fulfilment")
        _check_disjoint(self.inbound_placement, "inbound_placement")
        return self


class FeeSchedule(_Frozen):
    """One channel's fees in one currency.

    ``kind: marketplace`` schedules have fee categories and size tiers; ``kind: payment``
    schedules (an own site's card processor) have only ``payment`` and accept any
    category (it does not change the fee).
    """

    name: str = Field(pattern=_NAME)
    kind: Literal["marketplace", "payment"]
    marketplace: str = Field(min_length=1, description="e.g. amazon.com, Stripe (own site)")
    region: str = Field(pattern=r"^[A-Z]{2}$", description="region the schedule applies to (US, EU, ...)")
    currency: str = Field(pattern=_CURRENCY)
    description: str = ""
    referral_base: Literal["net_of_sales_tax", "gross_of_vat", "none"] = Field(
        description="the price the referral fee is a percentage of: net of US sales tax, "
        "or VAT included (Amazon EU stores); none for payment schedules"
    )
    default_size_tier: str | None = None
    categories: dict[str, FeeCategory] = Field(default_factory=dict)
    size_tiers: dict[str, SizeTier] = Field(default_factory=dict)
    storage: dict[str, list[StorageEntry]] = Field(default_factory=dict)
    refund_admin: list[RefundAdminEntry] = Field(default_factory=list)
    payment: list[PaymentEntry] = Field(default_factory=list)
    # The sources of the file the schedule was read from (its entries cite their keys).
    _sources: dict[str, Source] = PrivateAttr(default_factory=dict)

    @property
    def sources(self) -> dict[str, Source]:
        """The sources its entries cite, by key (from its data file)."""
        return self._sources

    @model_validator(mode="after")
    def _consistent(self) -> "FeeSchedule":
        problems: list[str] = []
        if self.kind == "marketplace":
            for needed in ("categories", "size_tiers", "storage", "refund_admin", "payment"):
                if not getattr(self, needed):
                    problems.append(f"a marketplace schedule needs '{needed}'")
            if self.default_size_tier is None:
                problems.append("a marketplace schedule needs 'default_size_tier'")
            elif self.size_tiers and self.default_size_tier not in self.size_tiers:
                problems.append(
                    f"default_size_tier {self.default_size_tier!r} is not one of the size tiers "
                    f"({', '.join(sorted(self.size_tiers))})"
                )
            if self.referral_base == "none":
                problems.append("a marketplace schedule needs a referral_base")
        else:
            for unwanted in ("categories", "size_tiers", "storage", "refund_admin"):
                if getattr(self, unwanted):
                    problems.append(f"a payment schedule has no '{unwanted}'")
            if not self.payment:
                problems.append("a payment schedule needs 'payment'")
        for name, tier in self.size_tiers.items():
            if tier.storage_class not in self.storage:
                problems.append(
                    f"size tier {name}: storage_class {tier.storage_class!r} is not a key of "
                    f"'storage' ({', '.join(sorted(self.storage)) or 'none'})"
                )
        seen: dict[str, str] = {}
        for name, category in self.categories.items():
            for label in [name, *category.aliases]:
                if label in seen and seen[label] != name:
                    problems.append(f"category name or alias {label!r} is used by {seen[label]} and {name}")
                seen.setdefault(label, name)
        dated_lists: tuple[tuple[str, Sequence[DatedEntry]], ...] = (
            ("refund_admin", self.refund_admin), ("payment", self.payment),
            *((f"storage.{k}", v) for k, v in self.storage.items()),
        )
        for label, entries in dated_lists:
            try:
                _check_disjoint(entries, label)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def entries(self):
        """Every dated entry of the schedule, as ``(label, entry)`` pairs."""
        for name, category in self.categories.items():
            yield from ((f"categories.{name}.referral", e) for e in category.referral)
            yield from ((f"categories.{name}.returns_processing", e) for e in category.returns_processing)
        for name, tier in self.size_tiers.items():
            yield from ((f"size_tiers.{name}.fulfilment", e) for e in tier.fulfilment)
            yield from ((f"size_tiers.{name}.inbound_placement", e) for e in tier.inbound_placement)
        for name, entries in self.storage.items():
            yield from ((f"storage.{name}", e) for e in entries)
        yield from (("refund_admin", e) for e in self.refund_admin)
        yield from (("payment", e) for e in self.payment)

    @property
    def start(self) -> dt.date:
        """First day any fee of the schedule is in force."""
        return min(e.start for _, e in self.entries())

    @property
    def end(self) -> dt.date | None:
        """First day no fee is in force any more; None when open-ended."""
        ends = [e.end for _, e in self.entries()]
        return None if any(x is None for x in ends) else max(ends)

    def resolve_category(self, category: str) -> str | None:
        """The fee category named ``category`` directly or by alias, or None."""
        if category in self.categories:
            return category
        for name, entry in self.categories.items():
            if category in entry.aliases:
                return name
        return None


class FeeFile(_Frozen):
    """A data file: the sources it read and the schedules built from them."""

    description: str = ""
    sources: dict[str, Source] = Field(min_length=1)
    schedules: dict[str, dict] = Field(min_length=1)


def finite_or_inf(value: float | None) -> float:
    """A bound for the kernels: None (no bound) is ``inf``."""
    return math.inf if value is None else float(value)
