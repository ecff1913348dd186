"""`python -m simulators run ...`: argparse in, a fleet and a publisher out."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson

from simulators.clock import parse_start, wall_now_ms
from simulators.devices import KINDS
from simulators.fleet import build_fleet
from simulators.publisher import BrokerAddress, PublishError, connect_publisher, parse_broker
from simulators.runner import Publisher, RunLimits, RunStats, run, summary_line
from simulators.truth import open_truth

MAX_DEVICES_PER_KIND = 9999
T = TypeVar("T")
EXIT_FAILED = 1


@dataclass(frozen=True, slots=True)
class RunCommand:
    broker: BrokerAddress
    device_counts: dict[str, int]
    messages: int
    limits: RunLimits
    seed: int
    start_ms: int | None
    qos: int
    client_id: str
    truth: Path | None
    summary_json: Path | None
    speedup: float | None
    quiet: bool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators",
        description="Simulated Mỹ Hào devices over MQTT: street lights, water meters, traffic "
        "counters, reservoir levels, water quality, traffic radars and signals, broadband "
        "probes and telecom site monitors.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="publish telemetry from a simulated fleet")
    _add_run_arguments(run_parser)
    return parser


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        type=_explained(parse_broker),
        default=parse_broker("127.0.0.1:1883"),
        help="HOST:PORT, HOST or [IPv6]:PORT (default 127.0.0.1:1883)",
    )
    devices = parser.add_argument_group(
        "devices", "how many of each kind to simulate (each defaults to 0; ask for at least one)"
    )
    for kind in KINDS.values():
        devices.add_argument(
            f"--{kind.name}",
            dest=kind.name,  # not quality_probes: parse_run_command looks kinds up by name
            type=_non_negative_int,
            default=0,
            metavar="N",
            help=f"number of {kind.label} ({kind.id_prefix}-0001, ...)",
        )
    parser.add_argument(
        "--messages",
        type=_non_negative_int,
        required=True,
        help="MQTT messages to publish across all devices",
    )
    parser.add_argument(
        "--rate",
        type=_non_negative_float,
        default=0.0,
        help="messages per wall second across all devices; 0 = as fast as possible",
    )
    parser.add_argument(
        "--duration",
        type=_non_negative_float,
        metavar="SECONDS",
        help="stop after this many wall seconds even if messages remain",
    )
    parser.add_argument(
        "--speedup",
        type=_positive_float,
        metavar="X",
        help="pace so that simulated time runs X times faster than wall time (overrides --rate)",
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same payloads and truth")
    parser.add_argument(
        "--start",
        type=_explained(parse_start),
        metavar="ISO8601",
        help="first report time with an offset, e.g. 2026-11-24T00:00:00+07:00 "
        "(default: early enough that the last reports are from now)",
    )
    parser.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    parser.add_argument("--client-id", help="MQTT client id (default mh-sim-PID)")
    parser.add_argument(
        "--truth", type=Path, metavar="FILE", help="write one JSON line per reading sent"
    )
    parser.add_argument(
        "--summary-json", type=Path, metavar="FILE", help="write message and reading counts"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no live progress line (the summary line is still printed)",
    )


def _explained(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Let argparse show our reason: it hides the message of a plain ValueError."""

    def parse_argument(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return parse_argument


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        msg = f"{value} is negative"
        raise argparse.ArgumentTypeError(msg)
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects NaN
        msg = f"{text} is not a number >= 0"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        msg = "must be greater than 0"
        raise argparse.ArgumentTypeError(msg)
    return value


def parse_run_command(args: argparse.Namespace) -> RunCommand:
    counts = {kind: getattr(args, kind) for kind in KINDS}
    if any(n > MAX_DEVICES_PER_KIND for n in counts.values()):
        msg = f"at most {MAX_DEVICES_PER_KIND} devices per kind (device ids have 4 digits)"
        raise ValueError(msg)
    if not any(counts.values()):
        msg = "no devices: ask for at least one of " + ", ".join(f"--{kind}" for kind in KINDS)
        raise ValueError(msg)
    return RunCommand(
        broker=args.broker,
        device_counts=counts,
        messages=args.messages,
        limits=RunLimits(rate_msgs_per_s=args.rate, duration_s=args.duration),
        seed=args.seed,
        start_ms=args.start,
        qos=args.qos,
        client_id=args.client_id or f"mh-sim-{os.getpid()}",
        truth=args.truth,
        summary_json=args.summary_json,
        speedup=args.speedup,
        quiet=args.quiet,
    )


async def run_command(command: RunCommand) -> RunStats:
    fleet = build_fleet(
        command.device_counts,
        seed=command.seed,
        total_messages=command.messages,
        start_ms=command.start_ms,
        now_ms=wall_now_ms(),
    )
    limits = command.limits
    if command.speedup is not None:
        rate = fleet.reports_per_second() * command.speedup
        limits = RunLimits(rate_msgs_per_s=rate, duration_s=limits.duration_s)

    def connect() -> AbstractAsyncContextManager[Publisher]:
        return connect_publisher(command.broker, qos=command.qos, client_id=command.client_id)

    stats = RunStats(planned_messages=fleet.total_messages)
    with open_truth(command.truth) as truth:
        progress = None if command.quiet else sys.stderr
        return await run(fleet.messages(), connect, truth, stats, limits=limits, progress=progress)


def summary_document(stats: RunStats) -> dict[str, object]:
    return {
        "messages": stats.messages,
        "readings": stats.readings,
        "per_measurement": dict(stats.readings_by_measurement),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        command = parse_run_command(args)
    except ValueError as exc:
        parser.error(str(exc))
    stats: RunStats | None = None
    failure: str | None = None
    try:
        stats = asyncio.run(run_command(command))
    except* PublishError as group:
        failure = f"MQTT error with broker {command.broker}: {_first(group)}"
    except* OSError as group:
        failure = str(_first(group))
    if stats is None:
        print(f"sim: {failure}", file=sys.stderr)
        return EXIT_FAILED
    print(summary_line(stats, qos=command.qos), file=sys.stderr)
    if command.summary_json is not None:
        command.summary_json.write_bytes(orjson.dumps(summary_document(stats)))
    return 0


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf
