"""Scenario configuration: pydantic models, YAML loading and ``--set`` overrides.

A scenario is read from YAML with :func:`yaml.safe_load`, overridden with dotted
``key=value`` pairs, then validated as a whole. Every problem is reported at once as a
:class:`ConfigError` whose ``problems`` are ``(field path, message)`` pairs, so the CLI
can print one line per problem and exit 2 before any work is done.

Money conventions (documented in README "Units"):

* seller firm-level amounts (cash, credit line, fixed costs, unit cost, freight and
  fulfilment fees) are in USD, the accounting currency;
* market-level amounts (reference price, reserve price, bids, daily budgets) are in the
  market's own currency (``markets[].currency``), converted with ``currency_rates`` or,
  under ``fx_path: monthly``, the policy library's monthly average rates;
* duty-schedule amounts are in the entry's ``currency``.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import math
import os
import re
import reprlib
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping, Sequence, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from . import registry as _registry

__all__ = [
    "ConfigError",
    "Scenario",
    "Market",
    "FulfilmentMode",
    "DutyChange",
    "SellerPopulation",
    "SellerParams",
    "DtcSettings",
    "RETURN_RATES",
    "default_return_rate",
    "BUILTIN_STRATEGIES",
    "load_scenario",
    "apply_overrides",
    "parse_override",
    "read_yaml",
    "safe_load_bounded",
    "MAX_CONFIG_BYTES",
    "MAX_YAML_NODES",
]

#: Largest config (or sweep / experiment spec) file read [bytes].
MAX_CONFIG_BYTES = 5 * 2**20
#: Most YAML values a config may hold once its aliases (``&a`` / ``*a``) are expanded.
#: The shipped configs hold a few hundred; a daily fx_series over ten years ~7,300.
MAX_YAML_NODES = 200_000
#: Largest value of the 32-bit integer outputs (shoppers, units, stock, customers).
INT32_MAX = 2**31 - 1
#: Longest output period [days] (a month), over which integer outputs are summed.
LONGEST_PERIOD_DAYS = 31

#: Names of the strategies that ship with cbecsim (the registry, :mod:`cbecsim.registry`).
BUILTIN_STRATEGIES = tuple(_registry.BUILTIN_STRATEGIES)
_STRATEGY_PATH = _registry.STRATEGY_PATH


class ConfigError(Exception):
    """A scenario (or override) that cannot be used.

    Attributes
    ----------
    problems : list of (str, str)
        ``(field path, what was expected)`` pairs, one per problem found.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in self.problems))


