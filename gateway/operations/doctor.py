"""`gateway doctor`: check everything the gateway needs before it is started, and say the fix.

Each check is a real attempt, not a look at settings: a CONNECT and SUBSCRIBE to the broker
with the gateway's credentials and TLS settings, an (empty) write to every InfluxDB database the
gateway writes to, a file created in the state directory. Permission bits are not read, because
they do not tell the truth: root passes every permission check (access(2)) yet cannot write to
an immutable directory (chattr +i) or a read-only mount. Run it as the service user
(`sudo -u mh-gateway gateway doctor ...`) to see what the service sees.

Verdicts come one at a time, so a slow check (a broker that does not answer) shows which one it
is. A configuration that does not load stops the checks: nothing else is known then.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.config import GatewaySettings, load_settings
from gateway.errors import ConfigError, ProfileError, SinkError
from gateway.profiles.registry import ProfileRegistry, load_directory
from gateway.stages.deadletter import DEAD_LETTER_FILE
from gateway.stages.ingest import probe_broker
from gateway.stages.sinks.influx import InfluxSink, ServerIdentity
from gateway.stages.spool import SPOOL_FILE

Status = Literal["OK", "WARN", "FAIL"]

MIN_FREE_BYTES = 100 * 1024**2  # below this SQLite's WAL checkpoints and the journal fail soon
_SHOWN_PROBLEMS = 5  # profile problems quoted in the verdict; `profiles validate` lists all
_STORE_FILES = (SPOOL_FILE, DEAD_LETTER_FILE)
_SQLITE_SIDE_FILES = ("", "-wal", "-shm")


@dataclass(frozen=True, slots=True)
class Verdict:
    check: str
    status: Status
    message: str
    fix: str = ""


def diagnose(config: Path | None) -> Iterator[Verdict]:
    """Every check's verdict, in order: configuration, profiles, broker, InfluxDB, state."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        yield Verdict(
            "configuration",
            "FAIL",
            str(exc),
            "correct the keys named above; gateway.example.toml documents every key",
        )
        return
    yield Verdict("configuration", "OK", f"{config or 'environment'} is valid")
    registry = yield from _check_profiles(settings)
    yield _check_broker(settings, registry)
    yield from _check_influx(settings, registry)
    yield from _check_state_dir(settings)


# ---- profiles ---------------------------------------------------------------------------------


def _check_profiles(
    settings: GatewaySettings,
) -> Generator[Verdict, None, ProfileRegistry | None]:
    """Yields the verdicts; returns the registry (None when the profiles do not load)."""
    directory = settings.profiles.dir
    try:
        registry = load_directory(directory)
    except ProfileError as exc:
        shown = exc.problems[:_SHOWN_PROBLEMS]
        more = len(exc.problems) - len(shown)
        message = "\n".join(shown) + (f"\n... and {more} more" if more > 0 else "")
        yield Verdict(
            "profiles",
            "FAIL",
            message,
            f"`gateway profiles validate {directory}` lists every problem; fix the files named",
        )
        return None
    intervals = settings.monitoring.expected_interval_s
    judged = sum(
        1
        for p in registry.profiles
        if (p.liveness and p.liveness.expected_interval_s) or p.id in intervals
    )
    yield Verdict(
        "profiles",
        "OK",
        f"{len(registry.profiles)} profiles from {directory}, {judged} with an expected "
        "reporting interval (device liveness)",
    )
    unknown = sorted(set(intervals) - {p.id for p in registry.profiles})
    if unknown:
        yield Verdict(
            "profiles",
            "WARN",
            f"[monitoring.expected_interval_s] names profiles that do not exist: {unknown}",
            "correct the ids (see `gateway profiles list`) or remove them",
        )
    for profile in registry.profiles:
        for warning in profile.warnings:
            yield Verdict("profiles", "WARN", warning, "see the message; it does not stop start-up")
    return registry


# ---- MQTT broker ------------------------------------------------------------------------------


