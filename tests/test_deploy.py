"""The systemd unit and its companions agree with the gateway (no running systemd needed).

A unit file is only read when someone installs it on a box; a typo in a key is a warning in the
journal, not an error, and the hardening silently does less. These tests read the file, and run
systemd's own checker where the machine has it.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from gateway.config import HttpSettings, SpoolSettings, load_settings
from gateway.pipeline import Gateway

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "deploy" / "systemd"
UNIT_FILE = SYSTEMD / "mh-gateway.service"
SYSUSERS_FILE = SYSTEMD / "mh-gateway.sysusers.conf"

Unit = dict[str, dict[str, list[str]]]


# The shipped default; tests/conftest.py moves test gateways to free ports via the environment.
DEFAULT_HTTP_PORT = HttpSettings.model_fields["port"].default


def parse_unit(text: str) -> Unit:
    """section -> key -> every value given (systemd allows a key to repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"{line!r} is outside any section"
        assert "=" in line, f"not a key=value line: {line!r}"
        assert not line.endswith("\\"), "continuation lines make the test's parser lie"
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


UNIT = parse_unit(UNIT_FILE.read_text(encoding="utf-8"))
SERVICE = UNIT["Service"]


def one(key: str) -> str:
    (value,) = SERVICE[key]
    return value


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60}
    for suffix, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def test_runs_the_installed_console_script_with_the_etc_config() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert "gateway" in scripts
    assert one("ExecStart") == (
        "/opt/mh-gateway/venv/bin/gateway run --config /etc/mh-gateway/gateway.toml"
    )
    assert one("Type") in ("exec", "notify")
    assert one("User") == one("Group") == "mh-gateway"
    assert "PYTHONUNBUFFERED=1" in SERVICE["Environment"]


def test_directories_match_the_configuration_defaults() -> None:
    assert one("StateDirectory") == "mh-gateway"
    assert one("ConfigurationDirectory") == "mh-gateway"
    state_dir = Path("/var/lib") / one("StateDirectory")
    # The spool default and the example config both point at what systemd creates and
    # makes writable under ProtectSystem=strict.
    assert SpoolSettings().dir == state_dir
    assert load_settings(ROOT / "gateway.example.toml").spool.dir == state_dir
    assert one("WorkingDirectory") == str(state_dir)


def test_restarts_on_failure_and_never_gives_up() -> None:
    assert one("Restart") == "on-failure"
    assert seconds(one("RestartSec")) >= 1
    assert UNIT["Unit"]["StartLimitIntervalSec"] == ["0"]
    assert UNIT["Install"]["WantedBy"] == ["multi-user.target"]


def test_stop_timeout_leaves_room_for_the_drain() -> None:
    drain = inspect.signature(Gateway.run).parameters.get("drain_timeout_s")
    if drain is None or not isinstance(drain.default, int | float):
        pytest.fail("Gateway.run has no drain_timeout_s default: point this test at the bound")
    assert one("KillSignal") == "SIGTERM"
    # The drain, then closing the spool and the stores, then disconnecting from the broker.
    assert seconds(one("TimeoutStopSec")) >= 3 * drain.default


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallArchitectures", "native"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
    ],
)
def test_hardening(key: str, value: str) -> None:
    assert one(key) == value


def test_system_calls_and_resources_are_limited() -> None:
    assert SERVICE["SystemCallFilter"][0] == "@system-service"
    assert re.fullmatch(r"[1-9]\d*[MG]", one("MemoryMax"))
    assert "ProcSubset" not in SERVICE, "the /metrics process collector needs /proc/stat"


def test_the_default_http_listener_needs_no_privilege() -> None:
    # CapabilityBoundingSet= is empty, so the gateway cannot bind ports below 1024.
    assert DEFAULT_HTTP_PORT >= 1024


def _verify_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a binary that exists here: `verify` checks it."""
    text = UNIT_FILE.read_text(encoding="utf-8")
    true = shutil.which("true")
    assert true is not None
    copy = tmp_path / UNIT_FILE.name
    copy.write_text(text.replace("/opt/mh-gateway/venv/bin/gateway", true), encoding="utf-8")
    return copy


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(_verify_copy(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    # Unknown keys are only warnings (exit 0): any output at all is a finding.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        pytest.skip("systemd-sysusers is not installed on this machine")
    (tmp_path / "etc").mkdir()
    subprocess.run(
        [sysusers, f"--root={tmp_path}", str(SYSUSERS_FILE)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    users = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc" / "passwd").read_text(encoding="utf-8").splitlines()
    }
    assert users["mh-gateway"][5:] == ["/var/lib/mh-gateway", "/usr/sbin/nologin"]


def test_dockerfile_health_check_uses_the_endpoint() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    port = str(DEFAULT_HTTP_PORT)
    assert f"EXPOSE {port}" in dockerfile
    healthcheck = dockerfile.split("\nHEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert "http://127.0.0.1:" in healthcheck
    assert f"'GATEWAY_HTTP__PORT', '{port}'" in healthcheck
    assert "/healthz" in healthcheck
    docker_config = load_settings(ROOT / "deploy" / "gateway.docker.toml")
    assert docker_config.http.enabled
