"""Column layout of the packed arrays the kernels share with the engine.

Kernels take a few packed float64 tables instead of dozens of arguments (numba's
per-call dispatch cost grows with the argument count, and the engine calls kernels once
per simulated day). These integer constants name the columns; numba folds module-level
integers into the compiled code as constants.
"""

# Market table, shape (n_markets, N_MARKET_COLUMNS); money in the market's currency.
MK_SHOPPERS = 0  # mean shoppers a day outside peaks
MK_REFERENCE_PRICE = 1  # [currency/unit]
MK_USD_RATE = 2  # USD per unit of the market currency
MK_VAT = 3  # VAT rate included in prices (fraction)
MK_SLOTS = 4  # number of sponsored slots K
MK_RESERVE = 5  # reserve cost per click [currency]
MK_IMPRESSION_SHARE = 6  # share of shoppers who see the sponsored slots
MK_ORGANIC_ATTENTION = 7  # organic attention mass per shopper
MK_BASE_UTILITY = 8
MK_PRICE_SENSITIVITY = 9  # beta
MK_BRAND_WEIGHT = 10  # alpha
MK_RATING_WEIGHT = 11  # gamma, on (rating - 4)
MK_DELIVERY_WEIGHT = 12  # delta, per delivery day
MK_REFERRAL_RATE = 13
MK_REFERRAL_MIN = 14  # [currency/unit]
MK_VISIBILITY_RATE = 15  # lambda of the flywheel
MK_VISIBILITY_FLOOR = 16  # [units/day]
N_MARKET_COLUMNS = 17

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

# Per seller-market-day outputs, shape (n_batch, n_times, n_sellers, n_markets, N_OUT_SM).
O_REVENUE = 0  # [USD], net of VAT
O_UNITS = 1  # units sold
O_LOST = 2  # units demanded but not in stock
O_AD_SPEND = 3  # [USD]
O_DUTY = 4  # duty paid [USD]
O_LANDED_COST = 5  # sum over days of landed cost per unit [USD/unit]; mean taken by results
O_CM2 = 6  # contribution margin after ads [USD]
O_VISIBILITY = 7  # sum over days of share of attention; mean taken by results
O_ORGANIC_UNITS = 8  # units attributed to organic attention
O_STOCK = 9  # stock at the end of the period [units]
O_CLICKS = 10  # sponsored clicks
O_DAYS = 11  # days accumulated in the period (for means)
N_OUT_SM = 12

# Per seller-day outputs, shape (n_batch, n_times, n_sellers, N_OUT_S).
OS_CASH = 0  # cash at the end of the period [USD]
OS_ALIVE = 1  # 1.0 while the seller trades
OS_COSTS = 2  # all cash paid out in the period [USD]
N_OUT_S = 3

# Per market-day outputs, shape (n_batch, n_times, n_markets, N_OUT_M).
OM_SHOPPERS = 0  # shoppers arrived
N_OUT_M = 1

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
N_WINDOW = 8

# Per seller-market stock-policy parameters, shape (n_batch, n_sellers, n_markets, N_STOCK).
SP_SAFETY_DAYS = 0
SP_COVER_DAYS = 1
N_STOCK = 2
