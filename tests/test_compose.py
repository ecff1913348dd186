"""docker-compose.yml and its files agree with the repository (no Docker engine needed).

Compose only finds out at `docker compose up` that a mounted file moved, a volume is misspelt or
a GATEWAY_* variable names a setting that does not exist (the gateway ignores variables that
name no section, so the last one would not even fail then). These tests read the files instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter

from dashboards.alerts import RULES
from dashboards.panels import FOLDER, FOLDER_UID
from gateway.config import GatewaySettings, load_settings
from tests.fakegrafana import FakeGrafana

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKER_CONFIG = ROOT / "deploy" / "gateway.docker.toml"
ENV_PREFIX = "GATEWAY_"


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(type, source, target) of every volume entry, short or long syntax."""
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            found.append((entry["type"], str(entry.get("source", "")), entry["target"]))
            continue
        source, target, *_ = entry.split(":")
        # Compose's short syntax: a source that is a path is a bind mount, a name is a volume.
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        found.append((kind, source, target))
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def target_of(service: str, source: str) -> str:
    """Where `service` mounts `source` (a repo path or a volume name)."""
    for _, mount_source, target in mounts(SERVICES[service]):
        if mount_source.removeprefix("./") == source:
            return target
    raise AssertionError(f"{service} does not mount {source}")


def with_defaults(value: str) -> str:
    """Compose's interpolation of `${NAME:-default}` when NAME is not set (no .env)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def gateway_env_vars() -> list[tuple[str, str, str]]:
    return [
        (service, name, value)
        for service, spec in SERVICES.items()
        for name, value in environment(spec).items()
        if name.startswith(ENV_PREFIX)
    ]


def test_services_and_the_demo_profile() -> None:
    assert set(SERVICES) == {
        "mosquitto",
        "influxdb",
        "grafana",
        "alert-rules",
        "gateway",
        "simulators",
    }
    assert SERVICES["simulators"]["profiles"] == ["demo"]
    # Everything else starts with a plain `docker compose up`.
    assert [name for name, spec in SERVICES.items() if "profiles" in spec] == ["simulators"]


def test_every_image_is_pinned_to_a_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    for name, spec in SERVICES.items():
        image = spec.get("image")
        assert image, f"{name}: no image (a built service names its image too)"
        tag = image.rpartition("/")[2].partition(":")[2]
        assert tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} is not pinned"
        if "build" in spec:
            # The image we build is named after the package version it contains.
            assert tag == version, f"{name}: built image {image} should be tagged {version}"


def test_built_services_use_the_repository_dockerfile() -> None:
    for name, spec in SERVICES.items():
        if "build" in spec:
            context = spec["build"] if isinstance(spec["build"], str) else spec["build"]["context"]
            assert (ROOT / context / "Dockerfile").is_file(), name


def test_every_bind_mounted_path_exists() -> None:
    for name, spec in SERVICES.items():
        for kind, source, target in mounts(spec):
            if kind == "bind":
                assert (ROOT / source).exists(), f"{name}: {source} -> {target} does not exist"


def test_every_named_volume_is_declared_and_used() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = {
        source for spec in SERVICES.values() for kind, source, _ in mounts(spec) if kind == "volume"
    }
    assert used - declared == set(), "volumes used but not declared"
    assert declared - used == set(), "volumes declared but never mounted"


@pytest.mark.parametrize(
    ("service", "state_dir"),
    [
        ("mosquitto", "/mosquitto/data"),
        ("influxdb", "/var/lib/influxdb"),
        ("grafana", "/var/lib/grafana"),
        ("gateway", "/var/lib/mh-gateway"),
    ],
)
def test_state_lives_in_named_volumes(service: str, state_dir: str) -> None:
    kinds = {target: kind for kind, _, target in mounts(SERVICES[service])}
    assert kinds.get(state_dir) == "volume", f"{service}: {state_dir} is not a named volume"


def test_compose_sets_gateway_variables() -> None:
    names = {name for _, name, _ in gateway_env_vars()}
    assert {"GATEWAY_MQTT__HOST", "GATEWAY_INFLUX__URL"} <= names


@pytest.mark.parametrize(
    ("service", "name", "value"), gateway_env_vars(), ids=[v[1] for v in gateway_env_vars()]
)
def test_gateway_variables_name_real_settings(
    service: str, name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = name.removeprefix(ENV_PREFIX).lower().split("__")
    *sections, key = path
    model: type[BaseModel] = GatewaySettings
    for section in sections:
        assert section in model.model_fields, f"{service}: {name}: no section {section!r}"
        nested = model.model_fields[section].annotation
        assert isinstance(nested, type), f"{service}: {name}: {section!r} is not a section"
        assert issubclass(nested, BaseModel), f"{service}: {name}: {section!r} is not a section"
        model = nested
    assert key in model.model_fields, f"{service}: {name}: no setting {'.'.join(path)}"
    annotation = model.model_fields[key].annotation
    assert annotation is not None
    # And the gateway really reads it: loaded over the container's file, the value wins.
    for other in [var for var in os.environ if var.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(other)
    monkeypatch.setenv(name, value)
    loaded: Any = load_settings(DOCKER_CONFIG)
    for part in path:
        loaded = getattr(loaded, part)
    assert loaded == TypeAdapter(annotation).validate_python(value)


def test_container_config_validates_and_matches_the_mounts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in environment(SERVICES["gateway"]).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(DOCKER_CONFIG)
    assert settings.mqtt.host == "mosquitto"
    assert settings.influx.url == "http://influxdb:8086"
    assert str(settings.profiles.dir) == target_of("gateway", "device_profiles")
    assert str(settings.spool.dir) == target_of("gateway", "gateway-state")
    config_target = target_of("gateway", "deploy/gateway.docker.toml")
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f'"--config", "{config_target}"]' in dockerfile, "CMD reads another config file"


def test_mosquitto_persists_into_its_volume() -> None:
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    options = dict(
        line.split(maxsplit=1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert options["persistence"] == "true"
    assert options["persistence_location"].rstrip("/") == target_of("mosquitto", "mosquitto-data")
    assert target_of("mosquitto", "deploy/mosquitto/mosquitto.conf") == (
        "/mosquitto/config/mosquitto.conf"
    )


def test_grafana_provisioning_points_at_the_stack() -> None:
    provisioning = ROOT / "dashboards" / "provisioning"
    datasources = yaml.safe_load(
        (provisioning / "datasources" / "influxdb.yaml").read_text(encoding="utf-8")
    )["datasources"]
    (influx,) = datasources
    assert influx["uid"] == "influxdb-telemetry"
    assert influx["url"] == "http://influxdb:8086"
    assert influx["jsonData"]["dbName"] == environment(SERVICES["influxdb"])["INFLUXDB_DB"]
    assert influx["isDefault"] is True
    providers = yaml.safe_load(
        (provisioning / "dashboards" / "provider.yaml").read_text(encoding="utf-8")
    )["providers"]
    assert [p["options"]["path"] for p in providers] == [target_of("grafana", "dashboards")]
    assert target_of("grafana", "dashboards/provisioning") == "/etc/grafana/provisioning"


# ---- the alert rules: pushed by a one-shot service, not file-provisioned -----------------------


def test_alert_rules_are_not_file_provisioned() -> None:
    """Grafana reads rule files before the dashboard provider and would make the folder by
    title with a random uid (grafana/grafana#125079): they stay out of provisioning/."""
    provisioning = ROOT / "dashboards" / "provisioning"
    assert not (provisioning / "alerting").exists()
    for path in provisioning.rglob("*.y*ml"):
        assert "groups" not in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}), path


