"""Run the real gateway and the simulators as processes, and compare InfluxDB with the truth.

Shared by the end-to-end tests (and usable from the demo): the gateway is started exactly as
an operator starts it, `python -m gateway run --config FILE`, so these tests cross the same
process boundaries as production.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Self

from gateway.operations.endpoint import parse_metrics
from tests.servers import Influxd, Mosquitto

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "device_profiles"

# Fields the gateway converts between units; float arithmetic may differ in the last bit from
# the simulator's own conversion, so these compare with a relative tolerance, all else exactly.
CONVERTED_FIELDS = {("water_flow", "flow_m3h"), ("water_flow", "pressure_bar")}


TomlValue = str | int | float | bool | list[str]


def gateway_config(
    path: Path,
    broker: Mosquitto,
    influxd: Influxd,
    database: str,
    *,
    client_id: str = "test-gateway",
    overrides: Mapping[str, Mapping[str, TomlValue]] | None = None,
    extra: str = "",
) -> Path:
    """Write a gateway configuration for private servers; the state goes to `path.parent/state`.

    `overrides` merges keys into sections, e.g. `{"influx": {"url": proxy.url}, "spool":
    {"write_timeout_s": 1.0}}` (a TOML table may appear only once, so settings are merged here
    rather than appended). `extra` is raw TOML appended at the end, for whole new tables.
    """
    sections: dict[str, dict[str, TomlValue]] = {
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": client_id,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 1.0,
        },
        "influx": {"url": influxd.url, "database": database},
        "batch": {"max_points": 2000, "max_age_s": 0.2},
        "profiles": {"dir": str(PROFILES)},
        "spool": {"dir": str(path.parent / "state")},
        "http": {"port": 0},  # a free port: never collide with another gateway on this box
    }
    for section, values in (overrides or {}).items():
        sections.setdefault(section, {}).update(values)
    tables = [
        f"[{name}]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in values.items())
        for name, values in sections.items()
    ]
    path.write_text("\n".join(tables) + extra + "\n", encoding="utf-8")
    return path


def _toml(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | list):
        return json.dumps(value)  # JSON strings and string arrays are valid TOML
    return repr(value)


class GatewayProcess:
    """`python -m gateway run` in the background, its log in a file kept across restarts."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log_path = config.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def state_dir(self) -> Path:
        """The `[spool] dir` of its configuration: spool, dead letters, receipts."""
        settings = tomllib.loads(self.config.read_text(encoding="utf-8"))
        return Path(settings["spool"]["dir"])

    def start(self, wait_subscribed: bool = True) -> Self:
        if self.running:
            raise AssertionError("gateway already running: stop() or kill() it first")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        if wait_subscribed:
            self.wait_for_log("subscribed to", occurrences=self.log().count("subscribed to") + 1)
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, occurrences: int = 1, timeout_s: float = 20.0) -> None:
        if not self.logged_within(text, timeout_s, occurrences):
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"gateway exited ({self.process.returncode}):\n{self.log()}")
            raise AssertionError(f"gateway never logged {text!r} in {timeout_s}s:\n{self.log()}")

    def logged_within(self, text: str, timeout_s: float, occurrences: int = 1) -> bool:
        """Whether the log shows `text` `occurrences` times within timeout_s (False at once if
        the gateway exited without it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.log().count(text) >= occurrences:
                return True
            if time.monotonic() >= deadline or not self.running:
                return False
            time.sleep(0.05)

    def health_url(self) -> str:
        """The running process's health endpoint: its port is chosen free at start and logged."""
        found: list[str] = re.findall(r"health endpoint on (http://\S+)/", self.log())
        if not found or not self.running:
            raise AssertionError(f"no running gateway with a health endpoint:\n{self.log()}")
        return found[-1]  # the log is kept across restarts: the last start's port

    def metric(self, name: str, **labels: str) -> float:
        """`mh_gateway_<name>` from /metrics (counters end in `_total`), summed over the series
        that carry `labels`. Counters start at 0 with each process."""
        url = self.health_url() + "/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310  # http:// from the log
            samples = parse_metrics(answer.read().decode()).get(f"mh_gateway_{name}", [])
        return sum(v for got, v in samples if all(got.get(k) == w for k, w in labels.items()))

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM and wait: the gateway flushes, acknowledges and exits."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"gateway did not stop on SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL and reap: a crash, with no flush, no acknowledgement and no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, *, crash: bool = False, wait_subscribed: bool = True) -> Self:
        """Stop (SIGTERM, or SIGKILL with crash=True) and start again with the same state."""
        if crash:
            self.kill()
        elif self.running and (code := self.stop()) != 0:
            raise AssertionError(f"gateway exited with {code} on SIGTERM:\n{self.log()}")
        return self.start(wait_subscribed=wait_subscribed)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def simulator_command(broker: Mosquitto, truth: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "simulators", "run",
        "--broker", broker.address, "--truth", str(truth), "--quiet", *args,
    ]  # fmt: skip


