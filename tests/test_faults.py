"""No reading lost: faults injected into real processes while a sustained stream runs.

Every scenario streams simulated devices through a real mosquitto into the real gateway process
at about 2,000 readings per second, breaks something in the middle (InfluxDB, the gateway, the
broker, the spool on disk), repairs it, and then compares InfluxDB point by point with the
simulators' truth file: 0 readings lost, 0 stored twice. Each scenario records one report line
(`harness.report`), which the terminal summary shows.

The gateway is configured to give up on a failing write after 1 s (`[spool] write_timeout_s`)
and to time a request out after 1 s (`[influx] timeout_s`), so each outage reaches the
store-and-forward spool within a second or two.

Faults start and end on events the gateway shows (its /metrics counters and log lines), not
after fixed times: a fault begins once the stream flows through the gateway, lasts until the
gateway has reacted to it (spooled, reconnected, restarted), and the stream ends once the
gateway has written again after the repair. On a slow, busy machine a scenario only takes
longer; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.stages.spool import SPOOL_FILE, Spool
from tests.faultproxy import FaultProxy, Mode
from tests.harness import (
    GatewayProcess,
    ScenarioReport,
    TomlValue,
    gateway_config,
    load_truth,
    report,
    simulators_running,
    truth_counts,
    wait_for_counts,
)
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

# A third of the messages come from 2-4 lane traffic counters (one reading per lane), so
# 1,200 messages/s carry about 2,000 readings/s. No --start: the simulators then end their
# report times at the wall clock, and a fixed date would drift outside the gateway's device-clock
# tolerance (time.max_future_s / max_past_s) as the calendar moves on.
FLEET = ("--lighting", "40", "--water", "40", "--traffic", "40")
RATE = 1200
WRITE_TIMEOUT_S = 1.0
SPOOL_MIN_BYTES = 1024**2  # the smallest [spool] max_bytes the configuration accepts
# What the gateway logs when an outage outlasts write_timeout_s, and when the spool is full.
SPOOLING_LOG = "spooling batches to disk"
SPOOL_FULL_LOG = "spool full"
RECOVERED_LOG = "InfluxDB accepts writes again"
# "The stream flows": this many messages acknowledged by the gateway process (about 1 s of it).
FLOWING = RATE
# The long outage lasts until the spool holds this many readings (about 10 s of the stream,
# some 40 batches): a backlog the replay must write back while the live stream goes on.
OUTAGE_POINTS = 20_000
EVENT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Rig:
    """One scenario's broker, InfluxDB database, files and report destination."""

    workdir: Path
    broker: Mosquitto
    influxd: Influxd
    database: str
    results: Path

    @property
    def truth_file(self) -> Path:
        return self.workdir / "truth.jsonl"

    def gateway(self, *, influx_url: str | None = None, **spool: TomlValue) -> GatewayProcess:
        config = gateway_config(
            self.workdir / "gateway.toml",
            self.broker,
            self.influxd,
            self.database,
            overrides={
                "influx": {"url": influx_url or self.influxd.url, "timeout_s": 1.0},
                "spool": {"write_timeout_s": WRITE_TIMEOUT_S, **spool},
            },
        )
        return GatewayProcess(config)

    @contextlib.contextmanager
    def stream(self, *, seed: int, messages: int = RATE * 150) -> Iterator[subprocess.Popen[bytes]]:
        """Simulators publishing at RATE in the background until `messages` are sent or
        `end_stream` stops them; killed if the test fails first."""
        args = ("--messages", str(messages), "--rate", str(RATE), "--seed", str(seed))
        with simulators_running(self.broker, self.truth_file, *FLEET, *args) as publisher:
            yield publisher

    def settle(
        self,
        scenario: str,
        gateway: GatewayProcess,
        publisher: subprocess.Popen[bytes],
        *,
        timeout_s: float = 60.0,
    ) -> ScenarioReport:
        """Let the stream end and InfluxDB catch up, stop the gateway, report the scenario."""
        assert publisher.wait(timeout=120) == 0, "the simulators failed to publish"
        truth = load_truth(self.truth_file)
        wait_for_counts(self.influxd, self.database, truth_counts(truth), timeout_s=timeout_s)
        exit_code = gateway.stop()
        outcome = report(scenario, truth, self.influxd, self.database, self.results)
        assert exit_code == 0, gateway.log()[-5000:]
        return outcome


