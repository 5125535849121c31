"""Column layout of the packed tables inside :mod:`cbecsim.kernels.state`'s structures.

These integer constants name the columns of the float64 tables (markets, fulfilment
modes, regimes, review windows, stock policy, levers, layer parameters and state);
numba folds module-level integers into the compiled code as constants. The output
fields are laid out in :mod:`cbecsim.kernels.state`.
"""

# Market table, shape (n_markets, N_MARKET_COLUMNS); money in the market's currency.
MK_SHOPPERS = 0  # mean shoppers a day outside peaks
MK_REFERENCE_PRICE = 1  # [currency/unit]
MK_VAT = 2  # VAT rate included in prices (fraction)
MK_SLOTS = 3  # number of sponsored slots K
MK_RESERVE = 4  # reserve cost per click [currency]
MK_IMPRESSION_SHARE = 5  # share of shoppers who see the sponsored slots
MK_ORGANIC_ATTENTION = 6  # organic attention mass per shopper
MK_BASE_UTILITY = 7
MK_PRICE_SENSITIVITY = 8  # beta
MK_BRAND_WEIGHT = 9  # alpha
MK_RATING_WEIGHT = 10  # gamma, on (rating - 4)
MK_DELIVERY_WEIGHT = 11  # delta, per delivery day
MK_REFERRAL_RATE = 12
MK_REFERRAL_MIN = 13  # [currency/unit]
MK_VISIBILITY_RATE = 14  # lambda of the flywheel
MK_VISIBILITY_FLOOR = 15  # [units/day]
# Model layers (issue 7): returns, ratings, retention, compliance incidents, FX.
MK_RETURN_RATE = 16  # probability a sold unit is returned, before localisation
MK_REPEAT_RATE = 17  # daily repurchase hazard of a marketplace customer [1/day]
MK_LAPSE_RATE = 18  # daily probability a customer lapses for good [1/day]
MK_INCIDENT_RATE = 19  # compliance-incident hazard of a listing [1/day]
MK_INTERRUPTION_DAYS = 20  # mean length of a listing interruption [days], >= 1
MK_RATING_MEMORY = 21  # units sold over which the rating averages experiences [units]
MK_RATING_RETURN_PENALTY = 22  # stars lost per unit of return fraction
MK_RATING_DELIVERY_PENALTY = 23  # stars lost per delivery day
MK_FX_VOLATILITY = 24  # daily standard deviation of log(USD rate)
MK_AUCTION_ROUNDS = 25  # sponsored auctions a day, each over an equal share of the shoppers
# The results page (issue 13): organic positions ranked by the flywheel, nested logit.
MK_PAGE_SIZE = 26  # organic positions a shopper can examine (listings ranked beyond get none)
MK_POSITION_DECAY = 27  # eta: examination of organic position r (0 = top) is (1 + r)^-eta
MK_NEST = 28  # lambda in (0, 1]: nesting parameter of the inside listings (1 = plain MNL)
N_MARKET_COLUMNS = 29

# Fulfilment-mode table, shape (n_modes, N_MODE_COLUMNS); money in USD.
MD_KIND = 0  # KIND_PARCEL, KIND_BULK or KIND_POSTAL
MD_FREIGHT = 1  # [USD/unit]
MD_DELIVERY_DAYS = 2
MD_FULFILMENT_FEE = 3  # [USD/unit]
MD_HANDLING_FEE = 4  # [USD/unit]
MD_LEAD_MIN = 5  # [days]
MD_LEAD_MAX = 6  # [days]
MD_SCHEDULE_FEES = 7  # 1.0: a bulk mode whose fulfilment, storage and inbound fees come from the market's fee schedule
MD_STORAGE_MONTH = 8  # own storage fee of a bulk mode without schedule fees [USD per unit-month]
MD_SWITCH_COST = 9  # one-off cost of moving a listing into this mode [USD]
MD_BADGE_UTILITY = 10  # utility a listing served in this mode gains (a marketplace's fast-delivery badge)
N_MODE_COLUMNS = 11

