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
  Section 301 lists and MFN lines are mapped to product categories); one with
  ``categories_except`` to every other category (and to a quote without category).
* Every "at or under" threshold is decided by ``cbecsim.kernels.rules.low_value_exempt``
  (the engine's rule): de minimis, the EU flat duty's ``value_not_exceeding``, value
  bands, VAT and fee limits.
* A set's ``parcel_fees`` (entry and broker fees) are charged on parcels of their modes
  that the entry in force does not exempt under de minimis.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

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
    "ParcelFee",
    "POSTAL_ELECTIONS",
    "RegimeEntry",
    "RegimeSet",
    "RegimeFile",
]

#: Shipping modes the library knows: direct B2C by courier/express, direct B2C by post,
#: B2B import to an overseas warehouse.
MODES = ("parcel", "postal", "bulk")
Mode = Literal["parcel", "postal", "bulk"]

#: How a postal carrier's duty is computed (US rules from 2025-05-02): the carrier elects
#: ``ad_valorem`` or ``specific`` for all its shipments of a period; ``cheapest_per_parcel``
#: is the per-parcel minimum of the two (an optimistic bound: no carrier can elect it).
POSTAL_ELECTIONS = ("ad_valorem", "specific", "cheapest_per_parcel")
PostalElection = Literal["ad_valorem", "specific", "cheapest_per_parcel"]

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


def _iso_codes(value):
    """``all`` or a non-empty list of two-letter upper-case codes."""
    if value == "all":
        return value
    if not value:
        raise ValueError("origins must name at least one ISO code, or be 'all'")
    bad = [code for code in value if not (len(code) == 2 and code.isalpha() and code.isupper())]
    if bad:
        raise ValueError(f"origins must be two-letter upper-case ISO codes (not {', '.join(bad)})")
    return value


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
    categories_except: list[str] | None = Field(
        default=None, description="categories this layer does NOT apply to (the rest, and no category)"
    )
    assumed: bool = Field(
        default=False, description="the rate is an assumption, not a FACTS.md figure (e.g. MFN 0%)"
    )
    note: str = ""
    source: str | None = None
    confidence: str | None = _confidence(optional=True)

    @model_validator(mode="after")
    def _one_scope(self) -> "AdValoremLayer":
        if self.categories is not None and self.categories_except is not None:
            raise ValueError(f"layer {self.basis}: give categories or categories_except, not both")
        return self

    def applies_to(self, category: str | None) -> bool:
        """Whether the layer applies to ``category`` (None = no category given)."""
        if self.categories is not None:
            return category is not None and category in self.categories
        if self.categories_except is not None:
            return category is None or category not in self.categories_except
        return True


class RateBand(_Frozen):
    """A per-package amount chosen by the band a duty rate falls in (US postal method B)."""

    max_rate: float | None = Field(default=None, ge=0, description="upper bound; None = open")
    inclusive: bool = Field(default=True, description="whether max_rate belongs to this band")
    amount: float = Field(ge=0, description="[currency/postal package]")


#: Old spellings of postal methods (data files of the first library version).
_POSTAL_METHOD_ALIASES = {"per_item": "per_package", "per_item_by_rate_band": "per_package_by_rate_band"}


class PostalOption(_Frozen):
    """One duty method a postal carrier may elect.

    Methods
    -------
    ad_valorem
        ``rate`` x value (kind ``ad_valorem``).
    ad_valorem_from_layers
        (sum of the entry's layers whose basis starts with ``layers_prefix``) x value,
        e.g. US method A, "the origin's effective IEEPA rate x the value of each package"
        (kind ``ad_valorem``).
    per_package
        ``amount`` per postal package (kind ``specific``). The orders say "per item"; an
        item in postal terms is the postal item, i.e. the package (CBP's mail worksheet
        counts postal packages; Metro CB: "USD 100 per package").
    per_package_by_rate_band
        an amount per postal package chosen by the band the layers' rate falls in (US
        method B; kind ``specific``).
    """

    label: str = Field(min_length=1)
    method: Literal["ad_valorem", "ad_valorem_from_layers", "per_package", "per_package_by_rate_band"]
    rate: float | None = Field(default=None, ge=0)
    layers_prefix: str | None = None
    amount: float | None = Field(default=None, ge=0, description="[currency/postal package]")
    currency: str | None = _currency(optional=True)
    bands: list[RateBand] | None = None
    note: str = ""

    @field_validator("method", mode="before")
    @classmethod
    def _old_names(cls, value):
        return _POSTAL_METHOD_ALIASES.get(value, value)

    @property
    def kind(self) -> str:
        """``ad_valorem`` or ``specific`` (the carrier's election chooses by kind)."""
        return "ad_valorem" if self.method.startswith("ad_valorem") else "specific"

    @model_validator(mode="after")
    def _fields_for_method(self) -> "PostalOption":
        needed = {
            "ad_valorem": ("rate",),
            "ad_valorem_from_layers": ("layers_prefix",),
            "per_package": ("amount", "currency"),
            "per_package_by_rate_band": ("layers_prefix", "bands", "currency"),
        }[self.method]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"postal option method {self.method!r} needs {', '.join(missing)}")
        if self.bands is not None:
            if not self.bands or self.bands[-1].max_rate is not None:
                raise ValueError("the last rate band must be open (no max_rate)")
            bounds = [band.max_rate for band in self.bands[:-1] if band.max_rate is not None]
            if len(bounds) != len(self.bands) - 1 or bounds != sorted(bounds):
                raise ValueError("rate bands must be in increasing order of max_rate")
        return self


