"""The readings a simulator meant to send, in the gateway's canonical schema.

One JSON line per reading (not per MQTT message: a traffic message carries one reading per
lane), with the measurement, tags, UTC time in nanoseconds and fields in canonical units and
types (see docs/canonical-schema.md). Tests compare these lines with what InfluxDB stored.

With fault injection (`--faults`) two more kinds of line appear, both only for faulty messages:

- a fault record, `{"fault": ..., "topic": ..., "device_id": ..., "expect": ..., "reason": ...,
  "drops": [[field, reason], ...], "detail": ...}`, written just before the readings of the
  message it describes; `expect` says what a correct gateway does with the message (see
  `Expect`), and
- a receive-time reading: a reading whose device clock a correct gateway must not trust, so it
  is stored at the gateway's receive time. Its line has `"time": "receive"`, `time_ns` null,
  `sent_ns` (when the simulator handed the message to MQTT) and `window_s`: the stored point
  is the one with these tags and fields whose time lies in [sent_ns, sent_ns + window_s].

Without faults a truth file holds exactly the reading lines it always held.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self

import orjson

FieldValue = int | float | str
"""bool is an int: time_replaced=True is written as JSON true, as InfluxDB returns it; str is
a string field such as the hashed plate of an ANPR camera."""
Fields = dict[str, Any]
"""Field name -> FieldValue. Any, not FieldValue: almost every field is a number that models
and tests compute with, and a union with str would make each of them narrow it first."""

# How long after the hand-over a receive time may be: the broker holds a message while the
# gateway is busy, paused or restarting. Generous, because tags and fields pin the point down.
RECEIVE_WINDOW_S = 600


class Expect(StrEnum):
    """What a correct gateway does with a faulty message."""

    STORE = "store"  # every reading as given (duplicates collapse into one point)
    DROP_FIELD = "drop_field"  # the readings without the fields in `drops`
    RECEIVE_TIME = "receive_time"  # the readings at the receive time, flagged time_replaced
    DEAD_LETTER = "dead_letter"  # nothing stored; one dead letter with `reason`
    NOTHING = "nothing"  # the device sent nothing (it went silent)


@dataclass(frozen=True, slots=True)
class TruthReading:
    """One canonical reading. Field order is the JSON key order of a truth line."""

    measurement: str
    device_id: str
    tags: dict[str, str]
    time_ns: int
    fields: Fields


@dataclass(frozen=True, slots=True)
class ReceiveTimeReading:
    """A reading a correct gateway stores at its own receive time (the device clock is off)."""

    measurement: str
    device_id: str
    tags: dict[str, str]
    fields: Fields


TruthLine = TruthReading | ReceiveTimeReading


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One injected fault and what a correct gateway must do about it."""

    fault: str
    topic: str
    device_id: str
    expect: Expect
    reason: str | None = None
    drops: list[tuple[str, str]] = field(default_factory=list)
    detail: str = ""


def encode_reading(reading: TruthReading) -> bytes:
    """One truth line, newline included (orjson serialises the dataclass in field order)."""
    return orjson.dumps(reading, option=orjson.OPT_APPEND_NEWLINE)


def encode_receive_time_reading(reading: ReceiveTimeReading, sent_ns: int) -> bytes:
    line = {
        "measurement": reading.measurement,
        "device_id": reading.device_id,
        "tags": reading.tags,
        "time_ns": None,
        "fields": reading.fields,
        "time": "receive",
        "sent_ns": sent_ns,
        "window_s": RECEIVE_WINDOW_S,
    }
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)


def encode_fault(record: FaultRecord) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def decode_reading(line: bytes | str) -> TruthReading:
    raw = orjson.loads(line)
    return TruthReading(
        measurement=raw["measurement"],
        device_id=raw["device_id"],
        tags=raw["tags"],
        time_ns=raw["time_ns"],
        fields=raw["fields"],
    )


@dataclass(slots=True)
class TruthDocument:
    """A whole truth file, split by kind of line (see the module docstring)."""

    readings: list[TruthReading] = field(default_factory=list)
    receive_time: list[tuple[ReceiveTimeReading, int, int]] = field(default_factory=list)
    """(reading, earliest, latest receive time in ns)."""
    faults: list[FaultRecord] = field(default_factory=list)


def load_truth(path: Path) -> TruthDocument:
    document = TruthDocument()
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                _add_line(document, orjson.loads(line))
    return document


def _add_line(document: TruthDocument, raw: dict[str, Any]) -> None:
    if "fault" in raw:
        document.faults.append(
            FaultRecord(
                fault=raw["fault"],
                topic=raw["topic"],
                device_id=raw["device_id"],
                expect=Expect(raw["expect"]),
                reason=raw["reason"],
                drops=[(name, reason) for name, reason in raw["drops"]],
                detail=raw["detail"],
            )
        )
    elif raw.get("time") == "receive":
        reading = ReceiveTimeReading(
            raw["measurement"], raw["device_id"], raw["tags"], raw["fields"]
        )
        window = (raw["sent_ns"], raw["sent_ns"] + raw["window_s"] * 1_000_000_000)
        document.receive_time.append((reading, *window))
    else:
        document.readings.append(
            TruthReading(
                raw["measurement"], raw["device_id"], raw["tags"], raw["time_ns"], raw["fields"]
            )
        )


class TruthSink(Protocol):
    def write(self, readings: Sequence[TruthLine], fault: FaultRecord | None = None) -> None: ...


class DiscardTruth:
    """Used when no --truth file was asked for."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def write(self, readings: Sequence[TruthLine], fault: FaultRecord | None = None) -> None:
        pass


class TruthFile:
    """Appends truth lines to a file; a context manager so the last lines reach the disk.

    `now_ns` stamps receive-time readings with the moment they are written, which the runner
    does just before it hands their message to MQTT.
    """

    def __init__(self, path: Path, now_ns: Callable[[], int] = time.time_ns) -> None:
        self._path = path
        self._now_ns = now_ns
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

    def write(self, readings: Sequence[TruthLine], fault: FaultRecord | None = None) -> None:
        if self._file is None:
            msg = f"truth file {self._path} is not open"
            raise RuntimeError(msg)
        lines = [] if fault is None else [encode_fault(fault)]
        sent_ns: int | None = None
        for reading in readings:
            if isinstance(reading, ReceiveTimeReading):
                sent_ns = sent_ns or self._now_ns()
                lines.append(encode_receive_time_reading(reading, sent_ns))
            else:
                lines.append(encode_reading(reading))
        self._file.write(b"".join(lines))


def open_truth(path: Path | None) -> TruthFile | DiscardTruth:
    """A truth file to use in a `with` block, or a sink that forgets if there is no path."""
    return TruthFile(path) if path is not None else DiscardTruth()