def _check_broker(settings: GatewaySettings, registry: ProfileRegistry | None) -> Verdict:
    mqtt = settings.mqtt
    topics = mqtt.topics or (registry.subscriptions if registry is not None else [])
    where = f"[{mqtt.host}]:{mqtt.port}" if ":" in mqtt.host else f"{mqtt.host}:{mqtt.port}"
    how = ("over TLS" if mqtt.tls.enabled else "in plain text") + (
        f" as user {mqtt.username!r}" if mqtt.username else " without a user name"
    )
    failure = asyncio.run(probe_broker(mqtt, topics))
    if failure is None:
        return Verdict(
            "mqtt broker",
            "OK",
            f"connected to {where} {how}; subscribing to {len(topics)} topic filters accepted",
        )
    return Verdict("mqtt broker", "FAIL", f"{where} {how}: {failure}", _broker_fix(failure))


def _broker_fix(failure: str) -> str:
    """What to change, from the words of the failure (ingest's messages, OpenSSL's, the OS's)."""
    if "refused the connection" in failure:
        return (
            "check [mqtt] username and password (or password_file, or GATEWAY_MQTT__PASSWORD) "
            "against the broker's password file (mosquitto_passwd)"
        )
    if "refused subscriptions" in failure:
        return "the broker's ACL must let this user subscribe to the profiles' topics"
    if any(word in failure for word in ("TLS", "SSL", "certificate", "mqtt.tls")):
        return (
            "check [mqtt.tls] ca_file, cert_file, key_file and server_name, and that the port "
            "is the broker's TLS listener (usually 8883)"
        )
    return (
        "check [mqtt] host and port, and that the broker runs and listens there "
        "(`systemctl status mosquitto`, `ss -ltnp`); a firewall may drop the connection"
    )


# ---- InfluxDB ---------------------------------------------------------------------------------


def _check_influx(settings: GatewaySettings, registry: ProfileRegistry | None) -> Iterator[Verdict]:
    influx = settings.influx
    reached, results = asyncio.run(_probe_influx(settings, _destinations(settings, registry)))
    if isinstance(reached, SinkError):
        yield Verdict(
            "influxdb",
            "FAIL",
            f"{influx.url}: {reached}",
            "check [influx] url (scheme, host, port) and that InfluxDB runs there "
            "(`systemctl status influxdb`, `curl -i URL/ping`)",
        )
        return
    yield _engine_verdict(influx.url, influx.api, reached)
    mismatch = _engine_setting_verdict(influx.engine, reached)
    if mismatch is not None:
        yield mismatch
    for (database, rp), error in results.items():
        yield _write_verdict(settings, database, rp, error)


def _engine_verdict(url: str, api: str, found: ServerIdentity) -> Verdict:
    """Which engine and write APIs answer at the URL, and whether `[influx] api` is one."""
    detail = f"{url} answers: {found}"
    if api in found.write_apis:
        apis = ", ".join(found.write_apis)
        return Verdict("influxdb", "OK", f"{detail} (write APIs {apis}; using {api})")
    if not found.write_apis:
        return Verdict(
            "influxdb",
            "WARN",
            f"{detail}: not InfluxDB or VictoriaMetrics as far as /ping tells",
            "check [influx] url: it should be InfluxDB's or VictoriaMetrics' HTTP address",
        )
    return Verdict(
        "influxdb",
        "FAIL",
        f"{detail}, which does not serve the {api} write API",
        f"set [influx] api to one of: {', '.join(found.write_apis)}",
    )


def _engine_setting_verdict(engine: str, found: ServerIdentity) -> Verdict | None:
    """Whether [influx] engine names the engine that answers: for VictoriaMetrics the writer
    leaves string fields out and reports the lines it drops unparsed; InfluxDB needs neither."""
    victoria = found.engine == "VictoriaMetrics"
    if not found.write_apis or victoria == (engine == "victoriametrics"):
        return None
    if victoria:
        return Verdict(
            "influxdb engine",
            "WARN",
            "VictoriaMetrics answers but [influx] engine is 'influxdb': string fields would "
            "be stored as 0 (1.79) or skipped, and lines it cannot parse dropped unreported",
            'set [influx] engine = "victoriametrics" (docs/storage-engines.md)',
        )
    return Verdict(
        "influxdb engine",
        "WARN",
        f"[influx] engine is 'victoriametrics' but {found} answers: string fields are left "
        "out for nothing",
        'remove [influx] engine (default "influxdb")',
    )


Destination = tuple[str, str | None]


