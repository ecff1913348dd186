"""InfluxDB with authentication: the right credentials write; wrong ones alarm and lose nothing.

A 401 is the operator's problem, not the data's: the gateway logs it at ERROR ("refused our
credentials"), spools the batches and keeps them until it is restarted with the right password,
then replays them.
"""

from __future__ import annotations

import contextlib
import datetime
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import (
    GatewayProcess,
    compare_with_truth,
    gateway_config,
    load_truth,
    run_simulators,
    stored_counts,
    truth_counts,
    wait_for_counts,
)
from tests.servers import Influxd, Mosquitto, quote_ident, quote_string

pytestmark = pytest.mark.integration

DATABASE = "telemetry"
USER = "mh-gateway"
PASSWORD = "Gw-pass-4711"
WRONG_PASSWORD = "Gw-pass-0000"


@pytest.fixture
def secured_influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A private InfluxDB with auth on, an admin for the test and a write user for the gateway."""
    with Influxd(tmp_path / "influxd", auth=True) as server:
        server.create_admin("admin", "Admin-pass-1")
        server.create_database(DATABASE)
        server.query(f"CREATE USER {quote_ident(USER)} WITH PASSWORD {quote_string(PASSWORD)}")
        server.query(f"GRANT ALL ON {quote_ident(DATABASE)} TO {quote_ident(USER)}")
        yield server


@contextlib.contextmanager
def gateway_running(config: Path) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(config)
    try:
        yield gateway.start()
    finally:
        gateway.kill()


def config_for(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx: dict[str, str]
) -> Path:
    return gateway_config(
        tmp_path / "gateway.toml",
        mosquitto,
        influxd,
        DATABASE,
        overrides={
            "influx": {"username": USER, **influx},
            "spool": {"write_timeout_s": 1.0},
            "http": {"port": 0},
        },
    )


def hours_ago(hours: int) -> str:
    """A simulator start time that keeps the readings within the profiles' clock tolerance
    (time.max_past_s, 30 days) whatever today's date is."""
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=hours)
    return start.strftime("%Y-%m-%dT%H:00:00Z")


def publish(mosquitto: Mosquitto, truth: Path, seed: str, start: str) -> None:
    run_simulators(
        mosquitto, truth,
        "--lighting", "5", "--water", "5", "--traffic", "0",
        "--messages", "300", "--rate", "0", "--seed", seed, "--start", start,
    )  # fmt: skip


def test_wrong_password_alarms_keeps_the_data_and_the_right_one_delivers_it(
    tmp_path: Path,
    mosquitto: Mosquitto,
    secured_influxd: Influxd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The wrong password comes from the environment, as an operator's typo would.
    monkeypatch.setenv("GATEWAY_INFLUX__PASSWORD", WRONG_PASSWORD)
    config = config_for(tmp_path, mosquitto, secured_influxd, {})
    with gateway_running(config) as gateway:
        publish(mosquitto, tmp_path / "truth-1.jsonl", "21", hours_ago(36))
        gateway.wait_for_log(
            "ERROR gateway.stages.deliver: InfluxDB refused our credentials (HTTP 401)"
        )
        gateway.wait_for_log("spooling batches to disk")
        assert gateway.stop() == 0
    log = gateway.log()
    assert "check [influx] username/password or token (data kept; retrying)" in log
    assert "points stay in the spool and are replayed at the next start" in log
    assert stored_counts(secured_influxd, DATABASE, ["streetlight", "water_flow"]) == Counter()

    # Fixed: the right password, from a file this time. The spool replays, new readings flow.
    monkeypatch.delenv("GATEWAY_INFLUX__PASSWORD")
    password_file = tmp_path / "influx-password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    config = config_for(tmp_path, mosquitto, secured_influxd, {"password_file": str(password_file)})
    with gateway_running(config) as gateway:
        publish(mosquitto, tmp_path / "truth-2.jsonl", "22", hours_ago(24))
        truth = load_truth(tmp_path / "truth-1.jsonl") + load_truth(tmp_path / "truth-2.jsonl")
        stored = wait_for_counts(secured_influxd, DATABASE, truth_counts(truth), 30.0)
        gateway.wait_for_log("spool drained")
        assert gateway.stop() == 0
    assert stored == truth_counts(truth)
    missing, extra, differences = compare_with_truth(secured_influxd, DATABASE, truth)
    assert (missing, extra, differences[:5]) == (0, 0, [])
    log = gateway.log()
    assert "from before; replaying them" in log
    assert "refused our credentials" not in log.split("spool holds", 1)[1]
    assert "Traceback" not in log
    for secret in (PASSWORD, WRONG_PASSWORD):
        assert secret not in log
