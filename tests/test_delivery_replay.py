"""The spool's replay on its own: a Delivery between a real Spool and sinks that record.

How many spooled batches go out per request, in which order, what stays in memory while
InfluxDB is down, and how soon its return is noticed. The fault-injection suite covers the
same paths against real servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.config import SpoolSettings
from gateway.errors import SinkError
from gateway.model import Batch
from gateway.operations.counters import Metrics
from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from gateway.stages.deliver import Delivery
from gateway.stages.sinks.recording import RecordingSink
from gateway.stages.spool import SPOOL_FILE, Spool
from tests.waits import wait_for_async


class RejectingSink(RecordingSink):
    """Rejects any request holding a line with `bad` in it, as InfluxDB answers 400."""

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        if any("bad" in line for line in lines):
            raise SinkError("InfluxDB rejected the batch (HTTP 400): bad", retryable=False)
        await super().write(lines, database, rp)


class UnreachableSink(RecordingSink):
    """Refuses connections while `down`; keeps the size of every attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.attempt_sizes: list[int] = []

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        self.attempt_sizes.append(len(lines))
        if self.down:
            raise SinkError("InfluxDB unreachable: refused", retryable=True)
        await super().write(lines, database, rp)


def make_delivery(tmp_path: Path, sink: RecordingSink) -> Delivery:
    spool = Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2)
    return Delivery(
        sink,
        spool,
        DeadLetterStore(tmp_path / DEAD_LETTER_FILE),
        SpoolSettings(dir=tmp_path),
        Metrics(),
    )


async def replaying(delivery: Delivery, until: Callable[[], bool], timeout_s: float = 10.0) -> None:
    task = asyncio.create_task(delivery.replay_forever())
    try:
        await wait_for_async(until, timeout_s, "the replay to reach the expected state")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def spool_some(delivery: Delivery, batches: list[tuple[str | None, list[str]]]) -> None:
    for database, lines in batches:
        assert delivery.spool.append(database, None, lines)


async def test_small_spooled_batches_go_out_together_oldest_first(tmp_path: Path) -> None:
    sink = RecordingSink()
    delivery = make_delivery(tmp_path, sink)
    spool_some(delivery, [(None, [f"m v={n}i {n}"]) for n in range(5)])
    spool_some(delivery, [("other", ["m v=9i 9"]), (None, ["m v=10i 10"])])
    await replaying(delivery, lambda: delivery.spool.depth.batches == 0)
    assert sink.writes == [
        (None, None, [f"m v={n}i {n}" for n in range(5)]),  # one request, one removal
        ("other", None, ["m v=9i 9"]),  # a request goes to one destination
        (None, None, ["m v=10i 10"]),
    ]
    assert delivery.metrics.replayed_points == 7
    assert delivery.spool.oldest() == []


async def test_a_rejected_line_in_a_replay_request_alone_becomes_a_dead_letter(
    tmp_path: Path,
) -> None:
    sink = RejectingSink()
    delivery = make_delivery(tmp_path, sink)
    spool_some(delivery, [(None, ["m v=1i 1", "m v=2i 2"]), (None, ["m bad 3", "m v=4i 4"])])
    await replaying(delivery, lambda: delivery.spool.depth.batches == 0)
    assert sorted(sink.lines) == ["m v=1i 1", "m v=2i 2", "m v=4i 4"]
    assert delivery.dead_letters.count("rejected_by_influx") == 1


async def test_while_influx_is_down_the_replay_holds_one_spooled_batch(tmp_path: Path) -> None:
    """The backlog stays on disk: the probe is the oldest batch alone, then it all goes."""
    sink = UnreachableSink()
    delivery = make_delivery(tmp_path, sink)
    delivery.influx_down = True  # as it is before anything is spooled: a live write failed
    spool_some(delivery, [(None, [f"m v={n}i {n}"]) for n in range(4)])
    await replaying(delivery, lambda: len(sink.attempt_sizes) >= 3)
    assert delivery.influx_down
    assert set(sink.attempt_sizes) == {1}
    assert delivery.spool.depth.batches == 4  # nothing leaves before InfluxDB accepted it
    sink.down = False
    await replaying(delivery, lambda: delivery.spool.depth.batches == 0)
    assert sink.lines == [f"m v={n}i {n}" for n in range(4)]
    assert not delivery.influx_down


async def test_an_unreachable_influx_is_probed_often_enough_to_notice_its_return(
    tmp_path: Path,
) -> None:
    """A refused connection costs InfluxDB nothing, so the replay does not back off to 10 s:
    after eight failures the backoff alone would wait 10-20 s, the probe at most 1 s."""
    sink = UnreachableSink()
    delivery = make_delivery(tmp_path, sink)
    spool_some(delivery, [(None, ["m v=1i 1"])])
    outcome: list[bool] = []

    async def after_eight_failures() -> None:
        await wait_for_async(lambda: len(sink.attempt_sizes) >= 8, 20, "8 write attempts")
        sink.down = False
        await wait_for_async(lambda: delivery.spool.depth.batches == 0, 5, "the spool empty")
        outcome.append(True)

    await run_with_replay(delivery, after_eight_failures)
    assert outcome == [True]


async def run_with_replay(delivery: Delivery, scenario: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(delivery.replay_forever())
    try:
        await scenario()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class SilentSink(RecordingSink):
    """Takes the request and never answers, like an InfluxDB stopped with SIGSTOP."""

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        await asyncio.Event().wait()


async def test_a_batch_influx_never_answers_is_spooled_after_write_timeout_s(
    tmp_path: Path,
) -> None:
    """Not after the HTTP timeout ([influx] timeout_s, 10 s by default; this sink has none):
    the spool's write_timeout_s bounds the attempt itself."""
    sink = SilentSink()
    delivery = Delivery(
        sink,
        Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2),
        DeadLetterStore(tmp_path / DEAD_LETTER_FILE),
        SpoolSettings(dir=tmp_path, write_timeout_s=0.2),
        Metrics(),
    )
    lines = [f"m v={n} {n}" for n in range(3)]
    batch = Batch(lines={(None, None): list(lines)}, points=3, tokens=[1])
    async with asyncio.timeout(10):  # a deadline for a hang, not a timing: it takes ~0.2 s
        await delivery.commit(batch)
    assert delivery.spool.depth.batches == 1
    assert delivery.influx_down
    assert sink.lines == []
    assert delivery.metrics.write_failures == {"unreachable": 1}
