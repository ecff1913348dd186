"""Misbehaving vendor codecs through real mosquitto, influxd and the gateway process.

A tank level sensor's codec (tests/codecs/misbehaving.js) loops for ever, allocates without
bound, throws, returns errors or recurses without end on some frames; those frames are mixed
into a stream of normal ChirpStack uplinks. Each bad frame must be a dead letter with its reason,
every normal reading must be in InfluxDB exactly as sent, and the gateway's memory must not grow
with the number of faults (each limit is hit inside QuickJS, whose runtime is then rebuilt).
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from tests.harness import GatewayProcess, gateway_config
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

CODECS = Path(__file__).parent / "codecs"
TOPIC = "application/9a1c/device/{device}/event/up"
DEVICES = ["a840410000000001", "a840410000000002", "a840410000000003"]
# Frames that make the codec misbehave (first byte, see misbehaving.js) and the dead letter each
# must become.
FAULTS = {
    b"\xe1": "codec_timeout",  # endless loop
    b"\xe2": "codec_memory",  # allocates without bound
    b"\xe3\x07": "codec_error",  # throws
    b"\xe4": "codec_error",  # returns errors
    b"\xe5": "codec_memory",  # recursion without end: the stack limit
}
START_S = 1795482000  # 2026-11-24T01:00:00Z


def uplink(device: str, frame: bytes, second: int) -> str:
    return json.dumps({
        "time": f"2026-11-24T01:{second // 60:02d}:{second % 60:02d}.000000001Z",
        "deviceInfo": {"deviceProfileName": "tank-level", "devEui": device},
        "fPort": 1,
        "data": base64.b64encode(frame).decode(),
        "rxInfo": [{"gatewayId": "0016c001f153a14c", "rssi": -90, "snr": 5.0}],
    })  # fmt: skip


def stream(round_no: int, readings: int) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """(topic, uplink) messages of one round, every fifth frame a fault, and the truth."""
    messages, truth = [], []
    faults = list(FAULTS)
    for n in range(readings):
        device = DEVICES[n % len(DEVICES)]
        second = round_no * 1000 + n
        level = 1000 + (n * 37) % 5000
        frame = level.to_bytes(2, "big") + bytes([n % 256])
        messages.append((TOPIC.format(device=device), uplink(device, frame, second)))
        truth.append({"device_id": device, "time_ns": (START_S + second) * 10**9 + 1,
                      "level_mm": level, "seq": n % 256})  # fmt: skip
        if n % 5 == 4:
            fault = faults[(n // 5) % len(faults)]
            messages.append((TOPIC.format(device=device), uplink(device, fault, second)))
    return messages, truth


def publish(broker: Mosquitto, messages: list[tuple[str, str]]) -> None:
    for device in DEVICES:
        topic = TOPIC.format(device=device)
        lines = [payload for to, payload in messages if to == topic]
        subprocess.run(
            ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", topic, "-l"],
            input="\n".join(lines) + "\n", text=True, check=True, timeout=60,
        )  # fmt: skip


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def stored(influxd: Influxd, database: str) -> list[dict[str, Any]]:
    answer = influxd.query("SELECT level_mm, seq FROM tank GROUP BY device_id", db=database)
    rows = []
    for series in answer["results"][0].get("series", []):
        for time_ns, level, seq in series["values"]:
            rows.append({"device_id": series["tags"]["device_id"], "time_ns": time_ns,
                         "level_mm": level, "seq": seq})  # fmt: skip
    return rows


def test_misbehaving_codecs_are_dead_letters_and_the_rest_is_stored(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    tank = (CODECS / "tank-level-cs.yaml").read_text()
    # Alone on its topic here: the content test is tested in tests/test_codec.py.
    tank = tank.replace("  content: {path: deviceInfo.deviceProfileName, equals: tank-level}\n", "")
    # The uplinks carry fixed times in 2026-11: no clock tolerance on a machine's later date.
    tank = tank.replace("  format: iso8601\n", "  format: iso8601\n  max_past_s: null\n")
    (profiles / "tank-level-cs.yaml").write_text(tank)
    (profiles / "misbehaving.js").write_text((CODECS / "misbehaving.js").read_text())
    config = gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, influx_db,
        overrides={"profiles": {"dir": str(profiles)}},
    )  # fmt: skip
    truth: list[dict[str, Any]] = []
    sent = 0
    memory = []
    with GatewayProcess(config) as gateway:
        assert gateway.process is not None
        for round_no, readings in enumerate((100, 100, 100)):
            messages, round_truth = stream(round_no, readings)
            publish(mosquitto, messages)
            sent += len(messages)
            truth += round_truth
            wait_for(
                partial(lambda want: gateway.metric("messages_acked_total") == want, sent), 90,
                f"{sent} messages acknowledged (stored or dead-lettered)",
            )  # fmt: skip
            memory.append(rss_mb(gateway.process.pid))
        assert gateway.stop() == 0

    by_key = sorted(truth, key=lambda row: (row["device_id"], row["time_ns"]))
    assert (
        sorted(stored(influxd, influx_db), key=lambda r: (r["device_id"], r["time_ns"])) == by_key
    )
    store = DeadLetterStore(tmp_path / "state" / DEAD_LETTER_FILE)
    faults_sent = sent - len(truth)
    expected = Counter(FAULTS[fault] for fault in _faults_in_order(faults_sent))
    assert store.counts_by_reason() == dict(expected)
    store.close()
    # Round 1 builds the runtimes and warms the caches; rounds 2 and 3 add 20 faults each
    # (4 hitting the 8 MB heap limit): the resident memory stays where round 1 left it.
    print(f"gateway RSS after each round: {', '.join(f'{mb:.1f}' for mb in memory)} MB")
    assert memory[2] - memory[0] < 8, f"RSS grew from {memory[0]:.1f} to {memory[2]:.1f} MB"


def _faults_in_order(count: int) -> list[bytes]:
    faults = list(FAULTS)
    per_round = 20  # a fault after every fifth of 100 readings
    return [faults[(i % per_round) % len(faults)] for i in range(count)]
