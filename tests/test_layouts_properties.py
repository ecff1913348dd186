"""Random frames against each shipped variant, flag and channel profile: never a misread.

For every frame (built to hit the layouts' edges: right and wrong report types and ports,
flags announcing groups the frame may not hold, channel streams with known, skippable and
unknown entries, cut at any byte) the gateway's layout decoder must either refuse the frame
with a dead-letter reason or return exactly the values an independent reference decoding,
written here by hand from each profile's frame description, reads. The reference shares no
code with gateway/stages/layouts.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import DecodeError
from gateway.profiles.compile import NO_READING, NOT_IN_VARIANT
from gateway.profiles.registry import load_file
from gateway.profiles.schema import BinaryLayoutSpec
from gateway.stages.decode import frame_decoder
from gateway.stages.layouts import SKIPPED_KEY

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _layout(file: str) -> BinaryLayoutSpec:
    layout = getattr(load_file(PROFILES / file).decode_spec, "layout", None)
    assert isinstance(layout, BinaryLayoutSpec)
    return layout


AIR = frame_decoder(_layout("environment/air-quality-tlv.yaml"))
METER = frame_decoder(_layout("water/smart-meter-variants-tts.yaml"))
RIVER = frame_decoder(_layout("water/river-probe-flags-tts.yaml"))
CS_METER = frame_decoder(_layout("water/water-meter-fport-chirpstack.yaml"))


class Refused(Exception):  # noqa: N818  # the reference's dead letter, named like the gateway's
    pass


def outcome(decode: Any, frame: bytes, fport: int | None) -> Any:
    try:
        return decode(frame, fport)
    except DecodeError as exc:
        return ("dead letter", exc.reason)


def expected(reference: Any, *args: Any) -> Any:
    try:
        return reference(*args)
    except Refused as exc:
        return ("dead letter", exc.args[0])


def _cut(frame: bytes, data: st.DataObject) -> bytes:
    """The frame, or (one time in three) the frame cut at a random byte."""
    if data.draw(st.integers(0, 2)) == 0:
        return frame[: data.draw(st.integers(0, len(frame)))]
    return frame


# --- the air-quality station: a Milesight-style channel stream ----------------------------------

AIR_ENTRIES = {  # (channel, type) -> (name, size, signed); little-endian
    (0x01, 0x75): ("battery", 1, False),
    (0x03, 0x67): ("temperature", 2, True),
    (0x04, 0x68): ("humidity", 1, False),
    (0x05, 0x7D): ("co2", 2, False),
    (0x06, 0x73): ("pressure", 2, False),
    (0x07, 0x7D): ("pm25", 2, False),
}
AIR_SKIP = {0x01: 1, 0x09: 2, 0x0A: 2, 0x0B: 1}


def air_reference(frame: bytes) -> dict[str, Any]:
    values: dict[str, Any] = {}
    skipped = []
    at = 0
    while at < len(frame):
        if at + 2 > len(frame):
            raise Refused("truncated")
        channel, kind = frame[at], frame[at + 1]
        start = at
        at += 2
        if (channel, kind) in AIR_ENTRIES:
            name, size, signed = AIR_ENTRIES[(channel, kind)]
            if at + size > len(frame):
                raise Refused("truncated")
            value = int.from_bytes(frame[at : at + size], "little", signed=signed)
            values[name] = NO_READING if name == "co2" and value == 0xFFFF else value
        elif kind in AIR_SKIP:
            size = AIR_SKIP[kind]
            if at + size > len(frame):
                raise Refused("truncated")
            skipped.append(f"channel 0x{channel:02x} 0x{kind:02x} at byte {start}")
        else:
            raise Refused("unknown_channel")
        at += size
    if skipped:
        values[SKIPPED_KEY] = skipped
    return values


def air_entry() -> st.SearchStrategy[bytes]:
    known = st.sampled_from(sorted(AIR_ENTRIES)).flatmap(
        lambda pair: st.binary(min_size=AIR_ENTRIES[pair][1], max_size=AIR_ENTRIES[pair][1]).map(
            lambda value: bytes(pair) + value
        )
    )
    skippable = st.sampled_from(sorted(AIR_SKIP)).flatmap(
        lambda kind: st.binary(min_size=AIR_SKIP[kind], max_size=AIR_SKIP[kind]).map(
            lambda value: bytes([0xFF, kind]) + value
        )
    )
    sentinel = st.just(bytes.fromhex("057dffff"))
    anything = st.binary(min_size=1, max_size=4)
    return st.one_of(known, known, skippable, sentinel, anything)


@SETTINGS
@given(st.lists(air_entry(), max_size=8), st.data())
def test_channel_stream_never_misreads(entries: list[bytes], data: st.DataObject) -> None:
    frame = _cut(b"".join(entries), data)
    assert outcome(AIR, frame, 5) == expected(air_reference, frame)


# --- the water meter: variants by fPort and report type -----------------------------------------

CLOCK_SHIFT_S = 946_684_800 - 7 * 3600  # 2000-01-01 in Vietnamese local time (UTC+7)


def _u(frame: bytes, at: int, size: int, *, signed: bool = False) -> int:
    return int.from_bytes(frame[at : at + size], "big", signed=signed)


# The names of both meters' values that only some kinds of frame have (the TTS meter's clock is
# in every frame).
METER_NAMES = ["volume_l", "flow_lh", "battery_pct", "leak", "backflow", "tamper"]
METER_NAMES += ["battery_mv", "temperature"]


def _with_undeclared(values: dict[str, Any]) -> dict[str, Any]:
    """A meter frame's values; the names only the other kinds of frame have are NOT_IN_VARIANT."""
    return {**dict.fromkeys(METER_NAMES, NOT_IN_VARIANT), **values}


