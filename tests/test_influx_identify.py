"""Which engine answers at [influx] url, as `gateway doctor` reports it: real influxd 1.6 and
real VictoriaMetrics, and InfluxDB 2.x / 3 from their documented /ping answers (scripted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import InfluxSettings
from gateway.errors import SinkError
from gateway.stages.sinks.influx import InfluxSink, ServerIdentity
from tests.harness import ROOT, gateway_config
from tests.scripted_http import Step, scripted_server
from tests.servers import Influxd, Mosquitto, VictoriaMetrics


async def identify(url: str) -> ServerIdentity:
    sink = InfluxSink(InfluxSettings(url=url))
    try:
        return await sink.identify()
    finally:
        await sink.close()


@pytest.mark.integration
async def test_influxdb_1_6_is_named_with_its_version(influxd: Influxd) -> None:
    found = await identify(influxd.url)
    assert found.engine == "InfluxDB 1.x"
    assert found.version.startswith("1.6")
    assert found.write_apis == ("v1",)  # /api/v2/write came with 1.8


@pytest.mark.integration
async def test_victoria_metrics_is_told_apart_from_the_influxdb_it_imitates(
    victoria_metrics: VictoriaMetrics,
) -> None:
    found = await identify(victoria_metrics.url)
    assert found.engine == "VictoriaMetrics"
    assert found.write_apis == ("v1", "v2")


ALL_THREE = ("v3", "v2", "v1")


@pytest.mark.parametrize(
    ("build", "version", "engine", "apis"),
    [
        ("OSS", "v2.7.11", "InfluxDB 2.x", ("v2", "v1")),
        ("Core", "3.5.0", "InfluxDB 3 Core", ALL_THREE),
        ("Enterprise", "3.5.0", "InfluxDB 3 Enterprise", ALL_THREE),
        ("OSS", "1.8.10", "InfluxDB 1.x", ("v1", "v2")),
    ],
)
async def test_documented_ping_answers(
    build: str, version: str, engine: str, apis: tuple[str, ...]
) -> None:
    ping = f"HTTP/1.1 204 No Content\r\nX-Influxdb-Build: {build}\r\nX-Influxdb-Version: {version}"
    async with scripted_server(Step(ping.encode() + b"\r\n\r\n")) as server:
        found = await identify(server.url)
    assert (found.engine, found.write_apis) == (engine, apis)


@pytest.mark.integration
@pytest.mark.parametrize(("api", "verdict"), [("v1", "OK"), ("v2", "OK"), ("v3", "FAIL")])
def test_doctor_says_victoria_metrics_and_whether_the_api_fits(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, api: str, verdict: str
) -> None:
    influx = {"url": victoria_metrics.url, "api": api, "org": "town", "bucket": "town"}
    config = gateway_config(
        tmp_path / "gateway.toml",
        mosquitto,
        victoria_metrics,  # type: ignore[arg-type]  # gateway_config reads .url only, overridden
        "town",
        overrides={"influx": influx},
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    [line] = [row for row in result.stdout.splitlines() if row.split()[1:2] == ["influxdb:"]]
    assert line.split()[0] == verdict, result.stdout
    assert "VictoriaMetrics" in line
    assert "Traceback" not in result.stdout + result.stderr


async def test_a_ping_refused_for_want_of_a_token_says_so() -> None:
    """InfluxDB 3 answers /ping 401 without a valid token (its docs: tokens on every endpoint)."""
    unauthorized = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
    async with scripted_server(Step(unauthorized)) as server:
        with pytest.raises(SinkError, match=r"HTTP 401: InfluxDB 3 wants a token") as raised:
            await identify(server.url)
    assert raised.value.status == 401
