"""Hostile conditions with real processes (issue 18): a full disk, a restart on a full disk,
hostile health clients. Real mosquitto, influxd and `python -m gateway run`.

Each scenario appends a figures line to the scenario results (shown in pytest's terminal
summary, like tests/test_faults.py): messages sent, stored, dead-lettered, lost, doubled, RSS.
The state directory of the disk scenarios is a small tmpfs mounted for the test (root only;
elsewhere those scenarios are skipped, saying so), filled with a filler file and freed again.
Hostile profile files are in tests/test_hostile_profiles.py, payload shapes for the privacy
redactor in tests/test_hostile_privacy.py, the pure limits in tests/test_limits_hostile.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from tests.harness import ROOT, GatewayProcess, gateway_config
from tests.hostile_clients import (
    BAD_PAYLOAD,
    GOOD_TOPIC,
    good_and_bad,
    hostile_http,
    publish,
    rss_bytes,
    streetlight,
)
from tests.servers import Influxd, Mosquitto
from tests.small_disk import fill, free, small_disk
from tests.waits import wait_for

pytestmark = pytest.mark.integration

DISK_BYTES = 8 * 1024**2
PAIRS = 500  # good readings and as many messages that are not JSON
STUCK_LOG = "not acknowledging new messages, intake paused"
DRAIN_TIMEOUT_S = 10.0  # gateway.pipeline.Gateway.run's default: SIGTERM must end it within


def note(results: Path, line: str) -> None:
    print(line, flush=True)
    with results.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def stored(influxd: Influxd, database: str, device: str = "sl-0001") -> int:
    answer = influxd.query(
        f"SELECT COUNT(power_w) FROM streetlight WHERE device_id = '{device}'", db=database
    )
    series = answer["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def readyz(gateway: GatewayProcess) -> tuple[int, list[str]]:
    try:
        with urllib.request.urlopen(gateway.health_url() + "/readyz", timeout=5) as answer:  # noqa: S310  # http:// from the log
            return answer.status, json.loads(answer.read())["reasons"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["reasons"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of PAIRS good and PAIRS bad messages."""

    stored: int
    dead_letters: int

    @classmethod
    def read(cls, state: Path, influxd: Influxd, database: str) -> Outcome:
        return cls(stored(influxd, database), dead_letters(state, "invalid_json"))

    def __str__(self) -> str:
        lost = 2 * PAIRS - self.stored - self.dead_letters
        doubled = max(0, self.stored - PAIRS) + max(0, self.dead_letters - PAIRS)
        return (
            f"sent={2 * PAIRS} stored={self.stored} dead_letters={self.dead_letters} "
            f"lost={lost} doubled={doubled}"
        )


def dead_letters(state: Path, reason: str) -> int:
    store = DeadLetterStore(state / DEAD_LETTER_FILE)
    try:
        return store.count(reason)
    finally:
        store.close()


class Flood(NamedTuple):
    letters: int  # dead letters of the flood's reason in the store, after the stop
    rss_growth: int  # bytes of resident memory the gateway gained through the flood
    figures: str  # "<reason>=<letters> rss <before> -> <after> MB", for the scenario line


def flood_of_dead_letters(
    gateway: GatewayProcess,
    broker: Mosquitto,
    messages: Iterable[tuple[str, bytes]],
    *,
    count: int,
    reason: str,
    timeout_s: float,
) -> Flood:
    """Publish `count` messages that should each be one dead letter `reason`, wait until the
    gateway counted them all, and stop it (the stop drains: what it counted is stored)."""
    assert gateway.process is not None
    before = rss_bytes(gateway.process.pid)
    publish(broker.port, messages)
    wait_for(
        lambda: gateway.metric("dead_letters_total", reason=reason) >= count,
        timeout_s,
        f"{count} dead letters {reason}",
    )
    after = rss_bytes(gateway.process.pid)
    assert gateway.stop() == 0
    letters = dead_letters(gateway.state_dir, reason)
    figures = f"{reason}={letters} rss {before / 2**20:.0f} -> {after / 2**20:.0f} MB"
    return Flood(letters, after - before, figures)


