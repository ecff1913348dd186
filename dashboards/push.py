"""`gateway dashboards push`: install the dashboards in a running Grafana through its HTTP API.

In order: the InfluxDB data source (uid `influxdb-telemetry`, InfluxQL), the folder, the six
dashboards, the eight alert rules and their groups' evaluation interval. Every object has a
fixed uid and is read before it is written: an object that already matches what the generator
builds is left alone ("unchanged"), one that differs is overwritten ("updated"), a missing one
is created. A second run therefore changes nothing and never duplicates anything.

This is the alternative to file provisioning (dashboards/provisioning/) for a Grafana whose
files we do not manage. Grafana refuses API writes to objects it provisioned from files, so the
two ways should not be mixed on one Grafana. The exception is `--alerts-only`: the alert rules
cannot be file-provisioned into a folder with a fixed uid (docs/dashboards.md, "Folder and
alert rules"), so docker-compose.yml's one-shot `alert-rules` service pushes them into the
folder the dashboard provider made, waiting (`--wait`) until Grafana answers and that folder
exists.

The HTTP client is grafana-client (the maintained successor of grafana-api). Its quirks, handled
here:
- `GrafanaApi.from_url` glues the URL's path and "api" together without a slash (a Grafana
  under /grafana would be asked for /grafanaapi/...), so `connect` builds the client itself.
- A refused connection surfaces as niquests' `ConnectionError`: grafana-client wraps only
  timeouts and `HTTPError`.
- Path segments are not quoted; the rule group names are Vietnamese, so they are quoted here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from dashboards import alerts, build
from dashboards.influxql import DATASOURCE_UID
from dashboards.panels import FOLDER, FOLDER_UID
from gateway.errors import GatewayError

Outcome = Literal["created", "updated", "unchanged"]

# The data source of dashboards/provisioning/datasources/influxdb.yaml (a test compares them).
DATASOURCE_NAME = "InfluxDB telemetry"
DEFAULT_INFLUX_URL = "http://influxdb:8086"
DEFAULT_DATABASE = "telemetry"
DATASOURCE_JSON_DATA = {"version": "InfluxQL", "httpMode": "GET"}
# Settings an operator may have given the data source in Grafana (InfluxDB credentials, the
# default flag): a PUT replaces the whole data source, so they are sent back as they were.
# Secrets (secureJsonData) are write-only and Grafana keeps them when a PUT omits them.
_KEPT_DATASOURCE_KEYS = ("isDefault", "basicAuth", "basicAuthUser", "user", "withCredentials")
# Grafana adds these to a stored dashboard; they are not part of what the generator builds.
_DASHBOARD_SERVER_KEYS = ("id", "version")
PUSH_MESSAGE = "gateway dashboards push"
DEFAULT_TIMEOUT_S = 10.0
# How often `--wait` asks again: Grafana's dashboard provider makes the folder within seconds of
# its HTTP server starting, and one GET every 2 s is nothing for Grafana.
DEFAULT_POLL_S = 2.0


class GrafanaPushError(GatewayError):
    """Grafana could not be reached or refused a change; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "data source", "folder", "dashboard", "alert rule", "rule group"
    name: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Credentials:
    """A service-account token (Bearer), or a user and password (basic auth). Never printed."""

    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def auth(self) -> str | tuple[str, str]:
        """What grafana-client takes: a string is a token, a pair is basic auth."""
        if self.token is not None:
            return self.token
        if self.user is None or self.password is None:
            raise GrafanaPushError("no Grafana credentials")
        return (self.user, self.password)


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    """Where the data source points. None keeps what Grafana has (or the default on create)."""

    url: str | None = None
    database: str | None = None


