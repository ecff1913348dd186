"""Making batches durable: InfluxDB when it answers, the disk spool when it does not.

    sealed batch -> dead letters fsynced -> receive times fsynced
                 -> each destination's lines: InfluxDB (a live write)
                        | failing for `write_timeout_s`, or InfluxDB known down -> spool (fsync)
                        | content rejected (400/413/422...) -> split until the bad lines are
                          found; those become dead letters, the rest is written
    spool -> replayer task, oldest first, while live batches go straight to InfluxDB again

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

from gateway.batcher import Batch
from gateway.config import SpoolSettings
from gateway.deadletter import DeadLetter, DeadLetterStore
from gateway.errors import SinkError
from gateway.metrics import Metrics
from gateway.sinks import Sink
from gateway.spool import Spool, SpooledBatch

log = logging.getLogger(__name__)

_RETRY_MIN_S = 0.2
_RETRY_MAX_S = 10.0
_PROGRESS_EVERY_S = 10.0

Write = Callable[[list[str], str | None, str | None], Awaitable[None]]


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
            await asyncio.to_thread(self.dead_letters.add, batch.dead_letters)
        if batch.receipts:
            await asyncio.to_thread(self.spool.record_receive_times, batch.receipts)
        for (database, rp), lines in batch.lines.items():
            rejected = await self._write_isolating(lines, database, rp, self._write_or_spool)
            if rejected:
                await asyncio.to_thread(self.dead_letters.add, rejected)
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
                await self._write_once(lines, database, rp)
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
        stored = await asyncio.to_thread(self.spool.append, database, rp, lines)
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
            batch = await asyncio.to_thread(self.spool.oldest)
            if batch is None:
                if replayed_points:
                    log.info("spool drained: %d points replayed", replayed_points)
                    replayed_points = 0
                self._update_spool_metrics()
                self._spool_has_batches.clear()
                await self._spool_has_batches.wait()
                continue
            replayed_points += await self._replay(batch)
            if time.monotonic() - progress_at >= _PROGRESS_EVERY_S:
                progress_at = time.monotonic()
                self._log_spool_progress()

    async def _replay(self, batch: SpooledBatch) -> int:
        """Write (or expire) one spooled batch and remove it; returns the points replayed."""
        age_s = (time.time_ns() - batch.spooled_ns) / 1e9
        if age_s > self.settings.max_age_s:
            letter = DeadLetter(
                batch.spooled_ns,
                "",
                "\n".join(batch.lines).encode(),
                "spool_expired",
                f"spooled {age_s:.0f}s ago and never accepted",
                database=batch.database,
                retention_policy=batch.retention_policy,
            )
            await asyncio.to_thread(self.dead_letters.add, [letter])
            self.metrics.spool_expired_batches += 1
            self.metrics.dead_letters["spool_expired"] += 1
            log.warning("spooled batch of %d points expired into dead letters", len(batch.lines))
            replayed = 0
        else:
            rejected = await self._write_isolating(
                batch.lines, batch.database, batch.retention_policy, self._write_retrying
            )
            if rejected:
                await asyncio.to_thread(self.dead_letters.add, rejected)
            replayed = len(batch.lines) - len(rejected)
            self.metrics.replayed_batches += 1
            self.metrics.replayed_points += replayed
        await asyncio.to_thread(self.spool.remove, batch)
        self._update_spool_metrics()
        return replayed

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

    async def _write_isolating(
        self, lines: list[str], database: str | None, rp: str | None, write: Write
    ) -> list[DeadLetter]:
        """Write lines; on a content rejection split the batch to find and return the bad lines."""
        try:
            await write(lines, database, rp)
        except SinkError as exc:
            if len(lines) == 1:
                self.metrics.lines_rejected += 1
                self.metrics.dead_letters["rejected_by_influx"] += 1
                log.warning("InfluxDB rejected a line for good: %s: %s", exc, lines[0][:200])
                letter = DeadLetter(
                    time.time_ns(),
                    "",
                    lines[0].encode(),
                    "rejected_by_influx",
                    str(exc),
                    database=database,
                    retention_policy=rp,
                )
                return [letter]
            middle = len(lines) // 2
            first = await self._write_isolating(lines[:middle], database, rp, write)
            return first + await self._write_isolating(lines[middle:], database, rp, write)
        return []

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
