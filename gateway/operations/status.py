"""`gateway status`: a live summary of a running gateway, read from its health endpoint.

Reads only what the gateway serves (`/readyz`, `/metrics`, `/devices/stale`), so it works
against any gateway the box can reach, including one in a container, and needs neither the
gateway's state files nor its credentials.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from gateway.config import HttpSettings
from gateway.errors import ConfigError
from gateway.operations.endpoint import PROMETHEUS_PREFIX, Samples, fetch_endpoint, parse_metrics

_TIMEOUT_S = 5.0
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104  # mapped away


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    url: str
    ready: bool
    reasons: list[str]
    samples: Samples
    stale: dict[str, Any]  # the /devices/stale answer; {} when the gateway serves none

    def total(self, name: str) -> float:
        """A counter or gauge summed over its labels (0 when the gateway does not export it)."""
        for sample in (f"{PROMETHEUS_PREFIX}{name}_total", f"{PROMETHEUS_PREFIX}{name}"):
            if sample in self.samples:
                return sum(value for _, value in self.samples[sample])
        return 0.0

    def by_label(self, name: str, label: str) -> dict[str, int]:
        """A split counter per label value, largest first."""
        series = self.samples.get(f"{PROMETHEUS_PREFIX}{name}_total", [])
        counts = {labels.get(label, ""): int(value) for labels, value in series if value}
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def url_from_settings(http: HttpSettings) -> str:
    """Where the gateway of this configuration serves its endpoints, seen from this box."""
    if not http.enabled:
        raise ConfigError("[http] enabled = false: this gateway serves no status; enable it")
    if http.port == 0:
        raise ConfigError(
            "[http] port = 0 picks a free port at every start: pass --url (the gateway logs "
            "'health endpoint on http://...' at start-up)"
        )
    host = _WILDCARDS.get(http.listen, http.listen)
    return f"http://[{host}]:{http.port}" if ":" in host else f"http://{host}:{http.port}"


def read_status(url: str, stale_limit: int) -> GatewayStatus:
    return asyncio.run(_read(url, stale_limit))


async def _read(url: str, stale_limit: int) -> GatewayStatus:
    ready_status, ready_body = await fetch_endpoint(url, "/readyz", _TIMEOUT_S)
    metrics_status, metrics_body = await fetch_endpoint(url, "/metrics", _TIMEOUT_S)
    stale_status, stale_body = await fetch_endpoint(
        url, f"/devices/stale?limit={stale_limit}", _TIMEOUT_S
    )
    if metrics_status != 200:
        raise ConfigError(f"{url}/metrics answered HTTP {metrics_status}: is this a gateway?")
    readiness = _json(ready_body, f"{url}/readyz")
    return GatewayStatus(
        url,
        ready=ready_status == 200 and bool(readiness.get("ready")),
        reasons=[str(reason) for reason in readiness.get("reasons", [])],
        samples=parse_metrics(metrics_body),
        stale=_json(stale_body, f"{url}/devices/stale") if stale_status == 200 else {},
    )


def _json(body: str, where: str) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} did not answer JSON: {exc}") from exc
    if not isinstance(answer, dict):
        raise ConfigError(f"{where} did not answer a JSON object")
    return answer


def format_status(status: GatewayStatus) -> list[str]:
    """The summary, one topic per line, worst news first."""
    t = status.total
    lines = [f"gateway {status.url}: {'ready' if status.ready else 'NOT READY'}"]
    lines += [f"  ! {reason}" for reason in status.reasons]
    lines += [
        f"  uptime          {_duration(t('uptime_seconds'))}",
        "  mqtt            "
        + ("connected" if t("mqtt_connected") else "NOT CONNECTED")
        + f" ({int(t('mqtt_connects'))} connections, {int(t('mqtt_reconnects'))} lost)",
        f"  messages        {int(t('messages_received'))} received, "
        f"{int(t('messages_acked'))} acknowledged",
        f"  points          {int(t('points_produced'))} produced, "
        f"{int(t('points_written'))} written to InfluxDB",
        f"  dead letters    "
        f"{_counts(int(t('dead_letters')), status.by_label('dead_letters', 'reason'))}",
        f"  fields dropped  "
        f"{_counts(int(t('fields_dropped')), status.by_label('fields_dropped', 'reason'))}",
        f"  influxdb        {_influx_state(status)}",
        f"  spool           {int(t('spool_batches'))} batches, {int(t('spool_points'))} points, "
        f"{int(t('spool_bytes'))} bytes; oldest {_duration(t('spool_oldest_age_seconds'))}"
        + ("; FULL, intake paused" if t("spool_full") else ""),
    ]
    lines += _device_lines(status)
    return lines


def _influx_state(status: GatewayStatus) -> str:
    if status.total("influx_auth_failing"):
        return "CREDENTIALS REFUSED (data kept in the spool; fix [influx])"
    if not status.total("influx_writable"):
        return "writes failing (data goes to the spool)"
    return "writable"


def _device_lines(status: GatewayStatus) -> list[str]:
    tracked, stale = int(status.total("devices_tracked")), int(status.total("devices_stale"))
    lines = [f"  devices         {tracked} tracked, {stale} stale"]
    for device in status.stale.get("devices", []):
        expected = device.get("expected_interval_s") or 0
        every = f", expected every {_duration(expected)}" if expected else ""
        profile = device.get("profile_id") or "(availability only)"
        lines.append(
            f"    {profile} {device.get('device_id')}: {device.get('reason')}, silent "
            f"{_duration(device.get('silent_s', 0))}{every}"
        )
    shown = len(status.stale.get("devices", []))
    if stale > shown:
        lines.append(f"    ... and {stale - shown} more (--stale N, or /devices/stale)")
    return lines


def _counts(total: int, split: dict[str, int]) -> str:
    if not split:
        return str(total)
    return f"{total} (" + ", ".join(f"{key} {count}" for key, count in split.items()) + ")"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"
