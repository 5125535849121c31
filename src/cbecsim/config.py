"""Scenario configuration: pydantic models, YAML loading and ``--set`` overrides.

A scenario is read from YAML with :func:`yaml.safe_load`, overridden with dotted
``key=value`` pairs, then validated as a whole. Every problem is reported at once as a
:class:`ConfigError` whose ``problems`` are ``(field path, message)`` pairs, so the CLI
can print one line per problem and exit 2 before any work is done.

Money conventions (documented in README "Units"):

* seller firm-level amounts (cash, credit line, fixed costs, unit cost, freight and
  fulfilment fees) are in USD, the accounting currency;
* market-level amounts (reference price, reserve price, bids, daily budgets) are in the
  market's own currency (``markets[].currency``), converted with ``currency_rates``;
* duty-schedule amounts are in the entry's ``currency``.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "ConfigError",
    "Scenario",
    "Market",
    "FulfilmentMode",
    "DutyChange",
    "SellerPopulation",
    "SellerParams",
    "BUILTIN_STRATEGIES",
    "load_scenario",
    "apply_overrides",
    "parse_override",
]

#: Names of the strategies that ship with cbecsim (see :mod:`cbecsim.strategies`).
BUILTIN_STRATEGIES = ("traffic_first", "brand_matrix", "diversified")

_STRATEGY_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


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
    """Base model: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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
    reference_price: float = Field(gt=0, description="typical price in the category [currency/unit]")
    vat_rate: float = Field(default=0.0, ge=0, le=1, description="VAT included in the price (EU/UK)")
    sponsored_slots: int = Field(default=10, ge=0, le=10, description="K sponsored slots (positions of the click-through curve)")
    reserve_price: float = Field(default=0.10, ge=0, description="minimum cost per click [currency]")
    # FACTS.md: generic search position click-through 30/22/14/10/8/6/4/3/2/2 % (conf L).
    click_through: list[float] = Field(
        default_factory=lambda: [0.30, 0.22, 0.14, 0.10, 0.08, 0.06, 0.04, 0.03, 0.02, 0.02],
        description="click-through by sponsored position, as the share of a slot's "
        "impressions that are clicks",
    )
    sponsored_impression_share: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="share of shoppers who see the sponsored slots; the attention of slot k "
        "is sponsored_impression_share * click_through[k]",
    )
    organic_attention: float = Field(
        default=0.20, ge=0, description="organic attention a shopper spreads over listings"
    )
    base_utility: float = Field(default=-3.3, description="utility intercept of a listing")
    price_sensitivity: float = Field(default=2.5, ge=0, description="beta on log(price/reference)")
    brand_weight: float = Field(default=1.0, ge=0, description="alpha on brand equity")
    rating_weight: float = Field(default=0.8, ge=0, description="gamma on (rating - 4)")
    delivery_weight: float = Field(default=0.05, ge=0, description="delta per delivery day")
    referral_fee_rate: float = Field(default=0.15, ge=0, le=1, description="FACTS.md: Amazon 15%")
    referral_fee_min: float = Field(default=0.30, ge=0, description="FACTS.md: min USD 0.30 [currency]")
    visibility_rate: float = Field(
        default=0.10, gt=0, le=1, description="lambda of the sales-velocity flywheel"
    )
    visibility_floor: float = Field(
        default=0.2, gt=0, description="visibility score every listing keeps [units/day]"
    )

    @property
    def name(self) -> str:
        return f"{self.region}/{self.category}"

    @field_validator("click_through")
    @classmethod
    def _ctr(cls, value: list[float]) -> list[float]:
        if any(c < 0 or c > 1 for c in value):
            raise ValueError("each click-through must be within 0..1")
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


