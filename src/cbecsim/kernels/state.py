"""The typed kernel boundary: the day-step's tables, state, outputs and work space.

Kernels take a handful of structures of arrays (numba-compatible named tuples) instead of
dozens of positional arrays:

* :class:`Tables` -- everything static for a compiled scenario (markets, fulfilment
  modes, the dated regime tables, the served-listing lists, output periods, ...), built
  only by :func:`cbecsim.compile.compile_scenario`;
* :class:`State` -- the mutable state of one batch of replications (leading dim ``B``),
  built only by :func:`cbecsim.compile.initial_state`;
* :class:`Outputs` -- the result arrays, **field-major** and at the run's output
  resolution: one array per dtype group whose leading index is the field, so each result
  variable is a contiguous view (``outputs.sm_f8[SM_F8.index("revenue")]``) and building
  the Dataset is a wrap, not a copy;
* :class:`Work` -- per-replication scratch arrays, allocated once by the caller.

Column and field constants are module-level integers, which numba folds into the
compiled code. The output field lists below are the storage layout of
:data:`cbecsim.results.VARIABLES` (a test ties the two together); a dtype group holds the
variables of one dtype and one set of dims.

Shapes: ``B`` replications in the batch (or in the whole run, for in-memory outputs),
``T`` output periods, ``S`` sellers, ``M`` markets, ``D`` days, ``F`` fulfilment modes,
``O`` origins, ``C`` regime tables (or currencies, for FX), ``K`` sponsored slots,
``L`` served listings (seller-market pairs a population may list in).
"""

from __future__ import annotations

from collections import namedtuple

# --------------------------------------------------------------------------------------
# Output layout: variables by dtype group (the order is the field index).
# --------------------------------------------------------------------------------------

#: Per seller-market, float64 (money, and per-unit money means) [USD or USD/unit].
SM_F8 = (
    "revenue", "ad_spend", "duty_paid", "landed_cost", "cm2", "refunds", "repeat_revenue",
    "acquisition_spend", "cac", "ltv", "dtc_revenue", "fees", "inventory_value",
)
#: Per seller-market, float32: shares and means whose 7 significant digits are far finer
#: than their Monte Carlo noise (visibility, organic share, return rate, repeat-purchase
#: rate, delivery days).
SM_F4 = ("visibility", "organic_share", "return_rate", "repeat_purchase_rate", "delivery_days")
#: Per seller-market, int32 counts (exact; a period's count stays far below 2**31).
SM_I4 = (
    "units_sold", "lost_sales", "stock", "clicks", "returns", "listing_interruptions", "interrupted_days",
    "listed_days", "new_customers", "dtc_new_customers", "customers", "dtc_units", "units_from_warehouse",
)
#: Per seller, float64 money [USD].
S_F8 = ("cash", "costs", "capability_costs", "equity", "interest")
#: Per seller, float32 (rating in stars, top-market share).
S_F4 = ("rating", "top_market_share")
#: Per seller, bool.
S_B1 = ("alive",)
#: Per market, int32.
M_I4 = ("shoppers",)

#: group name -> (fields, dims, dtype) of the output arrays ``(field, B, T, ...)``.
OUTPUT_GROUPS = {
    "sm_f8": (SM_F8, ("replication", "time", "seller", "market"), "float64"),
    "sm_f4": (SM_F4, ("replication", "time", "seller", "market"), "float32"),
    "sm_i4": (SM_I4, ("replication", "time", "seller", "market"), "int32"),
    "s_f8": (S_F8, ("replication", "time", "seller"), "float64"),
    "s_f4": (S_F4, ("replication", "time", "seller"), "float32"),
    "s_b1": (S_B1, ("replication", "time", "seller"), "bool"),
    "m_i4": (M_I4, ("replication", "time", "market"), "int32"),
}

#: Ratio outputs: NaN where their denominator is 0 (and in cells no listing can have).
RATIO_OUTPUTS = ("landed_cost", "cac", "ltv", "organic_share", "return_rate", "repeat_purchase_rate",
                 "delivery_days", "top_market_share")

#: variable name -> (group, field index): where each result variable lives.
OUTPUT_FIELDS = {name: (group, index) for group, (fields, _, _) in OUTPUT_GROUPS.items()
                 for index, name in enumerate(fields)}

