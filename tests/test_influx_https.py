"""InfluxDB over HTTPS with a private CA: `[influx] ca_file`, verification always on.

A certificate the gateway must not trust is a clear, retried error: the readings go to the
spool and reach InfluxDB once the gateway trusts the right CA, none lost.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import InfluxSettings
from gateway.errors import ConfigError
from gateway.stages.sinks.influx import InfluxSink
from tests.harness import GatewayProcess, gateway_config
from tests.servers import Influxd, Mosquitto
from tests.tls import Pki, make_pki

pytestmark = pytest.mark.integration

DATABASE = "telemetry"
TOPIC = "city/lighting/di-su/sl-0042/telemetry"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def https_influxd(tmp_path: Path, pki: Pki) -> Iterator[Influxd]:
    with Influxd(tmp_path / "influxd", https=(pki.server.cert, pki.server.key, pki.ca)) as server:
        server.create_database(DATABASE)
        yield server


def config_for(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, ca_file: Path) -> Path:
    assert influxd.url.startswith("https://")
    return gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, DATABASE,
        overrides={"influx": {"ca_file": str(ca_file)}, "spool": {"write_timeout_s": 1.0}},
    )  # fmt: skip


READINGS = 50


def publish(mosquitto: Mosquitto, first_s: int) -> None:
    """READINGS streetlight reports, one a second from `first_s` on."""
    lines = [
        f'{{"ts": {(first_s + n) * 1000}, "lamp": {{"state": "ON", "dim": 50, "fault": 0}},'
        f' "elec": {{"p_w": 75.0, "v": 230.0, "i_a": 0.33, "e_kwh": {n}.0}}}}'
        for n in range(READINGS)
    ]
    subprocess.run(
        ["mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-t", TOPIC, "-l"],
        input="\n".join(lines) + "\n", text=True, check=True, timeout=60,
    )  # fmt: skip


def stored(influxd: Influxd) -> int:
    answer = influxd.query("SELECT COUNT(energy_kwh) FROM streetlight", db=DATABASE)
    series = answer["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def test_a_wrong_ca_spools_and_the_right_one_delivers_everything(
    tmp_path: Path, mosquitto: Mosquitto, https_influxd: Influxd, pki: Pki
) -> None:
    first_s = int(time.time()) - 3600
    config = config_for(tmp_path, mosquitto, https_influxd, pki.other_ca)
    with GatewayProcess(config) as gateway:
        publish(mosquitto, first_s)
        gateway.wait_for_log("InfluxDB's TLS certificate was refused")
        gateway.wait_for_log("spooling batches to disk")
        assert gateway.stop() == 0
    log = gateway.log()
    assert "certificate verify failed" in log
    assert "[influx] ca_file" in log
    assert "Traceback" not in log
    assert "points stay in the spool" in log
    assert stored(https_influxd) == 0

    config = config_for(tmp_path, mosquitto, https_influxd, pki.ca)
    with GatewayProcess(config) as gateway:
        publish(mosquitto, first_s + READINGS)
        deadline = time.monotonic() + 30
        while stored(https_influxd) < 2 * READINGS and time.monotonic() < deadline:
            time.sleep(0.2)
        gateway.wait_for_log("spool drained")
        assert gateway.stop() == 0
    assert stored(https_influxd) == 2 * READINGS  # the spooled ones and the new ones


def test_ca_file_mistakes_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ca_file is set but url is not https://"):
        InfluxSettings(url="http://127.0.0.1:8086", ca_file=tmp_path / "ca.pem")
    settings = InfluxSettings(url="https://127.0.0.1:8086", ca_file=tmp_path / "absent.pem")
    with pytest.raises(ConfigError, match=r"cannot load influx.ca_file .*absent.pem"):
        InfluxSink(settings)
