"""Imports point one way (STYLE.md): pure stages do no I/O, simulators never see the gateway."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PURE = [
    "gateway/stages/decode.py",
    "gateway/stages/normalize.py",
    "gateway/stages/field_rules.py",
    "gateway/stages/lineprotocol.py",
    "gateway/model.py",
]
PURE += [
    "gateway/policies/liveness.py",
    "gateway/operations/figures.py",
    "gateway/policies/rate_limit.py",
]
PURE += ["gateway/policies/series_budget.py"]
PURE += [str(p.relative_to(ROOT)) for p in (ROOT / "gateway/profiles").glob("*.py")]
IO_MODULES = {"asyncio", "aiohttp", "mqtt5", "socket", "sqlite3", "gateway.stages.ingest",
              "gateway.pipeline", "gateway.stages.sinks", "gateway.stages.sinks.influx",
              "gateway.operations.endpoint",
              "aiohttp.web", "prometheus_client"}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_stages_do_no_io(module: str) -> None:
    assert imported_modules(ROOT / module) & IO_MODULES == set()


def test_only_ingest_imports_the_mqtt_client() -> None:
    users = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "gateway").rglob("*.py")
        if {"mqtt5", "paho", "paho.mqtt.client", "aiomqtt"} & imported_modules(path)
    }
    assert users == {"gateway/stages/ingest.py"}


def test_http_lives_in_two_modules() -> None:
    """The InfluxDB client and the health endpoint's server; nothing else speaks HTTP. Both
    speak HTTP/1.1 on asyncio streams (aiohttp cost 11 MB of the memory budget): the client
    through the sans-I/O parser h11, the only module that imports it; `gateway status` reads
    the endpoint with aiohttp's client, imported in endpoint.py only."""
    users = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "gateway").rglob("*.py")
        if {"aiohttp", "aiohttp.web", "h11", "http.client", "urllib.request"}
        & imported_modules(path)
        or "HTTP/1.1" in path.read_text(encoding="utf-8")
    }
    assert users == {"gateway/stages/sinks/influx.py", "gateway/operations/endpoint.py"}
    h11_users = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "gateway").rglob("*.py")
        if "h11" in imported_modules(path)
    }
    assert h11_users == {"gateway/stages/sinks/influx.py"}


def test_simulators_never_import_the_gateway() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "simulators").rglob("*.py")
        if any(name == "gateway" or name.startswith("gateway.") for name in imported_modules(path))
    ]
    assert offenders == []
