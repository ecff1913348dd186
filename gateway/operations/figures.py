"""The gateway's own figures, read at one instant, and written as InfluxDB line protocol.

`read_stats` is the single list of what the gateway reports about itself: `health_lines` turns
it into points for InfluxDB (so Grafana sees the gateway next to the readings) and
gateway/operations/endpoint.py turns the same list into Prometheus metrics, so the two cannot
drift apart.
Pure: no I/O, no asyncio; the caller passes the time. The schema is in docs/operations.md.

Counters are cumulative since the process started (Grafana: `non_negative_derivative`, which
also copes with the reset at a restart); gauges are the value now. Every field keeps one type
for ever, because InfluxDB refuses a point whose field type differs from the one already stored
(HTTP 400 "field type conflict"): ints are always ints, floats always floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.model import FieldValue, Point
from gateway.operations.counters import Metrics
from gateway.policies.liveness import NS_PER_S, LivenessTracker
from gateway.stages.lineprotocol import encode_point

HEALTH_MEASUREMENT = "gateway_health"
COUNTERS_MEASUREMENT = "gateway_counters"


class IngestCounters(Protocol):
    """What is read from gateway.stages.ingest.IngestStats (structurally: no import of ingest)."""

    @property
    def connects(self) -> int: ...

    @property
    def reconnects(self) -> int: ...

    @property
    def stale_acks(self) -> int: ...

    @property
    def acks_refused(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the figures come from; everything but `metrics` is optional."""

    metrics: Metrics
    ingest: IngestCounters | None = None
    liveness: LivenessTracker | None = None
    mqtt_connected: Callable[[], bool] | None = None
    started_ns: int | None = None  # process start (time.time_ns), for uptime


@dataclass(frozen=True, slots=True)
class Scalar:
    name: str  # InfluxDB field; Prometheus `mh_gateway_<name>` (+ `_total` for counters)
    kind: Literal["counter", "gauge"]
    help: str
    value: int | float  # flags are 0/1 ints: InfluxQL can average and alert on them, not on bools


@dataclass(frozen=True, slots=True)
class Breakdown:
    """A counter split by one label, e.g. dead letters by reason."""

    name: str  # the `kind` tag in InfluxDB; Prometheus `mh_gateway_<name>_total`
    label: str  # tag / label key: reason, profile, domain
    help: str
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Stats:
    scalars: list[Scalar] = field(default_factory=list)
    breakdowns: list[Breakdown] = field(default_factory=list)
    # (upper bound in seconds, writes at most that slow), cumulative, ending with +inf
    write_latency: list[tuple[float, int]] = field(default_factory=list)
    write_latency_sum_s: float = 0.0


def read_stats(sources: Sources, now_ns: int) -> Stats:
    """Everything the gateway reports about itself, as of `now_ns` (wall clock, ns)."""
    metrics = sources.metrics
    scalars = _message_scalars(metrics) + _intake_scalars(metrics, now_ns)
    scalars += _write_scalars(metrics) + _spool_scalars(metrics, now_ns)
    scalars += _optional_scalars(sources, now_ns)
    return Stats(
        scalars=scalars,
        breakdowns=_breakdowns(metrics),
        write_latency=metrics.write_latency_cumulative(),
        write_latency_sum_s=float(metrics.write_latency_s_sum),
    )


def _counter(name: str, help_text: str, value: int) -> Scalar:
    return Scalar(name, "counter", help_text, int(value))


def _level(name: str, help_text: str, value: int | bool) -> Scalar:
    """A gauge that counts things (or a 0/1 flag): always an int field."""
    return Scalar(name, "gauge", help_text, int(value))


def _seconds(name: str, help_text: str, value: float) -> Scalar:
    """A gauge in seconds: always a float field."""
    return Scalar(name, "gauge", help_text, float(value))


