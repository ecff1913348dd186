"""`python -m benchmarks.drain`: drain a broker backlog through the real gateway process.

Starts private mosquitto and influxd, lets the gateway create its persistent session, stops it,
publishes a backlog of N simulator messages at QoS 1 (the broker queues them for the session),
then starts the gateway again and measures until InfluxDB holds every reading: messages/s and
the gateway's CPU time per message (user + system, from /proc). A first cut of the Speed
issue's benchmark: no reference clients, no latency phase, one run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from tests.harness import (
    GatewayProcess,
    gateway_config,
    load_truth,
    run_simulators,
    stored_counts,
    truth_counts,
)
from tests.servers import Influxd, Mosquitto


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        with Mosquitto(root / "mosquitto") as broker, Influxd(root / "influxd") as influxd:
            influxd.create_database("bench")
            config = gateway_config(root / "gateway.toml", broker, influxd, "bench")
            config.write_text(
                config.read_text().replace("max_points = 2000", "max_points = 5000"),
                encoding="utf-8",
            )
            GatewayProcess(config).start().stop()  # creates the persistent session
            truth_file = root / "truth.jsonl"
            run_simulators(
                broker, truth_file,
                "--lighting", "4000", "--water", "3000", "--traffic", "3000",
                "--messages", str(args.messages), "--rate", "0", "--seed", "1",
                timeout_s=600,
            )  # fmt: skip
            expected = truth_counts(load_truth(truth_file))
            gateway = GatewayProcess(config)
            started = time.monotonic()
            gateway.start(wait_subscribed=False)
            assert gateway.process is not None
            while stored_counts(influxd, "bench", sorted(expected)) != expected:
                time.sleep(0.2)
                if time.monotonic() - started > 600:
                    raise SystemExit("backlog not drained within 600 s")
            elapsed = time.monotonic() - started
            cpu = _cpu_s(gateway.process.pid)
            gateway.stop()
    readings = sum(expected.values())
    print(
        json.dumps(
            {
                "benchmark": "backlog_drain",
                "messages": args.messages,
                "readings": readings,
                "wall_s": round(elapsed, 2),
                "messages_per_s": round(args.messages / elapsed),
                "readings_per_s": round(readings / elapsed),
                "gateway_cpu_us_per_message": round(cpu / args.messages * 1e6, 1),
                "note": "wall time includes gateway start-up (~0.3 s) and 0.2 s polling",
            }
        )
    )


if __name__ == "__main__":
    main()