class PostalOptions(_Frozen):
    """Alternative duty methods for postal items, paid in lieu of the entry's layers.

    ``default_election`` is the method the quote applies when no method is asked for:
    the carrier elects one method for all its covered shipments of a period (CBP
    guidance of 2025-08-15, CSMS 65934463), so a per-parcel choice is not available to
    a seller; ``cheapest_per_parcel`` can still be asked for as a bound.
    """

    default_election: PostalElection = Field(
        default="ad_valorem", description="the method applied when the quote names none"
    )
    election_note: str = Field(default="", description="why the default is what it is (source or assumption)")
    options: list[PostalOption] = Field(min_length=1)
    note: str = ""

    @model_validator(mode="before")
    @classmethod
    def _old_election(cls, data):
        # First library version: ``election: cheaper`` (the quote took the cheaper option).
        if isinstance(data, dict) and "election" in data:
            data = dict(data)
            if data.pop("election") == "cheaper":
                data.setdefault("default_election", "cheapest_per_parcel")
        return data

    @model_validator(mode="after")
    def _one_per_kind(self) -> "PostalOptions":
        kinds = [option.kind for option in self.options]
        if len(set(kinds)) != len(kinds):
            raise ValueError("postal options: at most one ad valorem and one specific option")
        if self.default_election != "cheapest_per_parcel" and self.default_election not in kinds:
            raise ValueError(f"postal options: default election {self.default_election!r} has no option")
        return self

    def option(self, kind: str) -> "PostalOption | None":
        """The option of ``kind`` (``ad_valorem`` or ``specific``), or None."""
        return next((o for o in self.options if o.kind == kind), None)


class LowValueDuty(_Frozen):
    """A flat duty on low-value parcels per distinct tariff sub-heading (EU EUR 3).

    Give the limit as ``value_not_exceeding`` (values at or under it pay the flat duty,
    the wording of Council Regulation (EU) 2026/382) or, for files of the first library
    version, ``value_below`` (strictly under).
    """

    amount_per_heading: float = Field(ge=0, description="[currency per distinct tariff sub-heading per parcel]")
    currency: str = _currency()
    value_not_exceeding: float | None = Field(default=None, gt=0, description="applies at or under [currency]")
    value_below: float | None = Field(default=None, gt=0, description="applies strictly under [currency] (legacy)")
    ioss_only: bool = Field(
        default=False,
        description="the flat duty applies to IOSS-registered sellers only; other parcels follow "
        "the normal tariff",
    )
    note: str = ""

    @model_validator(mode="after")
    def _one_limit(self) -> "LowValueDuty":
        if (self.value_not_exceeding is None) == (self.value_below is None):
            raise ValueError("low_value_duty needs exactly one of value_not_exceeding, value_below")
        return self

    @property
    def limit(self) -> float:
        """The value limit [currency]."""
        limit = self.value_not_exceeding if self.value_not_exceeding is not None else self.value_below
        assert limit is not None, "_one_limit: exactly one of value_not_exceeding, value_below is set"
        return float(limit)

    @property
    def inclusive(self) -> bool:
        """Whether a value equal to the limit pays the flat duty."""
        return self.value_not_exceeding is not None


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
    ioss: bool | None = Field(
        default=None,
        description="rule applies to IOSS sellers only (true), to non-IOSS sellers only (false), "
        "or to both (omitted)",
    )
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


