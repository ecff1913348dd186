"""Môi trường: fine dust against the air-quality limit, weather at the roadside stations,
river and canal levels against the flood alarm levels, and salt water pushed up on the tide."""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import limits
from dashboards.alarms import gauges_above_alarm
from dashboards.influxql import DEVICE, DEVICE_FILTER, InfluxQL
from dashboards.panels import (
    FULL,
    QUARTER,
    THIRD,
    PanelBuilder,
    Steps,
    device_variable,
    district_variable,
    gauge_bars,
    timeseries,
    town_dashboard,
)

MEASUREMENTS = ("air_quality", "river_level")
AIR_INTERVAL = "15m"  # air stations report every 15 minutes
RIVER_INTERVAL = "10m"  # river probes every 10 minutes
CONDUCTIVITY_INTERVAL = "30m"  # conductivity comes with every third report
PM25 = "suffix: µg/m³"

_AQI_COLOURS = ("yellow", "orange", "red", "purple")
PM25_STEPS: Steps = (
    (None, "green"),
    *zip(limits.PM25_AQI_BANDS_UGM3, _AQI_COLOURS, strict=True),
)
RIVER_STEPS: Steps = (
    (None, "green"),
    *zip(limits.RIVER_ALARM_M, ("yellow", "orange", "red"), strict=True),
)
_BANDS = ", ".join(f"{band:.0f}" for band in limits.PM25_AQI_BANDS_UGM3)
_ALARMS = ", ".join(f"{level} m" for level in limits.RIVER_ALARM_M)


def mean_per_device(measurement: str, field: str) -> InfluxQL:
    return InfluxQL(
        f"""SELECT mean("{field}") FROM "{measurement}" WHERE $timeFilter AND {DEVICE_FILTER}
        GROUP BY time($__interval), "district", "device_id" fill(none)"""
    ).alias("$tag_device_id ($tag_district)")


def pm25_per_district() -> PanelBuilder:
    return timeseries(
        "Bụi mịn PM2.5 theo phường",
        "Mean PM2.5 measured by the district's roadside air stations. Lines at the VN_AQI "
        f"bands of Decision 1459/QD-TCMT ({_BANDS} µg/m³: good, moderate, poor, bad, very "
        f"bad); {limits.PM25_DAY_LIMIT_UGM3:.0f} µg/m³ is also the QCVN 05:2023/BTNMT limit "
        "for a 24-hour mean.",
        PM25,
        [
            InfluxQL(
                f"""SELECT mean("pm25_ugm3") FROM "air_quality"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "district" fill(none)"""
            ).alias("$tag_district")
        ],
        steps=PM25_STEPS,
        min_interval=AIR_INTERVAL,
    )


def pm25_day_mean() -> PanelBuilder:
    return (
        gauge_bars(
            "PM2.5 trung bình 24 giờ",
            "Each air station's mean PM2.5 over the last 24 hours (whatever the dashboard's "
            "range), the quantity QCVN 05:2023/BTNMT limits to "
            f"{limits.PM25_DAY_LIMIT_UGM3:.0f} µg/m³.",
            PM25,
            [
                InfluxQL(
                    f"""SELECT mean("pm25_ugm3") FROM "air_quality"
                    WHERE $timeFilter AND {DEVICE_FILTER} GROUP BY "district", "device_id" """
                ).alias("$tag_device_id ($tag_district)")
            ],
            steps=PM25_STEPS,
            max_value=2 * limits.PM25_DAY_LIMIT_UGM3,
        )
        .time_from("24h")
        .hide_time_override(False)
    )


def _station_panel(title: str, description: str, unit: str, field: str) -> PanelBuilder:
    return timeseries(
        title,
        description,
        unit,
        [mean_per_device("air_quality", field)],
        min_interval=AIR_INTERVAL,
        width=THIRD,
    )


def weather_panels() -> list[PanelBuilder]:
    return [
        _station_panel(
            "Nồng độ CO2",
            "Carbon dioxide at each roadside station: it follows the traffic, rising at the "
            "morning and evening rush (a station warming up after a power cut sends none).",
            "ppm",
            "co2_ppm",
        ),
        _station_panel(
            "Nhiệt độ không khí",
            "Air temperature at each roadside station.",
            "celsius",
            "temperature_c",
        ),
        _station_panel(
            "Độ ẩm không khí",
            "Relative humidity at each roadside station.",
            "humidity",
            "humidity_pct",
        ),
    ]


def river_levels() -> PanelBuilder:
    return timeseries(
        "Mực nước sông, kênh",
        "Water level above each gauge's zero, following the tide. Lines at the town's working "
        f"flood alarm levels I, II and III ({_ALARMS}), the same for every gauge until they "
        "are set per gauge.",
        "lengthm",
        [mean_per_device("river_level", "level_m")],
        steps=RIVER_STEPS,
        min_interval=RIVER_INTERVAL,
    )


def river_levels_now() -> PanelBuilder:
    return gauge_bars(
        "Mực nước sông hiện tại",
        f"Last reported water level of each gauge in the range, coloured by the alarm level "
        f"it reached ({_ALARMS}); the bar ends at the top of the staff gauge.",
        "lengthm",
        [
            InfluxQL(
                f"""SELECT last("level_m") FROM "river_level" WHERE $timeFilter
                AND {DEVICE_FILTER} GROUP BY "district", "device_id" """
            ).alias("$tag_device_id ($tag_district)")
        ],
        steps=RIVER_STEPS,
        max_value=limits.RIVER_GAUGE_TOP_M,
    )


def river_conductivity() -> PanelBuilder:
    return timeseries(
        "Độ dẫn điện nước sông",
        "Electrical conductivity of the river water at each gauge: a rise on the flood tide "
        "means salt water pushed up the river, to watch before opening an irrigation intake.",
        "suffix: µS/cm",
        [mean_per_device("river_level", "conductivity_uscm")],
        min_interval=CONDUCTIVITY_INTERVAL,
        width=FULL - QUARTER,  # next to the alarm counter
    )


def build() -> Dashboard:
    return town_dashboard(
        "mh-environment",
        "Môi trường",
        "Mỹ Hào environment: fine dust and weather at the roadside air stations, river and "
        "canal levels against the flood alarm levels.",
        time_from="now-24h",
        variables=[district_variable(MEASUREMENTS), device_variable(MEASUREMENTS)],
        rows=[
            ("Bụi mịn PM2.5", [pm25_per_district(), pm25_day_mean()]),
            ("CO2, nhiệt độ và độ ẩm", weather_panels()),
            ("Mực nước sông, kênh", [river_levels(), river_levels_now()]),
            (
                "Cảnh báo lũ và xâm nhập mặn",
                [gauges_above_alarm(f" AND {DEVICE}", width=QUARTER), river_conductivity()],
            ),
        ],
    )