@pytest.fixture
def rig(
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: Influxd,
    influx_db: str,
    scenario_results: Path,
) -> Rig:
    return Rig(tmp_path, mosquitto, influxd, influx_db, scenario_results)


def acked(gateway: GatewayProcess) -> float:
    """Messages the running gateway process acknowledged (durable in InfluxDB or the spool)."""
    return gateway.metric("messages_acked_total")


def wait_for_flow(gateway: GatewayProcess, messages: int = FLOWING) -> None:
    """Wait until the gateway process acknowledges `messages` more than it has so far."""
    target = acked(gateway) + messages
    wait_for(lambda: acked(gateway) >= target, EVENT_TIMEOUT_S, f"{target:.0f} messages acked")


def wait_for_log(gateway: GatewayProcess, text: str, occurrences: int) -> None:
    gateway.wait_for_log(text, occurrences=occurrences, timeout_s=EVENT_TIMEOUT_S)


def end_stream(publisher: subprocess.Popen[bytes], gateway: GatewayProcess) -> None:
    """Once the gateway has taken FLOWING more messages, stop the stream: on SIGTERM the
    simulators stop generating, publish what they already wrote to the truth file, and exit
    0. Ending streams on events rather than fixed lengths keeps each fault mid-stream on a
    slow, busy machine."""
    wait_for_flow(gateway)
    assert publisher.poll() is None, "the stream ended before the fault was over"
    publisher.send_signal(signal.SIGTERM)


def assert_nothing_lost(outcome: ScenarioReport, gateway: GatewayProcess) -> None:
    assert (outcome.lost, outcome.doubled) == (0, 0), outcome.line
    assert outcome.comparison.differences[:5] == []
    assert "Traceback" not in gateway.log()


def test_influxd_stopped_while_the_spool_fills_mid_stream(
    tmp_path: Path, mosquitto: Mosquitto, private_influxd: Influxd, scenario_results: Path
) -> None:
    rig = Rig(tmp_path, mosquitto, private_influxd, "faults", scenario_results)
    private_influxd.create_database(rig.database)
    with rig.gateway() as gateway, rig.stream(seed=21) as publisher:
        wait_for_flow(gateway)
        private_influxd.stop()
        wait_for_log(gateway, SPOOLING_LOG, 1)
        wait_for(
            lambda: gateway.metric("spool_points") >= OUTAGE_POINTS,
            2 * EVENT_TIMEOUT_S,
            f"{OUTAGE_POINTS} readings in the spool",
        )
        assert gateway.running, "the gateway died during the outage"
        private_influxd.start()
        wait_for_log(gateway, RECOVERED_LOG, 1)
        end_stream(publisher, gateway)
        outcome = rig.settle("influxd_stopped", gateway, publisher, timeout_s=120)
    assert_nothing_lost(outcome, gateway)


def test_influx_errors_and_timeouts_mid_stream(rig: Rig, fault_proxy: FaultProxy) -> None:
    # Each fault lasts well beyond write_timeout_s, so the gateway spools during each one.
    faults = [
        (Mode.ERROR, 500, None),
        (Mode.ERROR, 503, 1),
        (Mode.ERROR, 429, 1),
        (Mode.HANG, 503, None),
    ]
    with rig.gateway(influx_url=fault_proxy.url) as gateway, rig.stream(seed=22) as publisher:
        for number, (mode, status, retry_after) in enumerate(faults, start=1):
            wait_for_flow(gateway)
            fault_proxy.set_mode(mode, status=status, retry_after=retry_after)
            wait_for_log(gateway, SPOOLING_LOG, number)  # the fault outlasted write_timeout_s
            wait_for_flow(gateway)  # and the stream goes on into the spool
            fault_proxy.pass_through()
            wait_for_log(gateway, RECOVERED_LOG, number)
        end_stream(publisher, gateway)
        outcome = rig.settle("influx_500_503_429_hang", gateway, publisher)
    assert_nothing_lost(outcome, gateway)
    assert fault_proxy.counts[Mode.ERROR] >= 3
    assert fault_proxy.counts[Mode.HANG] >= 1
    assert gateway.log().count(SPOOLING_LOG) == len(faults), "each fault must reach the spool"


def test_gateway_killed_three_times_mid_stream(rig: Rig) -> None:
    with rig.gateway() as gateway, rig.stream(seed=23) as publisher:
        for _ in range(3):
            wait_for_flow(gateway)
            assert publisher.poll() is None, "the stream ended before the crash"
            gateway.restart(crash=True)  # SIGKILL: no flush, no acknowledgement
        end_stream(publisher, gateway)
        outcome = rig.settle("gateway_kill9_x3", gateway, publisher)
    assert_nothing_lost(outcome, gateway)
    assert gateway.log().count("subscribed to") == 4


