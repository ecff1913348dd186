"""The broker lets the gateway hold far more than 20 unacknowledged messages.

Acknowledging after the durable write needs thousands of QoS 1 messages in flight. mqtt5 0.8
leaves a Receive Maximum of 65535 out of CONNECT (it is MQTT's default), and mosquitto 2.0
then caps the client at its `max_inflight_messages` (20): a paced stream stalled at 20
messages per batch age. Found by the Speed benchmark; see ingest._announced_receive_maximum.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import MqttSettings
from gateway.ingest import MqttIngest
from gateway.model import Message
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

MESSAGES = 500


def _publish(broker: Mosquitto, count: int) -> None:
    client = Client(CallbackAPIVersion.VERSION2, client_id="inflight-publisher")
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish("city/test/inflight", b"x", qos=1) for _ in range(count)]
    for info in infos:
        info.wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


async def test_unacknowledged_messages_are_not_capped_at_the_brokers_default(
    mosquitto: Mosquitto,
) -> None:
    assert mosquitto.max_inflight_messages == 20  # mosquitto's own default
    received: list[Message] = []
    all_received = asyncio.Event()

    def on_message(message: Message) -> None:  # never acknowledges
        received.append(message)
        if len(received) == MESSAGES:
            all_received.set()

    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="inflight")
    ingest = MqttIngest(settings, ["city/#"], on_message)
    task = asyncio.create_task(ingest.run())
    try:
        while not ingest.connected:  # noqa: ASYNC110 - the ingest interface has no event for it
            await asyncio.sleep(0.01)
        await asyncio.to_thread(_publish, mosquitto, MESSAGES)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_received.wait(), timeout=10)
    finally:
        await ingest.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(received) == MESSAGES


def test_pubacks_are_the_codecs_bytes() -> None:
    """ingest builds PUBACKs with struct instead of mqtt5 objects (the Speed issue): the
    bytes must be exactly what the codec writes, for small, two-byte and the largest ids."""
    import mqtt5  # noqa: PLC0415  # only this test needs the codec itself

    from gateway.ingest import _pubacks  # noqa: PLC0415  # a private helper, tested alone

    ids = [1, 2, 255, 256, 513, 65535]
    assert _pubacks(ids) == b"".join(mqtt5.PubAckPacket(i).write() for i in ids)
