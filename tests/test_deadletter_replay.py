"""`gateway deadletter replay` against a real InfluxDB: what decodes now is written and leaves."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.model import DeadLetter
from gateway.operations.replay import DeadLetterReplay
from gateway.profiles.registry import load_directory
from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from gateway.stages.sinks.recording import RecordingSink
from tests.harness import PROFILES, gateway_config
from tests.servers import Influxd, Mosquitto

pytestmark = pytest.mark.integration

TOPIC = "city/lighting/di-su/sl-0001/telemetry"
GOOD = (
    b'{"ts": 1795482000000, "lamp": {"state": "ON", "dim": 50, "fault": 0},'
    b' "elec": {"p_w": 75.0, "v": 230.0, "i_a": 0.33, "e_kwh": 1.0}}'
)


def replay(config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "deadletter", "replay", "--config", str(config), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def test_replay_writes_what_decodes_now_and_keeps_the_rest(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    store = DeadLetterStore(tmp_path / "state" / DEAD_LETTER_FILE)
    store.add(
        [
            # Refused when its profile was missing; the profile is installed now.
            DeadLetter(1_000, TOPIC, GOOD, "unknown_topic", "no profile matches this topic"),
            DeadLetter(2_000, TOPIC, b"{broken", "invalid_json", "", "mh-streetlight-json"),
            # A line InfluxDB refused (say a field type conflict since resolved).
            DeadLetter(
                3_000, "", b"probe v=1i 1795482000000000000", "rejected_by_influx",
                database=influx_db,
            ),
        ]
    )  # fmt: skip
    store.close()

    assert replay(config, "--dry-run").splitlines() == [
        "would replay 2 dead letters (2 points)",
        "       1  still failing: invalid_json",
    ]
    assert influxd.count(influx_db, "streetlight", "power_w") == 0

    assert replay(config, "--reason", "unknown_topic").splitlines() == [
        "replayed 1 dead letters (1 points)"
    ]
    assert influxd.count(influx_db, "streetlight", "power_w") == 1
    assert influxd.count(influx_db, "probe", "v") == 0

    assert replay(config).splitlines() == [
        "replayed 1 dead letters (1 points)",
        "       1  still failing: invalid_json",
    ]
    assert influxd.count(influx_db, "probe", "v") == 1
    store = DeadLetterStore(tmp_path / "state" / DEAD_LETTER_FILE)
    assert store.counts_by_reason() == {"invalid_json": 1}
    store.close()


def test_replay_with_influx_down_removes_nothing(
    tmp_path: Path, mosquitto: Mosquitto, private_influxd: Influxd
) -> None:
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, private_influxd, "telemetry")
    store = DeadLetterStore(tmp_path / "state" / DEAD_LETTER_FILE)
    store.add([DeadLetter(1_000, TOPIC, GOOD, "unknown_topic")])
    store.close()
    private_influxd.stop()
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "deadletter", "replay", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: InfluxDB did not take the replay, nothing more removed")
    assert "Traceback" not in done.stderr
    store = DeadLetterStore(tmp_path / "state" / DEAD_LETTER_FILE)
    assert store.count() == 1
    store.close()


def test_replay_reports_progress_after_every_chunk(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / DEAD_LETTER_FILE)
    store.add([DeadLetter(1_000 + i, TOPIC, GOOD, "unknown_topic") for i in range(1_200)])
    replayer = DeadLetterReplay(store, load_directory(PROFILES), RecordingSink())
    seen: list[tuple[int, int]] = []

    report = asyncio.run(
        replayer.run(None, None, dry_run=True, progress=lambda r: seen.append((r.seen, r.replayed)))
    )

    assert seen == [(500, 500), (1_000, 1_000), (1_200, 1_200)]
    assert report.kept == 0
    store.close()
