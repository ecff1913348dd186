"""`gateway doctor` against a real mosquitto (with passwords) and a real influxd (with auth).

Each test breaks one thing an operator gets wrong (broker port, broker or InfluxDB password, a
state directory the service cannot write, a missing database) and checks that doctor names
that check, says FAIL with the fix, exits 1, and prints no traceback; an all-good configuration
passes every check. Doctor runs as a process, exactly as an operator types it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.harness import ROOT, TomlValue, gateway_config
from tests.servers import Influxd, free_port, quote_ident, quote_string
from tests.tls_servers import SecureMosquitto, have_mosquitto_passwd

pytestmark = pytest.mark.integration

DATABASE = "telemetry"
INFLUX_USER, INFLUX_PASSWORD = "mh-gateway", "Gw-pass-4711"
MQTT_USER, MQTT_PASSWORD = "gateway", "Mq-pass-2024"


@pytest.fixture(scope="module")
def secured_influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """InfluxDB with auth on, and a user that may write to DATABASE only."""
    with Influxd(tmp_path_factory.mktemp("influxd"), auth=True) as server:
        server.create_admin("admin", "Admin-pass-1")
        server.create_database(DATABASE)
        user = quote_ident(INFLUX_USER)
        server.query(f"CREATE USER {user} WITH PASSWORD {quote_string(INFLUX_PASSWORD)}")
        server.query(f"GRANT WRITE ON {quote_ident(DATABASE)} TO {user}")
        yield server


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMosquitto]:
    """mosquitto that lets only MQTT_USER in (no anonymous clients)."""
    if not have_mosquitto_passwd():
        pytest.fail("mosquitto_passwd not found: install the Debian package mosquitto")
    with SecureMosquitto(
        tmp_path_factory.mktemp("mosquitto"),
        passwords={MQTT_USER: MQTT_PASSWORD},
        allow_anonymous=False,
    ) as broker:
        yield broker


def write_config(
    tmp_path: Path,
    broker: SecureMosquitto,
    influxd: Influxd,
    **changes: Mapping[str, TomlValue],
) -> Path:
    """A configuration that is right in every respect but `changes` (section -> keys)."""
    sections: dict[str, dict[str, TomlValue]] = {
        "mqtt": {"username": MQTT_USER, "password": MQTT_PASSWORD},
        "influx": {"username": INFLUX_USER, "password": INFLUX_PASSWORD},
    }
    for section, values in changes.items():
        sections.setdefault(section, {}).update(values)
    return gateway_config(tmp_path / "gateway.toml", broker, influxd, DATABASE, overrides=sections)


def doctor(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def verdicts(result: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    """check name -> its verdict blocks (`STATUS  check: message` plus indented lines)."""
    found: dict[str, list[str]] = {}
    check = ""
    for line in result.stdout.splitlines():
        if line.startswith(("OK ", "WARN ", "FAIL ")):
            check = line.split(maxsplit=1)[1].split(":", 1)[0]
            found.setdefault(check, []).append(line)
        elif line.startswith("      ") and check:
            found[check][-1] += "\n" + line.strip()
    return found


def assert_fails_only(result: subprocess.CompletedProcess[str], check: str, *words: str) -> str:
    """Exit 1, `check` says FAIL with each of `words` and a fix, and no other check fails."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    found = verdicts(result)
    failing = {name for name, blocks in found.items() if any(b.startswith("FAIL") for b in blocks)}
    assert failing == {check}, output
    (block,) = [b for b in found[check] if b.startswith("FAIL")]
    for word in words:
        assert word in block, block
    assert "fix: " in block, block
    return block


def test_an_all_good_configuration_passes_every_check(
    tmp_path: Path, secured_broker: SecureMosquitto, secured_influxd: Influxd
) -> None:
    result = doctor(write_config(tmp_path, secured_broker, secured_influxd))
    assert result.returncode == 0, result.stdout + result.stderr
    found = verdicts(result)
    expected = {
        "configuration", "profiles", "mqtt broker", "influxdb",
        f"influxdb write {DATABASE}", "spool dir", "free disk",
    }  # fmt: skip
    assert set(found) == expected, result.stdout
    statuses = {block.split()[0] for blocks in found.values() for block in blocks}
    assert statuses == {"OK"}, result.stdout
    assert f"as user {MQTT_USER!r}" in found["mqtt broker"][0]
    assert "all checks passed" in result.stdout


