"""Publishing the benchmark's messages at QoS 1: as fast as the broker takes them (the backlog)
or paced at a fixed rate with the publish time of every message kept (the latency phase); and
at QoS 0 as fast as paho writes them (the QoS 0 flood, where paho's on_publish means "written
to the socket": there is no PUBACK).

paho-mqtt on MQTT 3.1.1 with a window of 1000 unacknowledged messages: the benchmark's own
publisher must not be what limits the backlog load. The caller waits for a free slot of the
window before each publish: paho 2.2 deadlocks when one thread queues 100k messages while its
network thread is still sending the first ones.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.servers import Mosquitto

_WINDOW = 1000
_TIMEOUT_S = 600.0


class Publisher:
    """One connected paho client that counts PUBACKs."""

    def __init__(self, broker: Mosquitto) -> None:
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-publisher-{os.getpid()}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self._client.max_inflight_messages_set(_WINDOW)
        self._client.max_queued_messages_set(0)
        self._acked = 0
        self._expected = 0
        self._all_acked = threading.Event()
        self._slots = threading.Semaphore(_WINDOW)
        self._client.on_publish = self._on_publish
        self._client.connect(broker.host, broker.port, keepalive=60)
        self._client.loop_start()

    def _on_publish(self, *_: Any) -> None:
        self._slots.release()
        self._acked += 1
        if self._acked >= self._expected:
            self._all_acked.set()

    def publish_all(self, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
        """Publish and wait for every PUBACK (QoS 1: then the broker has queued all of them)
        or, at QoS 0, until every message is written to the socket."""
        self._expect(len(messages))
        for topic, payload in messages:
            self._publish(topic, payload, qos)
        self._wait()

    def publish_paced(self, messages: list[tuple[str, bytes]], rate: float) -> list[float]:
        """Publish at `rate` messages/s; returns each message's publish time (monotonic)."""
        self._expect(len(messages))
        stamps: list[float] = []
        started = time.monotonic()
        for number, (topic, payload) in enumerate(messages):
            ahead = started + number / rate - time.monotonic()
            if ahead > 0.001:
                time.sleep(ahead)
            stamps.append(time.monotonic())
            self._publish(topic, payload)
        self._wait()
        return stamps

    def publish_forever(
        self,
        messages: list[tuple[str, bytes]],
        points: list[int],
        rate: float,
        stop: threading.Event,
        published: list[tuple[float, int]],
    ) -> None:
        """Publish `messages` round and round at `rate` until `stop`; appends (time, points
        published so far) to `published` about every 100 messages."""
        started, number, total = time.monotonic(), 0, 0
        while not stop.is_set():
            index = number % len(messages)
            ahead = started + number / rate - time.monotonic()
            if ahead > 0.001:
                time.sleep(ahead)
            topic, payload = messages[index]
            self._publish(topic, payload)
            total += points[index]
            number += 1
            if number % 100 == 0:
                published.append((time.monotonic(), total))

    def _publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        if not self._slots.acquire(timeout=_TIMEOUT_S):
            raise RuntimeError("the broker stopped acknowledging")
        self._client.publish(topic, payload, qos=qos)

    def _expect(self, count: int) -> None:
        self._acked = 0
        self._expected = count
        self._all_acked.clear()

    def _wait(self) -> None:
        if self._expected and not self._all_acked.wait(_TIMEOUT_S):
            raise RuntimeError(f"broker acknowledged {self._acked} of {self._expected}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
