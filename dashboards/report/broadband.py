"""Broadband against the plan's targets: download percentiles per ward and per probe.

The Mỹ Hào digital-infrastructure plan 2023-2025 sets 36 Mb/s for mobile and 91 Mb/s for fixed
download (dashboards/limits.py). A speed test's class is its `technology` tag (what the test
ran on: a 5G probe that fell back to 4G measured mobile broadband either way).
"""

# ruff: noqa: S608  # InfluxQL built from constants

from __future__ import annotations

from typing import Any

from dashboards import limits
from dashboards.report.figures import Period, RunQuery, percent, rows_of
from dashboards.report.tables import DEVICE, VILLAGE, WARD, Table, columns

TOWN = "Toàn thị xã / whole town"
MET, NOT_MET = "đạt / met", "chưa đạt / not met"
NO_TEST, BELOW_TARGET = "không có đo kiểm / no test", "dưới chỉ tiêu / below target"
UNKNOWN_VILLAGE = "(không rõ / unknown)"  # a test stored without a village tag
PROBE = ("district", "village", "device_id")

CLASSES = {
    "mobile": ("Di động", limits.MOBILE_TECHNOLOGIES, limits.MOBILE_TARGET_MBPS),
    "fixed": ("Cố định", limits.FIXED_TECHNOLOGIES, limits.FIXED_TARGET_MBPS),
}

PERCENTILE_COLUMNS = (
    ("Số lần đo", "Tests"),
    ("P10 (Mb/s)", "P10 (Mb/s)"),
    ("Trung vị (Mb/s)", "Median (Mb/s)"),
    ("P90 (Mb/s)", "P90 (Mb/s)"),
    ("Chỉ tiêu (Mb/s)", "Target (Mb/s)"),
    ("% lần đo đạt", "% of tests meeting"),
    ("Đầu đo", "Probes"),
    ("Đầu đo đạt", "Probes meeting"),
    ("Đạt chỉ tiêu", "Target met"),
)


def class_label(name: str) -> str:
    return f"{CLASSES[name][0]} / {name}"


def class_where(period: Period, name: str) -> str:
    technologies = CLASSES[name][1]
    return f'{period.where} AND "technology" =~ /^(' + "|".join(technologies) + ")$/"


def rounded(value: object, digits: int = 1) -> float | None:
    return round(float(value), digits) if isinstance(value, int | float) else None


def _group(tags: tuple[str, ...]) -> str:
    return "GROUP BY " + ", ".join(f'"{tag}"' for tag in tags) if tags else ""


