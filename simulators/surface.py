"""Where a device's payload keeps its timestamp and its values, so faults can edit them.

Each device module describes its own payload in the simulator's terms (a JSON path, a key of
key=value text, a CSV column, a byte offset and struct format) together with edits that make a
field implausible (outside the profile's min/max) or of the wrong type. Fault injection applies
these to the bytes a device produced, the way a glitching sensor or a firmware bug would, and
knows from the edit which canonical field a correct gateway drops.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import orjson

from simulators.clock import LOCAL_TZ, MS_PER_S, local_iso_ms, local_naive_s, utc_rfc3339

PayloadFormat = Literal["json", "keyvalue", "csv", "binary"]

EVERY = "*"
"""In a JSON path: every element of the array (e.g. the time of every vehicle in a batch)."""


class JsonPath(NamedTuple):
    path: tuple[str | int, ...]


class Key(NamedTuple):
    """A key of key=value text."""

    key: str


class Column(NamedTuple):
    """A 0-based CSV column."""

    number: int


class Packed(NamedTuple):
    """A value at a byte offset of a binary frame, as a struct format such as '>I'."""

    offset: int
    fmt: str


class EnvelopeFrame(NamedTuple):
    """A value at a byte offset of a base64 frame inside a JSON envelope (a LoRaWAN uplink's
    frm_payload), as a struct format."""

    path: tuple[str | int, ...]
    offset: int
    fmt: str


Slot = JsonPath | Key | Column | Packed | EnvelopeFrame

TimeEncoding = Literal[
    "epoch_ms", "epoch_s", "iso_local", "iso_utc", "naive_local", "naive_space", "local_s2000"
]
"""How a device writes its clock: epoch numbers, ISO 8601 with +07:00, ISO 8601 UTC with Z,
local wall time without an offset (T or space between date and time), or seconds of local
wall time since 2000-01-01 (a LoRaWAN meter's clock; a reset one reads 2000-01-01)."""

_LOCAL_2000_SHIFT_S = 946_684_800 - 7 * 3600  # 2000-01-01 00:00 in Vietnam (UTC+7), Unix s

WITH_OFFSET: frozenset[TimeEncoding] = frozenset({"iso_local", "iso_utc"})


@dataclass(frozen=True, slots=True)
class TimeSlot:
    slot: Slot
    encoding: TimeEncoding


@dataclass(frozen=True, slots=True)
class FieldEdit:
    """Writing `value` at `slot` makes a correct gateway drop `field` of reading `reading`."""

    slot: Slot
    field: str
    value: int | float | str
    reading: int = 0


@dataclass(frozen=True, slots=True)
class PayloadSurface:
    format: PayloadFormat
    time: TimeSlot
    out_of_range: tuple[FieldEdit, ...] = ()
    wrong_type: tuple[FieldEdit, ...] = ()
    pair_separator: str = ";"
    kv_separator: str = "="
    delimiter: str = ","


def write_slot(payload: bytes, surface: PayloadSurface, slot: Slot, value: object) -> bytes:
    """The payload with `value` at `slot` (JSON values as given, text as str(value))."""
    match slot:
        case JsonPath(path):
            document = orjson.loads(payload)
            _set_json(document, path, value)
            return orjson.dumps(document)
        case Key(key):
            return _set_pair(payload, surface, key, str(value))
        case Column(number):
            cells = payload.decode().split(surface.delimiter)
            cells[number] = str(value)
            return surface.delimiter.join(cells).encode()
        case Packed(offset, fmt):
            frame = bytearray(payload)
            struct.pack_into(fmt, frame, offset, value)
            return bytes(frame)
        case EnvelopeFrame(path, offset, fmt):
            document = orjson.loads(payload)
            node: Any = document
            for step in path[:-1]:
                node = node[step]
            inner = bytearray(base64.b64decode(node[path[-1]]))
            struct.pack_into(fmt, inner, offset, value)
            node[path[-1]] = base64.b64encode(bytes(inner)).decode()
            return orjson.dumps(document)


def read_slot(payload: bytes, surface: PayloadSurface, slot: Slot) -> object:
    """The value at `slot` (for JSON with '*', the first element's)."""
    match slot:
        case JsonPath(path):
            node: Any = orjson.loads(payload)
            for step in path:
                node = node[0 if step == EVERY else step]
            return node
        case Key(key):
            pairs = dict(_pairs(payload, surface))
            return pairs[key]
        case Column(number):
            return payload.decode().split(surface.delimiter)[number]
        case Packed(offset, fmt):
            return struct.unpack_from(fmt, payload, offset)[0]
        case EnvelopeFrame(path, offset, fmt):
            node = orjson.loads(payload)
            for step in path:
                node = node[step]
            return struct.unpack_from(fmt, base64.b64decode(node), offset)[0]


def _set_json(node: Any, path: tuple[str | int, ...], value: object) -> None:
    *parents, last = path
    for position, step in enumerate(parents):
        if step == EVERY:
            for element in node:
                _set_json(element, path[position + 1 :], value)
            return
        node = node[step]
    if last == EVERY:
        node[:] = [value] * len(node)
    else:
        node[last] = value


def _pairs(payload: bytes, surface: PayloadSurface) -> list[tuple[str, str]]:
    pairs = []
    for pair in payload.decode().split(surface.pair_separator):
        key, _, value = pair.partition(surface.kv_separator)
        pairs.append((key, value))
    return pairs


def _set_pair(payload: bytes, surface: PayloadSurface, key: str, text: str) -> bytes:
    pairs = [(k, text if k == key else v) for k, v in _pairs(payload, surface)]
    joined = surface.pair_separator.join(f"{k}{surface.kv_separator}{v}" for k, v in pairs)
    return joined.encode()


def encode_time(encoding: TimeEncoding, epoch_ms: int) -> int | str:  # noqa: PLR0911  # one return per encoding
    """A device clock reading of `epoch_ms` as the device writes it."""
    epoch_s = epoch_ms // MS_PER_S
    match encoding:
        case "epoch_ms":
            return epoch_ms
        case "epoch_s":
            return epoch_s
        case "iso_local":
            return local_iso_ms(epoch_ms)
        case "iso_utc":
            return utc_rfc3339(epoch_ms * 1000)
        case "naive_local":
            return local_naive_s(epoch_s)
        case "naive_space":
            return local_naive_s(epoch_s, sep=" ")
        case "local_s2000":
            return max(0, epoch_s - _LOCAL_2000_SHIFT_S)


def without_offset(text: str) -> str:
    """The same instant as local wall time without an offset: what a device whose clock was
    set to local time, but whose firmware forgot the offset, sends."""
    moment = datetime.fromisoformat(text).astimezone(LOCAL_TZ).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
