"""Pictures of the dashboards from a simulated day: docs/img/dashboard-*.png.

    private mosquitto + influxd (in a temporary directory) -> `python -m gateway run`
        <- `python -m simulators run`, one run per reporting interval: a day in --minutes
    -> every reading stored -> `dashboards.render` -> one PNG per dashboard

Each device kind reports at its own interval and the simulators share --messages equally
between devices, so one run per interval gives every kind exactly one day. The runs start a
day minus --minutes ago at a --speedup that ends the simulated day at the end of the run, so
no reading is ever from the future and the "reporting now" panels see the last reports. The
gateway's own metrics cover only the minutes of this run, so the gateway-health picture shows
those minutes instead of its default 3 hours.

    .venv/bin/python scripts/render_dashboards.py [--out docs/img] [--minutes 5] [--devices 1]

To draw pictures from an InfluxDB that already has data: `gateway dashboards render`.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python scripts/x.py` puts scripts/, not the repo, on the path
    sys.path.insert(0, str(ROOT))

# Needs ROOT on sys.path: the test harness starts the servers and the gateway for the demo too.
from dashboards import build  # noqa: E402  # after the sys.path insert above
from dashboards.influxread import InfluxReader  # noqa: E402  # after the sys.path insert above
from dashboards.render import render_all  # noqa: E402  # after the sys.path insert above
from simulators.devices import KINDS  # noqa: E402  # after the sys.path insert above
from tests.harness import (  # noqa: E402  # after the sys.path insert above
    GatewayProcess,
    gateway_config,
    load_truth,
    simulator_command,
    truth_counts,
    wait_for_counts,
)
from tests.servers import Influxd, Mosquitto  # noqa: E402  # after the sys.path insert above

DATABASE = "telemetry"
DAY_S = 86_400
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
SEED = 20261124
INSTANCE = "mh-gateway-01"
# A small town: enough devices per kind for per-district lines, few enough for a quick run.
TOWN = {
    "lighting": 14, "traffic": 4, "radars": 2, "signals": 3, "water": 7,
    "quality-probes": 3, "site-monitors": 3, "tanks": 3, "speed-probes": 6,
    "cabinets": 2, "pressure-loggers": 3, "lorawan-lights": 4, "anpr-cameras": 1,
    "air-stations": 3, "water-meters": 12, "river-probes": 3, "parking-sensors": 24,
    "lorawan-meters": 6,
}  # fmt: skip
SELF_METRICS_INTERVAL_S = 5.0
LIVENESS = """
[monitoring.expected_interval_s]
"mh-streetlight-json" = 60
"mh-traffic-loop-json" = 60
"mh-water-flow-json" = 300
"""
STORE_TIMEOUT_S = 600.0


def runs_of_one_day(scale: float, minutes: float) -> list[list[str]]:
    """Simulator arguments, one run per reporting interval, each exactly a day of reports
    sent in `minutes` and ending now."""
    run_s = minutes * 60
    start = datetime.now(LOCAL) - timedelta(seconds=DAY_S - run_s)
    pacing = ["--speedup", f"{DAY_S / run_s:g}", "--start", start.isoformat(timespec="seconds")]
    by_interval: dict[int, dict[str, int]] = {}
    for kind, count in TOWN.items():
        devices = max(1, round(count * scale))
        by_interval.setdefault(KINDS[kind].interval_s, {})[kind] = devices
    runs = []
    for interval_s, kinds in sorted(by_interval.items()):
        messages = sum(kinds.values()) * (DAY_S // interval_s)
        arguments = [item for kind, n in kinds.items() for item in (f"--{kind}", str(n))]
        runs.append([*arguments, *pacing, "--messages", str(messages),
                     "--seed", str(SEED + interval_s)])  # fmt: skip
    return runs


def publish_faulty_messages(broker: Mosquitto) -> None:
    """What a real day also has: a message no profile can read (a dead letter) and a reading
    with a field of the wrong type (a dropped field), for the gateway-health panels."""
    now_ms = time.time_ns() // 1_000_000
    lamp = {"state": "ON", "dim": 100, "fault": 0}
    reading = {"ts": now_ms, "lamp": lamp, "elec": {"p_w": "n/a"}}
    for topic, payload in (
        ("city/lighting/di-su/sl-9998/telemetry", "{not json"),
        ("city/lighting/di-su/sl-9999/telemetry", json.dumps(reading)),
    ):
        subprocess.run(
            ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1",
             "-t", topic, "-m", payload],
            check=True,
        )  # fmt: skip


def simulate_day(
    workdir: Path, broker: Mosquitto, influxd: Influxd, scale: float, minutes: float
) -> float:
    """Run the gateway and every simulator until InfluxDB holds every reading; return how
    long the gateway ran (s)."""
    config = gateway_config(
        workdir / "gateway.toml",
        broker,
        influxd,
        DATABASE,
        overrides={"monitoring": {"instance": INSTANCE, "interval_s": SELF_METRICS_INTERVAL_S}},
        extra=LIVENESS,
    )
    runs = runs_of_one_day(scale, minutes)
    truth_files = [workdir / f"truth-{index}.jsonl" for index in range(len(runs))]
    started = time.monotonic()
    with GatewayProcess(config) as gateway:
        processes = [
            subprocess.Popen(simulator_command(broker, truth, *arguments), cwd=ROOT)
            for truth, arguments in zip(truth_files, runs, strict=True)
        ]
        time.sleep(minutes * 30)  # mid-run, so the rate panels show the dead letter arrive
        publish_faulty_messages(broker)
        for process in processes:
            if process.wait() != 0:
                raise SystemExit(f"a simulator run failed (exit {process.returncode})")
        expected: Counter[str] = Counter({"streetlight": 1})  # the reading with a dropped field
        for truth in truth_files:
            expected += truth_counts(load_truth(truth))
        print(f"sent {sum(expected.values()):,} readings: {dict(expected)}", file=sys.stderr)
        stored = wait_for_counts(influxd, DATABASE, expected, timeout_s=STORE_TIMEOUT_S)
        if stored != expected:
            raise SystemExit(f"InfluxDB holds {dict(stored)}, expected {dict(expected)}")
        time.sleep(2 * SELF_METRICS_INTERVAL_S)  # the gateway's last self-metrics sample
        if gateway.process is not None and gateway.process.poll() is not None:
            raise SystemExit(f"the gateway exited:\n{gateway.log()[-2000:]}")
        gateway.stop()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument(
        "--devices", type=float, default=1.0, help="scale the town's device counts (0.2 = quick)"
    )
    parser.add_argument(
        "--minutes", type=float, default=5.0, help="wall minutes the simulated day takes"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mh-render-") as temp:
        workdir = Path(temp)
        for server in ("mosquitto", "influxd"):
            (workdir / server).mkdir()
        with Mosquitto(workdir / "mosquitto") as broker, Influxd(workdir / "influxd") as influxd:
            influxd.create_database(DATABASE)
            ran_s = simulate_day(workdir, broker, influxd, args.devices, args.minutes)
            # The gateway's own metrics exist only for this run: show those minutes.
            gateway_span_s = 60 * math.ceil(ran_s / 60 + 1)
            dashboards = [build.plain(dashboard) for dashboard in build.dashboards()]
            reader = InfluxReader(influxd.url, DATABASE)
            # The simulation has one day: the connectivity dashboard's 7 days would be 6/7 empty.
            spans = {"mh-gateway-health": gateway_span_s, "mh-connectivity": DAY_S}
            for rendered in render_all(dashboards, reader, args.out, spans):
                size_kb = rendered.path.stat().st_size // 1024
                print(f"wrote {rendered.path} ({size_kb} KB)")
                for title in rendered.empty_panels:
                    print(f"  no data: {title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
