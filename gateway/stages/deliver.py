"""Making batches durable: InfluxDB when it answers, the disk spool when it does not.

    sealed batch -> dead letters fsynced -> receive times fsynced
                 -> each destination's lines: InfluxDB (a live write)
                        | failing for `write_timeout_s`, or InfluxDB known down -> spool (fsync)
                        | content rejected (400/413/422...) -> the lines the answer names, else
                          a bounded halving search; those become dead letters, the rest is
                          written
    spool -> replayer task, oldest first, up to `_REPLAY_MAX_POINTS` per request and removed
             in one transaction each, while live batches go straight to InfluxDB again; while
             InfluxDB gives no answer at all it is probed at least once a second

`commit(batch)` returns only when every line of the batch is in InfluxDB, in the spool or in
the dead-letter store: that is when the pipeline acknowledges the batch's messages. When the
spool is full, `commit` keeps retrying InfluxDB instead, so the writer stops, intake pauses and
the broker holds new messages: nothing is deleted to make room.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar, TypeVarTuple

from gateway.config import SpoolSettings
from gateway.errors import SinkError
from gateway.model import Batch, DeadLetter
from gateway.operations.counters import Metrics
from gateway.stages.deadletter import DeadLetterStore
from gateway.stages.sinks import RefusedLinesError, Sink
from gateway.stages.spool import Spool, SpooledBatch

log = logging.getLogger(__name__)

_RETRY_MIN_S = 0.2
_RETRY_MAX_S = 10.0
_PROGRESS_EVERY_S = 10.0
_PROBE_MAX_S = 1.0
_REPLAY_MAX_POINTS = 5_000
# Extra write requests one batch may cost to find the lines InfluxDB refuses when its answer
# does not name them: a halving search needs about 2·log2(n) per bad line, so this finds a
# few bad lines in a 5,000-line batch and bounds a batch full of them.
_SEARCH_MAX_REQUESTS = 64

_T = TypeVar("_T")
_Args = TypeVarTuple("_Args")

Write = Callable[[list[str], str | None, str | None], Awaitable[None]]


@dataclass(slots=True)
class _Isolation:
    """One batch's destination and writer while its refused lines are looked for, with the
    extra requests the search may still make."""

    database: str | None
    rp: str | None
    write: Write
    requests_left: int = _SEARCH_MAX_REQUESTS

    def take(self, requests: int = 1) -> bool:
        if self.requests_left < requests:
            return False
        self.requests_left -= requests
        return True


class Delivery:
    def __init__(
        self,
        sink: Sink,
        spool: Spool,
        dead_letters: DeadLetterStore,
        settings: SpoolSettings,
        metrics: Metrics,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.dead_letters = dead_letters
        self.settings = settings
        self.metrics = metrics
        self.influx_down = False  # a write failed and none has succeeded since
        self._spool_has_batches = asyncio.Event()
        # One thread for all blocking spool and dead-letter work rather than asyncio's default
        # pool of up to 6: glibc gives each thread that allocates its own malloc arena, and the
        # batch bodies built and read there (about a megabyte each) leave freed memory behind
        # in each, so RSS rose by a few MB more when an outage started spooling. The spool
        # serializes its calls with a lock anyway.
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._update_spool_metrics()
        if spool.depth.batches:
            log.info(
                "spool holds %d batches (%d points) from before; replaying them",
                spool.depth.batches,
                spool.depth.points,
            )
            self._spool_has_batches.set()

    # ---- live batches ---------------------------------------------------------------------------

    async def commit(self, batch: Batch) -> None:
        """Return once every line of the batch is in InfluxDB, the spool or the dead letters."""
        if batch.dead_letters:
            await self._on_disk(self.dead_letters.add, batch.dead_letters)
        if batch.receipts:
            await self._on_disk(self.spool.record_receive_times, batch.receipts)
        for (database, rp), lines in batch.lines.items():
            rejected = await self._write_isolating(lines, database, rp, self._write_or_spool)
            if rejected:
                await self._on_disk(self.dead_letters.add, rejected)
        self.metrics.batches_written += 1
        self.metrics.points_written.update(batch.points_by_domain)

    async def _write_or_spool(self, lines: list[str], database: str | None, rp: str | None) -> None:
        """Write live lines; spool them once InfluxDB has failed for `write_timeout_s`.

        Raises SinkError only for answers about the content (not retryable)."""
        deadline = time.monotonic() + self.settings.write_timeout_s
        attempt = 0
        while True:
            if (
                self.settings.enabled
                and self.influx_down
                and await self._spool(lines, database, rp)
            ):
                return
            try:
                await self._write_before(deadline, lines, database, rp)
                return
            except SinkError as exc:
                if not exc.retryable:
                    raise
                delay = self._note_failure(exc, attempt)
            if self.settings.enabled and time.monotonic() >= deadline:
                if not self.influx_down:
                    log.warning(
                        "InfluxDB failing for %.1fs: spooling batches to disk until it recovers",
                        self.settings.write_timeout_s,
                    )
                self.influx_down = True
                continue  # spool now (or, when full, try InfluxDB again below)
            if self.settings.enabled:
                delay = min(delay, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(delay)
            attempt += 1

    async def _spool(self, lines: list[str], database: str | None, rp: str | None) -> bool:
        stored = await self._on_disk(self.spool.append, database, rp, lines)
        if stored:
            self.metrics.spooled_batches += 1
            self._spool_has_batches.set()
            if self.metrics.spool_full:
                log.warning("spool has room again: acknowledging new messages")
                self.metrics.spool_full = False
        elif not self.metrics.spool_full:
            self.metrics.spool_full = True
            log.error(
                "spool full (%d of %d bytes): not acknowledging new messages; the broker holds "
                "them until InfluxDB recovers",
                self.spool.depth.bytes,
                self.spool.max_bytes,
            )
        self._update_spool_metrics()
        if not stored:
            await asyncio.sleep(self._backoff(3))  # the spool only drains once InfluxDB is back
        return stored

    # ---- the spool's replay -----------------------------------------------------------------

    async def replay_forever(self) -> None:
        """Write spooled batches to InfluxDB, oldest first, whenever there are any."""
        progress_at = time.monotonic()
        replayed_points = 0
        while True:
            # Cleared before looking, so a batch spooled while we look still wakes us below.
            self._spool_has_batches.clear()
            batches = await self._on_disk(self.spool.oldest, self._replay_points())
            if not batches:
                if replayed_points:
                    log.info("spool drained: %d points replayed", replayed_points)
                    replayed_points = 0
                self._update_spool_metrics()
                await self._spool_has_batches.wait()
                continue
            replayed_points += await self._replay(batches)
            if time.monotonic() - progress_at >= _PROGRESS_EVERY_S:
                progress_at = time.monotonic()
                self._log_spool_progress()

    def _replay_points(self) -> int:
        """Points to send in one replay request.

        While InfluxDB is down the request is a probe that waits in memory until it succeeds,
        so it is one spooled batch: the backlog stays on disk. Once InfluxDB answers, small
        spooled batches (sealed by age) go out together, up to `_REPLAY_MAX_POINTS`.

        Why not 20-50k points per request, which InfluxDB 1.6 takes and which costs it about
        15% less CPU per point than 5k (its parse and WAL fsync are per request): each point in
        flight costs us about 500 bytes (its line, the joined body, the encoded body), so two
        requests of 20k raised the gateway's RSS by 20-30 MB during the replay, against a
        target of staying within 10% (8 MB) of its RSS before the outage. With the default
        `[batch] max_points` this is one spooled batch per request, as live writes are.
        For the same reason there is one replay request at a time: a second one in flight
        cost 3-4 MB more and no measurable rate on a busy 2-core box, where InfluxDB's CPU,
        not our round trips, limits the replay."""
        return 1 if self.influx_down else _REPLAY_MAX_POINTS

    async def _replay(self, batches: list[SpooledBatch]) -> int:
        """Write (or expire) spooled batches of one destination and remove them; returns the
        points replayed."""
        now_ns = time.time_ns()
        oldest_due_ns = now_ns - int(self.settings.max_age_s * 1e9)
        expired = [batch for batch in batches if batch.spooled_ns < oldest_due_ns]
        due = [batch for batch in batches if batch.spooled_ns >= oldest_due_ns]
        if expired:
            await self._expire(expired, now_ns)
        replayed = 0
        if due:
            lines = [line for batch in due for line in batch.lines]
            rejected = await self._write_isolating(
                lines, due[0].database, due[0].retention_policy, self._write_retrying
            )
            if rejected:
                await self._on_disk(self.dead_letters.add, rejected)
            replayed = len(lines) - len(rejected)
            self.metrics.replayed_batches += len(due)
            self.metrics.replayed_points += replayed
        await self._on_disk(self.spool.remove, batches)
        self._update_spool_metrics()
        return replayed

    async def _expire(self, batches: list[SpooledBatch], now_ns: int) -> None:
        letters = [
            DeadLetter(
                batch.spooled_ns,
                "",
                "\n".join(batch.lines).encode(),
                "spool_expired",
                f"spooled {(now_ns - batch.spooled_ns) / 1e9:.0f}s ago and never accepted",
                database=batch.database,
                retention_policy=batch.retention_policy,
            )
            for batch in batches
        ]
        await self._on_disk(self.dead_letters.add, letters)
        self.metrics.spool_expired_batches += len(batches)
        self.metrics.dead_letters["spool_expired"] += len(batches)
        log.warning(
            "%d spooled batches (%d points) expired into dead letters",
            len(batches),
            sum(len(batch.lines) for batch in batches),
        )

    async def _write_retrying(self, lines: list[str], database: str | None, rp: str | None) -> None:
        """Write already-durable lines: retry for as long as it takes."""
        attempt = 0
        while True:
            try:
                await self._write_once(lines, database, rp)
                return
            except SinkError as exc:
                if not exc.retryable:
                    raise
                delay = self._note_failure(exc, attempt)
                if exc.status is None:
                    # No answer at all (refused, unreachable): trying again costs InfluxDB
                    # nothing, and the sooner we notice it is back the shorter the replay.
                    delay = min(delay, _PROBE_MAX_S * random.uniform(0.5, 1.0))
                if not self.influx_down:  # e.g. a start while InfluxDB is down: say it once
                    log.warning(
                        "InfluxDB failing (%s): spooling batches to disk until it recovers", exc
                    )
            self.influx_down = True
            await asyncio.sleep(delay)
            attempt += 1

    def _log_spool_progress(self) -> None:
        depth = self.spool.depth
        oldest_s = (time.time_ns() - depth.oldest_ns) / 1e9 if depth.oldest_ns else 0.0
        log.info(
            "spool: %d batches, %d points, %.1f MB, oldest %.0fs; replayed %d points so far",
            depth.batches,
            depth.points,
            depth.bytes / 1e6,
            oldest_s,
            self.metrics.replayed_points,
        )

    # ---- shared -------------------------------------------------------------------------------

    async def _on_disk(self, call: Callable[[*_Args], _T], *args: *_Args) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._disk, call, *args)

    async def _write_isolating(
        self, lines: list[str], database: str | None, rp: str | None, write: Write
    ) -> list[DeadLetter]:
        """Write lines; on a content rejection return the refused lines as dead letters.

        When InfluxDB's answer names the refused lines (RefusedLinesError) exactly those
        become dead letters, and the others are written again only if the answer says they
        were not stored. Otherwise a halving search finds them, at most
        `_SEARCH_MAX_REQUESTS` extra requests per batch (issue 18: one refused line in each
        of many batches cost ~15,000 requests): past that, every line still refused in a
        part becomes a dead letter, kept for `gateway deadletter replay`."""
        return await self._isolate(lines, _Isolation(database, rp, write))

    async def _isolate(self, lines: list[str], isolation: _Isolation) -> list[DeadLetter]:
        try:
            await isolation.write(lines, isolation.database, isolation.rp)
        except RefusedLinesError as exc:
            return await self._dead_letter_named(exc, lines, isolation)
        except SinkError as exc:
            return await self._search_refused(exc, lines, isolation)
        return []

    async def _dead_letter_named(
        self, exc: RefusedLinesError, lines: list[str], isolation: _Isolation
    ) -> list[DeadLetter]:
        letters = [
            self._refused(lines[index], reason, isolation)
            for index, reason in sorted(exc.refused.items())
        ]
        rest = [line for index, line in enumerate(lines) if index not in exc.refused]
        if exc.others_written or not rest:
            return letters
        if not isolation.take():  # an engine that names one line per answer, many times over
            return letters + self._search_stopped(rest, str(exc), isolation)
        return letters + await self._isolate(rest, isolation)

    async def _search_refused(
        self, exc: SinkError, lines: list[str], isolation: _Isolation
    ) -> list[DeadLetter]:
        """The halving search, for answers that do not say which lines they refused."""
        if len(lines) == 1:
            return [self._refused(lines[0], str(exc), isolation)]
        if not isolation.take(2):  # one request for each half
            return self._search_stopped(lines, str(exc), isolation)
        middle = len(lines) // 2
        first = await self._isolate(lines[:middle], isolation)
        return first + await self._isolate(lines[middle:], isolation)

    def _search_stopped(
        self, lines: list[str], reason: str, isolation: _Isolation
    ) -> list[DeadLetter]:
        log.warning(
            "InfluxDB refused part of a batch and the search for the bad lines stopped after "
            "%d requests: %d lines kept as dead letters",
            _SEARCH_MAX_REQUESTS,
            len(lines),
        )
        reason = f"{reason} (in a part of {len(lines)} lines; search for the bad ones stopped)"
        return [self._refused(line, reason, isolation) for line in lines]

    def _refused(self, line: str, reason: str, isolation: _Isolation) -> DeadLetter:
        self.metrics.lines_rejected += 1
        self.metrics.dead_letters["rejected_by_influx"] += 1
        log.warning("InfluxDB rejected a line for good: %s: %s", reason, line[:200])
        return DeadLetter(
            time.time_ns(),
            "",
            line.encode(),
            "rejected_by_influx",
            reason,
            database=isolation.database,
            retention_policy=isolation.rp,
        )

    async def _write_before(
        self, deadline: float, lines: list[str], database: str | None, rp: str | None
    ) -> None:
        """One write attempt; with the spool on, given up at `deadline` (the spool's
        write_timeout_s), not only at [influx] timeout_s: an InfluxDB that takes the
        connection and never answers (a stopped process, SIGSTOP) would otherwise hold a live
        batch for the whole HTTP timeout before it is spooled. The writer drops a connection
        whose request was cut off (gateway/stages/sinks/influx.py); a batch InfluxDB took
        after all is written again from the spool, the same points (InfluxDB overwrites)."""
        remaining_s = deadline - time.monotonic()
        if not self.settings.enabled or remaining_s <= 0:
            # No spool, or it is full (the deadline passed): InfluxDB gets its whole timeout.
            await self._write_once(lines, database, rp)
            return
        try:
            async with asyncio.timeout(remaining_s):
                await self._write_once(lines, database, rp)
        except TimeoutError:
            raise SinkError(
                f"InfluxDB did not answer within {self.settings.write_timeout_s:.1f}s",
                retryable=True,
            ) from None

    async def _write_once(self, lines: list[str], database: str | None, rp: str | None) -> None:
        started = time.monotonic()
        await self.sink.write(lines, database, rp)
        self.metrics.observe_write_latency(time.monotonic() - started)
        self.metrics.influx_writable = True
        if self.influx_down or self.metrics.influx_auth_failing:
            log.info("InfluxDB accepts writes again")
        self.influx_down = False
        self.metrics.influx_auth_failing = False

    def _note_failure(self, exc: SinkError, attempt: int) -> float:
        """Count and log a retryable failure; returns how long to wait (Retry-After wins)."""
        self.metrics.write_retries += 1
        self.metrics.influx_writable = False
        self.metrics.write_failures[f"http_{exc.status}" if exc.status else "unreachable"] += 1
        self.metrics.last_write_error = str(exc)
        if exc.status in (401, 403):
            self.metrics.influx_auth_failing = True
            log.error("%s (data kept; retrying)", exc)
        else:
            log.warning("write failed: %s", exc)
        return exc.retry_after_s if exc.retry_after_s is not None else self._backoff(attempt)

    def _update_spool_metrics(self) -> None:
        depth = self.spool.depth
        self.metrics.spool_batches = depth.batches
        self.metrics.spool_points = depth.points
        self.metrics.spool_bytes = depth.bytes
        self.metrics.spool_oldest_ns = depth.oldest_ns

    @staticmethod
    def _backoff(attempt: int) -> float:
        """Capped exponential backoff with jitter, so many gateways do not retry in step."""
        ceiling = min(_RETRY_MAX_S, _RETRY_MIN_S * 2.0 ** min(attempt, 16))
        return float(ceiling * random.uniform(0.5, 1.0))
