"""The whole chain with real processes: simulators -> mosquitto -> gateway -> influxd."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.harness import (
    GatewayProcess,
    assert_stored_as_sent,
    gateway_config,
    simulate_and_wait,
    simulators_running,
    wait_for_counts,
    wait_for_truth,
)
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration


def test_ten_thousand_readings_arrive_exactly(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    summary_file = tmp_path / "summary.json"
    with GatewayProcess(config) as gateway:
        truth, expected, stored = simulate_and_wait(
            mosquitto, influxd, influx_db, tmp_path / "truth.jsonl",
            "--lighting", "40", "--water", "40", "--traffic", "40",
            "--messages", "6200", "--rate", "0", "--seed", "7",
            "--summary-json", str(summary_file),
        )  # fmt: skip
        assert fetch(gateway.health_url() + "/readyz")[0] == 200
        assert gateway.metric("messages_received_total") == 6200
        assert gateway.stop() == 0
    summary = json.loads(summary_file.read_text())
    assert summary["readings"] == len(truth) >= 10_000
    assert set(expected) == {"streetlight", "water_flow", "traffic_flow"}
    assert stored == expected
    assert_stored_as_sent(influxd, influx_db, truth)
    assert "Traceback" not in gateway.log()


def fetch(url: str) -> tuple[int, str]:
    assert url.startswith("http://")
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310  # http:// checked above
        return answer.status, answer.read().decode()


def test_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    truth_file = tmp_path / "truth.jsonl"
    with GatewayProcess(config) as gateway:
        # 5,000 lighting/water readings (one per message) at 1,000 messages/s: ~5 s of stream.
        with simulators_running(
            mosquitto, truth_file,
            "--lighting", "25", "--water", "25", "--traffic", "0",
            "--messages", "5000", "--rate", "1000", "--seed", "11",
        ) as publisher:  # fmt: skip
            gateway.wait_for_log("subscribed to")
            wait_for(lambda: gateway.metric("messages_acked_total") >= 1500, 60, "the stream flows")
            assert publisher.poll() is None, "the stream ended before the broker restart"
            mosquitto.restart(down_s=1.0)
            assert publisher.wait(timeout=120) == 0
        gateway.wait_for_log("subscribed to", occurrences=2)
        truth, _, stored = wait_for_truth(influxd, influx_db, truth_file)
        assert len(truth) == 5000
        assert gateway.stop() == 0
    assert sum(stored.values()) == 5000
    assert_stored_as_sent(influxd, influx_db, truth)


def test_a_malformed_payload_is_dead_lettered_and_the_gateway_carries_on(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    topic = "city/lighting/di-su/sl-0001/telemetry"
    good = (
        '{"ts": 1795482000000, "lamp": {"state": "ON", "dim": 50, "fault": 0},'
        ' "elec": {"p_w": 75.0, "v": 230.0, "i_a": 0.33, "e_kwh": 1.0}}'
    )
    with GatewayProcess(config) as gateway:
        for payload in ("{broken json", good):
            subprocess.run(
                ["mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-t", topic, "-m", payload],
                check=True,
            )
        stored = wait_for_counts(influxd, influx_db, Counter({"streetlight": 1}))
        assert gateway.stop() == 0
    assert stored == Counter({"streetlight": 1})
    listing = subprocess.run(
        [sys.executable, "-m", "gateway", "deadletter", "list", "--config", str(config)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "       1  invalid_json" in listing.stdout
    assert topic in listing.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "gateway", "deadletter", "show", "1", "--config", str(config)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "payload: {broken json" in shown.stdout
    assert (
        "dead letter (invalid_json): topic=city/lighting/di-su/sl-0001/telemetry" in gateway.log()
    )
