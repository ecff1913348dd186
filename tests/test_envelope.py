"""LoRaWAN envelope details: best gateway, gateway count, simulated and empty uplinks, times."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gateway.errors import DecodeError
from gateway.profiles.compile import _iso8601_parser
from gateway.stages.envelope import lorawan_decoder

chirpstack = lorawan_decoder(
    "chirpstack_v4", lambda frame, fport, ms: {"n": len(frame), "port": fport}
)
tts = lorawan_decoder(
    "tts_v3", lambda frame, fport, ms: {"n": len(frame), "port": fport, "ms": ms}, with_time=True
)


def cs(**event: Any) -> bytes:
    return json.dumps(
        {"fPort": 2, "data": base64.b64encode(b"\x01\x02").decode(), **event}
    ).encode()


def tts_up(uplink: dict[str, Any], **event: Any) -> bytes:
    base = {"f_port": 2, "frm_payload": "AQI=", **uplink}
    return json.dumps(
        {"received_at": "2026-11-24T01:00:09Z", "uplink_message": base, **event}
    ).encode()


def test_chirpstack_best_rssi_and_snr_over_all_gateways() -> None:
    rx = [{"rssi": -118, "snr": -12.5}, {"rssi": -91, "snr": 2.0}, {"rssi": -104, "snr": 6.25}]
    document = chirpstack(cs(rxInfo=rx, time="2026-11-24T01:00:00.987654321Z"))
    assert document["radio"] == {
        "gateways": 3,
        "rssi": -91,
        "snr": 6.25,
        "time": "2026-11-24T01:00:00.987654321Z",
    }
    assert document["payload"] == {"n": 2, "port": 2}
    assert document["rxInfo"] == rx  # the envelope stays addressable


def test_chirpstack_without_event_time_falls_back_to_gateway_then_network_server_time() -> None:
    gw = chirpstack(cs(rxInfo=[{"rssi": -90, "gwTime": "2026-11-24T01:00:01Z", "nsTime": "x"}]))
    assert gw["radio"]["time"] == "2026-11-24T01:00:01Z"
    ns = chirpstack(cs(rxInfo=[{"rssi": -90, "nsTime": "2026-11-24T01:00:02.5Z"}]))
    assert ns["radio"]["time"] == "2026-11-24T01:00:02.5Z"
    assert chirpstack(cs())["radio"] == {"gateways": 0}


def test_tts_gateway_time_else_received_at_and_the_codec_gets_it_as_recv_time() -> None:
    meta = [{"rssi": -100, "snr": 1.5, "time": "2026-11-24T01:00:00.123456789Z"}, {"rssi": -80}]
    document = tts(tts_up({"rx_metadata": meta}))
    assert document["radio"] == {
        "gateways": 2,
        "rssi": -80,
        "snr": 1.5,
        "time": "2026-11-24T01:00:00.123456789Z",
    }
    assert document["payload"]["ms"] == 1795482000123
    no_gateway_time = tts(tts_up({"rx_metadata": [{"rssi": -80}]}))
    assert no_gateway_time["radio"]["time"] == "2026-11-24T01:00:09Z"
    ns_received = tts(tts_up({"received_at": "2026-11-24T01:00:08.1Z"}))
    assert ns_received["radio"]["time"] == "2026-11-24T01:00:08.1Z"


def test_envelope_times_keep_their_nanoseconds() -> None:
    parse = _iso8601_parser("UTC")
    assert parse("2026-11-24T01:00:00.123456789Z") == 1795482000123456789
    assert parse("2026-11-24T01:00:00.1234567+00:00") == 1795482000123456700
    assert parse("2026-11-24T01:00:00.123456Z") == 1795482000123456000
    assert parse("2026-11-24T08:00:00Z") == 1795507200000000000


def test_simulated_tts_uplinks_are_dead_letters_of_their_own() -> None:
    with pytest.raises(DecodeError) as caught:
        tts(tts_up({}, simulated=True))
    assert caught.value.reason == "simulated"


@pytest.mark.parametrize(
    "payload",
    [
        cs(fPort=0, data=base64.b64encode(b"\x03\x01").decode()),  # MAC commands on port 0
        json.dumps({"fCnt": 3, "rxInfo": []}).encode(),  # no port, no data
        cs(data=""),
    ],
)
def test_chirpstack_empty_frames_are_their_own_reason(payload: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        chirpstack(payload)
    assert caught.value.reason == "empty_frame"


def test_tts_uplink_without_frm_payload_is_an_empty_frame() -> None:
    with pytest.raises(DecodeError, match="empty_frame"):
        tts(json.dumps({"uplink_message": {"f_port": 0}}).encode())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[1, 2]", "invalid_envelope"),
        (b"{", "invalid_json"),
        (json.dumps({"fPort": 2, "data": 5}).encode(), "missing_field"),
        (json.dumps({"fPort": 2, "data": "@@"}).encode(), "invalid_base64"),
    ],
)
def test_broken_envelopes_keep_their_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        chirpstack(payload)
    assert caught.value.reason == reason