# Field indices used by the kernels.
O_REVENUE = SM_F8.index("revenue")
O_AD_SPEND = SM_F8.index("ad_spend")
O_DUTY = SM_F8.index("duty_paid")
O_LANDED_COST = SM_F8.index("landed_cost")
O_CM2 = SM_F8.index("cm2")
O_REFUNDS = SM_F8.index("refunds")
O_REPEAT_REVENUE = SM_F8.index("repeat_revenue")
O_ACQUISITION = SM_F8.index("acquisition_spend")
O_CAC = SM_F8.index("cac")
O_LTV = SM_F8.index("ltv")
O_DTC_REVENUE = SM_F8.index("dtc_revenue")
O_FEES = SM_F8.index("fees")
O_INVENTORY_VALUE = SM_F8.index("inventory_value")

O_VISIBILITY = SM_F4.index("visibility")
O_ORGANIC_SHARE = SM_F4.index("organic_share")
O_RETURN_RATE = SM_F4.index("return_rate")
O_REPEAT_RATE = SM_F4.index("repeat_purchase_rate")
O_DELIVERY_DAYS = SM_F4.index("delivery_days")

O_UNITS = SM_I4.index("units_sold")
O_LOST = SM_I4.index("lost_sales")
O_STOCK = SM_I4.index("stock")
O_CLICKS = SM_I4.index("clicks")
O_RETURNS = SM_I4.index("returns")
O_INCIDENTS = SM_I4.index("listing_interruptions")
O_INTERRUPTED_DAYS = SM_I4.index("interrupted_days")
O_LISTED_DAYS = SM_I4.index("listed_days")
O_NEW_CUSTOMERS = SM_I4.index("new_customers")
O_DTC_NEW_CUSTOMERS = SM_I4.index("dtc_new_customers")
O_CUSTOMERS = SM_I4.index("customers")
O_DTC_UNITS = SM_I4.index("dtc_units")
O_UNITS_FROM_WAREHOUSE = SM_I4.index("units_from_warehouse")

OS_CASH = S_F8.index("cash")
OS_COSTS = S_F8.index("costs")
OS_CAPABILITY_COSTS = S_F8.index("capability_costs")
OS_EQUITY = S_F8.index("equity")
OS_INTEREST = S_F8.index("interest")
OS_RATING = S_F4.index("rating")
OS_TOP_SHARE = S_F4.index("top_market_share")
OS_ALIVE = S_B1.index("alive")
OM_SHOPPERS = M_I4.index("shoppers")

# --------------------------------------------------------------------------------------
# Period accumulators. Each day's flows of a listing are added to one contiguous row of
# State.period_sum (B, S, M, N_ACC) -- a listing-day touches a few cache lines instead of
# one per output field -- and written to the field-major outputs at each period's last
# day (close_period). Seller-level flows likewise go to State.seller_sum (B, S, N_SACC).
# --------------------------------------------------------------------------------------
ACC_DAYS = 0  # days the seller was alive in the period (landed-cost mean)
ACC_LANDED = 1  # sum over those days of the landed cost per unit [USD/unit]
ACC_VISIBILITY = 2  # sum over days of the share of attention
ACC_ORGANIC_UNITS = 3  # units attributed to organic attention
ACC_REPEAT_UNITS = 4  # units bought by returning customers
ACC_DELIVERY_UNIT_DAYS = 5  # sum over units sold of their delivery days
#: The flows that are result variables as they are summed: output name -> accumulator.
ACC_FLOWS = {
    "revenue": 6, "ad_spend": 7, "duty_paid": 8, "cm2": 9, "refunds": 10, "repeat_revenue": 11,
    "acquisition_spend": 12, "dtc_revenue": 13, "units_sold": 14, "lost_sales": 15, "clicks": 16, "returns": 17,
    "listing_interruptions": 18, "interrupted_days": 19, "listed_days": 20, "new_customers": 21,
    "dtc_new_customers": 22, "dtc_units": 23, "fees": 24, "units_from_warehouse": 25,
}
ACC_REVENUE = ACC_FLOWS["revenue"]
ACC_AD_SPEND = ACC_FLOWS["ad_spend"]
ACC_DUTY = ACC_FLOWS["duty_paid"]
ACC_CM2 = ACC_FLOWS["cm2"]
ACC_REFUNDS = ACC_FLOWS["refunds"]
ACC_REPEAT_REVENUE = ACC_FLOWS["repeat_revenue"]
ACC_ACQUISITION = ACC_FLOWS["acquisition_spend"]
ACC_DTC_REVENUE = ACC_FLOWS["dtc_revenue"]
ACC_UNITS = ACC_FLOWS["units_sold"]
ACC_LOST = ACC_FLOWS["lost_sales"]
ACC_CLICKS = ACC_FLOWS["clicks"]
ACC_RETURNS = ACC_FLOWS["returns"]
ACC_INCIDENTS = ACC_FLOWS["listing_interruptions"]
ACC_INTERRUPTED_DAYS = ACC_FLOWS["interrupted_days"]
ACC_LISTED_DAYS = ACC_FLOWS["listed_days"]
ACC_NEW_CUSTOMERS = ACC_FLOWS["new_customers"]
ACC_DTC_NEW_CUSTOMERS = ACC_FLOWS["dtc_new_customers"]
ACC_DTC_UNITS = ACC_FLOWS["dtc_units"]
ACC_FEES = ACC_FLOWS["fees"]
ACC_UNITS_FROM_WAREHOUSE = ACC_FLOWS["units_from_warehouse"]
#: The accumulators reset at each period's end: the ones above (ACC_CUM_* run on).
N_ACC_PERIOD = 26
ACC_CUM_REVENUE = 26  # revenue since day 0 [USD] (LTV to date)
ACC_CUM_NEW_CUSTOMERS = 27  # new customers since day 0
N_ACC = 28

