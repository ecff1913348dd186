"""The shipped codec profile against its documented frame format, and its simulated bays.

Random frames on random ports go through the parking bay sensor's profile and its JavaScript
codec (device_profiles/traffic/parking-sensor.js) by the same function the pipeline calls.
Each must come out either as exactly the reading an independent reading of the format in the
profile's header gives, or as a dead letter codec_error: never as other values. The simulated
bays (simulators/devices/parking_sensor.py) are checked for what a street looks like.
"""

from __future__ import annotations

import base64
import itertools
import json
import statistics
import struct
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cli import run_message
from gateway.process import Accepted, Refused
from gateway.profiles.policy import OFFLINE_POLICY
from gateway.profiles.registry import load_directory
from gateway.stages.lineprotocol import decode_line
from simulators.clock import parse_start
from simulators.fleet import build_fleet

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = load_directory(ROOT / "device_profiles", OFFLINE_POLICY)
TOPIC = "v3/mh-parking-bays/devices/pk-0003/up"
RSSI_DBM = -97
TEMPERATURE_RANGE = (-20, 80)  # the profile's min/max: other readings are dropped
BATTERY_RANGE_V = (2.0, 3.8)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def uplink(f_port: int, frame: bytes) -> bytes:
    return json.dumps({
        "end_device_ids": {"device_id": "pk-0003"},
        "received_at": "2026-11-24T02:15:01.498113Z",
        "uplink_message": {
            "f_port": f_port,
            "frm_payload": base64.b64encode(frame).decode(),
            "rx_metadata": [{"rssi": RSSI_DBM, "snr": 4.5}],
        },
    }).encode()  # fmt: skip


def expected_fields(f_port: int, frame: bytes) -> dict[str, Any] | None:
    """The stored fields the format in parking-sensor-codec.yaml promises; None: refused."""
    if f_port == 1 and len(frame) == 5 and frame[0] >> 4 == 1 and frame[0] & 0x0F <= 1:
        header, flags, arrivals, temperature = struct.unpack(">BBHb", frame)
        fields: dict[str, Any] = {}
        if not flags & 0x02:
            fields["occupied"] = flags & 0x01
        fields["state_changed"] = int(header & 0x0F == 0)
        fields["sensor_fault"] = flags >> 1 & 1
        fields["vehicle_arrivals"] = arrivals
        low, high = TEMPERATURE_RANGE
        if frame[4] != 0x80 and low <= temperature <= high:
            fields["temperature_c"] = float(temperature)
        return {**fields, "rssi_dbm": RSSI_DBM}
    if f_port == 2 and len(frame) == 3:
        battery_v = struct.unpack(">H", frame[:2])[0] / 1000
        lowest_v, highest_v = BATTERY_RANGE_V
        battery = {"battery_v": battery_v} if lowest_v <= battery_v <= highest_v else {}
        return {**battery, "rssi_dbm": RSSI_DBM}
    return None


def frames() -> st.SearchStrategy[tuple[int, bytes]]:
    """Mostly frames the codec takes (so both outcomes are well covered), some it refuses."""
    bay_report = st.tuples(
        st.sampled_from([0x10, 0x11, 0x12, 0x20, 0x00]),
        st.integers(0, 255),
        st.binary(min_size=2, max_size=2),
        st.integers(0, 255),
    ).map(lambda t: bytes([t[0], t[1]]) + t[2] + bytes([t[3]]))
    return st.one_of(
        st.tuples(st.just(1), bay_report),
        st.tuples(st.just(2), st.binary(min_size=3, max_size=3)),
        st.tuples(st.integers(1, 8), st.binary(min_size=1, max_size=8)),
    )


@SETTINGS
@given(frames())
def test_a_frame_is_read_as_documented_or_refused(port_and_frame: tuple[int, bytes]) -> None:
    f_port, frame = port_and_frame
    outcome = run_message(REGISTRY, TOPIC, uplink(f_port, frame), 0)
    expected = expected_fields(f_port, frame)
    if expected is None:
        assert isinstance(outcome, Refused), outcome
        assert outcome.reason == "codec_error"
        return
    assert isinstance(outcome, Accepted), outcome
    (line,) = outcome.readings.lines
    stored = dict(decode_line(line).fields)
    assert stored == expected
    assert all(type(stored[name]) is type(value) for name, value in expected.items())


def simulated_bays(days: int) -> list[dict[str, Any]]:
    """Truth readings of 30 simulated bays over `days`, with their local hour."""
    reports = days * 288
    fleet = build_fleet(
        {"parking-sensors": 30},
        seed=2,
        total_messages=30 * reports,
        start_ms=parse_start("2026-11-23T00:00:00+07:00"),
        now_ms=0,
    )
    return [
        {**r.fields, "hour": (r.time_ns // 10**9 + 7 * 3600) % 86_400 / 3600, "id": r.device_id}
        for message in fleet.messages()
        for r in message.readings
    ]


def test_bays_fill_for_the_market_and_empty_at_night() -> None:
    readings = simulated_bays(days=2)
    market = [r["occupied"] for r in readings if 6.5 <= r["hour"] < 8 and "occupied" in r]
    night = [r["occupied"] for r in readings if 1 <= r["hour"] < 4 and "occupied" in r]
    assert statistics.mean(market) > 0.6
    assert statistics.mean(night) < 0.2


def test_arrivals_count_the_changes_to_occupied() -> None:
    by_bay: dict[str, list[dict[str, Any]]] = {}
    for reading in simulated_bays(days=1):
        if "vehicle_arrivals" in reading:
            by_bay.setdefault(reading["id"], []).append(reading)
    for reports in by_bay.values():
        for before, after in itertools.pairwise(reports):
            arrived = after.get("occupied") == 1 and after["state_changed"] == 1
            assert after["vehicle_arrivals"] == (before["vehicle_arrivals"] + arrived) % 65536
            if after["state_changed"] and "occupied" in before:
                assert after["occupied"] != before["occupied"]