def read_secret(path: Path, what: str) -> str:
    """A token or password from a file (first line, surrounding whitespace removed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GrafanaPushError(f"{path}: cannot read the {what} file ({exc.strerror})") from None
    lines = text.strip().splitlines()
    if not lines:
        raise GrafanaPushError(f"{path}: the {what} file is empty")
    return lines[0].strip()


def credentials(
    token: str | None,
    token_file: Path | None,
    user: str | None,
    password: str | None,
    password_file: Path | None,
) -> Credentials:
    """One way to log in, from the CLI's options and environment variables."""
    if token_file is not None:
        token = read_secret(token_file, "token")
    if password_file is not None:
        password = read_secret(password_file, "password")
    if token and user:
        raise GrafanaPushError("give either a token or --user with a password, not both")
    if token:
        return Credentials(token=token)
    if user and password:
        return Credentials(user=user, password=password)
    if user:
        raise GrafanaPushError(f"--user {user} needs --password-file or GRAFANA_PASSWORD")
    raise GrafanaPushError(
        "no Grafana credentials: give --token-file or GRAFANA_TOKEN (a service-account token), "
        "or --user with --password-file or GRAFANA_PASSWORD"
    )


def display_url(url: str) -> str:
    """The URL without any user:password@ part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def connect(url: str, login: Credentials, timeout_s: float = DEFAULT_TIMEOUT_S) -> GrafanaApi:
    """A grafana-client session for Grafana's root URL, e.g. https://grafana.example.vn/grafana."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise GrafanaPushError(f"--url {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GrafanaPushError(f"--url {url!r}: expected http(s)://HOST[:PORT][/PATH]")
    prefix = parts.path.strip("/")
    return GrafanaApi(
        login.auth(),
        host=f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname,
        port=port,
        url_path_prefix=f"{prefix}/" if prefix else "",
        protocol=parts.scheme,
        timeout=timeout_s,
    )


def push(
    api: GrafanaApi,
    url: str,
    influx: InfluxTarget,
    *,
    alerts_only: bool = False,
    wait_s: float = 0.0,
    report: Callable[[str], None] = lambda _: None,
    poll_s: float = DEFAULT_POLL_S,
) -> Iterator[Change]:
    """Create or update everything, one object at a time; yields what happened to each.

    `alerts_only`: only the alert rules, into the folder `mh-town` that file provisioning of
    the dashboards created (Grafana's alert rule files can name a folder only by title, and on
    a fresh Grafana they are read before the dashboards: docs/dashboards.md). The folder must
    exist: push says so rather than let Grafana refuse the first rule.

    `wait_s`: first wait up to that long for Grafana to answer (and, with `alerts_only`, for
    the folder), telling `report` what it waits for each time that changes."""
    where = display_url(url)
    if alerts_only or wait_s > 0:
        wait_until_ready(
            api, where, folder_needed=alerts_only, wait_s=wait_s, report=report, poll_s=poll_s
        )
    if alerts_only:
        yield from _push_alert_rules(api, where)
        return
    with _explained(where, f"data source {DATASOURCE_UID}"):
        yield _push_datasource(api, influx)
    with _explained(where, f"folder {FOLDER_UID}"):
        yield _push_folder(api)
    for dashboard in build.dashboards():
        desired = build.plain(dashboard)
        with _explained(where, f"dashboard {desired['uid']}"):
            yield _push_dashboard(api, desired)
    yield from _push_alert_rules(api, where)


def wait_until_ready(
    api: GrafanaApi,
    where: str,
    *,
    folder_needed: bool,
    wait_s: float,
    report: Callable[[str], None],
    poll_s: float = DEFAULT_POLL_S,
) -> None:
    """Return once Grafana answers, and with `folder_needed` once folder `mh-town` exists.

    What cannot get better by waiting (refused credentials, a missing permission) fails at
    once; the rest (no connection, HTTP 5xx, a timeout, the folder not made yet) is asked
    again every `poll_s` until `wait_s` has passed, then fails saying what it last saw."""
    deadline = time.monotonic() + wait_s
    reported = None
    while (waiting_for := _not_ready(api, where, folder_needed=folder_needed)) is not None:
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            gave_up = f" (gave up after waiting {wait_s:g} s)" if wait_s > 0 else ""
            raise GrafanaPushError(waiting_for + gave_up)
        if waiting_for != reported:
            report(f"waiting up to {wait_s:g} s: {waiting_for}")
            reported = waiting_for
        time.sleep(min(poll_s, left_s))


