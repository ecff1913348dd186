"""`gateway report`: the town plan's measurable targets for a period, from InfluxDB.

The Mỹ Hào digital-infrastructure plan 2023-2025 asks for a yearly (or ad-hoc) report to the
People's Committee: broadband speeds against the 36 Mb/s mobile and 91 Mb/s fixed targets per
ward and village, coverage gaps, availability and completeness of the IoT data per domain and
device kind, dark-lamp hours, water-quality excursions, and the gateway's own delivery record.
`write_report` queries InfluxDB only (the device profiles say which domain and interval a
measurement has) and writes `report.html` (self-contained) and one CSV per table into a
directory.

Not part of the runtime package `gateway`: `gateway report` imports this lazily.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from dashboards import limits
from dashboards.influxread import InfluxReader
from dashboards.report import broadband, figures, operations
from dashboards.report.broadband import TOWN
from dashboards.report.document import Section, bar_chart, html_document, write_csv
from dashboards.report.figures import Period, RunQuery
from dashboards.report.tables import Table
from dashboards.report.villages import villages

TOWN_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
TITLE = ("Báo cáo hạ tầng số thị xã Mỹ Hào", "Mỹ Hào digital infrastructure report")


def parse_instant(text: str, what: str) -> dt.datetime:
    """An ISO date or date-time; without an offset it is the town's local time (UTC+7)."""
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        msg = f"{what}: {text!r} is not an ISO date or date-time (e.g. 2026-01-01)"
        raise ValueError(msg) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=TOWN_ZONE)


def sections(run: RunQuery, period: Period, profiles_dir: Path) -> list[Section]:
    kinds = figures.profile_kinds(profiles_dir)
    names = figures.measurements(run, kinds)
    wards, probes = broadband.broadband(run, period)
    gaps = broadband.coverage_gaps(figures.wards_reporting(run, names, period), wards)
    domains, detail = figures.availability(run, kinds, names, period)
    lamps = operations.dark_lamps(run, period)
    counted, uptime, outages = operations.delivery(run, period)
    return [
        Section(
            "Băng rộng so với chỉ tiêu",
            "Broadband against the plan's targets",
            [wards, probes, gaps],
            _broadband_chart(wards),
        ),
        Section(
            "Băng rộng theo thôn/khu phố",
            "Broadband per village: every village covered by mobile broadband and FTTH",
            list(villages(run, period)),
        ),
        Section(
            "Dữ liệu IoT",
            "IoT data: availability and completeness",
            [domains, detail],
            _chart(domains, "% of device-hours with data", "%"),
        ),
        Section(
            "Chiếu sáng công cộng",
            "Street lighting",
            [lamps],
            _chart(lamps, "Dark-lamp hours", "h"),
        ),
        Section("Chất lượng nước", "Water quality", [operations.water_quality(run, period)]),
        Section("Giao thông", "Traffic", [operations.traffic(run, period)]),
        Section("Gateway", "The gateway's delivery record", [counted, uptime, outages]),
    ]


def _chart(table: Table, column: str, unit: str) -> str:
    if not table.rows:
        return ""
    values = [v if isinstance(v, int | float) else None for v in table.column(column)]
    labels = [str(label) for label in table.column(table.columns[0].en)]
    return bar_chart(labels, {column: values}, unit=unit)


def _broadband_chart(wards: Table) -> str:
    rows = [row for row in wards.rows if row[0] != TOWN]
    if not rows:
        return ""
    names = sorted({str(row[0]) for row in rows})
    medians: dict[str, list[float | None]] = {}
    for label in sorted({str(row[1]) for row in rows}):
        by_ward = {str(row[0]): row[4] for row in rows if row[1] == label}
        medians[f"median, {label}"] = [
            float(v) if isinstance(v := by_ward.get(n), int | float) else None for n in names
        ]
    targets = {
        f"{limits.MOBILE_TARGET_MBPS:g} Mb/s": limits.MOBILE_TARGET_MBPS,
        f"{limits.FIXED_TARGET_MBPS:g} Mb/s": limits.FIXED_TARGET_MBPS,
    }
    return bar_chart(names, medians, unit="Mb/s", targets=targets)


def write_report(  # noqa: PLR0917  # the command's options, one to one
    url: str,
    database: str,
    start: dt.datetime,
    end: dt.datetime,
    out_dir: Path,
    profiles_dir: Path,
) -> list[Path]:
    """Query InfluxDB, write report.html and the CSVs into `out_dir`; the paths written."""
    if end <= start:
        msg = f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})"
        raise ValueError(msg)
    reader = InfluxReader(url, database)
    period = Period(int(start.timestamp() * 1000), int(end.timestamp() * 1000))
    found = sections(reader.series, period, profiles_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first, last = start.astimezone(TOWN_ZONE), end.astimezone(TOWN_ZONE)
    local = f"{first:%d/%m/%Y %H:%M} - {last:%d/%m/%Y %H:%M}"
    shown = (f"{local} (giờ Việt Nam)", f"{local} (Vietnam time, UTC+7)")
    page = out_dir / "report.html"
    page.write_text(html_document(TITLE, shown, found), encoding="utf-8")
    csv_dir = out_dir / "csv"
    csv_dir.mkdir(exist_ok=True)
    return [page] + [write_csv(t, csv_dir) for section in found for t in section.tables]
