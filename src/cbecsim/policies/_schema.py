"""Pydantic models of the policy library's data files (``policies/data/*.yaml``).

A data file holds one destination's named *regime sets*; a regime set is a list of
*entries*, each in force on ``[from, to)`` for a set of origins, modes and categories.
The models are frozen so one validated copy can be cached and shared.

Matching rules (also in the package docstring):

* ``origins: all`` / ``categories: all`` are *fallbacks*: they apply to the origins
  (categories) that no entry in force for the same mode names explicitly. Entries that
  name the same origin, mode and category must not overlap in dates.
* ``de_minimis`` and ``low_value_duty`` concern parcels and postal items only; a bulk
  import (B2B, to an overseas warehouse) is always dutiable.
* An ad valorem layer with ``categories`` applies only to those categories (how the US
  Section 301 lists are mapped to product categories).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "MODES",
    "Mode",
    "Money",
    "DeMinimis",
    "AdValoremLayer",
    "RateBand",
    "PostalOption",
    "PostalOptions",
    "LowValueDuty",
    "ValueBand",
    "ValueBands",
    "VatRule",
    "Fee",
    "RegimeEntry",
    "RegimeSet",
    "RegimeFile",
]

#: Shipping modes the library knows: direct B2C by courier/express, direct B2C by post,
#: B2B import to an overseas warehouse.
MODES = ("parcel", "postal", "bulk")
Mode = Literal["parcel", "postal", "bulk"]

# H = two or more consistent reputable sources, M = one, L = vendor or blog (FACTS.md);
# a range such as "M-H" where FACTS gives one.
_CONFIDENCE = r"^[HML](-[HML])?$"
_CURRENCY = r"^[A-Z]{3}$"


def _currency(optional: bool = False):
    """An ISO 4217 currency code field (required unless ``optional``)."""
    return Field(default=None, pattern=_CURRENCY) if optional else Field(pattern=_CURRENCY)


def _confidence(optional: bool = False):
    """A FACTS.md confidence grade: H, M, L or a range such as M-H."""
    return Field(default=None, pattern=_CONFIDENCE) if optional else Field(pattern=_CONFIDENCE)


def percent_text(rate: float) -> str:
    """A rate as a percentage for messages: 0.075 -> '7.5%' (6 decimals at most)."""
    return f"{round(rate * 100, 6):g}%"


class _Frozen(BaseModel):
    """Base model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Money(_Frozen):
    """An amount of money with its currency."""

    amount: float = Field(ge=0, description="[currency]")
    currency: str = _currency()


class DeMinimis(_Frozen):
    """Low-value duty exemption for parcels and postal items (never for bulk).

    Values at or under ``threshold`` are exempt while ``applies`` is true; ``applies:
    false`` records that the threshold exists in law but is suspended for this entry.
    """

    threshold: float = Field(ge=0, description="[currency], inclusive")
    currency: str = _currency()
    applies: bool
    note: str = ""


class AdValoremLayer(_Frozen):
    """One ad valorem duty by legal basis; an entry's layers add up."""

    basis: str = Field(min_length=1, description="legal basis, e.g. 'Section 301 List 3'")
    rate: float = Field(ge=0, description="fraction of customs value")
    categories: list[str] | None = Field(
        default=None, description="categories this layer applies to; all when omitted"
    )
    assumed: bool = Field(
        default=False, description="the rate is an assumption, not a FACTS.md figure (e.g. MFN 0%)"
    )
    note: str = ""
    source: str | None = None
    confidence: str | None = _confidence(optional=True)


class RateBand(_Frozen):
    """A per-item amount chosen by the band a duty rate falls in (US postal method B)."""

    max_rate: float | None = Field(default=None, ge=0, description="upper bound; None = open")
    inclusive: bool = Field(default=True, description="whether max_rate belongs to this band")
    amount: float = Field(ge=0, description="[currency/item]")


class PostalOption(_Frozen):
    """One duty method a postal shipper may elect.

    Methods
    -------
    ad_valorem
        ``rate`` x value.
    ad_valorem_from_layers
        (sum of the entry's layers whose basis starts with ``layers_prefix``) x value,
        e.g. US method A, "origin's effective IEEPA rate x value".
    per_item
        ``amount`` per item.
    per_item_by_rate_band
        an amount per item chosen by the band the layers' rate falls in (US method B).
    """

    label: str = Field(min_length=1)
    method: Literal["ad_valorem", "ad_valorem_from_layers", "per_item", "per_item_by_rate_band"]
    rate: float | None = Field(default=None, ge=0)
    layers_prefix: str | None = None
    amount: float | None = Field(default=None, ge=0)
    currency: str | None = _currency(optional=True)
    bands: list[RateBand] | None = None
    note: str = ""

    @model_validator(mode="after")
    def _fields_for_method(self) -> "PostalOption":
        needed = {
            "ad_valorem": ("rate",),
            "ad_valorem_from_layers": ("layers_prefix",),
            "per_item": ("amount", "currency"),
            "per_item_by_rate_band": ("layers_prefix", "bands", "currency"),
        }[self.method]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"postal option method {self.method!r} needs {', '.join(missing)}")
        if self.bands is not None:
            if not self.bands or self.bands[-1].max_rate is not None:
                raise ValueError("the last rate band must be open (no max_rate)")
            bounds = [band.max_rate for band in self.bands[:-1]]
            if any(b is None for b in bounds) or bounds != sorted(bounds):
                raise ValueError("rate bands must be in increasing order of max_rate")
        return self