def test_a_wrong_broker_port_is_diagnosed(
    tmp_path: Path, secured_broker: SecureMosquitto, secured_influxd: Influxd
) -> None:
    port = free_port()
    config = write_config(tmp_path, secured_broker, secured_influxd, mqtt={"port": port})
    block = assert_fails_only(doctor(config), "mqtt broker", f"127.0.0.1:{port}", "refused")
    assert "check [mqtt] host and port" in block


def test_a_wrong_broker_password_is_diagnosed(
    tmp_path: Path, secured_broker: SecureMosquitto, secured_influxd: Influxd
) -> None:
    config = write_config(
        tmp_path, secured_broker, secured_influxd, mqtt={"password": "not-the-password"}
    )
    block = assert_fails_only(doctor(config), "mqtt broker", "refused the connection")
    assert "check [mqtt] username and password" in block
    assert "not-the-password" not in block


def test_a_wrong_influxdb_password_is_diagnosed(
    tmp_path: Path, secured_broker: SecureMosquitto, secured_influxd: Influxd
) -> None:
    config = write_config(
        tmp_path, secured_broker, secured_influxd, influx={"password": "Gw-pass-0000"}
    )
    block = assert_fails_only(
        doctor(config), f"influxdb write {DATABASE}", "wrong credentials", "HTTP 401"
    )
    assert "check [influx] username and password" in block
    assert "Gw-pass-0000" not in block


def test_a_database_the_user_may_not_write_to_is_diagnosed(
    tmp_path: Path, secured_broker: SecureMosquitto, secured_influxd: Influxd
) -> None:
    secured_influxd.query('CREATE DATABASE "archive"')  # exists, but no GRANT for the user
    config = write_config(
        tmp_path, secured_broker, secured_influxd, monitoring={"database": "archive"}
    )
    block = assert_fails_only(doctor(config), "influxdb write archive", "HTTP 403")
    assert f'GRANT WRITE ON "archive" TO "{INFLUX_USER}"' in block


def test_a_missing_database_fails_unless_the_gateway_may_create_it(
    tmp_path: Path, secured_broker: SecureMosquitto, secured_influxd: Influxd
) -> None:
    config = write_config(
        tmp_path, secured_broker, secured_influxd, monitoring={"database": "no_such_db"}
    )
    result = doctor(config)
    assert result.returncode == 0, result.stdout  # create_database = true: a warning
    (block,) = verdicts(result)["influxdb write no_such_db"]
    assert block.startswith("WARN"), block
    assert "does not exist" in block

    config = write_config(
        tmp_path,
        secured_broker,
        secured_influxd,
        monitoring={"database": "no_such_db"},
        influx={"create_database": False},
    )
    block = assert_fails_only(doctor(config), "influxdb write no_such_db", "does not exist")
    assert 'CREATE DATABASE "no_such_db"' in block


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[Path]:
    """A directory nobody can create files in, root included.

    Permission bits do not stop root (access(2) and open(2) ignore them for uid 0), so as root
    the directory is made immutable (chattr +i), which the kernel enforces for everyone."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"as root only an immutable directory is read-only; chattr +i: {made.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_spool_directory_is_diagnosed(
    tmp_path: Path, secured_broker: SecureMosquitto, secured_influxd: Influxd
) -> None:
    with read_only_directory(tmp_path / "state") as state:
        with pytest.raises(PermissionError):  # the premise: nobody, root included, can write
            (state / "probe").touch()
        config = write_config(tmp_path, secured_broker, secured_influxd, spool={"dir": str(state)})
        block = assert_fails_only(doctor(config), "spool dir", str(state), "cannot create files")
        # `gateway run` refuses to start with the same diagnosis, not an SQLite traceback.
        run = subprocess.run(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
    assert "Operation not permitted" in block or "Permission denied" in block, block
    assert "lsattr" in block
    assert run.returncode == 2
    assert run.stderr.startswith(f"error: [spool] dir {state}: cannot create files"), run.stderr
    assert "Traceback" not in run.stderr


def test_an_invalid_configuration_stops_the_checks_with_the_key_named(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[mqtt]\nqos = 2\n", encoding="utf-8")
    result = doctor(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert list(verdicts(result)) == ["configuration"]
    assert "mqtt.qos" in result.stdout
