"""Fairness: good devices' publish -> stored latency while one device floods (issue 18).

    python -m benchmarks.fairness [--seconds 20] [--devices 100] [--flooders 2] [--flood-qos 1]
                                  [--flood-inflight 20] [--flood-nice 0]

Real mosquitto, influxd and `python -m gateway run` with the shipped limits (20 messages/s per
device topic, burst 5,000) and batching. `--devices` good devices report once a second each,
stamped with their publish time; a poller reads InfluxDB every 0.25 s and notes when each of
their points first appears. That is done once without and once with `--flooders` processes of
`mosquitto_pub -l` publishing one device's valid readings as fast as they can (at QoS
`--flood-qos`; the gateway subscribes at QoS 1 either way). Printed: p50/p99/max latency of
both phases, how many good points never arrived, how many messages the flood offered and how
many became rate_limited dead letters, and the CPU seconds the gateway and the broker used from
the flood's start until the gateway had read all of it (with the load average: the flooders run
on the same box and take CPU from both; `--flood-nice 19` gives them only what is left, as a
device elsewhere would). The latency resolution is the poll interval plus one query (about
0.3 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from tests.harness import GatewayProcess, gateway_config
from tests.servers import Influxd, Mosquitto

_POLL_S = 0.25
_SETTLE_S = 60.0  # how long the good points of a phase may take to arrive after it
FLOOD_TOPIC = "city/lighting/flood/flood-0001/telemetry"


def reading(ts_ms: int) -> bytes:
    return (
        f'{{"ts": {ts_ms}, "lamp": {{"state": "ON", "dim": 50, "fault": 0}},'
        ' "elec": {"p_w": 75.0, "v": 230.0, "i_a": 0.33, "e_kwh": 1.0}}'
    ).encode()


def publish_good(broker: Mosquitto, devices: int, seconds: float) -> dict[tuple[str, int], float]:
    """Each device once a second for `seconds`, QoS 1; (device, ts_ms) -> publish wall time."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="good-devices", protocol=MQTTProtocolVersion.MQTTv311
    )
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    sent: dict[tuple[str, int], float] = {}
    infos = []
    started = time.monotonic()
    rounds = int(seconds)
    for round_number in range(rounds):
        for number in range(devices):
            due = started + round_number + number / devices
            ahead = due - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            now = time.time()
            ts_ms = int(now * 1000)
            device = f"good-{number:03d}"
            infos.append(
                client.publish(f"city/lighting/good/{device}/telemetry", reading(ts_ms), qos=1)
            )
            sent[(device, ts_ms)] = now
    for info in infos:  # the broker has them all before the client goes
        info.wait_for_publish(timeout=_SETTLE_S)
    client.disconnect()
    client.loop_stop()
    return sent


