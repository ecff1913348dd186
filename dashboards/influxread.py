"""Run a panel's InfluxQL against InfluxDB 1.x and name the answer the way Grafana does.

Only for the pictures (`render.py`): a blocking GET on InfluxDB's /query API with the standard
library, because the renderer is a one-shot command and the gateway's own InfluxDB code
(gateway/stages/sinks/influx.py) only writes.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError

_ALIAS_TAG = re.compile(r"\$tag_(\w+)|\[\[tag_(\w+)\]\]")


class InfluxReadError(GatewayError):
    """InfluxDB could not be reached or refused a query; the message names the query."""


@dataclass(frozen=True, slots=True)
class Column:
    """One value column of one series: what Grafana calls a field, with its display name."""

    label: str
    times_ms: list[int]
    values: list[float | None]
    tags: dict[str, str] = field(default_factory=dict)

    def last(self) -> float | None:
        """Grafana's `lastNotNull` reduction."""
        return next((value for value in reversed(self.values) if value is not None), None)


@dataclass(frozen=True, slots=True)
class Table:
    """A `resultFormat: table` answer: tag columns first, then the value columns."""

    headers: list[str]
    rows: list[list[object]]


class InfluxReader:
    """InfluxQL SELECTs against one InfluxDB 1.x database (or 2.x/3.x's v1 /query API)."""

    def __init__(self, url: str, database: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s

    def series(self, influxql: str) -> list[dict[str, Any]]:
        """The raw series of the answer; an error answer raises with InfluxDB's message."""
        params = urllib.parse.urlencode({"db": self.database, "q": influxql, "epoch": "ms"})
        request = urllib.request.Request(f"{self.url}/query?{params}")  # noqa: S310  # http(s) only
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310  # the configured InfluxDB URL, http(s) only
                document = json.load(answer)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()
            raise InfluxReadError(f"InfluxDB answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InfluxReadError(f"cannot reach InfluxDB at {self.url}: {reason}") from None
        found: list[dict[str, Any]] = []
        for result in document.get("results", []):
            if "error" in result:
                raise InfluxReadError(f"InfluxDB refused {influxql!r}: {result['error']}")
            found.extend(result.get("series", []))
        return found

    def columns(self, influxql: str, alias: str | None) -> list[Column]:
        """Every value column of every series, named by `alias` like Grafana's InfluxQL mode."""
        found = []
        for series in self.series(influxql):
            names: list[str] = series["columns"]
            tags: dict[str, str] = series.get("tags") or {}
            times = [int(row[0]) for row in series["values"]]
            for index, column in enumerate(names[1:], start=1):
                values = [_number(row[index]) for row in series["values"]]
                label = display_name(alias, series["name"], column, tags)
                found.append(Column(label, times, values, tags))
        return found

    def table(self, influxql: str) -> Table:
        """Tags and values of every row, without the time column (as a Grafana table shows)."""
        headers: list[str] = []
        rows: list[list[object]] = []
        for series in self.series(influxql):
            tags: dict[str, str] = series.get("tags") or {}
            headers = [*tags, *series["columns"][1:]]
            rows.extend([*tags.values(), *row[1:]] for row in series["values"])
        return Table(headers, rows)


def display_name(alias: str | None, measurement: str, column: str, tags: dict[str, str]) -> str:
    """Grafana's series name: the alias with $tag_x, $m and $col filled in, or without an alias
    `measurement.column {tag: value}`."""
    if alias:
        named = _ALIAS_TAG.sub(lambda m: tags.get(m.group(1) or m.group(2), ""), alias)
        named = named.replace("$measurement", measurement).replace("$m", measurement)
        return named.replace("$col", column).strip()
    suffix = ", ".join(f"{key}: {value}" for key, value in tags.items())
    return f"{measurement}.{column}" + (f" {{{suffix}}}" if suffix else "")


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None