def test_grafana_reports_its_health() -> None:
    check = SERVICES["grafana"]["healthcheck"]
    assert check["test"][:3] == ["CMD", "curl", "--fail"]
    container_port = SERVICES["grafana"]["ports"][0].rpartition(":")[2].strip('"')
    assert check["test"][-1] == f"http://localhost:{container_port}/api/health"


def test_alert_rules_service_pushes_once_grafana_is_healthy() -> None:
    spec = SERVICES["alert-rules"]
    assert spec["depends_on"] == {"grafana": {"condition": "service_healthy"}}
    assert spec["restart"] == "no", "a one-shot: it exits when the rules are in"
    assert (spec["image"], spec["build"]) == (SERVICES["gateway"]["image"], ".")
    command = spec["command"]
    assert command[:3] == ["gateway", "dashboards", "push"]
    assert "--alerts-only" in command
    assert float(command[command.index("--wait") + 1]) >= 60
    # The in-network Grafana, logged in as the admin the grafana service creates.
    grafana_env = environment(SERVICES["grafana"])
    assert command[command.index("--url") + 1] == "http://grafana:3000"
    assert command[command.index("--user") + 1] == grafana_env["GF_SECURITY_ADMIN_USER"]
    password = environment(spec)["GRAFANA_PASSWORD"]
    assert password == grafana_env["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${"), "the password comes from the environment (.env)"


def test_the_gateway_image_can_run_the_push() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY dashboards ./dashboards" in dockerfile
    (install,) = re.findall(r'pip install [^\n]*"\.\[([a-z,]+)\]"', dockerfile)
    assert "dashboards" in install.split(",")
    allowed = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "!dashboards/" in allowed


def test_alert_rules_command_against_a_starting_grafana() -> None:
    """The service's own command line, with the URL pointed at a fake Grafana (a real one
    cannot run here) whose dashboard provider makes the folder a moment after it answers."""
    spec = SERVICES["alert-rules"]
    command = list(spec["command"])
    password = with_defaults(environment(spec)["GRAFANA_PASSWORD"])
    user = command[command.index("--user") + 1]
    runs = []
    with FakeGrafana(basic=(user, password)) as grafana:
        grafana.provision_folder(FOLDER_UID, FOLDER, after_misses=1)
        command[command.index("--url") + 1] = grafana.url
        for _ in range(2):
            runs.append(
                subprocess.run(
                    [sys.executable, "-m", *command],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    env={**os.environ, "GRAFANA_PASSWORD": password},
                    timeout=120,
                    check=False,
                )
            )
    first, second = runs
    assert first.returncode == 0, first.stderr
    assert f'folder {FOLDER_UID} ("{FOLDER}") does not exist' in first.stderr
    assert {rule["folderUID"] for rule in grafana.state.rules.values()} == {FOLDER_UID}
    assert len(grafana.state.rules) == len(RULES)
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    assert second.stdout.splitlines()[-1].endswith(
        f" 0 created, 0 updated, {len(second.stdout.splitlines()) - 1} unchanged"
    )