class Poller:
    """Notes when each good point first appears in InfluxDB."""

    def __init__(self, influxd: Influxd, database: str) -> None:
        self._influxd = influxd
        self._database = database
        self.seen: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(_POLL_S):
            answer = self._influxd.query(
                "SELECT power_w, device_id FROM streetlight WHERE district = 'good'",
                db=self._database,
            )
            now = time.time()
            for series in answer["results"][0].get("series", []):
                for time_ns, _, device in series["values"]:
                    self.seen.setdefault((device, int(time_ns) // 1_000_000), now)


def latency_figures(sent: dict[tuple[str, int], float], seen: dict[tuple[str, int], float]) -> str:
    latencies = sorted(seen[key] - at for key, at in sent.items() if key in seen)
    missing = sum(key not in seen for key in sent)
    if not latencies:
        return f"no point arrived ({missing} missing)"
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return (
        f"p50 {statistics.median(latencies):.2f} s, p99 {p99:.2f} s, max {latencies[-1]:.2f} s"
        f" over {len(latencies)} readings, {missing} not stored within {_SETTLE_S:.0f} s"
    )


def wait_arrived(sent: dict[tuple[str, int], float], poller: Poller) -> None:
    deadline = time.monotonic() + _SETTLE_S
    while time.monotonic() < deadline and any(key not in poller.seen for key in sent):
        time.sleep(_POLL_S)


def count_rate_limited(state: Path) -> int:
    store = DeadLetterStore(state / DEAD_LETTER_FILE)
    try:
        return store.count("rate_limited")
    finally:
        store.close()


def cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a running process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def start_flood(
    broker: Mosquitto, flooders: int, qos: int, inflight: int, nice: int
) -> list[subprocess.Popen[bytes]]:
    """`yes PAYLOAD | mosquitto_pub -l`: the same valid reading as fast as the broker takes it
    (InfluxDB would overwrite it: only the gateway's work counts). At QoS 1 mosquitto_pub keeps
    at most `inflight` messages unacknowledged (its -M, 20 by default)."""
    payload = reading(int(time.time() * 1000)).decode()
    return [
        subprocess.Popen(
            [
                "nice",
                "-n",
                str(nice),
                "sh",
                "-c",
                f"yes '{payload}' | mosquitto_pub -h {broker.host} -p {broker.port} -q {qos} "
                f"-M {inflight} -i flood-{n} -t {FLOOD_TOPIC} -l",
            ],
            start_new_session=True,
        )
        for n in range(flooders)
    ]


def stop_flood(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        subprocess.run(["kill", "--", f"-{process.pid}"], check=False)
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--flooders", type=int, default=2)
    parser.add_argument(
        "--flood-qos", type=int, choices=(0, 1), default=1, help="QoS the flooders publish at"
    )
    parser.add_argument(
        "--flood-inflight", type=int, default=20, help="mosquitto_pub -M (QoS 1 in flight)"
    )
    parser.add_argument("--flood-nice", type=int, default=0, help="niceness of the flooders (0-19)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flood-") as scratch:
        work = Path(scratch)
        with Mosquitto(work / "mosquitto") as broker, Influxd(work / "influxd") as influxd:
            influxd.create_database("flood")
            config = gateway_config(
                work / "gateway.toml", broker, influxd, "flood",
                overrides={"batch": {"max_points": 5000, "max_age_s": 1.0}},
            )  # fmt: skip
            with GatewayProcess(config) as gateway, Poller(influxd, "flood") as poller:
                sent = publish_good(broker, args.devices, args.seconds)
                wait_arrived(sent, poller)
                print(f"without a flood: {latency_figures(sent, poller.seen)}", flush=True)
                received_before = gateway.metric("messages_received_total")
                assert gateway.process is not None  # running
                cpu_before = cpu_s(gateway.process.pid), cpu_s(broker.pid)
                load_before = load_average()
                flood_started = time.monotonic()
                flood = start_flood(
                    broker, args.flooders, args.flood_qos, args.flood_inflight, args.flood_nice
                )
                try:
                    time.sleep(2.0)  # the flood is under way before the good devices report
                    sent = publish_good(broker, args.devices, args.seconds)
                finally:
                    stop_flood(flood)
                flood_s = time.monotonic() - flood_started
                during = gateway.metric("messages_received_total") - received_before
                wait_arrived(sent, poller)
                print(f"with a flood:    {latency_figures(sent, poller.seen)}", flush=True)
                after = gateway.metric("messages_received_total") - received_before
                read_all_s = time.monotonic() - flood_started
                gateway_cpu = cpu_s(gateway.process.pid) - cpu_before[0]
                broker_cpu = cpu_s(broker.pid) - cpu_before[1]
                refused = gateway.metric("dead_letters_total", reason="rate_limited")
                not_kept = gateway.metric("refusals_not_kept_total")
                kept = count_rate_limited(work / "state")
                print(
                    f"flood: {args.flooders} x nice -n {args.flood_nice} mosquitto_pub "
                    f"-q {args.flood_qos} -M {args.flood_inflight} for {flood_s:.0f} s; the "
                    f"gateway received {during:.0f} messages meanwhile ({during / flood_s:.0f}/s),"
                    f" {after:.0f} in all; rate_limited dead letters {refused:.0f} (in the store"
                    f" {kept}), refused and not kept {not_kept:.0f}",
                    flush=True,
                )
                print(
                    f"CPU from the flood's start until every good reading was stored "
                    f"({read_all_s:.0f} s): gateway {gateway_cpu:.1f} s, broker {broker_cpu:.1f} s;"
                    f" load average {load_before} at the start,"
                    f" {load_average()} at the end",
                    flush=True,
                )
                gateway.stop(timeout_s=60)


if __name__ == "__main__":
    main()
