"""Drives a fleet's messages into a publisher: pacing, stopping, progress and counts.

The publisher is anything with `async publish(topic, payload, qos)`; the CLI passes the MQTT
one and tests a recording one, so the loop is tested without a broker. Each message goes out at
its device kind's QoS (a `QosPlan`): a real town mixes cheap QoS 0 devices with QoS 1 ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from simulators.fleet import OutgoingMessage
from simulators.truth import Expect, TruthSink

# After a stall (slow broker, busy machine) the pacer forgives debt beyond this much, so it
# catches up with a short burst instead of flooding the broker.
MAX_BURST_S = 1.0
# The gateway's per-device token bucket (gateway_spec.DEVICE_RATE_PER_S, DEVICE_BURST) with a
# margin: a device's reports beyond the burst leave no faster than this, so none is refused.
DEVICE_RATE_PER_S = 19.0
DEVICE_BURST = 4_000
# Sleeps shorter than this are plain sleeps; longer ones also wake on a stop request.
_INTERRUPTIBLE_SLEEP_S = 0.1
PROGRESS_EVERY_S = 0.5


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes, qos: int) -> None: ...


@dataclass(frozen=True, slots=True)
class QosPlan:
    """The MQTT QoS each device kind publishes at: `default`, or its entry in `by_kind`."""

    default: int = 1
    by_kind: Mapping[str, int] = field(default_factory=dict)

    def of(self, kind: str) -> int:
        return self.by_kind.get(kind, self.default)

    def describe(self) -> str:
        """`QoS 1`, or with exceptions `QoS 1 (QoS 0: lighting, traffic)`."""
        others = sorted({qos for qos in self.by_kind.values() if qos != self.default})
        kinds = {
            qos: ", ".join(sorted(k for k, q in self.by_kind.items() if q == qos)) for qos in others
        }
        exceptions = "; ".join(f"QoS {qos}: {kinds[qos]}" for qos in others)
        return f"QoS {self.default}" + (f" ({exceptions})" if exceptions else "")


@dataclass(frozen=True, slots=True)
class RunLimits:
    rate_msgs_per_s: float = 0.0
    """Messages per wall second across all devices; 0 publishes as fast as possible."""
    duration_s: float | None = None
    """Stop generating after this many wall seconds, even if messages remain."""
    device_rate_per_s: float = DEVICE_RATE_PER_S
    """Sustained reports per wall second per device beyond `device_burst`; 0 = no limit."""
    device_burst: int = DEVICE_BURST


@dataclass(slots=True)
class RunStats:
    planned_messages: int
    messages_by_kind: Counter[str] = field(default_factory=Counter)
    messages_by_qos: Counter[int] = field(default_factory=Counter)
    readings_by_measurement: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    dead_letters_expected: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    stopped_early: bool = False

    @property
    def messages(self) -> int:
        return self.messages_by_kind.total()

    @property
    def readings(self) -> int:
        return self.readings_by_measurement.total()

    def rate_msgs_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def count(self, message: OutgoingMessage) -> None:
        if message.published:
            self.messages_by_kind[message.kind] += 1
        self.readings_by_measurement.update(reading.measurement for reading in message.readings)
        self.readings_by_measurement.update(r.measurement for r in message.receive_time)
        fault = message.fault
        if fault is not None:
            self.faults[fault.fault] += 1
            if fault.expect is Expect.DEAD_LETTER and fault.reason is not None:
                self.dead_letters_expected[fault.reason] += 1


class TokenPacer:
    """Message n may leave at start + n / rate (wall seconds from `now`)."""

    def __init__(self, rate_msgs_per_s: float, now: Callable[[], float]) -> None:
        self._interval_s = 1 / rate_msgs_per_s if rate_msgs_per_s > 0 else 0.0
        self._now = now
        self._next_s = now()

    def delay_s(self) -> float:
        """How long to wait before sending the next message; takes its token."""
        if self._interval_s == 0:
            return 0.0
        now = self._now()
        self._next_s = max(self._next_s, now - MAX_BURST_S)
        delay = self._next_s - now
        self._next_s += self._interval_s
        return max(delay, 0.0)


class DeviceRateGuard:
    """A device's report n may leave at start + (n - burst) / rate: what the gateway's token
    bucket per device admits, so a long backfill is never refused as rate_limited."""

    def __init__(self, rate_per_s: float, burst: int, now: Callable[[], float]) -> None:
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._now = now
        self._start_s = now()

    def delay_s(self, report_index: int) -> float:
        if self._rate_per_s <= 0 or report_index < self._burst:
            return 0.0
        due_s = self._start_s + (report_index - self._burst) / self._rate_per_s
        return max(due_s - self._now(), 0.0)


async def run(
    messages: Iterable[OutgoingMessage],
    connect: Callable[[], AbstractAsyncContextManager[Publisher]],
    truth: TruthSink,
    stats: RunStats,
    *,
    limits: RunLimits,
    qos: QosPlan = QosPlan(),
    progress: TextIO | None = None,
) -> RunStats:
    """Publish `messages` at their kind's `qos`, recording each one's readings in `truth` as it
    is handed over.

    Returns when every message is acknowledged, the duration is up, or SIGINT/SIGTERM asked to
    stop; in the last two cases what was already handed over is still flushed.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    started_s = loop.time()
    reporter = _start_progress(stats, progress, started_s) if progress else None
    try:
        with _stop_on_signals(stop):
            async with connect() as publisher:
                await _publish(
                    messages, publisher, truth=truth, stats=stats, limits=limits, qos=qos, stop=stop
                )
    finally:
        stats.elapsed_s = loop.time() - started_s
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
    return stats


