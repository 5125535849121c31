"""Compile a validated :class:`~cbecsim.config.Scenario` into the arrays kernels use.

This is the only module where configuration meets arrays, and the only constructor of
the kernels' structures (:mod:`cbecsim.kernels.state`):

* :func:`compile_scenario` builds the static :class:`~cbecsim.kernels.state.Tables`
  (markets, fulfilment modes, the seasonal multiplier per day, the dated duty-regime
  tables, the seller roster and its served-listing lists, the output periods) and
  compiles the review-time rules and parameter distributions into tables. It depends on
  the scenario only, never on the replication count; nothing after it reads the config.
* :func:`initial_state` draws the initial seller parameters of one batch of
  replications from the counter-based generator and returns a
  :class:`~cbecsim.kernels.state.State`; :func:`work_space` allocates the market step's
  scratch arrays once per batch size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Literal

import numpy as np
import pandas as pd

from .config import Scenario, SellerParams
from .kernels import layout as L
from .kernels import rng
from .kernels import state as K
from .kernels.fulfilment import initial_warehouse_cost
from .kernels.layers import first_incident_clocks
from .kernels.state import State, Tables, Work

__all__ = ["CompiledScenario", "compile_scenario", "initial_state", "copy_state", "work_space", "RESOLUTIONS"]

Resolution = Literal["day", "week", "month"]
RESOLUTIONS = ("day", "week", "month")

# Seller parameters drawn per (replication, seller, market); the others per seller.
PER_MARKET_PARAMETERS = frozenset(
    {"unit_cost", "price_index", "bid", "daily_budget", "expected_daily_units", "cover_days", "safety_days"}
)
PARAMETER_NAMES = tuple(SellerParams.model_fields)

_DIST_CODES = {
    "constant": rng.DIST_CONSTANT,
    "uniform": rng.DIST_UNIFORM,
    "normal": rng.DIST_NORMAL,
    "lognormal": rng.DIST_LOGNORMAL,
    "triangular": rng.DIST_TRIANGULAR,
}


@dataclasses.dataclass(frozen=True)
class CompiledScenario:
    """Everything the engine needs of a scenario, as arrays and plain values.

    Built only by :func:`compile_scenario`; nothing after compile reads the pydantic
    config (the provenance keeps its JSON). Independent of the replication count.

    Shapes: ``D`` days, ``M`` markets, ``F`` fulfilment modes, ``O`` origins, ``S``
    sellers, ``P`` populations, ``T`` output periods, ``K`` the most sponsored slots.
    """

    name: str
    resolution: str
    tables: Tables  # the kernels' static tables (kernels.state.Tables)
    dates: pd.DatetimeIndex  # (D,)
    market_names: list[str]  # (M,)
    market_regions: list[str]  # (M,)
    market_categories: list[str]  # (M,)
    mode_names: list[str]  # (F,)
    origins: list[str]  # (O,)
    regime_days: np.ndarray  # (C,) day indices at which a regime table comes into force
    regime_visible_days: np.ndarray  # (C,) first day sellers see each table coming (announced, anticipation_days)
    seller_population: np.ndarray  # (S,) population index
    seller_mode: np.ndarray  # (S, M) initial fulfilment mode index
    population_labels: list[str]  # (P,)
    population_strategies: list[str]  # (P,) built-in name or 'package.module:Class'
    population_strategy_params: list[dict]  # (P,) strategy_params as configured
    population_slices: list[slice]  # (P,) each population's sellers
    population_rules: np.ndarray  # (P, N_POPULATION_COLUMNS) review-time rules (kernels.state.PR_*)
    parameter_draws: np.ndarray  # (P, N_PARAMETERS, 4): distribution code, a, b, c of each seller parameter
    period_starts: pd.DatetimeIndex  # (T,)
    period_ends: np.ndarray  # (T,) last day index of each period
    currencies: list[str]  # currencies of the markets, the FX walk's index
    seller_levers: np.ndarray  # (S, N_LEVERS) initial lever levels
    config_json: str  # the resolved scenario (pydantic model_dump, JSON)
    duty_schedule_json: str  # the duty changes as applied (library then own), JSON
    # (P,) origin indices each population may move production to, with the move's one-off
    # cost per seller [USD] and the days until production at the new origin starts.
    population_origin_options: list[tuple[int, ...]]
    population_origin_switch: list[tuple[float, int]]

    @property
    def n_days(self) -> int:
        return len(self.dates)

    @property
    def n_sellers(self) -> int:
        return len(self.seller_population)

    @property
    def n_markets(self) -> int:
        return len(self.market_names)

    @property
    def n_periods(self) -> int:
        return len(self.period_starts)

    # Shortcuts to the tables used by the review layer and the benchmarks.
    @property
    def market(self) -> np.ndarray:
        """(M, N_MARKET_COLUMNS) market table, money in the market's currency."""
        return self.tables.market

    @property
    def modes(self) -> np.ndarray:
        """(F, N_MODE_COLUMNS) fulfilment-mode table [USD]."""
        return self.tables.modes

    @property
    def seller_served(self) -> np.ndarray:
        """(S, M) bool: markets each seller's population may list in."""
        return self.tables.served

    @property
    def seller_origin(self) -> np.ndarray:
        """(S,) origin index of each seller."""
        return self.tables.origin

    @property
    def seller_layer(self) -> np.ndarray:
        """(S, N_SELLER_LAYER) static layer parameters [USD]."""
        return self.tables.seller_layer

    @property
    def regime_tables(self) -> np.ndarray:
        """(C, M, O, N_KINDS, N_REGIME_COLUMNS) the regime tables in force from ``regime_days``."""
        return self.tables.regime_tables

    @property
    def period_of_day(self) -> np.ndarray:
        """(D,) output period of each day."""
        return self.tables.period_of_day

    @property
    def n_populations(self) -> int:
        return len(self.population_labels)

    def upcoming_regime(self, day: int) -> int | None:
        """Index of the next regime table coming into force after ``day`` that sellers
        can already see on ``day`` (``regime_visible_days``), or None."""
        for c in range(len(self.regime_days)):
            if self.regime_days[c] > day and self.regime_visible_days[c] <= day:
                return c
        return None

    def regime_on(self, day: int) -> np.ndarray:
        """The regime table in force on ``day`` (M, O, N_KINDS, N_REGIME_COLUMNS)."""
        return self.tables.regime_tables[self.tables.regime_index[day]]


