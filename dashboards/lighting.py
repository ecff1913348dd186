"""Chiếu sáng: lamps on and off, power and energy per district, faults, lamps lit by day."""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard, DataTransformerConfig

from dashboards import limits
from dashboards.alarms import lamps_in_fault
from dashboards.influxql import DEVICE, DEVICE_FILTER, InfluxQL, nonzero
from dashboards.panels import (
    COUNT,
    PERCENT,
    QUARTER,
    TIMEZONE,
    PanelBuilder,
    device_variable,
    district_variable,
    stat_panel,
    table,
    timeseries,
    town_dashboard,
)

MEASUREMENTS = ("streetlight", "lighting_cabinet")
REPORT_INTERVAL = "1m"  # controllers report every minute
LORAWAN_INTERVAL = "10m"  # LoRaWAN lights send an uplink every 10 minutes (duty cycle)


def lamps_on_off() -> PanelBuilder:
    return stat_panel(
        "Đèn đang sáng / tắt",
        "Street lights whose last report in the range says lit (lamp_on = 1) or dark.",
        COUNT,
        [
            InfluxQL(
                f"""SELECT sum("lit") AS "đang sáng", count("lit") - sum("lit") AS "đang tắt"
                FROM (SELECT last("lamp_on") AS "lit" FROM "streetlight"
                WHERE $timeFilter AND {DEVICE_FILTER} GROUP BY "device_id")"""
            )
        ],
        steps=[(None, "blue")],
        width=QUARTER,
    )


def power_per_district() -> PanelBuilder:
    return timeseries(
        "Công suất chiếu sáng theo phường",
        "Electrical power drawn by the street lights of each district: the sum over lamps of "
        "each lamp's mean power in the interval.",
        "watt",
        [
            InfluxQL(
                f"""SELECT sum("power") FROM (SELECT mean("power_w") AS "power" FROM "streetlight"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id", "district" fill(none))
                WHERE $timeFilter GROUP BY time($__interval), "district" fill(none)"""
            ).alias("$tag_district")
        ],
        min_interval=REPORT_INTERVAL,
    )


def energy_per_day() -> PanelBuilder:
    return (
        timeseries(
            "Điện năng tiêu thụ theo ngày",
            "Energy used by the street lights of each district per day: the increase of every "
            "lamp's energy meter (energy_kwh), summed. Days are UTC days, 07:00 to 07:00 local "
            "time, so each holds one whole night.",
            "kwatth",
            [
                InfluxQL(
                    f"""SELECT sum("used") FROM (SELECT non_negative_difference(last("energy_kwh"))
                    AS "used" FROM "streetlight" WHERE $timeFilter AND {DEVICE_FILTER}
                    GROUP BY time($__interval), "device_id", "district" fill(none))
                    WHERE $timeFilter GROUP BY time(1d), "district" fill(none)"""
                ).alias("$tag_district")
            ],
            bars=True,
        )
        .time_from("7d")
        .hide_time_override(False)
    )


def fault_rate() -> PanelBuilder:
    flag = nonzero('max("fault_code")')
    return timeseries(
        "Tỷ lệ đèn lỗi theo phường",
        f"Share of reporting street lights with a non-zero fault code in the interval, per "
        f"district. The alert rule fires above {limits.LAMP_FAULT_RATE_PCT} %.",
        PERCENT,
        [
            InfluxQL(
                f"""SELECT mean("faulty") * 100 FROM (SELECT {flag} AS "faulty"
                FROM "streetlight" WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id", "district" fill(none))
                WHERE $timeFilter GROUP BY time($__interval), "district" fill(none)"""
            ).alias("$tag_district")
        ],
        steps=[(None, "green"), (limits.LAMP_FAULT_RATE_PCT, "red")],
        min_interval=REPORT_INTERVAL,
    )


def faulty_lamps() -> PanelBuilder:
    # The query returns every lamp; the panel keeps the faulty ones, so a healthy district
    # shows an empty table rather than an error.
    keep_faults = DataTransformerConfig(
        id_val="filterByValue",
        options={
            "type": "include",
            "match": "any",
            "filters": [
                {"fieldName": "mã lỗi", "config": {"id": "greater", "options": {"value": 0}}}
            ],
        },
    )
    return table(
        "Danh sách đèn đang lỗi",
        "Street lights whose last report carries a non-zero fault_code, with the district, the "
        "device id and whether the lamp is lit.",
        "none",
        [
            InfluxQL(
                f"""SELECT last("fault_code") AS "mã lỗi", last("lamp_on") AS "đang sáng",
                last("dim_pct") AS "mức sáng %" FROM "streetlight"
                WHERE $timeFilter AND {DEVICE_FILTER} GROUP BY "district", "device_id" """
            ).table()
        ],
        transformations=[keep_faults],
    )


