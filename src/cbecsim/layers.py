"""The seed paper's levers that act at decision events (issue 7), vectorised per population.

The per-day mechanisms (returns, ratings, customers, the DTC channel, compliance
incidents, FX) are numba kernels (:mod:`cbecsim.kernels.market`,
:mod:`cbecsim.kernels.layers`); this module holds the decisions the engine applies for
every population, whatever its strategy, on whole ``(B, n, M)`` arrays:

* :func:`select_markets` (day 0, before the strategy's ``initialise``): which of the
  population's candidate ``markets`` to enter under ``market_selection``;
* :func:`apply_guardrails` (after each review, before the window resets): the ad-budget
  guardrail (``roas`` or ``cm2_ltv``) and the ``max_top_market_share`` cap.

Both are element-wise per replication, so results stay bit-identical for any batch size.
Their rules come compiled (``compiled.population_rules``, :mod:`cbecsim.kernels.state`
``PR_*``), and their per-unit formulas are the kernels' own (:mod:`cbecsim.kernels.formulas`).
"""

from __future__ import annotations

import numpy as np

from .kernels import layout as L
from .kernels import state as K
from .kernels.formulas import incident_hazard_array, repurchase_hazard_array, return_probability_array

__all__ = [
    "SITE_CONVERSION",
    "selection_score",
    "select_markets",
    "has_guardrails",
    "apply_guardrails",
    "expected_repeats",
]

#: FACTS.md "Marketplace economics": site conversion 2.5-3% (conf M); the mid-point is
#: the conversion the fit score assumes for a listing's fair share of shoppers.
SITE_CONVERSION = 0.0275


def expected_repeats(compiled, levers: np.ndarray, slc: slice) -> np.ndarray:
    """Expected repeat purchases of a new marketplace customer over its life, (B, n, M):
    ``h0 (1 + lift * localisation) / lapse`` (0 where customers never lapse and h0 = 0)."""
    market = compiled.market
    lift = compiled.seller_layer[slc, L.SL_LOC_RETENTION_LIFT]
    hazard = repurchase_hazard_array(
        market[:, L.MK_REPEAT_RATE], lift[:, None], levers[..., L.LV_LOCALISATION][..., None]
    )
    lapse = market[:, L.MK_LAPSE_RATE]
    # With no lapse a customer's repeats are bounded by the horizon.
    life = np.where(lapse > 0, 1.0 / np.where(lapse > 0, lapse, 1.0), compiled.n_days)
    return hazard * life


def selection_score(compiled, view, population: int, slc: slice, levers: np.ndarray) -> np.ndarray:
    """Score of each candidate market, (B, n, M); -inf where the population does not serve it.

    ``traffic``: the market's shoppers a day. ``fit`` [USD/day]: a fair share of the
    market's demand at the site conversion, lowered by delivery time, times the unit
    margin after landed cost, fees and expected returns, net of the time down to
    compliance incidents, minus the daily localisation and compliance costs of serving it:

        units = shoppers * conversion * exp(-delta * delivery_days) / competitors
        margin = net price - landed - referral - fulfilment fee - r * (net price - unit cost)
        score = units * margin * (1 - downtime) - (loc * loc_cost + comp * comp_cost)
    """
    market = compiled.market
    served = compiled.seller_served[slc]
    shoppers = market[:, L.MK_SHOPPERS]
    if compiled.population_rules[population, K.PR_SELECTION] == K.SELECT_TRAFFIC:
        score = np.broadcast_to(shoppers, view.price.shape).astype(float)
    else:
        competitors = np.maximum(compiled.seller_served.sum(axis=0), 1)
        delivery = compiled.modes[view.mode, L.MD_DELIVERY_DAYS]
        units = shoppers * SITE_CONVERSION * np.exp(-market[:, L.MK_DELIVERY_WEIGHT] * delivery) / competitors
        net = view.price / (1.0 + view.vat) * view.usd_rate
        return_rate = return_probability_array(
            market[:, L.MK_RETURN_RATE],
            compiled.seller_layer[slc, L.SL_LOC_RETURN_CUT][:, None],
            levers[..., L.LV_LOCALISATION][..., None],
        )
        margin = view.unit_margin() - return_rate * (net - view.unit_cost)
        incident = incident_hazard_array(
            market[:, L.MK_INCIDENT_RATE],
            1.0,
            compiled.seller_layer[slc, L.SL_COMPLIANCE_CUT][:, None],
            levers[..., L.LV_COMPLIANCE][..., None],
        )
        downtime = np.minimum(incident * market[:, L.MK_INTERRUPTION_DAYS], 1.0)
        fixed = (
            levers[..., L.LV_LOCALISATION] * compiled.seller_layer[slc, L.SL_LOC_COST_DAY]
            + levers[..., L.LV_COMPLIANCE] * compiled.seller_layer[slc, L.SL_COMPLIANCE_COST_DAY]
        )[..., None]
        score = units * margin * (1.0 - downtime) - fixed
    return np.where(served, score, -np.inf)


