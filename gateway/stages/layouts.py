"""Binary frames described declaratively: variants, flag groups, channel streams. Pure.

`compile_frame` turns a profile's `layout:` into one closure at load time; per message only the
closure runs, and it either returns every value the layout declares for this frame or raises
DecodeError. It never guesses: a frame that fits no variant is `no_layout`, a value cut off is
`truncated`/`too_short`, a channel of unknown size is `unknown_channel`, so nothing misread
reaches normalize. A name another variant declares but the chosen one does not is
NOT_IN_VARIANT: normalize leaves its field out without a drop (an alarm frame has no volume by
design), while a value the chosen variant declares but the frame lacks stays `missing`.

What the frames of real LoRaWAN devices need, and where it is handled here:
- a report kind chosen by fPort or a header byte (Dragino, Netvox, Adeunis): `_variant_test`;
- channel/type streams (Milesight `03 67 <i16>`; Elsys `01 <i16>`): `_channel_stream`;
- groups behind presence-flag bits (Decentlab) and optional trailing bytes: `_group_reader`;
- 24-bit integers, BCD counters, signed bit fields, "no reading" sentinels (0xFFFF while a
  sensor warms up) and device clocks counting from 2000 or 2013: `_value_reader`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.errors import DecodeError
from gateway.profiles.compile import NO_READING, NOT_IN_VARIANT
from gateway.profiles.schema import (
    BinaryFieldSpec,
    BinaryLayoutSpec,
    ChannelsSpec,
    FlagSpec,
    FrameBodySpec,
    GroupSpec,
    WhenSpec,
)

FrameDecoder = Callable[[bytes, Any], dict[str, Any]]
"""decoder(frame, fport or None) -> {value name: value}."""

SKIPPED_KEY = "(skipped)"
"""Key of the decoded values that lists the channel/type pairs skipped as unknown. Not a valid
value name (see schema._IDENT), so it never collides with one."""

UNKNOWN_CHANNEL = "unknown_channel"
"""The reason of a skipped channel/type pair (a drop) and of one of unknown size (a dead
letter)."""

ValueReader = Callable[[bytes, int], Any]
"""reader(frame, start of the enclosing group or value) -> the value."""

STRUCT_CODES = {
    "u8": "B",
    "i8": "b",
    "u16": "H",
    "i16": "h",
    "u32": "I",
    "i32": "i",
    "u64": "Q",
    "i64": "q",
    "f32": "f",
    "f64": "d",
}


def compile_frame(layout: BinaryLayoutSpec) -> FrameDecoder:
    """The decoder of a layout with variants, groups, channels or the newer value types."""
    order = layout.byte_order
    if layout.variants is None:
        body = _body_reader(layout, order)
        return lambda frame, fport: body(frame)
    declared = layout.variant_only_names()
    choices = tuple(
        (
            _variant_test(variant.when, order),
            _body_reader(variant, order),
            dict.fromkeys(sorted(declared - set(variant.value_names())), NOT_IN_VARIANT),
        )
        for variant in layout.variants
    )

    def decode(frame: bytes, fport: Any) -> dict[str, Any]:
        for matches, body, undeclared in choices:
            if matches(frame, fport):
                values = body(frame)
                if undeclared:
                    values.update(undeclared)
                return values
        raise DecodeError(
            "no_layout", f"no variant of the layout fits fPort {fport} and {len(frame)} bytes"
        )

    return decode


# --- variants --------------------------------------------------------------------------------


def _as_set(value: int | list[int] | None) -> frozenset[int] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, int) else value)


def _variant_test(when: WhenSpec | None, order: str) -> Callable[[bytes, Any], bool]:
    """(frame, fport) -> whether the variant applies; reads only the tested value, and a frame
    too short to hold it does not match."""
    if when is None:
        return lambda frame, fport: True
    ports, lengths, values = _as_set(when.fport), _as_set(when.length), _as_set(when.equals)
    read = None
    needed = 0
    if when.offset is not None:
        spec = when.tested_value()
        read = _value_reader(spec, order)
        needed = when.offset + spec.size

    def matches(frame: bytes, fport: Any) -> bool:
        if ports is not None and fport not in ports:
            return False
        if lengths is not None and len(frame) not in lengths:
            return False
        if read is None or values is None:
            return True
        return len(frame) >= needed and read(frame, 0) in values

    return matches


# --- a frame's body: fields, then groups, then a channel stream ---------------------------------


def _body_reader(body: FrameBodySpec, order: str) -> Callable[[bytes], dict[str, Any]]:
    fixed = tuple((name, _value_reader(field, order)) for name, field in body.fields.items())
    needed = max((field.offset + field.size for field in body.fields.values()), default=0)
    groups = tuple(_group_reader(group, order) for group in body.then)
    stream = _channel_stream(body.channels, order) if body.channels else None
    constants = tuple(body.constants.items())

    def read(frame: bytes) -> dict[str, Any]:
        if len(frame) < needed:
            raise DecodeError("too_short", f"need {needed} bytes, got {len(frame)}")
        values = {name: reader(frame, 0) for name, reader in fixed}
        position = needed
        for group in groups:
            position = group(frame, position, values)
        if stream is not None:
            stream(frame, position, values)
        values.update(constants)
        return values

    return read


GroupReader = Callable[[bytes, int, dict[str, Any]], int]
"""group(frame, position, values) -> the position after the group; adds its values."""


def _group_reader(group: GroupSpec, order: str) -> GroupReader:
    fields = tuple((name, _value_reader(field, order)) for name, field in group.fields.items())
    size = max(field.offset + field.size for field in group.fields.values())
    present = group.present
    flag = present if isinstance(present, FlagSpec) else None
    optional = present == "room"

    def read(frame: bytes, position: int, values: dict[str, Any]) -> int:
        if flag is not None and not (values[flag.flag] >> flag.bit) & 1:
            return position  # absent: later groups start here
        if position + size > len(frame):
            if optional:
                return position
            raise DecodeError(
                "truncated", f"a group of {size} bytes at byte {position} of {len(frame)}"
            )
        for name, reader in fields:
            values[name] = reader(frame, position)
        return position + size

    return read


def _channel_stream(
    channels: ChannelsSpec, order: str
) -> Callable[[bytes, int, dict[str, Any]], None]:
    """Read (key, [length,] value) entries until the frame ends; an entry without a table row is
    skipped when its size is known (listed under SKIPPED_KEY), else the message is refused."""
    with_channel = channels.key == "channel_type"
    key_size = 2 if with_channel else 1
    table = {
        _pair_key(entry.channel, entry.type): (
            entry.value_size,
            tuple((name, _value_reader(field, order)) for name, field in entry.fields.items()),
        )
        for entry in channels.entries
    }
    skip_sizes = dict(channels.skip)
    length_byte = channels.length_byte

    def read(frame: bytes, position: int, values: dict[str, Any]) -> None:
        end = len(frame)
        skipped: list[str] = []
        while position < end:
            if position + key_size + length_byte > end:
                raise DecodeError("truncated", f"an entry header cut off at byte {position}")
            start = position
            kind = frame[position + key_size - 1]
            key = frame[position] << 8 | kind if with_channel else kind
            position += key_size
            declared = frame[position] if length_byte else None
            position += length_byte
            found = table.get(key)
            size = found[0] if found else declared if declared is not None else skip_sizes.get(kind)
            if size is None:
                raise DecodeError(
                    UNKNOWN_CHANNEL, f"{_label(frame, start, key_size)} of unknown size"
                )
            if declared is not None and declared != size:
                raise DecodeError(
                    "bad_length",
                    f"{_label(frame, start, key_size)} says {declared} bytes, expected {size}",
                )
            if position + size > end:
                raise DecodeError(
                    "truncated", f"{_label(frame, start, key_size)} needs {size} bytes"
                )
            if found is None:
                skipped.append(_label(frame, start, key_size))
            else:
                for name, reader in found[1]:
                    values[name] = reader(frame, position)
            position += size
        if skipped:
            values[SKIPPED_KEY] = skipped

    return read


def _pair_key(channel: int | None, kind: int) -> int:
    return kind if channel is None else channel << 8 | kind


def _label(frame: bytes, start: int, key_size: int) -> str:
    """'channel 0x03 0x67 at byte 7': for messages and the skipped list only (built lazily)."""
    key = frame[start : start + key_size]
    return "channel " + " ".join(f"0x{byte:02x}" for byte in key) + f" at byte {start}"


def skipped_channels(values: Any) -> list[str]:
    """The channel/type pairs a decoded frame skipped (for counting them as unknown_channel)."""
    if type(values) is dict:
        skipped = values.get(SKIPPED_KEY)
        if skipped is None and type(values.get("payload")) is dict:
            skipped = values["payload"].get(SKIPPED_KEY)
        if type(skipped) is list:
            return skipped
    return []


def skipped_drops(document: Any) -> list[tuple[str, str]]:
    """(pair, unknown_channel) drops for the pairs a decoded frame skipped: what the message
    rules add to a message's drops so skipped channels are counted by reason."""
    return [(label, UNKNOWN_CHANNEL) for label in skipped_channels(document)]