#: Seller-level period flows, State.seller_sum (B, S, N_SACC): output name -> accumulator.
SACC_FLOWS = {"costs": 0, "capability_costs": 1, "interest": 2}
SACC_COSTS = SACC_FLOWS["costs"]
SACC_CAPABILITY_COSTS = SACC_FLOWS["capability_costs"]
SACC_INTEREST = SACC_FLOWS["interest"]
N_SACC = 3

# --------------------------------------------------------------------------------------
# Compiled review-time rules (see cbecsim.layers), per population.
# --------------------------------------------------------------------------------------
SELECT_ALL, SELECT_TRAFFIC, SELECT_FIT = 0, 1, 2
GUARDRAIL_NONE, GUARDRAIL_ROAS, GUARDRAIL_CM2_LTV = 0, 1, 2
SELECTION_CODES = {"all": SELECT_ALL, "traffic": SELECT_TRAFFIC, "fit": SELECT_FIT}
GUARDRAIL_CODES = {"none": GUARDRAIL_NONE, "roas": GUARDRAIL_ROAS, "cm2_ltv": GUARDRAIL_CM2_LTV}

# Population rule table, shape (P, N_POPULATION_COLUMNS).
PR_SELECTION = 0  # SELECT_* code
PR_MAX_MARKETS = 1  # markets entered under traffic/fit (0: the rule's default)
PR_TOP_SHARE_CAP = 2  # cap on the top market's share of revenue (1: none)
PR_RESEARCH_COST = 3  # one-off fit analysis per candidate market [USD]
PR_GUARDRAIL = 4  # GUARDRAIL_* code
PR_ROAS_TARGET = 5  # revenue / ad spend target of the roas guardrail
PR_REVIEW_DAYS = 6  # days between reviews
N_POPULATION_COLUMNS = 7

# --------------------------------------------------------------------------------------
# The structures.
# --------------------------------------------------------------------------------------

#: Static tables of a compiled scenario (see cbecsim.compile.compile_scenario).
Tables = namedtuple("Tables", [
    "market",  # float64 (M, N_MARKET_COLUMNS), money in the market's currency
    "click_through",  # float64 (M, K) click-through by sponsored position
    "season",  # float64 (D, M) seasonal multiplier of the shopper rate
    "modes",  # float64 (F, N_MODE_COLUMNS), money in USD
    "mode_by_origin",  # float64 (O, F, N_MODE_COLUMNS): the modes with each origin's freight and lead times
    "regime_index",  # int64 (D,) regime table in force on each day
    "regime_tables",  # float64 (C, M, O, N_KINDS, N_REGIME_COLUMNS) [USD]
    "origin",  # int64 (S,) origin index of each seller
    "served",  # bool (S, M) markets each seller's population may list in
    "market_offsets",  # int64 (M + 1,) listings of market m: market_sellers[offsets[m]:offsets[m+1]]
    "market_sellers",  # int64 (L,) seller index of each served listing, by market
    "period_of_day",  # int64 (D,) output period of each day
    "period_last_day",  # bool (D,) the day closes its output period
    "period_days",  # float64 (T,) days in each output period
    "incident_multiplier",  # float64 (D, M) rule-change multiplier of the incident hazard
    "fx_active",  # bool: FX rates move (shocks or a series); else usd_rate stays fx_base[0]
    "fx_base",  # float64 (D, M) base USD rate of each market's currency
    "market_currency",  # int64 (M,) currency index of each market
    "currency_active",  # bool (C,) currencies that draw daily shocks
    "seller_layer",  # float64 (S, N_SELLER_LAYER) static layer parameters, money in USD
    # Marketplace fees (issue 13), money in the market's currency (layout.FE_*).
    "fee_index",  # int64 (D, M) fee row of each market on each day
    "fee_rows",  # float64 (E, N_FEE_COLUMNS)
    "fee_referral_tiers",  # float64 (E, KT, 2) (upper bound, rate), padded with (inf, last rate)
    "fee_fulfilment_bands",  # float64 (E, KB, 3) (upper bound, inclusive, fee), padded with (inf, 1, last fee)
    "storage_fee_day",  # float64 (D, M) storage per warehouse unit-day under the market's schedule [currency]
    "parcel_mode",  # int64 (F,) the parcel-kind mode a listing in mode f ships its origin stock with
    "position_weight",  # float64 (M, P) examination weight of organic position r (0 beyond the page)
    "basket",  # float64 (M, NB, N_BASKET) parcel compositions of each market's sales (layout.BK_*)
])

