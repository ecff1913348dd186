"""Reading points back from InfluxDB 1.x for `simulators verify` (stdlib HTTP, /query).

Queries ask for `epoch=ns` so times come back as exact integers, and `chunked=true` so a large
measurement arrives as a stream of JSON documents (one per line) instead of one that
`max-row-limit` could cut short. JSON has no float/integer distinction (a float field holding
45.0 comes back as 45), so field types are read separately with SHOW FIELD KEYS.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson

CHUNK_SIZE = 10_000

Tags = tuple[tuple[str, str], ...]


class StoredPoint(NamedTuple):
    tags: Tags
    time_ns: int
    fields: dict[str, Any]


class InfluxError(Exception):
    """InfluxDB could not be reached or refused a query."""


class InfluxReader:
    def __init__(
        self,
        url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            msg = f"--influx {url!r}: give an http:// or https:// URL, e.g. http://127.0.0.1:8086"
            raise InfluxError(msg)
        self._url = url.rstrip("/")
        self._database = database
        self._timeout_s = timeout_s
        self._headers = {}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def measurements(self) -> list[str]:
        return [row[0] for row in self._rows("SHOW MEASUREMENTS")]

    def field_types(self, measurement: str) -> dict[str, str]:
        """Field name -> float, integer, boolean or string."""
        rows = self._rows(f"SHOW FIELD KEYS FROM {_quoted(measurement)}")
        return {str(row[0]): str(row[1]) for row in rows}

    def points(self, measurement: str) -> list[StoredPoint]:
        points = []
        query = f"SELECT * FROM {_quoted(measurement)} GROUP BY *"  # noqa: S608  # quoted name
        for series in self.series(query):
            tags = tuple(sorted(series.get("tags", {}).items()))
            columns = series["columns"]
            for values in series["values"]:
                row = dict(zip(columns, values, strict=True))
                time_ns = row.pop("time")
                fields = {name: value for name, value in row.items() if value is not None}
                points.append(StoredPoint(tags, time_ns, fields))
        return points

    def _rows(self, query: str) -> list[list[Any]]:
        return [row for series in self.series(query) for row in series["values"]]

    def series(self, query: str) -> Iterator[dict[str, Any]]:
        """The series of an InfluxQL query (name, tags, columns, values), chunks joined."""
        for document in self._query(query):
            for result in document.get("results", []):
                if "error" in result:
                    msg = f"InfluxDB refused {query!r}: {result['error']}"
                    raise InfluxError(msg)
                yield from result.get("series", [])

    def _query(self, query: str) -> Iterator[dict[str, Any]]:
        parameters = {
            "db": self._database,
            "q": query,
            "epoch": "ns",
            "chunked": "true",
            "chunk_size": str(CHUNK_SIZE),
        }
        request = urllib.request.Request(  # noqa: S310  # the scheme is checked in __init__
            f"{self._url}/query?{urllib.parse.urlencode(parameters)}", headers=self._headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as answer:  # noqa: S310  # the configured InfluxDB URL, http(s) only
                body: bytes = answer.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            msg = f"InfluxDB at {self._url} answered {exc.code}: {detail}"
            raise InfluxError(msg) from None
        except (urllib.error.URLError, OSError) as exc:
            msg = f"cannot reach InfluxDB at {self._url}: {exc}"
            raise InfluxError(msg) from None
        for line in body.splitlines():
            if line.strip():
                document = orjson.loads(line)
                if "error" in document:
                    msg = f"InfluxDB refused {query!r}: {document['error']}"
                    raise InfluxError(msg)
                yield document


def _quoted(identifier: str) -> str:
    escaped = identifier.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