async def _publish(
    messages: Iterable[OutgoingMessage],
    publisher: Publisher,
    *,
    truth: TruthSink,
    stats: RunStats,
    limits: RunLimits,
    qos: QosPlan,
    stop: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    pacer = TokenPacer(limits.rate_msgs_per_s, loop.time)
    guard = DeviceRateGuard(limits.device_rate_per_s, limits.device_burst, loop.time)
    deadline_s = loop.time() + limits.duration_s if limits.duration_s is not None else None
    for message in messages:
        if not message.published:  # a silent device: only the truth hears of it
            truth.write(message.readings, message.fault)
            stats.count(message)
            continue
        delay_s = max(pacer.delay_s(), guard.delay_s(message.report_index))
        if deadline_s is not None:
            delay_s = min(delay_s, max(deadline_s - loop.time(), 0.0))
        await _pace(delay_s, stop)
        if stop.is_set() or (deadline_s is not None and loop.time() >= deadline_s):
            stats.stopped_early = True
            return
        truth.write([*message.readings, *message.receive_time], message.fault)
        message_qos = qos.of(message.kind)
        await publisher.publish(message.topic, message.payload, message_qos)
        stats.count(message)
        stats.messages_by_qos[message_qos] += 1


async def _pace(delay_s: float, stop: asyncio.Event) -> None:
    if delay_s <= 0:
        return
    if delay_s < _INTERRUPTIBLE_SLEEP_S:
        await asyncio.sleep(delay_s)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay_s)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C or SIGTERM: stop generating, let the publisher flush what it holds, then exit.

    The first signal also gives the default handlers back, so a second Ctrl-C interrupts a
    flush that hangs on a broker that no longer answers.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def restore() -> None:
        while installed:
            loop.remove_signal_handler(installed.pop())

    def on_signal() -> None:
        stop.set()
        restore()

    for signum in (signal.SIGINT, signal.SIGTERM):
        # Only a main-thread event loop may own signal handlers; elsewhere run without them.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, on_signal)
            installed.append(signum)
    try:
        yield
    finally:
        restore()


def _start_progress(stats: RunStats, stream: TextIO, started_s: float) -> asyncio.Task[None]:
    return asyncio.create_task(_report_progress(stats, stream, started_s), name="sim-progress")


async def _report_progress(stats: RunStats, stream: TextIO, started_s: float) -> None:
    # On a terminal one line is rewritten in place; in a log, a line every few seconds.
    loop = asyncio.get_running_loop()
    interactive = stream.isatty()
    every_s = PROGRESS_EVERY_S if interactive else 5.0
    try:
        while True:
            await asyncio.sleep(every_s)
            elapsed_s = loop.time() - started_s
            line = progress_line(stats, elapsed_s)
            stream.write(f"\r{line}\033[K" if interactive else f"{line}\n")
            stream.flush()
    finally:
        if interactive:
            stream.write("\r\033[K")
            stream.flush()


def progress_line(stats: RunStats, elapsed_s: float) -> str:
    rate = stats.messages / elapsed_s if elapsed_s > 0 else 0.0
    return f"sim: {stats.messages:,}/{stats.planned_messages:,} messages, {rate:,.0f} msg/s"


def summary_line(stats: RunStats, *, qos: QosPlan) -> str:
    kinds = ", ".join(f"{kind} {n}" for kind, n in stats.messages_by_kind.items())
    measurements = ", ".join(f"{name} {n}" for name, n in stats.readings_by_measurement.items())
    ending = " (stopped early)" if stats.stopped_early else ""
    if stats.faults:
        faults = ", ".join(f"{name} {n}" for name, n in sorted(stats.faults.items()))
        dead = stats.dead_letters_expected.total()
        ending += f"; faults: {faults}; {dead} dead letters expected"
    return (
        f"sim: sent {stats.messages} messages ({kinds}) carrying {stats.readings} readings "
        f"({measurements}) in {stats.elapsed_s:.2f} s, {stats.rate_msgs_per_s():,.0f} msg/s, "
        f"{qos.describe()}{ending}"
    )
