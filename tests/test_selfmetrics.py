"""Self-metrics as line protocol: the schema of docs/operations.md, field types that never change,
escaping that parses back, and a real InfluxDB that accepts and derives it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from gateway.model import FieldValue
from gateway.operations.counters import WRITE_LATENCY_BUCKETS_S, Metrics
from gateway.operations.figures import (
    COUNTERS_MEASUREMENT,
    HEALTH_MEASUREMENT,
    CounterOrigins,
    Sources,
    health_lines,
    read_stats,
    stats_lines,
)
from gateway.policies.liveness import NS_PER_S, LivenessTracker
from gateway.stages.ingest import IngestStats
from tests.servers import Influxd

ROOT = Path(__file__).resolve().parent.parent
NOW_NS = 1_700_000_000 * NS_PER_S

ParsedLine = tuple[str, dict[str, str], dict[str, FieldValue], int]


# ---- a small line protocol reader (the subset the gateway writes) -------------------------


def split_unescaped(text: str, separator: str) -> list[str]:
    """Split on `separator` outside backslash escapes and double-quoted strings."""
    parts, current, quoted, chars = [], [], False, iter(text)
    for char in chars:
        if char == "\\":
            current += [char, next(chars)]
        elif char == '"':
            quoted = not quoted
            current.append(char)
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        out.append(next(chars) if char == "\\" else char)
    return "".join(out)


def field_value(raw: str) -> FieldValue:
    if raw.startswith('"'):
        return unescape(raw[1:-1])
    if raw in ("true", "false"):
        return raw == "true"
    if raw.endswith("i"):
        return int(raw[:-1])
    return float(raw)


def parse_line(line: str) -> ParsedLine:
    series, fields_text, time_text = split_unescaped(line, " ")
    measurement, *tag_texts = split_unescaped(series, ",")
    pairs = (split_unescaped(tag, "=") for tag in tag_texts)
    tags = {unescape(key): unescape(value) for key, value in pairs}
    fields = {}
    for text in split_unescaped(fields_text, ","):
        key, raw = split_unescaped(text, "=")
        fields[unescape(key)] = field_value(raw)
    return unescape(measurement), tags, fields, int(time_text)


def parsed(sources: Sources, instance: str = "edge-01") -> list[ParsedLine]:
    return [parse_line(line) for line in health_lines(sources, instance=instance, now_ns=NOW_NS)]


def health_fields(lines: list[ParsedLine]) -> dict[str, FieldValue]:
    (fields,) = [fields for name, _, fields, _ in lines if name == HEALTH_MEASUREMENT]
    return fields


def counters(lines: list[ParsedLine], kind: str) -> dict[str, FieldValue]:
    """{the third tag's value: count} of the gateway_counters lines of one kind."""
    found = {}
    for name, tags, fields, _ in lines:
        if name == COUNTERS_MEASUREMENT and tags["kind"] == kind:
            (key,) = set(tags) - {"instance", "kind"}
            found[tags[key]] = fields["value"]
    return found


def busy_metrics() -> Metrics:
    metrics = Metrics()
    metrics.messages_received = 120
    metrics.messages_acked = 118
    metrics.messages_by_profile.update({"mh-streetlight-json": 100, "mh-water-flow-json": 19})
    metrics.points_produced.update({"lighting": 100, "water": 19})
    metrics.points_written.update({"lighting": 90})
    metrics.fields_dropped.update({"out_of_range": 4, "wrong type": 1})
    metrics.dead_letters.update({"invalid_json": 1, "unknown_topic": 1})
    metrics.write_failures.update({"http_503": 2})
    metrics.write_retries = 2
    metrics.spool_batches, metrics.spool_points, metrics.spool_bytes = 3, 300, 40960
    metrics.spool_oldest_ns = NOW_NS - 45 * NS_PER_S
    metrics.influx_writable = False
    metrics.observe_write_latency(0.004)
    metrics.observe_write_latency(0.3)
    metrics.observe_write_latency(60.0)
    return metrics


def rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """InfluxQL JSON answer -> one dict per row, series tags included."""
    return [
        {**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))}
        for result in answer["results"]
        for series in result.get("series", [])
        for values in series["values"]
    ]


# ---- tests --------------------------------------------------------------------------------


