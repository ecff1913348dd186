"""The alert rules, evaluated the way Grafana does over two simulated days with incidents.

The town: `python -m simulators backfill --days 2` through the real gateway into a real
InfluxDB, then scripted incidents published through the same gateway (a district's pressure
drops, three lamps of one district go dark, one lamp of another), and two days of the gateway's
own figures written from the real `gateway.operations.figures` code, counting what the truth
file says was written (with a stretch where no device data is written, one where the spool
grows and one with dead letters). Every rule of dashboards/alerting/mh-alert-rules.yaml is then
evaluated every 5 minutes by dashboards/evaluation.py: each must fire on its incident, stay
quiet on the healthy days, and never end in an evaluation error.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import build, evaluation, limits
from dashboards.influxread import InfluxReader
from gateway.operations.counters import Metrics
from gateway.operations.figures import CounterOrigins, Sources, read_stats, stats_lines
from tests.harness import GatewayProcess, gateway_config, load_truth, truth_counts, wait_for_counts
from tests.servers import Influxd, Mosquitto

ROOT = Path(__file__).resolve().parent.parent
MS_PER_MIN = 60_000
MS_PER_H = 3_600_000
NS_PER_MS = 1_000_000
STEP_MS = 5 * MS_PER_MIN  # evaluated every 5 minutes
DAYS = 2
# Twelve street lights so that some district has at least three; every other kind too.
BACKFILL = [
    "--lighting", "12", "--pressure-loggers", "3", "--water", "2", "--quality-probes", "3",
    "--traffic", "1", "--radars", "1", "--signals", "1", "--tanks", "2", "--speed-probes", "4",
    "--site-monitors", "2", "--cabinets", "2", "--lorawan-lights", "2", "--anpr-cameras", "1",
    "--seed", "20261203", "--device-rate", "0",
]  # fmt: skip
# A backfill is a backlog: the per-device rate limit would turn the plate camera's two days of
# vehicles into dead letters (the limit has its own tests).
UNLIMITED: dict[str, dict[str, str | float | bool]] = {
    "monitoring": {"enabled": False},
    "limits": {"device_rate_per_s": 0},
}
GATEWAY_INSTANCE = "town-gateway"


@dataclass(frozen=True, slots=True)
class Incident:
    rule: str
    start_ms: int
    end_ms: int
    where: str


@dataclass(frozen=True, slots=True)
class Town:
    """Two backfilled days in `database`, ending at `end_ms`, and what was scripted in them."""

    influxd: Influxd
    database: str
    end_ms: int
    truth: list[dict[str, Any]]
    incidents: list[Incident]
    quiet_scenarios: list[Incident]  # scripted, but below what must alert


def domains_by_measurement() -> dict[str, str]:
    """The shipped profiles' measurement -> domain (device_profiles/<domain>/*.yaml)."""
    found = {}
    for path in (ROOT / "device_profiles").glob("*/*.yaml"):
        profile = yaml.safe_load(path.read_text(encoding="utf-8"))
        found[profile["output"]["measurement"]] = profile["domain"]
    return found


def backfill(influxd: Influxd, workdir: Path, database: str) -> tuple[list[dict[str, Any]], int]:
    """Two days of every device kind through the real gateway; (truth, end of data in ms)."""
    truth_file = workdir / "truth.jsonl"
    with Mosquitto(workdir / "broker") as broker:
        config = gateway_config(
            workdir / "gateway.toml", broker, influxd, database, overrides=UNLIMITED,
        )  # fmt: skip
        with GatewayProcess(config):
            started_ms = time.time_ns() // NS_PER_MS
            subprocess.run(
                [sys.executable, "-m", "simulators", "backfill", "--days", str(DAYS),
                 "--broker", broker.address, "--truth", str(truth_file), "--quiet", *BACKFILL],
                check=True, cwd=ROOT, timeout=600,
            )  # fmt: skip
            truth = load_truth(truth_file)
            expected = truth_counts(truth)
            stored = wait_for_counts(influxd, database, expected, timeout_s=300)
            assert stored == expected, f"stored {stored}, sent {expected}"
    return truth, started_ms - started_ms % STEP_MS