def lit_by_day() -> PanelBuilder:
    # Lit while commanded dark: a stuck relay or a failed photocell, burning energy all day.
    day_burning = 'last("lamp_on") * (1 - ' + nonzero('last("dim_pct")') + ")"
    return timeseries(
        "Đèn sáng ban ngày",
        "Street lights that are lit (lamp_on = 1) while their schedule has them off "
        "(dim_pct = 0), per district: a stuck relay or a failed photocell.",
        COUNT,
        [
            InfluxQL(
                f"""SELECT sum("day_burning") FROM (SELECT {day_burning} AS "day_burning"
                FROM "streetlight" WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id", "district" fill(none))
                WHERE $timeFilter GROUP BY time($__interval), "district" fill(none)"""
            ).alias("$tag_district")
        ],
        steps=[(None, "green"), (1, "orange")],
        min_interval=REPORT_INTERVAL,
    )


def burning_hours_per_day() -> PanelBuilder:
    # The integral of the 0/1 lamp state over each local day, per lamp, then the district's
    # mean: a day with reports for only part of the night counts only the hours reported
    # (mean(lamp_on) * 24 would stretch a 4-hour fragment to a whole day).
    local_day = f"GROUP BY time(1d), {{}} tz('{TIMEZONE}')"
    per_lamp = (
        f'SELECT integral("lamp_on", 1h) AS "lit_h" FROM "streetlight" '
        f"WHERE $timeFilter AND {DEVICE_FILTER} " + local_day.format('"district", "device_id"')
    )
    return (
        timeseries(
            "Số giờ đèn sáng mỗi ngày",
            "Hours a street light of the district was lit per local day (00:00 to 24:00 "
            "Asia/Ho_Chi_Minh): the time integral of each lamp's on/off state, averaged over "
            "the district's lamps.",
            "h",
            [
                InfluxQL(
                    f'SELECT mean("lit_h") FROM ({per_lamp}) '
                    + local_day.format('"district" fill(none)')
                ).alias("$tag_district")
            ],
            bars=True,
        )
        .time_from("7d")
        .hide_time_override(False)
    )


def lorawan_signal(field: str, title: str, what: str, unit: str) -> PanelBuilder:
    return timeseries(
        title,
        f"{what} of each LoRaWAN street light's uplinks at the network's best gateway, as the "
        "network server reports it (ChirpStack rxInfo). Only LoRaWAN lights have it.",
        unit,
        [
            InfluxQL(
                f"""SELECT mean("{field}") FROM "streetlight" WHERE $timeFilter
                AND {DEVICE_FILTER} GROUP BY time($__interval), "device_id" fill(none)"""
            ).alias("$tag_device_id")
        ],
        min_interval=LORAWAN_INTERVAL,
    )


def supply_voltage() -> PanelBuilder:
    return timeseries(
        "Điện áp nguồn",
        "Mean supply voltage measured by the lamp controllers and the lighting cabinets, per "
        "district (230 V nominal).",
        "volt",
        [
            InfluxQL(
                f"""SELECT mean("voltage_v") FROM "streetlight", "lighting_cabinet"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "district" fill(none)"""
            ).alias("$m $tag_district")
        ],
        steps=[(None, "orange"), (207, "green"), (253, "orange")],  # 230 V +/- 10 %
        min_interval=REPORT_INTERVAL,
    )


def build() -> Dashboard:
    return town_dashboard(
        "mh-lighting",
        "Chiếu sáng",
        "Mỹ Hào street lighting: lamps lit, power and energy per district, faults.",
        time_from="now-24h",
        variables=[district_variable(MEASUREMENTS), device_variable(MEASUREMENTS)],
        rows=[
            (
                "Trạng thái đèn",
                [
                    lamps_on_off(),
                    lamps_in_fault(f" AND {DEVICE}", width=QUARTER),
                    fault_rate(),
                ],
            ),
            ("Công suất và điện năng", [power_per_district(), energy_per_day()]),
            ("Lỗi và vận hành", [faulty_lamps(), lit_by_day()]),
            ("Giờ sáng và điện áp", [burning_hours_per_day(), supply_voltage()]),
            (
                "Sóng LoRaWAN",
                [
                    lorawan_signal("rssi_dbm", "Cường độ tín hiệu (RSSI)", "Received power", "dBm"),
                    lorawan_signal("snr_db", "Tỷ số tín hiệu/nhiễu (SNR)", "Signal-to-noise", "dB"),
                ],
            ),
        ],
    )
