"""Cấp nước: flow and pressure per district, reservoir levels, drinking-water quality."""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import limits
from dashboards.alarms import low_pressure_points, quality_exceedances
from dashboards.influxql import DEVICE, DEVICE_FILTER, InfluxQL
from dashboards.panels import (
    THIRD,
    TIMEZONE,
    PanelBuilder,
    Steps,
    device_variable,
    district_variable,
    gauge_bars,
    timeseries,
    town_dashboard,
)

MEASUREMENTS = ("water_flow", "water_pressure", "water_tank", "water_quality")
METER_INTERVAL = "5m"  # flow meters, pressure loggers and quality probes report every 5 min
TANK_INTERVAL = "10m"

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


def flow_per_district() -> PanelBuilder:
    return timeseries(
        "Lưu lượng theo phường",
        "Water flowing through the district's metered mains: the sum over flow meters of each "
        "meter's mean flow in the interval.",
        "suffix: m³/h",  # Grafana's flow units stop at L/h and m³/s
        [
            InfluxQL(
                f"""SELECT sum("flow") FROM (SELECT mean("flow_m3h") AS "flow" FROM "water_flow"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id", "district" fill(none))
                WHERE $timeFilter GROUP BY time($__interval), "district" fill(none)"""
            ).alias("$tag_district")
        ],
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


def volume_per_day() -> PanelBuilder:
    used = (
        'SELECT non_negative_difference(last("total_m3")) AS "m3" FROM "water_flow" '
        f"WHERE $timeFilter AND {DEVICE_FILTER} "
        'GROUP BY time($__interval), "district", "device_id" fill(none)'
    )
    return (
        timeseries(
            "Sản lượng nước mỗi ngày",
            "Water delivered per district per local day (Asia/Ho_Chi_Minh): the increase of "
            "every flow meter's totalizer (total_m3), summed; a meter reset is not a negative.",
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
        "Mỹ Hào water supply: flow and pressure per district, reservoirs, water quality.",
        time_from="now-24h",
        variables=[district_variable(MEASUREMENTS), device_variable(MEASUREMENTS)],
        rows=[
            ("Lưu lượng và áp lực", [flow_per_district(), pressure_per_district()]),
            ("Bể chứa", [tank_levels(), tank_levels_now()]),
            ("Sản lượng", [volume_per_day()]),
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
