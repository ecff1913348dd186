"""The composition root: builds the stages, owns the queue and tasks, start/stop order.

    MQTT (ingest) -> resolve profile -> decode -> normalize -> line protocol -> batcher
        -> writer task: dead letters committed, points written to InfluxDB -> PUBACKs

Per message everything up to the batcher runs synchronously inside the socket read callback:
no task, future or queue hop per message. The writer runs concurrently with reception; when
`batch.max_pending` sealed batches wait for it, ingest stops reading the socket and the broker
holds the rest (nothing is dropped, memory stays bounded).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time

from gateway.batcher import Batch, Batcher
from gateway.config import GatewaySettings
from gateway.deadletter import DEAD_LETTER_FILE, DeadLetter, DeadLetterStore
from gateway.decode import decoder_for
from gateway.errors import DecodeError, SinkError
from gateway.ingest import Ingest, MqttIngest
from gateway.lineprotocol import encode_point
from gateway.metrics import Metrics
from gateway.model import Message
from gateway.normalize import Drop, normalize
from gateway.profiles.registry import ProfileRegistry
from gateway.sinks import Sink
from gateway.sinks.influx import InfluxSink

log = logging.getLogger(__name__)

_RETRY_MIN_S = 0.2
_RETRY_MAX_S = 30.0
_AGE_CHECK_FRACTION = 4  # check batch age this many times per max_age_s


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        registry: ProfileRegistry,
        sink: Sink | None = None,
        dead_letters: DeadLetterStore | None = None,
        ingest: Ingest | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = Metrics()
        self.sink: Sink = sink if sink is not None else InfluxSink(settings.influx)
        self.dead_letters = dead_letters or DeadLetterStore(settings.spool.dir / DEAD_LETTER_FILE)
        self.batcher = Batcher(settings.batch.max_points, settings.batch.max_age_s)
        self.ingest: Ingest = ingest or MqttIngest(
            settings.mqtt, settings.mqtt.topics or registry.subscriptions, self.on_message
        )
        self._decoders = {p.id: decoder_for(p.decode_spec) for p in registry.profiles}
        self._sealed: collections.deque[Batch] = collections.deque()
        self._sealed_event = asyncio.Event()
        self._all_written = asyncio.Event()
        self._stopping = False

    # ---- hot path: runs inside the socket read callback -------------------------------------

    def on_message(self, message: Message) -> None:
        self.metrics.messages_received += 1
        resolved = self.registry.resolve(message.topic)
        if resolved is None:
            self._dead_letter(message, "unknown_topic", "no profile matches this topic", None)
            return
        profile = resolved.profile
        self.metrics.messages_by_profile[profile.id] += 1
        drops: list[Drop] = []
        try:
            document = self._decoders[profile.id](message.payload)
            points = normalize(profile, document, resolved.segments, message.received_ns, drops)
        except DecodeError as exc:
            self._count_drops(drops)
            self._dead_letter(message, exc.reason, exc.detail, profile.id)
            return
        if drops:
            self._count_drops(drops)
            log.debug("dropped %s from %s (profile %s)", drops, message.topic, profile.id)
        sealed = self.batcher.add_points(
            (profile.database, profile.retention_policy),
            [encode_point(point) for point in points],
            profile.domain,
            message.ack_token,
        )
        self.metrics.points_produced[profile.domain] += len(points)
        if sealed is not None:
            self._enqueue(sealed)

    def _count_drops(self, drops: list[Drop]) -> None:
        for _, reason in drops:
            self.metrics.fields_dropped[reason] += 1

    def _dead_letter(
        self, message: Message, reason: str, detail: str, profile_id: str | None
    ) -> None:
        self.metrics.dead_letters[reason] += 1
        log.warning(
            "dead letter (%s): topic=%s profile=%s %s", reason, message.topic, profile_id, detail
        )
        letter = DeadLetter(
            message.received_ns, message.topic, message.payload, reason, detail, profile_id
        )
        sealed = self.batcher.add_dead_letter(letter, message.ack_token)
        if sealed is not None:
            self._enqueue(sealed)

    def _enqueue(self, batch: Batch) -> None:
        self._sealed.append(batch)
        self._all_written.clear()
        self._sealed_event.set()
        if len(self._sealed) >= self.settings.batch.max_pending:
            self.ingest.pause()

    # ---- background tasks --------------------------------------------------------------------

    async def _seal_by_age(self) -> None:
        interval = self.settings.batch.max_age_s / _AGE_CHECK_FRACTION
        while True:
            await asyncio.sleep(interval)
            sealed = self.batcher.seal_if_old(time.monotonic())
            if sealed is not None:
                self._enqueue(sealed)

    async def _write_batches(self) -> None:
        while True:
            if not self._sealed:
                self._all_written.set()
                self._sealed_event.clear()
                await self._sealed_event.wait()
                continue
            batch = self._sealed[0]
            await self._commit(batch)
            self._sealed.popleft()
            self.ingest.ack(batch.tokens)
            self.metrics.messages_acked += sum(token is not None for token in batch.tokens)
            if len(self._sealed) < self.settings.batch.max_pending and not self._stopping:
                self.ingest.resume()

    async def _commit(self, batch: Batch) -> None:
        """Make the batch durable: dead letters on disk, points in InfluxDB. Retries for ever
        on retryable errors; lines InfluxDB will never accept become dead letters."""
        if batch.dead_letters:
            await asyncio.to_thread(self.dead_letters.add, batch.dead_letters)
        for (database, rp), lines in batch.lines.items():
            rejected = await self._write_isolating(lines, database, rp)
            if rejected:
                await asyncio.to_thread(self.dead_letters.add, rejected)
        self.metrics.batches_written += 1
        self.metrics.points_written.update(batch.points_by_domain)

    async def _write_isolating(
        self, lines: list[str], database: str | None, rp: str | None
    ) -> list[DeadLetter]:
        """Write lines; on a content rejection split the batch to find and return the bad lines."""
        try:
            await self._write_retrying(lines, database, rp)
        except SinkError as exc:
            if len(lines) == 1:
                self.metrics.lines_rejected += 1
                self.metrics.dead_letters["rejected_by_influx"] += 1
                log.warning("InfluxDB rejected a line for good: %s: %s", exc, lines[0][:200])
                return [
                    DeadLetter(
                        time.time_ns(), "", lines[0].encode(), "rejected_by_influx", str(exc)
                    )
                ]
            middle = len(lines) // 2
            first = await self._write_isolating(lines[:middle], database, rp)
            return first + await self._write_isolating(lines[middle:], database, rp)
        return []

    async def _write_retrying(self, lines: list[str], database: str | None, rp: str | None) -> None:
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                await self.sink.write(lines, database, rp)
            except SinkError as exc:
                if not exc.retryable:
                    raise
                self.metrics.write_retries += 1
                self.metrics.write_failures[
                    f"http_{exc.status}" if exc.status else "unreachable"
                ] += 1
                self.metrics.last_write_error = str(exc)
                delay = exc.retry_after_s or _backoff(attempt)
                level = logging.ERROR if exc.status in (401, 403) else logging.WARNING
                log.log(level, "write failed (%s); retrying in %.1fs", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            elapsed = time.monotonic() - started
            self.metrics.write_latency_s_sum += elapsed
            self.metrics.write_latency_s_max = max(self.metrics.write_latency_s_max, elapsed)
            return

    # ---- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, drain_timeout_s: float = 10.0) -> None:
        """Run until `stop` is set, then stop intake, flush, acknowledge and disconnect."""
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(self._write_batches(), name="writer")
            ager = group.create_task(self._seal_by_age(), name="batch-age")
            receiver = group.create_task(self.ingest.run(), name="mqtt")
            await stop.wait()
            log.info("stopping: no new messages; writing and acknowledging what is in hand")
            await self._drain(drain_timeout_s)
            await self.ingest.stop()
            for task in (writer, ager, receiver):
                task.cancel()
        await self.sink.close()
        self.dead_letters.close()
        log.info(
            "stopped: %d messages received, %d acknowledged, points written %s, dead letters %s",
            self.metrics.messages_received,
            self.metrics.messages_acked,
            dict(self.metrics.points_written),
            dict(self.metrics.dead_letters),
        )

    async def _drain(self, timeout_s: float) -> None:
        self._stopping = True
        self.ingest.pause()
        last = self.batcher.seal()
        if not last.empty:
            self._enqueue(last)
        if self._sealed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_written.wait(), timeout_s)
        if self._sealed:
            pending = sum(len(batch.tokens) for batch in self._sealed)
            log.warning(
                "stopping with %d messages not yet durable; the broker keeps them for next time",
                pending,
            )


def _backoff(attempt: int) -> float:
    return float(
        min(_RETRY_MAX_S, _RETRY_MIN_S * 2.0 ** min(attempt, 16)) * random.uniform(0.5, 1.0)
    )
