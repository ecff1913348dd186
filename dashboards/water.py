"""Cấp nước: flow and pressure per district, reservoir levels, drinking-water quality,
household meters."""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import limits
from dashboards.alarms import low_pressure_points, quality_exceedances
from dashboards.influxql import DEVICE, DEVICE_FILTER, InfluxQL
from dashboards.panels import (
    COUNT,
    QUARTER,
    THIRD,
    TIMEZONE,
    WARN_UNLESS_ANY,
    PanelBuilder,
    Steps,
    device_variable,
    district_variable,
    gauge_bars,
    stat_panel,
    timeseries,
    town_dashboard,
)

MEASUREMENTS = ("water_flow", "water_pressure", "water_tank", "water_quality", "water_meter")
METER_INTERVAL = "5m"  # flow meters, pressure loggers and quality probes report every 5 min
TANK_INTERVAL = "10m"
FLOW = "suffix: m³/h"  # Grafana's flow units stop at L/h and m³/s
HOUSEHOLD_INTERVAL = "30m"  # household meters send an index every half hour

PRESSURE_STEPS: Steps = (
    (None, "red"),
    (limits.PRESSURE_LOW_BAR, "orange"),
    (limits.PRESSURE_WARN_BAR, "green"),
    (limits.PRESSURE_HIGH_BAR, "orange"),
)
TANK_STEPS: Steps = (
    (None, "red"),
    (limits.TANK_EMPTY_M, "orange"),
    (limits.TANK_LOW_M, "green"),
    (limits.TANK_FULL_M, "orange"),
)


def flow_sum_per_district(measurement: str) -> InfluxQL:
    """The sum over the district's meters of each meter's mean flow in the interval."""
    return InfluxQL(
        f"""SELECT sum("flow") FROM (SELECT mean("flow_m3h") AS "flow" FROM "{measurement}"
        WHERE $timeFilter AND {DEVICE_FILTER}
        GROUP BY time($__interval), "device_id", "district" fill(none))
        WHERE $timeFilter GROUP BY time($__interval), "district" fill(none)"""
    ).alias("$tag_district")


def flow_per_district() -> PanelBuilder:
    return timeseries(
        "Lưu lượng theo phường",
        "Water flowing through the district's metered mains: the sum over flow meters of each "
        "meter's mean flow in the interval.",
        FLOW,
        [flow_sum_per_district("water_flow")],
        min_interval=METER_INTERVAL,
    )


def pressure_per_district() -> PanelBuilder:
    return timeseries(
        "Áp lực mạng theo phường (thấp nhất)",
        f"Lowest network pressure measured in each district by flow meters and pressure "
        f"loggers. Lines: {limits.PRESSURE_LOW_BAR} bar (TCVN 33:2006 minimum for one storey), "
        f"{limits.PRESSURE_WARN_BAR} bar (three storeys), {limits.PRESSURE_HIGH_BAR} bar (burst "
        "risk).",
        "pressurebar",
        [
            InfluxQL(
                f"""SELECT min("pressure_bar") FROM "water_flow", "water_pressure"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "district" fill(none)"""
            ).alias("$tag_district ($m)")
        ],
        steps=PRESSURE_STEPS,
        min_interval=METER_INTERVAL,
    )


def increase_per_day(title: str, description: str, measurement: str) -> PanelBuilder:
    """Per district and local day (Asia/Ho_Chi_Minh), the summed increase of every meter's
    volume register (total_m3); a meter reset or replacement is not a negative."""
    used = (
        f'SELECT non_negative_difference(last("total_m3")) AS "m3" FROM "{measurement}" '
        f"WHERE $timeFilter AND {DEVICE_FILTER} "
        'GROUP BY time($__interval), "district", "device_id" fill(none)'
    )
    return (
        timeseries(
            title,
            description,
            "m3",
            [
                InfluxQL(
                    f'SELECT sum("m3") FROM ({used}) WHERE $timeFilter '
                    f"GROUP BY time(1d), \"district\" fill(none) tz('{TIMEZONE}')"
                ).alias("$tag_district")
            ],
            bars=True,
        )
        .time_from("7d")
        .hide_time_override(False)
    )


def volume_per_day() -> PanelBuilder:
    return increase_per_day(
        "Sản lượng nước mỗi ngày",
        "Water delivered per district per local day (Asia/Ho_Chi_Minh): the increase of "
        "every flow meter's totalizer (total_m3), summed; a meter reset is not a negative.",
        "water_flow",
    )


def household_use_per_day() -> PanelBuilder:
    return increase_per_day(
        "Nước tiêu thụ của hộ dân mỗi ngày",
        "Water used by the households with a smart meter, per district per local day "
        "(Asia/Ho_Chi_Minh): the increase of every household meter's register (total_m3), "
        "summed; a meter replaced or reset is not a negative. Compared with the water "
        "delivered, the difference is what the network loses.",
        "water_meter",
    )


