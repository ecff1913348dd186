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
from gateway.model import Message
from gateway.stages.ingest import MqttIngest
from tests.servers import Mosquitto
from tests.waits import wait_for_async

pytestmark = pytest.mark.integration

MESSAGES = 500


def _publish(broker: Mosquitto, count: int, payload: bytes = b"x") -> None:
    client = Client(CallbackAPIVersion.VERSION2, client_id="inflight-publisher")
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish("city/test/inflight", payload, qos=1) for _ in range(count)]
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
        await wait_for_async(lambda: ingest.connected, 10, "the ingest connected")
        await asyncio.to_thread(_publish, mosquitto, MESSAGES)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_received.wait(), timeout=10)
    finally:
        await ingest.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(received) == MESSAGES


BACKLOG = 3000
PAUSE_AFTER = 100


async def test_a_resumed_backlog_is_not_read_past_a_pause_before_the_suback(
    mosquitto: Mosquitto,
) -> None:
    """mosquitto sends a resumed session's queue before the SUBACK. The pipeline pauses
    intake when its batches wait for InfluxDB; that pause must hold then too, or the gateway
    reads up to Receive Maximum messages into memory at once (the Speed issue's peak RSS)."""
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="backlog")
    ingest = MqttIngest(settings, ["city/#"], lambda _message: None)
    task = asyncio.create_task(ingest.run())
    await wait_for_async(lambda: ingest.connected, 10, "the ingest connected")
    await ingest.stop()
    await task  # the session (and its subscription) stays on the broker
    await asyncio.to_thread(_publish, mosquitto, BACKLOG, b"x" * 1000)

    received: list[Message] = []

    def on_message(message: Message) -> None:  # the pipeline's backpressure, in small
        received.append(message)
        if len(received) == PAUSE_AFTER:
            resumed.pause()

    resumed = MqttIngest(settings, ["city/#"], on_message)
    task = asyncio.create_task(resumed.run())
    try:
        await wait_for_async(lambda: len(received) >= PAUSE_AFTER, 10, "the pause reached")
        # The scenario itself: a pause is shown by nothing more arriving for a while, and no
        # event can mark "nothing more will come", so this one waits a fixed time.
        await asyncio.sleep(1.5)
        held = len(received)
        resumed.resume()
        await wait_for_async(
            lambda: len(received) >= BACKLOG and resumed.connected, 10, "the backlog and SUBACK"
        )
    finally:
        await resumed.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # What one socket read holds (asyncio reads up to 256 KiB: ~250 of these messages) may be
    # handled after the pause, not the rest of the backlog.
    assert PAUSE_AFTER <= held < 1000
    assert len(received) == BACKLOG  # then everything, and the SUBACK, once resumed
    assert resumed.stats.connects == 1


def test_pubacks_are_the_codecs_bytes() -> None:
    """ingest builds PUBACKs with struct instead of mqtt5 objects (the Speed issue): the
    bytes must be exactly what the codec writes, for small, two-byte and the largest ids."""
    import mqtt5  # noqa: PLC0415  # only this test needs the codec itself

    from gateway.stages.ingest import _pubacks  # noqa: PLC0415  # a private helper, tested alone

    ids = [1, 2, 255, 256, 513, 65535]
    assert _pubacks(ids) == b"".join(mqtt5.PubAckPacket(i).write() for i in ids)
