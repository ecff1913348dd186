"""`gateway dashboards push` against a fake Grafana (tests/fakegrafana.py): Grafana cannot be
installed here, so this checks the requests grafana-client sends and what push does with the
answers, not a real Grafana's behaviour."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import yaml

from dashboards import build, push
from dashboards.alerts import RULES
from dashboards.influxql import DATASOURCE_UID
from dashboards.panels import FOLDER, FOLDER_UID
from tests.fakegrafana import FakeGrafana
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PROVISIONING = ROOT / "dashboards" / "provisioning"
TOKEN = "glsa_test-token-3f9c"
DASHBOARD_UIDS = {dashboard.uid for dashboard in build.dashboards()}
RULE_UIDS = {rule.uid for rule in RULES}


def push_all(grafana: FakeGrafana, influx: push.InfluxTarget | None = None) -> list[push.Change]:
    api = push.connect(grafana.url, push.Credentials(token=TOKEN))
    return list(push.push(api, grafana.url, influx or push.InfluxTarget()))


def outcomes(changes: list[push.Change]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for change in changes:
        found.setdefault(change.outcome, set()).add(change.kind)
    return found


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "dashboards", "push", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_first_push_creates_the_datasource_folder_dashboards_and_rules() -> None:
    with FakeGrafana(token=TOKEN) as grafana:
        changes = push_all(grafana)
    state = grafana.state
    assert outcomes(changes) == {
        "created": {"data source", "folder", "dashboard", "alert rule"},
        "unchanged": {"rule group"},  # created with Grafana's default 1 min, which is ours
    }
    source = state.datasources[DATASOURCE_UID]
    assert source["type"] == "influxdb"
    assert source["jsonData"] == {"version": "InfluxQL", "httpMode": "GET", "dbName": "telemetry"}
    assert state.folders[FOLDER_UID]["title"] == FOLDER
    assert set(state.dashboards) == DASHBOARD_UIDS
    assert {d["meta"]["folderUid"] for d in state.dashboards.values()} == {FOLDER_UID}
    assert set(state.rules) == RULE_UIDS
    assert {rule["folderUID"] for rule in state.rules.values()} == {FOLDER_UID}
    assert set(state.groups.values()) == {60}
    assert {request.authorization for request in grafana.requests} == {f"Bearer {TOKEN}"}


def test_second_push_changes_nothing_and_duplicates_nothing() -> None:
    with FakeGrafana(token=TOKEN) as grafana:
        push_all(grafana)
        first_writes = len(grafana.writes())
        again = push_all(grafana)
    assert {change.outcome for change in again} == {"unchanged"}
    assert len(grafana.writes()) == first_writes, "the second run wrote something"
    assert len(grafana.state.dashboards) == len(DASHBOARD_UIDS)
    assert len(grafana.state.datasources) == 1
    assert len(grafana.state.rules) == len(RULE_UIDS)
    assert all(d["dashboard"]["version"] == 1 for d in grafana.state.dashboards.values())


def test_push_overwrites_what_was_changed_and_keeps_the_operators_settings() -> None:
    with FakeGrafana(token=TOKEN) as grafana:
        push_all(grafana)
        state = grafana.state
        state.dashboards["mh-water"]["dashboard"]["title"] = "edited in the UI"
        state.rules["mh-water-ph"]["for"] = "1h"
        state.groups[(FOLDER_UID, "Gateway")] = 300
        # What an operator sets for InfluxDB 2.x (docs/dashboards.md): a token header.
        state.datasources[DATASOURCE_UID]["jsonData"]["httpHeaderName1"] = "Authorization"
        changes = push_all(grafana, push.InfluxTarget(url="http://influx.lan:8086"))
    updated = {(c.kind, c.name) for c in changes if c.outcome == "updated"}
    assert {kind for kind, _ in updated} == {"dashboard", "alert rule", "rule group", "data source"}
    assert ("rule group", "Gateway") in updated
    assert state.dashboards["mh-water"]["dashboard"]["title"] == "Cấp nước"
    assert state.dashboards["mh-water"]["dashboard"]["version"] == 2
    assert state.rules["mh-water-ph"]["for"] == "10m"
    assert state.groups[(FOLDER_UID, "Gateway")] == 60
    source = state.datasources[DATASOURCE_UID]
    assert source["url"] == "http://influx.lan:8086"
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"


def test_push_keeps_an_existing_influx_url_unless_told_otherwise() -> None:
    with FakeGrafana(token=TOKEN) as grafana:
        push_all(grafana, push.InfluxTarget(url="http://10.0.0.5:8086", database="mh"))
        changes = push_all(grafana)
    source = grafana.state.datasources[DATASOURCE_UID]
    assert (source["url"], source["jsonData"]["dbName"]) == ("http://10.0.0.5:8086", "mh")
    assert {change.outcome for change in changes} == {"unchanged"}


def test_grafana_under_a_sub_path() -> None:
    with FakeGrafana(token=TOKEN, prefix="/grafana") as grafana:
        push_all(grafana)
    assert len(grafana.state.dashboards) == len(DASHBOARD_UIDS)


def test_the_pushed_datasource_is_the_provisioned_one() -> None:
    (provisioned,) = yaml.safe_load(
        (PROVISIONING / "datasources" / "influxdb.yaml").read_text(encoding="utf-8")
    )["datasources"]
    pushed = push.desired_datasource(None, push.InfluxTarget())
    for key in ("uid", "name", "type", "access", "url", "database", "jsonData"):
        assert pushed[key] == provisioned[key], key
    provider = yaml.safe_load(
        (PROVISIONING / "dashboards" / "provider.yaml").read_text(encoding="utf-8")
    )["providers"][0]
    assert (provider["folder"], provider["folderUid"]) == (FOLDER, FOLDER_UID)


# ---- the command line ----------------------------------------------------------------------


def test_cli_pushes_with_a_token_file_and_never_prints_the_token(tmp_path: Path) -> None:
    token_file = tmp_path / "grafana.token"
    token_file.write_text(f"{TOKEN}\n", encoding="utf-8")
    with FakeGrafana(token=TOKEN) as grafana:
        first = cli("--url", grafana.url, "--token-file", str(token_file))
        second = cli("--url", grafana.url, "--token-file", str(token_file))
    assert first.returncode == 0, first.stderr
    assert "created   dashboard   Cấp nước (mh-water)" in first.stdout
    assert f"Grafana {grafana.url}: 17 created, 0 updated, 3 unchanged" in first.stdout
    assert f"Grafana {grafana.url}: 0 created, 0 updated, 20 unchanged" in second.stdout
    assert TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr


def test_cli_basic_auth_from_the_environment() -> None:
    with FakeGrafana(basic=("admin", "s3cret")) as grafana:
        result = cli("--url", grafana.url, "--user", "admin", env={"GRAFANA_PASSWORD": "s3cret"})
    assert result.returncode == 0, result.stderr
    expected = "Basic " + base64.b64encode(b"admin:s3cret").decode()
    assert {request.authorization for request in grafana.requests} == {expected}
    assert "s3cret" not in result.stdout + result.stderr


def test_cli_wrong_token_is_one_clear_line() -> None:
    with FakeGrafana(token=TOKEN) as grafana:
        result = cli("--url", grafana.url, env={"GRAFANA_TOKEN": "wrong-token-77"})
    assert result.returncode == 2
    assert "refused the credentials (HTTP 401)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-token-77" not in result.stdout + result.stderr
    assert not grafana.writes()


def test_cli_unreachable_grafana_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("--url", url, "--token", "t", "--timeout", "5")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot reach Grafana at {url}:"), result.stderr
    assert "Traceback" not in result.stderr


def test_cli_without_credentials_says_how_to_give_them() -> None:
    env = {"GRAFANA_TOKEN": "", "GRAFANA_PASSWORD": ""}
    result = cli("--url", "http://127.0.0.1:3000", env=env)
    assert result.returncode == 2
    assert "no Grafana credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_alerts_only_adds_the_rules_to_the_folder_file_provisioning_made() -> None:
    """docker-compose.yml provisions the data source and dashboards from files (the dashboard
    provider creates the folder `mh-town`); the rules go in after that, by folder uid."""
    with FakeGrafana(token=TOKEN) as grafana:
        too_early = cli("--url", grafana.url, "--alerts-only", env={"GRAFANA_TOKEN": TOKEN})
        early_writes = len(grafana.writes())
        # What Grafana's dashboard provider does at start-up with provider.yaml's folderUid.
        grafana.state.folders[FOLDER_UID] = {"id": 1, "uid": FOLDER_UID, "title": FOLDER}
        result = cli("--url", grafana.url, "--alerts-only", env={"GRAFANA_TOKEN": TOKEN})
    assert too_early.returncode == 2
    assert too_early.stderr.startswith(f'error: folder {FOLDER_UID} ("{FOLDER}") does not exist')
    assert "provider.yaml" in too_early.stderr
    assert early_writes == 0, "nothing is written before the folder exists"
    assert result.returncode == 0, result.stderr
    state = grafana.state
    assert set(state.rules) == RULE_UIDS
    assert {rule["folderUID"] for rule in state.rules.values()} == {FOLDER_UID}
    assert not state.datasources, "a file-provisioned data source must not be written"
    assert not state.dashboards, "file-provisioned dashboards must not be written"
    assert {line.split()[1] for line in result.stdout.splitlines()[:-1]} == {"alert", "rule"}


def test_alerts_only_twice_changes_nothing() -> None:
    """The compose service runs on every `docker compose up`."""
    with FakeGrafana(token=TOKEN) as grafana:
        grafana.state.folders[FOLDER_UID] = {"id": 1, "uid": FOLDER_UID, "title": FOLDER}
        first = cli("--url", grafana.url, "--alerts-only", env={"GRAFANA_TOKEN": TOKEN})
        first_writes = len(grafana.writes())
        second = cli("--url", grafana.url, "--alerts-only", env={"GRAFANA_TOKEN": TOKEN})
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert first_writes >= len(RULE_UIDS)
    assert len(grafana.writes()) == first_writes, "the second run wrote something"
    objects = len(second.stdout.splitlines()) - 1
    assert objects > len(RULE_UIDS), "rules and their groups"
    assert {line.split()[0] for line in second.stdout.splitlines()[:-1]} == {"unchanged"}
    assert second.stdout.splitlines()[-1].endswith(f": 0 created, 0 updated, {objects} unchanged")


# ---- waiting for a Grafana that is starting (docker-compose.yml's alert-rules service) -------


def test_wait_rides_out_a_starting_grafana_then_pushes_the_rules() -> None:
    """Nothing listening, then a proxy's 503s, then Grafana without the folder, then the
    dashboard provider's folder: each reported once, then the rules go in."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    reported: list[str] = []
    started: list[FakeGrafana] = []
    with ExitStack() as stack:

        def report(line: str) -> None:
            reported.append(line)
            if not started:  # Grafana's HTTP server starts listening
                grafana = stack.enter_context(FakeGrafana(token=TOKEN, port=port))
                grafana.unavailable_answers = 2
                grafana.provision_folder(FOLDER_UID, FOLDER, after_misses=3)
                started.append(grafana)

        api = push.connect(url, push.Credentials(token=TOKEN), timeout_s=5)
        waited = push.push(
            api, url, push.InfluxTarget(), alerts_only=True, wait_s=60, report=report, poll_s=0.01
        )
        changes = list(waited)
    (grafana,) = started
    expected = [
        f"cannot reach Grafana at {url}: ",
        f"Grafana at {url} is not ready (HTTP 503)",
        f'folder {FOLDER_UID} ("{FOLDER}") does not exist in Grafana at {url}: the dashboard '
        "provider of file provisioning makes it",
    ]
    assert len(reported) == len(expected), reported
    for line, start in zip(reported, expected, strict=True):
        assert line.startswith(f"waiting up to 60 s: {start}"), line
    lookups = [r for r in grafana.requests if r.path == f"/api/folders/{FOLDER_UID}"]
    assert len(lookups) == 2 + 3 + 1, "one lookup per poll, none after the folder appeared"
    assert "created" in {change.outcome for change in changes}
    assert set(grafana.state.rules) == RULE_UIDS
    assert not grafana.state.dashboards


