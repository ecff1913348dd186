"""CPU per message through one device profile: topic resolution, decoding and normalization
(rows with their line protocol) of simulated messages, in process.

Puts the declarative layouts (channel/type stream, fPort/header variants, flag groups) next to
today's JSON profile and the fixed binary layouts, on the same footing: the same simulated
fleets as the end-to-end tests, the same pure functions the pipeline calls per message.

    python -m benchmarks.profiles [--messages 4000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path
from typing import Any

from gateway.profiles.registry import load_directory
from gateway.stages.decode import decoder_for
from gateway.stages.normalize import rows_normalizer
from simulators.clock import parse_start
from simulators.devices import KINDS
from simulators.fleet import build_fleet

ROOT = Path(__file__).resolve().parent.parent
START = "2026-11-23T00:00:00+07:00"

# Simulated kind -> what its profile exercises.
CONTENDERS = {
    "water": "json (mh-water-flow-json)",
    "site-monitors": "binary, fixed layout (mh-connectivity-site-bin)",
    "tanks": "tts_v3, fixed layout (mh-water-tank-tts)",
    "air-stations": "tts_v3, channel/type stream (mh-environment-air-tlv)",
    "water-meters": "tts_v3, fPort/header variants (mh-water-meter-tts)",
    "river-probes": "tts_v3, flag groups + optional word (mh-water-river-flags-tts)",
    "parking-sensors": "tts_v3 + javascript codec (mh-traffic-parking-codec-tts)",
    "lorawan-lights": "chirpstack_v4, fixed layout, topic fallback (mh-streetlight-lorawan-cs)",
    "lorawan-meters": "chirpstack_v4, content match + fPort variants (mh-water-meter-cs)",
}


def _messages(kind: str, count: int) -> list[tuple[str, bytes]]:
    devices = 50
    fleet = build_fleet(
        {kind: devices},
        seed=1,
        total_messages=count,
        start_ms=parse_start(START),
        now_ms=0,
    )
    return [(message.topic, message.payload) for message in fleet.messages()]


def _one_run(registry: Any, messages: list[tuple[str, bytes]]) -> float:
    decoders: dict[str, Any] = {}
    normalizers: dict[str, Any] = {}
    for profile in registry.profiles:
        decoders[profile.id] = decoder_for(profile.decode_spec)
        normalizers[profile.id] = rows_normalizer(profile)
    gc.collect()
    started = time.process_time()
    for topic, payload in messages:
        resolved = registry.resolve(topic, payload)
        profile_id = resolved.profile.id
        document = decoders[profile_id](payload)
        normalizers[profile_id](document, resolved.segments, 1, [])
    return time.process_time() - started


def per_profile(count: int, runs: int) -> list[dict[str, Any]]:
    """One summary per contender present in this tree: median and spread of us per message."""
    registry = load_directory(ROOT / "device_profiles")
    results = []
    for kind, what in CONTENDERS.items():
        if kind not in KINDS:
            continue
        messages = _messages(kind, count)
        timings = [_one_run(registry, messages) for _ in range(runs)]
        per_message = sorted(t / len(messages) * 1e6 for t in timings)
        results.append(
            {
                "benchmark": "profile_cpu_in_process",
                "kind": kind,
                "profile": what,
                "messages": len(messages),
                "us_per_message_median": round(statistics.median(per_message), 2),
                "us_per_message_min": round(per_message[0], 2),
                "us_per_message_max": round(per_message[-1], 2),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for summary in per_profile(args.messages, args.runs):
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
