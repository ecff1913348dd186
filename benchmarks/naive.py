"""Reference (b), the naive pipeline: paho -> orjson -> line protocol -> 5000-point batches -> HTTP.

What a competent one-afternoon script does, and what the gateway has to beat by 1.5x: paho's
callback API on MQTT 3.1.1 at QoS 1 with paho's automatic acknowledgement (on receipt, before
the write: a crash loses what is buffered), JSON through orjson, other payloads read
generically, one point per message (or per element of a top-level list of objects, like a
traffic counter's lanes), tags from the topic, the receive time as timestamp, every number
written as a float (so no field-type conflicts), and a blocking HTTP POST from the MQTT
callback whenever 5000 points are buffered or the oldest is a second old. No profiles, no
units, no validation, no spool, no dead letters.

`python -m benchmarks.naive --port P --client-id ID --influx http://HOST:PORT --db NAME`
prints `ready` once loaded and then runs until terminated.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from benchmarks.pahoclient import (
    TOPIC_FILTERS,
    arguments,
    connect_when_up,
    create_session,
    persistent_client,
    say,
)

BATCH_POINTS = 5000
BATCH_AGE_S = 1.0
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})


def lines_for(topic: str, payload: bytes | bytearray, time_ns: int) -> list[str]:
    """Line protocol for one message: measurement and tags from the topic, fields from the
    payload, whatever its format."""
    levels = topic.split("/")
    measurement = f"{levels[1]}_{levels[-1]}".translate(_KEY_ESCAPES)
    tags = "device=" + levels[-2].translate(_KEY_ESCAPES)
    if levels[0] == "city":
        tags = f"district={levels[2].translate(_KEY_ESCAPES)},{tags}"
    series = f"{measurement},{tags}"
    records = _records(payload)
    if len(records) == 1:
        return [f"{series} {_fields(records[0])} {time_ns}"]
    return [
        f"{series},item={index} {_fields(record)} {time_ns}"
        for index, record in enumerate(records)
        if record
    ]


def points_of(messages: list[tuple[str, bytes]]) -> int:
    """How many points this script writes for `messages` (what it must store)."""
    return sum(len(lines_for(topic, payload, 0)) for topic, payload in messages)


def _records(payload: bytes | bytearray) -> list[dict[str, Any]]:
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return [_text_fields(payload)]
    if not isinstance(document, dict):
        return [{"value": document}]
    scalars: dict[str, Any] = {}
    items: list[dict[str, Any]] = []
    _flatten(document, "", scalars, items)
    return [{**scalars, **item} for item in items] if items else [scalars]


def _flatten(
    value: dict[str, Any], prefix: str, out: dict[str, Any], items: list[dict[str, Any]]
) -> None:
    for key, inner in value.items():
        name = prefix + key
        if isinstance(inner, dict):
            _flatten(inner, name + ".", out, items)
        elif isinstance(inner, list):
            if inner and all(isinstance(element, dict) for element in inner) and not items:
                for element in inner:
                    flat: dict[str, Any] = {}
                    _flatten(element, name + ".", flat, items)
                    items.append(flat)
            else:
                for index, element in enumerate(inner):
                    if not isinstance(element, dict | list):
                        out[f"{name}.{index}"] = element
        elif inner is not None:
            out[name] = inner


def _text_fields(payload: bytes | bytearray) -> dict[str, Any]:
    """key=value;... or comma-separated values; anything else is kept as hex."""
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return {"raw": payload.hex()}
    if not text.isprintable():
        return {"raw": payload.hex()}
    if "=" in text:
        pairs = (part.partition("=") for part in text.split(";"))
        return {key: _number_or_text(value) for key, _, value in pairs if key and value}
    columns = enumerate(text.split(","))
    return {f"c{index}": _number_or_text(value) for index, value in columns if value}


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _fields(record: dict[str, Any]) -> str:
    parts = []
    for key, value in record.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(float(value))
        else:
            text = '"' + str(value).translate(_STRING_ESCAPES) + '"'
        parts.append(f"{key.translate(_KEY_ESCAPES)}={text}")
    return ",".join(parts)


class Writer:
    """The buffer and the one keep-alive HTTP connection to InfluxDB."""

    def __init__(self, influx_url: str, database: str) -> None:
        url = urllib.parse.urlsplit(influx_url)
        self._connection = http.client.HTTPConnection(url.hostname or "", url.port or 8086)
        self._path = f"/write?db={urllib.parse.quote(database)}&precision=ns"
        self._lines: list[str] = []
        self._oldest = 0.0
        self._lock = threading.Lock()

    def add(self, lines: list[str]) -> None:
        with self._lock:
            if not self._lines:
                self._oldest = time.monotonic()
            self._lines.extend(lines)
            if len(self._lines) >= BATCH_POINTS:
                self._post()

    def flush_if_old(self) -> None:
        with self._lock:
            if self._lines and time.monotonic() - self._oldest >= BATCH_AGE_S:
                self._post()

    def _post(self) -> None:
        body = "\n".join(self._lines).encode()
        self._lines = []
        self._connection.request("POST", self._path, body)
        response = self._connection.getresponse()
        answer = response.read()
        if response.status >= 300:
            say(f"error {response.status} {answer[:200]!r}")


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--influx", default="http://127.0.0.1:8086")
    parser.add_argument("--db", default="naive")
    args = parser.parse_args()
    client = persistent_client(args.client_id)
    if args.create_session:
        create_session(client, args.host, args.port)
        return
    writer = Writer(args.influx, args.db)

    def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        writer.add(lines_for(message.topic, message.payload, time.time_ns()))

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(TOPIC_FILTERS)
    say("ready")
    connect_when_up(client, args.host, args.port)
    client.loop_start()
    while True:
        time.sleep(0.1)
        writer.flush_if_old()


if __name__ == "__main__":
    main()