def publish_lines(broker: Mosquitto, topic: str, payloads: list[str]) -> None:
    """One MQTT message per payload (mosquitto_pub -l: a line of stdin is a message)."""
    subprocess.run(
        ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", topic, "-l"],
        input="\n".join(payloads) + "\n", text=True, check=True, timeout=60,
    )  # fmt: skip


def readings(truth: list[dict[str, Any]], measurement: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in truth:
        if row["measurement"] == measurement:
            found[row["device_id"]].append(row)
    return found


def dark_lamp_payload(row: dict[str, Any]) -> str:
    """A streetlight report (simulators/devices/lighting.py's format) with the lamp failed."""
    fields = row["fields"]
    return json.dumps(
        {
            "ts": row["time_ns"] // NS_PER_MS,
            "lamp": {"state": "OFF", "dim": fields["dim_pct"], "fault": 3},
            "elec": {"p_w": 0.5, "v": fields["voltage_v"], "i_a": 0.002,
                     "e_kwh": fields["energy_kwh"]},
        }
    )  # fmt: skip


def low_pressure_payload(row: dict[str, Any], bar: float) -> str:
    """A pressure logger's CSV line (epoch s, bar, °C) with the pressure dropped."""
    return f"{row['time_ns'] // 1_000_000_000},{bar:.2f},{row['fields']['temperature_c']:.1f}"


def low_chlorine_payload(row: dict[str, Any], mgl: float) -> str:
    """A quality probe's JSON (simulators/devices/water_quality.py: local time without an
    offset, conductivity in mS/cm) with the free chlorine dropped."""
    fields = row["fields"]
    local = dt.datetime.fromtimestamp(row["time_ns"] / 1e9, dt.UTC) + dt.timedelta(hours=7)
    return json.dumps(
        {
            "ts": local.strftime("%Y-%m-%d %H:%M:%S"),
            "ph": fields["ph"],
            "turb_ntu": fields["turbidity_ntu"],
            "cl_mgl": mgl,
            "cond_mscm": fields["conductivity_uscm"] / 1000,
            "temp_c": fields["temperature_c"],
            "wiper": "idle",
        }
    )


def in_window(rows: list[dict[str, Any]], start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    return [r for r in rows if start_ms * NS_PER_MS <= r["time_ns"] < end_ms * NS_PER_MS]


def script_device_incidents(
    influxd: Influxd, workdir: Path, database: str, truth: list[dict[str, Any]], end_ms: int
) -> tuple[list[Incident], list[Incident]]:
    """Republish some reports with the incident in them, at their own times, through the
    gateway: InfluxDB keeps the last write of a point, so the incident replaces the healthy
    reading instead of sitting next to it."""
    # The JSON controllers (sl-*); LoRaWAN lights write the same measurement in another format.
    lamps = {d: rows for d, rows in readings(truth, "streetlight").items() if d.startswith("sl-")}
    by_district: dict[str, list[str]] = defaultdict(list)
    for device_id, rows in sorted(lamps.items()):
        by_district[rows[0]["tags"]["district"]].append(device_id)
    busiest = max(by_district, key=lambda d: len(by_district[d]))
    assert len(by_district[busiest]) >= limits.LAMP_FAULT_MIN_COUNT, by_district
    other = next(d for d in by_district if d != busiest)
    loggers = readings(truth, "water_pressure")
    logger = sorted(loggers)[0]
    logger_district = loggers[logger][0]["tags"]["district"]

    lamps_dark = Incident("mh-lamp-fault-rate", end_ms - 10 * MS_PER_H, end_ms - 9 * MS_PER_H,
                          f"3 lamps in {busiest}")  # fmt: skip
    one_lamp = Incident("mh-lamp-fault-rate", end_ms - 30 * MS_PER_H, end_ms - 29 * MS_PER_H,
                        f"1 lamp in {other}")  # fmt: skip
    pressure = Incident("mh-water-pressure-low", end_ms - 20 * MS_PER_H,
                        end_ms - 19 * MS_PER_H, f"{logger} in {logger_district}")  # fmt: skip
    scripted: list[tuple[str, list[str]]] = []
    for incident, devices in (
        (lamps_dark, by_district[busiest][:3]),
        (one_lamp, by_district[other][:1]),
    ):
        for device_id in devices:
            rows = in_window(lamps[device_id], incident.start_ms, incident.end_ms)
            district = rows[0]["tags"]["district"]
            topic = f"city/lighting/{district}/{device_id}/telemetry"
            scripted.append((topic, [dark_lamp_payload(row) for row in rows]))
    rows = in_window(loggers[logger], pressure.start_ms, pressure.end_ms)
    topic = f"city/water/{logger_district}/{logger}/pressure"
    scripted.append((topic, [low_pressure_payload(row, 0.6) for row in rows]))
    probes = readings(truth, "water_quality")
    probe = sorted(probes)[0]
    probe_district = probes[probe][0]["tags"]["district"]
    chlorine = Incident(
        "mh-water-chlorine", end_ms - 15 * MS_PER_H, end_ms - 14 * MS_PER_H, f"{probe} at 0.1 mg/L"
    )
    dosed = in_window(probes[probe], chlorine.start_ms, chlorine.end_ms)
    topic = f"city/water/{probe_district}/{probe}/quality"
    scripted.append((topic, [low_chlorine_payload(row, 0.1) for row in dosed]))

    with Mosquitto(workdir / "incident-broker") as broker:
        config = gateway_config(
            workdir / "incidents.toml", broker, influxd, database,
            client_id="incident-gateway", overrides=UNLIMITED,
        )  # fmt: skip
        with GatewayProcess(config):
            for topic, payloads in scripted:
                publish_lines(broker, topic, payloads)
            dark = sum(len(p) for t, p in scripted if "/lighting/" in t)
            wait_for_value(
                influxd,
                database,
                'SELECT count("fault_code") FROM "streetlight" '
                'WHERE "fault_code" = 3 AND "lamp_on" = 0 AND "power_w" = 0.5',
                dark,
            )
            wait_for_value(
                influxd,
                database,
                'SELECT count("pressure_bar") FROM "water_pressure" WHERE "pressure_bar" = 0.6',
                len(rows),
            )
            wait_for_value(
                influxd,
                database,
                'SELECT count("ph") FROM "water_quality" WHERE "free_chlorine_mgl" = 0.1',
                len(dosed),
            )
    return [lamps_dark, pressure, chlorine], [one_lamp]


def wait_for_value(influxd: Influxd, database: str, influxql: str, expected: int) -> None:
    deadline = time.monotonic() + 60
    value = 0
    while time.monotonic() < deadline:
        series = influxd.query(influxql, db=database)["results"][0].get("series", [])
        value = int(series[0]["values"][0][1]) if series else 0
        if value >= expected:
            return
        time.sleep(0.25)
    raise AssertionError(f"{influxql}: {value}, expected {expected}")


# ---- the gateway's own figures ------------------------------------------------------------


def write_gateway_figures(
    influxd: Influxd, database: str, truth: list[dict[str, Any]], end_ms: int
) -> list[Incident]:
    """A self-metrics sample a minute for the two days, as gateway/operations/figures.py writes
    them, counting the readings the truth file has in each minute. Three stretches are
    scripted: no device data written (the MQTT side went quiet), the spool growing while
    InfluxDB takes only part of the writes, malformed messages kept as dead letters, and the
    gateway down (no figures at all)."""
    domain_of = domains_by_measurement()
    per_minute: dict[int, Counter[str]] = defaultdict(Counter)
    for row in truth:
        per_minute[row["time_ns"] // NS_PER_MS // MS_PER_MIN][domain_of[row["measurement"]]] += 1
    not_writing = Incident("mh-gateway-not-writing", end_ms - 5 * MS_PER_H,
                           end_ms - 4 * MS_PER_H, GATEWAY_INSTANCE)  # fmt: skip
    spooling = Incident("mh-gateway-spool-growing", end_ms - 36 * MS_PER_H,
                        end_ms - 35 * MS_PER_H, GATEWAY_INSTANCE)  # fmt: skip
    dead = Incident("mh-gateway-dead-letters", end_ms - 40 * MS_PER_H,
                    end_ms - 39 * MS_PER_H, GATEWAY_INSTANCE)  # fmt: skip
    # The gateway down for 20 minutes: no figures at all, which the rule reads as No Data.
    down_ms = end_ms - 44 * MS_PER_H
    down = Incident("mh-gateway-not-writing", down_ms, down_ms + 20 * MS_PER_MIN, "gateway down")
    metrics = Metrics()
    lines: list[str] = []
    first_minute = (end_ms - (DAYS * 24 + 2) * MS_PER_H) // MS_PER_MIN
    origins = CounterOrigins(started_ns=first_minute * MS_PER_MIN * NS_PER_MS)
    for minute in range(first_minute, end_ms // MS_PER_MIN + 1):
        at_ms = minute * MS_PER_MIN
        written = per_minute.get(minute, Counter())
        if not not_writing.start_ms <= at_ms < not_writing.end_ms:
            metrics.messages_received += sum(written.values())
            metrics.messages_acked += sum(written.values())
            share = 2 if spooling.start_ms <= at_ms < spooling.end_ms else 1
            for domain, count in written.items():
                metrics.points_written[domain] += count // share
                metrics.spool_points += count - count // share
        elif not metrics.points_written:
            raise AssertionError("the incident must come after some device data")
        if dead.start_ms <= at_ms < dead.end_ms:
            metrics.dead_letters["invalid_json"] += 2
        if down.start_ms <= at_ms < down.end_ms:
            continue  # what it received while down the broker redelivers: counted after
        # As the pipeline's _write_self_metrics does: a zero before each new split counter.
        stats = read_stats(Sources(metrics), at_ms * NS_PER_MS)
        sample = origins.lines(stats, instance=GATEWAY_INSTANCE, now_ns=at_ms * NS_PER_MS)
        sample += stats_lines(stats, instance=GATEWAY_INSTANCE, now_ns=at_ms * NS_PER_MS)
        metrics.points_written["gateway"] += len(sample)
        if at_ms >= spooling.end_ms:
            metrics.spool_points = 0  # replayed once InfluxDB took writes again
        lines += sample
    for start in range(0, len(lines), 20_000):
        influxd.write(database, "\n".join(lines[start : start + 20_000]))
    return [not_writing, spooling, dead, down]


@dataclass(frozen=True, slots=True)
class Backfilled:
    workdir: Path
    database: str
    truth: list[dict[str, Any]]
    end_ms: int
    gateway_incidents: list[Incident]


@contextmanager
def backfilled_town(influxd: Influxd, workdir: Path) -> Iterator[Backfilled]:
    """A fresh database with two backfilled days and the gateway's figures; dropped after."""
    database = f"{workdir.name}_{uuid.uuid4().hex[:8]}"
    influxd.create_database(database)
    try:
        truth, end_ms = backfill(influxd, workdir, database)
        incidents = write_gateway_figures(influxd, database, truth, end_ms)
        yield Backfilled(workdir, database, truth, end_ms, incidents)
    finally:
        influxd.drop_database(database)


@pytest.fixture(scope="module")
def town(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    with backfilled_town(influxd, tmp_path_factory.mktemp("town")) as filled:
        incidents, quiet = script_device_incidents(
            influxd, filled.workdir, filled.database, filled.truth, filled.end_ms
        )
        incidents += filled.gateway_incidents
        yield Town(influxd, filled.database, filled.end_ms, filled.truth, incidents, quiet)


# ---- the rules over the two days ----------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(build.render()[build.ALERT_RULES])
    return evaluation.provisioned_rules(document)


def quality_excursions(truth: list[dict[str, Any]]) -> dict[str, dict[str, list[int]]]:
    """rule uid -> device -> times (ms) of truth readings outside the drinking-water limits."""
    outside: dict[str, tuple[str, Callable[[float], bool]]] = {
        "mh-water-ph": ("ph", lambda v: not limits.PH_MIN <= v <= limits.PH_MAX),
        "mh-water-turbidity": ("turbidity_ntu", lambda v: v > limits.TURBIDITY_MAX_NTU),
        "mh-water-chlorine": (
            "free_chlorine_mgl",
            lambda v: not limits.CHLORINE_MIN_MGL <= v <= limits.CHLORINE_MAX_MGL,
        ),
    }
    found: dict[str, dict[str, list[int]]] = {uid: defaultdict(list) for uid in outside}
    for row in truth:
        if row["measurement"] != "water_quality":
            continue
        for uid, (name, is_outside) in outside.items():
            value = row["fields"].get(name)
            if value is not None and is_outside(value):
                found[uid][row["device_id"]].append(row["time_ns"] // NS_PER_MS)
    return found


@pytest.mark.integration
def test_every_rule_fires_on_its_incident_and_only_there(
    town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    start_ms = town.end_ms - (DAYS * 24 - 1) * MS_PER_H  # the first hour fills the windows
    times = list(range(start_ms, town.end_ms + 1, STEP_MS))
    reader = InfluxReader(town.influxd.url, town.database)
    provisioned = rules()
    histories = evaluation.play(provisioned, reader.series, times)
    excursions = quality_excursions(town.truth)
    with capsys.disabled():
        print_figures(histories, town, excursions)

    for uid, history in histories.items():
        assert history.evaluations == len(times)
        assert not history.errors, f"{uid}: {history.errors[:3]}"
        assert history.nan_conditions == 0, f"{uid}: NaN compared (silently Normal)"
        # Every rule fired somewhere: on a scripted incident, or (pH, turbidity) on the
        # simulated probes' own excursions; where is checked below.
        assert history.firing_evaluations > 0, f"{uid} never fired"
    rule_by_uid = {rule["uid"]: rule for rule in provisioned}
    for incident in town.incidents:
        history = histories[incident.rule]
        late_ms = _reach_ms(rule_by_uid[incident.rule])
        assert history.firing_between(incident.start_ms, incident.end_ms + late_ms), incident
    for uid, history in histories.items():
        allowed = [
            (i.start_ms, i.end_ms + _reach_ms(rule_by_uid[uid]))
            for i in town.incidents
            if i.rule == uid
        ]
        allowed += _excursion_windows(excursions.get(uid, {}), rule_by_uid[uid])
        stray = history.firing_outside(allowed)
        assert not stray, f"{uid} fired on healthy data: {stray[:3]} (of {len(stray)})"


def _reach_ms(rule: dict[str, Any]) -> int:
    """How long after an incident ends its rule may still be firing: the query's window and
    one evaluation step."""
    window_s = max(d["relativeTimeRange"]["from"] for d in rule["data"] if "relativeTimeRange" in d)
    return int(window_s) * 1000 + STEP_MS


def _excursion_windows(by_device: dict[str, list[int]], rule: dict[str, Any]) -> list[Any]:
    return [(at, at + _reach_ms(rule)) for times in by_device.values() for at in times]


def print_figures(
    histories: dict[str, evaluation.History], town: Town, excursions: dict[str, Any]
) -> None:
    print(f"\n{'rule':<26} {'evals':>5} {'firing':>6} {'pending':>7} {'nodata':>6} {'errors':>6}"
          "  incident")  # fmt: skip
    for uid, h in histories.items():
        scripted = [i.where for i in town.incidents if i.rule == uid]
        if uid in excursions:
            outside = sum(len(times) for times in excursions[uid].values())
            scripted.append(f"{outside} truth readings outside the limits")
        note = ", ".join(scripted) or "-"
        print(f"{uid:<26} {h.evaluations:>5} {h.firing_evaluations:>6} {h.pending:>7} "
              f"{h.no_data:>6} {len(h.errors):>6}  {note}")  # fmt: skip


@pytest.mark.integration
def test_one_dark_lamp_in_a_small_district_is_no_alert(town: Town) -> None:
    (scenario,) = town.quiet_scenarios
    lamp_rule = next(rule for rule in rules() if rule["uid"] == scenario.rule)
    reader = InfluxReader(town.influxd.url, town.database)
    times = range(scenario.start_ms + STEP_MS, scenario.end_ms, STEP_MS)
    outcomes = [evaluation.evaluate(lamp_rule, reader.series, at) for at in times]
    # The district's share is far over 5 %, but one lamp is not three.
    shares = [evaluation.evaluate(_share_only(lamp_rule), reader.series, at) for at in times]
    assert any(value for o in shares for value in o.numbers.values()), "the share never rose"
    assert not any(value for o in outcomes for value in o.numbers.values())


def _share_only(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule as it was before the minimum count: share over the limit, nothing else."""
    data = [d for d in rule["data"] if d["refId"] in {"A", "C"}]
    math = {
        "refId": "E",
        "datasourceUid": "__expr__",
        "model": {"type": "math", "expression": f"$C > {limits.LAMP_FAULT_RATE_PCT}"},
    }
    return {**rule, "data": [*data, math], "condition": "E"}


@pytest.mark.integration
def test_the_rules_as_they_were_fail_where_the_issue_said(town: Town) -> None:
    """The evaluator catches what issue 19 found: the pressure rule grouped by district only
    is in Error wherever a district has a flow meter and a pressure logger; the not-writing
    rule on gateway_health's points_written never sees a gateway that writes only its own
    figures."""
    by_uid = {rule["uid"]: rule for rule in rules()}
    reader = InfluxReader(town.influxd.url, town.database)
    flow = {row["tags"]["district"] for row in town.truth if row["measurement"] == "water_flow"}
    logged = {r["tags"]["district"] for r in town.truth if r["measurement"] == "water_pressure"}
    assert flow & logged, "this seed needs a district with both kinds of pressure reading"
    pressure = _with_query(by_uid["mh-water-pressure-low"], '"district", "device_id"', '"district"')
    at = town.end_ms - 12 * MS_PER_H
    outcome = evaluation.evaluate(pressure, reader.series, at)
    assert outcome.error is not None
    assert "cannot uniquely be identified by its labels" in outcome.error

    not_writing = next(
        i
        for i in town.incidents
        if i.rule == "mh-gateway-not-writing" and i.where == GATEWAY_INSTANCE
    )
    old = dict(by_uid["mh-gateway-not-writing"])
    old["data"] = [dict(d) for d in old["data"]]
    old["data"][0] = {
        **old["data"][0],
        "model": {
            **old["data"][0]["model"],
            "query": 'SELECT spread("points_written") FROM "gateway_health" WHERE $timeFilter '
            'GROUP BY "instance"',
        },
    }
    times = range(not_writing.start_ms + STEP_MS, not_writing.end_ms, STEP_MS)
    fixed = evaluation.play([by_uid["mh-gateway-not-writing"]], reader.series, times)
    before = evaluation.play([old], reader.series, times)
    assert fixed["mh-gateway-not-writing"].firing_evaluations > 0
    assert before["mh-gateway-not-writing"].firing_evaluations == 0


def _with_query(rule: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    data = [dict(d) for d in rule["data"]]
    model = dict(data[0]["model"])
    assert old in model["query"]
    model["query"] = model["query"].replace(old, new)
    data[0]["model"] = model
    return {**rule, "data": data}