def _not_ready(api: GrafanaApi, where: str, *, folder_needed: bool) -> str | None:
    """What Grafana is not ready for yet, or None."""
    with _explained(where, f"folder {FOLDER_UID}"):
        try:
            folder = _get_or_none(api.folder.get_folder, FOLDER_UID)
        except (GrafanaException, niquests.exceptions.RequestException) as exc:
            if not _worth_waiting(exc):
                raise
            return _not_answering(where, exc)
    if folder is None and folder_needed:
        return (
            f'folder {FOLDER_UID} ("{FOLDER}") does not exist in Grafana at {where}: the '
            "dashboard provider of file provisioning makes it (dashboards/provisioning/"
            f"dashboards/provider.yaml, folderUid {FOLDER_UID}); for a Grafana without those "
            "files, push without --alerts-only"
        )
    return None


def _worth_waiting(exc: GrafanaException | niquests.exceptions.RequestException) -> bool:
    """No connection, a timeout (grafana-client's status 0) or HTTP 5xx: Grafana starting."""
    if isinstance(exc, niquests.exceptions.RequestException | GrafanaServerError):
        return True
    status: int = exc.status_code
    return status == 0


def _not_answering(where: str, exc: GrafanaException | niquests.exceptions.RequestException) -> str:
    if isinstance(exc, GrafanaServerError):  # e.g. a proxy in front of a Grafana still starting
        return f"Grafana at {where} is not ready (HTTP {exc.status_code})"
    if isinstance(exc, GrafanaTimeoutError):
        return f"Grafana at {where} did not answer in time"
    reason = exc.message if isinstance(exc, GrafanaException) else _reason(exc)
    return f"cannot reach Grafana at {where}: {reason}"


def _push_alert_rules(api: GrafanaApi, where: str) -> Iterator[Change]:
    for group in alerts.api_rule_groups(build.plain, FOLDER_UID):
        for rule in group["rules"]:
            with _explained(where, f"alert rule {rule['uid']}"):
                yield _push_alert_rule(api, rule)
        with _explained(where, f"rule group {group['title']}"):
            yield _push_rule_group(api, group)


# ---- one function per kind of object ----------------------------------------------------------


def _push_datasource(api: GrafanaApi, influx: InfluxTarget) -> Change:
    existing = _get_or_none(api.datasource.get_datasource_by_uid, DATASOURCE_UID)
    desired = desired_datasource(existing, influx)
    name = f"{DATASOURCE_NAME} ({desired['url']}, {desired['database']})"
    if existing is None:
        api.datasource.create_datasource(desired)
        return Change("data source", name, "created")
    if contains(existing, desired):
        return Change("data source", name, "unchanged")
    api.datasource.update_datasource_by_uid(DATASOURCE_UID, desired)
    return Change("data source", name, "updated")


def desired_datasource(existing: Mapping[str, Any] | None, influx: InfluxTarget) -> dict[str, Any]:
    """The data source to write: ours, over whatever the operator set that we do not manage."""
    existing = existing or {}
    json_data: dict[str, Any] = dict(existing.get("jsonData") or {})
    url = influx.url or existing.get("url") or DEFAULT_INFLUX_URL
    database = influx.database or json_data.get("dbName") or DEFAULT_DATABASE
    kept = {key: existing[key] for key in _KEPT_DATASOURCE_KEYS if key in existing}
    return {
        **kept,
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "influxdb",
        "access": "proxy",
        "url": url,
        # Grafana 10+ reads jsonData.dbName; `database` is the older spelling (as in the YAML).
        "database": database,
        "jsonData": {**json_data, **DATASOURCE_JSON_DATA, "dbName": database},
    }


def _push_folder(api: GrafanaApi) -> Change:
    existing = _get_or_none(api.folder.get_folder, FOLDER_UID)
    if existing is None:
        api.folder.create_folder(FOLDER, uid=FOLDER_UID)
        return Change("folder", FOLDER, "created")
    if existing.get("title") == FOLDER:
        return Change("folder", FOLDER, "unchanged")
    api.folder.update_folder(FOLDER_UID, title=FOLDER, overwrite=True)
    return Change("folder", FOLDER, "updated")