def _season_table(scenario: Scenario, dates: pd.DatetimeIndex) -> np.ndarray:
    season = np.ones((len(dates), len(scenario.markets)))
    month_day = dates.strftime("%m-%d")
    for m, market in enumerate(scenario.markets):
        for peak in market.seasonality:
            if peak.start <= peak.end:
                on = (month_day >= peak.start) & (month_day <= peak.end)
            else:  # wraps the new year, e.g. 12-20 .. 01-05
                on = (month_day >= peak.start) | (month_day <= peak.end)
            season[on, m] *= peak.multiplier
    return season


#: Duty-change fields and the regime column each sets (is_money: converted to USD).
_REGIME_FIELDS = {
    "ad_valorem_rate": (L.RG_AD_VALOREM, False),
    "specific_duty_per_item": (L.RG_SPECIFIC, True),
    "de_minimis": (L.RG_DE_MINIMIS, False),
    "de_minimis_threshold": (L.RG_THRESHOLD, True),
    "low_value_duty_per_item": (L.RG_LOW_VALUE_DUTY, True),
    "low_value_duty_per_heading": (L.RG_LOW_VALUE_PER_HEADING, True),
    "low_value_duty_ioss_only": (L.RG_IOSS_ONLY, False),
    "postal_specific_per_package": (L.RG_POSTAL_SPECIFIC, True),
    "postal_specific_available": (L.RG_POSTAL_SPECIFIC_AVAILABLE, False),
    "duty_drawback_rate": (L.RG_DRAWBACK, False),
}
#: Kind names of duty changes and their index on the regime table's kind axis.
_KIND_INDEX = {"parcel": L.KIND_PARCEL, "bulk": L.KIND_BULK, "postal": L.KIND_POSTAL}