def _destinations(settings: GatewaySettings, registry: ProfileRegistry | None) -> list[Destination]:
    """Every (database or bucket, retention policy) the gateway writes to, the default first."""
    influx, monitoring = settings.influx, settings.monitoring
    default = influx.bucket or influx.database if influx.api == "v2" else influx.database
    found: list[Destination] = [(default, influx.retention_policy)]
    if monitoring.enabled:
        found.append(
            (monitoring.database or default, monitoring.retention_policy or influx.retention_policy)
        )
    for profile in registry.profiles if registry is not None else ():
        found.append((profile.database or default, profile.retention_policy or None))
    return list(dict.fromkeys(found))


async def _probe_influx(
    settings: GatewaySettings, destinations: list[Destination]
) -> tuple[ServerIdentity | SinkError, dict[Destination, SinkError | None]]:
    sink = InfluxSink(settings.influx)
    results: dict[Destination, SinkError | None] = {}
    try:
        version = await sink.identify()
        for database, rp in destinations:
            results[(database, rp)] = await sink.check_write(database, rp)
    except SinkError as exc:
        return exc, results
    finally:
        await sink.close()
    return version, results


def _write_verdict(
    settings: GatewaySettings, database: str, rp: str | None, error: SinkError | None
) -> Verdict:
    influx = settings.influx
    kind = "bucket" if influx.api == "v2" else "database"
    target = f"{kind} {database!r}" + (f" (retention policy {rp!r})" if rp else "")
    check = f"influxdb write {database}"
    if error is None:
        return Verdict(check, "OK", f"{target}: writes accepted")
    status = error.status
    who = f"user {influx.username!r}" if influx.username else "no user name"
    if status == 401:
        fix = {
            "v2": "check [influx] token (v2: a token with write access to the bucket)",
            "v3": "check [influx] token (InfluxDB 3: an admin token or a database token "
            "with write permission; every endpoint needs one)",
        }.get(
            influx.api,
            "check [influx] username and password (or password_file, or "
            "GATEWAY_INFLUX__PASSWORD), or token for InfluxDB 3; authentication is on",
        )
        return Verdict(check, "FAIL", f"{target}: wrong credentials ({who}): {error}", fix)
    if status == 403:
        fix = f'as an InfluxDB admin: GRANT WRITE ON "{database}" TO "{influx.username}"'
        return Verdict(check, "FAIL", f"{target}: {who} may not write: {error}", fix)
    if status == 404 and influx.api == "v1" and influx.create_database:
        return Verdict(
            check,
            "WARN",
            f"{target} does not exist; the gateway creates it at the first write, which needs "
            "an admin user",
            f'create it now as an admin: CREATE DATABASE "{database}"',
        )
    if status == 404:
        fix = (
            f"create the bucket {database!r} in org {influx.org!r}"
            if influx.api == "v2"
            else f'CREATE DATABASE "{database}" as an admin, or set [influx] create_database'
        )
        return Verdict(check, "FAIL", f"{target} does not exist: {error}", fix)
    return Verdict(check, "FAIL", f"{target}: {error}", "see InfluxDB's answer above")


# ---- state directory: spool, dead letters, receipts -------------------------------------------


def _check_state_dir(settings: GatewaySettings) -> Iterator[Verdict]:
    directory = settings.spool.dir
    existing = _nearest_existing(directory)
    problem = state_dir_problem(directory)
    if existing is None or not existing.is_dir():
        yield Verdict(
            "spool dir", "FAIL", f"{directory}: {problem}", "set [spool] dir to a directory"
        )
        return
    created = (
        "" if existing == directory else f" (not there yet; the gateway makes it in {existing})"
    )
    who = " (checked as root: run doctor as the service user for its view)" if _root() else ""
    if problem is not None:
        yield Verdict(
            "spool dir",
            "FAIL",
            f"{directory}: {problem}{created}",
            f"make {existing} writable for the service user: chown mh-gateway: {existing} && "
            f"chmod 0750 {existing}; also check `lsattr -d {existing}` (immutable flag i) and "
            f"`findmnt -T {existing}` (read-only mount)",
        )
    else:
        yield Verdict("spool dir", "OK", f"{directory} is writable{created}{who}")
    yield _check_free_disk(settings, existing)


