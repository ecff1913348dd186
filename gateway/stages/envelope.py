"""LoRaWAN network-server uplink envelopes: the frame, its port, and the radio details.

Pure and synchronous, used by gateway/stages/decode.py for the chirpstack_v4 and tts_v3
formats and for javascript codecs inside those envelopes. The decoded document is the
envelope JSON itself (every key stays addressable by field paths), plus:

- `payload`: what the frame decoder made of the frame (a layout's fields, a codec's `data`);
- `radio.rssi`, `radio.snr`: the best values over all receiving gateways (each the maximum
  over ChirpStack's rxInfo[] / The Things Stack's uplink_message.rx_metadata[]), so a second
  gateway hearing the device faintly does not hide the good link;
- `radio.gateways`: how many gateways received the frame;
- `radio.time`: when the frame was received, as the envelope's ISO 8601 text with its full
  fraction (nanoseconds kept): the gateway's time when one gateway has a GPS/NTP clock, else the
  network server's receive time (ChirpStack rxInfo[].nsTime; TTS uplink_message.received_at,
  then received_at).

Messages that are not readings raise DecodeError with their own reason:
- `simulated`: a TTS uplink sent from the console's "simulate uplink" (simulated: true). Kept out
  of the measurements; the dead letter shows someone tested the device.
- `empty_frame`: fPort 0 or no application payload (MAC commands only, e.g. a LinkCheckReq or
  an ADR answer). Not an error of the device: the pipeline acknowledges and counts it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.errors import DecodeError

FrameDecoder = Callable[[bytes, int, int], Any]
"""decode(frame, fPort, received_ms) -> the document's `payload`."""

EMPTY_FRAME = "empty_frame"
SIMULATED = "simulated"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def lorawan_decoder(
    network: str, decode_frame: FrameDecoder, *, with_time: bool = False
) -> Callable[[bytes], Any]:
    """A decoder for one network server's uplink JSON ('chirpstack_v4' or 'tts_v3').
    `with_time`: pass the receive time to `decode_frame` (a codec's recvTime), else 0."""
    chirpstack = network == "chirpstack_v4"

    def decode(payload: bytes) -> dict[str, Any]:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise DecodeError("invalid_json", str(exc)) from None
        if type(document) is not dict:
            raise DecodeError("invalid_envelope", "the JSON document is not an object")
        if chirpstack:
            text, fport, radio = _chirpstack(document)
        else:
            text, fport, radio = _tts(document)
        frame = from_base64(text)
        if not frame or fport == 0:
            raise DecodeError(EMPTY_FRAME, f"fPort {fport}, {len(frame)} bytes: MAC commands only")
        received_ms = _epoch_ms(radio.get("time")) if with_time else 0
        return {**document, "payload": decode_frame(frame, fport, received_ms), "radio": radio}

    return decode


def _chirpstack(document: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """ChirpStack v4 integration UplinkEvent (protobuf JSON mapping: camelCase, base64)."""
    rx_info = document.get("rxInfo")
    gateways = rx_info if type(rx_info) is list else []
    text = _text(document.get("data"), "data")
    radio = _radio(gateways)
    # The event's time, else the first gateway's GPS time, else the network server's.
    received = document.get("time")
    if type(received) is not str or not received:
        received = _gateway_time(gateways, "gwTime") or _gateway_time(gateways, "nsTime")
    if received is not None:
        radio["time"] = received
    return text, _port(document.get("fPort")), radio


def _tts(document: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """The Things Stack v3 ApplicationUp with an uplink_message."""
    if document.get("simulated") is True:
        raise DecodeError(SIMULATED, "simulated uplink (The Things Stack console or API)")
    uplink = document.get("uplink_message")
    if type(uplink) is not dict:
        raise DecodeError("missing_field", "no uplink_message object")
    metadata = uplink.get("rx_metadata")
    gateways = metadata if type(metadata) is list else []
    text = _text(uplink.get("frm_payload"), "uplink_message.frm_payload")
    radio = _radio(gateways)
    # The first gateway's time, else the network server's receive time, else the message's.
    received = (
        _gateway_time(gateways, "time")
        or _nonempty_text(uplink.get("received_at"))
        or _nonempty_text(document.get("received_at"))
    )
    if received is not None:
        radio["time"] = received
    return text, _port(uplink.get("f_port")), radio


def _text(value: Any, path: str) -> str:
    if value is None:
        return ""  # no application payload: an empty frame
    if type(value) is not str:
        raise DecodeError("missing_field", f"no base64 text at {path!r}")
    return value


def _port(value: Any) -> int:
    # protobuf's JSON mapping leaves out a zero fPort; TTS too.
    return value if type(value) is int else 0


def _radio(gateways: list[Any]) -> dict[str, Any]:
    """The gateway count and the best RSSI and SNR (max()'s rule: the first of equal values).

    One pass without comprehensions: this runs for every LoRaWAN uplink, and the lists and
    generators of the obvious version cost ~1 us of a ~3 us decode."""
    rssi = snr = None
    for gateway in gateways:
        if type(gateway) is not dict:
            continue
        value = gateway.get("rssi")
        if (type(value) is int or type(value) is float) and (rssi is None or value > rssi):
            rssi = value
        value = gateway.get("snr")
        if (type(value) is int or type(value) is float) and (snr is None or value > snr):
            snr = value
    radio: dict[str, Any] = {"gateways": len(gateways)}
    if rssi is not None:
        radio["rssi"] = rssi
    if snr is not None:
        radio["snr"] = snr
    return radio


def _gateway_time(gateways: list[Any], key: str) -> str | None:
    """The first receiving gateway's non-empty text at `key`."""
    for gateway in gateways:
        if type(gateway) is dict:
            value = gateway.get(key)
            if type(value) is str and value:
                return value
    return None


def _nonempty_text(value: Any) -> str | None:
    return value if type(value) is str and value else None


def from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII text
        raise DecodeError("invalid_base64", str(exc)) from None


def _epoch_ms(text: Any) -> int:
    """The codec's recvTime; 0 (1970) when the envelope has no readable time."""
    if type(text) is not str:
        return 0
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
