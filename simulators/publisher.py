"""The only module that touches aiomqtt (and, through it, paho-mqtt).

aiomqtt's `publish()` returns only when the broker has acknowledged the message (PUBACK for
QoS 1, PUBCOMP for QoS 2), so publishing one message at a time is bound by the round trip. A
fixed pool of workers, each awaiting its own publish, keeps up to `window` messages in flight;
the bounded queue in front of them pushes back on the producer. When the pool has drained,
every message has been acknowledged. Measured on 2 cores against a local mosquitto 2.0:
~20,000 msg/s with QoS 1 and a window of 64; windows above a few hundred get slower, because
aiomqtt scans all pending calls on every publish. Each message carries its own QoS: at QoS 0
aiomqtt's publish returns once paho has written the message to the socket (there is no PUBACK),
so "drained" then means "handed to the broker's socket". The pool survives broker restarts (see
MqttPublisher), so a test can restart the broker in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiomqtt

DEFAULT_PORT = 1883
DEFAULT_WINDOW = 64
# A broker that stops acknowledging is a failed run, not a hang.
PUBLISH_TIMEOUT_S = 30.0
# A broker restart takes a moment; one that stays away this long fails the run.
GIVE_UP_S = 60.0
RECONNECT_DELAY_S = 0.5

PublishError = aiomqtt.MqttError


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_broker(text: str) -> BrokerAddress:
    """`host:port`, `host` or `[ipv6]:port`, e.g. 127.0.0.1:1883, localhost, [::1]:1883."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            msg = f"broker {text!r}: write an IPv6 address as [::1]:1883"
            raise ValueError(msg)
        port_text = rest[1:]
    elif text.count(":") > 1:
        msg = f"broker {text!r}: put an IPv6 address in brackets, e.g. [::1]:1883"
        raise ValueError(msg)
    else:
        host, _, port_text = text.partition(":")
    if not host:
        msg = f"broker {text!r} has no host"
        raise ValueError(msg)
    return BrokerAddress(host, _parse_port(text, port_text))


def _parse_port(text: str, port_text: str) -> int:
    if not port_text:
        return DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        msg = f"broker {text!r}: port must be a number from 1 to 65535"
        raise ValueError(msg)
    return int(port_text)


class MqttPublisher:
    """Publishes through a pool of `window` workers and survives broker restarts.

    Messages wait in `_pending` until a worker takes one; a worker whose publish fails (the
    broker went away) puts its message back, and the supervisor reconnects and starts a fresh
    pool. A message whose PUBACK was lost in the restart is published again: a duplicate is
    harmless to a gateway that stores points idempotently, a gap would be a lost reading.
    """

    def __init__(
        self, broker: BrokerAddress, *, client_id: str, window: int, give_up_s: float
    ) -> None:
        self._broker = broker
        self._client_id = client_id
        self._window = window
        self._give_up_s = give_up_s
        self._pending: collections.deque[tuple[str, bytes, int]] = collections.deque()
        self._slots = asyncio.Semaphore(2 * window)  # bounds what the producer runs ahead
        self._wake = asyncio.Event()
        self._closing = False
        self.error: BaseException | None = None
        self.reconnects = 0
        self._connections = 0

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Queue a message; returns once it is queued, before it is acknowledged."""
        await self._slots.acquire()
        if self.error is not None:
            raise self.error
        self._pending.append((topic, payload, qos))
        self._wake.set()

    async def _worker(self, client: aiomqtt.Client) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            message = self._pending.popleft()
            topic, payload, qos = message
            try:
                await client.publish(topic, payload, qos=qos, timeout=PUBLISH_TIMEOUT_S)
            except BaseException:
                self._pending.appendleft(message)
                self._wake.set()
                raise
            self._slots.release()

    async def supervise(self) -> None:
        """Connect and run the pool until closed and drained; reconnect on broker loss."""
        down_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            lost: BaseException | None = None
            connections_before = self._connections
            try:
                await self._serve()
            except* aiomqtt.MqttError as group:
                lost = group.exceptions[0]
            if lost is None:
                return
            if self._connections > connections_before:
                down_since = None  # it was up in between: a new outage starts now
            down_since = down_since or loop.time()
            # Never connected: the address is wrong, say so at once rather than retry.
            if not self._connections or loop.time() - down_since > self._give_up_s:
                self._fail(lost)
                raise lost
            self.reconnects += 1
            print(f"sim: broker connection lost ({lost}); reconnecting", file=sys.stderr)
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def _serve(self) -> None:
        async with aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            identifier=self._client_id,
            # MQTT 3.1.1 (aiomqtt's default): no receive maximum from the broker caps the window.
            max_inflight_messages=self._window,
        ) as client:
            self._connections += 1
            # aiomqtt warns once more than this many calls are pending; a full window is normal.
            client.pending_calls_threshold = self._window + 1
            async with asyncio.TaskGroup() as workers:
                for number in range(self._window):
                    workers.create_task(self._worker(client), name=f"mqtt-publish-{number}")

    def _fail(self, error: BaseException) -> None:
        self.error = error
        for _ in range(2 * self._window):  # wake a producer blocked on a slot
            self._slots.release()

    def close(self) -> None:
        self._closing = True
        self._wake.set()


@asynccontextmanager
async def connect_publisher(
    broker: BrokerAddress,
    *,
    client_id: str,
    window: int = DEFAULT_WINDOW,
    give_up_s: float = GIVE_UP_S,
) -> AsyncIterator[MqttPublisher]:
    """Yield a publisher; on a clean exit wait until every message is acknowledged.

    A broker that stays unreachable for `give_up_s` fails the run with its MqttError (raised
    from a TaskGroup, so as an ExceptionGroup).
    """
    publisher = MqttPublisher(broker, client_id=client_id, window=window, give_up_s=give_up_s)
    async with asyncio.TaskGroup() as group:
        supervisor = group.create_task(publisher.supervise(), name="mqtt-supervisor")
        try:
            yield publisher
        finally:
            publisher.close()
        await supervisor
