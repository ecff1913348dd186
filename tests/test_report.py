"""`gateway report`: the town plan's report from a backfilled InfluxDB, checked against the truth.

The database is filled like tests/test_alert_rules.py's town (two days of every device kind
through the real gateway, and two days of the gateway's own figures) but without scripted
incidents, so the simulators' truth file says what every figure must be. Each check below
recomputes a figure from the truth file in plain Python and compares it with the CSV the
command wrote; a headless Chromium then renders the HTML to prove it is a page, not a blank.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import math
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from dashboards import limits
from dashboards.report.villages import REGISTER
from tests.servers import Influxd
from tests.test_alert_rules import NS_PER_MS, backfilled_town, domains_by_measurement

ROOT = Path(__file__).resolve().parent.parent
MS_PER_H = 3_600_000


@dataclass(frozen=True, slots=True)
class Report:
    out: Path
    truth: list[dict[str, Any]]
    start_ms: int
    end_ms: int

    def csv(self, key: str) -> list[dict[str, str]]:
        """Rows of csv/<key>.csv keyed by the English column names."""
        with (self.out / "csv" / f"{key}.csv").open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
        names = [header.split(" / ", 1)[1] for header in rows[0]]
        return [dict(zip(names, row, strict=True)) for row in rows[1:]]


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


@pytest.fixture(scope="module")
def report(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    with backfilled_town(influxd, tmp_path_factory.mktemp("report")) as filled:
        times = [row["time_ns"] // NS_PER_MS for row in filled.truth]
        start_ms, stop_ms = min(times), max(times) + 1
        out = filled.workdir / "out"
        answer = subprocess.run(
            [sys.executable, "-m", "gateway", "report", "--from", iso(start_ms),
             "--to", iso(stop_ms), "--out", str(out), "--influx-url", influxd.url,
             "--database", filled.database],
            capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
        )  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        assert f"wrote {out / 'report.html'}" in answer.stdout
        yield Report(out, filled.truth, start_ms, stop_ms)


def nearest_rank(values: list[float], percent: float) -> float:
    """InfluxQL's percentile(): the value at rank floor(n * p / 100 + 0.5), 1-based."""
    ordered = sorted(values)
    rank = math.floor(len(ordered) * percent / 100 + 0.5)
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def readings_of(truth: list[dict[str, Any]], measurement: str) -> list[dict[str, Any]]:
    return [row for row in truth if row["measurement"] == measurement]


@pytest.mark.integration
def test_broadband_percentiles_and_targets_per_ward(report: Report) -> None:
    classes = {
        "mobile": (limits.MOBILE_TECHNOLOGIES, limits.MOBILE_TARGET_MBPS),
        "fixed": (limits.FIXED_TECHNOLOGIES, limits.FIXED_TARGET_MBPS),
    }
    rows = {
        (r["Ward/commune"], r["Class"].split(" / ")[1]): r for r in report.csv("broadband_wards")
    }
    checked = 0
    for name, (technologies, target) in classes.items():
        speeds: dict[str, list[float]] = defaultdict(list)
        for row in readings_of(report.truth, "broadband_speed"):
            if row["tags"]["technology"] in technologies and "download_mbps" in row["fields"]:
                speeds[row["tags"]["district"]].append(row["fields"]["download_mbps"])
        for ward, values in speeds.items():
            got = rows[ward, name]
            assert int(got["Tests"]) == len(values)
            for column, percent in (("P10 (Mb/s)", 10), ("Median (Mb/s)", 50), ("P90 (Mb/s)", 90)):
                assert float(got[column]) == pytest.approx(nearest_rank(values, percent), abs=0.05)
            meeting = sum(v >= target for v in values)
            assert float(got["% of tests meeting"]) == pytest.approx(
                100 * meeting / len(values), abs=0.05
            )
            assert got["Target met"].startswith("đạt") == (nearest_rank(values, 50) >= target)
            checked += 1
    assert checked >= 2, "the backfill has no speed tests of both classes"