class PostalOptions(_Frozen):
    """Alternative duty methods for postal items, paid in lieu of the layers."""

    election: Literal["cheaper"] = Field(
        default="cheaper",
        description="which option the quote applies: the cheaper one for the shipper",
    )
    options: list[PostalOption] = Field(min_length=1)
    note: str = ""


class LowValueDuty(_Frozen):
    """A flat duty on low-value parcels per distinct tariff sub-heading (EU EUR 3)."""

    amount_per_heading: float = Field(ge=0, description="[currency/heading]")
    currency: str = _currency()
    value_below: float = Field(gt=0, description="applies to values strictly below [currency]")
    note: str = ""


class ValueBand(_Frozen):
    """Duty ``rate`` x value - ``deduction`` for values up to ``max_value`` (inclusive)."""

    max_value: float = Field(gt=0, description="[currency], inclusive")
    rate: float = Field(ge=0)
    deduction: float = Field(default=0.0, ge=0, description="[currency]")


class ValueBands(_Frozen):
    """Duty by value band (Brazil's Remessa Conforme); values above the last band are
    outside the regime."""

    currency: str = _currency()
    bands: list[ValueBand] = Field(min_length=1)
    note: str = ""

    @field_validator("bands")
    @classmethod
    def _increasing(cls, bands: list[ValueBand]) -> list[ValueBand]:
        tops = [band.max_value for band in bands]
        if tops != sorted(tops) or len(set(tops)) != len(tops):
            raise ValueError("value bands must be in strictly increasing order of max_value")
        return bands


class VatRule(_Frozen):
    """A consumption tax (VAT, GST, ICMS) on the item.

    Bases: ``value`` (the customs value, net of tax), ``value_plus_duty`` (value + customs
    duty, the usual import-VAT base), ``value_plus_duty_tax_inclusive`` (the tax is part
    of its own base: tax = rate x (value + duty) / (1 - rate), Brazil's ICMS "por dentro").
    The first rule of an entry whose ``max_value`` is absent or not exceeded applies.
    """

    name: str = "VAT"
    rate: float = Field(ge=0, lt=1)
    collected: Literal["checkout", "point_of_sale", "import"]
    included_in_price: bool = Field(description="whether the consumer price includes it")
    base: Literal["value", "value_plus_duty", "value_plus_duty_tax_inclusive"]
    max_value: float | None = Field(default=None, gt=0, description="[currency], inclusive")
    currency: str | None = _currency(optional=True)
    recoverable: bool = Field(default=False, description="input VAT a registered importer reclaims")
    note: str = ""

    @model_validator(mode="after")
    def _currency_with_max(self) -> "VatRule":
        if self.max_value is not None and self.currency is None:
            raise ValueError("a VAT rule with max_value needs a currency")
        return self


class Fee(_Frozen):
    """A handling fee charged per consignment, parcel or item."""

    name: str = Field(min_length=1)
    amount: float = Field(ge=0, description="[currency]")
    currency: str = _currency()
    per: Literal["consignment", "parcel", "item"]
    max_value: float | None = Field(default=None, gt=0, description="charged up to this value, inclusive")
    note: str = ""


