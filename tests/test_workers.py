"""`gateway run --workers 2` against real mosquitto and influxd: one MQTT v5 shared subscription
split between two worker processes, every reading stored exactly once, also when a worker
is killed mid-stream and the supervisor starts it again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Self

import pytest

from tests.harness import (
    ROOT,
    GatewayProcess,
    compare_with_truth,
    gateway_config,
    load_truth,
    run_simulators,
    start_simulators,
    stored_readings,
    truth_counts,
    wait_for_counts,
)
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

FLEET = ("--lighting", "40", "--water", "40", "--traffic", "40")
WORKERS = 2
STOPPED = re.compile(r"stopped: (\d+) messages received")


class WorkersProcess(GatewayProcess):
    """`python -m gateway run --workers 2`: the supervisor; its log holds every worker's."""

    def start(self, wait_subscribed: bool = True) -> Self:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(self.config),
             "--workers", str(WORKERS)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        log.close()
        if wait_subscribed:
            self.wait_for_log("subscribed to", occurrences=WORKERS)
        return self

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(child) for child in children]


def _config(tmp_path: Path, broker: Mosquitto, influxd: Influxd, database: str) -> Path:
    return gateway_config(
        tmp_path / "gateway.toml",
        broker,
        influxd,
        database,
        overrides={"mqtt": {"shared_group": "town"}},
    )


def test_two_workers_split_the_stream_and_store_every_reading_once(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    truth_file = tmp_path / "truth.jsonl"
    with WorkersProcess(_config(tmp_path, mosquitto, influxd, influx_db)) as gateway:
        run_simulators(
            mosquitto, truth_file, *FLEET, "--messages", "4000", "--rate", "0", "--seed", "31"
        )
        truth = load_truth(truth_file)
        stored = wait_for_counts(influxd, influx_db, truth_counts(truth))
        assert gateway.stop() == 0, gateway.log()[-3000:]
    assert stored == truth_counts(truth)
    missing, extra, differences = compare_with_truth(influxd, influx_db, truth)
    assert (missing, extra, differences[:5]) == (0, 0, [])
    received = [int(count) for count in STOPPED.findall(gateway.log())]
    assert len(received) == WORKERS
    assert all(count > 0 for count in received), received  # the broker split the stream
    assert sum(received) == 4000  # and gave no message to both
    assert sorted(p.name for p in gateway.state_dir.iterdir()) == ["worker-0", "worker-1"]


def test_a_killed_worker_is_restarted_and_nothing_is_lost_or_doubled(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    truth_file = tmp_path / "truth.jsonl"
    stream = ("--messages", "6000", "--rate", "1200", "--seed", "32")
    with WorkersProcess(_config(tmp_path, mosquitto, influxd, influx_db)) as gateway:
        publisher = start_simulators(mosquitto, truth_file, *FLEET, *stream)
        try:
            wait_for(
                lambda: stored_readings(influxd, influx_db) >= 2000, 60, "2,000 readings stored"
            )
            assert publisher.poll() is None, "the stream ended before the crash"
            os.kill(gateway.worker_pids()[0], signal.SIGKILL)  # no flush, no acknowledgement
            gateway.wait_for_log("starting it again")
            gateway.wait_for_log("subscribed to", occurrences=WORKERS + 1)
            assert publisher.wait(timeout=120) == 0
        finally:
            if publisher.poll() is None:
                publisher.kill()
        truth = load_truth(truth_file)
        wait_for_counts(influxd, influx_db, truth_counts(truth))
        assert gateway.stop() == 0, gateway.log()[-3000:]
    missing, extra, differences = compare_with_truth(influxd, influx_db, truth)
    assert (missing, extra, differences[:5]) == (0, 0, [])
    assert "Traceback" not in gateway.log()