class _Strict(BaseModel):
    """Base model: unknown keys are errors, values are checked on assignment too, and no
    number field accepts NaN or +-infinity (no field documents infinity as a value)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------
# Parameter distributions: a seller parameter is a number or a distribution to draw from,
# one draw per (replication, seller[, market]) from the counter-based generator.
# --------------------------------------------------------------------------------------


class Constant(_Strict):
    dist: Literal["constant"]
    value: float


class Uniform(_Strict):
    dist: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> "Uniform":
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class Normal(_Strict):
    dist: Literal["normal"]
    mean: float
    sd: float = Field(ge=0)


class LogNormal(_Strict):
    """Log-normal given by its median and the standard deviation of log(x)."""

    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(ge=0)


class Triangular(_Strict):
    dist: Literal["triangular"]
    low: float
    mode: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> "Triangular":
        if not (self.low <= self.mode <= self.high):
            raise ValueError("expected low <= mode <= high")
        return self


Distribution = Annotated[
    Union[Constant, Uniform, Normal, LogNormal, Triangular], Field(discriminator="dist")
]
ParamValue = Union[float, Distribution]


# --------------------------------------------------------------------------------------
# Markets
# --------------------------------------------------------------------------------------


class SeasonalPeak(_Strict):
    """A dated demand peak repeated every year (``MM-DD`` inclusive range)."""

    name: str
    start: str = Field(description="first day, MM-DD")
    end: str = Field(description="last day, MM-DD (inclusive)")
    multiplier: float = Field(gt=0, description="shopper-rate multiplier on those days")

    @field_validator("start", "end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        try:
            dt.datetime.strptime(f"2024-{value}", "%Y-%m-%d")
        except ValueError:
            raise ValueError(f"expected a month-day like 07-15, got {value!r}") from None
        return value


class BasketParcel(_Strict):
    """One parcel composition of a market's sales: units, distinct tariff sub-headings
    among them, and the share of parcels that look like this."""

    units: int = Field(ge=1, le=1000, description="units in the parcel")
    headings: int = Field(ge=1, le=1000, description="distinct tariff sub-headings among them (at most units)")
    share: float = Field(gt=0, le=1, description="share of the market's parcels of this composition")

    @model_validator(mode="after")
    def _headings_at_most_units(self) -> "BasketParcel":
        if self.headings > self.units:
            raise ValueError(f"headings ({self.headings}) cannot exceed units ({self.units}): each sub-heading "
                             "needs at least one unit in the parcel")
        return self


def _origin_code(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise ValueError(f"expected a two-letter upper-case country code such as CN, VN or MX (ISO 3166 alpha-2; "
                         f"XT for goods found transshipped), got {value!r}")
    return value


def _default_basket() -> list[BasketParcel]:
    return [BasketParcel(units=1, headings=1, share=1.0)]


def _default_seasonality() -> list[SeasonalPeak]:
    # Retail calendar peaks named in DESIGN.md: Prime Day (mid-July), Black Friday /
    # Cyber Monday, the December gift season. Multipliers are illustrative defaults.
    return [
        SeasonalPeak(name="prime_day", start="07-08", end="07-11", multiplier=2.0),
        SeasonalPeak(name="black_friday_cyber_monday", start="11-27", end="12-01", multiplier=2.5),
        SeasonalPeak(name="holiday_season", start="12-02", end="12-20", multiplier=1.4),
    ]


class Market(_Strict):
    """A market segment: destination region x product category.

    Demand: ``N ~ Poisson(shoppers_per_day * season(t))`` shoppers a day, each choosing by
    attention-weighted multinomial logit with an outside option (DESIGN.md section 2).
    """

    region: str = Field(min_length=1, description="destination region code, e.g. US, EU")
    category: str = Field(min_length=1, description="product category, e.g. charging")
    currency: str = Field(default="USD", description="currency of prices, bids and budgets")
    shoppers_per_day: float = Field(ge=0, description="mean shoppers a day outside peaks")
    seasonality: list[SeasonalPeak] = Field(default_factory=_default_seasonality)
    basket: list[BasketParcel] = Field(
        default_factory=_default_basket, min_length=1, max_length=32,
        description="the parcels a direct (parcel or postal) sale ships in: units and distinct tariff sub-headings "
        "per parcel with their shares (summing to 1). The parcel's value for de minimis thresholds is its units x "
        "the unit's value; duty per parcel (the EU's EUR 3 per sub-heading, a US postal amount per package, entry "
        "fees) is spread over its units. Default one unit in one sub-heading [assumption: the upper bound of "
        "per-unit flat duties; no source found for the composition of low-value parcels]",
    )
    reference_price: float = Field(gt=0, description="typical price in the category [currency/unit]")
    vat_rate: float = Field(default=0.0, ge=0, le=1, description="VAT included in the price (EU/UK)")
    sponsored_slots: int = Field(
        default=10, ge=0, le=10, description="K sponsored slots (positions of the click-through curve)"
    )
    reserve_price: float = Field(default=0.10, ge=0, description="minimum cost per click [currency]")
    # FACTS.md: generic search position click-through 30/22/14/10/8/6/4/3/2/2 % (conf L).
    click_through: list[float] = Field(
        default_factory=lambda: [0.30, 0.22, 0.14, 0.10, 0.08, 0.06, 0.04, 0.03, 0.02, 0.02],
        description="click-through by sponsored position, as the share of a slot's impressions that are clicks",
    )
    # The three below are calibrated together (`cbecsim validate configs/baseline.yaml
    # --calibration`) so that the baseline reproduces FACTS.md's site conversion (2.5-3%),
    # ad click conversion (~10%), CPC (~USD 1) and ACoS (~30%): site conversion / ad click
    # conversion ~ total attention per shopper (organic + sponsored).
    sponsored_impression_share: float = Field(
        default=0.14,
        ge=0,
        le=1,
        description="share of shoppers who see the sponsored slots; the attention of slot k "
        "is sponsored_impression_share * click_through[k] [calibrated]",
    )
    auction_rounds: int = Field(
        default=4,
        ge=1,
        le=24,
        description="[assumption] sponsored auctions a day, each over an equal share of the shoppers "
        "(budget pacing: a bidder whose budget runs out leaves its slot to the next for the rest of the day)",
    )
    organic_attention: float = Field(
        default=0.08, ge=0,
        description="examination weight of the top organic position, in the units of sponsored attention "
        "(share of shoppers who consider the listing) [calibrated]",
    )
    # The results page (issue 13): a shopper considers the organic listings in rank order
    # (the flywheel) plus the sponsored ones, and chooses among them by nested logit.
    page_size: int = Field(
        default=48, ge=1, le=1000,
        description="[assumption] organic positions a shopper may examine (Amazon's grid results page "
        "shows 48); listings ranked beyond them are found only through ads",
    )
    position_decay: float = Field(
        default=1.18, ge=0,
        description="eta: organic position r (0 = top) is examined with weight (1 + r)^-eta [derived: fits "
        "FACTS.md's generic position click-through curve, 30% at position 1 and 2% at position 10 "
        "(ln 15 / ln 10 = 1.18); position changes what is examined, not utility (Ursu 2018, Expedia experiment)]",
    )
    nest_parameter: float = Field(
        default=0.5, gt=0, le=1,
        description="lambda of the nested logit: the page's listings share a nest apart from the outside "
        "option; 1 = plain multinomial logit, smaller = closer substitutes. About 1 - lambda of the sales a "
        "listing loses to a price rise go to its rivals, and the category's elasticity is about "
        "-price_sensitivity x lambda. [assumption, not fitted: the elasticities and ad incrementality it "
        "implies are held-out checks]",
    )
    base_utility: float = Field(
        default=-6.3, description="utility intercept of a listing [calibrated: site conversion]"
    )
    price_sensitivity: float = Field(
        default=2.5, ge=0,
        description="beta on log(price/reference) in the within-page utility; a listing's own-price elasticity is "
        "about -beta when its share of the page is small (a held-out check)",
    )
    brand_weight: float = Field(default=1.0, ge=0, description="alpha on brand equity")
    rating_weight: float = Field(default=0.8, ge=0, description="gamma on (rating - 4)")
    delivery_weight: float = Field(
        default=0.02, ge=0,
        description="delta: utility lost per day of delivery. A day faster raises demand ~2% (Oblander & Jerath "
        "2024: +1.98%; Cui et al. 2021: +0.73%), read 2026-12-02 [M]",
    )
    referral_fee_rate: float = Field(
        default=0.15, ge=0, le=1,
        description="FACTS.md: Amazon 15%; one rate on the VAT-inclusive price, used only when the market "
        "names no fee_schedule",
    )
    referral_fee_min: float = Field(
        default=0.30, ge=0, description="FACTS.md: min USD 0.30 [currency]; used only without fee_schedule"
    )
    fee_schedule: str | None = Field(
        default=None,
        description="marketplace fee schedule from the fee library (`cbecsim fees list`, e.g. amazon_us): "
        "dated referral tiers and minimum, fulfilment fee by size tier and price band, storage with its Q4 "
        "peak, inbound placement, returns processing, refund administration fee. Without one the market "
        "charges referral_fee_rate / referral_fee_min and each mode its own fees",
    )
    fee_category: str | None = Field(
        default=None, description="the schedule's fee category; default: the market's category (or its alias)"
    )
    size_tier: str | None = Field(default=None, description="the schedule's size tier; default: its default tier")
    unit_volume: float | None = Field(
        default=None, gt=0,
        description="volume of one unit for storage, in the size tier's volume unit (ft3 for amazon_us, m3 for "
        "amazon_de); default: the tier's reference unit",
    )
    visibility_rate: float = Field(default=0.10, gt=0, le=1, description="lambda of the sales-velocity flywheel")
    visibility_floor: float = Field(
        default=0.2, gt=0,
        description="deprecated, ignored since the results page (issue 13) replaced attention shares: organic "
        "rank now orders listings by their flywheel score",
    )
    # --- model layers (issue 7): returns, ratings, retention, incidents, FX -------------
    return_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="probability a sold unit is returned (before localisation); default by "
        "category from FACTS.md (see RETURN_RATES); 0 switches returns off",
    )
    repeat_purchase_rate: float = Field(
        default=0.0,
        ge=0,
        description="daily repurchase hazard of a customer [1/day], raised by localisation and, "
        "for DTC customers, by CRM. No sourced figure: 0 (off) by default, so calibrated "
        "conversion and ACoS are those of first purchases; 0.001 [assumption] means ~30% buy "
        "again within a year",
    )
    customer_lapse_rate: float = Field(
        default=1.0 / 365.0,
        ge=0,
        le=1,
        description="[assumption] daily probability a customer is lost for good [1/day]",
    )
    incidents_per_year: float = Field(
        default=1.0,
        ge=0,
        description="[assumption] compliance incidents (listing interruptions) per listing-year "
        "with no compliance investment and no recent rule change",
    )
    interruption_days: float = Field(
        default=7.0,
        ge=1,
        description="[assumption] mean days a listing is down after an incident (1 + Poisson)",
    )
    rule_change_incident_multiplier: float = Field(
        default=3.0,
        ge=1,
        description="[assumption] incident hazard multiplier after a duty-regime change in the market",
    )
    rule_change_window_days: int = Field(
        default=90, ge=0, le=36_525, description="[assumption] days the raised hazard lasts after a change"
    )
    rating_memory_units: float = Field(
        default=1000.0,
        ge=0,
        description="[assumption] units sold over which the rating averages buyers' experience; 0 keeps ratings fixed",
    )
    rating_return_penalty: float = Field(
        default=2.0, ge=0, description="[assumption] stars lost per unit of return fraction"
    )
    rating_delivery_penalty: float = Field(default=0.06, ge=0, description="[assumption] stars lost per delivery day")
    fx_volatility: float = Field(
        default=0.0,
        ge=0,
        description="daily standard deviation of log(USD rate) of the market currency; 0 = "
        "no FX risk (markets sharing a currency share its shocks)",
    )
    fx_series: dict[dt.date, float] | None = Field(
        default=None,
        description="USD per unit of the market currency from each date on (a step series); "
        "before the first date the scenario's currency_rates apply",
    )

    @field_validator("fx_series")
    @classmethod
    def _fx_series(cls, value: dict[dt.date, float] | None) -> dict[dt.date, float] | None:
        if value is not None and any(not rate > 0 for rate in value.values()):
            raise ValueError("every rate of fx_series must be > 0")
        return value

    @property
    def effective_return_rate(self) -> float:
        """``return_rate`` if set, else the category default from :data:`RETURN_RATES`."""
        return self.return_rate if self.return_rate is not None else default_return_rate(self.category)

    @property
    def name(self) -> str:
        return f"{self.region}/{self.category}"

    @field_validator("click_through")
    @classmethod
    def _ctr(cls, value: list[float]) -> list[float]:
        if any(c < 0 or c > 1 for c in value):
            raise ValueError("each click-through must be within 0..1")
        return value

    @field_validator("basket")
    @classmethod
    def _basket_shares(cls, value: list[BasketParcel]) -> list[BasketParcel]:
        total = math.fsum(parcel.share for parcel in value)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"the basket's shares must sum to 1, got {total:g}")
        return value

    @model_validator(mode="after")
    def _enough_ctr(self) -> "Market":
        if len(self.click_through) < self.sponsored_slots:
            raise ValueError(
                f"click_through has {len(self.click_through)} positions, "
                f"fewer than sponsored_slots={self.sponsored_slots}"
            )
        return self


# --------------------------------------------------------------------------------------
# Fulfilment
# --------------------------------------------------------------------------------------


class OriginLeg(_Strict):
    """How a fulfilment mode differs when the goods ship from one origin."""

    freight_per_unit: float | None = Field(default=None, ge=0, description="[USD/unit]; default: the mode's")
    lead_time_days: tuple[int, int] | None = Field(
        default=None, description="replenishment lead time from this origin [min, max] days; default: the mode's",
    )

    @field_validator("lead_time_days")
    @classmethod
    def _lead(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None:
            low, high = value
            if low < 1 or high < low or high > 3650:
                raise ValueError(f"expected [min, max] with 1 <= min <= max <= 3650 days, got [{low}, {high}]")
        return value


class FulfilmentMode(_Strict):
    """How units reach the shopper.

    ``kind: parcel`` is a direct B2C courier parcel from the origin, valued for customs at
    the transaction price; ``kind: postal`` is the same shipment by post, which pays the
    duty method its carrier elected where a regime offers postal options (the US from
    2025-05-02; the population's ``postal_duty_method``); ``kind: bulk`` is a B2B import to
    an overseas warehouse, valued at the import (cost) value and always dutiable.
    """

    kind: Literal["parcel", "bulk", "postal"]
    freight_per_unit: float = Field(ge=0, description="[USD/unit]")
    delivery_days: float = Field(ge=0, description="days from order to doorstep")
    lead_time_days: tuple[int, int] = Field(description="replenishment lead time, uniform on [min, max] days")
    fulfilment_fee_per_unit: float = Field(
        default=0.0, ge=0,
        description="[USD/unit]; a bulk mode with schedule_fees pays the market's fee schedule instead where "
        "the market names one",
    )
    handling_fee_per_unit: float = Field(default=0.0, ge=0, description="[USD/unit]")
    schedule_fees: bool = Field(
        default=True,
        description="bulk modes: the warehouse is the marketplace's (FBA), so fulfilment, storage and inbound "
        "placement come from the market's fee_schedule when it names one; false for a third-party "
        "warehouse charging fulfilment_fee_per_unit and storage_per_unit_month",
    )
    storage_per_unit_month: float = Field(
        default=0.0, ge=0,
        description="bulk modes without schedule fees: storage per unit held a month [USD/unit/month]",
    )
    badge_utility: float = Field(
        default=0.0,
        description="utility a listing gains while this mode serves it: a marketplace's fast-delivery badge "
        "(Amazon Prime on FBA stock). ln(1.5) = 0.41 matches Amazon's report that Seller Fulfilled Prime "
        "trial listings sold over 50% more (eComEngine 2016, read 2026-12-02) [L]; 0 by default",
    )
    by_origin: dict[str, OriginLeg] = Field(
        default_factory=dict,
        description="freight and lead time from particular origins, e.g. {VN: {freight_per_unit: 0.7, "
        "lead_time_days: [35, 55]}}; other origins use the mode's own",
    )
    switch_cost: float = Field(
        default=0.0, ge=0,
        description="one-off cost of moving a listing into this mode (set-up, labelling, the first shipment's "
        "paperwork) [USD per listing]; strategies weigh it against the saving over their payback horizon",
    )

    @field_validator("lead_time_days")
    @classmethod
    def _lead(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if low < 1 or high < low or high > 3650:
            raise ValueError(f"expected [min, max] with 1 <= min <= max <= 3650 days, got [{low}, {high}]")
        return value


def _default_fulfilment() -> dict[str, FulfilmentMode]:
    # FACTS.md Logistics: express courier 3-7 days (USD 15-25/kg; ~0.25 kg small item),
    # factory replenishment of origin stock; sea freight 40-60+ days door to door, FBA
    # small-standard fee about USD 3.5 per unit.
    return {
        "direct_parcel": FulfilmentMode(kind="parcel", freight_per_unit=4.5, delivery_days=7, lead_time_days=(5, 10)),
        "overseas_warehouse": FulfilmentMode(
            kind="bulk",
            freight_per_unit=0.6,
            delivery_days=2,
            lead_time_days=(40, 60),
            fulfilment_fee_per_unit=3.5,
        ),
    }


# --------------------------------------------------------------------------------------
# Duty schedule: dated regime changes
# --------------------------------------------------------------------------------------


#: Fulfilment kinds a duty change may name.
DUTY_KINDS = ("parcel", "bulk", "postal")

#: The kinds the engine's regime table has: the policy library emits changes for these.
ENGINE_DUTY_KINDS: tuple[str, ...] = ("parcel", "bulk", "postal")


class DutyFields(_Strict):
    """Regime fields a dated change may set; unset fields keep their previous value.

    Money fields are in the change's ``currency``. Which kinds a field concerns:
    ``parcel`` = direct B2C courier parcel (valued at the transaction price), ``postal`` =
    direct B2C by post, ``bulk`` = B2B import to an overseas warehouse (never exempt).
    """

    ad_valorem_rate: float | None = Field(
        default=None,
        ge=0,
        description="fraction of value; for kind postal with a carrier election, the ad valorem "
        "method's rate (US method A: the origin's effective IEEPA rate, EO 14324)",
    )
    de_minimis: bool | None = Field(
        default=None, description="parcels (and postal items) at or under the threshold are exempt"
    )
    de_minimis_threshold: float | None = Field(
        default=None,
        ge=0,
        description="[currency] per parcel; 'at or under' (cbecsim.kernels.rules.low_value_exempt: "
        "US USD 800, EU EUR 150, UK GBP 135)",
    )
    low_value_duty_per_item: float | None = Field(
        default=None,
        ge=0,
        description="legacy: flat duty per unit on exempt low-value parcels [currency/unit]; an "
        "engine that knows low_value_duty_per_heading uses that instead when it is set",
    )
    low_value_duty_per_heading: float | None = Field(
        default=None,
        ge=0,
        description="flat duty per distinct tariff sub-heading per parcel at or under the threshold "
        "[currency/sub-heading/parcel] (EU EUR 3, Council Regulation (EU) 2026/382); the duty per "
        "unit is the parcel's spread over its units",
    )
    low_value_duty_ioss_only: bool | None = Field(
        default=None,
        description="the flat low-value duty applies to IOSS-registered sellers only; other sellers' "
        "parcels follow the standard regime (ad valorem). The EU's adopted rule applies it whatever "
        "the VAT scheme (false)",
    )
    specific_duty_per_item: float | None = Field(
        default=None, ge=0, description="per-item duty on all dutiable imports [currency/unit]"
    )
    postal_specific_per_package: float | None = Field(
        default=None,
        ge=0,
        description="kind postal: the specific duty method's amount per postal package [currency/"
        "package] (US method B: USD 80/160/200 by the origin's IEEPA rate band, 2025-08-29 to "
        "2026-02-28; USD 100 for CN/HK from 2025-05-02, EO 14256/14298)",
    )
    postal_specific_available: bool | None = Field(
        default=None,
        description="kind postal: whether a specific method is offered; when false a carrier that "
        "elected 'specific' pays the ad valorem method",
    )
    entry_fee_per_parcel: float | None = Field(
        default=None,
        ge=0,
        description="customs processing fee per dutiable (not de minimis exempt) parcel entry "
        "[currency/parcel] (US informal-entry MPF USD 2.62 FY2025, USD 2.69 FY2026: FR Docs "
        "2024-15990, 2025-13869)",
    )
    broker_fee_per_parcel: float | None = Field(
        default=None,
        ge=0,
        description="typical broker / carrier clearance fee per dutiable parcel [currency/parcel] "
        "(UPS USD 2.50 from 2025-09-08, confidence L)",
    )
    duty_drawback_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="fraction of the duty refundable on goods returned and exported or destroyed "
        "(US 99%, 19 U.S.C. 1313, where sourced for every duty layer: Section 122, Section 301, "
        "MFN); 0 where the library has no sourced figure",
    )


class DutyChange(_Strict):
    """A regime change in force from ``date`` on, for matching markets and origins."""

    region: str
    date: dt.date
    currency: str = "USD"
    origins: list[str] | None = Field(default=None, description="seller origins; all if omitted")
    categories: list[str] | None = Field(default=None, description="categories; all if omitted")
    kinds: list[Literal["parcel", "bulk", "postal"]] | None = Field(
        default=None, description="fulfilment kinds (parcel, bulk, postal); all if omitted"
    )
    set: DutyFields
    source: str | None = Field(default=None, description="where the figure comes from")
    announced: dt.date | None = Field(
        default=None,
        description="the day the change was announced or published (sourced); strategies may "
        "front-load stock ahead of announced changes. Must not be after date",
    )

    @model_validator(mode="after")
    def _announced_first(self) -> "DutyChange":
        if self.announced is not None and self.announced > self.date:
            raise ValueError(f"announced ({self.announced}) is after the change's date ({self.date})")
        return self


# --------------------------------------------------------------------------------------
# Sellers
# --------------------------------------------------------------------------------------


#: Return rates by product class, mid-points of the ranges in FACTS.md "Marketplace
#: economics" (online ~20% overall; apparel 20-40%, shoes 25-35%, electronics 8-15%,
#: home 5-15%, beauty 5-12%; conf H overall, L by category).
RETURN_RATES = {
    "electronics": 0.115,
    "apparel": 0.30,
    "shoes": 0.30,
    "home": 0.10,
    "beauty": 0.085,
    "other": 0.20,  # FACTS.md: online ~20% overall
}

#: Categories read as one of the classes above (others get "other").
_CATEGORY_CLASS = {
    "charging": "electronics",
    "audio": "electronics",
    "electronics": "electronics",
    "phones": "electronics",
    "computers": "electronics",
    "cameras": "electronics",
    "gaming": "electronics",
    "apparel": "apparel",
    "clothing": "apparel",
    "fashion": "apparel",
    "shoes": "shoes",
    "footwear": "shoes",
    "home": "home",
    "kitchen": "home",
    "furniture": "home",
    "beauty": "beauty",
    "cosmetics": "beauty",
}


def default_return_rate(category: str) -> float:
    """Return rate of a market category from FACTS.md (see :data:`RETURN_RATES`)."""
    return RETURN_RATES[_CATEGORY_CLASS.get(category.lower(), "other")]


class DtcSettings(_Strict):
    """The direct-to-consumer channel (own site / social commerce) of a population.

    No referral fee and no sponsored auction: new customers are bought at a cost per
    acquisition, and first-party customers repurchase at a higher rate (CRM).
    """

    cac: float = Field(
        default=25.0,
        ge=0,
        description="[assumption] paid acquisition cost per new DTC customer [USD]",
    )
    new_customers_per_day: float = Field(
        default=3.0,
        ge=0,
        description="[assumption] new DTC customers a day per listed market at dtc_share 1",
    )
    crm_repeat_multiplier: float = Field(
        default=2.0,
        ge=1,
        description="[assumption] repurchase hazard of DTC customers / marketplace customers "
        "(email, messaging, loyalty)",
    )
    payment_fee_schedule: str | None = Field(
        default=None,
        description="card payment fees of the own site from the fee library (stripe_us, stripe_eea, "
        "shopify_payments_us), charged on every DTC sale; none by default",
    )


class SellerParams(_Strict):
    """Per-seller parameters; each may be a number or a distribution."""

    initial_cash: ParamValue = Field(default=50_000.0, description="[USD]")
    credit_line: ParamValue = Field(
        default=25_000.0,
        description="[USD] credit the seller may draw: orders and ads never spend past it; insolvent when "
        "equity < -credit_line, or cash < -credit_line with no stock to recover it within recovery_days. "
        "(Amazon Lending offers USD 1,000-750,000, terms up to 12 months; Finder, read 2026-12-02 [L])",
    )
    credit_interest_rate: ParamValue = Field(
        default=0.12,
        description="annual interest on drawn credit (negative cash), charged daily [fraction/year]. Amazon "
        "Lending APRs reported by borrowers 3-16.9% (Finder), <1-13.9% (WSJ via debt.org), read 2026-12-02 [L]",
    )
    recovery_days: ParamValue = Field(
        default=60.0,
        description="[assumption] horizon over which a seller past its credit line may sell the stock it holds "
        "or has in transit to get back within the line before it is insolvent [days]",
    )
    fixed_cost_per_day: ParamValue = Field(default=40.0, description="overheads [USD/day]")
    unit_cost: ParamValue = Field(default=8.0, description="factory cost per unit, per market [USD]")
    price_index: ParamValue = Field(default=1.0, description="price / market reference price")
    bid: ParamValue = Field(default=1.0, description="cost-per-click bid [market currency]")
    daily_budget: ParamValue = Field(default=60.0, description="ad budget [market currency/day]")
    brand: ParamValue = Field(default=0.0, description="brand equity (utility units)")
    rating: ParamValue = Field(default=4.3, description="star rating 1..5")
    expected_daily_units: ParamValue = Field(default=4.0, description="initial demand estimate per market [units/day]")
    cover_days: ParamValue = Field(default=30.0, description="stock ordered to cover this many days beyond lead time")
    safety_days: ParamValue = Field(default=7.0, description="safety stock [days of demand]")


class SellerPopulation(_Strict):
    """A group of sellers following one strategy."""

    name: str | None = Field(default=None, description="label; defaults to the strategy name")
    strategy: str = Field(description="built-in name or 'package.module:Class'")
    count: int = Field(ge=0, le=1_000_000, description="sellers in the population")
    origin: str = Field(
        default="CN",
        description="country the goods ship from: an ISO 3166 alpha-2 code (CN, HK, VN, IN, MX, ...), or XT for "
        "goods customs finds transshipped; duty follows the policy library's entries for that origin "
        "(`cbecsim policies show`)",
    )
    @field_validator("origin")
    @classmethod
    def _origin_code(cls, value: str) -> str:
        return _origin_code(value)

    @field_validator("origin_options")
    @classmethod
    def _origin_codes(cls, value: list[str]) -> list[str]:
        if len(set(value)) < len(value):
            raise ValueError(f"an origin is listed twice: {value}")
        return [_origin_code(code) for code in value]

    origin_options: list[str] = Field(
        default_factory=list,
        description="origins the sellers may move production to (e.g. [VN, MX]; list the population's own "
        "origin too to allow moving back): a strategy action, taken by the built-in strategies when the "
        "landed-cost saving at their current sales repays origin_switch_cost within their origin_payback_days; "
        "orders placed once production has moved ship from the new origin and pay its duty",
    )
    origin_switch_cost: float = Field(
        default=0.0, ge=0,
        description="one-off cost of moving a seller's production to another origin [USD per seller] "
        "[assumption: set it; no source prices a supplier move]",
    )
    origin_switch_lead_days: int = Field(
        default=90, ge=0, le=3650,
        description="days from the decision until production at the new origin starts [days] [assumption]",
    )
    postal_duty_method: Literal["ad_valorem", "specific", "cheapest_per_parcel"] = Field(
        default="ad_valorem",
        description="postal modes: the duty method the sellers' postal carrier elected where a regime offers "
        "postal options (US from 2025-05-02: ad valorem at the origin's rate, or a specific amount per package; "
        "a carrier elects one method for all its shipments, CBP CSMS 65934463). ad_valorem [assumption: no source "
        "names the carriers' election; it is the only method left after 2026-02-28]; cheapest_per_parcel is an "
        "optimistic bound",
    )
    ioss: bool = Field(
        default=True,
        description="registered for the EU's Import One-Stop Shop; where a flat low-value duty is for IOSS "
        "sellers only, a non-IOSS seller's parcels pay the normal tariff (the EU's adopted EUR 3 applies "
        "whatever the VAT scheme, Council Regulation (EU) 2026/382)",
    )
    markets: list[str] = Field(min_length=1, description="market names REGION/CATEGORY served")
    fulfilment: str | dict[str, str] = Field(
        default="direct_parcel", description="mode name, or a mapping market -> mode"
    )
    review_days: int = Field(default=7, ge=1, le=36_525, description="days between strategy reviews")
    params: SellerParams = Field(default_factory=SellerParams)
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    # --- the seed paper's four levers (issue 7); each has a cost -------------------------
    market_selection: Literal["all", "traffic", "fit"] = Field(
        default="all",
        description="which of `markets` to enter: all; `traffic` (largest shopper volume "
        "first); `fit` (demand x margin after landed cost, minus compliance, logistics and "
        "competition burden; costs market_research_cost per candidate market)",
    )
    max_markets: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="markets entered under traffic/fit (default: traffic 1, fit every market with a positive score)",
    )
    max_top_market_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="cap on the top market's share of revenue: above it the top market's ad "
        "budget is cut to cap/share and the next market by the selection rule is entered",
    )
    market_research_cost: float = Field(
        default=2000.0, ge=0, description="[assumption] one-off fit analysis per candidate market [USD]"
    )
    localisation: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="localisation level: raises brand utility and retention, lowers returns",
    )
    localisation_cost_per_market_month: float = Field(
        default=1500.0,
        ge=0,
        description="[assumption] cost of full localisation (content, service, labels) per "
        "listed market and month [USD]; charged pro rata to the level",
    )
    localisation_brand_lift: float = Field(
        default=0.5, ge=0, description="[assumption] brand-equity units added at localisation 1"
    )
    localisation_return_cut: float = Field(
        default=0.3, ge=0, le=1, description="[assumption] share of returns avoided at localisation 1"
    )
    localisation_retention_lift: float = Field(
        default=1.0, ge=0, description="[assumption] relative rise of the repurchase hazard at localisation 1"
    )
    dtc_share: float = Field(
        default=0.0, ge=0, le=1, description="share of the DTC channel's acquisition capacity used"
    )
    dtc: DtcSettings = Field(default_factory=DtcSettings)
    ad_guardrail: Literal["none", "roas", "cm2_ltv"] = Field(
        default="none",
        description="cap on the ad budget after each review: `roas` (revenue / roas_target) "
        "or `cm2_ltv` (contribution before ads + new customers x expected repeat margin; "
        "costs analytics_cost_per_month)",
    )
    roas_target: float = Field(default=3.3, gt=0, description="FACTS.md: typical ACoS ~30%, i.e. ROAS ~3.3 [L]")
    analytics_cost_per_month: float = Field(
        default=300.0, ge=0, description="[assumption] CM2/LTV analytics per seller and month [USD]"
    )
    compliance_investment: float = Field(
        default=0.0, ge=0, le=1, description="compliance-by-design level: lowers the incident hazard"
    )
    compliance_cost_per_market_month: float = Field(
        default=800.0,
        ge=0,
        description="[assumption] cost of full compliance files, tests and monitoring per listed "
        "market and month [USD]; charged pro rata to the level",
    )
    compliance_incident_cut: float = Field(
        default=0.8, ge=0, le=1, description="[assumption] share of incidents avoided at investment 1"
    )

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        if value in BUILTIN_STRATEGIES:
            return value
        if not _STRATEGY_PATH.match(value):
            raise ValueError(
                f"unknown strategy {value!r}: expected one of {', '.join(BUILTIN_STRATEGIES)} "
                "or a dotted path 'package.module:ClassName'"
            )
        return value

    @field_validator("strategy_params")
    @classmethod
    def _finite_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = _non_finite(value, "")
        if bad:
            path, number = bad
            raise ValueError(f"{path.lstrip('.')}: expected a finite number, got {number}")
        return value

    @property
    def label(self) -> str:
        return self.name or self.strategy


def _non_finite(value: Any, path: str = "strategy_params") -> tuple[str, float] | None:
    """The first NaN or infinite float inside nested mappings / lists, with its path."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}")
        if found:
            return found
    return None


