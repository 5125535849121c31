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
from typing import Any, Literal, Protocol, runtime_checkable

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
    "EXIT_UNPROFITABLE",
    "EXIT_STRATEGIC",
]

#: The decision arrays of a view, which a strategy may change.
DECISIONS = ("price", "bid", "daily_budget", "mode", "listed", "localisation", "dtc_share",
             "compliance_investment", "cover_days", "imports_paused", "order_now", "exit_reason",
             "move_origin_to")

#: ``exit_reason`` codes a strategy gives for leaving (the result variable names them).
EXIT_UNPROFITABLE = 2
EXIT_STRATEGIC = 3


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
        cover_days : (B, n, M) days of demand an order covers beyond lead time and safety
        imports_paused : (B, n, M) bool, no replenishment orders while set
        order_now : (B, n, M) bool, order up to cover even above the reorder point at the
            first close with no order outstanding (front-loading; cleared once that order
            is placed or refused)
        exit_reason : (B, n) why the seller leaves if it ends up listed nowhere:
            EXIT_UNPROFITABLE or EXIT_STRATEGIC (the default)
        move_origin_to : (B, n) int, -1 (stay), or an index into ``origin_names`` among
            ``origin_options``: move production there; it pays ``origin_switch_cost`` at the
            next close and orders ship from the new origin ``origin_switch_lead_days``
            later (ignored while a move is pending or to the current origin)
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
        landed_cost_by_mode : (B, n, M, F) landed cost per unit of new stock under each
            mode [USD]: factory cost + freight + duty + handling (bulk: + inbound placement)
        fulfilment_fee_by_mode : (F,) each mode's own fee [USD/unit]; mode_names : tuple of
            F names; mode_kind : (F,) 0 parcel, 1 bulk
        referral_fee : (B, n, M) referral fee of a marketplace unit at the current price [USD]
        fulfilment_fee : (B, n, M) fulfilment fee of a unit in the current mode [USD]
        fulfilment_fee_by_listing_mode : (B, n, M, F) the same under each mode (the
            market's fee schedule for marketplace warehouses) [USD/unit]
        storage_fee_per_day : (M, F) warehouse storage per unit-day [USD]
        days_to_change : int, days until the next duty change the sellers can see
            (announced within the scenario's anticipation_days), -1 if none
        landed_cost_by_mode_after : (B, n, M, F) landed cost per unit under that change
            (equal to landed_cost_by_mode when there is none) [USD]
        in_transit_days : (B, n, M) days until the outstanding order arrives (0: none)
        warehouse_stock, in_transit : (B, n, M) units in the overseas warehouse (part of
            stock) and on order [units]
        inventory_value : (B, n, M) stock on hand and in transit at cost [USD]
        equity : (B, n) cash + inventory value [USD]; credit_line, fixed_cost [USD, USD/day]
        demand_estimate : (B, n, M) [units/day]; lead_time_by_mode : (F,) mean lead time [days];
        longest_lead_time_by_mode : (F,) the longest lead time a mode draws [days]
        switch_cost_by_mode : (F,) one-off cost of moving a listing into each mode [USD]
        delivery_days_by_mode : (F,) [days]; delivery_weight : (M,) utility per delivery day;
        badge_utility_by_mode : (F,) utility of each mode's delivery badge
        window_* : since the seller's previous review, (B, n, M): revenue, ad_spend, cm2,
            fees [USD], units, lost, units_from_warehouse [units], visibility (mean share of
            the results page), days, new_customers, returns
        rating : (B, n)
        origin : (B, n) index into ``origin_names`` of each seller's production origin;
            origin_names : tuple of O codes; origin_options : tuple of the indices the
            population may move to; origin_switch_cost [USD per seller],
            origin_switch_lead_days [days]; origin_move_pending : (B, n) bool
        landed_cost_by_mode_at_option : (K, B, n, M, F) landed cost per unit of new stock
            under each mode were production at ``origin_options[k]`` [USD]
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
    referral_fee: np.ndarray
    fulfilment_fee: np.ndarray
    fulfilment_fee_by_listing_mode: np.ndarray
    storage_fee_per_day: np.ndarray
    days_to_change: int
    landed_cost_by_mode_after: np.ndarray
    warehouse_stock: np.ndarray
    in_transit: np.ndarray
    in_transit_days: np.ndarray
    inventory_value: np.ndarray
    equity: np.ndarray
    credit_line: np.ndarray
    fixed_cost: np.ndarray
    demand_estimate: np.ndarray
    lead_time_by_mode: np.ndarray
    longest_lead_time_by_mode: np.ndarray
    switch_cost_by_mode: np.ndarray
    delivery_days_by_mode: np.ndarray
    delivery_weight: np.ndarray
    badge_utility_by_mode: np.ndarray
    window_fees: np.ndarray
    window_units_from_warehouse: np.ndarray
    cover_days: np.ndarray
    imports_paused: np.ndarray
    order_now: np.ndarray
    exit_reason: np.ndarray
    origin: np.ndarray
    origin_names: tuple[str, ...]
    origin_options: tuple[int, ...]
    origin_switch_cost: float
    origin_switch_lead_days: int
    origin_move_pending: np.ndarray
    landed_cost_by_mode_at_option: np.ndarray
    move_origin_to: np.ndarray

    # Helpers shared by the built-ins --------------------------------------------------

    def unit_margin(self, price: np.ndarray | None = None) -> np.ndarray:
        """Contribution per unit before ads at ``price`` (default: current) [USD/unit].

        Net price (ex VAT) minus landed cost, referral fee and fulfilment fee as the
        kernels charge them (:func:`cbecsim.kernels.formulas.unit_margin_usd`). At
        another price the referral fee is scaled in proportion to the price (exact within
        one referral tier, above the minimum) and the fulfilment fee kept.
        """
        referral = self.referral_fee
        if price is None:
            price = self.price
        else:
            referral = referral * np.divide(price, self.price, out=np.ones_like(referral), where=self.price > 0)
        return unit_margin_usd_array(price, self.vat, self.usd_rate, self.landed_cost, referral, self.fulfilment_fee)

    def net_price(self, price: np.ndarray | None = None) -> np.ndarray:
        """Price net of VAT in USD (default: the current price) [USD/unit]."""
        price = self.price if price is None else price
        return price / (1.0 + self.vat) * self.usd_rate

    def unit_cost_by_mode(self, holding_days: np.ndarray | float, after: bool = False) -> np.ndarray:
        """(B, n, M, F) cost of a unit sold under each mode [USD/unit]: landed cost (under
        the announced change with ``after``) + fulfilment fee + warehouse storage for
        ``holding_days`` days (bulk modes)."""
        landed = self.landed_cost_by_mode_after if after else self.landed_cost_by_mode
        holding = np.asarray(holding_days, dtype=float)
        if holding.ndim:
            holding = holding[..., None]
        return landed + self.fulfilment_fee_by_listing_mode + self.storage_fee_per_day * holding

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
    pass_through: float = Field(
        ge=0, le=2,
        description="share of a change in the unit's landed cost and fulfilment fee passed into its net price "
        "(the referral fee's share of the price is grossed up, so 1 keeps the contribution per unit)",
    )
    pass_through_rule: Literal["absolute", "markup"] = Field(
        default="absolute",
        description="absolute: the net price moves by pass_through x the cost change; markup: by pass_through x "
        "the cost change x the listing's own initial price/cost ratio (each product keeps its percentage markup)",
    )
    adjustment_speed: float = Field(
        default=0.5, gt=0, le=1,
        description="[assumption] share of the gap to the target price closed at each review (gradual repricing)",
    )
    target_margin: float | None = Field(
        default=None, ge=0, lt=1,
        description="optional floor: never price below the price whose contribution before ads is this share of "
        "the net price (None: no floor)",
    )
    max_price_rise: float | None = Field(
        default=None, ge=0,
        description="optional cap on the price rise over the initial price (0.3 = +30%); None = no cap",
    )
    max_step: float | None = Field(default=None, ge=0, description="optional cap on one review's price change")
    max_price_cut: float | None = Field(
        default=None, ge=0, lt=1, description="optional cap on the price cut below the initial price; None = no cap",
    )
    exit_after_reviews: int = Field(ge=1, description="leave a market after this many reviews with CM2 < 0")
    reentry_after_reviews: int | None = Field(
        default=None, ge=1,
        description="re-enter a market left under the CM2 rule after this many reviews, when its contribution per "
        "unit before ads is back above reentry_margin of the net price (None: never)",
    )
    reentry_margin: float = Field(default=0.2, ge=0, lt=1)
    switch_fulfilment: bool = Field(
        default=True,
        description="move a listing to another fulfilment mode (either way) when the saving per unit over "
        "payback_days of expected demand repays the mode's switch_cost and the first order is affordable",
    )
    payback_days: float = Field(default=180.0, gt=0, description="[assumption] payback horizon of a switch [days]")
    move_origin: bool = Field(
        default=True,
        description="move production to one of the population's origin_options when the landed-cost saving at "
        "the current demand over origin_payback_days repays origin_switch_cost (and the cost is affordable)",
    )
    origin_payback_days: float = Field(
        default=365.0, gt=0, description="[assumption] payback horizon of a production move [days]",
    )
    pause_imports: bool = Field(
        default=True,
        description="pause replenishment of a listing whose contribution per unit before ads is not positive at "
        "the landed cost of the stock an order would bring (under an announced change if it lands after it); "
        "resume when it is",
    )
    front_load_days: float = Field(
        default=60.0, ge=0,
        description="ahead of an announced duty rise on bulk imports, order this many extra days of demand so "
        "that it lands before the change, when the duty saved per unit exceeds the storage of holding it "
        "(0: never front-load)",
    )


class StrategyBase:
    """A base for strategies: validated parameters and the built-ins' rules as hooks.

    Hooks
    -----
    Params : pydantic model
        The accepted ``strategy_params`` (unknown keys are refused, with their path).
    initialise(view)
        Day 0: remembers the initial (list) prices and costs and starts the exit counters.
    review(view)
        At each review: :meth:`reprice`, :meth:`exit_markets`, :meth:`reenter_markets`,
        :meth:`choose_fulfilment`, :meth:`choose_origin`, :meth:`manage_imports`, then
        :meth:`set_ads`.
    Each hook writes the view's decision arrays (see the module docstring).
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
        view.memory["initial_cost"] = view.landed_cost + view.fulfilment_fee
        view.memory["base_cover_days"] = view.cover_days.copy()
        view.memory["negative_reviews"] = np.zeros(view.price.shape, dtype=np.int64)
        view.memory["left_reviews"] = np.full(view.price.shape, -1, dtype=np.int64)

    def review(self, view: SellerView) -> None:
        self.reprice(view)
        self.exit_markets(view)
        self.reenter_markets(view)
        self.choose_fulfilment(view)
        self.choose_origin(view)
        self.manage_imports(view)
        self.set_ads(view)

    # --- prices ------------------------------------------------------------------------

    def reprice(self, view: SellerView) -> None:
        """Pass cost changes into price, gradually.

        The target net price is the initial one plus ``pass_through`` x the change in the
        unit's landed cost and fulfilment fee since day 0, grossed up for the referral
        fee's share of the price (``markup`` rule: that change scaled by the listing's
        initial price/cost ratio). The price closes ``adjustment_speed`` of the gap at each
        review. Optional explicit limits (all off by default): a margin floor
        (``target_margin``), ``max_price_rise`` / ``max_price_cut`` on the initial price,
        ``max_step`` per review.
        """
        p = self.params
        initial = view.memory["initial_price"]
        cost0 = view.memory["initial_cost"]
        cost = view.landed_cost + view.fulfilment_fee
        net = view.net_price()
        referral_share = np.clip(np.divide(view.referral_fee, net, out=np.zeros_like(net), where=net > 0), 0.0, 0.9)
        change = cost - cost0
        if p.pass_through_rule == "markup":
            change = change * np.divide(view.net_price(initial), cost0, out=np.ones_like(cost0), where=cost0 > 0)
        to_local = (1.0 + view.vat) / view.usd_rate
        target = initial + p.pass_through * change / (1.0 - referral_share) * to_local
        if p.target_margin is not None:
            floor_net = cost / np.maximum(1.0 - referral_share - p.target_margin, 0.05)
            target = np.maximum(target, floor_net * to_local)
        new_price = view.price + p.adjustment_speed * (target - view.price)
        if p.max_step is not None:
            new_price = np.clip(new_price, view.price * (1.0 - p.max_step), view.price * (1.0 + p.max_step))
        if p.max_price_rise is not None:
            new_price = np.minimum(new_price, initial * (1.0 + p.max_price_rise))
        if p.max_price_cut is not None:
            new_price = np.maximum(new_price, initial * (1.0 - p.max_price_cut))
        view.price[...] = np.where(view.listed, np.maximum(new_price, 0.01 * initial), view.price)

    # --- markets -----------------------------------------------------------------------

    def exit_markets(self, view: SellerView) -> None:
        """Count consecutive reviews with negative CM2; delist after ``exit_after_reviews``
        (a seller left in no market exits as ``unprofitable``)."""
        trading = view.listed & (view.window_days > 0)
        negative = trading & (view.window_cm2 < 0)
        count = view.memory["negative_reviews"]
        count[...] = np.where(negative, count + 1, np.where(trading, 0, count))
        leave = view.listed & (count >= self.params.exit_after_reviews)
        view.listed[...] = view.listed & ~leave
        view.memory["left_reviews"][...] = np.where(leave, 0, view.memory["left_reviews"])
        view.exit_reason[...] = np.where(leave.any(axis=-1), EXIT_UNPROFITABLE, view.exit_reason)

    def reenter_markets(self, view: SellerView) -> None:
        """Re-list a market left under the CM2 rule after ``reentry_after_reviews`` reviews
        when its contribution per unit before ads is back above ``reentry_margin``."""
        left = view.memory["left_reviews"]
        left[...] = np.where(left >= 0, left + 1, left)
        p = self.params
        if p.reentry_after_reviews is None:
            return
        net = view.net_price()
        margin = np.divide(view.unit_margin(), net, out=np.zeros_like(net), where=net > 0)
        back = (left >= p.reentry_after_reviews) & (margin > p.reentry_margin) & view.alive[..., None] & ~view.listed
        view.listed[...] = view.listed | back
        left[...] = np.where(back, -1, left)
        view.memory["negative_reviews"][...] = np.where(back, 0, view.memory["negative_reviews"])

    # --- fulfilment and stock -----------------------------------------------------------

    def holding_days(self, view: SellerView) -> np.ndarray:
        """(B, n, M) mean days a warehouse unit waits before it sells: about half the order
        cover plus the safety days [days] (the storage it pays)."""
        return 0.5 * view.cover_days + 7.0

    def choose_fulfilment(self, view: SellerView) -> None:
        """Switch a listing's mode (either way) when it pays back within ``payback_days``.

        Contribution before ads over ``payback_days`` under each mode = expected units x
        (net price - referral fee - unit cost), the unit cost being landed cost +
        fulfilment fee + storage while held (averaged over the horizon with the announced
        change's costs from its date) and the expected units the demand estimate scaled by
        ``exp(-delivery_weight x extra delivery days + change of badge utility)``; it switches to the mode that gains
        most over the current one beyond that mode's switch cost, if the first order in
        that mode (lead time + cover of demand) fits the cash and credit left after a
        month of fixed costs.
        """
        p = self.params
        if not p.switch_fulfilment or len(view.mode_names) < 2:
            return
        holding = self.holding_days(view)
        now = view.unit_cost_by_mode(holding)
        if view.days_to_change >= 0:
            later = view.unit_cost_by_mode(holding, after=True)
            before = min(view.days_to_change, p.payback_days) / p.payback_days
            now = before * now + (1.0 - before) * later
        # Faster delivery sells more: a listing's demand scales with exp(-delta x days) (its
        # within-page utility; exact while its share of the page is small).
        days = view.delivery_days_by_mode
        badge = view.badge_utility_by_mode
        demand = view.demand_estimate[..., None] * np.exp(
            -view.delivery_weight[:, None] * (days - days[view.mode][..., None]) + badge - badge[view.mode][..., None])
        net = view.net_price()[..., None]
        referral = view.referral_fee[..., None]
        profit = demand * (net - referral - now) * p.payback_days
        current = np.take_along_axis(profit, view.mode[..., None], axis=-1)[..., 0]
        gain = profit - current[..., None] - view.switch_cost_by_mode
        first_order = (view.demand_estimate[..., None] * (view.lead_time_by_mode + view.cover_days[..., None] + 7.0)
                       * view.landed_cost_by_mode)
        liquidity = view.cash + view.credit_line - view.fixed_cost * 30.0
        affordable = first_order <= liquidity[..., None, None]
        gain = np.where(affordable, gain, -np.inf)
        best = np.argmax(gain, axis=-1)
        switch = (np.take_along_axis(gain, best[..., None], axis=-1)[..., 0] > 0.0) & view.listed & (best != view.mode)
        view.mode[...] = np.where(switch, best, view.mode)

    def choose_origin(self, view: SellerView) -> None:
        """Move production to the origin option that saves most, when it pays back.

        Saving per day at option k = sum over listed markets of the demand estimate x
        (landed cost per unit now - landed cost were production at k), both in the
        listing's current mode under today's regime (duty of the origin, the same freight);
        the move is made when the best saving over ``origin_payback_days`` exceeds
        ``origin_switch_cost`` and the cost fits the cash and credit left after a month of
        fixed costs. The saving starts only ``origin_switch_lead_days`` later, which the
        payback horizon should cover.
        """
        p = self.params
        if not p.move_origin or not view.origin_options:
            return
        mode = view.mode[None, ..., None]
        at_option = np.take_along_axis(view.landed_cost_by_mode_at_option,
                                       np.broadcast_to(mode, view.landed_cost_by_mode_at_option.shape[:-1] + (1,)),
                                       axis=-1)[..., 0]  # (K, B, n, M)
        now = np.take_along_axis(view.landed_cost_by_mode, view.mode[..., None], axis=-1)[..., 0]
        saving = ((now[None] - at_option) * view.demand_estimate[None] * view.listed[None]).sum(axis=-1)  # (K, B, n)
        gain = saving * p.origin_payback_days - view.origin_switch_cost
        best = np.argmax(gain, axis=0)
        best_gain = np.take_along_axis(gain, best[None], axis=0)[0]
        liquidity = view.cash + view.credit_line - view.fixed_cost * 30.0
        move = (best_gain > 0.0) & (view.origin_switch_cost <= liquidity) & view.alive & ~view.origin_move_pending
        options = np.asarray(view.origin_options, dtype=np.int64)
        view.move_origin_to[...] = np.where(move, options[best], -1)

    def manage_imports(self, view: SellerView) -> None:
        """Pause and resume imports, and front-load ahead of an announced duty rise."""
        p = self.params
        mode = view.mode[..., None]
        net = view.net_price()
        lead = view.lead_time_by_mode[view.mode]
        landed_now = np.take_along_axis(view.landed_cost_by_mode, mode, axis=-1)[..., 0]
        landed_after = np.take_along_axis(view.landed_cost_by_mode_after, mode, axis=-1)[..., 0]
        # The stock an order placed now brings is costed under the change if it lands after it.
        lands_after = (view.days_to_change >= 0) & (lead >= view.days_to_change)
        landed_order = np.where(lands_after, landed_after, landed_now)
        margin_order = net - landed_order - view.referral_fee - view.fulfilment_fee
        if p.pause_imports:
            view.imports_paused[...] = view.listed & (margin_order <= 0.0)
        else:
            view.imports_paused[...] = False
        base = view.memory["base_cover_days"]
        view.cover_days[...] = base
        view.order_now[...] = False
        if p.front_load_days <= 0 or view.days_to_change < 0:
            return
        bulk = view.mode_kind[view.mode] == 1
        rise = landed_after - landed_now
        storage = np.take_along_axis(np.broadcast_to(view.storage_fee_per_day, view.landed_cost_by_mode.shape),
                                     mode, axis=-1)[..., 0]
        worth = rise > storage * p.front_load_days
        # The front-loaded order is the next one: placed now, or when the one at sea lands;
        # it must land before the change even on the longest lead time.
        in_time = view.in_transit_days + view.longest_lead_time_by_mode[view.mode] < view.days_to_change
        extra_cost = view.demand_estimate * p.front_load_days * landed_now
        liquidity = view.cash + view.credit_line - view.fixed_cost * 30.0
        front = view.listed & bulk & worth & in_time & ~view.imports_paused \
            & (extra_cost.sum(axis=-1) <= liquidity)[..., None]
        view.cover_days[...] = np.where(front, base + p.front_load_days, base)
        view.order_now[...] = front

    def set_ads(self, view: SellerView) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class TrafficFirst(StrategyBase):
    """PDD/Temu-style low-price seller: thin markup, heavy ads, direct parcels, one region.

    Ads aim at spending ``ad_share`` of trailing revenue (TACoS: ad spend / sales; default
    0.15, the middle of the 10-20% band of sellers' TACoS in calibration_targets.yaml;
    PDD's 28% is the platform's own sales & marketing over its revenue, not a seller's):
    daily budget = ``ad_share`` x trailing revenue per day x a pacing multiplier, never
    below ``min_budget``. A seller that spent less than 90% of its target share (it lost
    auctions or rounds) raises the multiplier by 10% (up to ``max_pacing``) and its bid by
    10% (up to ``max_bid``); one that spent over 110% lowers the multiplier. When the
    trailing CM2 of a market is negative the budget and bid are cut by ``cut_factor``.
    Cost shocks: partial pass-through; it moves stock to a local warehouse when that pays
    back (as Temu's sellers did in 2025) and pauses imports that would lose money.
    """

    class Params(_PricingParams):
        pass_through: float = 0.5
        exit_after_reviews: int = 8
        reentry_after_reviews: int | None = 8
        ad_share: float = Field(default=0.15, ge=0, le=1)
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
    """Anker-style brand: premium price, moderate ads at a TACoS target, warehouse stock.

    Ads: budget = ``headroom`` x ``acos_target`` x trailing revenue per day; the bid moves
    down 10% when ad spend / revenue (a TACoS, despite the parameter's name) is above
    target and up 5% when below, within ``max_bid``. Cost shocks: full pass-through on the
    ``markup`` rule, so each product keeps its own percentage markup (a premium product
    passes more in dollars than a cheap one).
    """

    class Params(_PricingParams):
        pass_through: float = 1.0
        pass_through_rule: Literal["absolute", "markup"] = "markup"
        # A brand keeps its marketplace-warehouse operation (Prime, returns, ranking: effects
        # beyond the delivery badge the model carries) unless told otherwise.
        switch_fulfilment: bool = False
        exit_after_reviews: int = 12
        reentry_after_reviews: int | None = 6
        acos_target: float = Field(default=0.10, ge=0, le=1, description="ad spend / sales target (TACoS)")
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
    several regions with the top market's share of revenue kept under ``max_top_share``,
    and stock moved between parcels and an overseas warehouse when that pays back.

    Markets: it starts in its first ``initial_markets`` served markets (all by default);
    while its top market holds more than ``max_top_share`` of its revenue it enters the
    next served market it is not in (one per review), and it moves ad budget out of the
    top market in proportion (its budget is scaled by ``max_top_share`` / share). Ads: the
    total budget per seller is at most ``cm_share`` x trailing contribution before ads per
    day, allocated across markets in proportion to trailing CM2 per day.
    """

    class Params(_PricingParams):
        pass_through: float = 0.75
        exit_after_reviews: int = 6
        reentry_after_reviews: int | None = 6
        cm_share: float = Field(default=0.5, ge=0, le=1)
        min_budget: float = Field(default=10.0, ge=0)
        max_top_share: float = Field(default=0.5, gt=0, le=1)
        initial_markets: int | None = Field(default=None, ge=1, description="markets listed on day 0 (None: all)")
        switch_margin: float | None = Field(
            default=None, ge=0, description="deprecated and ignored: the switch now follows payback_days"
        )
        warehouse_mode: str | None = Field(
            default=None, description="deprecated and ignored: every mode is a candidate of the payback rule"
        )

    params: Params

    def initialise(self, view: SellerView) -> None:
        super().initialise(view)
        if self.params.initial_markets is not None:
            rank = np.cumsum(view.listed, axis=-1)
            view.listed[...] = view.listed & (rank <= self.params.initial_markets)

    def reenter_markets(self, view: SellerView) -> None:
        super().reenter_markets(view)
        revenue = view.per_day(view.window_revenue)
        total = revenue.sum(axis=-1, keepdims=True)
        share = np.divide(revenue, total, out=np.zeros_like(revenue), where=total > 0)
        over = (share.max(axis=-1) > self.params.max_top_share) & view.alive
        never_left = view.memory["left_reviews"] < 0
        candidates = view.served & ~view.listed & never_left & over[..., None]
        first = np.cumsum(candidates, axis=-1) == 1
        view.listed[...] = view.listed | (candidates & first)

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
        scale = np.where(top_share > p.max_top_share, p.max_top_share / np.maximum(top_share, 1e-12), 1.0)
        budget_usd = budget_usd * scale
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
        pass_through: float = 0.75
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
        self.choose_fulfilment(view)
        self.choose_origin(view)
        self.manage_imports(view)
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