class FulfilmentMode(_Strict):
    """How units reach the shopper.

    ``kind: parcel`` is a direct B2C parcel from the origin, valued for customs at the
    transaction price; ``kind: bulk`` is a B2B import to an overseas warehouse, valued at
    the import (cost) value and always dutiable.
    """

    kind: Literal["parcel", "bulk"]
    freight_per_unit: float = Field(ge=0, description="[USD/unit]")
    delivery_days: float = Field(ge=0, description="days from order to doorstep")
    lead_time_days: tuple[int, int] = Field(
        description="replenishment lead time, uniform on [min, max] days"
    )
    fulfilment_fee_per_unit: float = Field(default=0.0, ge=0, description="[USD/unit]")
    handling_fee_per_unit: float = Field(default=0.0, ge=0, description="[USD/unit]")

    @field_validator("lead_time_days")
    @classmethod
    def _lead(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if low < 1 or high < low:
            raise ValueError("expected [min, max] with 1 <= min <= max")
        return value


def _default_fulfilment() -> dict[str, FulfilmentMode]:
    # FACTS.md Logistics: express courier 3-7 days (USD 15-25/kg; ~0.25 kg small item),
    # factory replenishment of origin stock; sea freight 40-60+ days door to door, FBA
    # small-standard fee about USD 3.5 per unit.
    return {
        "direct_parcel": FulfilmentMode(
            kind="parcel", freight_per_unit=4.5, delivery_days=7, lead_time_days=(5, 10)
        ),
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


class DutyFields(_Strict):
    """Regime fields a dated change may set; unset fields keep their previous value."""

    ad_valorem_rate: float | None = Field(default=None, ge=0, description="fraction of value")
    de_minimis: bool | None = Field(default=None, description="parcels at or under the threshold are exempt")
    de_minimis_threshold: float | None = Field(default=None, ge=0, description="[currency]")
    low_value_duty_per_item: float | None = Field(
        default=None, ge=0, description="flat duty per item on exempt low-value parcels [currency]"
    )
    specific_duty_per_item: float | None = Field(
        default=None, ge=0, description="per-item duty on all dutiable imports [currency]"
    )


class DutyChange(_Strict):
    """A regime change in force from ``date`` on, for matching markets and origins."""

    region: str
    date: dt.date
    currency: str = "USD"
    origins: list[str] | None = Field(default=None, description="seller origins; all if omitted")
    categories: list[str] | None = Field(default=None, description="categories; all if omitted")
    kinds: list[Literal["parcel", "bulk"]] | None = Field(
        default=None, description="fulfilment kinds; both if omitted"
    )
    set: DutyFields
    source: str | None = Field(default=None, description="where the figure comes from")


# --------------------------------------------------------------------------------------
# Sellers
# --------------------------------------------------------------------------------------


class SellerParams(_Strict):
    """Per-seller parameters; each may be a number or a distribution."""

    initial_cash: ParamValue = Field(default=50_000.0, description="[USD]")
    credit_line: ParamValue = Field(default=25_000.0, description="exit when cash < -credit_line [USD]")
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
    count: int = Field(ge=0)
    origin: str = Field(default="CN", description="country the goods ship from")
    markets: list[str] = Field(min_length=1, description="market names REGION/CATEGORY served")
    fulfilment: str | dict[str, str] = Field(
        default="direct_parcel", description="mode name, or a mapping market -> mode"
    )
    review_days: int = Field(default=7, ge=1, description="days between strategy reviews")
    params: SellerParams = Field(default_factory=SellerParams)
    strategy_params: dict[str, Any] = Field(default_factory=dict)

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

    @property
    def label(self) -> str:
        return self.name or self.strategy


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


class Scenario(_Strict):
    """A complete, validated experiment configuration."""

    name: str = "scenario"
    description: str = ""
    horizon: Horizon
    seed: int = Field(default=12345, ge=0, lt=2**63)
    replications: int = Field(default=100, ge=1)
    currency_rates: dict[str, float] = Field(
        default_factory=lambda: {"USD": 1.0, "EUR": 1.08, "GBP": 1.27},
        description="USD per unit of each currency (fixed; FX paths are a later layer)",
    )
    markets: list[Market] = Field(min_length=1)
    fulfilment_modes: dict[str, FulfilmentMode] = Field(default_factory=_default_fulfilment)
    duty_schedule: list[DutyChange] = Field(default_factory=list)
    sellers: list[SellerPopulation] = Field(min_length=1)

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
                        f"sellers.{i}.markets.{j}: unknown market {market!r} "
                        f"(expected one of {', '.join(names)})"
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
        if problems:
            # One ValueError per scenario; _format_errors splits the lines back out.
            raise ValueError("\n".join(problems))
        return self

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


def _format_errors(error: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        raw_loc = [str(part) for part in item["loc"]]
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
        elif item["type"] not in {"value_error", "missing"} and "input" in item:
            shown = repr(item["input"])
            if len(shown) > 60:
                shown = shown[:57] + "..."
            message = f"{message} (got {shown})"
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
        value = yaml.safe_load(raw) if raw.strip() else ""
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
    for index, item in enumerate(items):
        if isinstance(item, dict):
            label = item.get("name") or (
                f"{item.get('region')}/{item.get('category')}" if "region" in item else None
            )
            if label == part or item.get("strategy") == part and "name" not in item:
                return index
    raise ConfigError([(path, f"no list item with index or name {part!r}")])


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


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with the safe loader, raising ConfigError on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([(str(path), "file not found")]) from None
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([(str(path), f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([(str(path), "expected a YAML mapping at the top level")])
    return data


def load_scenario(
    source: str | Path | Mapping[str, Any] | Scenario,
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
    if isinstance(source, Scenario):
        data = source.model_dump(mode="json", exclude_none=True)
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        data = read_yaml(source)
    data = apply_overrides(data, overrides)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    _check_user_strategies(scenario)
    return scenario


def _check_user_strategies(scenario: Scenario) -> None:
    problems = []
    for i, pop in enumerate(scenario.sellers):
        if pop.strategy in BUILTIN_STRATEGIES:
            continue
        try:
            resolve_strategy_class(pop.strategy)
        except ConfigError as exc:
            problems.extend((f"sellers.{i}.strategy", msg) for _, msg in exc.problems)
    if problems:
        raise ConfigError(problems)


def resolve_strategy_class(path: str) -> type:
    """Import ``package.module:ClassName`` and check it follows the Strategy protocol."""
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a config problem
        raise ConfigError([(path, f"cannot import module {module_name!r}: {exc}")]) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError([(path, f"module {module_name!r} has no attribute {class_name!r}")])
    missing = [name for name in ("initialise", "review") if not callable(getattr(cls, name, None))]
    if missing:
        raise ConfigError(
            [(path, f"{class_name} does not follow the Strategy protocol: missing {', '.join(missing)}()")]
        )
    return cls
