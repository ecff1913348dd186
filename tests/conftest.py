"""Fixtures that start real, private mosquitto and influxd processes (see tests/servers.py).

A missing binary fails the test with install instructions instead of skipping it: a green run
must mean the integration tests ran.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faultproxy import FaultProxy
from tests.servers import Influxd, Mosquitto, VictoriaMetrics

_SCENARIO_RESULTS = pytest.StashKey[Path]()

# Every gateway a test starts, in process or as a subprocess (which inherits this), serves its
# health endpoint on a free port: tests run next to each other and next to a real gateway.
os.environ.setdefault("GATEWAY_HTTP__PORT", "0")


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One InfluxDB for the whole session; tests isolate their data with `influx_db`.

    Tests that stop, restart or reconfigure InfluxDB take `private_influxd` instead, so they
    cannot break the tests that run after them.
    """
    with Influxd(tmp_path_factory.mktemp("influxd")) as server:
        yield server


@pytest.fixture
def influx_db(influxd: Influxd, request: pytest.FixtureRequest) -> Iterator[str]:
    """Name of a fresh database in the session InfluxDB, dropped after the test."""
    # The test name makes leftovers traceable; the suffix keeps parametrized and repeated runs
    # apart. InfluxQL needs no more than quoting, but plain names read better in SHOW DATABASES.
    readable = re.sub(r"\W+", "_", request.node.name).strip("_")[:40]
    name = f"{readable}_{uuid.uuid4().hex[:8]}"
    influxd.create_database(name)
    yield name
    influxd.drop_database(name)


@pytest.fixture
def private_influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """An InfluxDB of this test's own (starts in well under a second), free to stop or restart."""
    with Influxd(tmp_path_factory.mktemp("private_influxd")) as server:
        yield server


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A fresh broker with persistence for each test, on its own port."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics of this test's own (starts in about 0.1 s), free to restart."""
    with VictoriaMetrics(tmp_path_factory.mktemp("victoria_metrics")) as server:
        yield server


@pytest.fixture
def fault_proxy(influxd: Influxd) -> Iterator[FaultProxy]:
    """A proxy in front of the session InfluxDB whose faults a test switches at will."""
    with FaultProxy(influxd.url) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def scenario_results(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """File the fault scenarios append their report lines to (see harness.report)."""
    path = tmp_path_factory.getbasetemp() / "scenario-results.txt"
    request.config.stash[_SCENARIO_RESULTS] = path
    return path


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Show every scenario's report line, with or without -s and whether it passed or not."""
    path = config.stash.get(_SCENARIO_RESULTS, None)
    if path is None or not path.exists():
        return
    terminalreporter.write_sep("=", "fault scenarios: readings sent, stored, lost, doubled")
    for line in path.read_text(encoding="utf-8").splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(also in {path})")


_SERVER_FIXTURES = {"influxd", "influx_db", "private_influxd", "mosquitto", "victoria_metrics"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts a real server is an integration test, marked or not, so that
    `make test-unit` (-m "not integration") starts none."""
    for item in items:
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
