"""The whole pipeline over IPv6 only: simulators -> mosquitto on ::1 -> gateway -> influxd on ::1.

Neither server listens on an IPv4 address, so a reading that arrives crossed ::1 all the way:
`[mqtt] host = "::1"`, `[influx] url = "http://[::1]:PORT"`, the simulators' `--broker [::1]:PORT`
and the health endpoint on `::1`.
"""

from __future__ import annotations

import datetime
import socket
from pathlib import Path

import pytest

from tests.harness import (
    GatewayProcess,
    compare_with_truth,
    gateway_config,
    load_truth,
    run_simulators,
    truth_counts,
    wait_for_counts,
)
from tests.servers import Influxd, Mosquitto, free_port


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback address (::1)"
    ),
]


def test_readings_travel_over_ipv6_only(tmp_path: Path) -> None:
    database = "telemetry_v6"
    broker = Mosquitto(tmp_path / "mosquitto", host="::1", port=free_port("::1"))
    with Influxd(tmp_path / "influxd", host="::1") as influxd:
        assert influxd.url.startswith("http://[::1]:")
        influxd.create_database(database)
        config = gateway_config(
            tmp_path / "gateway.toml",
            broker,
            influxd,
            database,
            overrides={"http": {"listen": "::1", "port": 0}},
        )
        gateway = GatewayProcess(config)
        try:
            # Started before the broker: the connect failures name [::1]:PORT, then it connects.
            gateway.start(wait_subscribed=False)
            gateway.wait_for_log(f"MQTT connect to [::1]:{broker.port} failed")
            with broker:
                gateway.wait_for_log("subscribed to")
                truth_file = tmp_path / "truth.jsonl"
                start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
                run_simulators(
                    broker, truth_file,
                    "--lighting", "5", "--water", "5", "--traffic", "5",
                    "--messages", "300", "--rate", "0", "--seed", "6",
                    "--start", start.strftime("%Y-%m-%dT%H:00:00Z"),
                )  # fmt: skip
                truth = load_truth(truth_file)
                stored = wait_for_counts(influxd, database, truth_counts(truth), 30.0)
                assert gateway.stop() == 0
        finally:
            gateway.kill()
        missing, extra, differences = compare_with_truth(influxd, database, truth)
    assert stored == truth_counts(truth)
    assert (missing, extra, differences[:5]) == (0, 0, [])
    log = gateway.log()
    assert "Traceback" not in log
    assert "health endpoint on http://[::1]:" in log
    broker_log = broker.log_path.read_text()
    assert "Opening ipv6 listen socket" in broker_log
    assert "Opening ipv4 listen socket" not in broker_log
    assert "New client connected from ::1" in broker_log