# Fulfilment kinds (the third axis of the regime table). Parcel and postal are direct
# B2C shipments from the origin stock, valued at the transaction price; bulk is a B2B
# import to an overseas warehouse, valued at cost and always dutiable.
KIND_PARCEL = 0
KIND_BULK = 1
KIND_POSTAL = 2  # a postal item (issue 14): the carrier's duty method applies
N_KINDS = 3

# Regime-in-force table, shape (n_markets, n_origins, N_KINDS, N_REGIME_COLUMNS); USD.
RG_AD_VALOREM = 0  # fraction of customs value (postal: the ad valorem method's rate)
RG_SPECIFIC = 1  # per-item duty on dutiable imports [USD/unit]
RG_DE_MINIMIS = 2  # 1.0 when direct parcels at or under the threshold are exempt
RG_THRESHOLD = 3  # de minimis threshold on the parcel's value [USD/parcel]
RG_LOW_VALUE_DUTY = 4  # flat duty per item of an exempt low-value parcel [USD/unit]
RG_LOW_VALUE_PER_HEADING = 5  # flat duty per distinct tariff sub-heading of an exempt parcel [USD]
RG_PER_HEADING = 6  # 1.0: the flat duty is per sub-heading (RG_LOW_VALUE_PER_HEADING), else per item
RG_IOSS_ONLY = 7  # 1.0: the flat duty is for IOSS sellers only (others: the normal tariff)
RG_POSTAL_SPECIFIC = 8  # postal: the specific method's amount per postal package [USD/parcel]
RG_POSTAL_SPECIFIC_AVAILABLE = 9  # postal: 1.0 when a specific method is offered
RG_ENTRY_FEE = 10  # entry (MPF) + broker fees per dutiable direct parcel [USD/parcel]
RG_DRAWBACK = 11  # refundable share of duty on goods exported or destroyed (recorded; not yet applied)
N_REGIME_COLUMNS = 12

# The carrier's postal duty method (a seller population's postal_duty_method).
POSTAL_AD_VALOREM = 0
POSTAL_SPECIFIC = 1
POSTAL_CHEAPEST = 2  # the cheaper per parcel: a bound (a carrier elects one method for all)

# Basket table of a market, shape (M, NB, N_BASKET): the parcels a sale ships in.
BK_UNITS = 0  # units in the parcel
BK_HEADINGS = 1  # distinct tariff sub-headings in the parcel
BK_SHARE = 2  # share of parcels of this composition (rows sum to 1; padding rows 0)
N_BASKET = 3

# Stock pools of a listing (issue 13): the seller's stock at origin (shipped per order
# by parcel) and its stock in an overseas warehouse (imported in bulk, duty paid on arrival).
POOL_ORIGIN = 0
POOL_WAREHOUSE = 1

# Fee-schedule rows, shape (n_fee_rows, N_FEE_COLUMNS); money in the market's currency.
# A market's row on day d is tables.fee_index[d, m]; its referral tiers are
# tables.fee_referral_tiers[row] (K, 2) and its fulfilment price bands
# tables.fee_fulfilment_bands[row] (K, 3) (layouts of cbecsim.kernels.fee_rules).
FE_REFERRAL_MIN = 0  # per-item minimum referral fee [currency/unit]
FE_REFERRAL_RULE = 1  # fee_rules.REFERRAL_MARGINAL or REFERRAL_WHOLE_PRICE
FE_REFERRAL_GROSS = 2  # 1.0: the referral base includes VAT (EU stores); 0.0: net of sales tax
FE_FULFILMENT_SURCHARGE = 3  # fuel and logistics surcharge on the fulfilment fee (fraction)
FE_INBOUND = 4  # inbound placement per unit received into the warehouse [currency/unit]
FE_RETURNS_PROCESSING = 5  # returns processing per returned warehouse unit [currency/unit]
FE_REFUND_ADMIN_RATE = 6  # refund administration fee: share of the referral fee kept on a refund
FE_REFUND_ADMIN_MAX = 7  # ... at most this [currency/unit]
FE_HAS_FULFILMENT = 8  # 1.0: the schedule has fulfilment bands (else a schedule-fee mode pays its own fee)
N_FEE_COLUMNS = 9

