"""What the benchmark asks InfluxDB: points it has accepted, and what each series holds."""

from __future__ import annotations

from collections import Counter

from benchmarks.backlog import SeriesKey
from tests.servers import Influxd, quote_ident


def points_written(influxd: Influxd) -> int:
    """InfluxDB's own count of points it accepted over HTTP (`SHOW STATS`, httpd module).

    Cheap to ask many times a second, unlike COUNT queries, and it moves when a write has
    been accepted, i.e. when its points have become queryable."""
    answer = influxd.query("SHOW STATS FOR 'httpd'")
    series = answer["results"][0]["series"][0]
    return int(dict(zip(series["columns"], series["values"][0], strict=True))["pointsWrittenOK"])


def stored_series(
    influxd: Influxd, database: str, measurements: list[str], where: str
) -> Counter[SeriesKey]:
    """Points per series in `database` matching `where` (an InfluxQL condition on time).

    COUNT(*) counts each field; the largest count of a series is its number of points (every
    shipped profile has a field that every reading carries)."""
    stored: Counter[SeriesKey] = Counter()
    for measurement in measurements:
        # Our own measurement names (quoted) and time condition: no outside input.
        select = f"SELECT COUNT(*) FROM {quote_ident(measurement)} WHERE {where} GROUP BY *"  # noqa: S608  # measurement quoted by quote_ident; the where clause is ours
        for result in influxd.query(select, db=database)["results"]:
            for series in result.get("series", []):
                tags = tuple(sorted(series.get("tags", {}).items()))
                counts = [value for value in series["values"][0][1:] if value is not None]
                stored[(measurement, tags)] = max(counts, default=0)
    return stored


def lost_and_doubled(expected: Counter[SeriesKey], stored: Counter[SeriesKey]) -> tuple[int, int]:
    """Points missing from their series, and points beyond what a series should hold (a
    reading stored twice under two timestamps)."""
    lost = sum(max(0, count - stored[key]) for key, count in expected.items())
    doubled = sum(max(0, count - expected[key]) for key, count in stored.items())
    return lost, doubled


def measurement_points(influxd: Influxd, database: str) -> int:
    """All points of a database, counted per measurement as above (for the naive script)."""
    total = 0
    answer = influxd.query("SHOW MEASUREMENTS", db=database)
    for series in answer["results"][0].get("series", []):
        for (measurement,) in series["values"]:
            select = f"SELECT COUNT(*) FROM {quote_ident(measurement)}"  # noqa: S608 - quoted name
            rows = influxd.query(select, db=database)["results"][0].get("series", [])
            if not rows:  # listed while its first write is still being indexed
                continue
            counts = [value for value in rows[0]["values"][0][1:] if value is not None]
            total += max(counts, default=0)
    return total
