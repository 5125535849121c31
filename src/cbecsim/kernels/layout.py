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
N_MARKET_COLUMNS = 26

# Fulfilment-mode table, shape (n_modes, N_MODE_COLUMNS); money in USD.
MD_KIND = 0  # KIND_PARCEL or KIND_BULK
MD_FREIGHT = 1  # [USD/unit]
MD_DELIVERY_DAYS = 2
MD_FULFILMENT_FEE = 3  # [USD/unit]
MD_HANDLING_FEE = 4  # [USD/unit]
MD_LEAD_MIN = 5  # [days]
MD_LEAD_MAX = 6  # [days]
N_MODE_COLUMNS = 7

KIND_PARCEL = 0
KIND_BULK = 1

# Regime-in-force table, shape (n_markets, n_origins, 2 kinds, N_REGIME_COLUMNS); USD.
RG_AD_VALOREM = 0  # fraction of customs value
RG_SPECIFIC = 1  # per-item duty on dutiable imports [USD/unit]
RG_DE_MINIMIS = 2  # 1.0 when parcels at or under the threshold are exempt
RG_THRESHOLD = 3  # de minimis threshold [USD]
RG_LOW_VALUE_DUTY = 4  # flat per-item duty on exempt low-value parcels [USD/unit]
N_REGIME_COLUMNS = 5

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
N_WINDOW = 10

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
N_SELLER_LAYER = 10

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
