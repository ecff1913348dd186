"""A full dead-letter store set to pause (issue 18), with real mosquitto, influxd and
`python -m gateway run`: intake waits as on a full disk, /readyz says why, /healthz does not ask
for a restart, and removing letters resumes everything without one. Prints its figures."""

from __future__ import annotations

import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.stages.deadletter import DEAD_LETTER_FILE
from tests.harness import GatewayProcess, gateway_config
from tests.hostile_clients import BAD_PAYLOAD, good_and_bad, publish
from tests.servers import Influxd, Mosquitto
from tests.test_hostile import PAIRS, STUCK_LOG, Outcome, dead_letters, note, readyz, stored
from tests.waits import wait_for

pytestmark = pytest.mark.integration

MAX_LETTERS = 1000  # [spool] deadletter_max_records: its minimum


def healthz(gateway: GatewayProcess) -> int:
    with urllib.request.urlopen(gateway.health_url() + "/healthz", timeout=5) as answer:  # noqa: S310  # http:// from the log
        return int(answer.status)


def test_a_full_dead_letter_store_set_to_pause_holds_intake_until_letters_are_removed(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, scenario_results: Path
) -> None:
    config = gateway_config(
        tmp_path / "gateway.toml",
        mosquitto,
        influxd,
        influx_db,
        overrides={
            "spool": {"deadletter_max_records": MAX_LETTERS, "deadletter_when_full": "pause"}
        },
    )
    state = tmp_path / "state"
    with GatewayProcess(config) as gateway:
        publish(mosquitto.port, [("city/lighting/di-su/sl-0003/telemetry", BAD_PAYLOAD)] * 1000)
        wait_for(lambda: dead_letters(state, "invalid_json") == MAX_LETTERS, 60, "the store full")
        started = time.monotonic()
        publish(mosquitto.port, good_and_bad(PAIRS))
        gateway.wait_for_log(STUCK_LOG)
        status, reasons = readyz(gateway)
        assert status == 503
        assert any("full: 1000 letters" in reason for reason in reasons), reasons
        assert healthz(gateway) == 200  # a known wait: no restart asked for
        held = stored(influxd, influx_db)
        with sqlite3.connect(state / DEAD_LETTER_FILE) as db:  # what an operator can do
            db.execute(
                "DELETE FROM dead_letters WHERE id <= (SELECT MIN(id) + 499 FROM dead_letters)"
            )
        db.close()
        freed_at = time.monotonic()
        gateway.wait_for_log("writable again", timeout_s=30)
        wait_for(lambda: stored(influxd, influx_db) == PAIRS, 60, "every reading stored")
        recovered_s = time.monotonic() - freed_at
        wait_for(lambda: readyz(gateway)[0] == 200, 30, "ready again")
        assert gateway.running
        assert gateway.stop() == 0
    # 500 of the first 1000 letters removed: every letter the store has now is a new one's
    # or one of the 500 left.
    result = Outcome(stored(influxd, influx_db), dead_letters(state, "invalid_json") - 500)
    note(
        scenario_results,
        f"dead-letter store full, when_full=pause, then 500 letters removed: {result} "
        f"stored_while_paused={held} recovered_in={recovered_s:.1f}s "
        f"total={time.monotonic() - started:.1f}s",
    )
    assert result == Outcome(PAIRS, PAIRS)
