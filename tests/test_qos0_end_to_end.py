"""Devices that publish at QoS 0 (issue 15), through real mosquitto, gateway and influxd.

A QoS 0 delivery has no packet id and must never be acknowledged: the gateway used to send a
PUBACK with packet id 0 for each one (mqtt5's QoS.AT_MOST_ONCE is truthy), mosquitto dropped
the connection for the protocol error, and whatever it sent at QoS 0 meanwhile was gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import (
    GatewayProcess,
    assert_stored_as_sent,
    gateway_config,
    run_simulators,
    simulate_and_wait,
    wait_for_truth,
)
from tests.servers import Influxd, Mosquitto
from tests.test_ingest_restart import counter, metrics, wait_for_counter

pytestmark = pytest.mark.integration

RECONNECTED = "reconnecting"  # ingest logs "MQTT <why it closed>; reconnecting"


def _assert_never_disconnected(gateway: GatewayProcess, exposition: str) -> None:
    log = gateway.log()
    assert RECONNECTED not in log, log
    assert "connection lost" not in log, log
    assert counter(exposition, "mqtt_reconnects") == 0
    assert counter(exposition, "mqtt_connects") == 1
    assert counter(exposition, "mqtt_acks_refused") == 0


def test_a_mixed_qos0_and_qos1_town_is_stored_exactly_without_a_reconnect(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    with GatewayProcess(config) as gateway:
        # 3,000 messages at 500 msg/s (~6 s, a dozen batches): streetlights and loop counters
        # at QoS 0, water meters at QoS 1, interleaved device by device.
        truth, expected, stored = simulate_and_wait(
            mosquitto, influxd, influx_db, tmp_path / "truth.jsonl",
            "--lighting", "20", "--water", "20", "--traffic", "20",
            "--messages", "3000", "--rate", "500", "--seed", "15",
            "--qos", "1", "--kind-qos", "lighting=0,traffic=0",
        )  # fmt: skip
        exposition = wait_for_counter(gateway, "messages_received", 3000)
        assert gateway.stop() == 0
    assert stored == expected
    assert counter(exposition, "messages_received") == 3000
    assert_stored_as_sent(influxd, influx_db, truth)
    _assert_never_disconnected(gateway, exposition)


FLOOD = 40_000


def test_a_qos0_flood_never_gets_the_gateway_disconnected(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    """As fast as one publisher sends, every device at QoS 0. The test broker queues QoS 0
    messages for a connected client without limit (max_queued_messages 0), so a gateway that
    stays connected receives every one; then each reading it received must be in InfluxDB."""
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    truth_file = tmp_path / "truth.jsonl"
    with GatewayProcess(config) as gateway:
        # 100 devices x 400 reports: below the per-device burst, so nothing is rate limited.
        run_simulators(
            mosquitto, truth_file,
            "--lighting", "50", "--water", "50",
            "--messages", str(FLOOD), "--rate", "0", "--seed", "16", "--qos", "0",
        )  # fmt: skip
        received = wait_for_counter(gateway, "messages_received", FLOOD)
        truth, expected, stored = wait_for_truth(influxd, influx_db, truth_file)
        exposition = metrics(gateway)
        assert gateway.stop() == 0
    _assert_never_disconnected(gateway, exposition)
    assert counter(received, "messages_received") == FLOOD
    assert stored == expected
    assert_stored_as_sent(influxd, influx_db, truth)
