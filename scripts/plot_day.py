"""Plot one simulated day per domain from InfluxDB: does the town look like a town?

    python -m simulators backfill --days 2 ...        # through the gateway into InfluxDB
    python scripts/plot_day.py --influx http://127.0.0.1:8086 --database telemetry

writes docs/img/simulated-day-{lighting,water,traffic,connectivity}.png for one local calendar
day (default: yesterday in Mỹ Hào, UTC+7), averaged over every device in 15-minute buckets.
Needs matplotlib: `pip install -e '.[plots]'`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from simulators.clock import LOCAL_TZ
from simulators.influx import InfluxError, InfluxReader

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "15m"
HOURS = list(range(0, 25, 3))


@dataclass(frozen=True, slots=True)
class Curve:
    """One line of a panel: an InfluxQL aggregate over the day, bucketed."""

    label: str
    measurement: str
    aggregate: str  # e.g. mean("power_w")
    scale: float = 1.0
    where: str = ""


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    unit: str
    curves: tuple[Curve, ...]


DOMAINS: dict[str, tuple[Panel, ...]] = {
    "lighting": (
        Panel("Streetlights lit (JSON and LoRaWAN)", "% of lamps", (
            Curve("lamps lit", "streetlight", 'mean("lamp_on")', 100.0),
            Curve("dim level", "streetlight", 'mean("dim_pct")'),
        )),
        Panel("Power", "W", (
            Curve("per lamp", "streetlight", 'mean("power_w")'),
            Curve("per cabinet feeder / 20", "lighting_cabinet", 'mean("power_w")', 1 / 20),
        )),
    ),
    "water": (
        Panel("Demand at the district meters", "m³/h", (
            Curve("flow per meter", "water_flow", 'mean("flow_m3h")'),
        )),
        Panel("Network pressure and reservoir level", "bar / m", (
            Curve("pressure at meters (bar)", "water_flow", 'mean("pressure_bar")'),
            Curve("pressure at loggers (bar)", "water_pressure", 'mean("pressure_bar")'),
            Curve("reservoir level (m)", "water_tank", 'mean("level_m")'),
        )),
    ),
    "traffic": (
        Panel("Vehicles counted", "vehicles per loop-lane per minute", (
            Curve("loop counters", "traffic_flow", 'mean("vehicle_count")'),
        )),
        Panel("Speed", "km/h", (
            Curve("loop counters", "traffic_flow", 'mean("speed_kmh")',
                  where='"vehicle_count" > 0'),
            Curve("radar, per vehicle", "traffic_vehicle", 'mean("speed_kmh")'),
        )),
    ),
    "connectivity": (
        Panel("Speed tests: download", "Mb/s", (
            Curve("4G", "broadband_speed", 'mean("download_mbps")', where="\"technology\" = '4G'"),
            Curve("5G", "broadband_speed", 'mean("download_mbps")', where="\"technology\" = '5G'"),
            Curve("FTTH", "broadband_speed", 'mean("download_mbps")',
                  where="\"technology\" = 'FTTH'"),
        )),
        Panel("Telecom sites", "% of sites / % charge", (
            Curve("mains present", "connectivity_site", 'mean("mains_present")', 100.0),
            Curve("battery charge", "connectivity_site", 'mean("battery_pct")'),
        )),
    ),
}  # fmt: skip


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--influx", default="http://127.0.0.1:8086", metavar="URL")
    parser.add_argument("--database", default="telemetry", metavar="DB")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument(
        "--day", type=date.fromisoformat, help="local date, e.g. 2026-11-23 (default: yesterday)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", metavar="DIR")
    return parser.parse_args(argv)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
    return start, start + timedelta(days=1)


def bucketed(
    reader: InfluxReader, curve: Curve, start: datetime, end: datetime
) -> tuple[list[float], list[float]]:
    """(local hour of day, value) per bucket that has data."""
    where = f"time >= {_ns(start)} AND time < {_ns(end)}"
    if curve.where:
        where += f" AND {curve.where}"
    query = (
        f'SELECT {curve.aggregate} FROM "{curve.measurement}" WHERE {where} '  # noqa: S608  # our own constants
        f"GROUP BY time({BUCKET}) fill(none)"
    )
    hours, values = [], []
    for series in reader.series(query):
        for time_ns, value in series["values"]:
            if value is not None:
                hours.append((time_ns - _ns(start)) / 3.6e12)
                values.append(value * curve.scale)
    return hours, values


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def plot_domain(
    reader: InfluxReader, domain: str, panels: tuple[Panel, ...], day: date, out: Path
) -> Path:
    start, end = day_bounds(day)
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), sharex=True)
    for axis, panel in zip(axes, panels, strict=True):
        _draw_panel(reader, axis, panel, start, end)
    axes[-1].set_xlabel(f"local time, {day:%A %d %B %Y} (Mỹ Hào, UTC+7)")
    figure.suptitle(f"One simulated day: {domain}")
    figure.tight_layout()
    path = out / f"simulated-day-{domain}.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _draw_panel(
    reader: InfluxReader, axis: Axes, panel: Panel, start: datetime, end: datetime
) -> None:
    for curve in panel.curves:
        hours, values = bucketed(reader, curve, start, end)
        axis.plot(hours, values, label=curve.label)
    axis.set_title(panel.title, fontsize=10)
    axis.set_ylabel(panel.unit)
    axis.set_xlim(0, 24)
    axis.set_xticks(HOURS, [f"{hour:02d}:00" for hour in HOURS])
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    day = args.day or (datetime.now(LOCAL_TZ) - timedelta(days=1)).date()
    reader = InfluxReader(args.influx, args.database, args.username, args.password)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for domain, panels in DOMAINS.items():
            print(plot_domain(reader, domain, panels, day, args.out))
    except InfluxError as exc:
        print(f"plot_day: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
