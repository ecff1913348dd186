"""What both paho-mqtt reference clients share: a persistent MQTT 3.1.1 session, a connect
that waits for the broker, and the `ready`/`done` lines the benchmark reads on stdout.

MQTT 3.1.1 with paho's automatic acknowledgement is paho's fastest receive path (the Speed
issue's table: 15.8k-20.5k msg/s against 9.9k for its v5 path), so the references get their
best case. The broker caps them at `max_inflight_messages` (20) unacknowledged messages, which
costs them little because paho acknowledges on receipt, before any work is done.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

TOPIC_FILTERS = [("city/#", 1), ("v3/#", 1)]
_RETRY_S = 0.02


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument(
        "--create-session",
        action="store_true",
        help="subscribe once and leave: the broker then queues the backlog for this client id",
    )
    return parser


def persistent_client(client_id: str) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=MQTTProtocolVersion.MQTTv311,
    )


def connect_when_up(client: mqtt.Client, host: str, port: int) -> None:
    """The benchmark starts the broker only after the client has started (so start-up CPU is
    not counted as draining): try until it answers."""
    while True:
        try:
            client.connect(host, port, keepalive=60)
        except OSError:
            time.sleep(_RETRY_S)
            continue
        return


def create_session(client: mqtt.Client, host: str, port: int) -> None:
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(TOPIC_FILTERS)
    connect_when_up(client, host, port)
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit("no SUBACK within 10 s")
    client.disconnect()
    client.loop_stop()


def say(line: str) -> None:
    """One protocol line for the benchmark on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
