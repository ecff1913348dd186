"""`make bench`: the Speed issue's benchmark, broker backlog to InfluxDB through real processes.

Starts a private mosquitto and influxd, creates a persistent session for every contender, and
per run publishes one backlog of mixed readings from the simulators' device models (lighting,
water, traffic, connectivity; 10,000 distinct devices) at QoS 1, which the broker queues for
every session. Then, one contender at a time, it drains that backlog:

- the gateway (`python -m gateway run`), then a second phase at half its drain rate for the
  publish -> queryable latency;
- the gateway with `--workers 2` on one shared subscription;
- reference (a), benchmarks/paho_count.py: paho-mqtt that only counts (the client ceiling);
- reference (b), benchmarks/naive.py: paho -> orjson -> line protocol -> 5000-point batches
  -> HTTP.

Then, once, the QoS 0 live flood (benchmarks/flood.py): the gateway and the naive script side by
side while the backlog's messages are published at QoS 0 as fast as possible; stored/sent for
both and their ratio (a QoS 0 backlog cannot be held by the broker, so it is a live flood).

A drain's clock and CPU count start when the broker comes up with the backlog, the contender
already loaded and idle, and stop when InfluxDB has accepted every point (paho_count: when it
has counted every message). CPU is user + system time of the process tree from /proc; peak
RSS is VmHWM. Lost and doubled readings are counted per series against what was published.

The machine is shared, so absolute numbers drift; the ratios within one run are what counts.
Prints a table to stderr and one JSON summary line to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.backlog import Readings, backlog_end_ms, latency_end_ms, town_readings
from benchmarks.contenders import GatewayContender, PahoContender, Running
from benchmarks.flood import QOS0_FLOOD, FloodSetup, describe, flood_phase
from benchmarks.influx import lost_and_doubled, measurement_points, points_written, stored_series
from benchmarks.naive import points_of
from benchmarks.outage import outage_phase
from benchmarks.publish import Publisher
from tests.servers import Influxd, Mosquitto

GATEWAY, WORKERS, PAHO, NAIVE = "gateway", "gateway_2_workers", "paho_count", "naive"
TARGETS = {
    "cpu_us_per_message_max": 25.0,
    "drain_vs_naive_min": 1.5,
    "latency_p99_s_max": 1.5,
    "peak_rss_mb_max": 64.0,
    "outage_rss_growth_pct_max": 10.0,
    "replay_points_per_s_min": 50_000.0,
}
_POLL_S = 0.02
_BACKLOG_BEFORE_NS = (backlog_end_ms() + 3 * 86_400_000) * 1_000_000  # between the two phases


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(slots=True)
class Drain:
    """One contender's drain of one backlog."""

    messages: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: list[float]
    lost: int = 0
    doubled: int = 0
    latency: dict[str, float] = field(default_factory=dict)
    outage: dict[str, float] = field(default_factory=dict)

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.wall_s

    @property
    def cpu_us_per_message(self) -> float:
        return self.cpu_s / self.messages * 1e6