def test_full_push_waits_for_grafana_but_not_for_the_folder() -> None:
    with FakeGrafana(token=TOKEN) as grafana:
        grafana.unavailable_answers = 3
        api = push.connect(grafana.url, push.Credentials(token=TOKEN))
        changes = list(push.push(api, grafana.url, push.InfluxTarget(), wait_s=60, poll_s=0.01))
    assert ("folder", FOLDER, "created") in {(c.kind, c.name, c.outcome) for c in changes}
    assert set(grafana.state.dashboards) == DASHBOARD_UIDS


def test_wait_gives_up_with_one_clear_line_and_exit_code_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("--url", url, "--token", "t", "--alerts-only", "--wait", "1")
    assert result.returncode == 2
    waiting, error = result.stderr.splitlines()
    assert waiting.startswith(f"waiting up to 1 s: cannot reach Grafana at {url}:")
    assert error.startswith(f"error: cannot reach Grafana at {url}:")
    assert error.endswith("(gave up after waiting 1 s)")
    assert result.stdout == ""


def test_wait_does_not_wait_for_refused_credentials() -> None:
    """Waiting cannot fix a wrong password: one request, then the 401 line."""
    with FakeGrafana(token=TOKEN) as grafana:
        result = cli(
            "--url",
            grafana.url,
            "--alerts-only",
            "--wait",
            "300",
            env={"GRAFANA_TOKEN": "wrong-token-77"},
        )
    assert result.returncode == 2
    assert "refused the credentials (HTTP 401)" in result.stderr
    assert len(grafana.requests) == 1
    assert "waiting" not in result.stderr