def _key(tags: dict[str, str], group_by: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(tags.get(tag, "") for tag in group_by)


def percentiles(
    run: RunQuery, where: str, target: float, group_by: tuple[str, ...]
) -> dict[tuple[str, ...], dict[str, Any]]:
    """Tests, P10/P50/P90 of download_mbps and tests meeting `target`, per value of the
    `group_by` tags (one entry keyed () without tags); a missing tag is ""."""
    select = (
        'SELECT count("download_mbps") AS "tests", percentile("download_mbps", 10) AS "p10", '
        'percentile("download_mbps", 50) AS "p50", percentile("download_mbps", 90) AS "p90" '
        f'FROM "broadband_speed" WHERE {where}'
    )
    meeting = (
        f'SELECT count("download_mbps") FROM "broadband_speed" WHERE {where} '
        f'AND "download_mbps" >= {target}'
    )
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for tags, row in rows_of(run, f"{select} {_group(group_by)}"):
        if row["tests"]:
            found[_key(tags, group_by)] = {**row, "meeting": 0}
    for tags, row in rows_of(run, f"{meeting} {_group(group_by)}"):
        found[_key(tags, group_by)]["meeting"] = row["count"]
    return found


def probe_medians(
    run: RunQuery, where: str, group_by: tuple[str, ...] = PROBE
) -> dict[tuple[str, ...], tuple[int, float]]:
    """(tests, median download) per probe: (ward, village, device), and its technology when
    `group_by` adds it."""
    query = (
        'SELECT count("download_mbps") AS "tests", percentile("download_mbps", 50) AS "p50" '
        f'FROM "broadband_speed" WHERE {where} {_group(group_by)}'
    )
    return {
        _key(tags, group_by): (row["tests"], row["p50"])
        for tags, row in rows_of(run, query)
        if row["tests"]
    }


def percentile_cells(figures: dict[str, Any], target: float, medians: list[float]) -> list[Any]:
    """The PERCENTILE_COLUMNS of one row; `medians` are its probes' own medians over the
    class's tests (a 5G probe's 4G fallbacks included: one probe, one median)."""
    met = figures["p50"] is not None and figures["p50"] >= target
    return [
        figures["tests"],
        rounded(figures["p10"]),
        rounded(figures["p50"]),
        rounded(figures["p90"]),
        target,
        percent(figures["meeting"], figures["tests"]),
        len(medians),
        sum(median >= target for median in medians),
        MET if met else NOT_MET,
    ]


def broadband(run: RunQuery, period: Period) -> tuple[Table, Table]:
    """Download percentiles per ward and class against the target; one row per probe."""
    wards = Table(
        "broadband_wards",
        "Tốc độ tải xuống theo phường/xã",
        "Download speed per ward/commune",
        columns(WARD, ("Loại", "Class"), *PERCENTILE_COLUMNS),
        note_vi="Theo thôn/khu phố: bảng dưới.",
        note_en="Per village: the table below.",
    )
    probes = Table(
        "broadband_probes",
        "Đầu đo tốc độ",
        "Speed-test probes",
        columns(
            WARD,
            VILLAGE,
            DEVICE,
            ("Công nghệ", "Technology"),
            ("Số lần đo", "Tests"),
            ("Trung vị (Mb/s)", "Median (Mb/s)"),
            ("Chỉ tiêu (Mb/s)", "Target (Mb/s)"),
            ("Đạt", "Meets"),
        ),
    )
    for name, (_, _, target) in CLASSES.items():
        where = class_where(period, name)
        for (ward, village, device, technology), (tests, median) in sorted(
            probe_medians(run, where, (*PROBE, "technology")).items()
        ):
            meets = "có / yes" if median >= target else "không / no"
            place = [ward, village or UNKNOWN_VILLAGE, device]
            probes.rows.append([*place, technology, tests, rounded(median), target, meets])
        per_probe = probe_medians(run, where)
        found = {key[0]: row for key, row in percentiles(run, where, target, ("district",)).items()}
        if (town := percentiles(run, where, target, ()).get(())) is not None:
            found[TOWN] = town
        for ward, figures in sorted(found.items(), key=lambda item: (item[0] == TOWN, item[0])):
            mine = [median for (w, _, _), (_, median) in per_probe.items() if ward in (w, TOWN)]
            wards.rows.append([ward, class_label(name), *percentile_cells(figures, target, mine)])
    return wards, probes


def coverage_gaps(wards: list[str], ward_table: Table) -> Table:
    """Wards without a speed test of a class, or with a median below its target."""
    gaps = Table(
        "coverage_gaps",
        "Vùng chưa phủ / chưa đạt",
        "Coverage gaps",
        columns(WARD, ("Loại", "Class"), ("Vấn đề", "Gap")),
        note_vi="Phường/xã lấy từ mọi thiết bị gửi dữ liệu trong kỳ.",
        note_en="Wards are those any device reported from in the period.",
    )
    measured = {(row[0], row[1]): row[-1] for row in ward_table.rows}
    for ward in wards:
        for name in CLASSES:
            status = measured.get((ward, class_label(name)))
            if status is None:
                gaps.rows.append([ward, class_label(name), NO_TEST])
            elif status == NOT_MET:
                gaps.rows.append([ward, class_label(name), BELOW_TARGET])
    return gaps