def test_broker_restarted_mid_stream(rig: Rig) -> None:
    assert rig.broker.persistence, "the broker must keep the queued messages over a restart"
    with rig.gateway() as gateway, rig.stream(seed=24) as publisher:
        wait_for_flow(gateway)
        assert publisher.poll() is None, "the stream ended before the broker restart"
        rig.broker.restart(down_s=1.0)  # the scenario: a broker away for a second
        gateway.wait_for_log("subscribed to", occurrences=2)
        end_stream(publisher, gateway)
        outcome = rig.settle("broker_restart", gateway, publisher)
    assert_nothing_lost(outcome, gateway)


def test_spool_fills_up_during_an_outage(rig: Rig, fault_proxy: FaultProxy) -> None:
    # 18,000 messages carry about 30,000 readings, several MB of line protocol: far more than
    # the spool may hold, so the gateway must stop acknowledging and the broker keeps the rest.
    with (
        rig.gateway(influx_url=fault_proxy.url, max_bytes=SPOOL_MIN_BYTES) as gateway,
        rig.stream(messages=18_000, seed=25) as publisher,
    ):
        wait_for_flow(gateway)
        fault_proxy.error(503)
        spool_filled = gateway.logged_within(SPOOL_FULL_LOG, timeout_s=30.0)
        assert publisher.wait(timeout=120) == 0, "the broker must take the stream while full"
        assert gateway.running, "the gateway died with a full spool"
        fault_proxy.pass_through()
        outcome = rig.settle("spool_full", gateway, publisher)
    assert_nothing_lost(outcome, gateway)
    assert spool_filled, f"the gateway never logged {SPOOL_FULL_LOG!r}"


def test_torn_spool_record_after_a_crash(rig: Rig, fault_proxy: FaultProxy) -> None:
    with (
        rig.gateway(influx_url=fault_proxy.url) as gateway,
        rig.stream(seed=26) as publisher,
    ):
        wal = gateway.state_dir / f"{SPOOL_FILE}-wal"
        wait_for_flow(gateway)
        fault_proxy.drop()
        spooling = gateway.logged_within(SPOOLING_LOG, timeout_s=15.0)
        # Crash in the middle of spooling, not at its start: once batches are going to disk.
        wait_for(lambda: gateway.metric("spooled_batches_total") >= 5, 30, "5 batches spooled")
        gateway.kill()
        torn = spooling and wal.exists()
        if torn:
            # What a write cut short by power loss leaves: a partial WAL frame, checksum wrong.
            with wal.open("ab") as handle:
                handle.write(random.Random(26).randbytes(100))
        acknowledged = spooled_batches(gateway.state_dir, rig.workdir / "spool-copy")
        gateway.start()  # must start on the torn spool (start() fails if it exits instead)
        # Still down: the new process spools on top of the torn file. (It may log no
        # SPOOLING_LOG: its spool replay can find InfluxDB down before a live write does.)
        wait_for(lambda: gateway.metric("spooled_batches_total") >= 1, 30, "spooled after restart")
        fault_proxy.pass_through()
        end_stream(publisher, gateway)
        outcome = rig.settle("torn_spool_record", gateway, publisher)
    assert_nothing_lost(outcome, gateway)
    assert spooling, f"the gateway never logged {SPOOLING_LOG!r} while InfluxDB was down"
    assert torn, f"no {wal} to tear: the spool must be an SQLite database in WAL mode"
    assert acknowledged > 0, "the crash must leave spooled (acknowledged) batches behind"
    assert "unreadable" not in gateway.log(), "a torn WAL frame must not discard the spool"


def spooled_batches(state_dir: Path, scratch: Path) -> int:
    """Batches committed to a crashed gateway's spool, counted in a copy: opening the original
    would recover its WAL, and closing the last connection checkpoints and deletes it."""
    scratch.mkdir()
    for name in (SPOOL_FILE, f"{SPOOL_FILE}-wal"):
        if (state_dir / name).exists():
            shutil.copyfile(state_dir / name, scratch / name)
    spool = Spool(scratch / SPOOL_FILE, SPOOL_MIN_BYTES)
    try:
        return spool.depth.batches
    finally:
        spool.close()
