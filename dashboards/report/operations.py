"""Figures of the town's services and of the gateway itself: dark lamps, water quality
excursions, the gateway's delivery record. InfluxQL over the report's period, like figures.py.
"""

# ruff: noqa: S608  # InfluxQL built from constants

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator

from dashboards import limits
from dashboards.influxql import nonzero
from dashboards.report.figures import GAP_BUCKET_MIN, Period, RunQuery, percent, rows_of
from dashboards.report.tables import DEVICE, WARD, Cell, Table, columns

# 1 while a lamp is scheduled on (dim above 0) but dark; its integral over time, in hours, is
# the dark-lamp hours (InfluxDB integrates by trapezoids between readings).
_DIM = '"dim_pct"'
_DARK = f'{nonzero(_DIM)} * (1 - "lamp_on")'


def dark_lamps(run: RunQuery, period: Period) -> Table:
    table = Table(
        "dark_lamps",
        "Giờ đèn tắt khi cần sáng",
        "Dark-lamp hours",
        columns(
            WARD,
            ("Số đèn", "Lamps"),
            ("Giờ đèn sáng", "Lamp hours lit"),
            ("Giờ đèn tắt khi cần sáng", "Dark-lamp hours"),
            ("Đèn từng tắt", "Lamps ever dark"),
        ),
        note_vi="Đèn tắt khi cần sáng: mức dim > 0 theo lịch nhưng đèn không sáng.",
        note_en="Dark: scheduled on (dim above 0) but the lamp is off; hours are the time "
        "integral of that state.",
    )
    inner = (
        f'SELECT {_DARK} AS "dark", "lamp_on" AS "lit" FROM "streetlight" WHERE {period.where} '
        'GROUP BY "district", "device_id"'
    )
    query = (
        f'SELECT integral("dark", 1h) AS "dark_h", integral("lit", 1h) AS "lit_h" FROM ({inner}) '
        'GROUP BY "district", "device_id"'
    )
    wards: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0])
    for tags, row in rows_of(run, query):
        ward = wards[tags["district"]]
        ward[0] += 1
        ward[1] += row["lit_h"] or 0.0
        ward[2] += row["dark_h"] or 0.0
        ward[3] += bool(row["dark_h"])
    for name, (lamps, lit, dark, ever) in sorted(wards.items()):
        table.rows.append([name, int(lamps), round(lit, 1), round(dark, 2), int(ever)])
    return table


QUALITY_LIMITS = (
    ("ph", f'"ph" < {limits.PH_MIN} OR "ph" > {limits.PH_MAX}', "pH", "pH"),
    ("turbidity_ntu", f'"turbidity_ntu" > {limits.TURBIDITY_MAX_NTU}', "Độ đục", "Turbidity"),
    (
        "free_chlorine_mgl",
        f'"free_chlorine_mgl" < {limits.CHLORINE_MIN_MGL} '
        f'OR "free_chlorine_mgl" > {limits.CHLORINE_MAX_MGL}',
        "Clo dư",
        "Free chlorine",
    ),
)


def water_quality(run: RunQuery, period: Period) -> Table:
    table = Table(
        "water_quality",
        "Chất lượng nước vượt giới hạn",
        "Water-quality excursions",
        columns(
            WARD,
            DEVICE,
            ("Bản ghi", "Readings"),
            *((f"{vi} ngoài giới hạn", f"{en} outside limits") for _, _, vi, en in QUALITY_LIMITS),
            ("% bản ghi vượt", "% of readings outside any limit"),
        ),
        note_vi=f"Giới hạn QCVN 01-1:2018/BYT: pH {limits.PH_MIN}-{limits.PH_MAX}, độ đục ≤ "
        f"{limits.TURBIDITY_MAX_NTU} NTU, clo dư {limits.CHLORINE_MIN_MGL}-"
        f"{limits.CHLORINE_MAX_MGL} mg/L.",
        note_en="Limits of QCVN 01-1:2018/BYT, the same as the dashboards and alert rules.",
    )
    group = 'GROUP BY "district", "device_id"'
    base = f'FROM "water_quality" WHERE {period.where}'
    figures: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(QUALITY_LIMITS) + 2))
    for tags, row in rows_of(run, f'SELECT count("ph") {base} {group}'):
        figures[tags["district"], tags["device_id"]][0] = row["count"]
    for index, (field, outside, _, _) in enumerate(QUALITY_LIMITS, start=1):
        for tags, row in rows_of(run, f'SELECT count("{field}") {base} AND ({outside}) {group}'):
            figures[tags["district"], tags["device_id"]][index] = row["count"]
    any_outside = " OR ".join(f"({outside})" for _, outside, _, _ in QUALITY_LIMITS)
    for tags, row in rows_of(run, f'SELECT count("ph") {base} AND ({any_outside}) {group}'):
        figures[tags["district"], tags["device_id"]][-1] = row["count"]
    for (ward, device), counts in sorted(figures.items()):
        table.rows.append([ward, device, *counts[:-1], percent(counts[-1], counts[0])])
    return table


# ---- the gateway's delivery record ----------------------------------------------------------