def _parcel_mode_only() -> list[Literal["parcel", "postal"]]:
    """Default modes of a parcel fee: courier parcels only."""
    return ["parcel"]


class ParcelFee(_Frozen):
    """Per-parcel costs of entering a dutiable parcel (US after de minimis), in force on
    ``[from, to)``.

    They are charged on a parcel of ``modes`` that is not exempt under the entry in
    force's de minimis (an exempt parcel needs no entry); never on bulk.
    """

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    start: dt.date = Field(alias="from")
    end: dt.date | None = Field(alias="to")
    origins: list[str] | Literal["all"] = "all"
    modes: list[Literal["parcel", "postal"]] = Field(default_factory=_parcel_mode_only, min_length=1)
    entry_fee_per_parcel: Money | None = Field(
        default=None, description="customs processing fee per dutiable parcel entry [currency]"
    )
    broker_fee_per_parcel: Money | None = Field(
        default=None, description="typical broker / carrier clearance fee per dutiable parcel [currency]"
    )
    source: str = Field(min_length=1)
    primary_source: str | None = None
    checked: dt.date
    confidence: str = _confidence()
    announced: dt.date | None = None
    note: str = ""

    @model_validator(mode="after")
    def _something(self) -> "ParcelFee":
        if self.entry_fee_per_parcel is None and self.broker_fee_per_parcel is None:
            raise ValueError(f"parcel fee {self.id}: give entry_fee_per_parcel or broker_fee_per_parcel")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"parcel fee {self.id}: 'to' must be after 'from'")
        return self

    @field_validator("origins")
    @classmethod
    def _iso(cls, value):
        return _iso_codes(value)

    def in_force(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)

    def applies_to(self, origin: str, mode: str) -> bool:
        return mode in self.modes and (self.origins == "all" or origin in self.origins)

    def currencies(self) -> set[str]:
        return {m.currency for m in (self.entry_fee_per_parcel, self.broker_fee_per_parcel) if m is not None}


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
    duty_drawback_rate: float | None = Field(
        default=None, ge=0, le=1,
        description="fraction of the duty refundable when the goods are exported or destroyed "
        "(only where sourced)",
    )
    source: str = Field(min_length=1, description="secondary source(s) read")
    primary_source: str | None = Field(
        default=None, description="the legal text: EO / FR document, CSMS, OJ, DOF, DOU reference"
    )
    checked: dt.date = Field(description="the day the sources were read")
    confidence: str = _confidence()
    announced: dt.date | None = Field(
        default=None, description="the day the change was announced or published (sourced)"
    )
    note: str = ""

    @field_validator("origins")
    @classmethod
    def _iso_codes(cls, value):
        return _iso_codes(value)

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
    parcel_fees: list[ParcelFee] = Field(default_factory=list)
    coverage_note: str = Field(
        default="", description="why the set ends where it does (e.g. what follows is not known)"
    )

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
        for field in ("entry_fee_per_parcel", "broker_fee_per_parcel"):
            fees = [fee for fee in self.parcel_fees if getattr(fee, field) is not None]
            for i, first_fee in enumerate(fees):
                for second_fee in fees[i + 1:]:
                    dates = ((second_fee.end is None or first_fee.start < second_fee.end)
                             and (first_fee.end is None or second_fee.start < first_fee.end))
                    origins = (
                        first_fee.origins == "all"
                        or second_fee.origins == "all"
                        or bool(set(first_fee.origins) & set(second_fee.origins))
                    )
                    if dates and origins and set(first_fee.modes) & set(second_fee.modes):
                        problems.append(
                            f"set {self.name}: parcel fees {first_fee.id!r} and {second_fee.id!r} both set "
                            f"{field} on the same days"
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
        ends = [entry.end for entry in self.entries if entry.end is not None]
        return max(ends) if len(ends) == len(self.entries) else None

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
    templates: dict[str, Any] = Field(
        default_factory=dict, description="named blocks (postal options, VAT rules...) reused through YAML anchors"
    )
    sets: dict[str, dict] = Field(min_length=1)


def _span(entry: RegimeEntry) -> str:
    return f"{entry.start} to {entry.end or 'open'}"


def _shared(first: RegimeEntry, second: RegimeEntry) -> str:
    origins = sorted(first.origin_tokens & second.origin_tokens)
    modes = [m for m in MODES if m in first.modes and m in second.modes]
    categories = sorted(first.category_tokens & second.category_tokens)
    return f"origins {', '.join(origins)}; modes {', '.join(modes)}; categories {', '.join(categories)}"
