"""Grafana dashboards and alert rules (dashboards/, dashboards/).

Grafana itself is not needed: the committed files are compared with the generator, every panel
is checked for what an operator needs (unit, Vietnamese title, English description), every
identifier a query names is checked against docs/canonical-schema.md and the self-metrics, and
the integration test runs every query the way Grafana would, against a real InfluxDB filled by
the real gateway from the simulators.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from dashboards import build
from dashboards.influxql import DATASOURCE_UID
from dashboards.influxread import InfluxReader
from dashboards.panels import FOLDER
from dashboards.queries import Query, alert_queries, dashboard_queries, panels
from dashboards.queries import substitute as substitute_like_grafana
from gateway.cli import app
from gateway.operations.counters import Metrics
from gateway.operations.figures import COUNTERS_MEASUREMENT, HEALTH_MEASUREMENT, Sources, read_stats
from gateway.operations.figures import stats_lines as self_metrics_lines
from gateway.policies.liveness import LivenessTracker
from tests.harness import (
    GatewayProcess,
    gateway_config,
    load_truth,
    run_simulators,
    truth_counts,
    wait_for_counts,
)
from tests.servers import Influxd, Mosquitto

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
PROVISIONING = DASHBOARDS / "provisioning"
VIETNAMESE = set(
    "àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ"
    "ÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬÈÉẺẼẸÊỀẾỂỄỆÌÍỈĨỊÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢÙÚỦŨỤƯỪỨỬỮỰỲÝỶỸỴĐ"
)
UNIT_SYMBOLS = set("°µ³")
DOMAIN_DASHBOARDS = {"mh-lighting", "mh-water", "mh-traffic", "mh-connectivity", "mh-environment"}


def rendered_dashboards() -> list[dict[str, Any]]:
    return [
        json.loads(text) for path, text in build.render().items() if path.parent == build.JSON_DIR
    ]


def rendered_rules() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(build.render()[build.ALERT_RULES])
    return document


def queries(time_filter: str = "time > now() - 7d") -> list[Query]:
    """Every panel target, template variable and alert rule query, as Grafana would run it."""
    found = []
    for dashboard in rendered_dashboards():
        found.extend(dashboard_queries(dashboard, time_filter))
    return found + alert_queries(rendered_rules())


def substitute(query: Query) -> str:
    """Grafana's macros and variables: a time range covering the data, 1 m buckets, and the
    dashboards' default "All" (allValue `.*`) for district, device and instance."""
    return substitute_like_grafana(query, interval="1m")


# ---- the generated files -------------------------------------------------------------------


def test_committed_files_are_what_the_generator_builds() -> None:
    rendered = build.render()
    for relative, text in rendered.items():
        path = DASHBOARDS / relative
        assert path.is_file(), f"{path} missing: run `gateway dashboards build`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} differs from dashboards/: run `gateway dashboards build`"
        )
    committed = {p.relative_to(DASHBOARDS) for p in (DASHBOARDS / build.JSON_DIR).glob("*.json")}
    assert committed == {p for p in rendered if p.parent == build.JSON_DIR}, "stale dashboard"


def test_cli_builds_the_same_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboards", "build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for relative, text in build.render().items():
        assert (tmp_path / relative).read_text(encoding="utf-8") == text
        assert f"wrote {tmp_path / relative}" in result.output


def test_every_panel_has_a_unit_a_vietnamese_title_and_an_english_description() -> None:
    for dashboard in rendered_dashboards():
        assert VIETNAMESE & set(dashboard["title"]), dashboard["title"]
        for panel in dashboard["panels"]:
            where = f"{dashboard['uid']}: {panel['title']}"
            assert VIETNAMESE & set(panel["title"]), f"{where}: title not in Vietnamese"
            if panel["type"] == "row":
                continue
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
            description = panel.get("description", "")
            assert len(description.split()) >= 5, f"{where}: no description"
            assert not VIETNAMESE & set(description), f"{where}: description not in English"
            unusual = {char for char in description if not char.isascii()} - UNIT_SYMBOLS
            assert not unusual, f"{where}: {unusual} in the English description"