def _regime_changes(scenario: Scenario, origins: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn the dated duty changes into a step function of full regime tables.

    Returns ``(days, tables, rules)``: (C,) first day of each table, (C, M, O, N_KINDS,
    N_REGIME_COLUMNS) tables [USD] and (C, ...) the same tables with money in the
    currency each amount was given in (what changes when a rule changes, not the FX
    rate). A change sets the columns of the fields it names on the (market, origin,
    kind) cells it matches and keeps the others. The flat low-value duty is per tariff
    sub-heading once a change names ``low_value_duty_per_heading`` and per item again
    when a later change names only ``low_value_duty_per_item``. The entry column holds
    ``entry_fee_per_parcel + broker_fee_per_parcel``, each kept from the last change that
    named it.

    Amounts are converted to USD at the rate of the day each table comes into force
    (:meth:`Scenario.usd_rate_on`); under ``fx_path: monthly`` a new table starts on every
    month's first day, so thresholds and flat duties follow the month's rate as prices do.
    """
    markets = scenario.markets
    start = scenario.horizon.start
    shape = (len(markets), len(origins), L.N_KINDS)
    native = np.zeros(shape + (L.N_REGIME_COLUMNS,))
    # Currency of each money amount (index into `currencies`); "USD" until set.
    currencies = ["USD"]
    money_currency = np.zeros(shape + (L.N_REGIME_COLUMNS,), dtype=np.int64)
    # The two parcel fees are kept apart (they change on different dates, maybe in
    # different currencies) and summed after conversion.
    fees = np.zeros(shape + (2,))
    fee_currency = np.zeros(shape + (2,), dtype=np.int64)
    # Before any change: no duty, no exemption (a scenario states its own regime).
    snapshots = [(0, native.copy(), money_currency.copy(), fees.copy(), fee_currency.copy())]
    ordered = sorted(enumerate(scenario.effective_duty_schedule), key=lambda item: (item[1].date, item[0]))
    for _, change in ordered:
        day = max((change.date - start).days, 0)
        if change.currency not in currencies:
            currencies.append(change.currency)
        code = currencies.index(change.currency)
        kinds = list(_KIND_INDEX.values()) if change.kinds is None else [_KIND_INDEX[k] for k in change.kinds]
        fields = change.set
        for m, market in enumerate(markets):
            if market.region != change.region:
                continue
            if change.categories is not None and market.category not in change.categories:
                continue
            for o, origin in enumerate(origins):
                if change.origins is not None and origin not in change.origins:
                    continue
                for field, (column, is_money) in _REGIME_FIELDS.items():
                    value = getattr(fields, field)
                    if value is None:
                        continue
                    native[m, o, kinds, column] = float(value)
                    if is_money:
                        money_currency[m, o, kinds, column] = code
                if fields.low_value_duty_per_heading is not None:
                    native[m, o, kinds, L.RG_PER_HEADING] = 1.0
                elif fields.low_value_duty_per_item is not None:
                    native[m, o, kinds, L.RG_PER_HEADING] = 0.0
                for f, value in enumerate((fields.entry_fee_per_parcel, fields.broker_fee_per_parcel)):
                    if value is not None:
                        fees[m, o, kinds, f] = float(value)
                        fee_currency[m, o, kinds, f] = code
        snapshot = (day, native.copy(), money_currency.copy(), fees.copy(), fee_currency.copy())
        if day == snapshots[-1][0]:
            snapshots[-1] = snapshot
        else:
            snapshots.append(snapshot)
    if scenario.effective_fx_path == "monthly":
        # A table on each month's first day inside the horizon: the month's rates.
        months = pd.date_range(pd.Timestamp(start) + pd.offsets.MonthBegin(0), scenario.horizon.end, freq="MS")
        month_days = [(d.date() - start).days for d in months if (d.date() - start).days > 0]
        change_days = {snapshot[0] for snapshot in snapshots}
        for day in month_days:
            if day not in change_days:
                last = max((sn for sn in snapshots if sn[0] < day), key=lambda sn: sn[0])
                snapshots.append((day,) + last[1:])
        snapshots.sort(key=lambda sn: sn[0])
    money_columns = [column for column, is_money in _REGIME_FIELDS.values() if is_money]
    days, tables, rules = [], [], []
    for day, values, value_currency, fee_values, fees_currency in snapshots:
        on = start + dt.timedelta(days=day)
        rate = np.array([scenario.usd_rate_on(c, on) for c in currencies])
        table = values.copy()
        table[..., money_columns] = values[..., money_columns] * rate[value_currency[..., money_columns]]
        converted = fee_values * rate[fees_currency]
        table[..., L.RG_ENTRY_FEE] = converted[..., 0] + converted[..., 1]
        days.append(day)
        tables.append(table)
        rule = values.copy()
        rule[..., L.RG_ENTRY_FEE] = fee_values[..., 0] + fee_values[..., 1]
        rules.append(rule)
    return np.asarray(days, dtype=np.int64), np.stack(tables), np.stack(rules)


def _basket_table(scenario: Scenario) -> np.ndarray:
    """(M, NB, N_BASKET) the parcels each market's sales ship in (layout.BK_*): units,
    distinct tariff sub-headings and share of each composition; rows past a market's
    basket are padding with share 0."""
    n_rows = max(len(m.basket) for m in scenario.markets) if scenario.markets else 1
    basket = np.zeros((len(scenario.markets), n_rows, L.N_BASKET))
    for i, market in enumerate(scenario.markets):
        for j, parcel in enumerate(market.basket):
            basket[i, j, L.BK_UNITS] = parcel.units
            basket[i, j, L.BK_HEADINGS] = parcel.headings
            basket[i, j, L.BK_SHARE] = parcel.share
    return basket


def _fee_tables(scenario: Scenario, dates: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """The markets' fee rows on each day (kernels.layout FE_*; money in market currency).

    A market with a ``fee_schedule`` gets one row per distinct set of terms over the
    horizon (the schedule's entries change on their ``from``/``to`` dates), its storage
    fee per unit-day from the month's rate; a market without one gets a single row: one
    referral rate on the VAT-inclusive price with its minimum, no schedule fulfilment,
    storage or inbound fees (each mode then pays its own).
    """
    from .fees import fee_schedule, resolve_fees
    from .kernels.fee_rules import REFERRAL_WHOLE_PRICE

    rows: list[np.ndarray] = []
    tiers: list[np.ndarray] = []
    bands: list[np.ndarray] = []
    fee_index = np.zeros((len(dates), len(scenario.markets)), dtype=np.int64)
    storage = np.zeros((len(dates), len(scenario.markets)))
    days_in_month = dates.days_in_month.to_numpy()
    months = dates.month.to_numpy()
    start, end = scenario.horizon.start, scenario.horizon.end
    for m, market in enumerate(scenario.markets):
        if market.fee_schedule is None:
            row = np.zeros(L.N_FEE_COLUMNS)
            row[L.FE_REFERRAL_MIN] = market.referral_fee_min
            row[L.FE_REFERRAL_RULE] = REFERRAL_WHOLE_PRICE
            row[L.FE_REFERRAL_GROSS] = 1.0
            fee_index[:, m] = len(rows)
            rows.append(row)
            tiers.append(np.array([[np.inf, market.referral_fee_rate]]))
            bands.append(np.array([[np.inf, 1.0, 0.0]]))
            continue
        schedule = fee_schedule(market.fee_schedule)
        changes = sorted({start} | {d for _, e in schedule.entries() for d in (e.start, e.end)
                                    if d is not None and start < d <= end})
        category = market.fee_category or market.category
        for i, day in enumerate(changes):
            terms = resolve_fees(schedule, category, day, market.size_tier, unit_volume=market.unit_volume)
            row = np.zeros(L.N_FEE_COLUMNS)
            row[L.FE_REFERRAL_MIN] = terms.referral_min
            row[L.FE_REFERRAL_RULE] = terms.referral_rule_code()
            row[L.FE_REFERRAL_GROSS] = 1.0 if terms.referral_base == "gross_of_vat" else 0.0
            row[L.FE_FULFILMENT_SURCHARGE] = terms.fulfilment_surcharge_rate
            row[L.FE_INBOUND] = terms.inbound_placement_per_unit
            row[L.FE_RETURNS_PROCESSING] = terms.returns_processing_per_unit
            row[L.FE_REFUND_ADMIN_RATE] = terms.refund_admin_rate
            row[L.FE_REFUND_ADMIN_MAX] = terms.refund_admin_max
            row[L.FE_HAS_FULFILMENT] = 1.0 if terms.fulfilment_fee_bands else 0.0
            first = (day - start).days
            last = (changes[i + 1] - start).days if i + 1 < len(changes) else len(dates)
            fee_index[first:last, m] = len(rows)
            monthly = terms.storage_array()
            storage[first:last, m] = monthly[months[first:last] - 1] / days_in_month[first:last]
            rows.append(row)
            tiers.append(terms.referral_tiers_array())
            bands.append(
                terms.fulfilment_bands_array() if terms.fulfilment_fee_bands else np.array([[np.inf, 1.0, 0.0]])
            )

    def padded(arrays: list[np.ndarray], width: int) -> np.ndarray:
        # Pad with copies of the last row: its bound is inf, so the rules never read them.
        longest = max(a.shape[0] for a in arrays)
        out = np.zeros((len(arrays), longest, width))
        for i, a in enumerate(arrays):
            out[i, : a.shape[0]] = a
            out[i, a.shape[0]:] = a[-1]
        return out

    return {
        "fee_index": fee_index,
        "fee_rows": np.stack(rows),
        "fee_referral_tiers": padded(tiers, 2),
        "fee_fulfilment_bands": padded(bands, 3),
        "storage_fee_day": storage,
    }


def _payment_fees(scenario: Scenario) -> list[tuple[float, float]]:
    """(rate, fixed fee in USD) of each population's DTC card payments (0, 0 for none),
    at the horizon start (the schedule's currency converted at the scenario's rate)."""
    from .fees import resolve_fees

    out = []
    for pop in scenario.sellers:
        name = pop.dtc.payment_fee_schedule
        if name is None:
            out.append((0.0, 0.0))
            continue
        terms = resolve_fees(name, "payment", scenario.horizon.start)
        # The fixed part is a static seller parameter: converted at the horizon's first day.
        out.append((terms.payment_fee_rate,
                    terms.payment_fee_fixed * scenario.usd_rate_on(terms.currency, scenario.horizon.start)))
    return out


def _position_weights(scenario: Scenario) -> np.ndarray:
    """(M, P) examination weight of each organic position: ``organic_attention * (1 + r)^-eta``
    for ``r < page_size``, 0 beyond (P = the largest page size)."""
    width = max(m.page_size for m in scenario.markets)
    weights = np.zeros((len(scenario.markets), width))
    for i, m in enumerate(scenario.markets):
        r = np.arange(m.page_size)
        weights[i, : m.page_size] = m.organic_attention * (1.0 + r) ** -m.position_decay
    return weights


def _regime_visible_days(scenario: Scenario, regime_days: np.ndarray) -> np.ndarray:
    """(C,) first day sellers may see (and act on) each regime table before it comes into
    force: :meth:`Scenario.visible_from` of the changes dated that day (the latest of them:
    a table is visible only when all its changes are known)."""
    start = scenario.horizon.start
    visible = regime_days.astype(np.int64).copy()
    by_day: dict[int, int] = {}
    for change in scenario.effective_duty_schedule:
        day = max((change.date - start).days, 0)
        seen = (scenario.visible_from(change) - start).days
        by_day[day] = max(by_day.get(day, -10**9), min(seen, day))
    for c, day in enumerate(regime_days):
        if int(day) in by_day:
            visible[c] = max(by_day[int(day)], 0) if day > 0 else 0
    return visible


#: Days per month in the conversion of monthly costs to daily ones (365 / 12).
DAYS_PER_MONTH = 365.0 / 12.0


def _layer_market_columns(scenario: Scenario, table: np.ndarray) -> None:
    """Fill the market table's layer columns (returns, retention, incidents, ratings, FX)."""
    for i, m in enumerate(scenario.markets):
        row = table[i]
        row[L.MK_RETURN_RATE] = m.effective_return_rate
        row[L.MK_REPEAT_RATE] = m.repeat_purchase_rate
        row[L.MK_LAPSE_RATE] = m.customer_lapse_rate
        row[L.MK_INCIDENT_RATE] = m.incidents_per_year / 365.0
        row[L.MK_INTERRUPTION_DAYS] = m.interruption_days
        row[L.MK_RATING_MEMORY] = m.rating_memory_units
        row[L.MK_RATING_RETURN_PENALTY] = m.rating_return_penalty
        row[L.MK_RATING_DELIVERY_PENALTY] = m.rating_delivery_penalty
        row[L.MK_FX_VOLATILITY] = m.fx_volatility


def _incident_multiplier(scenario: Scenario, n_days: int, regime_days: np.ndarray,
                         regime_rules: np.ndarray, kinds_used: list[int]) -> np.ndarray:
    """(D, M) multiplier of the incident hazard: ``rule_change_incident_multiplier`` for
    ``rule_change_window_days`` days from each compiled regime change (after day 0) that
    alters the market's duty rules for a fulfilment kind the scenario uses (``kinds_used``,
    layout.KIND_*), else 1. ``regime_rules`` holds the tables with money in the currency
    each amount was given in, so a new month's FX rate is not a new rule."""
    multiplier = np.ones((n_days, len(scenario.markets)))
    for i in range(1, len(regime_days)):
        day = int(regime_days[i])
        # Duty rules of the kinds the scenario ships in; fee and drawback columns are not rules.
        rules = [c for c in range(L.N_REGIME_COLUMNS) if c not in (L.RG_ENTRY_FEE, L.RG_DRAWBACK)]
        diff = regime_rules[i][:, :, kinds_used][..., rules] != regime_rules[i - 1][:, :, kinds_used][..., rules]
        changed = diff.reshape(len(scenario.markets), -1).any(axis=1)
        for m, market in enumerate(scenario.markets):
            if changed[m] and day > 0:
                window = slice(day, min(day + market.rule_change_window_days, n_days))
                multiplier[window, m] = market.rule_change_incident_multiplier
    return multiplier


def _fx_tables(scenario: Scenario, dates: pd.DatetimeIndex):
    """Currencies, market currency index, the (D, M) base USD rates (scenario rate, or the
    market's ``fx_series`` stepped from its dates), which currencies draw shocks, and
    whether FX moves at all."""
    currencies = sorted({m.currency for m in scenario.markets})
    market_currency = np.array([currencies.index(m.currency) for m in scenario.markets], dtype=np.int64)
    fx_base = np.empty((len(dates), len(scenario.markets)))
    # The scenario's rate of each day's month (fx_path: fixed gives currency_rates throughout).
    month_starts = dates.to_period("M").to_timestamp()
    for i, m in enumerate(scenario.markets):
        rate_of_month = {month: scenario.usd_rate_on(m.currency, month.date()) for month in month_starts.unique()}
        fx_base[:, i] = [rate_of_month[month] for month in month_starts]
        for date, rate in sorted((m.fx_series or {}).items()):
            fx_base[dates >= pd.Timestamp(date), i] = rate
    currency_active = np.zeros(len(currencies), dtype=bool)
    for i, m in enumerate(scenario.markets):
        if m.fx_volatility > 0:
            currency_active[market_currency[i]] = True
    fx_active = bool(currency_active.any()) or any(m.fx_series for m in scenario.markets) or bool(
        (fx_base != fx_base[:1]).any())
    return currencies, market_currency, fx_base, currency_active, fx_active


_POSTAL_METHODS = {"ad_valorem": L.POSTAL_AD_VALOREM, "specific": L.POSTAL_SPECIFIC,
                   "cheapest_per_parcel": L.POSTAL_CHEAPEST}


def _seller_layers(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(S, N_SELLER_LAYER) layer parameters and (S, N_LEVERS) initial levers per seller."""
    layer_rows, lever_rows = [], []
    payments = _payment_fees(scenario)
    for p, pop in enumerate(scenario.sellers):
        row = np.zeros(L.N_SELLER_LAYER)
        row[L.SL_PAYMENT_RATE], row[L.SL_PAYMENT_FIXED] = payments[p]
        row[L.SL_POSTAL_METHOD] = _POSTAL_METHODS[pop.postal_duty_method]
        row[L.SL_IOSS] = 1.0 if pop.ioss else 0.0
        row[L.SL_LOC_BRAND_LIFT] = pop.localisation_brand_lift
        row[L.SL_LOC_RETURN_CUT] = pop.localisation_return_cut
        row[L.SL_LOC_RETENTION_LIFT] = pop.localisation_retention_lift
        row[L.SL_DTC_CAC] = pop.dtc.cac
        row[L.SL_DTC_CAPACITY] = pop.dtc.new_customers_per_day
        row[L.SL_CRM_MULTIPLIER] = pop.dtc.crm_repeat_multiplier
        row[L.SL_COMPLIANCE_CUT] = pop.compliance_incident_cut
        row[L.SL_LOC_COST_DAY] = pop.localisation_cost_per_market_month / DAYS_PER_MONTH
        row[L.SL_COMPLIANCE_COST_DAY] = pop.compliance_cost_per_market_month / DAYS_PER_MONTH
        if pop.ad_guardrail == "cm2_ltv":
            row[L.SL_ANALYTICS_COST_DAY] = pop.analytics_cost_per_month / DAYS_PER_MONTH
        levers = np.zeros(L.N_LEVERS)
        levers[L.LV_LOCALISATION] = pop.localisation
        levers[L.LV_DTC_SHARE] = pop.dtc_share
        levers[L.LV_COMPLIANCE] = pop.compliance_investment
        layer_rows += [row] * pop.count
        lever_rows += [levers] * pop.count
    return (np.array(layer_rows).reshape(-1, L.N_SELLER_LAYER),
            np.array(lever_rows).reshape(-1, L.N_LEVERS))


def _periods(dates: pd.DatetimeIndex, resolution: str) -> tuple[np.ndarray, pd.DatetimeIndex, np.ndarray]:
    if resolution == "day":
        keys = np.arange(len(dates))
    elif resolution == "week":
        # Weeks counted from the horizon start, so every period but the last has 7 days.
        keys = np.arange(len(dates)) // 7
    elif resolution == "month":
        keys = (dates.year * 12 + dates.month).to_numpy()
        keys = keys - keys[0]
    else:
        raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}")
    _, first = np.unique(keys, return_index=True)
    period_of_day = np.searchsorted(first, np.arange(len(dates)), side="right") - 1
    ends = np.append(first[1:] - 1, len(dates) - 1)
    return period_of_day.astype(np.int64), dates[first], ends.astype(np.int64)


def _listing_lists(served: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists of each market's served listings: offsets (M + 1,), seller indices (L,)."""
    n_markets = served.shape[1]
    sellers = [np.flatnonzero(served[:, m]) for m in range(n_markets)]
    offsets = np.zeros(n_markets + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in sellers])
    flat = np.concatenate(sellers).astype(np.int64) if sellers else np.zeros(0, dtype=np.int64)
    return offsets, flat


def _population_rules(scenario: Scenario) -> np.ndarray:
    """(P, N_POPULATION_COLUMNS): the review-time rules of cbecsim.layers as numbers."""
    rules = np.zeros((len(scenario.sellers), K.N_POPULATION_COLUMNS))
    for p, pop in enumerate(scenario.sellers):
        rules[p, K.PR_SELECTION] = K.SELECTION_CODES[pop.market_selection]
        rules[p, K.PR_MAX_MARKETS] = pop.max_markets or 0
        rules[p, K.PR_TOP_SHARE_CAP] = pop.max_top_market_share
        rules[p, K.PR_RESEARCH_COST] = pop.market_research_cost
        rules[p, K.PR_GUARDRAIL] = K.GUARDRAIL_CODES[pop.ad_guardrail]
        rules[p, K.PR_ROAS_TARGET] = pop.roas_target
        rules[p, K.PR_REVIEW_DAYS] = pop.review_days
    return rules


def _parameter_draws(scenario: Scenario) -> np.ndarray:
    """(P, N_PARAMETERS, 4): each seller parameter's distribution code and arguments."""
    draws = np.zeros((len(scenario.sellers), len(PARAMETER_NAMES), 4))
    for p, pop in enumerate(scenario.sellers):
        for index, name in enumerate(PARAMETER_NAMES):
            spec = getattr(pop.params, name)
            if isinstance(spec, (int, float)):
                draws[p, index] = (rng.DIST_CONSTANT, float(spec), 0.0, 0.0)
            else:
                fields = spec.model_dump()
                code = _DIST_CODES[fields.pop("dist")]
                values = [float(v) for v in fields.values()] + [0.0, 0.0]
                draws[p, index] = (code, *values[:3])
    return draws


def compile_scenario(scenario: Scenario, resolution: str = "day") -> CompiledScenario:
    """Build the static tables of ``scenario`` for output periods of ``resolution``."""
    dates = pd.date_range(scenario.horizon.start, scenario.horizon.end, freq="D")
    markets = scenario.markets
    market_names = [m.name for m in markets]

    table = np.zeros((len(markets), L.N_MARKET_COLUMNS))
    k_max = max(1, max(m.sponsored_slots for m in markets))
    click_through = np.zeros((len(markets), k_max))
    for i, m in enumerate(markets):
        row = table[i]
        row[L.MK_SHOPPERS] = m.shoppers_per_day
        row[L.MK_REFERENCE_PRICE] = m.reference_price
        row[L.MK_VAT] = m.vat_rate
        row[L.MK_SLOTS] = m.sponsored_slots
        row[L.MK_RESERVE] = m.reserve_price
        row[L.MK_IMPRESSION_SHARE] = m.sponsored_impression_share
        row[L.MK_ORGANIC_ATTENTION] = m.organic_attention
        row[L.MK_BASE_UTILITY] = m.base_utility
        row[L.MK_PRICE_SENSITIVITY] = m.price_sensitivity
        row[L.MK_BRAND_WEIGHT] = m.brand_weight
        row[L.MK_RATING_WEIGHT] = m.rating_weight
        row[L.MK_DELIVERY_WEIGHT] = m.delivery_weight
        row[L.MK_REFERRAL_RATE] = m.referral_fee_rate
        row[L.MK_REFERRAL_MIN] = m.referral_fee_min
        row[L.MK_VISIBILITY_RATE] = m.visibility_rate
        row[L.MK_VISIBILITY_FLOOR] = m.visibility_floor
        row[L.MK_AUCTION_ROUNDS] = m.auction_rounds
        row[L.MK_PAGE_SIZE] = m.page_size
        row[L.MK_POSITION_DECAY] = m.position_decay
        row[L.MK_NEST] = m.nest_parameter
        slots = m.click_through[: m.sponsored_slots]
        click_through[i, : len(slots)] = slots

    mode_names = list(scenario.fulfilment_modes)
    modes = np.zeros((len(mode_names), L.N_MODE_COLUMNS))
    for f, name in enumerate(mode_names):
        mode = scenario.fulfilment_modes[name]
        modes[f, L.MD_KIND] = _KIND_INDEX[mode.kind]
        modes[f, L.MD_FREIGHT] = mode.freight_per_unit
        modes[f, L.MD_DELIVERY_DAYS] = mode.delivery_days
        modes[f, L.MD_FULFILMENT_FEE] = mode.fulfilment_fee_per_unit
        modes[f, L.MD_HANDLING_FEE] = mode.handling_fee_per_unit
        modes[f, L.MD_LEAD_MIN] = mode.lead_time_days[0]
        modes[f, L.MD_LEAD_MAX] = mode.lead_time_days[1]
        modes[f, L.MD_SCHEDULE_FEES] = 1.0 if mode.kind == "bulk" and mode.schedule_fees else 0.0
        modes[f, L.MD_STORAGE_MONTH] = mode.storage_per_unit_month if mode.kind == "bulk" else 0.0
        modes[f, L.MD_SWITCH_COST] = mode.switch_cost
        modes[f, L.MD_BADGE_UTILITY] = mode.badge_utility
    # The parcel-kind mode that ships a listing's origin stock: its own mode when that is
    # a parcel kind, else the scenario's first parcel-kind mode (itself if there is none).
    parcel_kinds = [f for f in range(len(mode_names)) if int(modes[f, L.MD_KIND]) != L.KIND_BULK]
    parcel_mode = np.array([f if int(modes[f, L.MD_KIND]) != L.KIND_BULK else (parcel_kinds[0] if parcel_kinds else f)
                            for f in range(len(mode_names))], dtype=np.int64)

    # Every origin a seller starts from or may move production to has its regime rows.
    origins = sorted({p.origin for p in scenario.sellers} | {o for p in scenario.sellers for o in p.origin_options})
    # Each origin's copy of the mode table: its own freight and lead times where a mode
    # names them (by_origin), else the mode's.
    mode_by_origin = np.broadcast_to(modes, (len(origins),) + modes.shape).copy()
    for f, name in enumerate(mode_names):
        for code, leg in scenario.fulfilment_modes[name].by_origin.items():
            if code not in origins:
                continue
            row = mode_by_origin[origins.index(code), f]
            if leg.freight_per_unit is not None:
                row[L.MD_FREIGHT] = leg.freight_per_unit
            if leg.lead_time_days is not None:
                row[L.MD_LEAD_MIN], row[L.MD_LEAD_MAX] = leg.lead_time_days
    regime_days, regime_tables, regime_rules = _regime_changes(scenario, origins)

    populations, origin_of, served, initial_mode, slices = [], [], [], [], []
    start = 0
    for p, pop in enumerate(scenario.sellers):
        row_served = np.array([name in pop.markets for name in market_names])
        row_mode = np.array([mode_names.index(scenario.fulfilment_of(pop, name)) for name in market_names])
        for _ in range(pop.count):
            populations.append(p)
            origin_of.append(origins.index(pop.origin))
            served.append(row_served)
            initial_mode.append(row_mode)
        slices.append(slice(start, start + pop.count))
        start += pop.count
    n_sellers = len(populations)
    served_table = np.asarray(served, dtype=bool).reshape(n_sellers, len(markets))
    market_offsets, market_sellers = _listing_lists(served_table)

    period_of_day, period_starts, period_ends = _periods(dates, resolution)
    _layer_market_columns(scenario, table)
    currencies, market_currency, fx_base, currency_active, fx_active = _fx_tables(scenario, dates)
    seller_layer, seller_levers = _seller_layers(scenario)
    fee_tables = _fee_tables(scenario, dates)
    period_last_day = np.zeros(len(dates), dtype=bool)
    period_last_day[period_ends] = True
    tables = Tables(
        market=table,
        click_through=click_through,
        season=_season_table(scenario, dates),
        modes=modes,
        mode_by_origin=mode_by_origin,
        regime_index=(np.searchsorted(regime_days, np.arange(len(dates)), side="right") - 1).astype(np.int64),
        regime_tables=regime_tables,
        origin=np.asarray(origin_of, dtype=np.int64),
        served=served_table,
        market_offsets=market_offsets,
        market_sellers=market_sellers,
        period_of_day=period_of_day,
        period_last_day=period_last_day,
        period_days=np.bincount(period_of_day, minlength=len(period_starts)).astype(np.float64),
        incident_multiplier=_incident_multiplier(scenario, len(dates), regime_days, regime_rules,
                                                 sorted({int(k) for k in modes[:, L.MD_KIND]})),
        basket=_basket_table(scenario),
        fx_active=bool(fx_active),
        fx_base=fx_base,
        market_currency=market_currency,
        currency_active=currency_active,
        seller_layer=seller_layer,
        parcel_mode=parcel_mode,
        position_weight=_position_weights(scenario),
        **fee_tables,
    )
    return CompiledScenario(
        name=scenario.name,
        resolution=resolution,
        tables=tables,
        dates=dates,
        market_names=market_names,
        market_regions=[m.region for m in markets],
        market_categories=[m.category for m in markets],
        mode_names=mode_names,
        origins=origins,
        regime_days=regime_days,
        regime_visible_days=_regime_visible_days(scenario, regime_days),
        seller_population=np.asarray(populations, dtype=np.int64),
        seller_mode=np.asarray(initial_mode, dtype=np.int64).reshape(n_sellers, len(markets)),
        population_labels=[p.label for p in scenario.sellers],
        population_strategies=[p.strategy for p in scenario.sellers],
        population_strategy_params=[dict(p.strategy_params) for p in scenario.sellers],
        population_origin_options=[tuple(origins.index(o) for o in p.origin_options) for p in scenario.sellers],
        population_origin_switch=[(float(p.origin_switch_cost), int(p.origin_switch_lead_days))
                                  for p in scenario.sellers],
        population_slices=slices,
        population_rules=_population_rules(scenario),
        parameter_draws=_parameter_draws(scenario),
        period_starts=period_starts,
        period_ends=period_ends,
        currencies=currencies,
        seller_levers=seller_levers,
        config_json=json.dumps(scenario.model_dump(mode="json"), sort_keys=True),
        duty_schedule_json=json.dumps(
            [change.model_dump(mode="json", exclude_none=True) for change in scenario.effective_duty_schedule],
            sort_keys=True,
        ),
    )


def draw_parameters(compiled: CompiledScenario, seed: int, replication0: int, n_batch: int) -> dict[str, np.ndarray]:
    """Initial seller parameters, each (B, S, M), drawn from the counter-based generator.

    Draw keys: purpose ``INIT + index of the parameter``, global replication and seller
    index, market (or -1 for seller-level parameters), day -1.
    """
    S, M = compiled.n_sellers, compiled.n_markets
    drawn = {name: np.zeros((n_batch, S, M)) for name in PARAMETER_NAMES}
    for p, slc in enumerate(compiled.population_slices):
        if slc.stop == slc.start:
            continue
        for index, name in enumerate(PARAMETER_NAMES):
            code, a, b, c = compiled.parameter_draws[p, index]
            out = np.zeros((n_batch, slc.stop - slc.start, M))
            rng.fill_parameter(
                int(code), a, b, c, np.uint64(seed), rng.INIT + index, replication0, slc.start,
                name in PER_MARKET_PARAMETERS, out,
            )
            drawn[name][:, slc] = out
    return drawn


def initial_state(compiled: CompiledScenario, seed: int, replication0: int, n_batch: int) -> State:
    """State of replications ``replication0 .. replication0 + n_batch - 1`` on day 0.

    Sellers start with stock at their order-up-to level (already paid for, in the pool of
    the listing's mode), demand estimates equal to ``expected_daily_units`` and no
    visibility history.
    """
    p = draw_parameters(compiled, seed, replication0, n_batch)
    S, M = compiled.n_sellers, compiled.n_markets
    served = np.broadcast_to(compiled.seller_served, (n_batch, S, M))
    reference = compiled.market[:, L.MK_REFERENCE_PRICE]
    mode = np.broadcast_to(compiled.seller_mode, (n_batch, S, M)).copy()
    by_origin = compiled.tables.mode_by_origin[compiled.tables.origin[:, None], mode]  # (B, S, M, N_MODE_COLUMNS)
    lead_mean = 0.5 * (by_origin[..., L.MD_LEAD_MIN] + by_origin[..., L.MD_LEAD_MAX])
    # Physical bounds on drawn values: a distribution's tail must not produce a negative
    # cost, a price of zero or a rating off the 1..5 scale.
    expected = np.maximum(p["expected_daily_units"], 0.0)
    safety = np.maximum(p["safety_days"], 0.0)
    cover = np.maximum(p["cover_days"], 0.0)
    stock = np.where(served, np.ceil(expected * (lead_mean + safety + cover)), 0).astype(np.int64)
    cash = p["initial_cash"][:, :, 0].copy()
    tables = compiled.tables
    unit_cost = np.maximum(p["unit_cost"], 0.01)
    usd_rate = np.broadcast_to(tables.fx_base[0], (n_batch, M)).copy()
    # The day-0 stock sits in the pool of the listing's mode: bulk in the warehouse at its
    # landed cost (as if imported under day 0's regime and fees), parcel kinds at origin.
    bulk = tables.modes[mode, L.MD_KIND] == L.KIND_BULK
    warehouse_cost = np.zeros((n_batch, S, M))
    initial_warehouse_cost(tables, unit_cost, mode, usd_rate, warehouse_cost)
    pool_cost = np.stack([unit_cost, np.where(bulk, warehouse_cost, 0.0)], axis=-1)
    bulk_modes = np.flatnonzero(tables.modes[:, L.MD_KIND] == L.KIND_BULK)
    pool_mode = np.stack([tables.parcel_mode[mode], np.where(bulk, mode, bulk_modes[0] if len(bulk_modes) else mode)],
                         axis=-1)
    review_days = compiled.population_rules[compiled.seller_population, K.PR_REVIEW_DAYS]
    credit = np.zeros((n_batch, S, L.N_CREDIT))
    credit[..., L.CR_INTEREST_DAY] = np.maximum(p["credit_interest_rate"][:, :, 0], 0.0) / 365.0
    credit[..., L.CR_RECOVERY_DAYS] = np.maximum(p["recovery_days"][:, :, 0], 0.0)
    credit[..., L.CR_RESERVE_DAYS] = review_days[None, :]
    layer_sm = np.zeros((n_batch, S, M, L.N_LAYER_SM))
    clocks = np.empty((n_batch, S, M))
    first_incident_clocks(np.uint64(seed), replication0, clocks)
    layer_sm[..., L.LS_INCIDENT_CLOCK] = clocks
    return State(
        alive=np.ones((n_batch, S), dtype=bool),
        cash=cash,
        initial_cash=cash.copy(),
        credit_line=np.maximum(p["credit_line"][:, :, 0], 0.0),
        fixed_cost=np.maximum(p["fixed_cost_per_day"][:, :, 0], 0.0),
        brand=p["brand"][:, :, 0].copy(),
        rating=np.clip(p["rating"][:, :, 0], 1.0, 5.0),
        exit_day=np.full((n_batch, S), -1, dtype=np.int64),
        listed=served.copy(),
        price_local=np.maximum(p["price_index"], 0.01) * reference,
        bid_local=np.maximum(p["bid"], 0.0),
        budget_local=np.maximum(p["daily_budget"], 0.0),
        mode=mode,
        unit_cost=unit_cost,
        stock=stock,
        visibility_score=np.zeros((n_batch, S, M)),
        demand_estimate=np.where(served, expected, 0.0),
        stock_policy=np.stack([safety, cover], axis=-1),
        pending_quantity=np.zeros((n_batch, S, M), dtype=np.int64),
        pending_day=np.zeros((n_batch, S, M), dtype=np.int64),
        pending_mode=np.zeros((n_batch, S, M), dtype=np.int64),
        window=np.zeros((n_batch, S, M, L.N_WINDOW)),
        levers=np.broadcast_to(compiled.seller_levers, (n_batch, S, L.N_LEVERS)).copy(),
        layer_sm=layer_sm,
        usd_rate=usd_rate,
        fx_walk=np.zeros((n_batch, len(compiled.currencies))),
        one_off_cost=np.zeros((n_batch, S)),
        warehouse_stock=np.where(bulk, stock, 0).astype(np.int64),
        pool_cost=pool_cost,
        pool_mode=pool_mode.astype(np.int64),
        pending_cost=np.zeros((n_batch, S, M)),
        credit=credit,
        exit_reason=np.full((n_batch, S), L.EXIT_SURVIVED, dtype=np.int64),
        exit_request=np.full((n_batch, S), L.EXIT_STRATEGIC, dtype=np.int64),
        imports_paused=np.zeros((n_batch, S, M), dtype=bool),
        order_now=np.zeros((n_batch, S, M), dtype=bool),
        unit_cash_margin=np.zeros((n_batch, S, M)),
        rank_order=np.broadcast_to(tables.market_sellers, (n_batch, len(tables.market_sellers))).copy(),
        switch_cost_due=np.zeros((n_batch, S)),
        origin=np.broadcast_to(tables.origin, (n_batch, S)).copy(),
        pending_origin=np.broadcast_to(tables.origin[:, None], (n_batch, S, M)).copy(),
        pool_origin=np.broadcast_to(tables.origin[:, None], (n_batch, S, M)).copy(),
        origin_switch_day=np.full((n_batch, S), -1, dtype=np.int64),
        origin_switch_to=np.broadcast_to(tables.origin, (n_batch, S)).copy(),
        period_sum=np.zeros((n_batch, S, M, K.N_ACC)),
        seller_sum=np.zeros((n_batch, S, K.N_SACC)),
    )


def copy_state(state: State) -> State:
    """A deep copy of a batch state (the engine forks a world from it)."""
    return State(*(np.array(array, copy=True) for array in state))


def work_space(compiled: CompiledScenario, n_batch: int) -> Work:
    """Scratch arrays of the market step for ``n_batch`` replications (allocated once)."""
    S = compiled.n_sellers
    k_max = compiled.tables.click_through.shape[1]
    return Work(
        up=np.zeros((n_batch, S), dtype=bool),
        eligible=np.zeros((n_batch, S), dtype=bool),
        winners=np.zeros((n_batch, k_max + 1), dtype=np.int64),
        prices=np.zeros((n_batch, k_max + 1)),
        slot_clicks=np.zeros((n_batch, k_max), dtype=np.int64),
        ptrs=np.zeros((n_batch, k_max, 4)),
        scratch=np.zeros((n_batch, S)),
        order=np.zeros((n_batch, S), dtype=np.int64),
        score=np.zeros((n_batch, S)),
        remaining=np.zeros((n_batch, S)),
        sponsored_attention=np.zeros((n_batch, S)),
        attention=np.zeros((n_batch, S)),
        weight=np.zeros((n_batch, S)),
        utility_static=np.zeros((n_batch, S, compiled.n_markets)),
        direct_duty_key=np.full((n_batch, S, compiled.n_markets), -1, dtype=np.int64),
        direct_duty=np.zeros((n_batch, S, compiled.n_markets, 3)),
        repeats_possible=np.zeros((n_batch, compiled.n_markets), dtype=bool),
        sale_memo=np.full((n_batch, S, compiled.n_markets, K.N_SALE_MEMO), np.nan),
        choice_memo=np.full((n_batch, S, compiled.n_markets, K.N_CHOICE_MEMO), np.nan),
    )