# --- one value -------------------------------------------------------------------------------


def _value_reader(field: BinaryFieldSpec, order: str) -> ValueReader:
    """Raw read, then bits (with sign), sentinel and epoch, each only when the field says so."""
    read = _raw_reader(field, order)
    if field.bits is not None:
        read = _bit_field(read, field.bits, signed=field.signed)
    if field.no_reading:
        read = _sentinel(read, frozenset(field.no_reading))
    if field.epoch is not None:
        read = _device_clock(read, field.epoch, field.timezone)
    return read


def _raw_reader(field: BinaryFieldSpec, order: str) -> ValueReader:
    offset, size = field.offset, field.size
    if field.type == "bcd":
        return lambda frame, base: _bcd(frame[base + offset : base + offset + size])
    if field.type == "ascii":
        return lambda frame, base: _ascii(frame[base + offset : base + offset + size])
    if field.type == "hex":
        return lambda frame, base: frame[base + offset : base + offset + size].hex()
    if field.type in ("u24", "i24"):
        signed = field.type == "i24"
        byteorder: Literal["big", "little"] = "big" if order == "big" else "little"

        def read_24(frame: bytes, base: int) -> int:
            start = base + offset
            return int.from_bytes(frame[start : start + 3], byteorder, signed=signed)

        return read_24
    unpack_from = struct.Struct((">" if order == "big" else "<") + STRUCT_CODES[field.type])
    unpack = unpack_from.unpack_from
    return lambda frame, base: unpack(frame, base + offset)[0]


