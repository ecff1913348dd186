"""Sức khỏe gateway: the gateway's own figures, as gateway/operations/figures.py writes them.

`gateway_health` holds one point per interval with every counter and gauge as a field;
`gateway_counters` holds the counters split by profile, domain or reason (field `value`, tag
`kind`). Counters restart at 0 with the gateway: `non_negative_derivative` and
`non_negative_difference` turn them into rates and skip the drop at a restart.
"""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import limits
from dashboards.influxql import INSTANCE, InfluxQL
from dashboards.panels import (
    COUNT,
    FULL,
    HALF,
    QUARTER,
    PanelBuilder,
    instance_variable,
    stat_panel,
    timeseries,
    town_dashboard,
)

HEALTH = '"gateway_health"'
COUNTERS = '"gateway_counters"'
SELF_METRICS_INTERVAL = "10s"  # [monitoring] interval_s default
PER_SECOND = "cps"
PER_MINUTE = "cpm"


def _health(select: str) -> str:
    return (
        f"SELECT {select} FROM {HEALTH} WHERE $timeFilter AND {INSTANCE} "
        'GROUP BY time($__interval), "instance" fill(none)'
    )


def _rate_per_s(field: str, alias: str) -> str:
    return f'non_negative_derivative(last("{field}"), 1s) AS "{alias}"'


def _increase(field: str, alias: str) -> str:
    return f'non_negative_difference(last("{field}")) AS "{alias}"'


def _by_label(kind: str, label: str) -> str:
    return (
        f'SELECT non_negative_derivative(last("value"), 1m) FROM {COUNTERS} '
        f"WHERE \"kind\" = '{kind}' AND $timeFilter AND {INSTANCE} "
        f'GROUP BY time($__interval), "instance", "{label}" fill(none)'
    )


def _series(title: str, description: str, unit: str, query: str, alias: str) -> PanelBuilder:
    return timeseries(
        title, description, unit, [InfluxQL(query).alias(alias)], min_interval=SELF_METRICS_INTERVAL
    )


def messages_in() -> PanelBuilder:
    return _series(
        "Bản tin MQTT mỗi giây",
        "MQTT messages received per second, and acknowledged to the broker once durable "
        "(written, spooled or kept as dead letters).",
        PER_SECOND,
        _health(
            _rate_per_s("messages_received", "nhận")
            + ", "
            + _rate_per_s("messages_acked", "đã xác nhận")
        ),
        "$tag_instance $col",
    )


def points_out() -> PanelBuilder:
    return _series(
        "Điểm dữ liệu ghi mỗi giây",
        "Points built from readings and points InfluxDB accepted, per second (the gateway's "
        "own self-metrics points included).",
        PER_SECOND,
        _health(
            _rate_per_s("points_produced", "tạo ra")
            + ", "
            + _rate_per_s("points_written", "đã ghi")
        ),
        "$tag_instance $col",
    )


def _by_reason(kind: str, title: str, description: str) -> PanelBuilder:
    """Per reason from gateway_counters, and the total from gateway_health: a reason appears
    only once it happened, the total is there from the start, so a healthy gateway shows a
    line at 0 instead of "No data"."""
    total = _health(f'non_negative_derivative(last("{kind}"), 1m) AS "tổng"')
    return timeseries(
        title,
        description,
        PER_MINUTE,
        [
            InfluxQL(_by_label(kind, "reason")).alias("$tag_reason ($tag_instance)"),
            InfluxQL(total).ref_id("B").alias("tổng / total ($tag_instance)"),
        ],
        min_interval=SELF_METRICS_INTERVAL,
    )


def dead_letters() -> PanelBuilder:
    return _by_reason(
        "dead_letters",
        "Thư chết theo lý do",
        "Messages kept in the dead-letter store per minute, by reason (invalid_json, "
        "no_profile, ...), and their total (0 on a healthy gateway). `gateway deadletter list` "
        "shows them.",
    )


def dropped_fields() -> PanelBuilder:
    return _by_reason(
        "fields_dropped",
        "Trường dữ liệu bị loại theo lý do",
        "Reading fields dropped per minute, by reason (out_of_range, wrong type, missing, ...), "
        "and their total: the rest of each reading was kept.",
    )


def spool_depth() -> PanelBuilder:
    return _series(
        "Độ sâu spool",
        "Points and batches waiting in the disk spool for InfluxDB to take them; 0 while "
        "InfluxDB keeps up.",
        COUNT,
        _health('last("spool_points") AS "điểm", last("spool_batches") AS "lô"'),
        "$tag_instance $col",
    )


def spool_age() -> PanelBuilder:
    return timeseries(
        "Tuổi lô cũ nhất trong spool",
        "Age of the oldest spooled batch: how long InfluxDB has not taken the data (0 when the "
        "spool is empty).",
        "s",
        [InfluxQL(_health('max("spool_oldest_age_seconds") AS "tuổi"')).alias("$tag_instance")],
        steps=((None, "green"), (limits.SPOOL_OLDEST_WARN_S, "red")),
        min_interval=SELF_METRICS_INTERVAL,
    )


