"""Personal data, unknown devices and tenants through real mosquitto, influxd and the gateway.

An ANPR camera reports plates; the clear plate must appear nowhere the gateway writes: not in
InfluxDB (every measurement, series and value is read back), not in the dead-letter store or the
spool (their SQLite files are searched byte for byte), not in the gateway's log at DEBUG.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path

import pytest

from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from tests.harness import ROOT, GatewayProcess, gateway_config
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

ANPR = ROOT / "device_profiles" / "traffic" / "anpr-camera-json.yaml"
PLATES = ["29A-123.45", "30F-888.01", "88C-000.77"]
HASH_KEY = "e2e-hash-key-not-a-real-one-0123456789"
KNOWN_CAMERA, STRANGER = "anpr-0003", "anpr-0666"


def camera_message(camera: str, n: int, plate: str, **changes: object) -> str:
    reading = {"cam": camera, "t": int(time.time() * 1000) - 60_000 + n, "plate": plate}
    reading |= {"lane": 1, "dir": "in", "cls": "car", "conf": 0.9, "v_kmh": 40.0}
    reading |= {"snapshot": f"https://cam.local/{plate}.jpg"}
    return json.dumps(reading | changes)


def publish(broker: Mosquitto, camera: str, lines: list[str]) -> None:
    topic = f"city/traffic/bach-sam/{camera}/plates"
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", topic, "-l"],
        input="\n".join(lines) + "\n", text=True, check=True, timeout=60,
    )  # fmt: skip


def everything_stored(influxd: Influxd, database: str) -> str:
    """Every measurement, series key and value of the database, as one text."""
    answers = [
        influxd.query(q, db=database)
        for q in ("SHOW MEASUREMENTS", "SHOW SERIES", "SHOW FIELD KEYS", "SELECT * FROM /.*/")
    ]
    return json.dumps(answers)


def test_plates_stay_private_and_strangers_are_quarantined(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    devices = f"tenant: traffic\ndevices:\n  auto_register: false\n  known: [{KNOWN_CAMERA}]\n"
    (profiles / "anpr.yaml").write_text(ANPR.read_text(encoding="utf-8") + devices)
    key_file = tmp_path / "hash-key"
    key_file.write_text(HASH_KEY + "\n")
    config = gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, influx_db,
        overrides={"profiles": {"dir": str(profiles)}, "log": {"level": "DEBUG"},
                   "privacy": {"hash_key_file": str(key_file)}},
        extra=f'\n[tenants.traffic]\ndatabases = ["{influx_db}"]\n',
    )  # fmt: skip
    good = [camera_message(KNOWN_CAMERA, n, plate) for n, plate in enumerate(PLATES)]
    bad = [
        camera_message(KNOWN_CAMERA, 10, PLATES[0], t="not a time"),  # no_valid_reading
        camera_message(KNOWN_CAMERA, 11, PLATES[1])[:-2],  # invalid_json
        camera_message(KNOWN_CAMERA, 12, PLATES[2], conf="x" * 70_000),  # payload_too_large
    ]
    with GatewayProcess(config) as gateway:
        publish(mosquitto, KNOWN_CAMERA, good + bad)
        publish(mosquitto, STRANGER, [camera_message(STRANGER, 20, PLATES[0])])
        sent = len(good) + len(bad) + 1
        wait_for(  # stored or dead-lettered, each message is acknowledged once durable
            lambda: gateway.metric("messages_acked_total") == sent, 20, f"{sent} acknowledged"
        )
        assert gateway.stop() == 0
        log = gateway.log()

    answer = influxd.query("SELECT plate_hash, device_id FROM traffic_plate", db=influx_db)
    rows = answer["results"][0]["series"][0]["values"]
    expected = [hmac.new(HASH_KEY.encode(), p.encode(), hashlib.sha256).hexdigest()[:16]
                for p in PLATES]  # fmt: skip
    assert [row[1] for row in rows] == expected
    assert {row[2] for row in rows} == {KNOWN_CAMERA}  # nothing from the stranger

    store = DeadLetterStore(tmp_path / "state" / DEAD_LETTER_FILE)
    assert store.counts_by_reason() == {
        "invalid_json": 1, "no_valid_reading": 1, "payload_too_large": 1, "unknown_device": 1,
    }  # fmt: skip
    store.close()
    state_bytes = b"".join(path.read_bytes() for path in (tmp_path / "state").rglob("*") if
                           path.is_file())  # fmt: skip
    stored = everything_stored(influxd, influx_db)
    for plate in PLATES:
        assert plate not in stored
        assert plate.encode() not in state_bytes, "a clear plate in the gateway's state files"
        assert plate not in log
    assert "snapshot" not in stored
    assert "dead letter (unknown_device)" in log
    assert HASH_KEY not in log
