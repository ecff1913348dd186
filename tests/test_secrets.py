"""Secrets never appear in anything the gateway prints or serves.

A full gateway process with a broker password (from a file) and an InfluxDB password (from the
environment, auth enabled), logging at DEBUG, streams readings, loses the broker and InfluxDB
for a while, is refused by the broker for a wrong password, and is started with broken
configurations. Every byte it wrote to stdout/stderr, and its HTTP endpoints, are then searched
for the secrets, also in the forms they travel in (HTTP Basic's base64).
"""

from __future__ import annotations

import base64
import datetime
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    ROOT,
    GatewayProcess,
    gateway_config,
    load_truth,
    run_simulators,
    truth_counts,
    wait_for_counts,
)
from tests.servers import Influxd, Mosquitto, quote_ident, quote_string
from tests.tls_servers import MOSQUITTO_PASSWD_MISSING, SecureMosquitto, have_mosquitto_passwd

pytestmark = pytest.mark.integration

DATABASE = "telemetry"
MQTT_USER = "mh-gateway"
MQTT_SECRET = "Mq-s3cret-5150"
WRONG_MQTT_SECRET = "Mq-wr0ng-2323"
INFLUX_USER = "mh-writer"
INFLUX_SECRET = "Ix-s3cret-8086"
INFLUX_TOKEN = "Tk-s3cret-4242"


def forms(user: str, secret: str) -> list[str]:
    """The secret as written, and as it travels in an HTTP Basic Authorization header."""
    return [secret, base64.b64encode(f"{user}:{secret}".encode()).decode()]


SECRETS = [
    *forms(MQTT_USER, MQTT_SECRET),
    *forms(MQTT_USER, WRONG_MQTT_SECRET),
    *forms(INFLUX_USER, INFLUX_SECRET),
    INFLUX_TOKEN,
]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[SecureMosquitto]:
    """The gateway must log in; the simulators publish anonymously (allow_anonymous)."""
    if not have_mosquitto_passwd():
        pytest.skip(MOSQUITTO_PASSWD_MISSING)
    with SecureMosquitto(tmp_path / "mosquitto", passwords={MQTT_USER: MQTT_SECRET}) as server:
        yield server


@pytest.fixture
def secured_influxd(tmp_path: Path) -> Iterator[Influxd]:
    with Influxd(tmp_path / "influxd", auth=True) as server:
        server.create_admin("admin", "Admin-pass-1")
        server.create_database(DATABASE)
        user, password = quote_ident(INFLUX_USER), quote_string(INFLUX_SECRET)
        server.query(f"CREATE USER {user} WITH PASSWORD {password}")
        server.query(f"GRANT ALL ON {quote_ident(DATABASE)} TO {user}")
        yield server


def stream(broker: Mosquitto, truth: Path, seed: str, hours_ago: int) -> None:
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=hours_ago)
    run_simulators(
        broker, truth,
        "--lighting", "3", "--water", "3", "--traffic", "2",
        "--messages", "120", "--rate", "0", "--seed", seed,
        "--start", start.strftime("%Y-%m-%dT%H:00:00Z"),
    )  # fmt: skip


def assert_all_stored(influxd: Influxd, truth: list[dict[str, Any]]) -> None:
    expected = truth_counts(truth)
    assert wait_for_counts(influxd, DATABASE, expected, 20.0) == expected


def http_pages(log: str) -> str:
    """Everything the health endpoint serves (it reports the last errors)."""
    port = re.findall(r"health endpoint on http://127\.0\.0\.1:(\d+)/", log)[-1]
    pages = []
    for path in ("/", "/healthz", "/readyz", "/metrics", "/devices/stale"):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own http:// URL
                pages.append(response.read().decode(errors="replace"))
        except urllib.error.HTTPError as error:  # /readyz answers 503 while not ready
            with error:
                pages.append(error.read().decode(errors="replace"))
    return "\n".join(pages)