def test_disk_full_pauses_intake_then_recovers_without_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, scenario_results: Path
) -> None:
    with small_disk(tmp_path / "state", DISK_BYTES) as state:
        # Its state directory is tmp_path/state: the small disk.
        config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
        with GatewayProcess(config) as gateway:
            assert gateway.process is not None
            fill(state)
            started = time.monotonic()
            publish(mosquitto.port, good_and_bad(PAIRS))
            gateway.wait_for_log(STUCK_LOG)
            status, reasons = readyz(gateway)
            assert status == 503
            assert any("cannot write" in reason for reason in reasons), reasons
            rss_full = rss_bytes(gateway.process.pid)
            freed_at = time.monotonic()
            free(state)
            gateway.wait_for_log("writable again", timeout_s=30)
            wait_for(lambda: stored(influxd, influx_db) == PAIRS, 60, "every reading stored")
            recovered_s = time.monotonic() - freed_at
            wait_for(lambda: readyz(gateway)[0] == 200, 30, "ready again")
            assert gateway.running  # never crashed
            assert gateway.stop() == 0
        result = Outcome.read(state, influxd, influx_db)
    note(
        scenario_results,
        f"disk full, then freed: {result} "
        f"rss_while_full={rss_full / 2**20:.0f}MB recovered_in={recovered_s:.1f}s "
        f"total={time.monotonic() - started:.1f}s",
    )
    assert result == Outcome(PAIRS, PAIRS)


def test_restart_on_a_full_disk_runs_stops_on_sigterm_and_recovers(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, scenario_results: Path
) -> None:
    with small_disk(tmp_path / "state", DISK_BYTES) as state:
        # Its state directory is tmp_path/state: the small disk.
        config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
        gateway = GatewayProcess(config).start()
        assert gateway.stop() == 0  # a clean stop: SQLite removes its -wal and -shm files
        fill(state)
        gateway.start()  # must open the stores on the full disk (the reserve file)
        gateway.wait_for_log("reserve file")
        fill(state)  # what the reserve gave back: the disk is still full
        publish(mosquitto.port, good_and_bad(PAIRS))
        gateway.wait_for_log(STUCK_LOG)
        status, _ = readyz(gateway)
        sigterm_at = time.monotonic()
        assert gateway.stop(timeout_s=DRAIN_TIMEOUT_S + 10) == 0
        stop_s = time.monotonic() - sigterm_at
        free(state)
        gateway.start()  # the broker kept every message not acknowledged
        wait_for(lambda: stored(influxd, influx_db) == PAIRS, 60, "every reading stored")
        wait_for(
            lambda: dead_letters(state, "invalid_json") >= PAIRS,
            60,
            "every bad message dead-lettered",
        )
        assert gateway.stop() == 0
        result = Outcome.read(state, influxd, influx_db)
    note(
        scenario_results,
        f"restart on a full disk: {result} "
        f"readyz_while_full={status} sigterm_to_exit={stop_s:.1f}s",
    )
    assert status == 503
    assert stop_s < DRAIN_TIMEOUT_S + 5
    assert result == Outcome(PAIRS, PAIRS)


HOSTILE_DEVICES = 3000
HEAVY_ANSWERS_PER_S = 10  # gateway/operations/endpoint.py
MAX_CONNECTIONS = 16  # [http] max_connections default
BACKLOG = 20_000