def _bcd(data: bytes) -> Any:
    """Two decimal digits a byte, most significant first; any nibble above 9 (meters send FF
    for no reading) makes the value NO_READING."""
    text = data.hex()
    return int(text) if text.isdigit() else NO_READING


def _ascii(data: bytes) -> Any:
    """Text padded with NULs or spaces; empty, or anything but printable ASCII, is no reading."""
    text = data.rstrip(b"\x00 ")
    if text and text.isascii() and text.decode().isprintable():
        return text.decode()
    return NO_READING


def _bit_field(read: ValueReader, bits: str, *, signed: bool) -> ValueReader:
    start, length = (int(part) for part in bits.split(":"))
    mask = (1 << length) - 1
    sign = 1 << (length - 1)
    if not signed:
        # Python's >> and & on a negative int act on its two's complement, as C would on bytes.
        return lambda frame, base: (read(frame, base) >> start) & mask
    # Two's complement of `length` bits: (v ^ sign) - sign maps 0..2^n-1 onto -2^(n-1)..2^(n-1)-1.
    return lambda frame, base: (((read(frame, base) >> start) & mask) ^ sign) - sign


def _sentinel(read: ValueReader, sentinels: frozenset[int]) -> ValueReader:
    def checked(frame: bytes, base: int) -> Any:
        value = read(frame, base)
        return NO_READING if value in sentinels else value

    return checked


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _device_clock(read: ValueReader, epoch: date, zone_name: str | None) -> ValueReader:
    """Seconds since `epoch` -> Unix seconds; with a zone, the device counts local wall time."""
    start = datetime(epoch.year, epoch.month, epoch.day, tzinfo=UTC)
    shift = int((start - _UNIX_EPOCH).total_seconds())
    if zone_name is None:

        def utc_clock(frame: bytes, base: int) -> Any:
            value = read(frame, base)
            return value if value is NO_READING else value + shift

        return utc_clock
    zone = ZoneInfo(zone_name)

    def local_clock(frame: bytes, base: int) -> Any:
        value = read(frame, base)
        if value is NO_READING:
            return value
        unix = value + shift  # the wall time as if it were UTC
        try:
            wall = datetime.fromtimestamp(unix, UTC).replace(tzinfo=None)
        except (OverflowError, ValueError, OSError):  # beyond year 9999: normalize refuses it
            return unix
        offset = zone.utcoffset(wall)
        return unix - int(offset.total_seconds()) if offset is not None else unix

    return local_clock
