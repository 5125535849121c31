"""Seller strategies: vectorised decision rules applied at review events.

A strategy object acts on *all* sellers of one population in a batch at once. At every
review (each ``review_days`` days) the engine builds a :class:`SellerView` -- arrays for
that population only, shaped ``(B, n, M)`` (replications in the batch, sellers of the
population, markets) or ``(B, n)`` -- and calls :meth:`Strategy.review`.

The protocol (what a user class named ``package.module:ClassName`` must provide)::

    class MyStrategy:
        def __init__(self, params: dict): ...          # strategy_params from the config
        def initialise(self, view: SellerView) -> None: ...   # once per batch, day 0
        def review(self, view: SellerView) -> None: ...       # at each review event

or subclass :class:`StrategyBase`, whose documented hooks (``Params``, ``reprice``,
``exit_markets``, ``set_ads``) the built-ins use.

How a strategy acts: the view's **decision arrays** (``price``, ``bid``,
``daily_budget``, ``mode``, ``listed``, ``localisation``, ``dtc_share``,
``compliance_investment``) are the strategy's own copies -- write to them (or return a
mapping of decision name -> new array from ``initialise``/``review``) and the engine
checks and applies them after the call. Everything else in the view is a **read-only
observation**: writing to it raises an error that names the strategy. A decision that is
not a finite number, a price that is not positive, a negative bid or budget, a mode
index out of range or a lever outside 0..1 stops the run with a message naming the
population, strategy, day and replication. Listing a seller in a market outside
``view.served`` is ignored.

Rules that keep results reproducible: decide from the view only, keep state in
``view.memory`` (the strategy's own dict of arrays), and use element-wise arithmetic per
replication (no random numbers, no statistic pooled across replications), so a
replication's path is the same in any batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .kernels.formulas import unit_margin_usd_array
from .registry import BUILTIN_STRATEGIES

__all__ = [
    "Strategy",
    "StrategyBase",
    "SellerView",
    "DECISIONS",
    "TrafficFirst",
    "BrandMatrix",
    "Diversified",
    "StagedRoadmap",
    "BUILTIN",
    "StrategyParamsError",
]

#: The decision arrays of a view, which a strategy may change.
DECISIONS = ("price", "bid", "daily_budget", "mode", "listed", "localisation", "dtc_share",
             "compliance_investment")


@runtime_checkable
class Strategy(Protocol):
    """What the engine calls (see the module docstring).

    ``__init__(params)`` receives the population's ``strategy_params`` (a dict); it may
    raise :class:`StrategyParamsError` with ``(field, message)`` problems, reported as
    config errors under ``sellers.N.strategy_params``.
    """

    def __init__(self, params: dict[str, Any]) -> None: ...

    def initialise(self, view: "SellerView") -> Any: ...

    def review(self, view: "SellerView") -> Any: ...


@dataclasses.dataclass(frozen=True)
class SellerView:
    """One population's sellers in one batch, at a review.

    Decision arrays (the strategy's copies; write to them):
        price : (B, n, M) price per unit [market currency]
        bid : (B, n, M) cost-per-click bid [market currency]
        daily_budget : (B, n, M) ad budget [market currency/day]
        mode : (B, n, M) fulfilment mode index into ``mode_names``
        listed : (B, n, M) bool, listing active
        localisation, dtc_share, compliance_investment : (B, n), levers 0..1 (issue 7)
    Observations (read only):
        day : int, days since the horizon start
        alive : (B, n) bool
        cash : (B, n) [USD]
        served : (n, M) bool, markets the population may list in
        reference_price : (M,) [market currency]; usd_rate : (B, 1, M) USD per unit of
            each market's currency today (it moves when the scenario has FX paths)
        referral_rate, referral_min, vat : (M,)
        unit_cost : (B, n, M) [USD]; stock : (B, n, M) [units]
        landed_cost : (B, n, M) landed cost per unit under the current mode [USD]
        landed_cost_by_mode : (B, n, M, F) landed cost per unit under each mode [USD]
        fulfilment_fee_by_mode : (F,) [USD/unit]; mode_names : tuple of F names;
        mode_kind : (F,) 0 parcel, 1 bulk
        window_* : since the seller's previous review, (B, n, M): revenue, ad_spend, cm2
            [USD], units, lost [units], visibility (mean share of attention), days,
            new_customers, returns
        rating : (B, n)
        memory : dict of arrays the strategy keeps between reviews of this batch (its own)
    """

    day: int
    alive: np.ndarray
    cash: np.ndarray
    served: np.ndarray
    reference_price: np.ndarray
    usd_rate: np.ndarray
    referral_rate: np.ndarray
    referral_min: np.ndarray
    vat: np.ndarray
    unit_cost: np.ndarray
    stock: np.ndarray
    landed_cost: np.ndarray
    landed_cost_by_mode: np.ndarray
    fulfilment_fee_by_mode: np.ndarray
    mode_names: tuple[str, ...]
    mode_kind: np.ndarray
    window_revenue: np.ndarray
    window_units: np.ndarray
    window_lost: np.ndarray
    window_ad_spend: np.ndarray
    window_cm2: np.ndarray
    window_visibility: np.ndarray
    window_days: np.ndarray
    price: np.ndarray
    bid: np.ndarray
    daily_budget: np.ndarray
    mode: np.ndarray
    listed: np.ndarray
    memory: dict[str, np.ndarray]
    localisation: np.ndarray
    dtc_share: np.ndarray
    compliance_investment: np.ndarray
    rating: np.ndarray
    window_new_customers: np.ndarray
    window_returns: np.ndarray

    # Helpers shared by the built-ins --------------------------------------------------

    def unit_margin(self, price: np.ndarray | None = None) -> np.ndarray:
        """Contribution per unit before ads at ``price`` (default: current) [USD/unit].

        Net price (ex VAT) minus landed cost, referral fee and fulfilment fee: the market
        kernel's rule (:func:`cbecsim.kernels.formulas.unit_margin_usd`), same source.
        """
        price = self.price if price is None else price
        return unit_margin_usd_array(price, self.vat, self.usd_rate, self.landed_cost, self.referral_rate,
                                     self.referral_min, self.fulfilment_fee_by_mode[self.mode])

    def per_day(self, window: np.ndarray) -> np.ndarray:
        """A window total divided by the days it covers (0 where none)."""
        return np.divide(window, self.window_days, out=np.zeros_like(window), where=self.window_days > 0)


class StrategyParamsError(ValueError):
    """strategy_params that a built-in strategy does not accept."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _PricingParams(_Params):
    target_margin: float = Field(ge=0, lt=1, description="target contribution before ads / net price")
    pass_through: float = Field(ge=0, le=1, description="share of a margin shortfall passed into price per review")
    max_price_rise: float = Field(ge=0, description="cap on the price rise over the initial price (0.3 = +30%)")
    max_step: float = Field(default=0.10, ge=0, description="cap on one review's price change")
    max_price_cut: float = Field(
        default=0.0, ge=0, lt=1,
        description="cap on the price cut below the initial (list) price; 0 = prices only pass "
        "cost increases through and never undercut the seller's own positioning",
    )
    exit_after_reviews: int = Field(ge=1, description="leave a market after this many reviews with CM2 < 0")


class StrategyBase:
    """A base for strategies: validated parameters and the built-ins' pricing, exit and
    ad rules, as hooks to override.

    Hooks
    -----
    Params : pydantic model
        The accepted ``strategy_params`` (unknown keys are refused, with their path).
    initialise(view)
        Day 0: remembers the initial (list) prices and starts the exit counters.
    review(view)
        At each review: :meth:`reprice`, then :meth:`exit_markets`, then :meth:`set_ads`.
    reprice(view), exit_markets(view), set_ads(view)
        Each writes the view's decision arrays (see the module docstring).
    """

    Params: type[_PricingParams] = _PricingParams
    params: _PricingParams

    def __init__(self, params: dict[str, Any] | None = None):
        try:
            self.params = self.Params.model_validate(params or {})
        except ValidationError as exc:
            raise StrategyParamsError(
                [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
            ) from None

    def initialise(self, view: SellerView) -> None:
        view.memory["initial_price"] = view.price.copy()
        view.memory["negative_reviews"] = np.zeros(view.price.shape, dtype=np.int64)

    def review(self, view: SellerView) -> None:
        self.reprice(view)
        self.exit_markets(view)
        self.set_ads(view)

    def reprice(self, view: SellerView) -> None:
        """Pass a share of any margin shortfall into price, capped per step and overall.

        The price moves by ``pass_through`` x (``target_margin`` - margin rate before ads),
        at most ``max_step`` per review, within [initial x (1 - ``max_price_cut``),
        initial x (1 + ``max_price_rise``)]. With the default ``max_price_cut`` = 0 a
        seller keeps its list-price positioning (thin markup, premium, ...) and passes
        cost increases through, then back down as far as its list price when costs fall;
        without the floor every seller would drift to the same cost-plus price.
        """
        p = self.params
        net = view.price / (1.0 + view.vat) * view.usd_rate
        margin_rate = np.divide(view.unit_margin(), net, out=np.zeros_like(net), where=net > 0)
        shortfall = p.target_margin - margin_rate
        step = np.clip(p.pass_through * shortfall, -p.max_step, p.max_step)
        new_price = view.price * (1.0 + step)
        initial = view.memory["initial_price"]
        view.price[...] = np.clip(new_price, initial * (1.0 - p.max_price_cut), initial * (1.0 + p.max_price_rise))

    def exit_markets(self, view: SellerView) -> None:
        """Count consecutive reviews with negative CM2; delist after ``exit_after_reviews``."""
        trading = view.listed & (view.window_days > 0)
        negative = trading & (view.window_cm2 < 0)
        count = view.memory["negative_reviews"]
        count[...] = np.where(negative, count + 1, np.where(trading, 0, count))
        view.listed[...] = view.listed & (count < self.params.exit_after_reviews)

    def set_ads(self, view: SellerView) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class TrafficFirst(StrategyBase):
    """PDD/Temu-style low-price seller: thin markup, heavy ads, direct parcels, one region.

    Ads aim at spending ``ad_share`` (default 0.28, PDD Q3 2025 sales & marketing /
    revenue, FACTS.md) of trailing revenue: daily budget = ``ad_share`` x trailing revenue
    per day x a pacing multiplier, never below ``min_budget``. A seller that spent less
    than 90% of its target share (it lost auctions or rounds) raises the multiplier by
    10% (up to ``max_pacing``) and its bid by 10% (up to ``max_bid``); one that spent over
    110% lowers the multiplier. When the trailing CM2 of a market is negative the budget
    and bid are cut by ``cut_factor`` ("then ad cuts when CM2 < 0", DESIGN.md). Cost
    shocks: partial pass-through.
    """

    class Params(_PricingParams):
        target_margin: float = 0.12
        pass_through: float = 0.5
        max_price_rise: float = 0.30
        exit_after_reviews: int = 8
        ad_share: float = Field(default=0.28, ge=0, le=1)
        min_budget: float = Field(default=20.0, ge=0, description="[market currency/day]")
        cut_factor: float = Field(default=0.5, ge=0, le=1)
        max_bid: float = Field(default=1.45, ge=0, description="[market currency/click]")
        max_pacing: float = Field(default=3.0, ge=1, description="cap on the budget pacing multiplier")

    params: Params

    def initialise(self, view: SellerView) -> None:
        super().initialise(view)
        view.memory["pacing"] = np.ones(view.price.shape)

    def set_ads(self, view: SellerView) -> None:
        p = self.params
        revenue_local = view.per_day(view.window_revenue) / view.usd_rate
        spend_local = view.per_day(view.window_ad_spend) / view.usd_rate
        target = p.ad_share * revenue_local
        negative = view.window_cm2 < 0
        # Buying traffic: while CM2 holds, pace budget and bid up until the target share is spent.
        underspent = ~negative & (spend_local < 0.9 * target)
        overspent = spend_local > 1.1 * target
        pacing = view.memory["pacing"]
        pacing[...] = np.clip(np.where(underspent, pacing * 1.1, np.where(overspent, pacing / 1.1, pacing)),
                              1.0, p.max_pacing)
        budget = np.maximum(target * pacing, p.min_budget)
        bid = np.where(underspent, np.minimum(view.bid * 1.10, p.max_bid), view.bid)
        view.bid[...] = np.where(negative, view.bid * (0.5 + 0.5 * p.cut_factor), bid)
        view.daily_budget[...] = np.where(negative, np.minimum(budget, view.daily_budget) * p.cut_factor, budget)


class BrandMatrix(StrategyBase):
    """Anker-style brand: premium price, moderate ads at an ACoS target, warehouse stock.

    Ads: budget = ``headroom`` x ``acos_target`` x trailing revenue per day; the bid moves
    down 10% when ACoS (ad spend / revenue) is above target and up 5% when below, within
    ``max_bid``. Cost shocks: full pass-through (``pass_through`` = 1).
    """

    class Params(_PricingParams):
        # Contribution before ads: Anker's ~43% gross margin (FACTS.md) less referral and
        # fulfilment fees of ~18% of revenue.
        target_margin: float = 0.25
        pass_through: float = 1.0
        max_price_rise: float = 0.50
        exit_after_reviews: int = 12
        acos_target: float = Field(default=0.20, ge=0, le=1)
        headroom: float = Field(default=1.25, ge=1)
        min_budget: float = Field(default=15.0, ge=0)
        max_bid: float = Field(default=3.0, ge=0)

    params: Params

    def set_ads(self, view: SellerView) -> None:
        p = self.params
        revenue = view.per_day(view.window_revenue)
        spend = view.per_day(view.window_ad_spend)
        acos = np.divide(spend, revenue, out=np.full_like(spend, np.inf), where=revenue > 0)
        view.bid[...] = np.clip(np.where(acos > p.acos_target, view.bid * 0.9, view.bid * 1.05), 0.0, p.max_bid)
        view.daily_budget[...] = np.maximum(p.headroom * p.acos_target * revenue / view.usd_rate, p.min_budget)


class Diversified(StrategyBase):
    """The seed paper's recommendation: mid price, ads capped by contribution margin,
    several regions with the top market kept under ``max_top_share`` of revenue, and
    stock moved to an overseas warehouse where the duty per unit of direct parcels
    makes the warehouse cheaper by more than ``switch_margin``.

    Ads: the population's total budget per seller is at most ``cm_share`` x trailing
    contribution before ads per day, then reallocated across markets in proportion to
    trailing CM2 per day (markets with better CM2 get more); a market above the top-share
    cap has its budget cut by 20%.
    """

    class Params(_PricingParams):
        target_margin: float = 0.22
        pass_through: float = 0.75
        max_price_rise: float = 0.40
        exit_after_reviews: int = 6
        cm_share: float = Field(default=0.5, ge=0, le=1)
        min_budget: float = Field(default=10.0, ge=0)
        max_top_share: float = Field(default=0.5, gt=0, le=1)
        switch_margin: float = Field(default=0.25, ge=0, description="[USD/unit]")
        warehouse_mode: str = "overseas_warehouse"

    params: Params

    def review(self, view: SellerView) -> None:
        self.choose_fulfilment(view)
        super().review(view)

    def choose_fulfilment(self, view: SellerView) -> None:
        p = self.params
        if p.warehouse_mode not in view.mode_names:
            return
        warehouse = view.mode_names.index(p.warehouse_mode)
        fees = view.fulfilment_fee_by_mode
        current = np.take_along_axis(view.landed_cost_by_mode, view.mode[..., None], axis=-1)[..., 0]
        current = current + fees[view.mode]
        alternative = view.landed_cost_by_mode[..., warehouse] + fees[warehouse]
        switch = (view.mode_kind[view.mode] == 0) & (alternative + p.switch_margin < current)
        view.mode[...] = np.where(switch, warehouse, view.mode)

    def set_ads(self, view: SellerView) -> None:
        p = self.params
        cm2 = view.per_day(view.window_cm2)
        spend = view.per_day(view.window_ad_spend)
        contribution = cm2 + spend  # before ads, per market [USD/day]
        total_cap = p.cm_share * np.maximum(contribution.sum(axis=-1, keepdims=True), 0.0)
        weight = np.where(view.listed, np.maximum(cm2, 0.0) + 1.0, 0.0)
        weight_sum = weight.sum(axis=-1, keepdims=True)
        share = np.divide(weight, weight_sum, out=np.zeros_like(weight), where=weight_sum > 0)
        budget_usd = share * total_cap
        revenue = view.per_day(view.window_revenue)
        revenue_total = revenue.sum(axis=-1, keepdims=True)
        top_share = np.divide(revenue, revenue_total, out=np.zeros_like(revenue), where=revenue_total > 0)
        budget_usd = np.where(top_share > p.max_top_share, 0.8 * budget_usd, budget_usd)
        view.daily_budget[...] = np.maximum(budget_usd / view.usd_rate, p.min_budget)


class StagedRoadmap(StrategyBase):
    """The seed paper's staged implementation plan (its Table 4), as a strategy.

    * Stage 1 (days 0 to ``stage2_day``, 0-3 months: "stabilise unit economics &
      compliance"): one market only (the first the population lists); ads capped by
      contribution margin (budget <= ``cm_share`` x contribution before ads per day, as
      ``diversified``); compliance investment raised to ``stage1_compliance`` ("fix
      listings and compliance");
    * Stage 2 (to ``stage3_day``, 3-9 months: "diversify channels & markets"): a second
      market (the next served one, by the population's order of ``markets``), and early
      DTC at ``stage2_dtc_share``;
    * Stage 3 (9-18 months: "brand & retention building"): localisation raised to
      ``stage3_localisation`` and DTC to ``stage3_dtc_share`` (first-party CRM).

    Levers only rise from stage to stage; a market left under the exit rule is not
    re-entered. Each lever costs what the population's config says (see the levers in
    README "Model layers").
    """

    class Params(_PricingParams):
        target_margin: float = 0.22
        pass_through: float = 0.75
        max_price_rise: float = 0.40
        exit_after_reviews: int = 8
        cm_share: float = Field(default=0.6, ge=0, le=1)
        min_budget: float = Field(default=10.0, ge=0)
        stage2_day: int = Field(default=91, ge=0, description="start of Stage 2 [days], ~3 months")
        stage3_day: int = Field(default=274, ge=0, description="start of Stage 3 [days], ~9 months")
        stage1_compliance: float = Field(default=0.8, ge=0, le=1)
        stage2_dtc_share: float = Field(default=0.25, ge=0, le=1)
        stage3_dtc_share: float = Field(default=0.5, ge=0, le=1)
        stage3_localisation: float = Field(default=0.8, ge=0, le=1)
        stage2_markets: int = Field(default=2, ge=1)

    params: Params

    def initialise(self, view: SellerView) -> None:
        super().initialise(view)
        first = np.argmax(view.listed, axis=-1)[..., None]
        keep = np.arange(view.listed.shape[-1]) == first
        view.listed[...] = view.listed & keep
        view.memory["left"] = np.zeros(view.listed.shape, dtype=bool)
        view.compliance_investment[...] = np.maximum(view.compliance_investment, self.params.stage1_compliance)

    def stage(self, day: int) -> int:
        """1, 2 or 3: the roadmap stage on ``day``."""
        p = self.params
        return 1 if day < p.stage2_day else (2 if day < p.stage3_day else 3)

    def review(self, view: SellerView) -> None:
        p = self.params
        before = view.listed.copy()
        self.reprice(view)
        self.exit_markets(view)
        view.memory["left"] |= before & ~view.listed
        stage = self.stage(view.day)
        if stage >= 2:
            view.dtc_share[...] = np.maximum(view.dtc_share, p.stage2_dtc_share)
            candidates = view.served & ~view.listed & ~view.memory["left"] & view.alive[..., None]
            # The next candidate in the order of the population's markets.
            rank = np.cumsum(candidates, axis=-1)
            room = p.stage2_markets - view.listed.sum(axis=-1, keepdims=True)
            view.listed[...] = view.listed | (candidates & (rank <= room))
        if stage >= 3:
            view.localisation[...] = np.maximum(view.localisation, p.stage3_localisation)
            view.dtc_share[...] = np.maximum(view.dtc_share, p.stage3_dtc_share)
        self.set_ads(view)

    def set_ads(self, view: SellerView) -> None:
        p = self.params
        contribution = view.per_day(view.window_cm2 + view.window_ad_spend)
        budget_usd = p.cm_share * np.maximum(contribution, 0.0)
        view.daily_budget[...] = np.where(
            view.window_days > 0, np.maximum(budget_usd / view.usd_rate, p.min_budget), view.daily_budget
        )


#: Built-in name -> class, from the one registry (:data:`cbecsim.registry.BUILTIN_STRATEGIES`).
BUILTIN: dict[str, type] = {name: globals()[path.partition(":")[2]] for name, path in BUILTIN_STRATEGIES.items()}
