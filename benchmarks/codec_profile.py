"""CPU per message through a vendor-codec profile, next to a JSON profile, in process.

The codec profile is tests/codecs/soil-probe-cs.yaml: a ChirpStack v4 uplink whose frame the
TS013 codec tests/codecs/soil-probe-ts013.js decodes in the QuickJS sandbox (envelope JSON,
base64, the codec call, its JSON answer, then normalize as for any profile). The JSON profile
is device_profiles/water/flow-meter-json.yaml. Both go through the same steps the pipeline runs
per message: resolve (with the payload: the codec profile shares its topic with two others),
decode, normalize to rows with line protocol.

    python -m benchmarks.codec_profile [--messages 4000] [--runs 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.profiles import _one_run as one_run
from gateway.profiles.registry import load_directory

ROOT = Path(__file__).resolve().parent.parent
CODEC_PROFILES = ROOT / "tests" / "codecs"
JSON_PROFILES = ROOT / "device_profiles" / "water"


def codec_messages(count: int) -> list[tuple[str, bytes]]:
    messages = []
    for n in range(count):
        device = f"a8404100000{n % 50:05d}"
        frame = (
            (2000 + n % 900).to_bytes(2, "big") + bytes([60 + n % 80]) + (3000).to_bytes(2, "big")
        )
        uplink = {
            "time": f"2026-11-24T01:{n // 60 % 60:02d}:{n % 60:02d}.123456789Z",
            "deviceInfo": {"deviceProfileName": "soil-probe", "devEui": device},
            "fCnt": n,
            "fPort": 2,
            "data": base64.b64encode(frame).decode(),
            "rxInfo": [{"gatewayId": "0016c001f153a14c", "rssi": -90 - n % 20, "snr": 5.5}],
        }
        topic = f"application/9a1c/device/{device}/event/up"
        messages.append((topic, json.dumps(uplink).encode()))
    return messages


def json_messages(count: int) -> list[tuple[str, bytes]]:
    messages = []
    for n in range(count):
        reading = {
            "time": f"2026-11-24T08:{n // 60 % 60:02d}:{n % 60:02d}.123+07:00",
            "flow": {"value": 12.5 + n % 7, "unit": "L/s"},
            "pressure_kpa": 312.4,
            "totalizer_m3": 12345.678 + n,
            "battery_pct": 87,
        }
        topic = f"city/water/nhan-hoa/wm-{n % 50:04d}/telemetry"
        messages.append((topic, json.dumps(reading).encode()))
    return messages


def codec_summaries(count: int, runs: int) -> list[dict[str, Any]]:
    contenders = [
        ("javascript codec, chirpstack_v4 (test-soil-probe-cs)", CODEC_PROFILES, codec_messages),
        ("json (mh-water-flow-json)", JSON_PROFILES, json_messages),
    ]
    results = []
    for what, folder, make in contenders:
        registry = load_directory(folder)
        messages = make(count)
        per_message = sorted(one_run(registry, messages) / count * 1e6 for _ in range(runs))
        results.append(
            {
                "benchmark": "profile_cpu_in_process",
                "profile": what,
                "messages": count,
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
    for summary in codec_summaries(args.messages, args.runs):
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