@pytest.mark.integration
def test_availability_and_completeness_per_kind_and_ward(report: Report) -> None:
    domain_of = domains_by_measurement()
    period_hours = math.ceil((report.end_ms - report.start_ms) / MS_PER_H)
    expected: dict[tuple[str, str], dict[str, set[Any]]] = defaultdict(
        lambda: {"devices": set(), "readings": set(), "hours": set()}
    )
    for row in report.truth:
        figures = expected[row["measurement"], row["tags"]["district"]]
        key = (row["device_id"], tuple(sorted(row["tags"].items())), row["time_ns"])
        figures["devices"].add(row["device_id"])
        figures["readings"].add(key)
        figures["hours"].add((row["device_id"], row["time_ns"] // NS_PER_MS // MS_PER_H))
    got = {(r["Device kind"], r["Ward/commune"]): r for r in report.csv("availability")}
    assert set(got) == set(expected)
    for (measurement, ward), figures in expected.items():
        row = got[measurement, ward]
        assert row["Domain"] == domain_of[measurement]
        assert int(row["Devices"]) == len(figures["devices"])
        assert int(row["Readings"]) == len(figures["readings"]), (measurement, ward)
        share = 100 * len(figures["hours"]) / (len(figures["devices"]) * period_hours)
        assert float(row["% of device-hours with data"]) == pytest.approx(share, abs=0.05)
    # A kind with one profile: complete = readings / (period / its 5-minute interval).
    period_s = (report.end_ms - report.start_ms) / 1000
    for (measurement, ward), figures in expected.items():
        # Speed probes: one test every 15 minutes, a technology tag on each.
        interval_s = {"water_pressure": 300, "broadband_speed": 900}.get(measurement)
        if interval_s is not None:
            due = len(figures["devices"]) * period_s / interval_s
            wanted = 100 * len(figures["readings"]) / due
            assert float(got[measurement, ward]["% complete"]) == pytest.approx(wanted, abs=0.05)
    assert (
        got["traffic_vehicle", next(w for m, w in got if m == "traffic_vehicle")]["% complete"]
        == ""
    )  # several readings per report: not computed


def trapezoid_hours(rows: list[dict[str, Any]], value: Any) -> float:
    ordered = sorted(rows, key=lambda r: r["time_ns"])
    total = 0.0
    for before, after in itertools.pairwise(ordered):
        hours = (after["time_ns"] - before["time_ns"]) / 3.6e12
        total += (value(before) + value(after)) / 2 * hours
    return total


@pytest.mark.integration
def test_dark_lamp_hours_are_the_integral_of_the_dark_state(report: Report) -> None:
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in readings_of(report.truth, "streetlight"):
        by_device[row["device_id"]].append(row)
    dark: dict[str, float] = defaultdict(float)
    lit: dict[str, float] = defaultdict(float)
    for rows in by_device.values():
        ward = rows[0]["tags"]["district"]
        dark[ward] += trapezoid_hours(
            rows, lambda r: (r["fields"]["dim_pct"] > 0) * (1 - r["fields"]["lamp_on"])
        )
        lit[ward] += trapezoid_hours(rows, lambda r: r["fields"]["lamp_on"])
    got = {row["Ward/commune"]: row for row in report.csv("dark_lamps")}
    assert set(got) == set(dark)
    for ward, hours in dark.items():
        assert float(got[ward]["Dark-lamp hours"]) == pytest.approx(hours, abs=0.01)
        assert float(got[ward]["Lamp hours lit"]) == pytest.approx(lit[ward], abs=0.1)
    assert sum(dark.values()) > 0, "no lamp failed in two days: nothing was checked"


@pytest.mark.integration
def test_water_quality_excursions_per_probe(report: Report) -> None:
    outside: dict[str, Callable[[dict[str, float]], bool]] = {
        "pH outside limits": lambda f: not limits.PH_MIN <= f["ph"] <= limits.PH_MAX,
        "Turbidity outside limits": lambda f: f["turbidity_ntu"] > limits.TURBIDITY_MAX_NTU,
        "Free chlorine outside limits": lambda f: (
            not limits.CHLORINE_MIN_MGL <= f["free_chlorine_mgl"] <= limits.CHLORINE_MAX_MGL
        ),
    }
    got = {row["Device"]: row for row in report.csv("water_quality")}
    rows_by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in readings_of(report.truth, "water_quality"):
        rows_by_device[row["device_id"]].append(row["fields"])
    assert set(got) == set(rows_by_device)
    for device, rows in rows_by_device.items():
        assert int(got[device]["Readings"]) == len(rows)
        for column, test in outside.items():
            assert int(got[device][column]) == sum(test(f) for f in rows), (device, column)


@pytest.mark.integration
def test_gateway_delivery_record(report: Report) -> None:
    counts = report.csv("gateway_counts")
    dead = [r for r in counts if r["Counter"] == "dead_letters"]
    # tests/test_alert_rules.py's figures: 2 invalid_json dead letters a minute for an hour.
    assert [(r["Domain or reason"], int(r["Count"])) for r in dead] == [("invalid_json", 120)]
    written = {r["Domain or reason"] for r in counts if r["Counter"] == "points_written"}
    assert {"lighting", "water", "traffic", "connectivity", "gateway"} <= written
    outages = report.csv("gateway_outages")
    assert [(r["Minutes"], r["Kind"]) for r in outages] == [("20", "no figures")]


@pytest.mark.integration
def test_the_html_is_self_contained_and_renders_in_headless_chromium(
    report: Report, tmp_path: Path
) -> None:
    page = (report.out / "report.html").read_text(encoding="utf-8")
    assert "Báo cáo hạ tầng số" in page
    assert "Broadband against the plan" in page
    assert page.count("<svg") >= 3
    assert 'src="http' not in page
    assert 'href="http' not in page
    screenshot = tmp_path / "report.png"
    chromium_screenshot(report.out / "report.html", screenshot, tmp_path / "profile")
    with Image.open(screenshot) as image:
        assert image.width >= 1000
        # A blank page has a handful of colours; text, tables and charts have hundreds.
        assert len(image.getcolors(maxcolors=65536) or range(65537)) > 100


CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
)  # fmt: skip


def chromium_screenshot(page: Path, out: Path, profile: Path, height: int = 2400) -> None:
    """Render `page` with the Debian `chromium` package (scripts/bootstrap.sh installs it)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: run scripts/bootstrap.sh (Debian package chromium)"
    subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
         f"--window-size=1200,{height}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert out.is_file(), "chromium wrote no screenshot"


@pytest.mark.integration
def test_traffic_counts_and_plates_only_as_counts(report: Report) -> None:
    loops: dict[str, int] = defaultdict(int)
    radar: dict[str, int] = defaultdict(int)
    plates: dict[str, list[str]] = defaultdict(list)
    for row in report.truth:
        ward = row["tags"]["district"]
        if row["measurement"] == "traffic_flow":
            loops[ward] += row["fields"]["vehicle_count"]
        elif row["measurement"] == "traffic_vehicle":
            radar[ward] += 1
        elif row["measurement"] == "traffic_plate":
            plates[ward].append(row["fields"]["plate_hash"])
    got = {row["Ward/commune"]: row for row in report.csv("traffic")}
    assert set(got) == set(loops) | set(radar) | set(plates)
    for ward, row in got.items():
        assert int(row["Vehicles counted by loops"]) == loops.get(ward, 0)
        assert int(row["Vehicles measured by radar"]) == radar.get(ward, 0)
        assert int(row["Plates read"]) == len(plates.get(ward, []))
        assert int(row["Distinct plates"]) == len(set(plates.get(ward, [])))
    assert sum(len(p) for p in plates.values()) > 0, "no plate camera in the backfill"
    page = (report.out / "report.html").read_text(encoding="utf-8")
    some_plate = next(iter(plates.values()))[0]
    assert some_plate not in page, "a plate (hash) in the report"


@pytest.mark.integration
def test_coverage_gaps_name_every_ward_without_a_test_or_below_target(report: Report) -> None:
    wards = {row["tags"]["district"] for row in report.truth}
    classes = {
        "mobile": (limits.MOBILE_TECHNOLOGIES, limits.MOBILE_TARGET_MBPS),
        "fixed": (limits.FIXED_TECHNOLOGIES, limits.FIXED_TARGET_MBPS),
    }
    expected = set()
    for name, (technologies, target) in classes.items():
        speeds: dict[str, list[float]] = defaultdict(list)
        for row in readings_of(report.truth, "broadband_speed"):
            if row["tags"]["technology"] in technologies and "download_mbps" in row["fields"]:
                speeds[row["tags"]["district"]].append(row["fields"]["download_mbps"])
        for ward in wards:
            if not speeds.get(ward):
                expected.add((ward, name, "no test"))
            elif nearest_rank(speeds[ward], 50) < target:
                expected.add((ward, name, "below target"))
    got = {
        (r["Ward/commune"], r["Class"].split(" / ")[1], r["Gap"].split(" / ")[1])
        for r in report.csv("coverage_gaps")
    }
    assert got == expected


CLASSES = {
    "mobile": (limits.MOBILE_TECHNOLOGIES, limits.MOBILE_TARGET_MBPS),
    "fixed": (limits.FIXED_TECHNOLOGIES, limits.FIXED_TARGET_MBPS),
}


def village_speeds(truth: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], list[float]]:
    """(ward, village, class, probe) -> the probe's downloads in that class."""
    speeds: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for row in readings_of(truth, "broadband_speed"):
        tags = row["tags"]
        (name,) = [n for n, (techs, _) in CLASSES.items() if tags["technology"] in techs]
        if "download_mbps" in row["fields"]:
            key = (tags["district"], tags["village"], name, row["device_id"])
            speeds[key].append(row["fields"]["download_mbps"])
    return speeds


@pytest.mark.integration
def test_broadband_per_village(report: Report) -> None:
    per_probe = village_speeds(report.truth)
    places: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for ward, village, name, device in per_probe:
        places[ward, village, name].append(device)
    got = {
        (r["Ward/commune"], r["Village"], r["Class"].split(" / ")[1]): r
        for r in report.csv("broadband_villages")
    }
    assert set(got) == set(places)
    names = {(v.ward, v.slug): v.name for v in REGISTER}
    for (ward, village, name), devices in places.items():
        row, target = got[ward, village, name], CLASSES[name][1]
        values = [v for device in devices for v in per_probe[ward, village, name, device]]
        assert row["Name"] == names[ward, village]
        assert int(row["Tests"]) == len(values)
        for column, percent in (("P10 (Mb/s)", 10), ("Median (Mb/s)", 50), ("P90 (Mb/s)", 90)):
            assert float(row[column]) == pytest.approx(nearest_rank(values, percent), abs=0.05)
        meeting = 100 * sum(v >= target for v in values) / len(values)
        assert float(row["% of tests meeting"]) == pytest.approx(meeting, abs=0.05)
        assert int(row["Probes"]) == len(devices)
        medians = [nearest_rank(per_probe[ward, village, name, d], 50) for d in devices]
        assert int(row["Probes meeting"]) == sum(m >= target for m in medians)
        assert row["Target met"].startswith("đạt") == (nearest_rank(values, 50) >= target)
    assert {name for _, _, name in places} == set(CLASSES), "the backfill lacks a class"


@pytest.mark.integration
def test_villages_of_the_register_without_a_test_or_below_target_are_gaps(report: Report) -> None:
    per_probe = village_speeds(report.truth)
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for (ward, village, name, _), downloads in per_probe.items():
        values[ward, village, name] += downloads
    expected: set[tuple[str, str, str, str]] = set()
    tested: dict[str, int] = defaultdict(int)
    meeting: dict[str, int] = defaultdict(int)
    for place in REGISTER:
        for name, (_, target) in CLASSES.items():
            speeds = values.get((place.ward, place.slug, name))
            if not speeds:
                expected.add((place.ward, place.slug, name, "no test"))
                continue
            tested[name] += 1
            if nearest_rank(speeds, 50) < target:
                expected.add((place.ward, place.slug, name, "below target"))
            else:
                meeting[name] += 1
    got = {
        (r["Ward/commune"], r["Village"], r["Class"].split(" / ")[1], r["Gap"].split(" / ")[1])
        for r in report.csv("coverage_gaps_villages")
    }
    assert got == expected
    coverage = {r["Class"].split(" / ")[1]: r for r in report.csv("village_coverage")}
    assert set(coverage) == set(CLASSES)
    for name, row in coverage.items():
        assert int(row["Villages"]) == len(REGISTER)
        assert int(row["With tests"]) == tested[name]
        assert int(row["Meeting the target"]) == meeting[name]
        share = 100 * tested[name] / len(REGISTER)
        assert float(row["% with tests"]) == pytest.approx(share, abs=0.05)
    assert sum(tested.values()) >= 2, "no village of the register was measured"


@pytest.mark.parametrize(
    ("period", "message"),
    [
        (("nope", "2026-01-01"), "--from: 'nope' is not an ISO date or date-time"),
        (("2026-01-02", "2026-01-01"), "--to (2026-01-01T00:00:00+07:00) must be after --from"),
    ],
)
def test_a_bad_period_is_one_clear_line(period: tuple[str, str], message: str) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "gateway", "report", "--from", period[0], "--to", period[1]],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert answer.returncode == 2
    assert answer.stderr.startswith(f"error: {message}")
    assert answer.stderr.count("\n") == 1, answer.stderr
