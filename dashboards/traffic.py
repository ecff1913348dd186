"""Giao thông: volume, speed and occupancy per site and lane, radar speeds, signal status,
plates read, on-street parking."""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import limits
from dashboards.alarms import signal_faults
from dashboards.influxql import DEVICE, DEVICE_FILTER, InfluxQL
from dashboards.panels import (
    COUNT,
    PERCENT,
    QUARTER,
    PanelBuilder,
    Steps,
    device_variable,
    district_variable,
    gauge_bars,
    stat_panel,
    state_timeline,
    timeseries,
    town_dashboard,
)

MEASUREMENTS = (
    "traffic_flow",
    "traffic_vehicle",
    "traffic_signal",
    "traffic_plate",
    "parking_bay",
)
COUNTER_INTERVAL = "1m"  # loop counters report per minute, radars batch a minute of vehicles
PARKING_INTERVAL = "5m"  # a bay report every 5 minutes, changed or not
SPEED = "velocitykmh"

# traffic_signal.mode, as the signal controller profile maps it (docs/canonical-schema.md).
SIGNAL_MODES = {
    0: ("Tắt", "dark-red"),
    1: ("Bình thường", "green"),
    2: ("Nháy vàng", "yellow"),
    3: ("Điều khiển tay", "blue"),
    4: ("Đỏ toàn phần", "red"),
}


def volume() -> PanelBuilder:
    return timeseries(
        "Lưu lượng xe theo điểm đo và làn",
        "Vehicles per hour counted by the inductive loops, per site (device) and lane: "
        "vehicles counted divided by the counting periods they cover.",
        "suffix: xe/h",
        [
            InfluxQL(
                f"""SELECT sum("vehicle_count") / sum("period_s") * 3600 FROM "traffic_flow"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id", "lane" fill(none)"""
            ).alias("$tag_device_id làn $tag_lane")
        ],
        min_interval=COUNTER_INTERVAL,
    )


def loop_speed() -> PanelBuilder:
    return timeseries(
        "Tốc độ trung bình theo điểm đo và làn",
        "Mean speed measured by the loops per site and lane; periods without vehicles (which "
        f"report 0 km/h) are left out. Line: {limits.SPEED_LIMIT_KMH:.0f} km/h urban limit.",
        SPEED,
        [
            InfluxQL(
                f"""SELECT mean("speed_kmh") FROM "traffic_flow"
                WHERE $timeFilter AND {DEVICE_FILTER} AND "vehicle_count" > 0
                GROUP BY time($__interval), "device_id", "lane" fill(none)"""
            ).alias("$tag_device_id làn $tag_lane")
        ],
        steps=((None, "green"), (limits.SPEED_LIMIT_KMH, "red")),
        min_interval=COUNTER_INTERVAL,
    )


def occupancy() -> PanelBuilder:
    return timeseries(
        "Độ chiếm dụng theo điểm đo và làn",
        f"Share of time a vehicle stood over the loop, per site and lane. Above "
        f"{limits.OCCUPANCY_DENSE_PCT:.0f} % traffic is dense, above "
        f"{limits.OCCUPANCY_QUEUE_PCT:.0f} % a queue stands over the loop.",
        PERCENT,
        [
            InfluxQL(
                f"""SELECT mean("occupancy_pct") FROM "traffic_flow"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id", "lane" fill(none)"""
            ).alias("$tag_device_id làn $tag_lane")
        ],
        steps=(
            (None, "green"),
            (limits.OCCUPANCY_DENSE_PCT, "orange"),
            (limits.OCCUPANCY_QUEUE_PCT, "red"),
        ),
        min_interval=COUNTER_INTERVAL,
    )


def radar_speeds() -> PanelBuilder:
    return timeseries(
        "Tốc độ xe đo bằng radar",
        "Per radar: the 85th percentile speed (the speed 85 % of vehicles do not exceed, the "
        "usual basis for a speed limit) and the mean speed of the vehicles it measured.",
        SPEED,
        [
            InfluxQL(
                f"""SELECT percentile("speed_kmh", 85) AS "v85", mean("speed_kmh") AS "trung bình"
                FROM "traffic_vehicle" WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id" fill(none)"""
            ).alias("$tag_device_id $col")
        ],
        steps=((None, "green"), (limits.SPEED_LIMIT_KMH, "red")),
        min_interval=COUNTER_INTERVAL,
    )


def vehicles_by_class() -> PanelBuilder:
    return timeseries(
        "Xe theo loại (radar)",
        "Vehicles the radars measured per interval, by class (motorbike, car, truck, bus) and "
        "direction.",
        COUNT,
        [
            InfluxQL(
                f"""SELECT count("speed_kmh") FROM "traffic_vehicle"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "vehicle_class", "direction" fill(none)"""
            ).alias("$tag_vehicle_class $tag_direction")
        ],
        min_interval=COUNTER_INTERVAL,
        bars=True,
    )


def signal_status() -> PanelBuilder:
    return state_timeline(
        "Trạng thái đèn tín hiệu",
        "Operating mode of each traffic signal controller over time: normal, flashing amber, "
        "manual, all red or off.",
        [
            InfluxQL(
                f"""SELECT last("mode") FROM "traffic_signal" WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id" fill(none)"""
            ).alias("$tag_device_id")
        ],
        SIGNAL_MODES,
    )