def write_latency() -> PanelBuilder:
    mean = (
        'non_negative_derivative(last("write_latency_seconds_sum"), 1s) / '
        'non_negative_derivative(last("write_latency_seconds_count"), 1s) AS "trung bình"'
    )
    return timeseries(
        "Độ trễ ghi InfluxDB",
        "Mean duration of the successful write requests in the interval, and the slowest "
        "write since the gateway started.",
        "s",
        [
            InfluxQL(_health(mean)).ref_id("A").alias("$tag_instance $col"),
            InfluxQL(_health('max("write_latency_max_seconds") AS "chậm nhất"'))
            .ref_id("B")
            .alias("$tag_instance $col"),
        ],
        min_interval=SELF_METRICS_INTERVAL,
    )


def write_trouble() -> PanelBuilder:
    fields = [
        _increase("write_failures", "ghi lỗi"),
        _increase("write_retries", "ghi lại"),
        _increase("lines_rejected", "dòng bị từ chối"),
        _increase("mqtt_reconnects", "mất kết nối MQTT"),
    ]
    return _series(
        "Lỗi ghi và kết nối lại",
        "Per interval: failed InfluxDB write attempts, retried writes, lines InfluxDB refused "
        "for good, and MQTT connections lost (the gateway reconnects by itself).",
        COUNT,
        _health(", ".join(fields)),
        "$tag_instance $col",
    )


def intake_paused() -> PanelBuilder:
    return _series(
        "Thời gian tạm dừng nhận bản tin",
        "Seconds per interval the gateway stopped reading MQTT because max_pending batches "
        "waited for the writer (slow InfluxDB, spool or disk full); the broker holds the "
        "messages meanwhile. 0 while the writer keeps up.",
        "s",
        _health(_increase("intake_paused_seconds", "tạm dừng")),
        "$tag_instance $col",
    )


def engine_lines_dropped() -> PanelBuilder:
    return _series(
        "Dòng bị VictoriaMetrics bỏ qua",
        "Lines per interval a VictoriaMetrics engine answered 204 for and dropped unparsed "
        "(its invalid rows); always 0 on InfluxDB, which refuses bad lines instead.",
        COUNT,
        _health(_increase("engine_lines_dropped", "bị bỏ")),
        "$tag_instance $col",
    )


def stale_devices() -> PanelBuilder:
    return _series(
        "Thiết bị im lặng",
        "Devices the liveness tracker knows, and those silent for longer than "
        "stale_after_intervals reporting intervals or offline (`/devices/stale` lists them).",
        COUNT,
        _health('last("devices_stale") AS "im lặng", last("devices_tracked") AS "theo dõi"'),
        "$tag_instance $col",
    )


def per_profile() -> PanelBuilder:
    return timeseries(
        "Bản tin theo hồ sơ thiết bị",
        "MQTT messages per minute for each device profile (gateway_counters, kind "
        "profile_messages): a profile going quiet means its devices, or their topic, changed.",
        PER_MINUTE,
        [InfluxQL(_by_label("profile_messages", "profile")).alias("$tag_profile ($tag_instance)")],
        min_interval=SELF_METRICS_INTERVAL,
        width=HALF,  # next to the silent devices: a full width would run off the 24-column grid
    )


def status() -> PanelBuilder:
    return stat_panel(
        "Trạng thái hiện tại",
        "Last reported flags: connected to the broker, last InfluxDB write succeeded (1 = "
        "yes), spool full (intake paused) and InfluxDB refusing the credentials (1 = alarm).",
        "none",
        [
            InfluxQL(
                f"""SELECT last("mqtt_connected") AS "MQTT", last("influx_writable") AS "InfluxDB",
                last("spool_full") AS "spool đầy", last("influx_auth_failing") AS "sai mật khẩu"
                FROM {HEALTH} WHERE $timeFilter AND {INSTANCE} GROUP BY "instance" """
            ).alias("$tag_instance $col")
        ],
        steps=((None, "blue"),),
        width=FULL - QUARTER,
    )


def uptime() -> PanelBuilder:
    return stat_panel(
        "Thời gian chạy",
        "Time since each gateway process started; a small value means it restarted.",
        "s",
        [
            InfluxQL(
                f"""SELECT last("uptime_seconds") AS "đã chạy" FROM {HEALTH}
                WHERE $timeFilter AND {INSTANCE} GROUP BY "instance" """
            ).alias("$tag_instance")
        ],
        steps=((None, "orange"), (3600, "green")),
        width=QUARTER,
    )


def build() -> Dashboard:
    return town_dashboard(
        "mh-gateway-health",
        "Sức khỏe gateway",
        "The MQTT to InfluxDB gateway itself: throughput, dead letters, spool, write latency.",
        time_from="now-3h",
        variables=[instance_variable()],
        rows=[
            ("Trạng thái", [status(), uptime()]),
            ("Thông lượng", [messages_in(), points_out()]),
            ("Dữ liệu bị từ chối", [dead_letters(), dropped_fields()]),
            ("Bộ đệm đĩa (spool)", [spool_depth(), spool_age()]),
            ("Ghi InfluxDB và MQTT", [write_latency(), write_trouble()]),
            ("Tạm dừng nhận và dòng bị bỏ", [intake_paused(), engine_lines_dropped()]),
            ("Thiết bị và hồ sơ", [stale_devices(), per_profile()]),
        ],
    )