def gateway_command(config: Path, env: dict[str, str], *args: str) -> str:
    """Run a gateway command that must fail on its configuration; return all it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "error: " in result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def test_no_secret_is_ever_printed_or_served(
    tmp_path: Path,
    broker: SecureMosquitto,
    secured_influxd: Influxd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mqtt_password_file = tmp_path / "mqtt-password"
    mqtt_password_file.write_text(MQTT_SECRET + "\n", encoding="utf-8")
    monkeypatch.setenv("GATEWAY_INFLUX__PASSWORD", INFLUX_SECRET)

    def config(name: str, mqtt: dict[str, str]) -> Path:
        return gateway_config(
            tmp_path / name,
            broker,
            secured_influxd,
            DATABASE,
            overrides={
                "mqtt": {"username": MQTT_USER, **mqtt},
                "influx": {"username": INFLUX_USER},
                "spool": {"write_timeout_s": 1.0},
                "http": {"port": 0},
            },
            extra='\n[log]\nlevel = "DEBUG"\n',
        )

    printed: list[str] = []
    good = config("gateway.toml", {"password_file": str(mqtt_password_file)})
    gateway = GatewayProcess(good)
    try:
        gateway.start()
        stream(broker, tmp_path / "truth-1.jsonl", "31", hours_ago=30)
        truth = load_truth(tmp_path / "truth-1.jsonl")
        assert_all_stored(secured_influxd, truth)

        # InfluxDB goes away: writes fail, batches are spooled, then replayed.
        secured_influxd.stop()
        stream(broker, tmp_path / "truth-2.jsonl", "32", hours_ago=20)
        gateway.wait_for_log("InfluxDB unreachable")
        gateway.wait_for_log("spooling batches to disk")
        printed.append(http_pages(gateway.log()))
        secured_influxd.start()
        truth += load_truth(tmp_path / "truth-2.jsonl")
        assert_all_stored(secured_influxd, truth)

        # The broker goes away: reconnect attempts fail until it is back.
        broker.restart(down_s=1.0)
        gateway.wait_for_log("subscribed to", occurrences=2)
        assert "MQTT connect to" in gateway.log()
        printed.append(http_pages(gateway.log()))
        assert gateway.stop() == 0
    finally:
        gateway.kill()
    assert "Traceback" not in gateway.log()
    printed.append(gateway.log())

    # The broker refuses a wrong password: an ERROR that must not quote it.
    wrong_password_file = tmp_path / "wrong-mqtt-password"
    wrong_password_file.write_text(WRONG_MQTT_SECRET, encoding="utf-8")
    wrong = GatewayProcess(config("wrong.toml", {"password_file": str(wrong_password_file)}))
    try:
        wrong.start(wait_subscribed=False)
        wrong.wait_for_log("broker refused the connection", occurrences=2)
        printed.append(http_pages(wrong.log()))
        assert wrong.stop() == 0
    finally:
        wrong.kill()
    printed.append(wrong.log())

    # Broken configurations with every secret set: errors name the keys, never the values.
    both = {"GATEWAY_MQTT__PASSWORD": MQTT_SECRET}  # and password_file in the file
    printed.append(gateway_command(good, both, "run"))
    printed.append(gateway_command(good, both, "check-config"))
    v2_without_bucket = {
        "GATEWAY_INFLUX__API": "v2",
        "GATEWAY_INFLUX__TOKEN": INFLUX_TOKEN,
        "GATEWAY_MQTT__PORT": "not-a-port",
    }
    printed.append(gateway_command(good, v2_without_bucket, "run"))

    everything = "\n".join(printed)
    # What was searched holds the errors and the endpoints' pages, not just start-up lines.
    for expected in ("InfluxDB unreachable", "MQTT connect to", "DEBUG", "# TYPE"):
        assert expected in everything, expected
    assert "both set" in everything
    assert "needs both 'org' and 'bucket'" in everything
    assert "refused our credentials" not in everything  # the right InfluxDB password worked
    leaked = [secret for secret in SECRETS if secret in everything]
    assert leaked == [], f"secrets in the gateway's output: {leaked}"