def cabinet_doors() -> PanelBuilder:
    return timeseries(
        "Cửa tủ tín hiệu mở",
        "Traffic signal cabinets with the door open in the interval: a crew at work, or a "
        "break-in if nobody is expected.",
        COUNT,
        [
            InfluxQL(
                f"""SELECT sum("open") FROM (SELECT max("door_open") AS "open" FROM "traffic_signal"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id", "district" fill(none))
                WHERE $timeFilter GROUP BY time($__interval), "district" fill(none)"""
            ).alias("$tag_district")
        ],
        min_interval=COUNTER_INTERVAL,
    )


def plates_read() -> PanelBuilder:
    # fill(0): a minute without a recognised plate is a count of 0, not a gap; only counts
    # are shown, the stored plate is a keyed hash and stays out of every panel.
    return timeseries(
        "Biển số đọc được",
        "Licence plates recognised per interval by each ANPR camera (counts only: the plate "
        "itself is stored as a keyed hash and never shown).",
        COUNT,
        [
            InfluxQL(
                f"""SELECT count("plate_hash") FROM "traffic_plate"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id" fill(0)"""
            ).alias("$tag_device_id")
        ],
        min_interval=COUNTER_INTERVAL,
    )


PARKING_STEPS: Steps = ((None, "green"), (limits.PARKING_BUSY_PCT, "orange"), (100, "red"))


def parking_occupancy() -> PanelBuilder:
    return timeseries(
        "Tỷ lệ chỗ đỗ có xe theo phường",
        "Share of the district's on-street parking bays with a vehicle on them: the mean of "
        "the bay reports' occupied flag in the interval (a sensor in fault reports no "
        f"occupancy and is left out). Above {limits.PARKING_BUSY_PCT:.0f} % drivers circle "
        "to find a bay.",
        PERCENT,
        [
            InfluxQL(
                f"""SELECT mean("occupied") * 100 FROM "parking_bay"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "district" fill(none)"""
            ).alias("$tag_district")
        ],
        steps=PARKING_STEPS,
        min_interval=PARKING_INTERVAL,
    )


def parking_now() -> PanelBuilder:
    return gauge_bars(
        "Chỗ đỗ đang có xe",
        "Per district, the share of parking bays whose last known occupancy in the range is "
        "taken (a sensor in fault keeps the occupancy it reported before the fault).",
        PERCENT,
        [
            InfluxQL(
                f"""SELECT mean("occupied") * 100 FROM (SELECT last("occupied") AS "occupied"
                FROM "parking_bay" WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY "district", "device_id") GROUP BY "district" """
            ).alias("$tag_district")
        ],
        steps=PARKING_STEPS,
        max_value=100,
        width=QUARTER,
    )


def parking_bays() -> PanelBuilder:
    return stat_panel(
        "Chỗ đỗ trống / cảm biến lỗi",
        "Bays whose last known occupancy in the range is free, and bay sensors whose last "
        "bay report flags a magnetometer fault (occupancy unknown until it clears).",
        COUNT,
        [
            InfluxQL(
                f"""SELECT count("occupied") - sum("occupied") AS "chỗ trống",
                sum("fault") AS "cảm biến lỗi" FROM (SELECT last("occupied") AS "occupied",
                last("sensor_fault") AS "fault" FROM "parking_bay"
                WHERE $timeFilter AND {DEVICE_FILTER} GROUP BY "device_id")"""
            ).alias("$col")
        ],
        steps=((None, "blue"),),
        width=QUARTER,
    )


def parking_arrivals() -> PanelBuilder:
    return timeseries(
        "Lượt xe vào chỗ đỗ theo phường",
        "Vehicles that arrived on the district's parking bays per interval: the increase of "
        "every bay's arrival counter, summed (the counter wraps at 65536; the interval it "
        "wraps in counts nothing rather than a negative).",
        COUNT,
        [
            InfluxQL(
                f"""SELECT sum("arrivals") FROM (SELECT non_negative_difference(
                last("vehicle_arrivals")) AS "arrivals" FROM "parking_bay"
                WHERE $timeFilter AND {DEVICE_FILTER}
                GROUP BY time($__interval), "device_id", "district" fill(none))
                WHERE $timeFilter GROUP BY time($__interval), "district" fill(0)"""
            ).alias("$tag_district")
        ],
        min_interval=PARKING_INTERVAL,
        bars=True,
    )


def build() -> Dashboard:
    return town_dashboard(
        "mh-traffic",
        "Giao thông",
        "Mỹ Hào traffic: loop counts, speeds and occupancy, radar speeds, signal controllers,"
        " plates read, on-street parking.",
        time_from="now-6h",
        variables=[district_variable(MEASUREMENTS), device_variable(MEASUREMENTS)],
        rows=[
            ("Đếm xe bằng vòng từ", [volume(), loop_speed()]),
            ("Độ chiếm dụng và radar", [occupancy(), radar_speeds()]),
            ("Loại xe và đèn tín hiệu", [vehicles_by_class(), signal_status()]),
            ("Tủ tín hiệu", [signal_faults(f" AND {DEVICE}", width=QUARTER), cabinet_doors()]),
            ("Bãi đỗ xe", [parking_occupancy(), parking_now(), parking_bays()]),
            ("Biển số và lượt xe vào chỗ đỗ", [plates_read(), parking_arrivals()]),
        ],
    )
