"""One device floods as fast as a publisher can while the town reports normally."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from tests.harness import (
    GatewayProcess,
    compare_with_truth,
    gateway_config,
    load_truth,
    start_simulators,
    truth_counts,
    wait_for_counts,
)
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

FLOOD_TOPIC = "city/lighting/di-su/sl-9999/telemetry"
FLOOD_MESSAGES = 20_000
TOWN_MESSAGES = 2000
RATE_PER_S, BURST = 20.0, 200


def flood_payload(first_ms: int, n: int) -> str:
    return (
        f'{{"ts": {first_ms + n * 1000}, "lamp": {{"state": "ON", "dim": 50, "fault": 0}},'
        ' "elec": {"p_w": 75.0, "v": 230.0, "i_a": 0.33, "e_kwh": 1.0}}'
    )


def test_a_flooding_device_cannot_crowd_out_the_others(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    config = gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, influx_db,
        overrides={"limits": {"device_rate_per_s": RATE_PER_S, "device_burst": BURST}},
    )  # fmt: skip
    truth_file = tmp_path / "truth.jsonl"
    first_ms = int(time.time() * 1000) - FLOOD_MESSAGES * 1000  # one a second, up to now
    flood_lines = "\n".join(flood_payload(first_ms, n) for n in range(FLOOD_MESSAGES)) + "\n"
    with GatewayProcess(config) as gateway:
        started = time.monotonic()
        town = start_simulators(
            mosquitto, truth_file,
            "--lighting", "20", "--water", "20", "--traffic", "0",
            "--messages", str(TOWN_MESSAGES), "--rate", "400", "--seed", "3",
        )  # fmt: skip
        subprocess.run(
            ["mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-t", FLOOD_TOPIC, "-l"],
            input=flood_lines, text=True, check=True, timeout=120,
        )  # fmt: skip
        assert town.wait(timeout=120) == 0
        truth = load_truth(truth_file)
        expected = truth_counts(truth)
        expected["streetlight"] += 1  # at least the flooder's first message is stored
        wait_for_counts(influxd, influx_db, expected, timeout_s=30)
        # Every message handled and durable (stored or dead-lettered) before the stop.
        wait_for(
            lambda: gateway.metric("messages_acked_total") >= TOWN_MESSAGES + FLOOD_MESSAGES,
            60,
            "every message of the town and the flooder acknowledged",
        )
        elapsed_s = time.monotonic() - started
        not_kept = gateway.metric("refusals_not_kept_total")
        assert gateway.stop() == 0

    # Every reading of the normal devices arrived, exactly once.
    town_rows = [row for row in truth if row["tags"]["device_id"] != "sl-9999"]
    missing, extra, differences = compare_with_truth(influxd, influx_db, town_rows)
    answer = influxd.query(
        "SELECT COUNT(power_w) FROM streetlight WHERE device_id = 'sl-9999'", db=influx_db
    )
    flood_stored = int(answer["results"][0]["series"][0]["values"][0][1])
    assert (missing, extra - flood_stored, differences[:3]) == (0, 0, [])
    # The flooder got its burst and its rate; of the rest, its share of the dead-letter store
    # (a bucket like its rate limit) is kept as dead letters, the remainder counted only.
    store = DeadLetterStore(tmp_path / "state" / DEAD_LETTER_FILE)
    limited = store.count("rate_limited")
    store.close()
    assert flood_stored + limited + not_kept == FLOOD_MESSAGES
    assert BURST <= flood_stored <= BURST + RATE_PER_S * elapsed_s + 1
    assert BURST <= limited <= BURST + RATE_PER_S * elapsed_s + 1
    assert "dead letter (rate_limited): topic=" + FLOOD_TOPIC in gateway.log()