def run_simulators(broker: Mosquitto, truth: Path, *args: str, timeout_s: float = 120.0) -> None:
    subprocess.run(simulator_command(broker, truth, *args), check=True, cwd=ROOT, timeout=timeout_s)


def start_simulators(broker: Mosquitto, truth: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(simulator_command(broker, truth, *args), cwd=ROOT)


@contextmanager
def simulators_running(
    broker: Mosquitto, truth: Path, *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The simulators publishing in the background while the block runs; killed on the way out
    if they are still running (a test that failed before they finished)."""
    publisher = start_simulators(broker, truth, *args)
    try:
        yield publisher
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()


def load_truth(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def truth_counts(truth: list[dict[str, Any]]) -> Counter[str]:
    """Distinct points per measurement (a redelivered reading is the same point)."""
    keys = {_key(row["measurement"], row["tags"], row["time_ns"]) for row in truth}
    return Counter(key[0] for key in keys)


def stored_counts(influxd: Influxd, database: str, measurements: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for measurement in measurements:
        answer = influxd.query(f'SELECT COUNT(*) FROM "{measurement}"', db=database)
        series = answer["results"][0].get("series", [])
        if series:
            # COUNT(*) gives one column per field; the largest is the number of points.
            counts[measurement] = max(v for v in series[0]["values"][0][1:] if v is not None)
    return counts


def stored_readings(influxd: Influxd, database: str) -> int:
    """Points in every measurement of `database` but the gateway's own (`gateway_*`)."""
    answer = influxd.query("SHOW MEASUREMENTS", db=database)
    names = [row[0] for s in answer["results"][0].get("series", []) for row in s["values"]]
    readings = [name for name in names if not name.startswith("gateway_")]
    return sum(stored_counts(influxd, database, readings).values())


def wait_for_counts(
    influxd: Influxd, database: str, expected: Counter[str], timeout_s: float = 60.0
) -> Counter[str]:
    deadline = time.monotonic() + timeout_s
    stored: Counter[str] = Counter()
    while time.monotonic() < deadline:
        stored = stored_counts(influxd, database, sorted(expected))
        if stored == expected:
            return stored
        time.sleep(0.25)
    return stored


class Delivery(NamedTuple):
    """A run's truth file, and what InfluxDB held once it matched (or the wait gave up)."""

    truth: list[dict[str, Any]]
    expected: Counter[str]  # distinct points per measurement in the truth
    stored: Counter[str]  # points per measurement in InfluxDB


def wait_for_truth(influxd: Influxd, database: str, truth_file: Path) -> Delivery:
    """Load the truth the simulators wrote and wait until InfluxDB holds as many points per
    measurement (see wait_for_counts)."""
    truth = load_truth(truth_file)
    expected = truth_counts(truth)
    return Delivery(truth, expected, wait_for_counts(influxd, database, expected))


def simulate_and_wait(
    broker: Mosquitto, influxd: Influxd, database: str, truth_file: Path, *args: str
) -> Delivery:
    """Run the simulators with `args` to the end, then `wait_for_truth`."""
    run_simulators(broker, truth_file, *args)
    return wait_for_truth(influxd, database, truth_file)


def assert_stored_as_sent(influxd: Influxd, database: str, truth: list[dict[str, Any]]) -> None:
    """InfluxDB holds every reading of the truth once, with its values and field types, and
    no other point in the truth's measurements."""
    missing, extra, differences = compare_with_truth(influxd, database, truth)
    assert (missing, extra, differences[:5]) == (0, 0, [])
    assert field_type_mismatches(influxd, database, truth) == []


def stored_points(
    influxd: Influxd, database: str, measurement: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every point of a measurement, keyed like `_key`, with its fields."""
    answer = influxd.query(f'SELECT * FROM "{measurement}" GROUP BY *', db=database)
    points: dict[tuple[Any, ...], dict[str, Any]] = {}
    for series in answer["results"][0].get("series", []):
        tags = series.get("tags", {})
        columns = series["columns"]
        for values in series["values"]:
            row = dict(zip(columns, values, strict=True))
            time_ns = row.pop("time")
            fields = {name: value for name, value in row.items() if value is not None}
            points[_key(measurement, tags, time_ns)] = fields
    return points


def _key(measurement: str, tags: dict[str, str], time_ns: int) -> tuple[Any, ...]:
    return (measurement, tuple(sorted(tags.items())), time_ns)


@dataclass(frozen=True, slots=True)
class Comparison:
    """InfluxDB against the truth file, point by point."""

    sent: int  # distinct readings in the truth file (a redelivered reading is one point)
    stored: int  # points InfluxDB holds in the truth's measurements
    missing: int  # truth readings InfluxDB does not have: lost
    extra: int  # points InfluxDB has that the truth does not: e.g. one reading stored twice
    differences: list[str]  # readings stored with other field values than sent


def compare(influxd: Influxd, database: str, truth: list[dict[str, Any]]) -> Comparison:
    expected = {_key(r["measurement"], r["tags"], r["time_ns"]): r for r in truth}
    stored: dict[tuple[Any, ...], dict[str, Any]] = {}
    for measurement in sorted({r["measurement"] for r in truth}):
        stored.update(stored_points(influxd, database, measurement))
    missing = [key for key in expected if key not in stored]
    extra = [key for key in stored if key not in expected]
    differences = []
    for key, row in expected.items():
        if key in stored and not _fields_equal(row["measurement"], row["fields"], stored[key]):
            differences.append(f"{key}: truth {row['fields']} stored {stored[key]}")
    return Comparison(len(expected), len(stored), len(missing), len(extra), differences)


def compare_with_truth(
    influxd: Influxd, database: str, truth: list[dict[str, Any]]
) -> tuple[int, int, list[str]]:
    """(missing, extra, differences) between InfluxDB and the truth file."""
    result = compare(influxd, database, truth)
    return result.missing, result.extra, result.differences


@dataclass(frozen=True, slots=True)
class ScenarioReport:
    scenario: str
    comparison: Comparison

    @property
    def lost(self) -> int:
        return self.comparison.missing

    @property
    def doubled(self) -> int:
        return self.comparison.extra

    @property
    def line(self) -> str:
        counts = f"sent={self.comparison.sent} stored={self.comparison.stored}"
        return f"{self.scenario}: {counts} lost={self.lost} doubled={self.doubled}"


def report(
    scenario: str,
    truth: list[dict[str, Any]],
    influxd: Influxd,
    database: str,
    results: Path | None = None,
) -> ScenarioReport:
    """Compare with the truth, print `scenario: sent=N stored=N lost=N doubled=N` and append
    that line to `results` (the `scenario_results` fixture's file, which pytest's terminal
    summary shows whether or not output is captured)."""
    outcome = ScenarioReport(scenario, compare(influxd, database, truth))
    print(outcome.line, flush=True)
    if results is not None:
        with results.open("a", encoding="utf-8") as handle:
            handle.write(outcome.line + "\n")
    return outcome


def _fields_equal(measurement: str, want: dict[str, Any], got: dict[str, Any]) -> bool:
    if set(want) != set(got):
        return False
    for name, value in want.items():
        stored = got[name]
        if (measurement, name) in CONVERTED_FIELDS:
            if not math.isclose(value, stored, rel_tol=1e-12):
                return False
        elif value != stored:  # JSON gives 45 for a stored 45.0: types are checked separately
            return False
    return True


_INFLUX_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string"}


def field_type_mismatches(
    influxd: Influxd, database: str, truth: list[dict[str, Any]]
) -> list[str]:
    """Fields whose InfluxDB type differs from the type of the truth's value."""
    wanted: dict[tuple[str, str], str] = {}
    for row in truth:
        for name, value in row["fields"].items():
            wanted[(row["measurement"], name)] = _INFLUX_TYPES[type(value)]
    stored: dict[tuple[str, str], str] = {}
    for measurement in sorted({m for m, _ in wanted}):
        answer = influxd.query(f'SHOW FIELD KEYS FROM "{measurement}"', db=database)
        for series in answer["results"][0].get("series", []):
            for name, kind in series["values"]:
                stored[(measurement, name)] = kind
    return [
        f"{key}: truth {kind}, InfluxDB {stored.get(key)}"
        for key, kind in sorted(wanted.items())
        if stored.get(key) != kind
    ]
