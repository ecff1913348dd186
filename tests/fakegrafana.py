"""A small Grafana HTTP API for `gateway dashboards push` tests: Grafana cannot run here.

It implements only the endpoints push calls, with the request and response shapes of Grafana's
HTTP API documentation (data sources, folders, dashboards, alerting provisioning), keeps what
it is sent in memory and records every request. Like Grafana it adds server-side fields to what
it stores (ids, versions, `queryType`, provenance, a zero time range on expressions), so a
client that compared whole objects would see a change on every run.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import unquote

Json = Any
Answer = tuple[int, Json]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # without the URL prefix, percent-decoded
    authorization: str
    body: Json


@dataclass
class GrafanaState:
    datasources: dict[str, Json] = field(default_factory=dict)
    folders: dict[str, Json] = field(default_factory=dict)
    dashboards: dict[str, Json] = field(default_factory=dict)  # uid -> {dashboard, meta}
    rules: dict[str, Json] = field(default_factory=dict)
    groups: dict[tuple[str, str], int] = field(default_factory=dict)  # (folder, title) -> s
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


_UNAUTHORIZED = {
    "message": "Invalid API key",
    "messageId": "api-key.invalid",
    "statusCode": 401,
    "traceID": "",
}


class FakeGrafana:
    """`with FakeGrafana(token="t") as grafana:` serves on grafana.url until the block ends."""

    def __init__(
        self,
        *,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        prefix: str = "",
        port: int = 0,
    ) -> None:
        self.accepted = set()
        if token is not None:
            self.accepted.add(f"Bearer {token}")
        if basic is not None:
            pair = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
            self.accepted.add(f"Basic {pair}")
        self.prefix = prefix
        self.state = GrafanaState()
        self.requests: list[Request] = []
        # Start-up as docker-compose.yml sees it: a proxy's 503s, then the dashboard provider
        # making its folder a few lookups after the HTTP server answers.
        self.unavailable_answers = 0
        self._pending_folder: tuple[str, str] | None = None
        self._folder_misses_left = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def writes(self) -> list[Request]:
        return [request for request in self.requests if request.method != "GET"]

    def provision_folder(self, uid: str, title: str, *, after_misses: int) -> None:
        """Make the folder, as Grafana's dashboard provider would, once `after_misses` lookups
        of it have been answered 404."""
        self._pending_folder = (uid, title)
        self._folder_misses_left = after_misses

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # ---- HTTP plumbing ---------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        grafana = self

        class Handler(BaseHTTPRequestHandler):
            # http.server dispatches on these names.
            def do_GET(self) -> None:
                grafana._serve(self)

            def do_POST(self) -> None:
                grafana._serve(self)

            def do_PUT(self) -> None:
                grafana._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test prints what matters."""

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        path = unquote(handler.path.split("?")[0])
        if path.startswith(self.prefix):
            path = path[len(self.prefix) :]
        request = Request(handler.command, path, handler.headers.get("Authorization", ""), body)
        with self._lock:
            self.requests.append(request)
            status, answer = self._answer(request)
        payload = b"" if answer is None else json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _answer(self, request: Request) -> Answer:
        if self.unavailable_answers > 0:
            self.unavailable_answers -= 1
            return 503, {"message": "Service Unavailable"}
        if request.authorization not in self.accepted:
            return 401, _UNAUTHORIZED
        for method, pattern, route in self._routes():
            match = re.fullmatch(pattern, request.path)
            if method == request.method and match:
                return route(request.body, *match.groups())
        return 404, {"message": "Not found"}

    def _routes(self) -> list[tuple[str, str, Callable[..., Answer]]]:
        return [
            ("GET", r"/api/datasources/uid/([^/]+)", self._get_datasource),
            ("POST", r"/api/datasources", self._create_datasource),
            ("PUT", r"/api/datasources/uid/([^/]+)", self._update_datasource),
            ("GET", r"/api/folders/([^/]+)", self._get_folder),
            ("POST", r"/api/folders", self._create_folder),
            ("PUT", r"/api/folders/([^/]+)", self._update_folder),
            ("GET", r"/api/dashboards/uid/([^/]+)", self._get_dashboard),
            ("POST", r"/api/dashboards/db", self._save_dashboard),
            ("GET", r"/api/v1/provisioning/alert-rules/([^/]+)", self._get_rule),
            ("POST", r"/api/v1/provisioning/alert-rules", self._create_rule),
            ("PUT", r"/api/v1/provisioning/alert-rules/([^/]+)", self._update_rule),
            ("GET", r"/api/v1/provisioning/folder/([^/]+)/rule-groups/(.+)", self._get_group),
            ("PUT", r"/api/v1/provisioning/folder/([^/]+)/rule-groups/(.+)", self._put_group),
        ]

    # ---- data sources (https://grafana.com/docs/grafana/latest/developers/http_api/data_source/)

    def _get_datasource(self, _: Json, uid: str) -> Answer:
        if uid not in self.state.datasources:
            return 404, {"message": "Data source not found"}
        return 200, self.state.datasources[uid]

    def _create_datasource(self, body: Json) -> Answer:
        names = {source["name"] for source in self.state.datasources.values()}
        if body["name"] in names:
            return 409, {"message": "data source with the same name already exists"}
        source = self._stored_datasource(body, self.state.new_id(), version=1)
        self.state.datasources[source["uid"]] = source
        return 200, {
            "datasource": source,
            "id": source["id"],
            "message": "Datasource added",
            "name": source["name"],
        }

    def _update_datasource(self, body: Json, uid: str) -> Answer:
        old = self.state.datasources.get(uid)
        if old is None:
            return 404, {"message": "Data source not found"}
        source = self._stored_datasource(body, old["id"], version=old["version"] + 1)
        self.state.datasources[uid] = source
        return 200, {
            "datasource": source,
            "id": source["id"],
            "message": "Datasource updated",
            "name": source["name"],
        }

    @staticmethod
    def _stored_datasource(body: Json, ident: int, version: int) -> Json:
        # A PUT replaces the data source: what the body leaves out falls back to the defaults.
        return {
            "id": ident,
            "uid": body["uid"],
            "orgId": 1,
            "name": body["name"],
            "type": body["type"],
            "typeLogoUrl": "public/app/plugins/datasource/influxdb/img/influxdb_logo.svg",
            "access": body.get("access", "proxy"),
            "url": body.get("url", ""),
            "user": body.get("user", ""),
            "database": body.get("database", ""),
            "basicAuth": body.get("basicAuth", False),
            "basicAuthUser": body.get("basicAuthUser", ""),
            "withCredentials": body.get("withCredentials", False),
            "isDefault": body.get("isDefault", False),
            "jsonData": body.get("jsonData", {}),
            "secureJsonFields": {},
            "version": version,
            "readOnly": False,
        }

    # ---- folders (https://grafana.com/docs/grafana/latest/developers/http_api/folder/) ------

    def _get_folder(self, _: Json, uid: str) -> Answer:
        if self._pending_folder is not None and self._pending_folder[0] == uid:
            if self._folder_misses_left == 0:
                self._create_folder({"uid": uid, "title": self._pending_folder[1]})
                self._pending_folder = None
            self._folder_misses_left -= 1
        if uid not in self.state.folders:
            return 404, {"message": "folder not found", "status": "not-found"}
        return 200, self.state.folders[uid]

    def _create_folder(self, body: Json) -> Answer:
        uid = body.get("uid") or f"generated-{self.state.next_id}"
        folder = {
            "id": self.state.new_id(),
            "uid": uid,
            "title": body["title"],
            "url": f"/dashboards/f/{uid}/",
            "hasAcl": False,
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
            "version": 1,
        }
        self.state.folders[uid] = folder
        return 200, folder

    def _update_folder(self, body: Json, uid: str) -> Answer:
        folder = self.state.folders[uid]
        folder.update(title=body["title"], version=folder["version"] + 1)
        return 200, folder

    # ---- dashboards (https://grafana.com/docs/grafana/latest/developers/http_api/dashboard/) --

    def _get_dashboard(self, _: Json, uid: str) -> Answer:
        if uid not in self.state.dashboards:
            return 404, {"message": "Dashboard not found"}
        return 200, copy.deepcopy(self.state.dashboards[uid])

    def _save_dashboard(self, body: Json) -> Answer:
        dashboard = copy.deepcopy(body["dashboard"])
        uid = dashboard["uid"]
        old = self.state.dashboards.get(uid)
        if old is not None and not body.get("overwrite"):
            return 412, {"message": "The dashboard has been changed by someone else"}
        folder_uid = body.get("folderUid", "")
        if folder_uid and folder_uid not in self.state.folders:
            return 400, {"message": "folder not found"}
        version = 1 if old is None else old["dashboard"]["version"] + 1
        ident = self.state.new_id() if old is None else old["dashboard"]["id"]
        dashboard.update(id=ident, version=version)
        meta = {
            "type": "db",
            "canSave": True,
            "slug": uid,
            "url": f"/d/{uid}/{uid}",
            "folderUid": folder_uid,
            "folderTitle": self.state.folders.get(folder_uid, {}).get("title", "General"),
            "provisioned": False,
            "version": version,
        }
        self.state.dashboards[uid] = {"dashboard": dashboard, "meta": meta}
        return 200, {
            "id": ident,
            "uid": uid,
            "url": meta["url"],
            "status": "success",
            "version": version,
            "slug": uid,
        }

    # ---- alert rules (https://grafana.com/docs/grafana/latest/developers/http_api/alerting_provisioning/)

    def _get_rule(self, _: Json, uid: str) -> Answer:
        if uid not in self.state.rules:
            return 404, None  # Grafana answers an unknown rule uid with an empty 404
        return 200, self.state.rules[uid]

    def _create_rule(self, body: Json) -> Answer:
        if body.get("uid") in self.state.rules:
            return 409, {"message": "conflicting UID"}
        if body["folderUID"] not in self.state.folders:
            return 400, {"message": "invalid alert rule: folder does not exist"}
        rule = self._stored_rule(body, self.state.new_id())
        self.state.rules[rule["uid"]] = rule
        # A rule in a group Grafana has not seen creates it with the default interval.
        self.state.groups.setdefault((rule["folderUID"], rule["ruleGroup"]), 60)
        return 201, rule

    def _update_rule(self, body: Json, uid: str) -> Answer:
        if uid not in self.state.rules:
            return 404, None
        rule = self._stored_rule(body, self.state.rules[uid]["id"])
        self.state.rules[uid] = rule
        return 200, rule

    @staticmethod
    def _stored_rule(body: Json, ident: int) -> Json:
        rule = copy.deepcopy(body)
        for query in rule["data"]:
            query.setdefault("queryType", "")
            query.setdefault("relativeTimeRange", {"from": 0, "to": 0})
        rule.update(
            id=ident, orgID=1, updated="2026-11-24T08:00:00Z", provenance="api", isPaused=False
        )
        return rule

    def _get_group(self, _: Json, folder_uid: str, title: str) -> Answer:
        interval = self.state.groups.get((folder_uid, title))
        if interval is None:
            return 404, {"message": "rule group does not exist"}
        rules = [
            rule
            for rule in self.state.rules.values()
            if (rule["folderUID"], rule["ruleGroup"]) == (folder_uid, title)
        ]
        return 200, {"title": title, "folderUid": folder_uid, "interval": interval, "rules": rules}

    def _put_group(self, body: Json, folder_uid: str, title: str) -> Answer:
        self.state.groups[(folder_uid, title)] = body["interval"]
        return self._get_group(None, folder_uid, title)