@dataclass(slots=True)
class Bench:
    """The servers, the contenders and the readings of one benchmark invocation."""

    broker: Mosquitto
    influxd: Influxd
    workdir: Path
    backlog: Readings
    latency_pool: Readings
    naive_points: int
    latency_s: float
    workers: int
    timeout_s: float
    outage_s: float = 0.0  # 0: no outage phase
    only: frozenset[str] = frozenset()  # empty: every contender
    flood_messages: int = 0  # the QoS 0 flood's size; 0: no flood
    py_spy: Path | None = None  # record the gateway's drain with py-spy into this file

    def gateway(self, workers: int) -> GatewayContender:
        name = GATEWAY if workers == 1 else WORKERS
        return GatewayContender(name, name, workers, self.workdir)

    def paho(self) -> PahoContender:
        expect = ("--expect", str(len(self.backlog.messages)))
        return PahoContender(PAHO, "benchmarks.paho_count", expect, self.workdir)

    def naive(self) -> PahoContender:
        extra = ("--influx", self.influxd.url, "--db", NAIVE)
        return PahoContender(NAIVE, "benchmarks.naive", extra, self.workdir)

    def contenders(self) -> list[GatewayContender | PahoContender]:
        found: list[GatewayContender | PahoContender] = [self.gateway(1)]
        if self.workers > 1:
            found.append(self.gateway(self.workers))
        found = [*found, self.paho(), self.naive()]
        return [contender for contender in found if not self.only or contender.name in self.only]

    def flood(self) -> dict[str, Any] | None:
        """The QoS 0 live flood, if asked for; None otherwise."""
        if not self.flood_messages or (self.only and QOS0_FLOOD not in self.only):
            return None
        readings = self.backlog.prefix(self.flood_messages)
        naive_points = points_of(readings.messages)
        setup = FloodSetup(
            self.broker, self.influxd, self.workdir, readings, naive_points, self.timeout_s
        )
        _say(f"QoS 0 flood: {len(readings.messages)} messages, gateway and naive side by side ...")
        result = flood_phase(setup)
        _say(describe(result))
        return result

    # ---- one run ---------------------------------------------------------------------------

    def run(self, number: int) -> dict[str, Drain]:
        for database in (GATEWAY, WORKERS, NAIVE):
            self.influxd.drop_database(database)
            self.influxd.create_database(database)
        self._fresh_sessions()
        started = time.monotonic()
        publisher = Publisher(self.broker)
        publisher.publish_all(self.backlog.messages)
        publisher.close()
        _say(f"run {number}: backlog of {len(self.backlog.messages)} messages queued for every "
             f"contender in {time.monotonic() - started:.1f} s")  # fmt: skip
        contenders = self.contenders()
        shift = number % len(contenders)  # rotate the order: no contender always goes first
        results = {}
        for contender in contenders[shift:] + contenders[:shift]:
            results[contender.name] = self._drain(contender, first_run=number == 1)
            _say(f"run {number}: {contender.name}: {_describe(results[contender.name])}")
        return results

    def _fresh_sessions(self) -> None:
        """A broker without persisted state and a new session for every contender: the
        previous run's latency phase queued its messages for every session but the one
        gateway that consumed them, and the next drain must see exactly the backlog."""
        self.broker.stop()
        self.broker.persistence_path.unlink(missing_ok=True)
        self.broker.start()
        for contender in self.contenders():
            contender.create_session(self.broker, self.influxd)

    def _drain(self, contender: GatewayContender | PahoContender, *, first_run: bool) -> Drain:
        self.broker.stop()  # SIGTERM: mosquitto saves every session's queue
        running = contender.start(self.broker, self.influxd)
        written_before = points_written(self.influxd)
        spy = _py_spy(self.py_spy, running.pid) if contender.name == GATEWAY else None
        self.broker.start()
        started = time.monotonic()
        try:
            finished = self._wait_drained(contender.name, running, written_before)
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
                spy.wait(30)
            drain = Drain(
                len(self.backlog.messages),
                finished - started,
                running.cpu_s(),
                running.peak_rss_mb(),
            )
            self._check(contender.name, drain)
            if contender.name == GATEWAY:
                drain.latency = self._latency_phase(drain.messages_per_s / 2)
                drain.peak_rss_mb = running.peak_rss_mb()
                if self.outage_s > 0 and first_run:
                    _say(f"outage phase: InfluxDB down for {self.outage_s:.0f} s ...")
                    drain.outage = outage_phase(
                        self.broker, self.influxd, running.pid, self.latency_pool,
                        drain.messages_per_s / 2, self.outage_s, self.timeout_s,
                    )  # fmt: skip
        finally:
            running.stop()
        return drain

    def _wait_drained(self, name: str, running: Running, written_before: int) -> float:
        if name == PAHO:
            line = running.wait_line("done", self.timeout_s)
            if line is None:
                raise RuntimeError(f"{name} did not count the backlog within {self.timeout_s} s")
            return float(line.split()[1])
        expected = self.naive_points if name == NAIVE else self.backlog.points
        return _wait_written(self.influxd, written_before + expected, self.timeout_s)

    def _check(self, name: str, drain: Drain) -> None:
        if name == PAHO:
            return  # it reached its count: nothing lost; it does not tell duplicates apart
        if name == NAIVE:
            stored = measurement_points(self.influxd, NAIVE)
            drain.lost = max(0, self.naive_points - stored)
            drain.doubled = max(0, stored - self.naive_points)
            return
        where = f"time < {_BACKLOG_BEFORE_NS}"
        stored_by_series = stored_series(self.influxd, name, self.backlog.measurements, where)
        drain.lost, drain.doubled = lost_and_doubled(self.backlog.series, stored_by_series)

    # ---- the latency phase -----------------------------------------------------------------

    def _latency_phase(self, rate: float) -> dict[str, float]:
        """Publish at `rate` for latency_s seconds while the gateway runs; a reading counts
        as queryable when InfluxDB's accepted-points counter covers it. The gateway writes
        its batches in receive order from one writer, so the counter passes the readings in
        publish order; the answer is exact to the polling interval (20 ms)."""
        count = min(len(self.latency_pool.messages), max(1, round(rate * self.latency_s)))
        readings = self.latency_pool.prefix(count)
        written_before = points_written(self.influxd)
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        poller = threading.Thread(
            target=_sample_written, args=(self.influxd, written_before, samples, stop)
        )
        poller.start()
        try:
            publisher = Publisher(self.broker)
            published_at = publisher.publish_paced(readings.messages, rate)
            publisher.close()
            _wait_written(self.influxd, written_before + readings.points, self.timeout_s)
        finally:
            stop.set()
            poller.join()
        latencies = _latencies(published_at, readings, samples)
        where = f"time >= {_BACKLOG_BEFORE_NS}"
        stored = stored_series(self.influxd, GATEWAY, readings.measurements, where)
        lost, doubled = lost_and_doubled(readings.series, stored)
        return {
            "rate_messages_per_s": round(rate),
            "messages": count,
            "p50_s": round(_percentile(latencies, 50), 3),
            "p99_s": round(_percentile(latencies, 99), 3),
            "max_s": round(max(latencies), 3),
            "lost": lost,
            "doubled": doubled,
        }