def test_every_panel_fits_the_24_column_grid_without_overlapping() -> None:
    for dashboard in rendered_dashboards():
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            where = f"{dashboard['uid']}: {panel['title']}"
            assert grid["x"] + grid["w"] <= 24, f"{where}: runs off the grid {grid}"
            cells = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & taken, f"{where}: overlaps another panel"
            taken |= cells


def test_every_query_uses_the_provisioned_influxql_datasource() -> None:
    (datasource,) = yaml.safe_load(
        (PROVISIONING / "datasources" / "influxdb.yaml").read_text(encoding="utf-8")
    )["datasources"]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["jsonData"]["version"] == "InfluxQL"
    for dashboard in rendered_dashboards():
        for variable in dashboard["templating"]["list"]:
            assert variable["datasource"]["uid"] == DATASOURCE_UID
            assert variable["query"].startswith("SHOW TAG VALUES")
        for panel in panels(dashboard):
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert panel["targets"], f"{panel['title']}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID
                assert target["rawQuery"] is True
                assert "$timeFilter" in target["query"], f"{panel['title']}: no time filter"


def test_the_influxdb_2_and_3_data_sources_can_replace_the_provisioned_one() -> None:
    """dashboards/examples/: same uid and InfluxQL, a token header from the environment."""
    (provisioned,) = yaml.safe_load(
        (PROVISIONING / "datasources" / "influxdb.yaml").read_text(encoding="utf-8")
    )["datasources"]
    for name in ("datasource-influxdb2.yaml", "datasource-influxdb3.yaml"):
        text = (DASHBOARDS / "examples" / name).read_text(encoding="utf-8")
        (example,) = yaml.safe_load(text)["datasources"]
        for key in ("uid", "name", "type", "access"):
            assert example[key] == provisioned[key], f"{name}: {key}"
        assert example["jsonData"]["version"] == "InfluxQL", name
        assert example["jsonData"]["dbName"] == provisioned["jsonData"]["dbName"], name
        assert example["jsonData"]["httpHeaderName1"] == "Authorization", name
        assert example["secureJsonData"]["httpHeaderValue1"].endswith(" $INFLUX_TOKEN"), name
        assert "NOT TESTED" in text, name


def test_domain_dashboards_filter_by_district_and_device() -> None:
    for dashboard in rendered_dashboards():
        names = {variable["name"] for variable in dashboard["templating"]["list"]}
        if dashboard["uid"] in DOMAIN_DASHBOARDS:
            assert names == {"district", "device"}, dashboard["uid"]
            for panel in panels(dashboard):
                for target in panel["targets"]:
                    assert "/^$district$/" in target["query"], panel["title"]
                    assert "/^$device$/" in target["query"], panel["title"]
    uids = {dashboard["uid"] for dashboard in rendered_dashboards()}
    assert uids == DOMAIN_DASHBOARDS | {"mh-overview", "mh-gateway-health"}


def canonical_schema() -> dict[str, set[str]]:
    """measurement -> its tag and field names, from the tables of docs/canonical-schema.md."""
    text = (ROOT / "docs" / "canonical-schema.md").read_text(encoding="utf-8")
    schema: dict[str, set[str]] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            names = set(re.findall(r"`([a-z_0-9]+)`", cells[1] + cells[2]))
            schema[cells[0].strip("`")] = names
    return schema


@dataclass(frozen=True, slots=True)
class _Ingest:
    connects: int = 0
    reconnects: int = 0
    stale_acks: int = 0
    acks_refused: int = 0


def self_metrics_schema() -> dict[str, set[str]]:
    stats = read_stats(
        Sources(Metrics(), _Ingest(), LivenessTracker({}), lambda: True, 0), now_ns=1
    )
    health = {scalar.name for scalar in stats.scalars} | {
        "write_latency_seconds_count",
        "write_latency_seconds_sum",
        "instance",
    }
    labels = {breakdown.label for breakdown in stats.breakdowns}
    return {
        HEALTH_MEASUREMENT: health,
        COUNTERS_MEASUREMENT: {"value", "instance", "kind", "le", *labels},
    }


def measurements_named(influxql: str) -> set[str]:
    """The measurements after every FROM (subqueries' FROM are parentheses, not names)."""
    lists = re.findall(r'FROM ((?:"\w+"(?:, )?)+)', influxql)
    return {name for names in lists for name in re.findall(r'"(\w+)"', names)}


