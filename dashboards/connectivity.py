"""Kết nối: measured broadband speeds against the 2025 targets, and the telecom sites' power."""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import limits
from dashboards.alarms import sites_on_battery
from dashboards.influxql import DEVICE, DEVICE_FILTER, InfluxQL, at_least
from dashboards.panels import (
    PERCENT,
    QUARTER,
    PanelBuilder,
    Steps,
    device_variable,
    district_variable,
    stat_panel,
    state_timeline,
    timeseries,
    town_dashboard,
)

MEASUREMENTS = ("broadband_speed", "connectivity_site")
PROBE_INTERVAL = "15m"  # one speed test per probe every 15 minutes
SITE_INTERVAL = "5m"
SPEED = "Mbits"


def _technologies(names: Sequence[str]) -> str:
    return '"technology" =~ /^(' + "|".join(names) + ")$/"


def _speed_steps(target: float) -> Steps:
    return ((None, "red"), (target, "green"))


def download_speed(
    title: str, label: str, technologies: Sequence[str], target: float
) -> PanelBuilder:
    return timeseries(
        title,
        f"Mean measured {label} download speed per access technology and operator. Line: the "
        f"2025 target of {target:.0f} Mb/s.",
        SPEED,
        [
            InfluxQL(
                f"""SELECT mean("download_mbps") FROM "broadband_speed"
                WHERE $timeFilter AND {DEVICE_FILTER} AND {_technologies(technologies)}
                GROUP BY time($__interval), "technology", "operator" fill(none)"""
            ).alias("$tag_technology $tag_operator")
        ],
        steps=_speed_steps(target),
        min_interval=PROBE_INTERVAL,
    )


def share_meeting_target_query(technologies: Sequence[str], target: float) -> str:
    """Share of probes whose mean download speed over the range reaches the target."""
    meets = at_least('mean("download_mbps")', target)
    return (
        f'SELECT mean("meets") * 100 FROM (SELECT {meets} AS "meets" FROM "broadband_speed" '
        f"WHERE $timeFilter AND {DEVICE_FILTER} AND {_technologies(technologies)} "
        'GROUP BY "device_id")'
    )


def share_meeting_targets() -> PanelBuilder:
    mobile, fixed = limits.MOBILE_TARGET_MBPS, limits.FIXED_TARGET_MBPS
    return stat_panel(
        "Tỷ lệ đầu đo đạt mục tiêu",
        f"Share of speed-test probes whose mean download speed over the range reaches the 2025 "
        f"target: {mobile:.0f} Mb/s on mobile (4G, 5G), {fixed:.0f} Mb/s on fixed (FTTH).",
        PERCENT,
        [
            InfluxQL(share_meeting_target_query(limits.MOBILE_TECHNOLOGIES, mobile))
            .ref_id("A")
            .alias("Di động"),
            InfluxQL(share_meeting_target_query(limits.FIXED_TECHNOLOGIES, fixed))
            .ref_id("B")
            .alias("Cố định"),
        ],
        steps=((None, "red"), (50, "orange"), (90, "green")),
        width=QUARTER,
    )


def latency() -> PanelBuilder:
    return timeseries(
        "Độ trễ",
        "Mean round-trip latency of the speed tests per access technology and operator.",
        "ms",
        [
            InfluxQL(
                f"""SELECT mean("latency_ms") FROM "broadband_speed"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "technology", "operator" fill(none)"""
            ).alias("$tag_technology $tag_operator")
        ],
        min_interval=PROBE_INTERVAL,
    )


def battery_voltage() -> PanelBuilder:
    return timeseries(
        "Điện áp ắc quy trạm",
        f"Voltage of each telecom site's 48 V battery string: about 54 V floating on mains, "
        f"falling while the site runs on battery ({limits.BATTERY_LOW_V:.0f} V is roughly 20 % "
        "charge left).",
        "volt",
        [
            InfluxQL(
                f"""SELECT mean("battery_v") FROM "connectivity_site"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "district", "device_id" fill(none)"""
            ).alias("$tag_device_id ($tag_district)")
        ],
        steps=((None, "red"), (limits.BATTERY_LOW_V, "orange"), (limits.BATTERY_WARN_V, "green")),
        min_interval=SITE_INTERVAL,
    )


def mains_status() -> PanelBuilder:
    return state_timeline(
        "Điện lưới tại trạm",
        "Whether each telecom site has mains power (green) or runs on its battery (red).",
        [
            InfluxQL(
                f"""SELECT last("mains_present") FROM "connectivity_site"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id" fill(none)"""
            ).alias("$tag_device_id")
        ],
        {0: ("Chạy ắc quy", "red"), 1: ("Có điện lưới", "green")},
    )


def lowest_charge() -> PanelBuilder:
    return stat_panel(
        "Dung lượng ắc quy thấp nhất",
        "Lowest battery state of charge reported by any telecom site in the range.",
        PERCENT,
        [
            InfluxQL(
                f"""SELECT min("battery_pct") AS "thấp nhất" FROM "connectivity_site"
                WHERE $timeFilter AND {DEVICE_FILTER}"""
            )
        ],
        steps=((None, "red"), (30, "orange"), (60, "green")),
        width=QUARTER,
    )


def build() -> Dashboard:
    return town_dashboard(
        "mh-connectivity",
        "Kết nối",
        "Mỹ Hào connectivity: broadband speed tests against the 2025 targets, telecom site power.",
        time_from="now-7d",
        variables=[district_variable(MEASUREMENTS), device_variable(MEASUREMENTS)],
        rows=[
            (
                "Tốc độ băng rộng",
                [
                    download_speed(
                        "Tốc độ tải xuống di động",
                        "mobile (4G, 5G)",
                        limits.MOBILE_TECHNOLOGIES,
                        limits.MOBILE_TARGET_MBPS,
                    ),
                    download_speed(
                        "Tốc độ tải xuống cố định",
                        "fixed (FTTH)",
                        limits.FIXED_TECHNOLOGIES,
                        limits.FIXED_TARGET_MBPS,
                    ),
                ],
            ),
            ("Mục tiêu và độ trễ", [share_meeting_targets(), latency()]),
            (
                "Nguồn điện trạm viễn thông",
                [
                    sites_on_battery(f" AND {DEVICE}", width=QUARTER),
                    lowest_charge(),
                    battery_voltage(),
                    mains_status(),
                ],
            ),
        ],
    )
