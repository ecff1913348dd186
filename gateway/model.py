"""Value types that cross pipeline stages. Imports nothing from the rest of the gateway."""

from __future__ import annotations

from typing import NamedTuple

FieldValue = float | int | bool | str

# Message and Point are NamedTuples, not frozen dataclasses: both are built once per message or
# reading on the hot path, and a frozen dataclass's __init__ (one object.__setattr__ per field)
# cost ~0.9 µs against ~0.25 µs for a NamedTuple (measured, Python 3.11). Still immutable;
# change one with `_replace`.


class Message(NamedTuple):
    """One MQTT PUBLISH as the broker handed it over.

    `ack_token` is opaque to every stage but ingest: it identifies the delivery to acknowledge
    once the message's readings are durable. `redelivered` is MQTT's DUP flag: the broker sent
    this message before (to us, before a crash or reconnect); with `packet_id` it lets the
    pipeline give a redelivery its first receive time back.
    """

    topic: str
    payload: bytes
    received_ns: int
    retained: bool = False
    ack_token: object = None
    redelivered: bool = False
    packet_id: int = 0


class Point(NamedTuple):
    """One time-series point: what InfluxDB stores for one reading.

    Tags are kept as a tuple of (key, value) pairs sorted by key, the order InfluxDB
    recommends for line protocol and the order that makes two identical points compare equal.
    """

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: dict[str, FieldValue]
    time_ns: int
    database: str | None = None
    retention_policy: str | None = None


Drop = tuple[str, str]
"""(field or tag name, reason slug), e.g. ("dim_pct", "out_of_range"): something a message
lost on the way to points, while the rest was kept."""


class Row(NamedTuple):
    """One reading as the pipeline writes it.

    `series_key` is the line's `measurement,tag=value,...` prefix, escaped: the series as
    InfluxDB sees it. `device_id` is the `device_id` tag's value ("" without one): all the
    pipeline needs of the tags besides the line (no tag tuples are kept per row: ~5 MB at
    10,000 devices)."""

    line: str
    series_key: str
    time_ns: int
    device_id: str
