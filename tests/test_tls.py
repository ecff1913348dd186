"""MQTT over TLS against a real mosquitto: server authentication, mutual TLS, passwords.

The PKI is made at test time (tests/tls.py). What must hold: readings published over TLS reach
InfluxDB; a broker certificate the gateway must not trust (unknown CA, expired, wrong name) or a
refused password is logged as a clear ERROR naming the broker, and the gateway keeps retrying
without a traceback.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import MqttSettings, TlsSettings
from gateway.stages.ingest import MqttConnectError, _tls_context
from tests.harness import GatewayProcess, gateway_config, wait_for_counts
from tests.servers import Influxd
from tests.tls import KeyPair, Pki, make_pki
from tests.tls_servers import MOSQUITTO_PASSWD_MISSING, SecureMosquitto, have_mosquitto_passwd

TOPIC = "city/lighting/di-su/sl-0001/telemetry"
READING = (
    '{"ts": 1795482000000, "lamp": {"state": "ON", "dim": 50, "fault": 0},'
    ' "elec": {"p_w": 75.0, "v": 230.0, "i_a": 0.33, "e_kwh": 1.0}}'
)
# Two failed attempts prove the gateway retries; reconnect_max_s = 1 keeps that quick.
FAILED_ATTEMPTS = 2


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def gateway_running(config: Path, *, wait_subscribed: bool = True) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(config)
    try:
        yield gateway.start(wait_subscribed=wait_subscribed)
    finally:
        gateway.kill()


def tls_config(
    tmp_path: Path,
    server: SecureMosquitto,
    influxd: Influxd,
    database: str,
    *,
    tls: dict[str, str],
    mqtt: dict[str, str] | None = None,
) -> Path:
    """A gateway configuration for `server` with an `[mqtt.tls]` table (TLS on)."""
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in tls.items())
    return gateway_config(
        tmp_path / "gateway.toml",
        server,
        influxd,
        database,
        overrides={"mqtt": dict(mqtt or {}), "http": {"port": 0}},
        extra=f"\n[mqtt.tls]\nenabled = true\n{table}",
    )


def client_files(pair: KeyPair) -> dict[str, str]:
    return {"cert_file": str(pair.cert), "key_file": str(pair.key)}


def assert_retries_with_error(gateway: GatewayProcess, port: int, *reasons: str) -> str:
    """The gateway logs FAILED_ATTEMPTS ERROR lines naming the broker and matching the regular
    expressions `reasons`, and is still running; returns the first such line."""
    prefix = f"ERROR gateway.stages.ingest: MQTT connect to 127.0.0.1:{port} failed ("
    assert gateway.logged_within(prefix, 20.0, occurrences=FAILED_ATTEMPTS), gateway.log()
    line = next(line for line in gateway.log().splitlines() if prefix in line)
    for reason in reasons:
        assert re.search(reason, line), line
    assert "retrying in" in line
    assert gateway.running
    assert "Traceback" not in gateway.log()
    assert "never retrieved" not in gateway.log()  # no stray asyncio noise beside the error
    return line


@pytest.mark.integration
def test_readings_arrive_over_tls(
    tmp_path: Path, pki: Pki, influxd: Influxd, influx_db: str
) -> None:
    with SecureMosquitto(tmp_path / "mosquitto", server=pki.server, ca=pki.ca) as server:
        config = tls_config(tmp_path, server, influxd, influx_db, tls={"ca_file": str(pki.ca)})
        with gateway_running(config) as gateway:
            server.publish(TOPIC, [READING], *server.client_args(ca=pki.ca))
            stored = wait_for_counts(influxd, influx_db, Counter({"streetlight": 1}), 20.0)
            assert gateway.stop() == 0
    assert stored == Counter({"streetlight": 1})
    assert f"MQTT connected to 127.0.0.1:{server.port}" in gateway.log()
    assert "Traceback" not in gateway.log()


@pytest.mark.integration
def test_mutual_tls_needs_the_client_certificate(
    tmp_path: Path, pki: Pki, influxd: Influxd, influx_db: str
) -> None:
    with SecureMosquitto(
        tmp_path / "mosquitto", server=pki.server, ca=pki.ca, require_certificate=True
    ) as server:
        # No certificate, then one from a CA the broker does not know: the broker ends the
        # handshake with an alert, the gateway says so and keeps retrying.
        refused = [({}, "CERTIFICATE_REQUIRED"), (client_files(pki.other_client), "UNKNOWN_CA")]
        for client, alert in refused:
            tls = {"ca_file": str(pki.ca), **client}
            config = tls_config(tmp_path, server, influxd, influx_db, tls=tls)
            with gateway_running(config, wait_subscribed=False) as gateway:
                line = assert_retries_with_error(
                    gateway, server.port, alert, "the broker refused our TLS client certificate"
                )
                assert gateway.stop() == 0
            assert "subscribed to" not in gateway.log(), line
            gateway.log_path.unlink()

        tls = {"ca_file": str(pki.ca), **client_files(pki.client)}
        config = tls_config(tmp_path, server, influxd, influx_db, tls=tls)
        with gateway_running(config) as gateway:
            publisher = server.client_args(ca=pki.ca, client=pki.client)
            server.publish(TOPIC, [READING], *publisher)
            stored = wait_for_counts(influxd, influx_db, Counter({"streetlight": 1}), 20.0)
            assert gateway.stop() == 0
    assert stored == Counter({"streetlight": 1})
    assert "Traceback" not in gateway.log()
    broker_log = server.log_path.read_text()
    assert "peer did not return a certificate" in broker_log
    assert "certificate verify failed" in broker_log  # the intruder's certificate


@pytest.mark.integration
@pytest.mark.parametrize(
    ("case", "reason"),
    [
        # mosquitto sends its CA along when it has one (OpenSSL's automatic chain building).
        ("unknown_ca", "unable to get local issuer certificate|self-signed certificate in cert"),
        ("expired", "certificate has expired"),
        ("wrong_name", "Hostname mismatch"),
    ],
    ids=["unknown_ca", "expired", "wrong_name"],
)
def test_an_untrusted_broker_certificate_is_a_clear_error_and_retried(
    tmp_path: Path, pki: Pki, influxd: Influxd, influx_db: str, *, case: str, reason: str
) -> None:
    server_pair = pki.expired_server if case == "expired" else pki.server
    tls = {"ca_file": str(pki.other_ca if case == "unknown_ca" else pki.ca)}
    if case == "wrong_name":
        tls["server_name"] = "broker.my-hao.example"
    with SecureMosquitto(tmp_path / "mosquitto", server=server_pair, ca=pki.ca) as server:
        config = tls_config(tmp_path, server, influxd, influx_db, tls=tls)
        with gateway_running(config, wait_subscribed=False) as gateway:
            line = assert_retries_with_error(
                gateway, server.port, "TLS certificate verify failed", reason
            )
            assert gateway.stop() == 0
    assert "mqtt.tls.ca_file" in line
    assert "subscribed to" not in gateway.log()


@pytest.mark.integration
def test_a_wrong_broker_password_is_a_clear_error_and_the_right_one_works(
    tmp_path: Path, pki: Pki, influxd: Influxd, influx_db: str
) -> None:
    if not have_mosquitto_passwd():
        pytest.skip(MOSQUITTO_PASSWD_MISSING)
    passwords = {"mh-gateway": "Right-horse-7", "sensor": "sensor-pw"}
    with SecureMosquitto(
        tmp_path / "mosquitto",
        server=pki.server,
        ca=pki.ca,
        passwords=passwords,
        allow_anonymous=False,
    ) as server:
        tls = {"ca_file": str(pki.ca)}
        wrong = {"username": "mh-gateway", "password": "Wrong-horse-8"}
        config = tls_config(tmp_path, server, influxd, influx_db, tls=tls, mqtt=wrong)
        with gateway_running(config, wait_subscribed=False) as gateway:
            line = assert_retries_with_error(gateway, server.port, "broker refused the connection")
            assert gateway.stop() == 0
        assert "NOT_AUTHORIZED" in line or "BAD_USER_NAME_OR_PASSWORD" in line
        assert "check mqtt.username and mqtt.password" in line
        assert "Wrong-horse-8" not in gateway.log()

        password_file = tmp_path / "mqtt-password"
        password_file.write_text("Right-horse-7\n", encoding="utf-8")
        right = {"username": "mh-gateway", "password_file": str(password_file)}
        config = tls_config(tmp_path, server, influxd, influx_db, tls=tls, mqtt=right)
        with gateway_running(config) as gateway:
            publisher = server.client_args(ca=pki.ca, username="sensor", password="sensor-pw")
            server.publish(TOPIC, [READING], *publisher)
            stored = wait_for_counts(influxd, influx_db, Counter({"streetlight": 1}), 20.0)
            assert gateway.stop() == 0
    assert stored == Counter({"streetlight": 1})
    assert "Right-horse-7" not in gateway.log()


def test_the_tls_context_verifies_the_broker_with_tls_1_2_or_later(pki: Pki) -> None:
    settings = MqttSettings(tls=TlsSettings(enabled=True, ca_file=pki.ca, **client_paths(pki)))
    context = _tls_context(settings)
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert _tls_context(MqttSettings()) is None


def client_paths(pki: Pki) -> dict[str, Path]:
    return {"cert_file": pki.client.cert, "key_file": pki.client.key}


def test_a_tls_file_that_cannot_be_loaded_is_named(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "absent-ca.pem"
    with pytest.raises(MqttConnectError, match=f"mqtt.tls.ca_file {missing}: No such file"):
        _tls_context(MqttSettings(tls=TlsSettings(enabled=True, ca_file=missing)))
    mismatched = TlsSettings(enabled=True, cert_file=pki.client.cert, key_file=pki.server.key)
    with pytest.raises(MqttConnectError, match=f"mqtt.tls.cert_file {pki.client.cert} / key_file"):
        _tls_context(MqttSettings(tls=mismatched))