def test_every_measurement_a_shipped_profile_writes_is_on_a_dashboard() -> None:
    """A device kind whose readings no panel shows is data the town pays for and never sees."""
    written = {
        yaml.safe_load(path.read_text(encoding="utf-8"))["output"]["measurement"]
        for path in (ROOT / "device_profiles").rglob("*.yaml")
    }
    shown = {
        name
        for dashboard in rendered_dashboards()
        for query in dashboard_queries(dashboard, "")
        if query.ref_id != "var"
        for name in measurements_named(query.influxql)
    }
    assert written, "no shipped profiles found"
    assert not written - shown, f"measurements on no dashboard: {sorted(written - shown)}"


def test_queries_name_only_measurements_tags_and_fields_that_exist() -> None:
    schema = canonical_schema() | self_metrics_schema()
    assert {"streetlight", "water_quality", "broadband_speed", "traffic_signal"} <= set(schema)
    for query in queries():
        named = measurements_named(query.influxql)
        assert named, f"{query.panel}: no measurement"
        assert named <= set(schema), f"{query.panel}: unknown measurement {named - set(schema)}"
        aliases = set(re.findall(r'AS "([^"]+)"', query.influxql))
        known = set().union(*(schema[m] for m in named)) | aliases | named
        identifiers = set(re.findall(r'"([^"]+)"', query.influxql))
        unknown = identifiers - known
        assert not unknown, f"{query.dashboard}/{query.panel}: not in the schema: {unknown}"


def test_alert_rules_are_grafana_file_provisioning() -> None:
    document = rendered_rules()
    assert document["apiVersion"] == 1
    provider = yaml.safe_load(
        (PROVISIONING / "dashboards" / "provider.yaml").read_text(encoding="utf-8")
    )
    assert {group["folder"] for group in document["groups"]} == {FOLDER}
    assert provider["providers"][0]["folder"] == FOLDER
    uids = [rule["uid"] for group in document["groups"] for rule in group["rules"]]
    assert len(uids) == len(set(uids))
    assert {
        "mh-lamp-fault-rate",
        "mh-water-pressure-low",
        "mh-water-ph",
        "mh-water-turbidity",
        "mh-water-chlorine",
        "mh-gateway-spool-growing",
        "mh-gateway-dead-letters",
        "mh-gateway-not-writing",
    } == set(uids)
    for group in document["groups"]:
        assert re.fullmatch(r"\d+[smh]", group["interval"])
        for rule in group["rules"]:
            ref_ids = [data["refId"] for data in rule["data"]]
            assert rule["condition"] in ref_ids
            assert {"domain", "severity"} <= set(rule["labels"])
            assert rule["annotations"]["summary"]
            assert not {"folderUID", "orgID", "ruleGroup"} & set(rule)


def test_the_pipeline_never_imports_the_dashboards() -> None:
    probe = (
        "import sys, gateway.pipeline, gateway.cli; "
        "print([m for m in sys.modules if m.startswith(('dashboards', 'grafana_'))])"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=ROOT
    )
    assert answer.stdout.strip() == "[]"


# ---- every query against real data ---------------------------------------------------------

INSTANCE = "dashboards-test"
# Every device kind; with this seed the four speed probes test on 4G, 5G and FTTH.
SIMULATED = [
    "--lighting", "3", "--water", "2", "--traffic", "2", "--tanks", "2",
    "--quality-probes", "2", "--radars", "1", "--signals", "2", "--speed-probes", "4",
    "--site-monitors", "2", "--lorawan-lights", "2", "--anpr-cameras", "1",
    "--air-stations", "2", "--water-meters", "2", "--river-probes", "2",
    "--parking-sensors", "4", "--lorawan-meters", "2",
    "--messages", "3000", "--rate", "0",
    "--seed", "20261124",
]  # fmt: skip
# The gateway's config for the run: self-metrics every second, liveness for the 1-min devices.
MONITORING: dict[str, str | float] = {"instance": INSTANCE, "interval_s": 1.0}
LIVENESS = """
[monitoring.expected_interval_s]
"mh-streetlight-json" = 60
"mh-traffic-loop-json" = 60
"mh-water-flow-json" = 300
"""


