"""The numbers the dashboards and alert rules judge readings by, with where each comes from.

Kept in one place so a threshold line on a graph and the alert rule on the same quantity cannot
disagree. The gateway itself stores every physically possible value (docs/canonical-schema.md).
"""

from __future__ import annotations

from typing import Final

# Drinking water, QCVN 01-1:2018/BYT (national technical regulation on domestic water quality).
PH_MIN: Final = 6.0
PH_MAX: Final = 8.5
TURBIDITY_MAX_NTU: Final = 2.0
CHLORINE_MIN_MGL: Final = 0.2  # free chlorine residual, mg/L
CHLORINE_MAX_MGL: Final = 1.0

# Network pressure at the service connection, TCVN 33:2006: at least 10 m of free head for a
# one-storey house and 4 m more per storey. Below 1 bar even ground floors run dry; below
# 1.8 bar (three storeys, the usual shophouse) upper floors do. Above 6 bar bursts become likely.
PRESSURE_LOW_BAR: Final = 1.0
PRESSURE_WARN_BAR: Final = 1.8
PRESSURE_HIGH_BAR: Final = 6.0

# Reservoirs (water_tank): the outlet sits 0.2 m above the floor, the overflow at 6.0 m.
TANK_EMPTY_M: Final = 0.5
TANK_LOW_M: Final = 1.0
TANK_FULL_M: Final = 5.8
TANK_MAX_M: Final = 6.0

# Digital infrastructure plan for 2025: median download speeds to reach.
MOBILE_TARGET_MBPS: Final = 36.0
FIXED_TARGET_MBPS: Final = 91.0
MOBILE_TECHNOLOGIES: Final = ("4G", "5G")
FIXED_TECHNOLOGIES: Final = ("FTTH",)

# Telecom sites run a 48 V battery string: ~54 V floating on mains, 46 V is roughly 20 % charge.
BATTERY_LOW_V: Final = 46.0
BATTERY_WARN_V: Final = 48.0

# Street lighting: share of lamps reporting a fault code that needs a crew.
LAMP_FAULT_RATE_PCT: Final = 5.0
# ... and how many lamps at least: in a district of a few lamps one dark lamp is already 20-100 %.
LAMP_FAULT_MIN_COUNT: Final = 3

# Traffic: 50 km/h on undivided urban roads (Thông tư 38/2024/TT-BGTVT); a loop detector
# occupied more than a quarter of the time means dense traffic, 40 % a queue over the loop.
SPEED_LIMIT_KMH: Final = 50.0
OCCUPANCY_DENSE_PCT: Final = 25.0
OCCUPANCY_QUEUE_PCT: Final = 40.0

# Gateway: spooled data older than this means InfluxDB has not taken writes for that long.
SPOOL_OLDEST_WARN_S: Final = 900.0

# Air, PM2.5 (µg/m³). QCVN 05:2023/BTNMT (national technical regulation on ambient air
# quality): a 24-hour mean of at most 50. The colours are the VN_AQI bands of Quyết định
# 1459/QĐ-TCMT (2019): up to 25 good, 50 moderate, 80 poor, 150 bad, above that very bad.
PM25_DAY_LIMIT_UGM3: Final = 50.0
PM25_AQI_BANDS_UGM3: Final = (25.0, 50.0, 80.0, 150.0)

# River and canal gauges (river_level.level_m, above each gauge's zero). Viet Nam's flood
# alarm levels I, II and III are set per hydrological station by the Prime Minister's
# decision; the town's canal gauges are not such stations, so these are the town's own
# working levels, the same for every gauge: set them per gauge before relying on them.
RIVER_ALARM_M: Final = (3.5, 4.0, 4.5)
RIVER_GAUGE_TOP_M: Final = 6.0  # the top of the staff gauge

# On-street parking: above about 85 % of bays taken drivers circle to find one (Shoup, "The
# High Cost of Free Parking", the usual target for priced kerb parking).
PARKING_BUSY_PCT: Final = 85.0
