"""The report's period and queries, and the IoT data's availability and completeness.

Every figure of the report comes from InfluxQL over the report's period (broadband in
broadband.py and villages.py, the town's services and the gateway in operations.py). Which
measurements exist, which tags they carry and which domain and reporting interval their device
profiles declare is read from InfluxDB and from the profiles; every count, share and percentile
is computed by InfluxDB.
"""

# ruff: noqa: S608  # InfluxQL built from constants, measurement names InfluxDB itself listed

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dashboards.report.tables import DOMAIN, KIND, WARD, Table, columns

RunQuery = Callable[[str], list[dict[str, Any]]]
MS_PER_H = 3_600_000
GAP_BUCKET_MIN = 5  # outages are counted in 5-minute steps of the gateway's own figures


@dataclass(frozen=True, slots=True)
class Period:
    start_ms: int
    end_ms: int

    @property
    def where(self) -> str:
        return f"time >= {self.start_ms}ms AND time < {self.end_ms}ms"

    @property
    def hours(self) -> float:
        return (self.end_ms - self.start_ms) / MS_PER_H


@dataclass(frozen=True, slots=True)
class Kind:
    """What the device profiles say about one measurement."""

    measurement: str
    domain: str
    profiles: tuple[str, ...]
    intervals_s: tuple[float, ...]  # liveness.expected_interval_s of each profile that has one
    several_per_report: bool  # a profile with `readings:` (lanes, vehicles) makes several


def profile_kinds(directory: Path) -> dict[str, Kind]:
    """measurement -> Kind, from every profile under `directory` (device_profiles/)."""
    found: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"profiles": [], "intervals": [], "several": False}
    )
    for path in sorted(directory.glob("*/*.yaml")):
        profile = yaml.safe_load(path.read_text(encoding="utf-8"))
        entry = found[profile["output"]["measurement"]]
        entry["domain"] = profile["domain"]
        entry["profiles"].append(profile["id"])
        entry["several"] |= bool(profile.get("readings"))
        interval = (profile.get("liveness") or {}).get("expected_interval_s")
        if interval:
            entry["intervals"].append(float(interval))
    return {
        m: Kind(m, e["domain"], tuple(e["profiles"]), tuple(sorted(e["intervals"])), e["several"])
        for m, e in found.items()
    }


def rows_of(run: RunQuery, influxql: str) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """(tags, column -> value) of every row of the answer."""
    for series in run(influxql):
        tags = series.get("tags") or {}
        for values in series["values"]:
            yield tags, dict(zip(series["columns"], values, strict=True))


def percent(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def wards_reporting(run: RunQuery, measurements: list[str], period: Period) -> list[str]:
    found: set[str] = set()
    for measurement in measurements:
        query = f'SELECT count(*) FROM "{measurement}" WHERE {period.where} GROUP BY "district"'
        found |= {tags["district"] for tags, _ in rows_of(run, query) if tags.get("district")}
    return sorted(found)


# ---- availability and completeness ----------------------------------------------------------


def measurements(run: RunQuery, kinds: Mapping[str, Kind]) -> list[str]:
    names = [row["name"] for _, row in rows_of(run, "SHOW MEASUREMENTS")]
    return [name for name in names if name in kinds]


def _presence_field(run: RunQuery, measurement: str, period: Period) -> str | None:
    """The field present in the most points (every reading has it, dropped fields aside)."""
    query = f'SELECT count(*) FROM "{measurement}" WHERE {period.where}'
    counts = {
        column.removeprefix("count_"): value
        for _, row in rows_of(run, query)
        for column, value in row.items()
        if column.startswith("count_") and isinstance(value, int)
    }
    return max(counts, key=lambda name: counts[name]) if counts else None


def availability(
    run: RunQuery, kinds: Mapping[str, Kind], names: list[str], period: Period
) -> tuple[Table, Table]:
    """Per device kind and ward: devices, readings, device-hours with data, completeness."""
    detail = Table(
        "availability",
        "Tính sẵn sàng và đầy đủ dữ liệu",
        "Availability and data completeness",
        columns(
            DOMAIN,
            KIND,
            WARD,
            ("Thiết bị", "Devices"),
            ("Bản ghi", "Readings"),
            ("% giờ có dữ liệu", "% of device-hours with data"),
            ("% đầy đủ", "% complete"),
        ),
        note_vi="Đầy đủ = bản ghi / số bản ghi theo chu kỳ báo cáo của hồ sơ thiết bị; không tính "
        "cho loại gửi nhiều bản ghi mỗi lần (làn xe, từng xe).",
        note_en="Complete = readings / readings expected at the profile's reporting interval; "
        "not computed for kinds with several readings per report (lanes, single vehicles) or "
        "without a reporting interval (plate cameras report per vehicle).",
    )
    per_domain: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for measurement in names:
        field = _presence_field(run, measurement, period)
        if field is None:
            continue
        kind = kinds[measurement]
        for ward, devices in sorted(_device_figures(run, measurement, field, period).items()):
            readings = sum(d[0] for d in devices)
            hours = sum(d[1] for d in devices)
            complete = (
                percent(readings, sum(_expected(kind, d[0], period) for d in devices))
                if not kind.several_per_report and kind.intervals_s
                else None
            )
            available = percent(hours, len(devices) * math.ceil(period.hours))
            detail.rows.append(
                [kind.domain, measurement, ward, len(devices), readings, available, complete]
            )
            totals = per_domain[kind.domain]
            totals[0] += len(devices)
            totals[1] += readings
            totals[2] += hours
    summary = Table(
        "availability_domains",
        "Tính sẵn sàng theo lĩnh vực",
        "Availability per domain",
        columns(
            DOMAIN,
            ("Thiết bị", "Devices"),
            ("Bản ghi lưu", "Readings stored"),
            ("% giờ có dữ liệu", "% of device-hours with data"),
        ),
    )
    for domain, (devices_in_domain, stored, hours_with_data) in sorted(per_domain.items()):
        share = percent(hours_with_data, devices_in_domain * math.ceil(period.hours))
        summary.rows.append([domain, int(devices_in_domain), int(stored), share])
    return summary, detail


def _device_figures(
    run: RunQuery, measurement: str, field: str, period: Period
) -> dict[str, list[tuple[int, int]]]:
    """ward -> (readings, hours with at least one reading) per device."""
    group = 'GROUP BY "district", "device_id"'
    readings = f'SELECT count("{field}") FROM "{measurement}" WHERE {period.where} {group}'
    hours = (
        f'SELECT count("n") FROM (SELECT count("{field}") AS "n" FROM "{measurement}" '
        f'WHERE {period.where} GROUP BY time(1h), "district", "device_id") {group}'
    )
    hours_by_device = {
        (tags["district"], tags["device_id"]): row["count"] for tags, row in rows_of(run, hours)
    }
    found: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for tags, row in rows_of(run, readings):
        key = (tags["district"], tags["device_id"])
        found[key[0]].append((row["count"], hours_by_device.get(key, 0)))
    return found


def _expected(kind: Kind, readings: int, period: Period) -> float:
    """Readings a device should have sent: at the profile interval nearest (on a log scale) to
    the one it kept, so a LoRaWAN light (10 min) and a JSON one (1 min) on the same
    measurement are each held to their own profile."""
    period_s = period.hours * 3600
    kept_s = period_s / readings if readings else max(kind.intervals_s)
    interval = min(kind.intervals_s, key=lambda s: abs(math.log(s / kept_s)))
    return period_s / interval
