"""Mutate the golden payloads of every shipped profile and run them through the pure stages.

    make fuzz                                   # 1,000,000 payloads, seed 1
    .venv/bin/python -m fuzz --payloads 20000 --seed 7

Each payload goes through the profile's decoder, normalize and encode_point, exactly as the
pipeline runs them. The only exception allowed out of decode + normalize is DecodeError (a bad
message is data); anything else is a bug, printed with the payload that caused it. A payload
taking longer than `--cap-s` is interrupted by a timer and counted as a hang. Resident memory
is read at the start, after a warm-up and at the end: per-message work must not accumulate.

Deterministic: the same seed gives the same payloads, so a failure can be replayed. Mutations
are byte-level (flips, inserts, deletes, splices, interesting bytes) and structure-aware for
JSON (a value replaced by an extreme number, a hostile string, a container, null), and every
profile also receives the other profiles' payloads, so each decoder sees every format.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.errors import DecodeError
from gateway.model import Drop
from gateway.profiles.compile import CompiledProfile
from gateway.profiles.policy import OFFLINE_POLICY
from gateway.profiles.registry import load_directory
from gateway.stages.decode import Decoder, decoder_for
from gateway.stages.lineprotocol import encode_point
from gateway.stages.normalize import normalize

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "device_profiles"
GOLDEN = ROOT / "tests" / "golden"
RECEIVED_NS = 1_795_482_000 * 10**9  # a set clock, so the clock tolerance checks run too

INTERESTING_BYTES = [b"\x00", b"\xff", b'"', b"\\", b",", b"=", b" ", b"\n", b"\r", b";", b"{"]
INTERESTING_BYTES += [b"[", b"}", b"]", b":", b"\xc3", b"\xe2\x80\xa8", b"\x7f", b"-", b"."]
INTERESTING_TOKENS = [b"1e999", b"-1e999", b"NaN", b"Infinity", b"-0", b"18446744073709551616"]
INTERESTING_TOKENS += [b"null", b"true", b"[]", b"{}", b'""', b"[" * 64, b"9" * 400]
INTERESTING_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 2**64, 1e308, -1e308, 5e-324, 0.1,
    "", " ", "a,b=c d", 'q"uote', "back\\", "line\nbreak", "\x00\x1b", "ü漢🚦", "x" * 70_000,
    [], {}, [1, 2], {"a": {"b": 1}}, "1795482000000", "2026-11-24T00:00:00", "ON",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Target:
    profile: CompiledProfile
    decode: Decoder
    topic: str
    segments: dict[str, str]


@dataclass(slots=True)
class Report:
    payloads: int = 0
    decode_errors: int = 0
    points: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    hangs: int = 0
    max_s: float = 0.0
    slowest: str = ""
    rss_start_mb: float = 0.0
    rss_warm_mb: float = 0.0
    rss_end_mb: float = 0.0


class Hang(Exception):  # noqa: N818  # raised by the watchdog timer, caught by the loop
    pass


def load_targets() -> tuple[list[Target], list[bytes]]:
    """One target per golden case topic, and every golden payload as a seed."""
    registry = load_directory(PROFILES, OFFLINE_POLICY)
    targets: dict[str, Target] = {}
    seeds: list[bytes] = []
    for file in sorted(GOLDEN.glob("*.json")):
        for case in json.loads(file.read_text(encoding="utf-8")):
            seeds.append(_payload(case))
            resolved = registry.resolve(case["topic"])
            if resolved is None or resolved.profile.id in targets:
                continue
            profile = resolved.profile
            decode = decoder_for(profile.decode_spec)
            targets[profile.id] = Target(profile, decode, case["topic"], resolved.segments)
    missing = {p.id for p in registry.profiles} - targets.keys()
    if missing:
        raise SystemExit(f"profiles without golden vectors to fuzz from: {sorted(missing)}")
    return list(targets.values()), seeds


def _payload(case: dict[str, Any]) -> bytes:
    if "payload_hex" in case:
        return bytes.fromhex(case["payload_hex"])
    text: str = case["payload"]
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    if text.startswith("base64:"):
        return base64.b64decode(text[7:])
    return text.encode()


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    """One to four stacked mutations of `data`."""
    for _ in range(rng.randint(1, 4)):
        data = rng.choice(MUTATIONS)(rng, data, seeds)
    return data


def _flip(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    if not data:
        return data
    index = rng.randrange(len(data))
    return data[:index] + bytes([data[index] ^ (1 << rng.randrange(8))]) + data[index + 1 :]


def _insert(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    index = rng.randint(0, len(data))
    token = rng.choice(INTERESTING_BYTES + INTERESTING_TOKENS)
    return data[:index] + token + data[index:]


def _delete(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    if not data:
        return data
    start = rng.randrange(len(data))
    return data[:start] + data[start + rng.randint(1, 16) :]


def _truncate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    return data[: rng.randint(0, len(data))]


def _splice(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    other = rng.choice(seeds)
    return data[: rng.randint(0, len(data))] + other[rng.randint(0, len(other)) :]


def _repeat(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    if not data:
        return data
    start = rng.randrange(len(data))
    chunk = data[start : start + rng.randint(1, 32)]
    return data[:start] + chunk * rng.randint(2, 64) + data[start:]


def _random_bytes(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    return rng.randbytes(rng.randint(0, 64))


def _json_value(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    """Replace one value somewhere in a JSON document by an interesting one."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _insert(rng, data, seeds)
    containers = _containers(document)
    if not containers:
        return json.dumps(rng.choice(INTERESTING_VALUES)).encode()
    node = rng.choice(containers)
    value = rng.choice(INTERESTING_VALUES)
    if isinstance(node, dict) and node:
        node[rng.choice(list(node))] = value
    elif isinstance(node, dict):
        node["x"] = value
    elif node:
        node[rng.randrange(len(node))] = value
    return json.dumps(document, allow_nan=True).encode()


