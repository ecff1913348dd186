"""The QoS 0 live flood (issue 15): what reaches InfluxDB when every device publishes at QoS 0.

At QoS 0 the broker holds nothing for a client that is away and nothing is redelivered, so a
backlog cannot be drained: both contenders run side by side while one paho publisher sends
the messages at QoS 0 as fast as it can write them, and each stores what it received. The
gateway (`python -m gateway run`, shipped defaults) and the naive script (benchmarks/naive.py)
each have their own persistent session and database. The figure is stored/sent: the gateway's
distinct readings against the readings published, the naive script's points against the
points its own mapping makes of the same messages. A gateway that acknowledged QoS 0
deliveries with packet id 0 was disconnected by mosquitto after its first batch and lost what
was sent while it reconnected (4-10% stored, against 100% for the naive script).

The benchmark's broker queues QoS 0 messages for a connected client without limit
(tests/servers.py sets max_queued_messages 0), so a contender that stays connected loses
nothing to the broker: this measures what the contenders themselves lose.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.backlog import Readings
from benchmarks.contenders import GatewayContender, PahoContender, Running
from benchmarks.influx import lost_and_doubled, measurement_points, stored_series
from benchmarks.publish import Publisher
from tests.servers import Influxd, Mosquitto

QOS0_FLOOD = "qos0_flood"
GATEWAY_QOS0, NAIVE_QOS0 = "gateway_qos0", "naive_qos0"
_POLL_S = 0.5
_STALLED_S = 5.0  # no contender stored anything more for this long: all they will store


@dataclass(frozen=True, slots=True)
class FloodSetup:
    broker: Mosquitto
    influxd: Influxd
    workdir: Path
    readings: Readings
    naive_points: int  # what the naive script's mapping makes of `readings`
    timeout_s: float


def flood_phase(setup: FloodSetup) -> dict[str, Any]:
    """Run the flood; returns sent, stored and stored/sent per contender and their ratio."""
    gateway = GatewayContender(GATEWAY_QOS0, GATEWAY_QOS0, 1, setup.workdir)
    naive_extra = ("--influx", setup.influxd.url, "--db", NAIVE_QOS0)
    naive = PahoContender(NAIVE_QOS0, "benchmarks.naive", naive_extra, setup.workdir)
    for database in (GATEWAY_QOS0, NAIVE_QOS0):
        setup.influxd.drop_database(database)
        setup.influxd.create_database(database)
    for contender in (gateway, naive):
        contender.create_session(setup.broker, setup.influxd)
    running: list[Running] = []
    try:
        running = [contender.start(setup.broker, setup.influxd) for contender in (gateway, naive)]
        publish_s = _flood(setup)
        stored = _wait_stored(setup)
    finally:
        for process in running:
            process.stop()
    gateway_log = (setup.workdir / f"{GATEWAY_QOS0}.log").read_text(errors="replace")
    series = stored_series(setup.influxd, GATEWAY_QOS0, setup.readings.measurements, "time > 0")
    lost, doubled = lost_and_doubled(setup.readings.series, series)
    gateway_result = _result(stored[GATEWAY_QOS0], setup.readings.points)
    naive_result = _result(stored[NAIVE_QOS0], setup.naive_points)
    return {
        "messages_sent": len(setup.readings.messages),
        "publish_s": round(publish_s, 2),
        "publish_messages_per_s": round(len(setup.readings.messages) / publish_s),
        "gateway": {
            **gateway_result,
            "lost": lost,
            "doubled": doubled,
            "reconnects": gateway_log.count("; reconnecting"),
        },
        "naive": naive_result,
        "gateway_vs_naive_stored_ratio": round(
            gateway_result["stored_vs_sent"] / naive_result["stored_vs_sent"], 4
        )
        if naive_result["stored_vs_sent"]
        else None,
    }


def _flood(setup: FloodSetup) -> float:
    publisher = Publisher(setup.broker)
    started = time.monotonic()
    try:
        publisher.publish_all(setup.readings.messages, qos=0)
        return time.monotonic() - started
    finally:
        publisher.close()


def _wait_stored(setup: FloodSetup) -> dict[str, int]:
    """Points in each contender's database once both have everything or stopped storing."""
    targets = {GATEWAY_QOS0: setup.readings.points, NAIVE_QOS0: setup.naive_points}
    deadline = time.monotonic() + setup.timeout_s
    stored = dict.fromkeys(targets, 0)
    changed = time.monotonic()
    while time.monotonic() < deadline:
        now = {name: measurement_points(setup.influxd, name) for name in targets}
        if now != stored:
            stored, changed = now, time.monotonic()
        if all(stored[name] >= target for name, target in targets.items()):
            break
        if time.monotonic() - changed > _STALLED_S:
            break
        time.sleep(_POLL_S)
    return stored


def _result(stored: int, sent: int) -> dict[str, Any]:
    return {"sent": sent, "stored": stored, "stored_vs_sent": round(stored / sent, 4)}


def describe(flood: dict[str, Any]) -> str:
    gateway, naive = flood["gateway"], flood["naive"]
    return (
        f"QoS 0 flood of {flood['messages_sent']:,} messages in {flood['publish_s']} s "
        f"({flood['publish_messages_per_s']:,} msg/s): gateway stored {gateway['stored']:,}/"
        f"{gateway['sent']:,} readings ({gateway['stored_vs_sent']:.2%}, {gateway['reconnects']} "
        f"reconnects), naive {naive['stored']:,}/{naive['sent']:,} points "
        f"({naive['stored_vs_sent']:.2%}); gateway/naive {flood['gateway_vs_naive_stored_ratio']}"
    )