class RegimeEntry(_Frozen):
    """One customs regime for (origins, modes, categories) on ``[start, end)``."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    start: dt.date = Field(alias="from", description="first day in force")
    end: dt.date | None = Field(alias="to", description="first day no longer in force; None = open")
    origins: list[str] | Literal["all"]
    modes: list[Mode] = Field(min_length=1)
    categories: list[str] | Literal["all"] = "all"
    de_minimis: DeMinimis | None = None
    ad_valorem: list[AdValoremLayer] = Field(default_factory=list)
    specific_per_item: Money | None = None
    postal_options: PostalOptions | None = None
    low_value_duty: LowValueDuty | None = None
    value_bands: ValueBands | None = None
    vat: list[VatRule] = Field(default_factory=list)
    fees: list[Fee] = Field(default_factory=list)
    source: str = Field(min_length=1)
    checked: dt.date
    confidence: str = _confidence()
    note: str = ""

    @field_validator("origins")
    @classmethod
    def _iso_codes(cls, value):
        if value == "all":
            return value
        if not value:
            raise ValueError("origins must name at least one ISO code, or be 'all'")
        bad = [code for code in value if not (len(code) == 2 and code.isalpha() and code.isupper())]
        if bad:
            raise ValueError(f"origins must be two-letter upper-case ISO codes (not {', '.join(bad)})")
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value):
        if value != "all" and (not value or any(not c for c in value)):
            raise ValueError("categories must be a non-empty list of names, or 'all'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "RegimeEntry":
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"entry {self.id}: 'to' ({self.end}) must be after 'from' ({self.start})")
        if len(set(self.modes)) != len(self.modes):
            raise ValueError(f"entry {self.id}: a mode is listed twice")
        if self.postal_options is not None and "postal" not in self.modes:
            raise ValueError(f"entry {self.id}: postal_options need 'postal' in modes")
        if self.modes == ["bulk"] and (
            (self.de_minimis is not None and self.de_minimis.applies) or self.low_value_duty is not None
        ):
            raise ValueError(f"entry {self.id}: bulk imports are always dutiable (no de minimis or low-value duty)")
        if self.value_bands is not None and self.ad_valorem:
            raise ValueError(f"entry {self.id}: give either value_bands or ad_valorem layers, not both")
        return self

    @property
    def origin_tokens(self) -> set[str]:
        """Origins as a set, ``{'all'}`` for the fallback."""
        return {"all"} if self.origins == "all" else set(self.origins)

    @property
    def category_tokens(self) -> set[str]:
        return {"all"} if self.categories == "all" else set(self.categories)

    def in_force(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)

    def overlaps(self, other: "RegimeEntry") -> bool:
        """Same (origin, mode, category) on at least one common day."""
        dates = (other.end is None or self.start < other.end) and (self.end is None or other.start < self.end)
        return (
            dates
            and bool(self.origin_tokens & other.origin_tokens)
            and bool(set(self.modes) & set(other.modes))
            and bool(self.category_tokens & other.category_tokens)
        )

    def currencies(self) -> set[str]:
        """Every currency the entry's amounts are given in."""
        found: set[str] = set()
        for item in (self.de_minimis, self.specific_per_item, self.low_value_duty, self.value_bands):
            if item is not None:
                found.add(item.currency)
        for rule in self.vat:
            if rule.currency:
                found.add(rule.currency)
        for fee in self.fees:
            found.add(fee.currency)
        if self.postal_options is not None:
            found.update(o.currency for o in self.postal_options.options if o.currency)
        return found


class RegimeSet(_Frozen):
    """A named, dated list of regime entries for one destination.

    ``status``: ``default`` sets are what :func:`quote_duty` uses when no sets are
    named (they must not overlap in dates within a destination); ``variant`` sets are
    alternatives such as one member state's rules; ``example`` sets hold unconfirmed
    figures and are only used on request.
    """

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    destination: str = Field(pattern=r"^[A-Z]{2}$")
    description: str = ""
    status: Literal["default", "variant", "example"] = "default"
    member_state: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    entries: list[RegimeEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_overlap(self) -> "RegimeSet":
        ids = [entry.id for entry in self.entries]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"set {self.name}: entry id used twice: {', '.join(duplicated)}")
        problems = []
        for i, first in enumerate(self.entries):
            for second in self.entries[i + 1 :]:
                if first.overlaps(second):
                    problems.append(
                        f"set {self.name}: entries {first.id!r} ({_span(first)}) and "
                        f"{second.id!r} ({_span(second)}) overlap for "
                        f"{_shared(first, second)}"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def start(self) -> dt.date:
        """First day covered [date]."""
        return min(entry.start for entry in self.entries)

    @property
    def end(self) -> dt.date | None:
        """First day no longer covered; None when the set is open-ended."""
        ends = [entry.end for entry in self.entries]
        return None if any(e is None for e in ends) else max(ends)

    def covers(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


class RegimeFile(_Frozen):
    """A data file: one destination's regime sets (and named layers reused by anchors)."""

    destination: str = Field(pattern=r"^[A-Z]{2}$")
    currency: str = _currency()
    description: str = ""
    layers: dict[str, AdValoremLayer] = Field(
        default_factory=dict, description="named layers, reused in entries through YAML anchors"
    )
    sets: dict[str, dict] = Field(min_length=1)


def _span(entry: RegimeEntry) -> str:
    return f"{entry.start} to {entry.end or 'open'}"


def _shared(first: RegimeEntry, second: RegimeEntry) -> str:
    origins = sorted(first.origin_tokens & second.origin_tokens)
    modes = [m for m in MODES if m in first.modes and m in second.modes]
    categories = sorted(first.category_tokens & second.category_tokens)
    return f"origins {', '.join(origins)}; modes {', '.join(modes)}; categories {', '.join(categories)}"
