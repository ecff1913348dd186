"""`make bench`: the in-process hot path, message in -> line protocol in a sealed batch.

Feeds the full benchmark's backlog (benchmarks/backlog.py: 10,000 simulated devices of nine
kinds in the four domains) straight into `Gateway.on_message` with a recording sink, so it
measures the gateway's own per-message CPU cost: profile resolution, decoding, normalization
(types, units, ranges, time), line protocol and batching. The MQTT receive path and the HTTP
write are not included: `python -m benchmarks.full` measures the whole drain.

Prints one JSON line: median and spread over several runs, per message and per reading; then
one line per device profile kind (benchmarks/profiles.py: JSON, fixed binary layouts, and the
declarative channel/variant/flag layouts), the CPU per message of each on its own.
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

from benchmarks.backlog import backlog_end_ms, town_readings
from benchmarks.codec_profile import codec_summaries
from benchmarks.profiles import per_profile
from gateway.config import GatewaySettings
from gateway.model import Message
from gateway.pipeline import Gateway
from gateway.profiles.registry import load_directory
from gateway.stages.deadletter import DeadLetterStore
from gateway.stages.ingest import IngestStats
from gateway.stages.sinks.recording import RecordingSink

ROOT = Path(__file__).resolve().parent.parent


class _NullIngest:
    def __init__(self) -> None:
        self.stats = IngestStats()

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

    @property
    def unread_bytes(self) -> int:
        return 0

    def set_topics(self, topics: list[str]) -> None:
        return None

    async def stop(self) -> None:
        return None


def _messages(count: int) -> tuple[list[Message], int]:
    """The same backlog as `python -m benchmarks.full`: the cost measured here is the share of
    that drain spent in the gateway's own code."""
    backlog = town_readings(count, seed=1, end_ms=backlog_end_ms())
    messages = [
        Message(topic, payload, 0, False, (1, number % 65535))
        for number, (topic, payload) in enumerate(backlog.messages)
    ]
    return messages, backlog.points


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
    parser.add_argument(
        "--profile-messages",
        type=int,
        default=4000,
        help="messages per profile for the per-profile lines (benchmarks/profiles.py); 0: none",
    )
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
    # A vendor-codec profile next to a JSON one (benchmarks/codec_profile.py).
    for line in codec_summaries(4000, args.runs):
        print(json.dumps(line))
    if args.profile_messages > 0:
        for line in per_profile(args.profile_messages, args.runs):
            print(json.dumps(line))


if __name__ == "__main__":
    main()