def _message_scalars(m: Metrics) -> list[Scalar]:
    return [
        _counter("messages_received", "MQTT messages received.", m.messages_received),
        _counter("messages_acked", "MQTT messages acknowledged (durable).", m.messages_acked),
        _counter("points_produced", "Points built from readings.", sum(m.points_produced.values())),
        _counter("points_written", "Points InfluxDB accepted.", sum(m.points_written.values())),
        _counter("fields_dropped", "Reading fields dropped.", sum(m.fields_dropped.values())),
        _counter("dead_letters", "Messages kept as dead letters.", sum(m.dead_letters.values())),
        _counter(
            "receive_times_reused",
            "Redeliveries that got their first receive time back.",
            m.receive_times_reused,
        ),
        _counter(
            "availability_messages",
            "Availability (last will) messages: liveness only, never stored.",
            sum(m.availability_messages.values()),
        ),
        _counter(
            "codec_warnings",
            "Warnings vendor codecs returned with stored readings.",
            sum(m.codec_warnings.values()),
        ),
        _counter(
            "dead_letters_evicted",
            "Dead letters deleted, oldest first, to stay within the store's bounds.",
            m.dead_letters_evicted,
        ),
        _counter(
            "refusals_not_kept",
            "Rate-limited messages past their device's share of dead letters: not stored.",
            m.refusals_not_kept,
        ),
        _counter(
            "empty_frames",
            "Uplinks without an application payload (MAC only): acknowledged, nothing stored.",
            m.empty_frames,
        ),
        _counter(
            "retained_readings_skipped",
            "Retained readings stamped with the receive time, not written as fresh.",
            m.retained_readings_skipped,
        ),
        _counter("profile_reloads", "Profile directory reloads applied.", m.profile_reloads),
        _counter(
            "profile_reloads_failed",
            "Profile reloads refused (the previous profiles stay).",
            m.profile_reloads_failed,
        ),
    ]


def _intake_scalars(m: Metrics, now_ns: int) -> list[Scalar]:
    paused_s = m.intake_paused_total_s(now_ns)
    return [
        _counter(
            "intake_pauses",
            "Times intake stopped reading MQTT: max_pending batches waited for the writer.",
            m.intake_pauses,
        ),
        Scalar(
            "intake_paused_seconds",
            "counter",
            "Seconds intake was paused (backpressure), the pause under way included.",
            paused_s,
        ),
    ]


def _write_scalars(m: Metrics) -> list[Scalar]:
    return [
        _counter("lines_rejected", "Lines InfluxDB refused for good.", m.lines_rejected),
        _counter(
            "engine_lines_dropped",
            "Lines VictoriaMetrics answered 2xx for but dropped unparsed (its invalid rows).",
            m.engine_lines_dropped,
        ),
        _counter("batches_written", "Batches made durable.", m.batches_written),
        _counter("write_retries", "InfluxDB write attempts retried.", m.write_retries),
        _counter(
            "write_failures", "Failed InfluxDB write attempts.", sum(m.write_failures.values())
        ),
        _seconds("write_latency_max_seconds", "Slowest write since start.", m.write_latency_s_max),
        _level("influx_writable", "1 if the last InfluxDB write succeeded.", m.influx_writable),
        _level(
            "influx_auth_failing", "1 if InfluxDB refuses our credentials.", m.influx_auth_failing
        ),
    ]


def _spool_scalars(m: Metrics, now_ns: int) -> list[Scalar]:
    oldest_age_s = max(0.0, (now_ns - m.spool_oldest_ns) / NS_PER_S) if m.spool_oldest_ns else 0.0
    return [
        _level("spool_batches", "Batches in the spool.", m.spool_batches),
        _level("spool_points", "Points in the spool.", m.spool_points),
        _level("spool_bytes", "Spool size in bytes.", m.spool_bytes),
        _seconds("spool_oldest_age_seconds", "Age of the oldest spooled batch.", oldest_age_s),
        _level("spool_full", "1 if the spool is full and intake is paused.", m.spool_full),
        _counter("spooled_batches", "Batches ever put in the spool.", m.spooled_batches),
        _counter("spool_replayed_batches", "Spooled batches written.", m.replayed_batches),
        _counter("spool_replayed_points", "Spooled points written.", m.replayed_points),
        _counter(
            "spool_expired_batches",
            "Spooled batches expired to dead letters.",
            m.spool_expired_batches,
        ),
    ]


def _optional_scalars(sources: Sources, now_ns: int) -> list[Scalar]:
    found: list[Scalar] = []
    if sources.started_ns is not None:
        uptime_s = max(0.0, (now_ns - sources.started_ns) / NS_PER_S)
        found.append(_seconds("uptime_seconds", "Seconds since the gateway started.", uptime_s))
    if sources.mqtt_connected is not None:
        connected = sources.mqtt_connected()
        found.append(_level("mqtt_connected", "1 if connected to the MQTT broker.", connected))
    if sources.ingest is not None:
        found.append(_counter("mqtt_connects", "MQTT connections made.", sources.ingest.connects))
        found.append(
            _counter("mqtt_reconnects", "MQTT connections lost.", sources.ingest.reconnects)
        )
        found.append(
            _counter(
                "mqtt_stale_acks",
                "Acknowledgements for an earlier connection, not sent (the broker redelivers).",
                sources.ingest.stale_acks,
            )
        )
        found.append(
            _counter(
                "mqtt_acks_refused",
                "Acknowledgements with a packet id outside 1..65535, not sent.",
                sources.ingest.acks_refused,
            )
        )
    if sources.liveness is not None:
        tracker = sources.liveness
        found += [
            _level("devices_tracked", "Devices whose last report is known.", tracker.tracked),
            _level("devices_stale", "Devices silent or offline.", tracker.stale_count(now_ns)),
            _counter(
                "liveness_overflow_reports",
                "Reports not tracked: max_tracked_devices reached.",
                tracker.overflow_reports,
            ),
        ]
    return found


