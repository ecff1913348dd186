"""`python -m simulators run|backfill|verify ...`: argparse in, a fleet and a publisher out."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson

from simulators import verify
from simulators.clock import parse_start, wall_now_ms
from simulators.devices import KINDS
from simulators.faults import FAULTS, FaultRates, parse_faults
from simulators.fleet import DAY_S, build_fleet
from simulators.gateway_spec import MAX_PAST_S, MIN_HASH_KEY_BYTES, OFFLINE_HASH_KEY
from simulators.publisher import BrokerAddress, PublishError, connect_publisher, parse_broker
from simulators.runner import (
    DEVICE_BURST,
    DEVICE_RATE_PER_S,
    Publisher,
    QosPlan,
    RunLimits,
    RunStats,
    run,
    summary_line,
)
from simulators.truth import open_truth

MAX_DEVICES_PER_KIND = 9999
MQTT_QOS = (0, 1, 2)
T = TypeVar("T")
EXIT_FAILED = 1
BACKFILL_DEVICES_PER_KIND = 2
# The gateway replaces device times older than max_past_s (30 days) by the receive time; a day
# less leaves room for a slow backfill.
MAX_BACKFILL_DAYS = MAX_PAST_S / DAY_S - 1
PRIVACY_KEY_ENV = "SIM_PRIVACY_KEY"


@dataclass(frozen=True, slots=True)
class RunCommand:
    broker: BrokerAddress
    device_counts: dict[str, int]
    messages: int
    limits: RunLimits
    seed: int
    start_ms: int | None
    span_s: int | None
    faults: FaultRates | None
    qos: QosPlan
    client_id: str
    truth: Path | None
    summary_json: Path | None
    speedup: float | None
    quiet: bool
    privacy_key: bytes = OFFLINE_HASH_KEY


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators",
        description="Simulated Mỹ Hào devices over MQTT: street lights, water meters, traffic "
        "counters, reservoir levels, water quality, traffic radars, signals and plate cameras, "
        "broadband probes, telecom site monitors, lighting cabinets and pressure loggers.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="publish telemetry from a simulated fleet")
    _add_fleet_arguments(run_parser, default_count=0)
    _add_run_arguments(run_parser)
    backfill_parser = commands.add_parser(
        "backfill",
        help="publish days of history at once (device times in the past), every kind",
        description="Every device reports each interval of the last --days days, as fast as "
        "the gateway's per-device rate limit allows, ending one interval before now.",
    )
    _add_fleet_arguments(backfill_parser, default_count=BACKFILL_DEVICES_PER_KIND)
    backfill_parser.add_argument(
        "--days",
        type=_backfill_days,
        default=7.0,
        help=f"days of history, at most {MAX_BACKFILL_DAYS:g} (default 7)",
    )
    verify_parser = commands.add_parser(
        "verify", help="compare InfluxDB (and the dead-letter store) with a truth file"
    )
    verify.add_arguments(verify_parser)
    return parser


def _add_fleet_arguments(parser: argparse.ArgumentParser, default_count: int) -> None:
    parser.add_argument(
        "--broker",
        type=_explained(parse_broker),
        default=parse_broker("127.0.0.1:1883"),
        help="HOST:PORT, HOST or [IPv6]:PORT (default 127.0.0.1:1883)",
    )
    devices = parser.add_argument_group(
        "devices",
        f"how many of each kind to simulate (each defaults to {default_count}; "
        "ask for at least one)",
    )
    for kind in KINDS.values():
        devices.add_argument(
            f"--{kind.name}",
            dest=kind.name,  # not quality_probes: parse_run_command looks kinds up by name
            type=_non_negative_int,
            default=default_count,
            metavar="N",
            help=f"number of {kind.label} ({kind.id_prefix}-0001, ...)",
        )
    parser.add_argument(
        "--rate",
        type=_non_negative_float,
        default=0.0,
        help="messages per wall second across all devices; 0 = as fast as possible",
    )
    parser.add_argument(
        "--device-rate",
        type=_non_negative_float,
        default=DEVICE_RATE_PER_S,
        metavar="MSGS_PER_S",
        help="after --device-burst reports, no device reports faster than this, below the "
        f"gateway's per-device limit (default {DEVICE_RATE_PER_S:g}; 0 = no limit)",
    )
    parser.add_argument(
        "--device-burst",
        type=_non_negative_int,
        default=DEVICE_BURST,
        metavar="N",
        help=f"reports per device before --device-rate applies (default {DEVICE_BURST})",
    )
    parser.add_argument(
        "--faults",
        type=_explained(parse_faults),
        metavar="NAME=RATE,...",
        help="inject faults with these chances per report, e.g. malformed=0.01,duplicate=0.02 "
        "(all=RATE for every fault); names: " + ", ".join(FAULTS),
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same payloads and truth")
    parser.add_argument(
        "--qos",
        type=int,
        choices=MQTT_QOS,
        default=1,
        help="MQTT QoS of every device kind not named in --kind-qos (default 1)",
    )
    parser.add_argument(
        "--kind-qos",
        type=_explained(parse_kind_qos),
        default={},
        metavar="KIND=QOS,...",
        help="QoS per device kind, e.g. lighting=0,traffic=0: cheap devices often publish at "
        "QoS 0; kinds: " + ", ".join(KINDS),
    )
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
    parser.add_argument(
        "--privacy-key",
        metavar="KEY",
        help="the gateway's [privacy] hash key, for the truth of hashed fields (plates); prefer "
        f"the environment variable {PRIVACY_KEY_ENV} (kept out of ps); default: the public "
        "key of the golden vectors",
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages",
        type=_non_negative_int,
        required=True,
        help="MQTT messages to publish across all devices (at most: a silent device sends fewer)",
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
    parser.add_argument(
        "--start",
        type=_explained(parse_start),
        metavar="ISO8601",
        help="first report time with an offset, e.g. 2026-11-24T00:00:00+07:00 "
        "(default: early enough that the last reports are from now)",
    )


def parse_kind_qos(text: str) -> dict[str, int]:
    """`KIND=QOS,...` as {kind: qos}, e.g. "lighting=0,water=1"."""
    plan: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, equals, qos_text = item.partition("=")
        if kind not in KINDS:
            msg = f"--kind-qos {item!r}: unknown kind {kind!r}; kinds: {', '.join(KINDS)}"
            raise ValueError(msg)
        if not equals or qos_text.strip() not in {str(qos) for qos in MQTT_QOS}:
            msg = f"--kind-qos {item!r}: write KIND=QOS with QOS 0, 1 or 2"
            raise ValueError(msg)
        plan[kind] = int(qos_text)
    return plan


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


def _backfill_days(text: str) -> float:
    days = _positive_float(text)
    if days > MAX_BACKFILL_DAYS:
        msg = (
            f"{text} days: at most {MAX_BACKFILL_DAYS:g}, the gateway stores older device "
            "times at their receive time (time.max_past_s is 30 days)"
        )
        raise argparse.ArgumentTypeError(msg)
    return days


def parse_run_command(args: argparse.Namespace) -> RunCommand:
    """A `run` or `backfill` command line as a RunCommand."""
    counts = {kind: getattr(args, kind) for kind in KINDS}
    if any(n > MAX_DEVICES_PER_KIND for n in counts.values()):
        msg = f"at most {MAX_DEVICES_PER_KIND} devices per kind (device ids have 4 digits)"
        raise ValueError(msg)
    if not any(counts.values()):
        msg = "no devices: ask for at least one of " + ", ".join(f"--{kind}" for kind in KINDS)
        raise ValueError(msg)
    backfill = args.command == "backfill"
    privacy_key = _privacy_key(args.privacy_key or os.environ.get(PRIVACY_KEY_ENV))
    limits = RunLimits(
        rate_msgs_per_s=args.rate,
        duration_s=None if backfill else args.duration,
        device_rate_per_s=args.device_rate,
        device_burst=args.device_burst,
    )
    return RunCommand(
        broker=args.broker,
        device_counts=counts,
        messages=sys.maxsize if backfill else args.messages,
        limits=limits,
        seed=args.seed,
        start_ms=None if backfill else args.start,
        span_s=round(args.days * DAY_S) if backfill else None,
        faults=args.faults,
        qos=QosPlan(args.qos, args.kind_qos),
        client_id=args.client_id or f"mh-sim-{os.getpid()}",
        truth=args.truth,
        summary_json=args.summary_json,
        speedup=None if backfill else args.speedup,
        quiet=args.quiet,
        privacy_key=privacy_key,
    )


def _privacy_key(text: str | None) -> bytes:
    """The key as the gateway reads it: text, UTF-8 (a key file's final newline stripped)."""
    if text is None:
        return OFFLINE_HASH_KEY
    key = text.rstrip("\r\n").encode()
    if len(key) < MIN_HASH_KEY_BYTES:
        # The gateway refuses such a key, so no truth made with it could ever match.
        msg = f"--privacy-key / {PRIVACY_KEY_ENV}: at least {MIN_HASH_KEY_BYTES} bytes"
        raise ValueError(msg)
    return key


async def run_command(command: RunCommand) -> RunStats:
    fleet = build_fleet(
        command.device_counts,
        seed=command.seed,
        total_messages=command.messages,
        start_ms=command.start_ms,
        now_ms=wall_now_ms(),
        faults=command.faults,
        span_s=command.span_s,
        privacy_key=command.privacy_key,
    )
    limits = command.limits
    if command.speedup is not None:
        rate = fleet.reports_per_second() * command.speedup
        limits = dataclasses.replace(limits, rate_msgs_per_s=rate)

    def connect() -> AbstractAsyncContextManager[Publisher]:
        return connect_publisher(command.broker, client_id=command.client_id)

    stats = RunStats(planned_messages=fleet.total_messages)
    with open_truth(command.truth) as truth:
        progress = None if command.quiet else sys.stderr
        return await run(
            fleet.messages(),
            connect,
            truth,
            stats,
            limits=limits,
            qos=command.qos,
            progress=progress,
        )


def summary_document(stats: RunStats) -> dict[str, object]:
    document: dict[str, object] = {
        "messages": stats.messages,
        "readings": stats.readings,
        "per_measurement": dict(stats.readings_by_measurement),
        "messages_by_qos": {str(qos): n for qos, n in sorted(stats.messages_by_qos.items())},
    }
    if stats.faults:
        document["faults"] = dict(stats.faults)
        document["dead_letters_expected"] = dict(stats.dead_letters_expected)
    return document


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "verify":
        return verify.main(args)
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
