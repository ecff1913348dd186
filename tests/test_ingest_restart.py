"""Acknowledgements across gateway restarts, and cancellation at the SUBACK (issue 18).

mosquitto sends a resumed session's backlog before the SUBACK. The gateway must acknowledge
what it made durable from that backlog at once, on the connection that delivered it: before
the fix, acks were sent through the subscribed connection only, which did not exist yet, so
most of a backlog was delivered (and each bad message dead-lettered) again at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path

import mqtt5
import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import MqttSettings
from gateway.model import Message
from gateway.stages.deadletter import DEAD_LETTER_FILE
from gateway.stages.ingest import MqttIngest
from tests.fakes import light
from tests.harness import GatewayProcess, gateway_config, wait_for_counts
from tests.servers import Influxd, Mosquitto
from tests.test_end_to_end import fetch

pytestmark = pytest.mark.integration

BACKLOG = 5000
BAD_EVERY = 100  # every 100th message is not JSON: 50 bad messages in the backlog
LIGHTS = 50
CLIENT_ID = "restart-gateway"


def _backlog() -> list[tuple[str, bytes]]:
    """BACKLOG streetlight reports from LIGHTS devices, every BAD_EVERY-th one malformed."""
    messages = []
    for number in range(BACKLOG):
        device = number % LIGHTS + 1
        topic = f"city/lighting/di-su/sl-{device:04d}/telemetry"
        bad = number % BAD_EVERY == BAD_EVERY - 1
        payload = b"{not json %d" % number if bad else light(number // LIGHTS)
        messages.append((topic, payload))
    return messages


def _publish(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    client = Client(CallbackAPIVersion.VERSION2, client_id="restart-publisher")
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=30)
    client.disconnect()
    client.loop_stop()


def counter(metrics: str, name: str) -> float:
    """A `mh_gateway_<name>_total` counter from a /metrics exposition: its one value, or the
    sum of its labelled series (a breakdown such as dead letters per reason)."""
    found = re.findall(rf"^mh_gateway_{name}_total(\{{[^}}]*\}})? (\S+)$", metrics, re.M)
    assert found, f"no {name} in /metrics"
    plain = [float(value) for labels, value in found if not labels]
    return plain[0] if plain else sum(float(value) for _, value in found)


def metrics(gateway: GatewayProcess) -> str:
    """/metrics of the gateway's latest start (its log keeps every start's lines)."""
    urls = re.findall(r"health endpoint on (http://\S+/)", gateway.log())
    assert urls, gateway.log()
    return fetch(urls[-1] + "metrics")[1]


def wait_for_counter(
    gateway: GatewayProcess, name: str, value: float, timeout_s: float = 30.0
) -> str:
    """/metrics once the counter `name` reached `value` (or at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        exposition = metrics(gateway)
        if counter(exposition, name) >= value or time.monotonic() >= deadline:
            return exposition
        time.sleep(0.1)


def _dead_letters(state_dir: Path) -> Counter[tuple[str, bytes]]:
    with contextlib.closing(sqlite3.connect(state_dir / DEAD_LETTER_FILE)) as database:
        rows = database.execute("SELECT topic, payload FROM dead_letters").fetchall()
    return Counter((topic, bytes(payload)) for topic, payload in rows)


def test_a_backlog_is_acknowledged_before_the_suback_and_never_redelivered(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    config = gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, influx_db, client_id=CLIENT_ID,
        # Several batches per backlog: acks go out while the rest is still arriving.
        overrides={"batch": {"max_points": 500, "max_age_s": 0.2}},
    )  # fmt: skip
    backlog = _backlog()
    bad = [(topic, payload) for topic, payload in backlog if payload.startswith(b"{not")]
    good = Counter({"streetlight": BACKLOG - len(bad)})
    with GatewayProcess(config) as gateway:  # the first start creates the persistent session
        assert gateway.stop() == 0
        _publish(mosquitto, backlog)
        gateway.start()  # the second start receives the backlog before its SUBACK
        stored = wait_for_counts(influxd, influx_db, good)
        second = wait_for_counter(gateway, "dead_letters", len(bad))
        assert gateway.stop() == 0
        gateway.start()  # the third: the backlog comes before the SUBACK, so it would be here
        third = metrics(gateway)
        assert gateway.stop() == 0
    assert stored == good
    assert counter(second, "messages_received") == BACKLOG
    assert counter(second, "dead_letters") == len(bad)
    assert counter(second, "mqtt_stale_acks") == 0
    assert counter(third, "messages_received") == 0  # nothing redelivered
    assert _dead_letters(gateway.state_dir) == Counter(bad)  # each bad message once


class SubackRelay:
    """A loopback TCP relay to a real broker that puts one QoS 0 PUBLISH right behind the
    broker's SUBACK, in the same write: the client handles both in one data_received, so
    on_message runs after the SUBACK future completed and before the waiting task resumed."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self._broker = broker
        self._extra = mqtt5.PublishPacket(topic, b"after the suback").write()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> SubackRelay:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _connected(
        self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter
    ) -> None:
        broker, to_broker = await asyncio.open_connection(self._broker.host, self._broker.port)
        for pipe in (self._forward(client, to_broker), self._answer(broker, to_client)):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)

    @staticmethod
    async def _forward(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.closing(sink):
            while chunk := await source.read(65536):
                sink.write(chunk)

    async def _answer(self, broker: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        pending = bytearray()
        with contextlib.closing(client):
            while chunk := await broker.read(65536):
                pending += chunk
                out = bytearray()
                while pending:
                    try:
                        packet, size = mqtt5.read(memoryview(bytes(pending)))
                    except IndexError:  # a partial packet: wait for the rest
                        break
                    out += pending[:size]
                    del pending[:size]
                    if isinstance(packet, mqtt5.SubAckPacket):
                        out += self._extra
                client.write(bytes(out))


async def test_cancelling_the_ingest_while_the_suback_completes_ends_it_cancelled(
    mosquitto: Mosquitto,
) -> None:
    """Python 3.11's wait_for(shield(suback)) returned the SUBACK and dropped a cancellation
    that arrived with it: the task ran on, and a gateway ignored SIGTERM (issue 18)."""
    topic = "city/test/after-suback"
    task: asyncio.Task[None] | None = None

    def on_message(message: Message) -> None:
        if message.topic == topic and task is not None:
            task.cancel()

    async with SubackRelay(mosquitto, topic) as relay:
        settings = MqttSettings(host="127.0.0.1", port=relay.port, client_id="cancel-at-suback")
        ingest = MqttIngest(settings, ["city/#"], on_message)
        task = asyncio.create_task(ingest.run())
        done, _ = await asyncio.wait([task], timeout=10)
        await ingest.stop()  # closes the connection; ends the task if it ran on
        await asyncio.wait([task], timeout=5)
    assert done, "the ingest task ran on after it was cancelled"
    assert task.cancelled()
    assert ingest.stats.connects == 0  # cancelled before it counted itself subscribed