# Trailing-window accumulators for strategy reviews, shape (n_batch, n_sellers,
# n_markets, N_WINDOW); reset by the engine at each review of the seller.
W_REVENUE = 0
W_UNITS = 1
W_LOST = 2
W_AD_SPEND = 3
W_CM2 = 4
W_VISIBILITY = 5
W_DAYS = 6
W_DUTY = 7  # duty per unit sold, summed over units [USD]
W_NEW_CUSTOMERS = 8
W_RETURNS = 9
W_FEES = 10  # marketplace and payment fees [USD]
W_UNITS_FROM_WAREHOUSE = 11
N_WINDOW = 12

# Per seller-market stock-policy parameters, shape (n_batch, n_sellers, n_markets, N_STOCK).
SP_SAFETY_DAYS = 0
SP_COVER_DAYS = 1
N_STOCK = 2

# Seller levers (issue 7), shape (n_batch, n_sellers, N_LEVERS); strategies may change them.
LV_LOCALISATION = 0  # 0..1
LV_DTC_SHARE = 1  # 0..1, share of the DTC channel's acquisition capacity used
LV_COMPLIANCE = 2  # 0..1, compliance investment level
N_LEVERS = 3

# Static per-seller layer parameters, shape (n_sellers, N_SELLER_LAYER); money in USD.
SL_LOC_BRAND_LIFT = 0  # brand-equity units added at localisation 1
SL_LOC_RETURN_CUT = 1  # share of the return probability removed at localisation 1
SL_LOC_RETENTION_LIFT = 2  # relative rise of the repurchase hazard at localisation 1
SL_DTC_CAC = 3  # [USD per new DTC customer]
SL_DTC_CAPACITY = 4  # new DTC customers a day at dtc_share 1 [1/day]
SL_CRM_MULTIPLIER = 5  # repurchase hazard of DTC customers / marketplace customers
SL_COMPLIANCE_CUT = 6  # share of the incident hazard removed at compliance investment 1
SL_LOC_COST_DAY = 7  # localisation cost per listed market-day at level 1 [USD]
SL_COMPLIANCE_COST_DAY = 8  # compliance cost per listed market-day at level 1 [USD]
SL_ANALYTICS_COST_DAY = 9  # CM2/LTV guardrail analytics per seller-day [USD]
SL_PAYMENT_RATE = 10  # card payment fee on DTC sales (fraction of the price)
SL_PAYMENT_FIXED = 11  # ... plus this per DTC order [USD]
SL_POSTAL_METHOD = 12  # POSTAL_* code: the duty method its postal carrier elected
SL_IOSS = 13  # 1.0: registered for the EU's Import One-Stop Shop
N_SELLER_LAYER = 14

# Credit terms per seller, shape (n_batch, n_sellers, N_CREDIT) (issue 13).
CR_INTEREST_DAY = 0  # interest on drawn credit (negative cash) [1/day]
CR_RECOVERY_DAYS = 1  # horizon over which sellable stock may bring cash back above the line [days]
CR_RESERVE_DAYS = 2  # days of fixed costs an order must leave payable [days]
N_CREDIT = 3

# Exit reasons (State.exit_reason; the result variable exit_reason holds their names).
EXIT_SURVIVED = 0
EXIT_INSOLVENT = 1
EXIT_UNPROFITABLE = 2
EXIT_STRATEGIC = 3

# Layer state per seller-market, shape (n_batch, n_sellers, n_markets, N_LAYER_SM).
# Counts are whole numbers held in float64 (exact to 2**53).
LS_CUSTOMERS = 0  # marketplace customers
LS_DTC_CUSTOMERS = 1  # first-party (DTC) customers
LS_INTERRUPTED_UNTIL = 2  # listing interrupted while day < this
LS_INCIDENT_CLOCK = 3  # incident hazard left before the listing's next incident (Exp(1) when drawn)
# The listing's return probability q (0 until first needed) with log1p(-q) and q / (1 - q),
# kept so the daily returns draw does not recompute them (rng.binomial_small_q).
LS_RETURN_Q = 4
LS_RETURN_LOG1M_Q = 5
LS_RETURN_ODDS = 6
N_LAYER_SM = 7
