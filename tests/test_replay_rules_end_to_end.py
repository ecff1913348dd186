"""Dead-letter replay enforces the rules the pipeline enforces (one message path).

Before the rules lived in gateway/process.py, `gateway deadletter replay` decoded and normalized
letters itself and forgot the known-device check: a stranger's `unknown_device` letter was
written into InfluxDB on the first replay. Here, with real mosquitto, influxd and gateway:
replay writes nothing while the device is unknown, and writes it once the device is listed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from tests.harness import GatewayProcess, gateway_config
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

PROFILE = """\
id: test-tank-level
version: 1
domain: water
match:
  topic: test/tanks/{device_id}/level
decode:
  format: json
time:
  path: t
  format: epoch_ms
output:
  measurement: water_tank
tags:
  device_id: {topic: device_id}
fields:
  level_m: {path: level, type: float}
"""
KNOWN, STRANGER = "tk-0001", "tk-0666"


def publish(broker: Mosquitto, device: str, level: float, t_ms: int) -> None:
    payload = json.dumps({"t": t_ms, "level": level})
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker.port), "-q", "1",
         "-t", f"test/tanks/{device}/level", "-m", payload],
        check=True, timeout=30,
    )  # fmt: skip


def replay(config: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "deadletter", "replay", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def devices_stored(influxd: Influxd, database: str) -> list[str]:
    answer = influxd.query("SELECT level_m, device_id FROM water_tank", db=database)
    series = answer["results"][0].get("series", [])
    return sorted(row[2] for row in series[0]["values"]) if series else []


def test_replay_keeps_unknown_devices_out_until_they_are_listed(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    profile = profiles / "tank.yaml"
    profile.write_text(PROFILE + f"devices:\n  auto_register: false\n  known: [{KNOWN}]\n")
    config = gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, influx_db,
        overrides={"profiles": {"dir": str(profiles), "reload_interval_s": 0}},
    )  # fmt: skip
    now_ms = int(time.time() * 1000)
    with GatewayProcess(config) as gateway:
        publish(mosquitto, KNOWN, 1.5, now_ms - 2_000)
        publish(mosquitto, STRANGER, 9.9, now_ms - 1_000)
        wait_for(lambda: gateway.metric("messages_acked_total") == 2, 20, "2 acknowledged")
        assert gateway.stop() == 0
    store_path = tmp_path / "state" / DEAD_LETTER_FILE
    store = DeadLetterStore(store_path)
    assert store.counts_by_reason() == {"unknown_device": 1}
    store.close()
    assert devices_stored(influxd, influx_db) == [KNOWN]

    out = replay(config)  # the stranger is still unknown: nothing written, the letter stays
    assert devices_stored(influxd, influx_db) == [KNOWN], out
    store = DeadLetterStore(store_path)
    assert store.counts_by_reason() == {"unknown_device": 1}, out
    store.close()

    profile.write_text(
        PROFILE + f"devices:\n  auto_register: false\n  known: [{KNOWN}, {STRANGER}]\n"
    )
    out = replay(config)  # listed now: the reading is written with its own time
    assert devices_stored(influxd, influx_db) == [KNOWN, STRANGER], out
    store = DeadLetterStore(store_path)
    assert store.counts_by_reason() == {}, out
    store.close()