def write_earlier_run(influxd: Influxd, database: str, now_ns: int) -> None:
    """Two self-metrics samples of an earlier run of this gateway, 150 s and 90 s ago.

    The rate panels differentiate counters per 1-minute bucket, so they need samples in two
    different minutes; the gateway of this test runs for seconds. The samples are what
    gateway/operations/figures.py writes, from real Metrics, and the restart between them and this
    run is what non_negative_derivative exists for."""
    metrics = Metrics(messages_received=120, messages_acked=120, batches_written=4)
    metrics.messages_by_profile.update({"mh-streetlight-json": 100, "mh-water-flow-json": 20})
    metrics.points_produced.update({"lighting": 100, "water": 20})
    metrics.points_written.update({"lighting": 100, "water": 20})
    metrics.dead_letters.update({"invalid_json": 1})
    metrics.fields_dropped.update({"wrong_type": 1})
    for seconds_ago in (150, 90):
        at_ns = now_ns - seconds_ago * 1_000_000_000
        metrics.messages_received += 60
        metrics.points_written["lighting"] += 60
        metrics.observe_write_latency(0.004)
        lines = self_metrics_lines(
            read_stats(Sources(metrics), at_ns), instance=INSTANCE, now_ns=at_ns
        )
        influxd.write(database, "\n".join(lines))


def publish_bad_messages(broker: Mosquitto) -> None:
    """One message the gateway must dead-letter and one reading with a field it drops."""
    now_ms = time.time_ns() // 1_000_000
    reading = {
        "ts": now_ms,
        "lamp": {"state": "ON", "dim": 100, "fault": 0},
        "elec": {"p_w": "n/a"},
    }
    for topic, payload in [
        ("city/lighting/di-su/sl-9998/telemetry", "{not json"),
        ("city/lighting/di-su/sl-9999/telemetry", json.dumps(reading)),
    ]:
        subprocess.run(
            ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1",
             "-t", topic, "-m", payload],
            check=True,
        )  # fmt: skip