def meter_alarms() -> PanelBuilder:
    # The alarm fields exist only on alarm frames (mh-water-meter-tts), so alarms alone give no
    # row on a range without any. The second source adds a 0 for each alarm whenever any meter
    # reported (rssi_dbm is on every uplink of both meter profiles): InfluxQL sums the rows of
    # both sources, so the panel shows three named zeros rather than the stat's noValue.
    alarms = (("leak", "rò rỉ"), ("backflow", "chảy ngược"), ("tamper", "can thiệp"))
    devices_alarmed = ", ".join(f'max("{name}_alarm") AS "{name}"' for name, _ in alarms)
    zeros = ", ".join(f'0 * count("rssi_dbm") AS "{name}"' for name, _ in alarms)
    where = f"WHERE $timeFilter AND {DEVICE_FILTER}"
    return stat_panel(
        "Đồng hồ hộ dân báo động",
        "Household meters that sent a leak alarm (water running all night), a backflow "
        "alarm or a tamper alarm (a magnet on the case) in the range.",
        COUNT,
        [
            InfluxQL(
                "SELECT "
                + ", ".join(f'sum("{name}") AS "{label}"' for name, label in alarms)
                + f' FROM (SELECT {devices_alarmed} FROM "water_meter" {where} GROUP BY '
                f'"device_id"), (SELECT {zeros} FROM "water_meter" {where})'
            ).alias("$col")
        ],
        steps=WARN_UNLESS_ANY,
        width=QUARTER,
    )


def meter_flow_per_district() -> PanelBuilder:
    return timeseries(
        "Lưu lượng hộ dân theo phường",
        "Water flowing into the households with a smart meter: the sum over meters of each "
        "meter's mean flow in the interval (negative when water runs back into the network).",
        FLOW,
        [flow_sum_per_district("water_meter")],
        min_interval=HOUSEHOLD_INTERVAL,
        width=QUARTER * 3,  # next to the alarm counter
    )


def tank_levels() -> PanelBuilder:
    return timeseries(
        "Mực nước bể chứa",
        f"Water level above each reservoir's floor. Below {limits.TANK_LOW_M} m the outlet "
        f"is close to drawing air; the overflow is at {limits.TANK_MAX_M} m.",
        "lengthm",
        [
            InfluxQL(
                f"""SELECT mean("level_m") FROM "water_tank" WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "district", "device_id" fill(none)"""
            ).alias("$tag_device_id ($tag_district)")
        ],
        steps=TANK_STEPS,
        min_interval=TANK_INTERVAL,
    )


def tank_levels_now() -> PanelBuilder:
    return gauge_bars(
        "Mực nước hiện tại",
        "Last reported water level of each reservoir in the range.",
        "lengthm",
        [
            InfluxQL(
                f"""SELECT last("level_m") FROM "water_tank" WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY "district", "device_id" """
            ).alias("$tag_device_id ($tag_district)")
        ],
        steps=TANK_STEPS,
        max_value=limits.TANK_MAX_M,
    )


def _quality_panel(
    title: str, description: str, unit: str, field: str, steps: Steps
) -> PanelBuilder:
    return timeseries(
        title,
        description,
        unit,
        [
            InfluxQL(
                f"""SELECT mean("{field}") FROM "water_quality"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "district", "device_id" fill(none)"""
            ).alias("$tag_device_id ($tag_district)")
        ],
        steps=steps,
        min_interval=METER_INTERVAL,
        width=THIRD,
    )


def quality_panels() -> list[PanelBuilder]:
    regulation = "QCVN 01-1:2018/BYT drinking-water limit"
    return [
        _quality_panel(
            "Độ pH",
            f"pH of the treated water at each probe; {regulation}: {limits.PH_MIN} to "
            f"{limits.PH_MAX}.",
            "suffix: pH",
            "ph",
            ((None, "red"), (limits.PH_MIN, "green"), (limits.PH_MAX, "red")),
        ),
        _quality_panel(
            "Độ đục",
            f"Turbidity at each probe; {regulation}: at most {limits.TURBIDITY_MAX_NTU} NTU.",
            "suffix: NTU",
            "turbidity_ntu",
            ((None, "green"), (limits.TURBIDITY_MAX_NTU, "red")),
        ),
        _quality_panel(
            "Clo dư tự do",
            f"Free chlorine residual at each probe; {regulation}: {limits.CHLORINE_MIN_MGL} to "
            f"{limits.CHLORINE_MAX_MGL} mg/L (too little does not disinfect, too much tastes).",
            "suffix: mg/L",
            "free_chlorine_mgl",
            ((None, "red"), (limits.CHLORINE_MIN_MGL, "green"), (limits.CHLORINE_MAX_MGL, "red")),
        ),
    ]


def conductivity(width: int) -> PanelBuilder:
    return timeseries(
        "Độ dẫn điện",
        "Electrical conductivity of the water at each probe: a sudden change means a change "
        "of source or an intrusion into the network.",
        "suffix: µS/cm",
        [
            InfluxQL(
                f"""SELECT mean("conductivity_uscm") FROM "water_quality"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "district", "device_id" fill(none)"""
            ).alias("$tag_device_id ($tag_district)")
        ],
        min_interval=METER_INTERVAL,
        width=width,
    )


def build() -> Dashboard:
    device = f" AND {DEVICE}"
    return town_dashboard(
        "mh-water",
        "Cấp nước",
        "Mỹ Hào water supply: flow and pressure per district, reservoirs, water quality,"
        " household meters.",
        time_from="now-24h",
        variables=[district_variable(MEASUREMENTS), device_variable(MEASUREMENTS)],
        rows=[
            ("Lưu lượng và áp lực", [flow_per_district(), pressure_per_district()]),
            ("Bể chứa", [tank_levels(), tank_levels_now()]),
            ("Sản lượng", [volume_per_day(), household_use_per_day()]),
            ("Đồng hồ hộ dân", [meter_flow_per_district(), meter_alarms()]),
            ("Chất lượng nước", [*quality_panels()]),
            (
                "Cảnh báo",
                [
                    low_pressure_points(device, width=THIRD),
                    quality_exceedances(device, width=THIRD),
                    conductivity(width=THIRD),
                ],
            ),
        ],
    )