def test_hostile_health_clients_leave_ingest_and_memory_alone(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, scenario_results: Path
) -> None:
    """60 clients that never read and 8 that loop on /devices/stale while a backlog drains:
    the health server answers at most its paced number of stale lists (counted, not timed: the
    drain times are printed for comparison), the backlog is stored whole, memory stays put."""
    config = gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, influx_db,
        overrides={"limits": {"device_rate_per_s": 0}},  # one device sends the backlog
        extra='\n[monitoring.expected_interval_s]\n"mh-streetlight-json" = 0.1\n',
    )  # fmt: skip
    first_ms = int(time.time() * 1000) - 3 * BACKLOG * 1000
    with GatewayProcess(config) as gateway:
        assert gateway.process is not None
        # Many stale devices: the largest /devices/stale answer there can be.
        publish(
            mosquitto.port,
            [
                (f"city/lighting/di-su/stale-{n}/telemetry", streetlight(first_ms, n))
                for n in range(HOSTILE_DEVICES)
            ],
        )
        wait_for(
            lambda: stored(influxd, influx_db, f"stale-{HOSTILE_DEVICES - 1}") == 1,
            60,
            "the stale devices' readings stored",
        )
        host, port = gateway.health_url().removeprefix("http://").rsplit(":", 1)
        baseline_s = drain_backlog(mosquitto, influxd, influx_db, first_ms, 0)
        rss_before = rss_bytes(gateway.process.pid)
        with hostile_http(host, int(port), silent=60, looping=8) as clients:
            hostile_s = drain_backlog(mosquitto, influxd, influx_db, first_ms, BACKLOG)
            rss_during = rss_bytes(gateway.process.pid)
            answers = clients.answers
        assert gateway.running
        assert gateway.stop() == 0
    note(
        scenario_results,
        f"hostile health clients: {BACKLOG} messages in {baseline_s:.1f}s without, "
        f"{hostile_s:.1f}s with 60 silent + 8 looping clients ({answers} stale lists served); "
        f"rss {rss_before / 2**20:.0f} -> {rss_during / 2**20:.0f} MB",
    )
    assert answers <= HEAVY_ANSWERS_PER_S * (hostile_s + 1) + MAX_CONNECTIONS
    assert rss_during - rss_before < 32 * 1024**2


def drain_backlog(
    broker: Mosquitto, influxd: Influxd, database: str, first_ms: int, offset: int
) -> float:
    """Publish BACKLOG readings of sl-0001 and wait until InfluxDB has them: seconds taken."""
    started = time.monotonic()
    expected = stored(influxd, database) + BACKLOG
    publish(broker.port, [(GOOD_TOPIC, streetlight(first_ms, offset + n)) for n in range(BACKLOG)])
    wait_for(lambda: stored(influxd, database) >= expected, 120, "the backlog stored")
    return time.monotonic() - started


def test_doctor_warns_when_the_dead_letters_may_outgrow_the_disk(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    # Room for the spool's 1 MiB (and doctor's own minimum), not for 256 MiB of dead letters.
    with small_disk(tmp_path / "state", 128 * 1024**2):
        config = gateway_config(
            tmp_path / "gateway.toml", mosquitto, influxd, influx_db,
            overrides={"spool": {"max_bytes": 1024**2}},
        )  # fmt: skip
        doctor = subprocess.run(
            [sys.executable, "-m", "gateway", "doctor", "--config", str(config)],
            capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
        )  # fmt: skip
    [line] = [line for line in doctor.stdout.splitlines() if "free disk" in line]
    assert "WARN" in line, doctor.stdout
    assert "deadletter_max_bytes 256.0 MiB" in line


DEVICE_TOPICS = 200_000
DEVICE_TOPICS_RSS_BOUND = 64 * 1024**2  # documented in docs/operations.md (Hostile conditions)


def test_200000_device_topics_keep_memory_bounded(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, scenario_results: Path
) -> None:
    """Every message from another device topic: the per-topic tables (rate limiter, profile
    resolution cache) stay bounded. The payloads are not JSON, so InfluxDB is spared 200,000
    series; each message is one dead letter."""
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    with GatewayProcess(config) as gateway:
        flood = flood_of_dead_letters(
            gateway,
            mosquitto,
            (
                (f"city/lighting/d{n % 97:02d}/sl-{n:06d}/telemetry", BAD_PAYLOAD)
                for n in range(DEVICE_TOPICS)
            ),
            count=DEVICE_TOPICS,
            reason="invalid_json",
            timeout_s=300,
        )
    note(scenario_results, f"{DEVICE_TOPICS} device topics: {flood.figures}")
    assert flood.letters == DEVICE_TOPICS
    assert flood.rss_growth < DEVICE_TOPICS_RSS_BOUND