def wait_for_self_metrics(influxd: Influxd, database: str, messages: int) -> None:
    """Until this run's gateway wrote self-metrics saying it received `messages` messages and
    kept the invalid JSON as a dead letter (newer than the earlier run's samples)."""
    recent = f"\"instance\" = '{INSTANCE}' AND time > now() - 30s"
    received = f'SELECT last("messages_received") FROM "{HEALTH_MEASUREMENT}" WHERE {recent}'
    dead_letters = (
        f'SELECT last("value") FROM "{COUNTERS_MEASUREMENT}" WHERE {recent} '
        "AND \"kind\" = 'dead_letters' AND \"reason\" = 'invalid_json'"
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _last(influxd, database, received) >= messages and _last(
            influxd, database, dead_letters
        ):
            return
        time.sleep(0.25)
    raise AssertionError(f"the gateway never reported {messages} messages and a dead letter")


def _last(influxd: Influxd, database: str, influxql: str) -> int:
    series = influxd.query(influxql, db=database)["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


def run_query(influxd: Influxd, database: str, influxql: str) -> tuple[int, int]:
    """(rows, rows with at least one non-null value); raises on any InfluxDB error."""
    answer = influxd.query(influxql, db=database)
    rows = non_null = 0
    for result in answer["results"]:
        for series in result.get("series", []):
            for values in series["values"]:
                rows += 1
                non_null += any(value is not None for value in values[1:])
    return rows, non_null


@dataclass(frozen=True, slots=True)
class FilledDatabase:
    """A database the real gateway filled from the simulators (every device kind), with a
    dead letter, a dropped field and an earlier run's self-metrics."""

    influxd: Influxd
    name: str


@pytest.fixture(scope="module")
def filled(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilledDatabase]:
    """Filled once for the module: the query test and the pictures read the same data."""
    workdir = tmp_path_factory.mktemp("dashboards")
    database = f"dashboards_{uuid.uuid4().hex[:8]}"
    influxd.create_database(database)
    write_earlier_run(influxd, database, time.time_ns())
    with Mosquitto(tmp_path_factory.mktemp("dashboards_mosquitto")) as broker:
        config = gateway_config(
            workdir / "gateway.toml",
            broker,
            influxd,
            database,
            overrides={"monitoring": MONITORING},
            extra=LIVENESS,
        )
        truth_file = workdir / "truth.jsonl"
        with GatewayProcess(config) as gateway:
            # No --start: each device starts early enough for its last report to be from now,
            # so slow reporters (15-min speed probes) do not run into the future, which the
            # gateway would re-stamp (time.max_future_s), and every "last N minutes" window
            # has data.
            summary = workdir / "summary.json"
            run_simulators(broker, truth_file, *SIMULATED, "--summary-json", str(summary))
            publish_bad_messages(broker)
            truth = load_truth(truth_file)
            expected = truth_counts(truth) + Counter({"streetlight": 1})  # the dropped field
            stored = wait_for_counts(influxd, database, expected)
            assert stored == expected, f"stored {stored}, sent {expected}"
            # A plate camera sends a message per vehicle and stops at now: fewer than asked.
            sent = json.loads(summary.read_text(encoding="utf-8"))["messages"]
            wait_for_self_metrics(influxd, database, messages=sent + 2)
            assert "dead letter (invalid_json)" in gateway.log()
            yield FilledDatabase(influxd, database)
    influxd.drop_database(database)


@pytest.mark.integration
def test_every_panel_and_alert_query_returns_data(
    filled: FilledDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    table = []
    failures = []
    for query in queries():
        rows, non_null = run_query(filled.influxd, filled.name, substitute(query))
        table.append((query.dashboard, query.panel, query.ref_id, rows, non_null))
        if non_null == 0:
            failures.append(f"{query.dashboard} / {query.panel} / {query.ref_id}")
    with capsys.disabled():
        print_table(table)
    assert not failures, f"queries without a non-null value: {failures}"
    assert len(table) > 60


@pytest.mark.integration
def test_pictures_draw_every_panel_of_every_dashboard(
    filled: FilledDatabase, tmp_path: Path
) -> None:
    """`gateway dashboards render`: one PNG per dashboard, no panel without data, each
    dashboard on its own default time range, as the README's pictures are drawn."""
    from dashboards import render  # noqa: PLC0415  # matplotlib: the pictures extra

    reader = InfluxReader(filled.influxd.url, filled.name)
    dashboards = rendered_dashboards()
    result = render.render_all(dashboards, reader, tmp_path / "img")
    assert [r.path.name for r in result] == [render.picture_name(d) for d in dashboards]
    empty = {r.path.name: r.empty_panels for r in result if r.empty_panels}
    assert not empty, f"panels drawn without data: {empty}"
    for rendered in result:
        with Image.open(rendered.path) as image:
            assert image.format == "PNG"
            assert image.width == render.WIDTH_IN * render.DPI
            # Drawn, not blank: a white page with a title would have a handful of colours.
            assert len(image.getcolors(maxcolors=4096) or range(4097)) > 40
        assert rendered.path.stat().st_size < 300 * 1024


def print_table(table: list[tuple[str, str, str, int, int]]) -> None:
    width = max(len(panel) for _, panel, *_ in table)
    print(f"\n{'dashboard':<20} {'panel':<{width}} {'ref':<4} {'rows':>6} {'non-null':>8}")
    for dashboard, panel, ref_id, rows, non_null in table:
        print(f"{dashboard:<20} {panel:<{width}} {ref_id:<4} {rows:>6} {non_null:>8}")


def test_the_compose_demo_simulates_every_device_kind() -> None:
    """Panels of a kind nobody simulates would show "No data" in `docker compose --profile
    demo`, the first thing a visitor sees."""
    from simulators.devices import KINDS  # noqa: PLC0415  # only this test needs the simulators

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    command = " ".join(compose["services"]["simulators"]["command"])
    counts = dict(re.findall(r"--([a-z-]+) (\d+)", command))
    missing = [kind for kind in KINDS if int(counts.get(kind, "0")) == 0]
    assert not missing, f"docker-compose.yml's demo simulates no {missing}"


@pytest.mark.integration
def test_lamp_hours_per_day_are_the_integral_over_the_local_day(
    influxd: Influxd, influx_db: str
) -> None:
    """A lamp that reported only from 18:00 to 22:00 local time was lit 4 hours that day,
    not `mean(lamp_on) * 24` = 24 hours; and the day is the town's (UTC+7) day."""
    day_start_s = 1_795_971_600  # 2026-12-01 00:00 in Asia/Ho_Chi_Minh (17:00 UTC the day before)
    lines = [
        f"streetlight,district=di-su,device_id=sl-0001 lamp_on=1i {(day_start_s + 18 * 3600 + 60 * m) * 10**9}"  # noqa: E501  # one line protocol line
        for m in range(4 * 60 + 1)
    ]
    influxd.write(influx_db, "\n".join(lines))
    (dashboard,) = [d for d in rendered_dashboards() if d["uid"] == "mh-lighting"]
    (query,) = [
        q for q in dashboard_queries(dashboard, "") if q.panel == "Số giờ đèn sáng mỗi ngày"
    ]
    window = f"time >= {day_start_s - 86400}s AND time < {day_start_s + 2 * 86400}s"
    influxql = substitute(Query(query.dashboard, query.panel, query.ref_id, query.influxql, window))
    series = influxd.query(influxql, db=influx_db)["results"][0]["series"]
    days = {row[0] // 10**9: row[1] for row in series[0]["values"]}
    assert days == {day_start_s: pytest.approx(4.0)}


@pytest.mark.integration
def test_meter_alarm_counts_are_zero_on_a_range_without_alarms(
    influxd: Influxd, influx_db: str
) -> None:
    """A TTS meter's index frames carry no alarm field: an hour of only those is three zeros,
    not no row. A ChirpStack meter's frames carry zeros; an alarm frame counts its meter."""
    start_s = 1_795_971_600
    meters = [
        f"water_meter,district=di-su,device_id=wm-0001 total_m3=12.5,rssi_dbm=-97i {start_s}",
        f"water_meter,district=di-su,device_id=wm-0001 total_m3=12.6,rssi_dbm=-96i "
        f"{start_s + 1800}",
        f"water_meter,district=di-su,device_id=wm-0002 total_m3=3.2,rssi_dbm=-88i,"
        f"leak_alarm=0i,backflow_alarm=0i,tamper_alarm=0i {start_s + 4200}",
        f"water_meter,district=di-su,device_id=wm-0001 rssi_dbm=-95i,"
        f"leak_alarm=0i,backflow_alarm=1i,tamper_alarm=0i {start_s + 7200}",
    ]
    influxd.write(influx_db, "\n".join(meters), precision="s")
    (dashboard,) = [d for d in rendered_dashboards() if d["uid"] == "mh-water"]
    (query,) = [q for q in dashboard_queries(dashboard, "") if q.panel == "Đồng hồ hộ dân báo động"]

    def counts(end_s: int) -> list[Any]:
        window = f"time >= {start_s}s AND time < {end_s}s"
        influxql = substitute(
            Query(query.dashboard, query.panel, query.ref_id, query.influxql, window)
        )
        (series,) = influxd.query(influxql, db=influx_db)["results"][0]["series"]
        (row,) = series["values"]
        return list(row[1:])

    assert counts(start_s + 3600) == [0, 0, 0]
    assert counts(start_s + 7200) == [0, 0, 0]
    assert counts(start_s + 3 * 3600) == [0, 1, 0]


@pytest.mark.integration
def test_overview_readings_per_domain_add_up_to_the_total(filled: FilledDatabase) -> None:
    (overview,) = [d for d in rendered_dashboards() if d["uid"] == "mh-overview"]
    found = {
        q.ref_id: q
        for q in dashboard_queries(overview, "time > now() - 7d")
        if q.panel == "Bản ghi đã lưu trong khoảng thời gian"
    }
    answers = {
        ref: filled.influxd.query(substitute(q), db=filled.name)["results"][0]["series"]
        for ref, q in found.items()
    }
    per_domain = {s["tags"]["domain"]: s["values"][0][1] for s in answers["A"]}
    (total,) = answers["B"]
    assert "gateway" not in per_domain
    assert per_domain
    assert sum(per_domain.values()) == total["values"][0][1] > 0