def test_health_point_carries_totals_gauges_and_flags() -> None:
    lines = parsed(Sources(busy_metrics()))
    name, tags, fields, time_ns = lines[0]
    assert (name, tags, time_ns) == (HEALTH_MEASUREMENT, {"instance": "edge-01"}, NOW_NS)
    assert fields["messages_received"] == 120
    assert fields["messages_acked"] == 118
    assert fields["points_produced"] == 119
    assert fields["points_written"] == 90
    assert fields["fields_dropped"] == 5
    assert fields["dead_letters"] == 2
    assert fields["write_failures"] == 2
    assert fields["spool_batches"] == 3
    assert fields["spool_bytes"] == 40960
    assert fields["spool_oldest_age_seconds"] == 45.0
    assert fields["spool_full"] == 0
    assert fields["influx_writable"] == 0
    assert fields["write_latency_seconds_count"] == 3
    assert fields["write_latency_seconds_sum"] == pytest.approx(60.304)
    assert fields["write_latency_max_seconds"] == 60.0


def test_split_counters_have_one_line_per_key() -> None:
    lines = parsed(Sources(busy_metrics()))
    assert counters(lines, "dead_letters") == {"invalid_json": 1, "unknown_topic": 1}
    assert counters(lines, "fields_dropped") == {"out_of_range": 4, "wrong type": 1}
    assert counters(lines, "profile_messages") == {
        "mh-streetlight-json": 100,
        "mh-water-flow-json": 19,
    }
    assert counters(lines, "points_written") == {"lighting": 90}
    assert counters(lines, "write_failures") == {"http_503": 2}


def test_write_latency_buckets_are_cumulative() -> None:
    latency = counters(parsed(Sources(busy_metrics())), "write_latency_seconds")
    assert list(latency) == [*(repr(bound) for bound in WRITE_LATENCY_BUCKETS_S), "+Inf"]
    assert latency["0.005"] == 1
    assert latency["0.25"] == 1
    assert latency["0.5"] == 2
    assert latency["10.0"] == 2
    assert latency["+Inf"] == 3


def test_optional_sources_add_their_fields() -> None:
    liveness = LivenessTracker({"lamp": 60.0})
    liveness.seen("lamp", "sl-1", NOW_NS - 3600 * NS_PER_S, retained=False)
    liveness.seen("lamp", "sl-2", NOW_NS, retained=False)
    sources = Sources(
        Metrics(),
        ingest=IngestStats(connects=4, reconnects=3),
        liveness=liveness,
        mqtt_connected=lambda: True,
        started_ns=NOW_NS - 90 * NS_PER_S,
    )
    fields = health_fields(parsed(sources))
    assert fields["mqtt_connects"] == 4
    assert fields["mqtt_reconnects"] == 3
    assert fields["mqtt_connected"] == 1
    assert fields["devices_tracked"] == 2
    assert fields["devices_stale"] == 1
    assert fields["liveness_overflow_reports"] == 0
    assert fields["uptime_seconds"] == 90.0
    bare = health_fields(parsed(Sources(Metrics())))
    assert not {"mqtt_connects", "devices_stale", "uptime_seconds"} & set(bare)


def test_field_types_never_change() -> None:
    """InfluxDB refuses a field whose type differs from the stored one (field type conflict):
    a fresh gateway and a busy one must write the same type for every field."""

    def types(metrics: Metrics) -> dict[str, type]:
        sources = Sources(
            metrics,
            ingest=IngestStats(),
            liveness=LivenessTracker({}),
            mqtt_connected=lambda: False,
            started_ns=NOW_NS,
        )
        return {name: type(value) for name, value in health_fields(parsed(sources)).items()}

    fresh, busy = types(Metrics()), types(busy_metrics())
    assert fresh == busy
    assert bool not in set(fresh.values())  # flags are 0/1 ints, which InfluxQL can aggregate
    counter_names = {s.name for s in read_stats(Sources(Metrics()), NOW_NS).scalars}
    for name in counter_names:
        assert fresh[name] is (float if name.endswith("_seconds") else int), name


def test_awkward_names_are_escaped_and_parse_back() -> None:
    metrics = Metrics()
    metrics.dead_letters['bad "json", really=yes'] = 2
    metrics.dead_letters[""] = 1
    lines = parsed(Sources(metrics), instance="edge box,1=a")
    assert {tags["instance"] for _, tags, _, _ in lines} == {"edge box,1=a"}
    assert counters(lines, "dead_letters") == {'bad "json", really=yes': 2, "unknown": 1}