def meter_reference(frame: bytes, fport: int | None) -> dict[str, Any]:
    return _with_undeclared(_meter_values(frame, fport))


def _meter_values(frame: bytes, fport: int | None) -> dict[str, Any]:
    kind = frame[0] if frame else None
    if fport == 1 and kind == 0x01:
        if len(frame) < 12:
            raise Refused("too_short")
        digits = frame[5:9].hex()
        return {
            "clock": _u(frame, 1, 4) + CLOCK_SHIFT_S,
            "volume_l": int(digits) if digits.isdigit() else NO_READING,
            "flow_lh": _u(frame, 9, 2, signed=True),
            "battery_pct": frame[11],
        }
    if fport == 1 and kind == 0x02:
        if len(frame) < 6:
            raise Refused("too_short")
        return {
            "clock": _u(frame, 1, 4) + CLOCK_SHIFT_S,
            "leak": frame[5] & 1,
            "backflow": frame[5] >> 1 & 1,
            "tamper": frame[5] >> 2 & 1,
        }
    if fport == 2:  # the status port
        if len(frame) < 8:
            raise Refused("too_short")
        return {
            "clock": _u(frame, 1, 4) + CLOCK_SHIFT_S,
            "battery_mv": _u(frame, 5, 2),
            "temperature": _u(frame, 7, 1, signed=True),
        }
    raise Refused("no_layout")


@SETTINGS
@given(
    st.sampled_from([1, 1, 2, 3, 0, 223, None]),
    st.sampled_from([0x01, 0x02, 0x07, 0x00, 0xFF]),
    st.one_of(st.binary(max_size=14), st.just(bytes.fromhex("32980080ffffffffff8857"))),
    st.data(),
)
def test_variants_never_misread(
    fport: int | None, kind: int, body: bytes, data: st.DataObject
) -> None:
    frame = _cut(bytes([kind]) + body, data)
    assert outcome(METER, frame, fport) == expected(meter_reference, frame, fport)


# --- the ChirpStack water meter: variants by fPort alone, little-endian -------------------------


def cs_meter_reference(frame: bytes, fport: int | None) -> dict[str, Any]:
    return _with_undeclared(_cs_meter_values(frame, fport))


def _cs_meter_values(frame: bytes, fport: int | None) -> dict[str, Any]:
    def le(at: int, size: int, *, signed: bool = False) -> int:
        return int.from_bytes(frame[at : at + size], "little", signed=signed)

    if fport == 100:  # the index
        if len(frame) < 8:
            raise Refused("too_short")
        volume = le(0, 4)
        return {
            "volume_l": NO_READING if volume == 0xFFFFFFFF else volume,
            "flow_lh": le(4, 2, signed=True),
            "battery_pct": frame[6],
            "leak": frame[7] & 1,
            "backflow": frame[7] >> 1 & 1,
            "tamper": frame[7] >> 2 & 1,
        }
    if fport == 103:  # the daily status
        if len(frame) < 3:
            raise Refused("too_short")
        return {"battery_mv": le(0, 2), "temperature": le(2, 1, signed=True)}
    raise Refused("no_layout")


@SETTINGS
@given(
    st.sampled_from([100, 100, 103, 103, 101, 0, 2, None]),
    st.one_of(st.binary(max_size=12), st.just(bytes.fromhex("ffffffff88ff5607"))),
    st.data(),
)
def test_port_variants_never_misread(fport: int | None, body: bytes, data: st.DataObject) -> None:
    frame = _cut(body, data)
    assert outcome(CS_METER, frame, fport) == expected(cs_meter_reference, frame, fport)


# --- the river probe: groups behind flag bits, an optional status word ----------------------------


def river_reference(frame: bytes) -> dict[str, Any]:
    if not frame or frame[0] != 2:  # protocol version 2
        raise Refused("no_layout")
    if len(frame) < 5:
        raise Refused("too_short")
    flags = _u(frame, 3, 2)
    values: dict[str, Any] = {"flags": flags}
    at = 5
    groups: list[tuple[int, int, Callable[[int], dict[str, Any]]]] = [
        (0, 4, lambda at: {"level_mm": _u(frame, at, 2), "temperature": _temperature(frame, at)}),
        (1, 3, lambda at: {"conductivity": _u(frame, at, 3)}),
        (2, 2, lambda at: {"battery_mv": _u(frame, at, 2)}),
    ]
    for bit, size, read in groups:
        if flags >> bit & 1:
            if at + size > len(frame):
                raise Refused("truncated")
            values.update(read(at))
            at += size
    if at + 2 <= len(frame):
        word = _u(frame, at, 2)
        tilt = word & 0xFFF
        values["tilt"] = tilt - 0x1000 if tilt >= 0x800 else tilt
        values["error_code"] = word >> 12
    return values


def _temperature(frame: bytes, at: int) -> Any:
    raw = _u(frame, at + 2, 2, signed=True)
    return NO_READING if raw == 0x7FFF else raw


@SETTINGS
@given(
    st.sampled_from([2, 2, 2, 3, 0]),
    st.integers(0, 0xFFFF),
    st.integers(0, 15).map(lambda bits: bits & 7 if bits < 12 else bits << 12),
    st.binary(max_size=16),
    st.data(),
)
def test_flag_groups_never_misread(
    version: int, serial: int, flags: int, body: bytes, data: st.DataObject
) -> None:
    frame = _cut(
        bytes([version]) + serial.to_bytes(2, "big") + flags.to_bytes(2, "big") + body, data
    )
    assert outcome(RIVER, frame, 2) == expected(river_reference, frame)
