"""Typed configuration: one TOML file, every key overridable by `GATEWAY_<SECTION>__<KEY>`.

Precedence, highest first: environment variables, the TOML file, the defaults below.
Secrets are `SecretStr`, so they print as `**********` in logs and reprs.

The environment is read here (`_environment`) with pydantic-settings' rules for what we use:
names case-insensitive, `__` between levels, JSON for lists, tables and whole sections, and
tables merged key by key into the file's. pydantic-settings itself did this before; importing
it cost 4.3 MB of the gateway's 64 MB memory budget (it brings its cloud and CLI sources).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Section):
    enabled: bool = Field(False, description="Connect to the broker over TLS (1.2 minimum).")
    ca_file: Path | None = Field(
        None, description="CA bundle that signed the broker's certificate."
    )
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    server_name: str | None = Field(
        None, description="Name to check in the broker's certificate (default: the host)."
    )


class MqttSettings(_Section):
    host: str = Field("127.0.0.1", description="Broker host name, IPv4 or IPv6 literal.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    client_id: str = Field(
        "mh-gateway",
        min_length=1,
        max_length=64,
        description="Stable client id: the broker keeps the persistent session under it.",
    )
    qos: Literal[0, 1] = Field(
        1, description="Subscription QoS. 1 = at least once (no loss); 0 can lose readings."
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval.")
    session_expiry_s: int = Field(
        7 * 24 * 3600,
        ge=0,
        description="How long the broker keeps the session (and queues readings) while the "
        "gateway is away. 0 = the session ends with the connection (readings can be lost).",
    )
    # 10,000: more than the ~9,000 messages the pipeline holds at most (batch.max_pending + 1
    # batches of 5,000 points), so the writer never waits for the broker. Fewer in flight is
    # less memory: before ingest paused intake during the handshake too (mosquitto sends a
    # resumed session's backlog before the SUBACK), 65535 let a backlog drain hold ~65,000
    # messages at once (peak RSS 118 MB against 97 MB with 10,000; Speed issue, 10k devices).
    receive_maximum: int = Field(
        10_000,
        ge=1,
        le=65535,
        description="Unacknowledged QoS 1 messages the broker may send at once (MQTT v5). "
        "Each one in flight costs memory; the pipeline itself holds up to "
        "(batch.max_pending + 1) batches.",
    )
    username: str | None = Field(None, description="Broker user name.")
    password: SecretStr | None = Field(
        None, description="Broker password (prefer password_file or GATEWAY_MQTT__PASSWORD)."
    )
    password_file: Path | None = Field(
        None, description="File whose content is the broker password (instead of password)."
    )
    topics: list[str] = Field(
        default_factory=list,
        description="Subscription filters. Empty = derived from the loaded device profiles.",
    )
    shared_group: str | None = Field(
        None,
        pattern=r"^[^/+#]+$",  # MQTT v5 4.8.2: a share name has no '/', '+' or '#'
        description="Subscribe as $share/<group>/<filter> (MQTT v5 shared subscription): "
        "gateways with the same group split the messages between them. `gateway run "
        "--workers N` uses the client id when this is not set.",
    )
    reconnect_min_s: float = Field(0.5, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the reconnect delay.")
    tls: TlsSettings = Field(default_factory=TlsSettings)

    @model_validator(mode="before")
    @classmethod
    def _password_from_file(cls, data: Any) -> Any:
        return _secrets_from_files(data, "mqtt", ("password",))

    @field_validator("host")
    @classmethod
    def _bare_host(cls, value: str) -> str:
        # "[::1]" is how URLs write an IPv6 literal; the socket layer wants it bare.
        host = value.strip()
        return host[1:-1] if host.startswith("[") and host.endswith("]") else host

    @model_validator(mode="after")
    def _tls_options_need_tls(self) -> MqttSettings:
        tls = self.tls
        if tls.key_file is not None and tls.cert_file is None:
            raise ValueError("tls.key_file needs tls.cert_file (the client certificate)")
        configured = [
            key
            for key in ("ca_file", "cert_file", "key_file", "server_name")
            if getattr(tls, key) is not None
        ]
        if configured and not tls.enabled:
            # Settings for TLS with TLS off would connect in plain text without a word.
            raise ValueError(
                f"tls.{', tls.'.join(configured)} set but tls.enabled = false: set "
                "enabled = true to connect over TLS, or remove them"
            )
        return self


class InfluxSettings(_Section):
    url: str = Field("http://127.0.0.1:8086", description="InfluxDB base URL.")
    api: Literal["v1", "v2", "v3"] = Field(
        "v1",
        description="v1: /write with database + retention policy (InfluxDB 1.x, "
        "VictoriaMetrics, InfluxDB 3); v2: /api/v2/write with org + bucket (InfluxDB 2.x, "
        "VictoriaMetrics, InfluxDB 3); v3: /api/v3/write_lp with database + token (InfluxDB 3 "
        "Core/Enterprise; refused lines named in the answer, the rest stored).",
    )
    engine: Literal["influxdb", "victoriametrics"] = Field(
        "influxdb",
        description='What stores the lines. "victoriametrics" (api v1 or v2): string fields '
        "are left out of each line and counted as dropped (string_unsupported: VictoriaMetrics "
        "stores numbers only, 1.79 writes 0), and how many lines it answered 204 for but could "
        'not parse is read from its /metrics (vm_rows_invalid_total{type="influx"}) every '
        "[monitoring] interval_s and reported (engine_lines_dropped, a warning). `gateway "
        "doctor` says which engine answers.",
    )
    database: str = Field("telemetry", min_length=1, description="v1 and v3 database.")
    retention_policy: str | None = Field(None, description="v1 retention policy (default RP).")
    username: str | None = Field(None, description="v1 user.")
    password: SecretStr | None = Field(None, description="v1 password.")
    password_file: Path | None = Field(
        None, description="File whose content is the v1 password (instead of password)."
    )
    org: str | None = Field(None, description="v2 organization.")
    bucket: str | None = Field(None, description="v2 bucket.")
    token: SecretStr | None = Field(
        None,
        description="API token: v2 (sent as `Token`), v3 (sent as `Bearer`), and v1 without a "
        "username (sent as `Bearer`, as InfluxDB 3's /write expects).",
    )
    token_file: Path | None = Field(
        None, description="File whose content is the API token (instead of token)."
    )
    no_sync: bool = Field(
        False,
        description="v3 only: InfluxDB 3 answers before its write-ahead log reaches disk "
        "(no_sync=true). Lower write latency, but a crash of InfluxDB can lose batches it "
        "already acknowledged, and the gateway has acked their MQTT messages by then; keep "
        "false unless losing a second of readings in an InfluxDB crash is acceptable.",
    )
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one write request.")
    ca_file: Path | None = Field(
        None,
        description="CA bundle that signed InfluxDB's certificate (https:// URLs; default: the "
        "system's CA store). The chain, dates and name are always checked.",
    )
    create_database: bool = Field(
        True, description="v1: create the database at start-up if it does not exist."
    )

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        return _secrets_from_files(data, "influx", ("password", "token"))

    @model_validator(mode="after")
    def _v2_needs_bucket(self) -> InfluxSettings:
        if self.api == "v2" and not (self.org and self.bucket):
            raise ValueError("api = 'v2' needs both 'org' and 'bucket'")
        if self.engine == "victoriametrics" and self.api == "v3":
            raise ValueError(
                "engine = 'victoriametrics' takes api = 'v1' (/write) or 'v2' (/api/v2/write); "
                "VictoriaMetrics has no /api/v3/write_lp"
            )
        if self.ca_file is not None and not self.url.lower().startswith("https://"):
            # A CA for a plain-text URL would suggest a protection that is not there.
            raise ValueError("ca_file is set but url is not https://: use an https:// url")
        return self


class BatchSettings(_Section):
    max_points: int = Field(5000, ge=1, le=1_000_000, description="Write when this many points.")
    max_age_s: float = Field(1.0, gt=0, le=3600, description="... or when the oldest is this old.")
    max_pending: int = Field(
        4, ge=1, le=1000, description="Sealed batches waiting for the writer before intake pauses."
    )


class ProfilesSettings(_Section):
    dir: Path = Field(Path("device_profiles"), description="Directory of device profile files.")
    reload_interval_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="Check the directory for added, changed or removed files this often "
        "(0: never; restart to load changes).",
    )


class SpoolSettings(_Section):
    dir: Path = Field(
        Path("/var/lib/mh-gateway"),
        description="Gateway state: the spool, the dead-letter store and receive-time receipts.",
    )
    enabled: bool = Field(
        True,
        description="Spool batches to disk while InfluxDB cannot take them (store-and-forward).",
    )
    max_bytes: int = Field(
        1024**3, ge=1024**2, description="Spool size limit; when full, intake stops (no ack)."
    )
    max_age_s: float = Field(
        7 * 86400,
        gt=0,
        description="Spooled batches older than this become dead letters (spool_expired).",
    )
    write_timeout_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="How long a live batch may keep failing before it is spooled instead.",
    )
    deadletter_max_records: int = Field(
        1_000_000, ge=1000, description="Dead letters kept; the oldest go first beyond this."
    )
    deadletter_max_bytes: int = Field(
        256 * 1024**2,
        ge=1024**2,
        description="Dead-letter store size limit (topics, payloads, details); the oldest "
        "letters go first beyond this, counted.",
    )
    deadletter_when_full: Literal["evict", "pause"] = Field(
        "evict",
        description='At either dead-letter bound: "evict" deletes the oldest letters (counted); '
        '"pause" keeps every letter and stops acknowledging, intake paused and /readyz 503 as '
        "on a full disk, until letters are replayed or removed.",
    )


class HttpSettings(_Section):
    enabled: bool = Field(
        True, description="Serve /healthz, /readyz, /metrics and /devices/stale over HTTP."
    )
    listen: str = Field(
        "127.0.0.1",
        description='Address to listen on: IPv4 or IPv6 literal (e.g. "::1") or host name. '
        "Keep it on loopback or a management network: the endpoints have no authentication.",
    )
    port: int = Field(9464, ge=0, le=65535, description="TCP port; 0 = any free port (tests).")
    max_connections: int = Field(
        16,
        ge=1,
        le=10_000,
        description="Connections served at once; more are closed unanswered. A scraper needs one.",
    )

    @field_validator("listen")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        # "[::1]" is how URLs write an IPv6 literal; the socket layer wants it bare.
        host = value.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            labels = host.split(".")
            if not all(p.isascii() and p.replace("-", "").isalnum() for p in labels):
                raise ValueError(
                    "must be an IPv4/IPv6 literal or a host name, e.g. 127.0.0.1 or ::1"
                ) from None
        return host


class MonitoringSettings(_Section):
    enabled: bool = Field(
        True, description="Write the gateway's own health figures into InfluxDB every interval."
    )
    instance: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="This gateway's name: the `instance` tag of its self-metrics "
        "(default: the host name).",
    )
    interval_s: float = Field(
        10.0, ge=1, le=3600, description="How often self-metrics are written."
    )
    database: str | None = Field(
        None, description="v1 database / v2 bucket for self-metrics (default: the data's)."
    )
    retention_policy: str | None = Field(
        None, description="v1 retention policy for self-metrics (default: the data's)."
    )
    expected_interval_s: dict[str, float] = Field(
        default_factory=dict,
        description="Device liveness: expected reporting interval per profile id, in seconds. "
        "Devices of profiles not listed here are never reported stale.",
    )
    stale_after_intervals: float = Field(
        3.0, gt=1, le=1000, description="A device is stale after this many silent intervals."
    )
    max_tracked_devices: int = Field(
        100_000,
        ge=1,
        description="Liveness memory bound; reports from more devices are counted, not tracked.",
    )

    @field_validator("expected_interval_s")
    @classmethod
    def _positive_intervals(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(profile for profile, seconds in value.items() if not seconds > 0)
        if bad:
            raise ValueError(f"intervals must be > 0 seconds (profiles: {', '.join(bad)})")
        return value


class LimitsSettings(_Section):
    max_payload_bytes: int = Field(
        65536, ge=64, le=16 * 1024**2, description="Larger payloads become dead letters unread."
    )
    max_readings_per_message: int = Field(
        1000, ge=1, description="A message yielding more readings becomes a dead letter."
    )
    device_rate_per_s: float = Field(
        20.0,
        ge=0,
        description="Sustained messages per second per device topic (0: no limit); the excess "
        "becomes dead letters (rate_limited).",
    )
    device_burst: int = Field(
        5000,
        ge=1,
        description="Messages a device topic may send at once, e.g. a backlog the broker held.",
    )
    max_topic_bytes: int = Field(
        1024,
        ge=64,
        le=65535,
        description="Longer MQTT topics become dead letters (topic_too_long), the topic cut "
        "to this length: every cache keyed by topic stays bounded in bytes.",
    )
    max_tag_value_bytes: int = Field(
        256,
        ge=16,
        le=65535,
        description="A longer tag value (from a topic level or the payload) is dropped with a "
        "reason, like a bad field: InfluxDB keeps every tag value in its index for ever.",
    )


class TenantSettings(_Section):
    databases: list[str] = Field(
        min_length=1,
        description="v1 databases / v2 buckets this agency's profiles may write.",
    )
    retention_policies: list[str] = Field(
        default_factory=list,
        description="v1 retention policies its profiles may name (empty: any of them).",
    )


class PrivacySettings(_Section):
    hash_key: SecretStr | None = Field(
        None,
        description="Key of the keyed hash of `privacy: hash` profile fields (prefer "
        "hash_key_file or GATEWAY_PRIVACY__HASH_KEY). Unset: a random key per run.",
    )
    hash_key_file: Path | None = Field(
        None, description="File whose content is the hash key (instead of hash_key)."
    )

    @model_validator(mode="before")
    @classmethod
    def _key_from_file(cls, data: Any) -> Any:
        return _secrets_from_files(data, "privacy", ("hash_key",))

    @field_validator("hash_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < _MIN_HASH_KEY_BYTES:
            # A short key can be guessed, and with it every plate behind every hash.
            raise ValueError(
                f"at least {_MIN_HASH_KEY_BYTES} bytes; generate one with "
                "`openssl rand -hex 32 > hash-key`"
            )
        return value


_MIN_HASH_KEY_BYTES = 16


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


_TENANT_NAME = re.compile(r"[a-z][a-z0-9_]*")


class GatewaySettings(BaseModel):
    """Built from keyword arguments (the TOML file's tables) and `GATEWAY_*` variables, which
    win: constructing it reads the environment, as pydantic-settings' BaseSettings did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    profiles: ProfilesSettings = Field(default_factory=ProfilesSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    tenants: dict[str, TenantSettings] = Field(
        default_factory=dict,
        description="Agencies sharing this gateway: [tenants.<name>] databases = [...]. Empty: "
        "one agency, profiles may write any database and may not name a tenant.",
    )
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @field_validator("tenants")
    @classmethod
    def _tenant_names(cls, value: dict[str, TenantSettings]) -> dict[str, TenantSettings]:
        bad = sorted(name for name in value if not _TENANT_NAME.fullmatch(name))
        if bad:
            raise ValueError(
                f"tenant names are lower-case letters, digits and _, starting with a letter "
                f"(got: {', '.join(bad)})"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _environment_wins(cls, data: Any) -> Any:
        overrides = _environment(os.environ)
        if not overrides or not isinstance(data, dict):
            return data
        return _merged(data, overrides)


ENV_PREFIX = "GATEWAY_"
_ENV_DELIMITER = "__"


def _environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """`GATEWAY_MQTT__PORT=1884` -> {"mqtt": {"port": "1884"}}; pydantic converts the text.
    Variables naming no section are ignored; unknown keys of a section are reported by its
    validation, naming the variable (format_validation_error)."""
    found: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split(_ENV_DELIMITER)
        if path[0] not in GatewaySettings.model_fields or not all(path):
            continue
        target = found
        for key in path[:-1]:
            inner = target.get(key)
            if not isinstance(inner, dict):
                inner = target[key] = {}
            target = inner
        parsed = _json_value(name, value) if _structured(path) else value
        previous = target.get(path[-1])
        if isinstance(previous, dict) and isinstance(parsed, dict):
            parsed = _merged(previous, parsed)  # GATEWAY_MQTT and GATEWAY_MQTT__PORT both
        target[path[-1]] = parsed
    return found


def _structured(path: list[str]) -> bool:
    """Whether the key at `path` holds a list, a table or a section: its variable is JSON."""
    annotation: Any = GatewaySettings
    for key in path:
        annotation = _without_none(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(key)
            if field is None:
                return False  # unknown: passed as text, and refused by the section's check
            annotation = field.annotation
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return False
    annotation = _without_none(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return typing.get_origin(annotation) in (dict, list)


def _without_none(annotation: Any) -> Any:
    """`X | None` -> X."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kept = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return kept[0] if len(kept) == 1 else annotation
    return annotation


def _json_value(name: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{name}: not valid JSON ({exc.msg}); lists and tables are written in JSON in the "
            "environment, e.g. '[\"city/#\"]' or '{\"profile-id\": 60}'"
        ) from None


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` on top, tables merged key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        previous = merged.get(key)
        if isinstance(previous, Mapping) and isinstance(value, Mapping):
            merged[key] = _merged(previous, value)
        else:
            merged[key] = value
    return merged


def load_settings(path: Path | None) -> GatewaySettings:
    """Read and validate the configuration, or raise ConfigError naming file, field and fix."""
    data: dict[str, Any] = {}
    source = str(path) if path else "environment"
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: configuration file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return GatewaySettings(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem: `file: section.key: what is wrong (got: value)`."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        env_name = "GATEWAY_" + "__".join(str(part) for part in error["loc"]).upper()
        origin = env_name if env_name in os.environ else source
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against gateway.example.toml)"
        got = error.get("input")
        secret = any(word in where for word in ("password", "token", "hash_key"))
        shown = "" if isinstance(got, dict) or secret else got
        suffix = f" (got: {shown!r})" if shown not in ("", None) else ""
        lines.append(f"{origin}: {where}: {message}{suffix}")
    return "\n".join(lines)


def _secrets_from_files(data: Any, section: str, secrets: tuple[str, ...]) -> Any:
    """`<secret>_file = PATH` makes the file's content the secret, so the secret itself sits
    neither in the TOML file nor in the environment (Docker secrets, systemd credentials)."""
    if not isinstance(data, dict):
        return data
    for secret in secrets:
        path = data.get(f"{secret}_file")
        if not isinstance(path, str | os.PathLike):
            continue  # absent; a wrong type is reported by the field's own validation
        if data.get(secret) is not None:
            raise ValueError(
                f"{section}.{secret} and {section}.{secret}_file are both set (in the file or "
                f"as GATEWAY_{section.upper()}__{secret.upper()}[_FILE]): keep one of them"
            )
        data = {**data, secret: _read_secret(Path(path), f"{section}.{secret}_file")}
    return data


def _read_secret(path: Path, key: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        # The codec's message would quote a byte of the secret.
        raise ValueError(f"{key}: {path} is not UTF-8 text") from None
    secret = text.rstrip("\r\n")  # editors and `echo` end the file with a newline
    if not secret:
        raise ValueError(f"{key}: {path} is empty")
    return secret
