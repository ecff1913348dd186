"""`make bench`: the in-process hot path, message in -> line protocol in a sealed batch.

Feeds simulator payloads (lighting, water, traffic) straight into `Gateway.on_message` with a
recording sink, so it measures the gateway's own per-message CPU cost: profile resolution,
JSON decode, normalization (types, units, ranges, time), line protocol and batching. The MQTT
receive path and the HTTP write are not included: the full broker-to-InfluxDB drain benchmark
is the Speed issue's work.

Prints one JSON line: median and spread over several runs, per message and per reading.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path

from gateway.config import GatewaySettings
from gateway.deadletter import DeadLetterStore
from gateway.model import Message
from gateway.pipeline import Gateway
from gateway.profiles.registry import load_directory
from gateway.sinks.recording import RecordingSink
from simulators.fleet import build_fleet

ROOT = Path(__file__).resolve().parent.parent


class _NullIngest:
    async def run(self) -> None:
        return None

    def ack(self, tokens: object) -> None:
        return None

    def pause(self) -> None:
        return None

    def resume(self) -> None:
        return None

    @property
    def connected(self) -> bool:
        return True

    def set_topics(self, topics: list[str]) -> None:
        return None

    async def stop(self) -> None:
        return None


def _messages(count: int) -> tuple[list[Message], int]:
    fleet = build_fleet(
        {"lighting": 400, "water": 300, "traffic": 300},
        seed=1,
        total_messages=count,
        start_ms=1_795_000_000_000,
        now_ms=1_795_000_000_000,
    )
    messages, readings = [], 0
    for number, outgoing in enumerate(fleet.messages()):
        messages.append(Message(outgoing.topic, outgoing.payload, 0, False, (1, number % 65535)))
        readings += len(outgoing.readings)
    return messages, readings


async def _one_run(messages: list[Message], state: Path) -> float:
    settings = GatewaySettings(spool={"dir": str(state)})
    gateway = Gateway(
        settings,
        load_directory(ROOT / "device_profiles"),
        sink=RecordingSink(),
        dead_letters=DeadLetterStore(state / "dl.sqlite3"),
        ingest=_NullIngest(),
    )
    gc.collect()
    started = time.process_time()
    for message in messages:
        gateway.on_message(message)
    elapsed = time.process_time() - started
    gateway.dead_letters.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    messages, readings = _messages(args.messages)
    with tempfile.TemporaryDirectory() as state:
        timings = [asyncio.run(_one_run(messages, Path(state))) for _ in range(args.runs)]
    per_message = [t / len(messages) * 1e6 for t in timings]
    summary = {
        "benchmark": "hot_path_in_process",
        "messages": len(messages),
        "readings": readings,
        "runs": args.runs,
        "us_per_message_median": round(statistics.median(per_message), 2),
        "us_per_message_min": round(min(per_message), 2),
        "us_per_message_max": round(max(per_message), 2),
        "us_per_reading_median": round(statistics.median(timings) / readings * 1e6, 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
