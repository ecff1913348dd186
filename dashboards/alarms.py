"""Alarm counters shared by the overview and the domain dashboards.

Each is a sum of 0/1 flags over devices (influxql.at_least/below/nonzero), so a town with
nothing in alarm shows 0 rather than "No data". `extra_filter` narrows a domain dashboard's
counter to its device variable.
"""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from dashboards import limits
from dashboards.influxql import DISTRICT, InfluxQL, at_least, below, nonzero
from dashboards.panels import (
    COUNT,
    OK_UNLESS_ANY,
    WARN_UNLESS_ANY,
    PanelBuilder,
    stat_panel,
)

ALARM_WIDTH = 3  # eight alarm counters side by side on the overview


def lamps_in_fault(extra_filter: str = "", width: int = ALARM_WIDTH) -> PanelBuilder:
    flag = nonzero('last("fault_code")')
    return stat_panel(
        "Đèn đang báo lỗi",
        "Street lights whose last report in the range carries a non-zero fault_code.",
        COUNT,
        [
            InfluxQL(
                f"""SELECT sum("faulty") AS "đèn lỗi" FROM (SELECT {flag} AS "faulty"
                FROM "streetlight" WHERE $timeFilter AND {DISTRICT}{extra_filter}
                GROUP BY "device_id")"""
            )
        ],
        steps=OK_UNLESS_ANY,
        width=width,
    )


def low_pressure_points(extra_filter: str = "", width: int = ALARM_WIDTH) -> PanelBuilder:
    flag = below('last("pressure_bar")', limits.PRESSURE_LOW_BAR)
    return stat_panel(
        "Điểm áp lực thấp",
        f"Flow meters and pressure loggers whose last pressure is below "
        f"{limits.PRESSURE_LOW_BAR} bar (TCVN 33:2006 minimum free head for a one-storey house).",
        COUNT,
        [
            InfluxQL(
                f"""SELECT sum("low") AS "điểm áp thấp" FROM (SELECT {flag} AS "low"
                FROM "water_flow", "water_pressure" WHERE $timeFilter AND {DISTRICT}{extra_filter}
                GROUP BY "device_id")"""
            ).alias("$m")
        ],
        steps=OK_UNLESS_ANY,
        width=width,
    )


def quality_exceedances_query(extra_filter: str = "") -> str:
    """Per probe, how many of pH, turbidity and free chlorine are outside the drinking-water
    limits at its last report; summed over probes."""
    ph, turbidity, chlorine = 'last("ph")', 'last("turbidity_ntu")', 'last("free_chlorine_mgl")'
    flags = " + ".join(
        [
            below(ph, limits.PH_MIN),
            at_least(ph, limits.PH_MAX),
            at_least(turbidity, limits.TURBIDITY_MAX_NTU),
            below(chlorine, limits.CHLORINE_MIN_MGL),
            at_least(chlorine, limits.CHLORINE_MAX_MGL),
        ]
    )
    return (
        f'SELECT sum("exceeded") AS "chỉ tiêu vượt" FROM (SELECT {flags} AS "exceeded" '
        f'FROM "water_quality" WHERE $timeFilter AND {DISTRICT}{extra_filter} '
        'GROUP BY "device_id")'
    )


def quality_exceedances(extra_filter: str = "", width: int = ALARM_WIDTH) -> PanelBuilder:
    return stat_panel(
        "Chỉ tiêu chất lượng nước vượt giới hạn",
        f"Parameters out of the QCVN 01-1:2018/BYT drinking-water limits at each probe's last "
        f"report, summed over probes: pH outside {limits.PH_MIN}-{limits.PH_MAX}, turbidity "
        f"at or above {limits.TURBIDITY_MAX_NTU} NTU, free chlorine outside "
        f"{limits.CHLORINE_MIN_MGL}-{limits.CHLORINE_MAX_MGL} mg/L.",
        COUNT,
        [InfluxQL(quality_exceedances_query(extra_filter))],
        steps=OK_UNLESS_ANY,
        width=width,
    )