def _push_dashboard(api: GrafanaApi, desired: dict[str, Any]) -> Change:
    uid = desired["uid"]
    existing = _get_or_none(api.dashboard.get_dashboard, uid)
    name = f"{desired['title']} ({uid})"
    if existing is not None and _same_dashboard(existing, desired):
        return Change("dashboard", name, "unchanged")
    if existing is not None and existing.get("meta", {}).get("provisioned"):
        raise GrafanaPushError(
            f"dashboard {uid} is provisioned from files in this Grafana and cannot be "
            "overwritten through the API: update those files (`gateway dashboards build`) "
            "instead of pushing"
        )
    api.dashboard.update_dashboard(
        {"dashboard": desired, "folderUid": FOLDER_UID, "overwrite": True, "message": PUSH_MESSAGE}
    )
    return Change("dashboard", name, "created" if existing is None else "updated")


def _same_dashboard(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    stored = {
        key: value
        for key, value in existing.get("dashboard", {}).items()
        if key not in _DASHBOARD_SERVER_KEYS
    }
    return stored == desired and existing.get("meta", {}).get("folderUid") == FOLDER_UID


def _push_alert_rule(api: GrafanaApi, desired: dict[str, Any]) -> Change:
    # One rule at a time rather than one PUT per group: before Grafana 11.5.2 a group PUT with
    # a rule uid Grafana does not know yet fails with HTTP 500 (grafana/grafana#98283).
    uid = desired["uid"]
    existing = _get_or_none(api.alertingprovisioning.get_alertrule, uid)
    name = f"{desired['title']} ({uid})"
    if existing is None:
        api.alertingprovisioning.create_alertrule(desired)
        return Change("alert rule", name, "created")
    if contains(existing, desired):
        return Change("alert rule", name, "unchanged")
    api.alertingprovisioning.update_alertrule(uid, desired)
    return Change("alert rule", name, "updated")


def _push_rule_group(api: GrafanaApi, desired: dict[str, Any]) -> Change:
    """The group's evaluation interval: creating a rule makes its group with Grafana's default."""
    group = quote(desired["title"], safe="")
    existing = api.alertingprovisioning.get_rule_group(FOLDER_UID, group)
    if existing.get("interval") == desired["interval"]:
        return Change("rule group", desired["title"], "unchanged")
    api.alertingprovisioning.update_rule_group(
        FOLDER_UID, group, {**existing, "interval": desired["interval"]}
    )
    return Change("rule group", desired["title"], "updated")


# ---- helpers -------------------------------------------------------------------------------


def contains(actual: object, expected: object) -> bool:
    """True when `actual` holds everything `expected` says, ignoring keys only `actual` has.

    Grafana answers with more than it was sent (ids, versions, `queryType`, provenance, a zero
    time range on expressions); those extras must not make every run an update.
    """
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and contains(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(contains(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return actual == expected


def _get_or_none(get: Callable[[str], Any], uid: str) -> Any:
    """The object, or None when Grafana answers 404."""
    try:
        return get(uid)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


@contextmanager
def _explained(url: str, what: str) -> Iterator[None]:
    """grafana-client's and niquests' exceptions as one line that says what to do next."""
    try:
        yield
    except GrafanaUnauthorizedError:
        raise GrafanaPushError(
            f"Grafana at {url} refused the credentials (HTTP 401) for {what}: check the token, "
            "or the user and password"
        ) from None
    except GrafanaTimeoutError:
        raise GrafanaPushError(f"Grafana at {url} did not answer in time for {what}") from None
    except GrafanaException as exc:
        raise GrafanaPushError(_refusal(url, what, exc)) from None
    except niquests.exceptions.RequestException as exc:
        raise GrafanaPushError(f"cannot reach Grafana at {url}: {_reason(exc)}") from None


def _refusal(url: str, what: str, exc: GrafanaException) -> str:
    status = exc.status_code
    if status == 0:
        return f"cannot reach Grafana at {url}: {exc.message}"
    if status == 403:
        return (
            f"Grafana at {url} refused {what} (HTTP 403): the account needs the Admin role for "
            "data sources and Editor for folders, dashboards and alert rules"
        )
    detail = exc.response.get("message") if isinstance(exc.response, dict) else exc.response
    return f"Grafana at {url} refused {what} (HTTP {status}): {detail or exc.message}"


def _reason(exc: BaseException) -> str:
    """The innermost cause: 'Connection refused', not three layers of pool wrappers."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc) or type(exc).__name__