def test_every_figure_is_documented() -> None:
    docs = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    stats = read_stats(
        Sources(
            busy_metrics(),
            ingest=IngestStats(),
            liveness=LivenessTracker({}),
            mqtt_connected=lambda: True,
            started_ns=NOW_NS,
        ),
        NOW_NS,
    )
    names = [scalar.name for scalar in stats.scalars]
    names += [breakdown.name for breakdown in stats.breakdowns]
    names += ["write_latency_seconds", "write_latency_seconds_count", "write_latency_seconds_sum"]
    assert [name for name in names if f"`{name}`" not in docs] == []
    for measurement in (HEALTH_MEASUREMENT, COUNTERS_MEASUREMENT):
        assert f"**`{measurement}`**" in docs


def test_the_module_is_pure() -> None:
    tree = ast.parse((ROOT / "gateway" / "operations" / "figures.py").read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    allowed_gateway = {
        "gateway.stages.lineprotocol",
        "gateway.policies.liveness",
        "gateway.operations.counters",
        "gateway.model",
    }
    stdlib = {"__future__", "math", "collections.abc", "dataclasses", "typing"}
    assert imported <= allowed_gateway | stdlib


@pytest.mark.integration
def test_influxdb_accepts_the_schema_and_derives_rates(influxd: Influxd, influx_db: str) -> None:
    metrics = busy_metrics()
    sources = Sources(metrics, ingest=IngestStats(), liveness=LivenessTracker({}))
    first = health_lines(sources, instance="edge-01", now_ns=NOW_NS)
    metrics.messages_received += 50
    metrics.dead_letters["invalid_json"] += 10
    second = health_lines(sources, instance="edge-01", now_ns=NOW_NS + 10 * NS_PER_S)
    influxd.write(influx_db, "\n".join(first + second))

    rate = influxd.query(
        f'SELECT non_negative_derivative("messages_received", 1s) FROM "{HEALTH_MEASUREMENT}"',
        influx_db,
    )
    assert rows(rate)[0]["non_negative_derivative"] == 5.0
    by_reason = influxd.query(
        f'SELECT non_negative_derivative("value", 1s) FROM "{COUNTERS_MEASUREMENT}" '
        'WHERE "kind" = \'dead_letters\' GROUP BY "reason"',
        influx_db,
    )
    rates = {row["reason"]: row["non_negative_derivative"] for row in rows(by_reason)}
    assert rates == {"invalid_json": 1.0, "unknown_topic": 0.0}


def test_a_new_split_counter_starts_from_a_zero_one_report_earlier() -> None:
    metrics = Metrics()
    metrics.dead_letters["invalid_json"] = 3
    origins = CounterOrigins(started_ns=NOW_NS - 10 * NS_PER_S)

    def zeros(now_ns: int) -> list[ParsedLine]:
        stats = read_stats(Sources(metrics), now_ns)
        return [parse_line(line) for line in origins.lines(stats, instance="e", now_ns=now_ns)]

    [(_, tags, fields, time_ns)] = zeros(NOW_NS)
    assert (tags["reason"], fields["value"], time_ns) == ("invalid_json", 0, NOW_NS - 10 * NS_PER_S)
    assert zeros(NOW_NS + 10 * NS_PER_S) == []  # known now
    metrics.dead_letters["unknown_topic"] = 1
    [(_, tags, _, time_ns)] = zeros(NOW_NS + 20 * NS_PER_S)
    assert (tags["reason"], time_ns) == ("unknown_topic", NOW_NS + 10 * NS_PER_S)


@pytest.mark.integration
def test_the_first_dead_letter_of_a_reason_shows_in_the_rate(
    influxd: Influxd, influx_db: str
) -> None:
    metrics = Metrics()
    sources = Sources(metrics)
    origins = CounterOrigins(started_ns=NOW_NS)
    lines = []
    for step, count in enumerate((0, 2, 2), start=1):
        if count:
            metrics.dead_letters["invalid_json"] = count
        now_ns = NOW_NS + step * 10 * NS_PER_S
        stats = read_stats(sources, now_ns)
        lines += origins.lines(stats, instance="edge-01", now_ns=now_ns)
        lines += stats_lines(stats, instance="edge-01", now_ns=now_ns)
    influxd.write(influx_db, "\n".join(lines))
    increases = influxd.query(
        f'SELECT non_negative_difference("value") FROM "{COUNTERS_MEASUREMENT}" '
        "WHERE \"kind\" = 'dead_letters'",
        influx_db,
    )
    assert [row["non_negative_difference"] for row in rows(increases)] == [2, 0]