def signal_faults(extra_filter: str = "", width: int = ALARM_WIDTH) -> PanelBuilder:
    return stat_panel(
        "Tủ đèn tín hiệu báo lỗi",
        "Traffic signal controllers whose last report flags a lamp fault or a detector fault "
        "(a controller with both counts once per fault).",
        COUNT,
        [
            InfluxQL(
                f"""SELECT sum("lamp") + sum("detector") AS "lỗi tín hiệu"
                FROM (SELECT last("lamp_fault") AS "lamp", last("detector_fault") AS "detector"
                FROM "traffic_signal" WHERE $timeFilter AND {DISTRICT}{extra_filter}
                GROUP BY "device_id")"""
            )
        ],
        steps=OK_UNLESS_ANY,
        width=width,
    )


def sites_on_battery(extra_filter: str = "", width: int = ALARM_WIDTH) -> PanelBuilder:
    return stat_panel(
        "Trạm viễn thông đang chạy ắc quy",
        "Telecom sites whose last report says mains power is absent (mains_present = 0): "
        "they run on their battery string until mains returns or the battery is flat.",
        COUNT,
        [
            InfluxQL(
                f"""SELECT count("mains") - sum("mains") AS "trạm mất điện lưới"
                FROM (SELECT last("mains_present") AS "mains" FROM "connectivity_site"
                WHERE $timeFilter AND {DISTRICT}{extra_filter} GROUP BY "device_id")"""
            )
        ],
        steps=WARN_UNLESS_ANY,
        width=width,
    )


def stale_devices(width: int = ALARM_WIDTH) -> PanelBuilder:
    return stat_panel(
        "Thiết bị im lặng",
        "Devices the gateway's liveness tracker calls stale (silent for more than "
        "stale_after_intervals reporting intervals, or offline by their MQTT last will), "
        "summed over gateways. Only profiles with an expected interval are tracked.",
        COUNT,
        [
            InfluxQL(
                """SELECT sum("stale") AS "thiết bị im lặng" FROM (SELECT last("devices_stale")
                AS "stale" FROM "gateway_health" WHERE $timeFilter GROUP BY "instance")"""
            )
        ],
        steps=WARN_UNLESS_ANY,
        width=width,
    )


def gauges_above_alarm(
    extra_filter: str = "",
    width: int = ALARM_WIDTH,
    levels: int = len(limits.RIVER_ALARM_M),
) -> PanelBuilder:
    """River gauges whose last level is at or above each of the first `levels` flood alarm
    levels (I, II, III)."""
    alarms = list(zip(("I", "II", "III"), limits.RIVER_ALARM_M, strict=True))[:levels]
    last = 'last("level_m")'
    flags = ", ".join(f'{at_least(last, level)} AS "{roman}"' for roman, level in alarms)
    sums = ", ".join(f'sum("{roman}") AS "báo động {roman}"' for roman, _ in alarms)
    shown = ", ".join(f"{roman} {level} m" for roman, level in alarms)
    return stat_panel(
        "Trạm đo vượt mức báo động lũ",
        f"River and canal gauges whose last level in the range is at or above the town's "
        f"working flood alarm levels ({shown}; dashboards/limits.py).",
        COUNT,
        [
            InfluxQL(
                f"""SELECT {sums} FROM (SELECT {flags} FROM "river_level"
                WHERE $timeFilter AND {DISTRICT}{extra_filter} GROUP BY "device_id")"""
            ).alias("$col")
        ],
        steps=WARN_UNLESS_ANY,
        width=width,
    )


def stations_over_pm25_limit(extra_filter: str = "", width: int = ALARM_WIDTH) -> PanelBuilder:
    """Judged on the last 24 hours whatever the dashboard's range: the limit is a day mean."""
    flag = at_least('mean("pm25_ugm3")', limits.PM25_DAY_LIMIT_UGM3)
    return (
        stat_panel(
            "Trạm không khí vượt PM2.5",
            f"Air stations whose mean PM2.5 over the last 24 hours is at or above the "
            f"QCVN 05:2023/BTNMT limit of {limits.PM25_DAY_LIMIT_UGM3:.0f} µg/m³.",
            COUNT,
            [
                InfluxQL(
                    f"""SELECT sum("over") AS "trạm vượt PM2.5" FROM (SELECT {flag} AS "over"
                    FROM "air_quality" WHERE $timeFilter AND {DISTRICT}{extra_filter}
                    GROUP BY "device_id")"""
                )
            ],
            steps=WARN_UNLESS_ANY,
            width=width,
        )
        .time_from("24h")
        .hide_time_override(False)
    )