def _containers(node: Any) -> list[Any]:
    found: list[Any] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            found.append(item)
            stack.extend(item)
    return found


Mutation = Callable[[random.Random, bytes, list[bytes]], bytes]
MUTATIONS: list[Mutation] = [
    _flip, _insert, _delete, _truncate, _splice, _repeat, _random_bytes,
    _json_value, _json_value, _json_value,
]  # fmt: skip


def run_one(target: Target, payload: bytes, report: Report) -> None:
    """decode -> normalize -> encode_point; DecodeError is the one expected outcome."""
    drops: list[Drop] = []
    try:
        document = target.decode(payload)
        points = normalize(target.profile, document, target.segments, RECEIVED_NS, drops)
    except DecodeError:
        report.decode_errors += 1
        return
    for point in points:
        line = encode_point(point)
        if not line.startswith(target.profile.measurement):
            raise AssertionError(f"line does not start with the measurement: {line[:80]!r}")
    report.points += len(points)


def fuzz(payloads: int, seed: int, cap_s: float, progress: bool = False) -> Report:
    targets, seeds = load_targets()
    rng = random.Random(seed)  # reproducible payloads, not secrets
    report = Report(rss_start_mb=rss_mb())
    warm_at = max(1, payloads // 10)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for n in range(payloads):
            target = targets[n % len(targets)]
            payload = mutate(rng, rng.choice(seeds), seeds)
            _timed(target, payload, report, cap_s)
            if n + 1 == warm_at:
                report.rss_warm_mb = rss_mb()
            if progress and (n + 1) % 100_000 == 0:
                print(f"  {n + 1:>9,} payloads, rss {rss_mb():.1f} MB", file=sys.stderr)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    report.rss_end_mb = rss_mb()
    return report


def _timed(target: Target, payload: bytes, report: Report, cap_s: float) -> None:
    report.payloads += 1
    started = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, cap_s)
    try:
        run_one(target, payload, report)
    except Hang:
        report.hangs += 1
        _example(report, "hang", target, payload)
    except Exception as exc:  # noqa: BLE001  # the fuzzer's job: every other exception is a finding
        report.unexpected[type(exc).__name__] += 1
        _example(report, f"{type(exc).__name__}: {exc}"[:200], target, payload)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.perf_counter() - started
    if elapsed > report.max_s:
        report.max_s = elapsed
        report.slowest = f"{target.profile.id} {len(payload)} bytes"


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


def _example(report: Report, what: str, target: Target, payload: bytes) -> None:
    if len(report.examples) < 10:
        report.examples.append(f"{what} [{target.profile.id}] payload={payload[:200]!r}")


def rss_mb() -> float:
    """Current resident set size (not the peak), from /proc."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--payloads", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cap-s", type=float, default=1.0, help="per-payload time cap")
    parser.add_argument("--max-growth-mb", type=float, default=32.0)
    args = parser.parse_args()
    started = time.monotonic()
    report = fuzz(args.payloads, args.seed, args.cap_s, progress=True)
    elapsed = time.monotonic() - started
    growth = report.rss_end_mb - report.rss_warm_mb
    print(
        f"payloads {report.payloads:,} in {elapsed:.0f} s (seed {args.seed})\n"
        f"decode errors (expected) {report.decode_errors:,}; points {report.points:,}\n"
        f"unexpected exceptions {sum(report.unexpected.values())} {dict(report.unexpected)}\n"
        f"hangs (> {args.cap_s} s) {report.hangs}\n"
        f"max time per payload {report.max_s * 1000:.2f} ms ({report.slowest})\n"
        f"rss start {report.rss_start_mb:.1f} MB, after warm-up {report.rss_warm_mb:.1f} MB, "
        f"end {report.rss_end_mb:.1f} MB (growth after warm-up {growth:+.1f} MB)"
    )
    for example in report.examples:
        print("  " + example)
    failed = report.unexpected or report.hangs or growth > args.max_growth_mb
    sys.exit(1 if failed else 0)
