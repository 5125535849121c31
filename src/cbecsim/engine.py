"""The discrete-event engine: SimPy is the calendar of review events; the kernel runs the days.

A batch of replications is one :class:`BatchSimulation`. SimPy schedules the coarse
events -- each population's strategy reviews, every ``review_days`` -- and between two
events the engine hands the kernel the whole stretch of days
(:func:`cbecsim.kernels.day.advance`), parallel over replications with each
replication's state kept hot. Dated duty changes need no event: the kernel reads the
regime in force each day from the compiled tables. Within day ``d`` (fixed offsets make
the order independent of scheduling details):

====== ============================ ==================================================
time   what                          where
====== ============================ ==================================================
d+0.1  orders due today arrive       kernel (the end of the previous stretch, or
       (bulk duty paid)              :func:`cbecsim.kernels.day.receive`)
d+0.2  reviews of the populations    :meth:`BatchSimulation.review`: the strategy, then
       due today                     the engine's ad guardrail and top-market cap
                                     (:mod:`cbecsim.layers`)
d+0.5  the market stretch from d     kernel: FX, shoppers, auction, choice, sales,
       to the next review day        returns, customers, ratings, incidents, capability
                                     and fixed costs, orders, exits, period outputs
====== ============================ ==================================================

A simulation can stop at a day and be **forked**: :meth:`BatchSimulation.fork` copies
the state, the strategies and their memories into a second simulation that continues
under other tables (a counterfactual policy), so the days before the fork are
simulated once.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Callable, Mapping

import numpy as np
import simpy

from . import layers
from .compile import CompiledScenario, copy_state, initial_state, work_space
from .errors import UserCodeError
from .kernels import layout as L
from .kernels import state as K
from .kernels.day import advance
from .kernels.fulfilment import listing_inventory_values
from .kernels.review import review_costs
from .kernels.state import Outputs
from .strategies import DECISIONS, SellerView

__all__ = ["BatchSimulation", "simulate_batch", "inventory_values"]

ARRIVALS, REVIEW, MARKET = 0.1, 0.2, 0.5


def _readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (the array itself stays writable for the engine)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _is_read_only_write(exc: BaseException) -> bool:
    """A write to a read-only view array, or an attribute assigned on the frozen view."""
    return isinstance(exc, dataclasses.FrozenInstanceError) or (
        isinstance(exc, ValueError) and "read-only" in str(exc))


def inventory_values(state, slc: slice) -> np.ndarray:
    """(B, n, M) stock on hand and in transit at cost of sellers ``slc`` [USD] (the
    kernels' rule, :func:`cbecsim.kernels.fulfilment.inventory_value`)."""
    out = np.empty(state.stock[:, slc].shape)
    listing_inventory_values(state, slc.start, out)
    return out


class BatchSimulation:
    """Replications ``replication0 .. replication0 + n_batch - 1`` of a compiled scenario.

    Parameters
    ----------
    compiled : CompiledScenario
    strategies : list
        One strategy object per population (same order as the config's ``sellers``).
    seed : int
    replication0, n_batch : int
    outputs : kernels.state.Outputs
        Where the batch's outputs go, rows ``row0 .. row0 + n_batch - 1``.
    row0 : int
    on_days : callable(int), optional
        Called with the number of days simulated after each stretch (progress).

    The kernel releases the GIL, so several simulations can run on threads at once
    (:func:`cbecsim.api.run` runs one batch per thread).
    """

    def __init__(self, compiled: CompiledScenario, strategies: list, seed: int, replication0: int, n_batch: int,
                 outputs: Outputs, row0: int = 0, on_days: Callable[[int], None] | None = None):
        self.compiled = compiled
        self.tables = compiled.tables
        self.strategies = strategies
        self.seed = int(seed)
        self.replication0 = replication0
        self.n_batch = n_batch
        self.outputs = outputs
        self.row0 = row0
        self.on_days = on_days
        self.state = initial_state(compiled, seed, replication0, n_batch)
        self.work = work_space(compiled, n_batch)
        self.memories: list[dict] = [dict() for _ in strategies]
        self.layer_memories: list[dict] = [dict() for _ in strategies]  # the engine's own, apart
        self.day = 0  # the next day to simulate
        self.received = False  # today's arrivals are in
        outputs.initial_cash[row0:row0 + n_batch] = self.state.initial_cash
        outputs.origin[row0:row0 + n_batch] = self.state.origin

    # --- the calendar -------------------------------------------------------------------

    def start(self) -> None:
        """Day 0: the day's arrivals, market selection and each strategy's ``initialise``."""
        self._receive()
        for p, strategy in enumerate(self.strategies):
            slc = self.compiled.population_slices[p]
            if slc.stop == slc.start:
                continue
            view = self._view(p)
            layers.select_markets(self.compiled, self.state, view, p, slc, self.layer_memories[p])
            self._apply(p, view, None)
            view = self._view(p)
            returned = self._call(p, strategy.initialise, view)
            self._apply(p, view, returned)

    def run(self, until: int | None = None, receive_last: bool = True) -> None:
        """Simulate from ``self.day`` up to (not including) day ``until`` (default: the end).

        With ``receive_last`` False the arrivals of day ``until`` are left for the caller
        (a fork receives them under each world's own regime); the reviews of day ``until``
        are always left for the next :meth:`run`.
        """
        n_days = self.compiled.n_days
        stop = n_days if until is None else min(int(until), n_days)
        if stop <= self.day:
            return
        first = self.day
        env = simpy.Environment(initial_time=first + ARRIVALS)
        rules = self.compiled.population_rules
        for p in range(len(self.strategies)):
            slc = self.compiled.population_slices[p]
            if slc.stop > slc.start:
                env.process(self._reviews(env, p, int(rules[p, K.PR_REVIEW_DAYS]), first, stop))
        env.process(self._market(env, stop, receive_last))
        env.run()

    def _reviews(self, env: simpy.Environment, population: int, every: int, first: int, stop: int):
        # Reviews fall on days every, 2 every, ...: the first one at or after `first`.
        day = max(every, math.ceil(first / every) * every)
        while day < stop:
            yield env.timeout(day + REVIEW - env.now)
            self._receive()
            self.review(population)
            day += every

    def _market(self, env: simpy.Environment, stop: int, receive_last: bool):
        yield env.timeout(self.day + MARKET - env.now)
        while self.day < stop:
            # The stretch runs to the next review day (the next event in the queue).
            upcoming = env.peek()
            until = stop if upcoming == math.inf else min(stop, max(self.day + 1, int(math.floor(upcoming))))
            self._advance(self.day, until, not self.received, receive_last or until < stop)
            if self.on_days is not None:
                self.on_days(until - self.day)
            self.day = until
            self.received = receive_last or until < stop
            if self.day < stop:
                yield env.timeout(self.day + MARKET - env.now)

    def _receive(self) -> None:
        if not self.received:
            self._advance(self.day, self.day, True, True)  # a stretch of no days: the arrivals only
            self.received = True

    def _advance(self, day0: int, day1: int, receive_first: bool, receive_last: bool) -> None:
        """The kernel over the whole batch."""
        advance(day0, day1, receive_first, receive_last, np.uint64(self.seed), self.replication0, self.row0,
                0, self.n_batch, self.tables, self.state, self.outputs, self.work)

    # --- forking ------------------------------------------------------------------------

    def fork(self, compiled: CompiledScenario, outputs: Outputs, row0: int = 0) -> "BatchSimulation":
        """A copy of this simulation, from the day it stopped at, under ``compiled``'s tables.

        ``compiled`` must have the same sellers, markets and horizon (a counterfactual
        policy). State, strategies and their memories are deep-copied, so the two worlds
        go on independently on the same random streams; the copy's outputs go to
        ``outputs`` (rows from ``row0``), whose days before the fork are copied from ours.
        """
        other = copy.copy(self)
        other.compiled = compiled
        other.tables = compiled.tables
        other.state = copy_state(self.state)
        other.work = work_space(compiled, self.n_batch)
        other.strategies = copy.deepcopy(self.strategies)
        other.memories = copy.deepcopy(self.memories)
        other.layer_memories = copy.deepcopy(self.layer_memories)
        other.outputs = outputs
        other.row0 = row0
        rows = slice(self.row0, self.row0 + self.n_batch)
        target = slice(row0, row0 + self.n_batch)
        # Only the periods up to the open one are written (shoppers accumulate in the open
        # period's row day by day); later periods are the fresh fill of ``outputs``.
        written = int(np.searchsorted(self.compiled.period_ends, self.day, side="left")) + 1
        for name in K.OUTPUT_GROUPS:  # field-major: (field, row, period, ...)
            getattr(outputs, name)[:, target, :written] = getattr(self.outputs, name)[:, rows, :written]
        for name in ("exit_day", "initial_cash", "exit_reason", "origin"):  # (row, seller)
            getattr(outputs, name)[target] = getattr(self.outputs, name)[rows]
        return other

    # --- reviews ------------------------------------------------------------------------

    def review(self, population: int) -> None:
        """One review of ``population`` (all replications of the batch): the strategy,
        then the engine's guardrails, then the review window starts afresh."""
        slc = self.compiled.population_slices[population]
        view = self._view(population)
        returned = self._call(population, self.strategies[population].review, view)
        self._apply(population, view, returned)
        if layers.has_guardrails(self.compiled, population):
            view = self._view(population)
            layers.apply_guardrails(self.compiled, self.state, view, population, slc, self.layer_memories[population])
            self._apply(population, view, None)
        self.state.window[:, slc] = 0.0

    def _label(self, population: int) -> tuple[str, str]:
        return self.compiled.population_labels[population], self.compiled.population_strategies[population]

    def _call(self, population: int, hook, view: SellerView) -> Any:
        label, strategy = self._label(population)
        replications = f"{self.replication0}..{self.replication0 + self.n_batch - 1}"
        try:
            return hook(view)
        except UserCodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: report it with its context
            if _is_read_only_write(exc):
                message = (f"wrote to a read-only observation of its view ({exc}); observations are read-only: "
                           f"act by writing the decision arrays ({', '.join(DECISIONS)}) or returning a mapping "
                           "of them")
            else:
                message = f"raised {type(exc).__name__}: {exc}"
            raise UserCodeError(message, label, strategy, int(self.day), replications) from exc

    def _view(self, population: int) -> SellerView:
        """Read-only observations and writable copies of the decisions of one population."""
        compiled, state = self.compiled, self.state
        slc = compiled.population_slices[population]
        market = compiled.market
        modes = compiled.modes
        costs = self._costs(slc, compiled.regime_on(self.day))
        landed_by_mode, fulfilment_by_mode, referral, storage = costs
        upcoming = compiled.upcoming_regime(self.day)
        if upcoming is None:
            days_to_change, landed_after = -1, landed_by_mode
        else:
            days_to_change = int(compiled.regime_days[upcoming]) - int(self.day)
            landed_after = self._costs(slc, compiled.regime_tables[upcoming])[0]
        options = compiled.population_origin_options[population]
        switch_cost, switch_lead = compiled.population_origin_switch[population]
        at_option = np.stack([self._costs(slc, compiled.regime_on(self.day), o)[0] for o in options]) if options \
            else np.empty((0,) + landed_by_mode.shape)
        mode = state.mode[:, slc].copy()
        window = state.window[:, slc]
        current = mode[..., None]
        inventory = inventory_values(state, slc)
        ro = _readonly
        return SellerView(
            day=int(self.day),
            alive=ro(state.alive[:, slc]),
            cash=ro(state.cash[:, slc]),
            served=ro(compiled.seller_served[slc]),
            reference_price=ro(market[:, L.MK_REFERENCE_PRICE]),
            usd_rate=ro(state.usd_rate[:, None, :]),
            referral_rate=ro(market[:, L.MK_REFERRAL_RATE]),
            referral_min=ro(market[:, L.MK_REFERRAL_MIN]),
            vat=ro(market[:, L.MK_VAT]),
            unit_cost=ro(state.unit_cost[:, slc]),
            stock=ro(state.stock[:, slc]),
            landed_cost=ro(np.take_along_axis(landed_by_mode, current, axis=-1)[..., 0]),
            landed_cost_by_mode=ro(landed_by_mode),
            fulfilment_fee_by_mode=ro(modes[:, L.MD_FULFILMENT_FEE]),
            mode_names=tuple(compiled.mode_names),
            mode_kind=ro(modes[:, L.MD_KIND].astype(np.int64)),
            window_revenue=ro(window[..., L.W_REVENUE]),
            window_units=ro(window[..., L.W_UNITS]),
            window_lost=ro(window[..., L.W_LOST]),
            window_ad_spend=ro(window[..., L.W_AD_SPEND]),
            window_cm2=ro(window[..., L.W_CM2]),
            window_visibility=ro(np.divide(
                window[..., L.W_VISIBILITY], window[..., L.W_DAYS],
                out=np.zeros(window.shape[:-1]), where=window[..., L.W_DAYS] > 0,
            )),
            window_days=ro(window[..., L.W_DAYS]),
            price=state.price_local[:, slc].copy(),
            bid=state.bid_local[:, slc].copy(),
            daily_budget=state.budget_local[:, slc].copy(),
            mode=mode,
            listed=state.listed[:, slc].copy(),
            memory=self.memories[population],
            localisation=state.levers[:, slc, L.LV_LOCALISATION].copy(),
            dtc_share=state.levers[:, slc, L.LV_DTC_SHARE].copy(),
            compliance_investment=state.levers[:, slc, L.LV_COMPLIANCE].copy(),
            rating=ro(state.rating[:, slc]),
            window_new_customers=ro(window[..., L.W_NEW_CUSTOMERS]),
            window_returns=ro(window[..., L.W_RETURNS]),
            referral_fee=ro(referral),
            fulfilment_fee=ro(np.take_along_axis(fulfilment_by_mode, current, axis=-1)[..., 0]),
            fulfilment_fee_by_listing_mode=ro(fulfilment_by_mode),
            storage_fee_per_day=ro(storage),
            days_to_change=days_to_change,
            landed_cost_by_mode_after=ro(landed_after),
            warehouse_stock=ro(state.warehouse_stock[:, slc]),
            in_transit=ro(state.pending_quantity[:, slc]),
            in_transit_days=ro(np.where(state.pending_quantity[:, slc] > 0,
                                        np.maximum(state.pending_day[:, slc] - self.day, 0), 0)),
            inventory_value=ro(inventory),
            equity=ro(state.cash[:, slc] + inventory.sum(axis=-1)),
            credit_line=ro(state.credit_line[:, slc]),
            fixed_cost=ro(state.fixed_cost[:, slc]),
            demand_estimate=ro(state.demand_estimate[:, slc]),
            lead_time_by_mode=ro(0.5 * (modes[:, L.MD_LEAD_MIN] + modes[:, L.MD_LEAD_MAX])),
            longest_lead_time_by_mode=ro(modes[:, L.MD_LEAD_MAX].copy()),
            switch_cost_by_mode=ro(modes[:, L.MD_SWITCH_COST]),
            delivery_days_by_mode=ro(modes[:, L.MD_DELIVERY_DAYS]),
            delivery_weight=ro(market[:, L.MK_DELIVERY_WEIGHT]),
            badge_utility_by_mode=ro(modes[:, L.MD_BADGE_UTILITY]),
            window_fees=ro(window[..., L.W_FEES]),
            window_units_from_warehouse=ro(window[..., L.W_UNITS_FROM_WAREHOUSE]),
            cover_days=state.stock_policy[:, slc, :, L.SP_COVER_DAYS].copy(),
            imports_paused=state.imports_paused[:, slc].copy(),
            order_now=state.order_now[:, slc].copy(),
            exit_reason=state.exit_request[:, slc].copy(),
            origin=ro(state.origin[:, slc]),
            origin_names=tuple(compiled.origins),
            origin_options=options,
            origin_switch_cost=switch_cost,
            origin_switch_lead_days=switch_lead,
            origin_move_pending=ro(state.origin_switch_day[:, slc] >= 0),
            landed_cost_by_mode_at_option=ro(at_option),
            move_origin_to=np.full(state.origin[:, slc].shape, -1, dtype=np.int64),
        )

    def _costs(self, slc: slice, regime: np.ndarray, origin: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-unit landed cost and fulfilment fee under every mode, referral fee and
        storage per unit-day of one population's listings, under ``regime`` (the kernels'
        rules: :func:`cbecsim.kernels.review.review_costs`), for units made at each
        seller's production origin, or at ``origin`` (an index into ``compiled.origins``)."""
        origins = self.state.origin[:, slc].copy() if origin is None else np.full(
            (self.n_batch, slc.stop - slc.start), origin, dtype=np.int64)
        n_modes = len(self.compiled.mode_names)
        shape = (self.n_batch, slc.stop - slc.start, self.compiled.n_markets)
        landed = np.empty(shape + (n_modes,))
        fulfilment = np.empty(shape + (n_modes,))
        referral = np.empty(shape)
        storage = np.empty((self.compiled.n_markets, n_modes))
        review_costs(int(min(self.day, self.compiled.n_days - 1)), slc.start, self.tables, self.state, regime,
                     origins, landed, fulfilment, referral, storage)
        return landed, fulfilment, referral, storage

    def _apply(self, population: int, view: SellerView, returned: Any) -> None:
        """Check the population's decisions and write them into the state.

        ``returned`` (what the hook returned) may map decision names to new arrays; they
        take precedence over the view's copies. A bad decision raises UserCodeError.
        """
        decisions = {name: getattr(view, name) for name in DECISIONS}
        if returned is not None:
            if not isinstance(returned, Mapping):
                self._fail(population, f"returned {type(returned).__name__}; expected None or a mapping of "
                                       f"decision names ({', '.join(DECISIONS)}) to arrays", None)
            unknown = sorted(set(returned) - set(DECISIONS))
            if unknown:
                self._fail(population, f"returned unknown decisions {', '.join(map(str, unknown))} "
                                       f"(decisions: {', '.join(DECISIONS)})", None)
            for name, value in returned.items():
                decisions[name] = np.broadcast_to(np.asarray(value), decisions[name].shape)
        state, compiled = self.state, self.compiled
        slc = compiled.population_slices[population]
        n_modes = len(compiled.mode_names)
        for name in ("price", "bid", "daily_budget", "localisation", "dtc_share", "compliance_investment"):
            values = np.asarray(decisions[name], dtype=float)
            bad = ~np.isfinite(values)
            if name == "price":
                bad |= values <= 0.0
                expected = "a finite price > 0"
            elif name in ("bid", "daily_budget"):
                bad |= values < 0.0
                expected = "a finite number >= 0"
            else:
                bad |= (values < 0.0) | (values > 1.0)
                expected = "a lever level within 0..1"
            if bad.any():
                self._fail(population, f"set {name} to {values[bad].flat[0]!r}; expected {expected}", bad)
        cover = np.asarray(decisions["cover_days"], dtype=float)
        bad_cover = ~np.isfinite(cover) | (cover < 0.0)
        if bad_cover.any():
            self._fail(population, f"set cover_days to {cover[bad_cover].flat[0]!r}; expected a finite number of "
                                   "days >= 0", bad_cover)
        reason = np.asarray(decisions["exit_reason"])
        bad_reason = ~np.isin(reason, (L.EXIT_UNPROFITABLE, L.EXIT_STRATEGIC))
        if bad_reason.any():
            self._fail(population, f"set exit_reason to {reason[bad_reason].flat[0]!r}; expected "
                                   f"{L.EXIT_UNPROFITABLE} (unprofitable) or {L.EXIT_STRATEGIC} (strategic): "
                                   "strategies.EXIT_UNPROFITABLE / EXIT_STRATEGIC", bad_reason)
        mode = np.asarray(decisions["mode"])
        bad_mode = (mode < 0) | (mode >= n_modes) | (mode != np.floor(mode))
        if bad_mode.any():
            self._fail(population, f"set mode to {mode[bad_mode].flat[0]!r}; expected a mode index 0..{n_modes - 1} "
                                   f"({', '.join(compiled.mode_names)})", bad_mode)
        # A listing moved into another mode pays that mode's switch cost at the next close.
        switched = (mode != state.mode[:, slc]) & state.listed[:, slc] & state.alive[:, slc, None]
        if switched.any():
            state.switch_cost_due[:, slc] += (switched * compiled.modes[mode.astype(np.int64), L.MD_SWITCH_COST]).sum(
                axis=-1)
        state.price_local[:, slc] = decisions["price"]
        state.bid_local[:, slc] = decisions["bid"]
        state.budget_local[:, slc] = decisions["daily_budget"]
        state.mode[:, slc] = mode
        # A listing outside the served markets, or of a seller that has exited, is ignored.
        state.listed[:, slc] = np.asarray(decisions["listed"], dtype=bool) & compiled.seller_served[slc] \
            & state.alive[:, slc, None]
        state.levers[:, slc, L.LV_LOCALISATION] = decisions["localisation"]
        state.levers[:, slc, L.LV_DTC_SHARE] = decisions["dtc_share"]
        state.levers[:, slc, L.LV_COMPLIANCE] = decisions["compliance_investment"]
        state.stock_policy[:, slc, :, L.SP_COVER_DAYS] = cover
        state.imports_paused[:, slc] = np.asarray(decisions["imports_paused"], dtype=bool)
        state.order_now[:, slc] = np.asarray(decisions["order_now"], dtype=bool)
        state.exit_request[:, slc] = reason
        self._move_origins(population, np.asarray(decisions["move_origin_to"]))

    def _move_origins(self, population: int, target: np.ndarray) -> None:
        """Schedule the production moves a strategy asked for (``move_origin_to``)."""
        compiled, state = self.compiled, self.state
        slc = compiled.population_slices[population]
        options = compiled.population_origin_options[population]
        allowed = np.isin(target, (-1,) + options) & (target == np.floor(target))
        if not allowed.all():
            names = ", ".join(f"{o} ({compiled.origins[o]})" for o in options) or "none: set origin_options"
            bad = target[~allowed].flat[0].item()
            self._fail(population, f"set move_origin_to to {bad!r}; expected -1 (stay) or an origin index among "
                                   f"origin_options: {names}", ~allowed)
        target = target.astype(np.int64)
        move = (target >= 0) & (target != state.origin[:, slc]) & (state.origin_switch_day[:, slc] < 0) \
            & state.alive[:, slc]
        if move.any():
            cost, lead = compiled.population_origin_switch[population]
            state.origin_switch_day[:, slc] = np.where(move, self.day + lead, state.origin_switch_day[:, slc])
            state.origin_switch_to[:, slc] = np.where(move, target, state.origin_switch_to[:, slc])
            state.switch_cost_due[:, slc] += move * cost

    def _fail(self, population: int, message: str, bad: np.ndarray | None) -> None:
        label, strategy = self._label(population)
        if bad is not None and bad.any():
            replication = str(self.replication0 + int(np.argwhere(bad)[0][0]))
        else:
            replication = f"{self.replication0}..{self.replication0 + self.n_batch - 1}"
        raise UserCodeError(message, label, strategy, int(self.day), replication)


def simulate_batch(compiled: CompiledScenario, strategies: list, seed: int, replication0: int, n_batch: int,
                   outputs: Outputs, row0: int = 0, on_days: Callable[[int], None] | None = None
                   ) -> BatchSimulation:
    """Run replications ``replication0 .. replication0 + n_batch - 1`` over the whole
    horizon, writing their outputs to rows ``row0 ..`` of ``outputs``."""
    simulation = BatchSimulation(compiled, strategies, seed, replication0, n_batch, outputs, row0, on_days)
    simulation.start()
    simulation.run()
    return simulation