def state_dir_problem(directory: Path) -> str | None:
    """Why the gateway could not keep its spool and dead letters in `directory`, or None.

    `gateway run` asks this before opening the stores, so a directory it cannot write stops
    start-up with these words instead of an SQLite traceback."""
    existing = _nearest_existing(directory)
    if existing is None or not existing.is_dir():
        return f"{existing} is a file, not a directory"
    return _cannot_create_file(existing) or _unwritable_store_file(directory)


def _root() -> bool:
    return os.geteuid() == 0


def _nearest_existing(directory: Path) -> Path | None:
    """The directory itself, or its closest ancestor that exists (the one mkdir must write)."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            return candidate
    return None


def _cannot_create_file(directory: Path) -> str | None:
    """Create and remove a file, as SQLite does with its -wal and -journal files."""
    try:
        handle, name = tempfile.mkstemp(prefix=".doctor-", dir=directory)
    except OSError as exc:
        return f"cannot create files in {directory} ({_os_words(exc)})"
    os.close(handle)
    try:
        os.unlink(name)
    except OSError as exc:
        return f"cannot remove files in {directory} ({_os_words(exc)})"
    return None


def _unwritable_store_file(directory: Path) -> str | None:
    """The spool and dead-letter databases the gateway already made must stay writable."""
    for store in _STORE_FILES:
        for suffix in _SQLITE_SIDE_FILES:
            path = directory / (store + suffix)
            if not path.exists():
                continue
            try:
                with path.open("r+b"):
                    pass
            except OSError as exc:
                return f"cannot write {path.name} ({_os_words(exc)})"
    return None


def _os_words(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc}{f', {name}' if name else ''}"


def _check_free_disk(settings: GatewaySettings, directory: Path) -> Verdict:
    spool = settings.spool
    usage = shutil.disk_usage(directory)
    used = _file_bytes(spool.dir / SPOOL_FILE)
    letters_used = _file_bytes(spool.dir / DEAD_LETTER_FILE)
    room = f"{_size(usage.free)} free on the disk of {directory}"
    if usage.free < MIN_FREE_BYTES:
        return Verdict(
            "free disk",
            "FAIL",
            f"only {room}; the spool and dead letters cannot grow",
            "free space on that file system or move [spool] dir to a larger one",
        )
    if spool.enabled and usage.free < spool.max_bytes - used:
        return Verdict(
            "free disk",
            "WARN",
            f"{room}, less than the spool may still grow to "
            f"([spool] max_bytes {_size(spool.max_bytes)})",
            "lower [spool] max_bytes below the free space, or free space: otherwise a long "
            "InfluxDB outage fills the disk instead of pausing intake",
        )
    if usage.free < (spool.max_bytes - used if spool.enabled else 0) + max(
        0, spool.deadletter_max_bytes - letters_used
    ):
        return Verdict(
            "free disk",
            "WARN",
            f"{room}, less than the spool and the dead letters may still grow to "
            f"([spool] max_bytes {_size(spool.max_bytes)}, deadletter_max_bytes "
            f"{_size(spool.deadletter_max_bytes)})",
            "lower the limits below the free space, or free space: a full disk pauses intake "
            "until there is room again",
        )
    return Verdict(
        "free disk",
        "OK",
        f"{room} (spool limit {_size(spool.max_bytes)}, dead letters "
        f"{_size(spool.deadletter_max_bytes)})",
    )


def _file_bytes(database: Path) -> int:
    """A SQLite database's size on disk, with its -wal and -shm files."""
    return sum(
        file.stat().st_size
        for suffix in _SQLITE_SIDE_FILES
        if (file := database.with_name(database.name + suffix)).exists()
    )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def format_verdict(verdict: Verdict) -> str:
    """`FAIL  check: message` and, unless OK, an indented `fix:` line; continuation lines of a
    multi-line message are indented too, so each verdict stays one block."""
    head, *rest = verdict.message.splitlines() or [""]
    lines = [f"{verdict.status:<4}  {verdict.check}: {head}", *(f"      {line}" for line in rest)]
    if verdict.status != "OK" and verdict.fix:
        lines.append(f"      fix: {verdict.fix}")
    return "\n".join(lines)