def _ranks(score: np.ndarray) -> np.ndarray:
    """Rank of each market by descending score (0 = best; ties: lower market index)."""
    order = np.argsort(-score, axis=-1, kind="stable")
    return np.argsort(order, axis=-1, kind="stable")


def select_markets(compiled, state, view, population: int, slc: slice, memory: dict) -> None:
    """Set the population's ``listed`` markets on day 0 under ``market_selection``.

    ``traffic`` enters the ``max_markets`` (default 1) markets with the most shoppers;
    ``fit`` enters every market with a positive fit score, best first, up to
    ``max_markets`` (and at least the best one), and pays ``market_research_cost`` per
    candidate market on day 0. ``all`` lists every candidate (no cost).
    """
    rules = compiled.population_rules[population]
    selection = rules[K.PR_SELECTION]
    if selection == K.SELECT_ALL:
        return
    levers = state.levers[:, slc]
    score = selection_score(compiled, view, population, slc, levers)
    memory["selection_score"] = score
    rank = _ranks(score)
    served = compiled.seller_served[slc]
    max_markets = int(rules[K.PR_MAX_MARKETS])
    if selection == K.SELECT_TRAFFIC:
        enter = rank < (max_markets or 1)
    else:
        limit = max_markets or compiled.n_markets
        enter = (rank < limit) & ((score > 0) | (rank == 0))
        state.one_off_cost[:, slc] += rules[K.PR_RESEARCH_COST] * served.sum(axis=-1)
    view.listed[...] = enter & served & view.alive[..., None]


def has_guardrails(compiled, population: int) -> bool:
    """Whether :func:`apply_guardrails` can change anything for ``population``: an ad
    guardrail or a top-market share cap below 1."""
    rules = compiled.population_rules[population]
    return rules[K.PR_GUARDRAIL] != K.GUARDRAIL_NONE or rules[K.PR_TOP_SHARE_CAP] < 1.0


def apply_guardrails(compiled, state, view, population: int, slc: slice, memory: dict) -> None:
    """Cap the ad budgets the strategy set, then enforce the top-market share cap.

    * ``roas``: daily budget <= trailing revenue per day / ``roas_target``;
    * ``cm2_ltv``: daily budget <= trailing contribution before sponsored ads (after
      returns and DTC acquisition) per day + new customers per day x unit margin x
      expected repeat purchases, and 0 when that is negative (the "pause what stays
      negative after ads and returns" rule of the seed paper's Stage 1);
    * ``max_top_market_share``: where the top market's share of trailing revenue exceeds
      the cap, its budget is scaled by cap / share, and (under traffic/fit selection) the
      best candidate market not yet listed is entered.

    Markets with no trading days in the window keep the strategy's budget.
    """
    rules = compiled.population_rules[population]
    traded = view.window_days > 0
    guardrail = rules[K.PR_GUARDRAIL]
    if guardrail == K.GUARDRAIL_ROAS:
        cap_local = view.per_day(view.window_revenue) / rules[K.PR_ROAS_TARGET] / view.usd_rate
        view.daily_budget[...] = np.where(traded, np.minimum(view.daily_budget, cap_local), view.daily_budget)
    elif guardrail == K.GUARDRAIL_CM2_LTV:
        contribution = view.per_day(view.window_cm2 + view.window_ad_spend)
        future = view.unit_margin() * expected_repeats(compiled, state.levers[:, slc], slc)
        allowed = np.maximum(contribution + view.per_day(view.window_new_customers) * np.maximum(future, 0.0), 0.0)
        view.daily_budget[...] = np.where(
            traded, np.minimum(view.daily_budget, allowed / view.usd_rate), view.daily_budget
        )
    cap = rules[K.PR_TOP_SHARE_CAP]
    if cap >= 1.0:
        return
    revenue = view.window_revenue
    total = revenue.sum(axis=-1, keepdims=True)
    share = np.divide(revenue, total, out=np.zeros_like(revenue), where=total > 0)
    top = np.argmax(share, axis=-1)[..., None]
    top_share = np.take_along_axis(share, top, axis=-1)
    over = top_share > cap
    is_top = np.arange(share.shape[-1]) == top
    scale = np.where(over & is_top, cap / np.where(over, top_share, 1.0), 1.0)
    view.daily_budget[...] = view.daily_budget * scale
    if rules[K.PR_SELECTION] != K.SELECT_ALL and "selection_score" in memory:
        candidates = np.where(compiled.seller_served[slc] & ~view.listed, memory["selection_score"], -np.inf)
        best = np.argmax(candidates, axis=-1)[..., None]
        available = np.isfinite(np.take_along_axis(candidates, best, axis=-1))
        enter = over & available & view.alive[..., None]
        view.listed[...] = view.listed | (enter & (np.arange(share.shape[-1]) == best))
