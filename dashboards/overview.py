"""Tổng quan đô thị: is every domain reporting, how much data flows, and what is in alarm now."""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.alarms import (
    gauges_above_alarm,
    lamps_in_fault,
    low_pressure_points,
    quality_exceedances,
    signal_faults,
    sites_on_battery,
    stale_devices,
    stations_over_pm25_limit,
)
from dashboards.influxql import DISTRICT, InfluxQL
from dashboards.panels import (
    COUNT,
    FULL,
    HALF,
    THIRD,
    PanelBuilder,
    district_variable,
    stat_panel,
    timeseries,
    town_dashboard,
)


@dataclass(frozen=True, slots=True)
class Kind:
    """Devices of one kind: the measurements they write, a field every report carries, and
    how recent a report must be to count as reporting (three reporting intervals, the
    gateway's default `stale_after_intervals`, rounded up)."""

    measurements: tuple[str, ...]
    field: str
    window: str


DOMAINS: dict[str, tuple[str, tuple[Kind, ...]]] = {
    "lighting": (
        "Chiếu sáng",
        (
            # LoRaWAN lights send every 10 minutes, the JSON controllers every minute: one
            # measurement has one window, the slower kind's.
            Kind(("streetlight",), "power_w", "30m"),
            Kind(("lighting_cabinet",), "power_w", "45m"),
        ),
    ),
    "water": (
        "Cấp nước",
        (
            Kind(("water_flow", "water_pressure"), "pressure_bar", "15m"),
            Kind(("water_tank",), "level_m", "30m"),
            Kind(("water_quality",), "ph", "15m"),
            # Every uplink carries the radio fields, whatever frame it is.
            Kind(("water_meter",), "rssi_dbm", "90m"),
            Kind(("river_level",), "rssi_dbm", "30m"),
        ),
    ),
    "traffic": (
        "Giao thông",
        (
            Kind(("traffic_flow",), "vehicle_count", "5m"),
            # A radar batch carries the vehicles of the minute before it was sent.
            Kind(("traffic_vehicle",), "speed_kmh", "5m"),
            Kind(("traffic_signal",), "mode", "5m"),
            Kind(("parking_bay",), "rssi_dbm", "15m"),
        ),
    ),
    "connectivity": (
        "Kết nối",
        (
            # packet_loss_pct is the one field a failed speed test still reports.
            Kind(("broadband_speed",), "packet_loss_pct", "45m"),
            Kind(("connectivity_site",), "battery_v", "15m"),
        ),
    ),
    "environment": (
        "Môi trường",
        (Kind(("air_quality",), "pressure_hpa", "45m"),),
    ),
}
MEASUREMENTS = tuple(
    m for _, kinds in DOMAINS.values() for kind in kinds for m in kind.measurements
)


def devices_reporting(kinds: Sequence[Kind]) -> str:
    """Per measurement: devices with a report in the last window, and devices seen in the
    dashboard's range (the fleet that should be reporting). InfluxQL keeps each measurement
    a series of its own, so a domain shows one pair of numbers per device kind."""
    sources = []
    for kind in kinds:
        names = ", ".join(f'"{m}"' for m in kind.measurements)
        last = f'last("{kind.field}")'
        group = 'GROUP BY "device_id"'
        sources.append(
            f'(SELECT {last} AS "seen" FROM {names} WHERE $timeFilter AND {DISTRICT} {group})'
        )
        recent = f"time > now() - {kind.window}"
        sources.append(
            f'(SELECT {last} AS "now" FROM {names} WHERE {recent} AND {DISTRICT} {group})'
        )
    return (
        'SELECT count("now") AS "đang báo cáo", count("seen") AS "trong khoảng thời gian" '
        f"FROM {', '.join(sources)}"
    )


def _domain_panel(domain: str) -> PanelBuilder:
    title, kinds = DOMAINS[domain]
    windows = ", ".join(f"{'/'.join(k.measurements)} {k.window}" for k in kinds)
    return stat_panel(
        f"{title}: thiết bị đang báo cáo",
        f"{domain.capitalize()} devices that reported recently ({windows}: three reporting "
        "intervals) next to the devices seen in the selected time range, per device kind "
        "(measurement). Fewer reporting than seen means devices went silent.",
        COUNT,
        [InfluxQL(devices_reporting(kinds)).alias("$m: $col")],
        width=THIRD,  # five domains: three panels a line
    )


def readings_per_minute() -> PanelBuilder:
    return timeseries(
        "Số bản ghi mỗi phút theo lĩnh vực",
        "Readings written to InfluxDB per minute, per domain, from the gateway's own counters "
        "(gateway_counters, kind points_written). Not filtered by district.",
        "cpm",
        [
            InfluxQL(
                """SELECT non_negative_derivative(last("value"), 1m) FROM "gateway_counters"
                WHERE "kind" = 'points_written' AND "domain" != 'gateway' AND $timeFilter
                GROUP BY time($__interval), "domain", "instance" fill(none)"""
            ).alias("$tag_domain ($tag_instance)")
        ],
        width=FULL,
    )


_DEVICE_READINGS = (
    'SELECT non_negative_difference(last("value")) AS "n" FROM "gateway_counters" '
    "WHERE \"kind\" = 'points_written' AND \"domain\" != 'gateway' AND $timeFilter "
    'GROUP BY time(1m), "instance", "domain" fill(none)'
)


def readings_in_range() -> PanelBuilder:
    """Per domain and their total from one source, so the numbers add up."""
    return stat_panel(
        "Bản ghi đã lưu trong khoảng thời gian",
        "Device readings written to InfluxDB in the selected range, per domain and in total "
        "(the gateway's counters, its own figures left out; not filtered by district).",
        COUNT,
        [
            InfluxQL(f'SELECT sum("n") FROM ({_DEVICE_READINGS}) GROUP BY "domain"').alias(
                "$tag_domain"
            ),
            InfluxQL(f'SELECT sum("n") FROM ({_DEVICE_READINGS})').ref_id("B").alias("tổng"),
        ],
        width=HALF,
    )


def town_devices() -> PanelBuilder:
    return stat_panel(
        "Thiết bị toàn thị xã",
        "Devices the gateways know (their liveness trackers, every profile with an expected "
        "interval) and how many of them are silent, summed over gateways: the town's total, "
        "not filtered by district.",
        COUNT,
        [
            InfluxQL(
                """SELECT sum("tracked") AS "theo dõi", sum("stale") AS "im lặng" FROM
                (SELECT last("devices_tracked") AS "tracked", last("devices_stale") AS "stale"
                FROM "gateway_health" WHERE $timeFilter GROUP BY "instance")"""
            )
        ],
        width=HALF,
    )


def build() -> Dashboard:
    alarms = [
        lamps_in_fault(),
        low_pressure_points(),
        quality_exceedances(),
        signal_faults(),
        sites_on_battery(),
        gauges_above_alarm(levels=1),
        stations_over_pm25_limit(),
        stale_devices(),
    ]
    return town_dashboard(
        "mh-overview",
        "Tổng quan đô thị",
        "Mỹ Hào town overview: devices reporting per domain, data flow and active alarms.",
        time_from="now-6h",
        variables=[district_variable(MEASUREMENTS)],
        rows=[
            ("Thiết bị đang báo cáo", [_domain_panel(domain) for domain in DOMAINS]),
            ("Toàn thị xã", [town_devices(), readings_in_range()]),
            ("Luồng dữ liệu", [readings_per_minute()]),
            ("Cảnh báo đang hoạt động", alarms),
        ],
    )
