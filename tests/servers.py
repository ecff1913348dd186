"""Private mosquitto and influxd processes for tests, the demo and the benchmarks.

Integration tests never fake MQTT or InfluxDB (STYLE.md, practice 9): they start the real
servers on free loopback ports with generated configuration under a work directory, so they
never touch the system broker on 1883 or a packaged influxd on 8086.

Stdlib only, so the demo and the benchmarks can import it without pytest, and the InfluxDB
helpers are synchronous (urllib) so they work from plain code and from inside a test alike.
"""

from __future__ import annotations

import abc
import atexit
import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Self

_INSTALL_HINT = "run `make test` (it installs it) or apt-get install -y mosquitto influxdb"

# Debian installs mosquitto in /usr/sbin, which is not on a normal user's PATH.
_SBIN_DIRS = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])

_POLL_INTERVAL_S = 0.01
_MOSQUITTO_RUNNING = re.compile(rb"mosquitto version \S+ running")
_PORT_RETRIES = 3


class ServerError(RuntimeError):
    """A private test server could not be started, stopped or queried."""


class ServerNotInstalledError(ServerError):
    """The server's binary is missing: say how to install it rather than skip the test."""


class ServerStartError(ServerError):
    """The server exited or did not become ready; the message carries its log tail."""


class InfluxHTTPError(ServerError):
    """InfluxDB answered an HTTP call with an error status or a statement error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"InfluxDB HTTP {status}: {message}")
        self.status = status
        self.message = message


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that nothing listens on right now (the kernel picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def find_binary(name: str) -> str:
    """Locate a server binary on PATH or in the sbin directories, or explain how to install it."""
    found = shutil.which(name) or shutil.which(name, path=_SBIN_DIRS)
    if found is None:
        raise ServerNotInstalledError(f"{name} not found: {_INSTALL_HINT}")
    return found


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"--- {path}: (missing)"
    return f"--- {path}:\n" + "\n".join(text.splitlines()[-lines:])


# Stops every server still running when the interpreter exits, so an aborted demo or a test
# session that dies outside fixture teardown does not leave brokers behind. Strong references:
# a server object dropped while running must still be stopped, not garbage-collected.
_LIVE: set[ServerProcess] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        server.stop()


class ServerProcess(abc.ABC):
    """A server child process with generated configuration, readiness wait and clean stop."""

    binary_name: ClassVar[str]
    start_timeout_s: ClassVar[float] = 30.0
    stop_timeout_s: ClassVar[float] = 30.0

    def __init__(self, workdir: Path, host: str, port: int | None, binary: str | None) -> None:
        if any(ch.isspace() for ch in str(workdir)):
            # mosquitto.conf values end at whitespace, so such a path would be cut silently.
            raise ValueError(f"work directory must not contain whitespace: {workdir}")
        self.workdir = Path(workdir).resolve()
        self.host = host
        self._port = port
        self._ports_chosen = port is not None
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        # Seconds the last start() took from spawn to ready, for reports and benchmarks.
        self.last_start_s: float | None = None

    # -- what subclasses provide -------------------------------------------------------------

    @abc.abstractmethod
    def _choose_ports(self) -> None:
        """Pick free ports for everything the configuration binds."""

    @abc.abstractmethod
    def _write_config(self) -> list[str]:
        """Write the configuration file and return the argument list after the binary."""

    @abc.abstractmethod
    def _is_ready(self) -> bool:
        """Probe once, quickly, whether the server serves requests."""

    @property
    @abc.abstractmethod
    def _log_files(self) -> list[Path]:
        """Files whose tails explain a failed start."""

    # -- shared lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerError(f"{self.binary_name} has no port yet: call start() first")
        return self._port

    @property
    def address(self) -> str:
        return _host_port(self.host, self.port)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def _output_file(self) -> Path:
        return self.workdir / f"{self.binary_name}.out"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(_tail(path, lines) for path in self._log_files)

    def start(self) -> Self:
        """Start the server and wait until it serves; ports are kept across restarts."""
        if self.running:
            raise ServerError(f"{self.binary_name} already running on {self.address}")
        binary = find_binary(self._binary or self.binary_name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(_PORT_RETRIES):
            if not self._ports_chosen:
                self._choose_ports()
            try:
                self._spawn_and_wait(binary)
            except ServerStartError as error:
                # free_port() cannot reserve a port, so another process may take it before the
                # server binds it; try fresh ports unless the caller or a restart fixed them.
                lost_port = "address already in use" in str(error).lower()
                if not lost_port or self._ports_chosen or attempt == _PORT_RETRIES - 1:
                    raise
                continue
            self._ports_chosen = True
            return self
        raise AssertionError("unreachable: the last attempt re-raises")

    def _spawn_and_wait(self, binary: str) -> None:
        args = self._write_config()
        started = time.monotonic()
        with self._output_file.open("ab") as output:
            proc = subprocess.Popen(
                [binary, *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._proc = proc
        _LIVE.add(self)
        deadline = started + self.start_timeout_s
        while not self._is_ready():
            if proc.poll() is not None:
                self._fail(f"exited with status {proc.returncode} during start")
            if time.monotonic() > deadline:
                self._fail(f"not ready after {self.start_timeout_s:.0f} s")
            time.sleep(_POLL_INTERVAL_S)
        # Something else may have answered on the port while our process failed to bind it.
        if proc.poll() is not None:
            self._fail(f"exited with status {proc.returncode} right after start")
        self.last_start_s = time.monotonic() - started

    def _fail(self, what: str) -> NoReturn:
        self.kill()
        raise ServerStartError(
            f"{self.binary_name} on {self.address} {what}\n{self.log_tail()}",
        )

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file on it), then SIGKILL if it hangs."""
        self._signal_and_reap(signal.SIGTERM, self.stop_timeout_s)

    def kill(self) -> None:
        """SIGKILL: a crash, so mosquitto keeps only what its last autosave wrote."""
        self._signal_and_reap(signal.SIGKILL, self.stop_timeout_s)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down for down_s seconds, start again on the same ports and data."""
        self.stop()
        if down_s > 0:
            time.sleep(down_s)
        self.start()

    def _signal_and_reap(self, sig: signal.Signals, timeout_s: float) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        port = self._port if self._port is not None else "?"
        return f"<{type(self).__name__} {self.host}:{port} {state} in {self.workdir}>"


class Mosquitto(ServerProcess):
    """A private mosquitto broker with persistence under workdir."""

    binary_name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        persistence: bool = True,
        extra_conf: str = "",
        *,
        autosave_interval_s: int = 2,
        max_inflight_messages: int = 20,
        binary: str | None = None,
    ) -> None:
        super().__init__(workdir, host, port, binary)
        self.persistence = persistence
        self.extra_conf = extra_conf
        self.autosave_interval_s = autosave_interval_s
        self.max_inflight_messages = max_inflight_messages
        self._log_offset = 0

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def log(self) -> str:
        """The broker's log file: connections, subscriptions, warnings."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def persistence_path(self) -> Path:
        return self.workdir / "mosquitto.db"

    @property
    def _log_files(self) -> list[Path]:
        return [self.log_path, self._output_file]

    def _choose_ports(self) -> None:
        self._port = free_port(self.host)

    def _write_config(self) -> list[str]:
        lines = [
            "# generated by tests/servers.py",
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"persistence {str(self.persistence).lower()}",
            f"persistence_location {self.workdir}/",
            "persistence_file mosquitto.db",
            # Time-based saves: autosave_on_changes would rewrite the whole file every N queued
            # messages, which is quadratic for a 100k backlog. SIGTERM always saves as well.
            f"autosave_interval {self.autosave_interval_s}",
            f"log_dest file {self.log_path}",
            # Listed in full because naming any log_type replaces the defaults, and readiness
            # waits for the information-level "running" line.
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            # "<client id> <qos> <filter>" once a SUBSCRIBE is handled: tests wait for that line
            # rather than guess how long the broker takes.
            "log_type subscribe",
            # The default of 1000 per client silently drops the rest of an offline persistent
            # session's QoS 1 backlog; the gateway's outage tests queue far more than that.
            "max_queued_messages 0",
            "max_queued_bytes 0",
            # Stated rather than defaulted: caps in-flight QoS 1/2 to MQTT 3.1.1 clients; MQTT 5
            # clients set their own limit with the Receive Maximum property.
            f"max_inflight_messages {self.max_inflight_messages}",
        ]
        if os.geteuid() == 0:
            # As root mosquitto switches to the "mosquitto" user, which cannot write pytest's
            # 0700 temporary directories.
            lines.append("user root")
        self.conf_path.write_text("\n".join(lines) + "\n" + self.extra_conf + "\n")
        self.log_path.touch()
        self._log_offset = self.log_path.stat().st_size
        return ["-c", str(self.conf_path)]

    def _is_ready(self) -> bool:
        # A connect alone could reach another listener that holds the port while our broker
        # fails to bind it; the log line proves our process opened its listeners.
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            if _MOSQUITTO_RUNNING.search(log.read()) is None:
                return False
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False