def _py_spy(output: Path | None, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the gateway from outside (not part of its CPU count), or None."""
    if output is None:
        return None
    beside = Path(sys.executable).parent / "py-spy"  # installed in the venv, or on PATH
    command = [
        str(beside) if beside.exists() else "py-spy",
        "record",
        "--pid",
        str(pid),
        "--rate",
        "250",
        "--nonblocking",
    ]
    command += ["--format", "raw" if output.suffix == ".txt" else "flamegraph", "-o", str(output)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the broker starts
    return spy


def _wait_written(influxd: Influxd, target: int, timeout_s: float) -> float:
    """When InfluxDB has accepted `target` points in all; at the timeout, the time then (the
    checks that follow count what is missing)."""
    deadline = time.monotonic() + timeout_s
    while (now := time.monotonic()) < deadline:
        if points_written(influxd) >= target:
            return now
        time.sleep(_POLL_S)
    _say(f"InfluxDB did not reach {target} accepted points within {timeout_s} s")
    return time.monotonic()


def _sample_written(
    influxd: Influxd, before: int, samples: list[tuple[float, int]], stop: threading.Event
) -> None:
    while not stop.is_set():
        written = points_written(influxd) - before
        samples.append((time.monotonic(), written))
        time.sleep(_POLL_S)


def _latencies(
    published_at: list[float], readings: Readings, samples: list[tuple[float, int]]
) -> list[float]:
    latencies, covered, sample = [], 0, 0
    for stamp, points in zip(published_at, readings.points_of_message, strict=True):
        covered += len(points)
        while sample < len(samples) - 1 and samples[sample][1] < covered:
            sample += 1
        latencies.append(samples[sample][0] - stamp)
    return latencies


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


# ---- the summary -----------------------------------------------------------------------------


def _describe(drain: Drain) -> str:
    text = (
        f"{drain.messages_per_s:,.0f} msg/s, {drain.cpu_us_per_message:.1f} µs CPU/msg, "
        f"peak RSS {'+'.join(f'{mb:.0f}' for mb in drain.peak_rss_mb)} MB, "
        f"lost {drain.lost}, doubled {drain.doubled}"
    )
    if drain.latency:
        text += f"; latency at {drain.latency['rate_messages_per_s']} msg/s: " + (
            f"p50 {drain.latency['p50_s']} s, p99 {drain.latency['p99_s']} s"
        )
    if drain.outage:
        outage = drain.outage
        text += (
            f"; {outage['outage_s']:.0f} s InfluxDB outage at {outage['rate_messages_per_s']} "
            f"msg/s: RSS {outage['rss_mb_before']} -> max {outage['rss_mb_max']} MB "
            f"({outage['rss_growth_pct']:+.1f}%), replay of {outage['points_waiting_at_restart']} "
            f"points in {outage['replay_s']} s = {outage['replay_points_per_s']:,} points/s"
        )
    return text


def _spread(values: list[float], digits: int = 1) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def _contender_summary(drains: list[Drain]) -> dict[str, Any]:
    return {
        "messages_per_s": _spread([d.messages_per_s for d in drains], 0),
        "cpu_us_per_message": _spread([d.cpu_us_per_message for d in drains]),
        "peak_rss_mb": _spread([max(d.peak_rss_mb) for d in drains]),
        "lost": sum(d.lost for d in drains),
        "doubled": sum(d.doubled for d in drains),
    }


def _ratio(
    runs: list[dict[str, Drain]], a: str, b: str, value: Callable[[Drain], float]
) -> dict[str, float] | None:
    # A quick run can finish a contender within one clock tick of CPU time (10 ms): its
    # CPU per message reads 0, and a ratio against it says nothing, so that run is left out.
    pairs = [
        value(run[a]) / value(run[b]) for run in runs if a in run and b in run and value(run[b]) > 0
    ]
    return _spread(pairs, 2) if pairs else None


def _rate(drain: Drain) -> float:
    return drain.messages_per_s


def _cpu(drain: Drain) -> float:
    return drain.cpu_us_per_message


def summarise(
    runs: list[dict[str, Drain]], config: dict[str, Any], flood: dict[str, Any] | None = None
) -> dict[str, Any]:
    names = [name for name in (GATEWAY, WORKERS, PAHO, NAIVE) if runs and name in runs[0]]
    latency = [run[GATEWAY].latency for run in runs if GATEWAY in run]
    gateway_drains = [run[name] for run in runs for name in (GATEWAY, WORKERS) if name in run]
    ratios = {
        "gateway_vs_naive_drain_rate": _ratio(runs, GATEWAY, NAIVE, _rate),
        "gateway_vs_naive_cpu_per_message": _ratio(runs, GATEWAY, NAIVE, _cpu),
        "gateway_vs_paho_count_cpu_per_message": _ratio(runs, GATEWAY, PAHO, _cpu),
        "gateway_vs_paho_count_drain_rate": _ratio(runs, GATEWAY, PAHO, _rate),
        "two_workers_vs_one_drain_rate": _ratio(runs, WORKERS, GATEWAY, _rate),
        "qos0_flood_gateway_vs_naive_stored": flood["gateway_vs_naive_stored_ratio"]
        if flood
        else None,
    }
    summary: dict[str, Any] = {
        "benchmark": "full",
        **config,
        **{name: _contender_summary([run[name] for run in runs]) for name in names},
        "latency": {
            "rate_messages_per_s": _spread([phase["rate_messages_per_s"] for phase in latency], 0),
            "p50_s": _spread([phase["p50_s"] for phase in latency], 3),
            "p99_s": _spread([phase["p99_s"] for phase in latency], 3),
        }
        if latency
        else None,
        "ratios": {key: value for key, value in ratios.items() if value is not None},
        "outage": next(
            (run[GATEWAY].outage for run in runs if GATEWAY in run and run[GATEWAY].outage), None
        ),
        "lost": sum(d.lost for d in gateway_drains) + sum(p["lost"] for p in latency),
        "doubled": sum(d.doubled for d in gateway_drains) + sum(p["doubled"] for p in latency),
    }
    if flood:
        summary[QOS0_FLOOD] = flood
    summary["targets"] = _targets(summary)
    return summary


def _targets(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    measured = {}
    if GATEWAY in summary:  # --only may leave contenders out
        measured["cpu_us_per_message_max"] = summary[GATEWAY]["cpu_us_per_message"]["median"]
        measured["latency_p99_s_max"] = summary["latency"]["p99_s"]["median"]
        measured["peak_rss_mb_max"] = summary[GATEWAY]["peak_rss_mb"]["max"]
    if "gateway_vs_naive_drain_rate" in summary["ratios"]:
        measured["drain_vs_naive_min"] = summary["ratios"]["gateway_vs_naive_drain_rate"]["median"]
    outage = summary["outage"]
    if outage:
        measured["outage_rss_growth_pct_max"] = outage["rss_growth_pct"]
        measured["replay_points_per_s_min"] = outage["replay_points_per_s"]
    return {
        name: {
            "target": target,
            "measured": measured[name],
            "met": measured[name] >= target if name.endswith("_min") else measured[name] <= target,
        }
        for name, target in TARGETS.items()
        if name in measured  # the outage targets only with an outage phase
    }


# ---- the command -----------------------------------------------------------------------------


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="backlog size")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-s", type=float, default=10.0, help="latency phase length")
    parser.add_argument("--workers", type=int, default=2, help="the scale-out contender (1: none)")
    parser.add_argument(
        "--outage-s",
        type=float,
        help="InfluxDB outage in the first run's gateway drain, at half its drain rate, for "
        "RSS and spool replay (default 120, --quick 10; the Speed issue asks for 600; 0: none)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 3000 messages, 500 devices, one run"
    )
    parser.add_argument("--workdir", type=Path, help="keep servers' data and logs here")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated contenders ({GATEWAY},{WORKERS},{PAHO},{NAIVE},{QOS0_FLOOD})",
    )
    parser.add_argument(
        "--qos0-flood",
        type=int,
        help="messages in the QoS 0 live flood (default: the backlog's size; 0: none)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="record the gateway's drain with py-spy into this file (.txt: raw stacks, else an "
        "SVG flame graph); needs `pip install py-spy`",
    )
    args = parser.parse_args()
    if args.quick:
        args.messages, args.runs, args.latency_s = min(args.messages, 3000), 1, 3.0
    if args.outage_s is None:
        args.outage_s = 10.0 if args.quick else 120.0
    if args.qos0_flood is None:
        args.qos0_flood = args.messages
    return args


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    args = _arguments()
    scale = 0.05 if args.quick else 1.0
    _say(f"generating {args.messages} messages from the simulators' device models ...")
    backlog = town_readings(args.messages, seed=1, end_ms=backlog_end_ms(), devices_scale=scale)
    pool_size = max(1000, round(args.latency_s * 20_000))  # enough for half of 40k msg/s
    # The same seed: the same devices in the same districts, so the same series (a second
    # town would double the series and run into the profiles' series budgets).
    pool = town_readings(pool_size, seed=1, end_ms=latency_end_ms(), devices_scale=scale)
    naive_points = points_of(backlog.messages)
    config = {
        "messages": len(backlog.messages),
        "readings": backlog.points,
        "devices": len({topic for topic, _ in backlog.messages}),
        "payload_bytes_mean": round(sum(len(p) for _, p in backlog.messages) / args.messages),
        "runs": args.runs,
        "outage_s": args.outage_s,
        "cpus": os.cpu_count(),
        "load_before": _load(),
    }
    _say(json.dumps(config))
    with tempfile.TemporaryDirectory(prefix="mh-bench-") as work:
        root = args.workdir.resolve() if args.workdir else Path(work)
        broker = Mosquitto(root / "mosquitto", autosave_interval_s=3600)
        with broker, Influxd(root / "influxd") as influxd:
            bench = Bench(
                broker, influxd, root, backlog, pool, naive_points, args.latency_s,
                args.workers, timeout_s=max(120.0, args.messages / 500), outage_s=args.outage_s,
                only=frozenset(filter(None, args.only.split(","))), py_spy=args.py_spy,
                flood_messages=args.qos0_flood,
            )  # fmt: skip
            drains = range(1, args.runs + 1) if bench.contenders() else range(0)
            runs = [bench.run(number) for number in drains]
            flood = bench.flood()
    config["runs"] = len(runs)  # 0 when --only names no drain contender
    config["load_after"] = _load()
    summary = summarise(runs, config, flood)
    for name, target in summary["targets"].items():
        _say(f"target {name}: {target['measured']} vs {target['target']}: "
             f"{'met' if target['met'] else 'MISSED'}")  # fmt: skip
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