def delivery(run: RunQuery, period: Period) -> tuple[Table, Table, Table]:
    """Points written per domain and dead letters per reason (the gateway's counters), and
    outages: stretches without the gateway's own figures, or with InfluxDB refusing writes."""
    counted = Table(
        "gateway_counts",
        "Gateway: dữ liệu đã lưu và thư chết",
        "Gateway: stored data and dead letters",
        columns(
            ("Gateway", "Instance"),
            ("Loại", "Counter"),
            ("Nhóm", "Domain or reason"),
            ("Số lượng", "Count"),
        ),
    )
    for kind, label in (("points_written", "domain"), ("dead_letters", "reason")):
        for tags, row in _increases(run, period, kind, label):
            counted.rows.append([tags["instance"], kind, tags.get(label, ""), int(row["sum"])])
    outages = Table(
        "gateway_outages",
        "Gateway: gián đoạn",
        "Gateway: outages",
        columns(
            ("Gateway", "Instance"),
            ("Từ (UTC)", "From (UTC)"),
            ("Đến (UTC)", "To (UTC)"),
            ("Phút", "Minutes"),
            ("Loại", "Kind"),
        ),
        note_vi=f"Theo bước {GAP_BUCKET_MIN} phút của số liệu tự báo cáo của gateway.",
        note_en=f"In {GAP_BUCKET_MIN}-minute steps of the gateway's own figures.",
    )
    totals = Table(
        "gateway_availability",
        "Gateway: thời gian hoạt động",
        "Gateway: uptime",
        columns(
            ("Gateway", "Instance"),
            ("% thời gian có số liệu", "% of time reporting"),
            ("Số lần gián đoạn", "Outages"),
        ),
    )
    for instance, buckets in _health_buckets(run, period).items():
        found = list(_outages(buckets))
        outages.rows += [[instance, *outage] for outage in found]
        reporting = sum(count > 0 for _, count, _ in buckets)
        totals.rows.append([instance, percent(reporting, len(buckets)), len(found)])
    return counted, totals, outages


def _increases(
    run: RunQuery, period: Period, kind: str, label: str
) -> Iterator[tuple[dict[str, str], dict[str, float]]]:
    # Summed differences, not last - first: a restart starts the counters from zero again.
    query = (
        f'SELECT sum("new") FROM (SELECT non_negative_difference("value") AS "new" '
        f'FROM "gateway_counters" WHERE {period.where} AND "kind" = \'{kind}\' '
        f'GROUP BY "instance", "{label}") GROUP BY "instance", "{label}"'
    )
    return rows_of(run, query)


def _health_buckets(
    run: RunQuery, period: Period
) -> dict[str, list[tuple[int, int, float | None]]]:
    query = (
        'SELECT count("messages_received") AS "samples", min("influx_writable") AS "writable" '
        f'FROM "gateway_health" WHERE {period.where} '
        f'GROUP BY time({GAP_BUCKET_MIN}m), "instance" fill(0)'
    )
    found: dict[str, list[tuple[int, int, float | None]]] = defaultdict(list)
    for tags, row in rows_of(run, query):
        found[tags["instance"]].append((row["time"], row["samples"], row["writable"]))
    return found


def _outages(buckets: list[tuple[int, int, float | None]]) -> Iterator[list[Cell]]:
    """Runs of buckets without figures (gateway down or unreachable), or whose figures say
    InfluxDB refused writes, between the first and last bucket with figures."""
    reported = [i for i, (_, count, _) in enumerate(buckets) if count > 0]
    if not reported:
        return
    step_ms = GAP_BUCKET_MIN * 60_000
    run_kind, run_start = None, 0
    for index in range(reported[0], reported[-1] + 2):
        kind = None
        if index <= reported[-1]:
            _, count, writable = buckets[index]
            kind = "no figures" if count == 0 else ("InfluxDB refusing" if writable == 0 else None)
        if kind != run_kind:
            if run_kind is not None:
                start_ms, end_ms = buckets[run_start][0], buckets[index - 1][0] + step_ms
                yield [_utc(start_ms), _utc(end_ms), (end_ms - start_ms) // 60_000, run_kind]
            run_kind, run_start = kind, index


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def traffic(run: RunQuery, period: Period) -> Table:
    """Vehicles per ward as each kind of sensor sees them; plates only as counts (the stored
    plate is already a keyed hash, and the report never shows it)."""
    table = Table(
        "traffic",
        "Giao thông",
        "Traffic",
        columns(
            WARD,
            ("Xe đếm bằng vòng từ", "Vehicles counted by loops"),
            ("Xe đo bằng radar", "Vehicles measured by radar"),
            ("Biển số đọc được", "Plates read"),
            ("Biển số khác nhau", "Distinct plates"),
        ),
    )
    where = f'WHERE {period.where} GROUP BY "district"'
    queries = (
        f'SELECT sum("vehicle_count") FROM "traffic_flow" {where}',
        f'SELECT count("speed_kmh") FROM "traffic_vehicle" {where}',
        f'SELECT count("plate_hash") FROM "traffic_plate" {where}',
        f'SELECT count(distinct("plate_hash")) FROM "traffic_plate" {where}',
    )
    wards: dict[str, list[Cell]] = defaultdict(lambda: [0] * len(queries))
    for index, query in enumerate(queries):
        for tags, row in rows_of(run, query):
            value = row.get("sum", row.get("count"))
            wards[tags["district"]][index] = int(value) if isinstance(value, int | float) else 0
    table.rows = [[ward, *figures] for ward, figures in sorted(wards.items())]
    return table