class Influxd(ServerProcess):
    """A private InfluxDB 1.x server with its data under workdir, plus small query helpers."""

    binary_name = "influxd"

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        auth: bool = False,
        extra_conf: str = "",
        *,
        binary: str | None = None,
        https: tuple[Path, Path, Path] | None = None,  # (certificate, key, CA that signed it)
    ) -> None:
        super().__init__(workdir, host, port, binary)
        self.auth = auth
        self.extra_conf = extra_conf
        self.https = https
        self._ssl_context = ssl.create_default_context(cafile=https[2]) if https else None
        self.rpc_port: int | None = None
        self._credentials: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.address}"

    @property
    def conf_path(self) -> Path:
        return self.workdir / "influxdb.conf"

    @property
    def _log_files(self) -> list[Path]:
        return [self._output_file]

    def _choose_ports(self) -> None:
        self._port = free_port(self.host)
        self.rpc_port = free_port(self.host)

    def _write_config(self) -> list[str]:
        if self.rpc_port is None:
            # A caller-fixed HTTP port still needs a backup/restore RPC port of its own.
            self.rpc_port = free_port(self.host)

        def toml(value: object) -> str:
            return json.dumps(value)  # JSON strings and booleans are valid TOML

        conf = f"""# generated by tests/servers.py
# Debian's influxd reads reporting-enabled; upstream 1.x reads reporting-disabled. Unknown keys
# are ignored, so both are set to keep the usage reporter off either way.
reporting-enabled = false
reporting-disabled = true
bind-address = {toml(_host_port(self.host, self.rpc_port))}

[meta]
  dir = {toml(str(self.workdir / "meta"))}
  logging-enabled = false

[data]
  dir = {toml(str(self.workdir / "data"))}
  wal-dir = {toml(str(self.workdir / "wal"))}
  query-log-enabled = false

[http]
  enabled = true
  bind-address = {toml(self.address)}
  auth-enabled = {toml(self.auth)}
  log-enabled = false
  pprof-enabled = false
{self._https_conf()}
[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[ifql]
  enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"""
        # graphite, collectd, opentsdb and udp listeners are disabled by default and stay so.
        self.conf_path.write_text(conf + self.extra_conf + "\n")
        return ["-config", str(self.conf_path)]

    def _is_ready(self) -> bool:
        try:
            status, _ = self._http("GET", "/ping", {}, authenticate=False, timeout_s=0.5)
            if status != 204:
                return False
            # Another influxd could hold the port while ours fails to bind it; the expvar
            # endpoint's command line names our configuration file.
            status, raw = self._http("GET", "/debug/vars", {}, authenticate=False, timeout_s=2)
        except OSError:
            return False
        if status != 200:
            return False
        cmdline: list[str] = json.loads(raw).get("cmdline", [])
        return str(self.conf_path) in cmdline

    def _https_conf(self) -> str:
        if self.https is None:
            return ""
        cert, key, _ = self.https
        return (
            f"  https-enabled = true\n  https-certificate = {json.dumps(str(cert))}\n"
            f"  https-private-key = {json.dumps(str(key))}\n"
        )

    # -- HTTP helpers ------------------------------------------------------------------------

    def _http(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: bytes | None = None,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        authenticate: bool = True,
        timeout_s: float = 30.0,
    ) -> tuple[int, bytes]:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Content-Type": content_type} if body is not None else {}
        if authenticate and self._credentials is not None:
            token = base64.b64encode(":".join(self._credentials).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 - our own http:// URL
        try:
            context = self._ssl_context  # None: plain http://
            with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:  # noqa: S310 - our own http(s):// URL
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run InfluxQL (POST, so CREATE/DROP work too) with epoch=ns; raise on any error."""
        params = {"epoch": "ns"}
        if db is not None:
            params["db"] = db
        status, raw = self._http(
            "POST", "/query", params, urllib.parse.urlencode({"q": q}).encode()
        )
        try:
            answer: dict[str, Any] = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"error": raw.decode(errors="replace")}
        if status != 200 or "error" in answer:
            raise InfluxHTTPError(status, str(answer.get("error", raw.decode(errors="replace"))))
        for result in answer.get("results", []):
            if "error" in result:
                raise InfluxHTTPError(status, f"{result['error']} (query: {q})")
        return answer

    def write(self, db: str, lines: str | bytes, precision: str = "ns") -> None:
        """Write line protocol; InfluxDB answers 204 when every point was accepted."""
        body = lines.encode() if isinstance(lines, str) else lines
        params = {"db": db, "precision": precision}
        status, raw = self._http("POST", "/write", params, body, content_type="text/plain")
        if status != 204:
            raise InfluxHTTPError(status, raw.decode(errors="replace"))

    def create_admin(self, user: str, password: str) -> None:
        """Create an admin user and use it for every later helper call.

        With auth enabled, InfluxDB 1.x accepts this one statement unauthenticated while no
        admin exists yet.
        """
        self.query(
            f"CREATE USER {quote_ident(user)} WITH PASSWORD {quote_string(password)} "
            "WITH ALL PRIVILEGES"
        )
        self._credentials = (user, password)

    def create_database(self, name: str) -> None:
        self.query(f"CREATE DATABASE {quote_ident(name)}")

    def drop_database(self, name: str) -> None:
        self.query(f"DROP DATABASE {quote_ident(name)}")

    def databases(self) -> list[str]:
        return [row["name"] for row in self._rows(self.query("SHOW DATABASES"))]

    def count(self, db: str, measurement: str, field: str) -> int:
        """Number of points with a value for field; 0 when the measurement does not exist."""
        # Identifiers go through quote_ident, so the f-string cannot change the statement.
        select = f"SELECT COUNT({quote_ident(field)}) FROM {quote_ident(measurement)}"
        return sum(int(row["count"]) for row in self._rows(self.query(select, db)))

    def points(self, db: str, measurement: str) -> list[dict[str, Any]]:
        """All points of a measurement, oldest first, as column -> value with time in ns."""
        select = f"SELECT * FROM {quote_ident(measurement)}"
        return self._rows(self.query(select, db))

    @staticmethod
    def _rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for result in answer.get("results", []):
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return rows


def quote_ident(name: str) -> str:
    """InfluxQL double-quoted identifier, so test names with dashes or dots stay valid."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """InfluxQL single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class VictoriaMetrics(ServerProcess):
    """A private single-node VictoriaMetrics (Debian package `victoria-metrics`) with its data
    under workdir: a second engine that takes InfluxDB line protocol on /write and
    /api/v2/write. It stores `measurement,tags field=v` as metric `measurement_field` (the
    `db` query parameter becomes a `db` label), numbers only (string fields are dropped) and
    timestamps in milliseconds."""

    binary_name = "victoria-metrics"

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        binary: str | None = None,
    ) -> None:
        super().__init__(workdir, host, port, binary)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def data_path(self) -> Path:
        return self.workdir / "data"

    @property
    def _log_files(self) -> list[Path]:
        return [self._output_file]

    def _choose_ports(self) -> None:
        self._port = free_port(self.host)

    def _write_config(self) -> list[str]:
        return [
            f"-storageDataPath={self.data_path}",
            f"-httpListenAddr={self.address}",
            # The tests write readings of any age: the default retention (1 month) would
            # drop older ones silently (a warning in VictoriaMetrics' log, 204 to the writer).
            "-retentionPeriod=100y",
            # Queries see samples at once rather than 30 s late (the default offset hides
            # samples that may still be arriving from other writers).
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
        ]

    def _is_ready(self) -> bool:
        # Another VictoriaMetrics could hold the port; its flags name our data directory.
        try:
            status, body = self._get("/metrics", timeout_s=0.5)
        except OSError:
            return False
        flag = f'flag{{name="storageDataPath", value="{self.data_path}", is_set="true"}}'
        return status == 200 and flag in body.decode(errors="replace")

    def _get(self, path: str, timeout_s: float = 30.0) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.url}{path}")  # noqa: S310 - our own http:// URL
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - our own http:// URL
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()

    def export(self, match: str = '{__name__=~".+"}') -> list[dict[str, Any]]:
        """Every series matching the selector with all its samples (timestamps in ms), after
        making recently written samples searchable."""
        status, body = self._get("/internal/force_flush")
        if status != 200:
            raise ServerError(f"VictoriaMetrics force_flush answered {status}: {body[:200]!r}")
        query = urllib.parse.urlencode({"match[]": match})
        status, body = self._get(f"/api/v1/export?{query}")
        if status != 200:
            raise ServerError(f"VictoriaMetrics export answered {status}: {body[:200]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def samples(self, match: str = '{__name__=~".+"}') -> int:
        return sum(len(series["values"]) for series in self.export(match))
