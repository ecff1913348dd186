"""The readings a simulator meant to send, in the gateway's canonical schema.

One JSON line per reading (not per MQTT message: a traffic message carries one reading per
lane), with the measurement, tags, UTC time in nanoseconds and fields in canonical units and
types (see docs/canonical-schema.md). Tests compare these lines with what InfluxDB stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

import orjson

FieldValue = int | float


@dataclass(frozen=True, slots=True)
class TruthReading:
    """One canonical reading. Field order is the JSON key order of a truth line."""

    measurement: str
    device_id: str
    tags: dict[str, str]
    time_ns: int
    fields: dict[str, FieldValue]


def encode_reading(reading: TruthReading) -> bytes:
    """One truth line, newline included (orjson serialises the dataclass in field order)."""
    return orjson.dumps(reading, option=orjson.OPT_APPEND_NEWLINE)


def decode_reading(line: bytes | str) -> TruthReading:
    raw = orjson.loads(line)
    return TruthReading(
        measurement=raw["measurement"],
        device_id=raw["device_id"],
        tags=raw["tags"],
        time_ns=raw["time_ns"],
        fields=raw["fields"],
    )


class TruthSink(Protocol):
    def write(self, readings: list[TruthReading]) -> None: ...


class DiscardTruth:
    """Used when no --truth file was asked for."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def write(self, readings: list[TruthReading]) -> None:
        pass


class TruthFile:
    """Appends truth lines to a file; a context manager so the last lines reach the disk."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def __enter__(self) -> Self:
        self._file = self._path.open("wb")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, readings: list[TruthReading]) -> None:
        if self._file is None:
            msg = f"truth file {self._path} is not open"
            raise RuntimeError(msg)
        self._file.write(b"".join(map(encode_reading, readings)))


def open_truth(path: Path | None) -> TruthFile | DiscardTruth:
    """A truth file to use in a `with` block, or a sink that forgets if there is no path."""
    return TruthFile(path) if path is not None else DiscardTruth()