def _breakdowns(m: Metrics) -> list[Breakdown]:
    # Names equal the matching totals in gateway_health; Prometheus exports only these split
    # counters (sum() gives the total), InfluxDB gets both.
    return [
        Breakdown("profile_messages", "profile", "Messages per profile.", m.messages_by_profile),
        Breakdown("points_produced", "domain", "Points built per domain.", m.points_produced),
        Breakdown("points_written", "domain", "Points written per domain.", m.points_written),
        Breakdown("fields_dropped", "reason", "Fields dropped per reason.", m.fields_dropped),
        Breakdown("dead_letters", "reason", "Dead letters per reason.", m.dead_letters),
        Breakdown("write_failures", "reason", "Failed writes per kind.", m.write_failures),
        Breakdown(
            "availability_messages",
            "state",
            "Availability messages per state.",
            m.availability_messages,
        ),
        Breakdown("codec_warnings", "codec", "Vendor codec warnings per codec.", m.codec_warnings),
    ]


# ---- InfluxDB line protocol ---------------------------------------------------------------


def health_lines(sources: Sources, *, instance: str, now_ns: int) -> list[str]:
    """The self-metrics points of one interval, as line protocol, all stamped `now_ns`."""
    return stats_lines(read_stats(sources, now_ns), instance=instance, now_ns=now_ns)


def stats_lines(stats: Stats, *, instance: str, now_ns: int) -> list[str]:
    base = (("instance", instance),)
    fields: dict[str, FieldValue] = {scalar.name: scalar.value for scalar in stats.scalars}
    fields["write_latency_seconds_count"] = stats.write_latency[-1][1] if stats.write_latency else 0
    fields["write_latency_seconds_sum"] = float(stats.write_latency_sum_s)
    health = Point(HEALTH_MEASUREMENT, base, fields, now_ns)
    lines = [encode_point(health)]
    for breakdown in stats.breakdowns:
        for key, count in sorted(breakdown.counts.items()):
            tag = (breakdown.label, key)
            lines.append(_counter_line(instance, breakdown.name, tag, count, now_ns))
    for bound, count in stats.write_latency:
        le = "+Inf" if math.isinf(bound) else repr(bound)
        lines.append(_counter_line(instance, "write_latency_seconds", ("le", le), count, now_ns))
    return lines


class CounterOrigins:
    """Writes a zero before the first sample of each split counter.

    A per-reason counter appears in InfluxDB the first time that reason happens, already at 1
    or more, and a rate query (`non_negative_difference`) needs a sample before it: the first
    dead letter of a new reason would never show. A zero stamped at the previous report (the
    gateway's start for the first one) states what was true then. After a restart every
    counter starts from a zero again, which the rate query reads as a reset, not a drop.
    """

    def __init__(self, started_ns: int) -> None:
        self._previous_ns = started_ns
        self._known: set[tuple[str, str]] = set()

    def lines(self, stats: Stats, *, instance: str, now_ns: int) -> list[str]:
        """Zero lines for the split counters not reported before; remembers the rest."""
        zeros = []
        for breakdown in stats.breakdowns:
            for key in sorted(breakdown.counts):
                if (breakdown.name, key) not in self._known:
                    self._known.add((breakdown.name, key))
                    tag = (breakdown.label, key)
                    zeros.append(_counter_line(instance, breakdown.name, tag, 0, self._previous_ns))
        self._previous_ns = now_ns
        return zeros


def _counter_line(instance: str, kind: str, tag: tuple[str, str], count: int, now_ns: int) -> str:
    # Tags sorted by key, as encode_point expects; an empty tag value is not valid line
    # protocol, so an empty key (an unnamed reason) is written as "unknown".
    label, key = tag
    tags = sorted((("instance", instance), ("kind", kind), (label, key or "unknown")))
    return encode_point(Point(COUNTERS_MEASUREMENT, tuple(tags), {"value": int(count)}, now_ns))
