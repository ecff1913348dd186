"""The shipped codec device through real processes: simulated parking bay sensors -> mosquitto ->
gateway -> influxd, their frames decoded by the vendor-style JavaScript codec next to their
profile (device_profiles/traffic/parking-sensor.js) in the gateway's QuickJS sandbox.

Every reading is stored exactly as the simulators' truth says (values, types, times), with the
fields the codec leaves out (an unknown occupancy, no temperature) left out rather than guessed.
Uplinks the codec refuses are dead letters `codec_error`, a MAC-only uplink is acknowledged and
counted, and the codec's warnings (a magnetometer fault) are counted while the reading is kept.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from tests.harness import (
    GatewayProcess,
    assert_stored_as_sent,
    gateway_config,
    run_simulators,
    wait_for_truth,
)
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

SIMULATED_MESSAGES = 2000
TOPIC = "v3/mh-parking-bays/devices/pk-0901/up"
# (fPort, frame) the codec refuses: another port, protocol version 2, a bay report a byte short.
REFUSED = [(5, "100104d21b"), (1, "200104d21b"), (1, "100104d2")]


def uplink(f_port: int, frame_hex: str) -> str:
    """A The Things Stack v3 uplink of one bay sensor (an empty frame: no frm_payload)."""
    message: dict[str, object] = {"f_port": f_port, "f_cnt": 7}
    if frame_hex:
        message["frm_payload"] = base64.b64encode(bytes.fromhex(frame_hex)).decode()
    message["rx_metadata"] = [{"gateway_ids": {"gateway_id": "mh-gw-01"}, "rssi": -99}]
    return json.dumps({
        "end_device_ids": {"device_id": "pk-0901"},
        "received_at": "2026-11-24T02:15:01.498113Z",
        "uplink_message": message,
    })  # fmt: skip


def publish(broker: Mosquitto, payloads: list[str]) -> None:
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", TOPIC, "-l"],
        input="\n".join(payloads) + "\n", text=True, check=True, timeout=60,
    )  # fmt: skip


def test_codec_device_readings_are_stored_exactly(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    truth_file = tmp_path / "truth.jsonl"
    refused = [uplink(port, frame) for port, frame in REFUSED]
    empty = uplink(0, "")
    with GatewayProcess(config) as gateway:
        run_simulators(
            mosquitto, truth_file, "--parking-sensors", "20",
            "--messages", str(SIMULATED_MESSAGES), "--rate", "0", "--seed", "5",
        )  # fmt: skip
        publish(mosquitto, [*refused, empty])
        truth, expected, stored = wait_for_truth(influxd, influx_db, truth_file)
        sent = SIMULATED_MESSAGES + len(refused) + 1
        wait_for(
            lambda: gateway.metric("messages_acked_total") == sent, 60,
            f"{sent} messages acknowledged (stored, dead-lettered or empty)",
        )  # fmt: skip
        letters = gateway.metric("dead_letters_total", reason="codec_error")
        empty_frames = gateway.metric("empty_frames_total")
        warnings = gateway.metric("codec_warnings_total")
        assert gateway.stop() == 0
    assert stored == expected == {"parking_bay": SIMULATED_MESSAGES}
    assert_stored_as_sent(influxd, influx_db, truth)
    assert (letters, empty_frames) == (len(REFUSED), 1)
    store = DeadLetterStore(tmp_path / "state" / DEAD_LETTER_FILE)
    assert store.counts_by_reason() == {"codec_error": len(REFUSED)}
    store.close()
    # The run covers both ports and what the codec leaves out, each checked above.
    faults = [row for row in truth if row["fields"].get("sensor_fault") == 1]
    assert faults, "the run should include magnetometer faults"
    assert all("occupied" not in row["fields"] for row in faults)
    assert warnings == len(faults)  # one codec warning per fault, and none from the batteries
    assert any("battery_v" in row["fields"] for row in truth), "no device status (fPort 2)"
    assert any(
        "temperature_c" not in row["fields"] and "vehicle_arrivals" in row["fields"]
        for row in truth
    ), "the run should include a bay report without a temperature (0x80)"
    assert "Traceback" not in gateway.log()