#: Mutable state of one batch of B replications (see cbecsim.compile.initial_state).
#: Decisions (what strategies set at reviews): price_local, bid_local, budget_local
#: [market currency], mode, listed, levers.
State = namedtuple("State", [
    "alive",  # bool (B, S)
    "cash",  # float64 (B, S) [USD]
    "initial_cash",  # float64 (B, S) [USD]
    "credit_line",  # float64 (B, S) [USD]
    "fixed_cost",  # float64 (B, S) [USD/day]
    "brand",  # float64 (B, S) brand equity [utility units]
    "rating",  # float64 (B, S) stars 1..5
    "exit_day",  # int64 (B, S), -1 while alive
    "listed",  # bool (B, S, M)
    "price_local",  # float64 (B, S, M) [market currency/unit]
    "bid_local",  # float64 (B, S, M) [market currency/click]
    "budget_local",  # float64 (B, S, M) [market currency/day]
    "mode",  # int64 (B, S, M) fulfilment mode index
    "unit_cost",  # float64 (B, S, M) [USD/unit]
    "stock",  # int64 (B, S, M) [units]
    "visibility_score",  # float64 (B, S, M) sales-velocity flywheel [units/day]
    "demand_estimate",  # float64 (B, S, M) [units/day]
    "stock_policy",  # float64 (B, S, M, N_STOCK)
    "pending_quantity",  # int64 (B, S, M) units in transit (one order at a time)
    "pending_day",  # int64 (B, S, M) arrival day of that order
    "pending_mode",  # int64 (B, S, M) its fulfilment mode
    "window",  # float64 (B, S, M, N_WINDOW) trailing sums since the seller's last review
    "levers",  # float64 (B, S, N_LEVERS) localisation, DTC share, compliance investment
    "layer_sm",  # float64 (B, S, M, N_LAYER_SM) customers, interruptions, incident clock, returns q
    "usd_rate",  # float64 (B, M) today's USD per unit of each market's currency
    "fx_walk",  # float64 (B, C) cumulative FX shocks per currency
    "one_off_cost",  # float64 (B, S) one-off costs due at the next close [USD]
    # Seller economics (issue 13).
    "warehouse_stock",  # int64 (B, S, M) the part of `stock` held in the overseas warehouse [units]
    "pool_cost",  # float64 (B, S, M, 2) moving-average landed cost of each stock pool (layout.POOL_*) [USD/unit]
    "pool_mode",  # int64 (B, S, M, 2) fulfilment mode each pool ships with
    "pending_cost",  # float64 (B, S, M) paid per unit of the order in transit so far [USD/unit]
    "credit",  # float64 (B, S, N_CREDIT) credit terms (layout.CR_*)
    "exit_reason",  # int64 (B, S) layout.EXIT_* code (EXIT_SURVIVED while alive)
    "exit_request",  # int64 (B, S) reason a strategy gives for leaving (EXIT_STRATEGIC by default)
    "imports_paused",  # bool (B, S, M) no replenishment orders while set (a strategy decision)
    "order_now",  # bool (B, S, M) order up to cover at the next close even above the reorder point
    "unit_cash_margin",  # float64 (B, S, M) cash a unit sold brings in net of selling costs, last sale day [USD/unit]
    "rank_order",  # int64 (B, L) each market's served listings (CSR slots) in yesterday's organic order
    "switch_cost_due",  # float64 (B, S) fulfilment- and origin-switch costs due at the next close [USD]
    # Origins (issue 14): where production is, where each order and the origin stock came from.
    "origin",  # int64 (B, S) origin index of the seller's production (new orders ship from it)
    "pending_origin",  # int64 (B, S, M) origin of the order in transit (its duty on arrival)
    "pool_origin",  # int64 (B, S, M) origin of the origin pool's stock (its parcels' duty): its last delivery's
    "origin_switch_day",  # int64 (B, S) day production moves to origin_switch_to (-1: no move pending)
    "origin_switch_to",  # int64 (B, S) origin index production moves to
    "period_sum",  # float64 (B, S, M, N_ACC) period accumulators of each listing (see ACC_*)
    "seller_sum",  # float64 (B, S, N_SACC) period accumulators of each seller (see SACC_*)
])