def upper_value(param: Any) -> float:
    """A value a seller parameter will practically not exceed: a constant itself, the
    upper end of a bounded distribution, mean + 8 sd (normal), median x exp(8 sigma)."""
    if isinstance(param, (int, float)):
        return float(param)
    if isinstance(param, Constant):
        return param.value
    if isinstance(param, (Uniform, Triangular)):
        return param.high
    if isinstance(param, Normal):
        return param.mean + 8 * param.sd
    if isinstance(param, LogNormal):
        return param.median * math.exp(min(8 * param.sigma, 700))
    return math.nan  # pragma: no cover


class Horizon(_Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> "Horizon":
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _default_currency_rates() -> dict[str, float]:
    # Imported here: the policy library reads its data files on first use.
    from .policies import latest_usd_rates

    return latest_usd_rates()


class Scenario(_Strict):
    """A complete, validated experiment configuration."""

    name: str = "scenario"
    description: str = ""
    horizon: Horizon
    seed: int = Field(default=12345, ge=0, lt=2**63)
    replications: int = Field(default=100, ge=1, lt=2**62)
    currency_rates: dict[str, float] = Field(
        default_factory=_default_currency_rates,
        description="USD per unit of each currency (fixed). Default: the latest month of the "
        "policy library's sourced monthly series (cbecsim.policies.latest_usd_rates: Federal "
        "Reserve G.5 monthly averages; ECB for RON)",
    )
    fx_path: Literal["fixed", "monthly"] | None = Field(
        default=None,
        description="exchange rates over the horizon: 'monthly' = the policy library's sourced monthly averages "
        "(Federal Reserve G.5, ECB for RON; `cbecsim.policies.usd_rate`), for prices, bids and the duty "
        "regimes' amounts alike (the last published month stands in for later days); 'fixed' = "
        "currency_rates on every day. Default: monthly unless the config sets currency_rates",
    )
    markets: list[Market] = Field(min_length=1)
    fulfilment_modes: dict[str, FulfilmentMode] = Field(default_factory=_default_fulfilment)
    policy: list[str] = Field(
        default_factory=list,
        description="regime sets from the policy library (`cbecsim policies list`), e.g. "
        "[us_2025, eu_2026]; applied before duty_schedule, which may override or add to them",
    )
    duty_schedule: list[DutyChange] = Field(default_factory=list)
    sellers: list[SellerPopulation] = Field(min_length=1)
    anticipation_days: int = Field(
        default=90, ge=0, le=3650,
        description="how many days ahead sellers see an announced duty change and may act on it "
        "(front-loading) [days]; assumption: about a sea-freight lead time plus cover",
    )

    # Filled by the validator from ``policy`` (the library's changes and its notes on what
    # the engine cannot express); not part of the serialised config.
    _policy_changes: list[DutyChange] = PrivateAttr(default_factory=list)
    _policy_notes: list[str] = PrivateAttr(default_factory=list)
    _handled_policy_notes: list[tuple[str, str]] = PrivateAttr(default_factory=list)
    # The file the scenario was read from (for messages), if any.
    _source: str | None = PrivateAttr(default=None)

    @property
    def effective_fx_path(self) -> str:
        """``fx_path``, or its default: ``monthly`` unless the config set ``currency_rates``."""
        if self.fx_path is not None:
            return self.fx_path
        return "fixed" if "currency_rates" in self.model_fields_set else "monthly"

    def usd_rate_on(self, currency: str, day: dt.date) -> float:
        """USD per unit of ``currency`` on ``day`` under :attr:`effective_fx_path`."""
        if self.effective_fx_path == "fixed":
            return self.currency_rates[currency]
        if currency == "USD":
            return 1.0
        from .policies import usd_rate

        return usd_rate(currency, day)

    @field_validator("currency_rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not v > 0]
        if bad:
            raise ValueError(f"rates must be > 0 (not {', '.join(bad)})")
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> "Scenario":
        problems: list[str] = []
        names = [m.name for m in self.markets]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                problems.append(f"markets: {name} is listed twice")
            seen.add(name)
        for m in self.markets:
            if m.currency not in self.currency_rates:
                problems.append(f"markets.{m.name}.currency: {m.currency} has no entry in currency_rates")
        if self.effective_fx_path == "monthly":
            from .policies import fx_coverage

            for currency in sorted({m.currency for m in self.markets} | {c.currency for c in self.duty_schedule}):
                if currency == "USD":
                    continue
                coverage = fx_coverage(currency)
                if coverage is None:
                    problems.append(f"fx_path: monthly: the policy library has no monthly rates for {currency}; "
                                    "set fx_path: fixed with currency_rates, or a market fx_series")
                elif self.horizon.start < coverage[0]:
                    problems.append(f"fx_path: monthly: the library's {currency} rates start in {coverage[0]:%Y-%m}, "
                                    f"after the horizon's start {self.horizon.start}; set fx_path: fixed with "
                                    "currency_rates")
        regions = {m.region for m in self.markets}
        for i, change in enumerate(self.duty_schedule):
            if change.currency not in self.currency_rates:
                problems.append(f"duty_schedule.{i}.currency: {change.currency} has no entry in currency_rates")
            if change.region not in regions:
                problems.append(
                    f"duty_schedule.{i}.region: {change.region!r} matches no market "
                    f"(regions: {', '.join(sorted(regions))})"
                )
        for i, pop in enumerate(self.sellers):
            for j, market in enumerate(pop.markets):
                if market not in seen:
                    problems.append(
                        f"sellers.{i}.markets.{j}: unknown market {market!r} (expected one of {', '.join(names)})"
                    )
            modes = pop.fulfilment.values() if isinstance(pop.fulfilment, dict) else [pop.fulfilment]
            for mode in modes:
                if mode not in self.fulfilment_modes:
                    problems.append(
                        f"sellers.{i}.fulfilment: unknown mode {mode!r} "
                        f"(expected one of {', '.join(self.fulfilment_modes)})"
                    )
            if isinstance(pop.fulfilment, dict):
                for market in pop.fulfilment:
                    if market not in pop.markets:
                        problems.append(f"sellers.{i}.fulfilment.{market}: not one of this population's markets")
        if sum(p.count for p in self.sellers) == 0:
            problems.append("sellers: every population has count 0; nothing to simulate")
        problems.extend(self._integer_ranges())
        problems.extend(self._fee_schedules())
        problems.extend(self._expand_policy(regions))
        if problems:
            # One ValueError per scenario; _format_errors splits the lines back out.
            raise ValueError("\n".join(problems))
        return self

    def _fee_schedules(self) -> list[str]:
        """Each named fee schedule exists, is in the market's currency and covers the horizon."""
        from .fees import FeeError, check_coverage, fee_schedule

        problems = []
        for m in self.markets:
            if m.fee_schedule is None:
                continue
            where = f"markets.{m.name}.fee_schedule"
            try:
                schedule = fee_schedule(m.fee_schedule)
                check_coverage(schedule, m.fee_category or m.category, self.horizon.start, self.horizon.end,
                               m.size_tier)
            except FeeError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if schedule.kind != "marketplace":
                problems.append(f"{where}: {m.fee_schedule} is a {schedule.kind} fee schedule; a market needs a "
                                "marketplace schedule (`cbecsim fees list`)")
            elif schedule.currency != m.currency:
                problems.append(f"{where}: {m.fee_schedule} charges in {schedule.currency}, the market's currency "
                                f"is {m.currency}")
        for i, pop in enumerate(self.sellers):
            name = pop.dtc.payment_fee_schedule
            if name is None:
                continue
            try:
                check_coverage(name, "payment", self.horizon.start, self.horizon.start)
            except FeeError as exc:
                problems.append(f"sellers.{i}.dtc.payment_fee_schedule: {exc}")
        return problems

    def _integer_ranges(self) -> list[str]:
        """Values the engine turns into 32-bit counts must not overflow them (they would
        wrap around to negative numbers): shoppers over the longest output period at the
        highest seasonal peak, a population's first stock order, DTC new customers."""
        problems = []
        for m in self.markets:
            peak = max([1.0, *(p.multiplier for p in m.seasonality)])
            # Poisson counts exceed their mean by at most ~sqrt(mean) * 10; 0.9 covers that.
            limit = 0.9 * INT32_MAX / (LONGEST_PERIOD_DAYS * peak)
            if m.shoppers_per_day > limit:
                problems.append(
                    f"markets.{m.name}.shoppers_per_day: {m.shoppers_per_day:g} shoppers a day (x{peak:g} at the "
                    f"highest seasonal peak) would overflow the 32-bit shopper count of a month "
                    f"(at most {INT32_MAX:,}): expected at most {limit:,.0f}"
                )
        for i, pop in enumerate(self.sellers):
            modes = pop.fulfilment.values() if isinstance(pop.fulfilment, dict) else [pop.fulfilment]
            lead = max(
                (self.fulfilment_modes[mode].lead_time_days[1] for mode in modes if mode in self.fulfilment_modes),
                default=0,
            )
            params = pop.params
            days = lead + max(upper_value(params.cover_days), 0.0) + max(upper_value(params.safety_days), 0.0)
            units = max(upper_value(params.expected_daily_units), 0.0) * max(days, 1.0)
            if not units <= 0.9 * INT32_MAX:
                problems.append(
                    f"sellers.{i}.params.expected_daily_units: a stock order of about {units:,.3g} units "
                    f"(expected_daily_units x ({lead} lead-time + cover + safety days)) would overflow the 32-bit "
                    f"stock count (at most {INT32_MAX:,}); expected at most "
                    f"{0.9 * INT32_MAX / max(days, 1.0):,.0f} units a day"
                )
            dtc_limit = 0.9 * INT32_MAX / LONGEST_PERIOD_DAYS / max(1, len(pop.markets))
            if pop.dtc.new_customers_per_day > dtc_limit:
                problems.append(
                    f"sellers.{i}.dtc.new_customers_per_day: {pop.dtc.new_customers_per_day:g} would overflow the "
                    f"32-bit customer count of a month: expected at most {dtc_limit:,.0f}"
                )
        return problems

    def _expand_policy(self, regions: set[str]) -> list[str]:
        """Resolve ``policy`` names through the library; return problems found."""
        if not self.policy:
            return []
        # Imported here: the policy library reads its data files on first use.
        from .policies import PolicyError, coverage_gaps, list_regime_sets, to_duty_changes
        from .policies._library import normalise_destination

        known = {info.name: info for info in list_regime_sets()}
        problems = []
        for i, name in enumerate(self.policy):
            info = known.get(name)
            if info is None:
                problems.append(
                    f"policy.{i}: unknown regime set {name!r} (known: {', '.join(sorted(known))}; "
                    "see `cbecsim policies list`)"
                )
            elif normalise_destination(info.destination) not in {normalise_destination(r) for r in regions}:
                problems.append(
                    f"policy.{i}: {name} is for destination {info.destination}, but no market has "
                    f"that region (regions: {', '.join(sorted(regions))})"
                )
        if len(set(self.policy)) < len(self.policy):
            problems.append("policy: a regime set is named twice")
        if problems:
            return problems
        try:
            changes, notes = to_duty_changes(
                self.policy, sorted(regions), until=self.horizon.end, kinds=ENGINE_DUTY_KINDS
            )
            gaps = coverage_gaps(self.policy, sorted(regions), until=self.horizon.end, kinds=ENGINE_DUTY_KINDS)
        except PolicyError as exc:
            return [f"policy: {exc}"]
        missing = sorted({c["currency"] for c in changes} - set(self.currency_rates))
        if missing:
            return [f"policy: the regime sets quote {', '.join(missing)}, which currency_rates lacks"]
        self._policy_changes = [DutyChange.model_validate(change) for change in changes]
        handled = {gap.note: gap for gap in gaps if self._gap_handled(gap)}
        self._policy_notes = [note for note in notes if note not in handled]
        self._handled_policy_notes = [
            (note, f"the config's own duty_schedule sets the {gap.region} {gap.kind} regime of every seller "
                   f"concerned by {gap.date} (or no seller is concerned)")
            for note, gap in handled.items()
        ]
        return []

    def _gap_handled(self, gap) -> bool:
        """Whether the config's own ``duty_schedule`` (or the absence of affected sellers)
        makes an end of the library's coverage irrelevant.

        A cell (market of the gap's region, seller origin concerned, kind) is handled when an
        own change matching it takes effect on or before the gap's date and no earlier than
        the library's last change of that cell up to that date (so the library does not
        overwrite it). Origins no seller population has are not concerned.
        """
        seller_origins = {p.origin for p in self.sellers}
        if gap.origins is not None:
            origins = seller_origins & set(gap.origins)
        else:
            # The fallback concerns the origins no library entry of that kind names.
            named = {
                o
                for c in self._policy_changes
                if c.region == gap.region and c.origins and (c.kinds is None or gap.kind in c.kinds)
                for o in c.origins
            }
            origins = seller_origins - named
        markets = [m for m in self.markets if m.region == gap.region]

        def matches(change: DutyChange, market, origin: str) -> bool:
            return (
                change.region == market.region
                and (change.categories is None or market.category in change.categories)
                and (change.origins is None or origin in change.origins)
                and (change.kinds is None or gap.kind in change.kinds)
            )

        for market in markets:
            for origin in origins:
                library = [c.date for c in self._policy_changes if c.date <= gap.date and matches(c, market, origin)]
                last = max(library) if library else None
                if not any(
                    matches(c, market, origin) and c.date <= gap.date and (last is None or c.date >= last)
                    for c in self.duty_schedule
                ):
                    return False
        return True

    def visible_from(self, change: DutyChange) -> dt.date:
        """The first day sellers may see ``change`` coming and act on it: its ``announced``
        date, but at most ``anticipation_days`` ahead of it, and its own date when it has
        no announcement."""
        if change.announced is None:
            return change.date
        earliest = change.date - dt.timedelta(days=self.anticipation_days)
        return min(change.date, max(change.announced, earliest))

    @property
    def effective_duty_schedule(self) -> list[DutyChange]:
        """The library's changes for ``policy``, then the config's own ``duty_schedule``.

        Changes apply in date order and, within a date, in this list order, so the
        config's own entries override the library's on the same date.
        """
        return [*self._policy_changes, *self.duty_schedule]

    @property
    def policy_notes(self) -> list[str]:
        """What the engine could not express of the ``policy`` regime sets (sentences)."""
        return list(self._policy_notes)

    @property
    def handled_policy_notes(self) -> list[tuple[str, str]]:
        """``(note, why it does not concern this config)`` for the ends of the library's
        coverage that the config's own ``duty_schedule`` fills."""
        return list(self._handled_policy_notes)

    @property
    def market_names(self) -> list[str]:
        return [m.name for m in self.markets]

    def fulfilment_of(self, population: SellerPopulation, market: str) -> str:
        if isinstance(population.fulfilment, dict):
            return population.fulfilment.get(market, "direct_parcel")
        return population.fulfilment


# --------------------------------------------------------------------------------------
# Loading, overrides and error formatting
# --------------------------------------------------------------------------------------


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = 40
_SHOWN.maxother = 40
_SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxtuple = 4
_SHOWN.maxlevel = 2


def _shown(value: Any) -> str:
    """A short repr that never walks a whole (possibly alias-shared, huge) structure."""
    text = _SHOWN.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_DATE_REPR = re.compile(r"^datetime\.date\((\d+), (\d+), (\d+)\)$")


def _loc_part(part: Any) -> str:
    if isinstance(part, (dt.date, dt.datetime)):
        return part.isoformat()
    text = str(part)
    match = _DATE_REPR.match(text)
    return dt.date(*map(int, match.groups())).isoformat() if match else text


def _fields_at(model: type[BaseModel], loc: Sequence[str]) -> list[str] | None:
    """Field names of the model section at ``loc`` (a pydantic error location), or None."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
            continue
        # A container or union: step into the model it holds.
        args = [a for a in typing.get_args(current) if a is not type(None)]
        origin = typing.get_origin(current)
        if origin in (list, tuple, dict, Union) or (origin is not None and args):
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            inner = [a for a in args if typing.get_args(a)]
            if origin in (list, tuple, dict) and part.lstrip("-").isdigit() or origin is dict:
                current = args[-1] if args else None
                continue
            for candidate in [*models, *inner]:
                names = _fields_at(candidate, [part])
                if names is not None:
                    current = candidate
                    break
            else:
                return None
            current = (
                current.model_fields[part].annotation
                if (isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields)
                else None
            )
            continue
        return None
    while True:
        if isinstance(current, type) and issubclass(current, BaseModel):
            return list(current.model_fields)
        args = [a for a in typing.get_args(current) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            return sorted({name for m in models for name in m.model_fields})
        annotated = [a for a in args if typing.get_args(a)]
        if not annotated:
            return None
        current = annotated[0]


def _did_you_mean(model: type[BaseModel], loc: Sequence[str]) -> str:
    names = _fields_at(model, loc[:-1]) or []
    close = difflib.get_close_matches(loc[-1], names, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(repr(c) for c in close)}?"
    if names:
        return f" (fields here: {', '.join(names)})" if len(names) <= 12 else ""
    return ""


def _format_errors(error: ValidationError, model: type[BaseModel] | None = None) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False, include_input=True):
        raw_loc = [_loc_part(part) for part in item["loc"]]
        # A seller parameter is "number or distribution": report only the branch that
        # matches what the user wrote (a mapping means they meant a distribution).
        if "float" in raw_loc and isinstance(item.get("input"), dict):
            continue
        if raw_loc and raw_loc[-1].startswith("tagged-union") and not isinstance(item.get("input"), dict):
            continue
        loc = [
            p
            for p in raw_loc
            if not p.startswith(("function-", "tagged-union"))
            and p not in {"float", "constant", "uniform", "normal", "lognormal", "triangular"}
        ]
        path = ".".join(loc)
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if item["type"] == "extra_forbidden":
            message = "unknown key (not a field of this section)"
            if model is not None and loc:
                message += _did_you_mean(model, loc)
        elif item["type"] not in {"value_error", "missing"} and "input" in item:
            message = f"{message} (got {_shown(item['input'])})"
        for line in message.split("\n"):
            # Scenario-level cross-reference checks report "path: message" lines.
            if not path and ": " in line:
                sub_path, sub_msg = line.split(": ", 1)
                problems.append((sub_path, sub_msg))
            else:
                problems.append((path, line))
    return problems


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-typed value."""
    if "=" not in text:
        raise ConfigError([(text, "override must look like key.path=value")])
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError([(key or text, "override key must be a dotted path like sellers.0.count")])
    try:
        value = safe_load_bounded(raw, f"--set {key}") if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError([(key, f"value is not valid YAML: {exc}")]) from None
    return key.split("."), value


def _find_in_list(items: list, part: str, path: str) -> int:
    if part.lstrip("-").isdigit():
        index = int(part)
        if -len(items) <= index < len(items):
            return index % len(items)
        raise ConfigError([(path, f"index {index} out of range (list has {len(items)} items)")])
    # Lists of markets and populations may also be addressed by name.
    labels = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            label = item.get("name") or (f"{item.get('region')}/{item.get('category')}" if "region" in item else None)
            if label == part or item.get("strategy") == part and "name" not in item:
                return index
            labels.append(str(label or item.get("strategy") or index))
        else:
            labels.append(str(index))
    names = [name for name in dict.fromkeys(labels) if not name.isdigit()]
    close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    valid = f"indices 0..{len(items) - 1}" + (f" or names {', '.join(names)}" if names else "")
    raise ConfigError([(path, f"no list item with index or name {part!r} (valid: {valid}){hint}")])


def apply_overrides(data: dict, overrides: Sequence[str] | Mapping[str, Any] | None) -> dict:
    """Return a deep copy of ``data`` with dotted-path overrides applied.

    Parameters
    ----------
    data : dict
        The raw (unvalidated) configuration mapping.
    overrides : sequence of ``"a.b=c"`` strings, or mapping of ``"a.b"`` to values
        List items are addressed by index (``sellers.0.count``) or by name
        (``markets.US/charging.shoppers_per_day``, ``sellers.traffic_first.count``).
    """
    result = copy.deepcopy(data)
    if not overrides:
        return result
    pairs = (
        [(key.split("."), value) for key, value in overrides.items()]
        if isinstance(overrides, Mapping)
        else [parse_override(text) for text in overrides]
    )
    for parts, value in pairs:
        node: Any = result
        walked: list[str] = []
        for part in parts[:-1]:
            walked.append(part)
            path = ".".join(walked)
            if isinstance(node, list):
                node = node[_find_in_list(node, part, path)]
            elif isinstance(node, dict):
                if part not in node or node[part] is None:
                    node[part] = {}
                node = node[part]
            else:
                raise ConfigError([(path, "cannot descend into a scalar value")])
        last = parts[-1]
        if isinstance(node, list):
            node[_find_in_list(node, last, ".".join(parts))] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError([(".".join(parts), "cannot set a field inside a scalar value")])
    return result


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader; :func:`safe_load_bounded` checks the composed node graph first."""


class _TooLarge(Exception):
    pass


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Values in the document once every alias is expanded (stops above ``limit``).

    Aliases make the node graph a DAG (or a cycle): sizes are memoised per node, so the
    count costs one visit per distinct node however large the expansion.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            sizes[key] = 1
            continue
        if done:
            visiting.discard(key)
            total = 1 + sum(sizes[id(child)] for child in children)
            if total > limit:
                raise _TooLarge(total)
            sizes[key] = total
            continue
        if key in visiting:
            raise _TooLarge(-1)  # an alias that contains itself
        visiting.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in visiting:
                raise _TooLarge(-1)
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def safe_load_bounded(text: str, source: str = "config") -> Any:
    """:func:`yaml.safe_load` with the size and alias-expansion limits.

    Raises
    ------
    ConfigError
        When ``text`` is over :data:`MAX_CONFIG_BYTES`, or holds more than
        :data:`MAX_YAML_NODES` values once aliases are expanded (a "billion laughs" alias
        bomb), or an alias that contains itself.
    yaml.YAMLError
        For invalid YAML.
    """
    size = len(text.encode("utf-8"))
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                (
                    source,
                    f"the file is {size / 2**20:.1f} MiB; the limit is "
                    f"{MAX_CONFIG_BYTES / 2**20:.0f} MiB (cbecsim.config.MAX_CONFIG_BYTES)",
                )
            ]
        )
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            _expanded_size(node, MAX_YAML_NODES)
        except _TooLarge as exc:
            if exc.args[0] < 0:
                raise ConfigError(
                    [
                        (
                            source,
                            "a YAML alias (*name) refers to a value that contains it; "
                            "recursive aliases are not allowed",
                        )
                    ]
                ) from None
            raise ConfigError(
                [
                    (
                        source,
                        f"expands to more than {MAX_YAML_NODES:,} values through YAML aliases "
                        "(&name / *name); the limit is cbecsim.config.MAX_YAML_NODES "
                        "(an alias bomb?)",
                    )
                ]
            ) from None
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with the safe loader, raising ConfigError on any problem.

    Files over :data:`MAX_CONFIG_BYTES`, or whose aliases expand to more than
    :data:`MAX_YAML_NODES` values, are refused before they are parsed into objects.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                [
                    (
                        str(path),
                        f"the file is {size / 2**20:.1f} MiB; the limit is "
                        f"{MAX_CONFIG_BYTES / 2**20:.0f} MiB (cbecsim.config.MAX_CONFIG_BYTES)",
                    )
                ]
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([(str(path), "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    try:
        data = safe_load_bounded(text, str(path))
    except yaml.YAMLError as exc:
        raise ConfigError([(str(path), f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([(str(path), "expected a YAML mapping at the top level")])
    return data


def _merge(base: dict, update: Mapping) -> dict:
    """Deep-merge ``update`` into a copy of ``base``: mappings merge, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_scenario_file(path: str | os.PathLike, _chain: tuple[Path, ...] = ()) -> dict:
    """Read a scenario YAML file, resolving ``extends`` and ``overrides``.

    A file may start from another (``extends: ../configs/baseline.yaml``, relative to the
    file): the base is read first (recursively), this file's keys are merged into it
    (mappings merge key by key; lists and values replace), then ``overrides`` -- a
    mapping of dotted paths to values, as ``--set`` takes -- is applied. So an
    experiment states only how it differs from the reference scenario.
    """
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError([("extends", f"files extend each other in a cycle: {cycle}")])
    data = read_yaml(path)
    base = data.pop("extends", None)
    overrides = data.pop("overrides", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError([(f"{path}: extends", "expected the path of a scenario file")])
        data = _merge(read_scenario_file(path.parent / base, (*_chain, path)), data)
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise ConfigError([(f"{path}: overrides", "expected a mapping of dotted paths to values")])
        data = apply_overrides(data, overrides)
    return data


def load_scenario(
    source: str | os.PathLike | Mapping[str, Any] | Scenario,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> Scenario:
    """Read and validate a scenario.

    Parameters
    ----------
    source : path to a YAML file, a mapping, or an existing Scenario
    overrides : ``["a.b=c", ...]`` or ``{"a.b": value}`` applied before validation

    Returns
    -------
    Scenario

    Raises
    ------
    ConfigError
        With one ``(path, message)`` per problem; nothing has been run.
    """
    source_path: str | None = None
    if isinstance(source, Scenario):
        data = source.model_dump(mode="json", exclude_none=True)
        source_path = source._source
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        source_path = str(source)
        data = read_scenario_file(source)
    data = apply_overrides(data, overrides)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, Scenario)) from None
    scenario._source = source_path
    _check_user_strategies(scenario)
    return scenario


def _where_defined(scenario: Scenario, index: int) -> str:
    pop = scenario.sellers[index]
    where = f"in {scenario._source}" if scenario._source else "in the config (given as a mapping)"
    return f"population {pop.label!r} (sellers.{index}) {where}"


def _check_user_strategies(scenario: Scenario) -> None:
    problems: list[tuple[str, str]] = []
    for i, pop in enumerate(scenario.sellers):
        if pop.strategy in BUILTIN_STRATEGIES:
            continue
        try:
            resolve_strategy_class(pop.strategy)
        except ConfigError as exc:
            problems.extend(
                (f"sellers.{i}.strategy", f"{msg}; used by {_where_defined(scenario, i)}") for _, msg in exc.problems
            )
    if problems:
        raise ConfigError(problems)


def strategy_construction_error(scenario: Scenario, index: int, exc: BaseException) -> ConfigError:
    """The ConfigError for a user strategy whose constructor raised ``exc``."""
    pop = scenario.sellers[index]
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return ConfigError(
        [
            (
                f"sellers.{index}.strategy_params",
                f"{pop.strategy}({_shown(pop.strategy_params)}) raised {type(exc).__name__}"
                f"{': ' + detail if detail else ''} in its constructor; used by "
                f"{_where_defined(scenario, index)}",
            )
        ]
    )


def resolve_strategy_class(path: str) -> type:
    """Import ``package.module:ClassName`` (or a built-in) through :mod:`cbecsim.registry`;
    a failure is a :class:`ConfigError` on ``path``. The module is looked up in the
    working directory and then the installed packages."""
    try:
        return _registry.resolve_strategy_class(path)
    except _registry.StrategyImportError as exc:
        raise ConfigError([(path, exc.message)]) from None