#: Output arrays, field-major: group array[field, row, period, ...] (see OUTPUT_GROUPS).
#: ``row`` = the replication's row in these arrays (``row0 + b``).
Outputs = namedtuple("Outputs", [
    "sm_f8", "sm_f4", "sm_i4", "s_f8", "s_f4", "s_b1", "m_i4",  # the groups of OUTPUT_GROUPS, in order
    "exit_day",  # int64 (B, S) day of exit, -1 for none
    "initial_cash",  # float64 (B, S) [USD]
    "exit_reason",  # int8 (B, S) layout.EXIT_* code
    "origin",  # int8 (B, S) production origin at the horizon end (index into the compiled origins)
])
assert Outputs._fields[:len(OUTPUT_GROUPS)] == tuple(OUTPUT_GROUPS)

#: Scratch of the market step, one row per replication of the batch (allocated once).
Work = namedtuple("Work", [
    "up",  # bool (B, S) the listing is up today in the market being stepped
    "eligible",  # bool (B, S) in today's auction
    "winners",  # int64 (B, K + 1) seller of each slot (and the runner-up)
    "prices",  # float64 (B, K + 1) cost per click of each slot
    "slot_clicks",  # int64 (B, K) clicks of each slot position still to be split over rounds
    "ptrs",  # float64 (B, K, 4) PTRS constants of each slot position's round mean
    "scratch",  # float64 (B, S) auction quality of each seller
    "order",  # int64 (B, S) the day's ranking of the bidders
    "score",  # float64 (B, S) their bid x quality
    "remaining",  # float64 (B, S) ad budget left today [market currency]
    "sponsored_attention",  # float64 (B, S)
    "attention",  # float64 (B, S)
    "weight",  # float64 (B, S) page examination x exp(utility / lambda) of each listing
    "utility_static",  # float64 (B, S, M) the utility a listing keeps for the stretch (no rating term)
    # The last parcel duty worked out for each listing, kept while its inputs stay the
    # same (the basket loop is ~7% of a bench_core day; the price moves only at reviews):
    "direct_duty_key",  # int64 (B, S, M) (regime table x origins + origin) x N_KINDS + kind; -1: none
    "direct_duty",  # float64 (B, S, M, 3) customs value [USD/unit], duty and entry fees [USD/unit]
    "repeats_possible",  # bool (B, M) the market has repeat purchases or a DTC share this stretch
    # The per-unit prices and fees of each listing's sale, kept while their inputs (the
    # price, the FX rate, the day's fee row, the warehouse pool's mode) stay the same, and
    # the exp of its choice utility while the rating and the serving pool's mode do:
    # the same functions of the same inputs, so the same bits (prepare_stretch forgets both).
    "sale_memo",  # float64 (B, S, M, N_SALE_MEMO): SALE_* below
    "choice_memo",  # float64 (B, S, M, N_CHOICE_MEMO): CHOICE_* below
])

#: Work.sale_memo columns: its keys, then what they give.
SALE_PRICE = 0  # key: the listing's price [market currency, gross of VAT]
SALE_USD_RATE = 1  # key: USD per unit of the market's currency
SALE_FEE_ROW = 2  # key: the market's fee row today; NaN: nothing kept
SALE_WAREHOUSE_MODE = 3  # key: the warehouse pool's fulfilment mode
SALE_NET_PRICE = 4  # the price net of VAT [USD/unit]
SALE_REFERRAL_LOCAL = 5  # the referral fee of one unit [market currency]
SALE_WAREHOUSE_FEE = 6  # the fulfilment fee of one warehouse unit [USD/unit]
N_SALE_MEMO = 7

#: Work.choice_memo columns.
CHOICE_RATING = 0  # key: the seller's rating [stars]; NaN: nothing kept
CHOICE_MODE = 1  # key: the serving pool's fulfilment mode
CHOICE_EXP_UTILITY = 2  # exp of the within-nest utility
N_CHOICE_MEMO = 3
