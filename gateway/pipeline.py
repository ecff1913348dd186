"""The composition root: builds the stages, owns the queue and tasks, start/stop order.

    MQTT (ingest) -> message rules (gateway/process.py: limits, profile, decode, normalize,
        policies) -> batcher -> writer task: dead letters committed, points written to
        InfluxDB or spooled (deliver) -> PUBACKs

Per message everything up to the batcher runs synchronously inside the socket read callback:
no task, future or queue hop per message. The writer runs concurrently with reception; when
`batch.max_pending` sealed batches wait for it, ingest stops reading the socket and the broker
holds the rest (nothing is dropped, memory stays bounded). This module decides nothing about a
message: `MessageRules.process` does; here its outcome is batched, logged and counted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from gateway.config import GatewaySettings
from gateway.errors import ProfileError
from gateway.model import Batch, DeadLetter, Drop, Message
from gateway.operations.counters import CODEC_WARNINGS, Metrics
from gateway.operations.endpoint import HealthServer, Readiness, assess_readiness
from gateway.operations.figures import CounterOrigins, Sources, read_stats, stats_lines
from gateway.operations.logs import LogThrottle
from gateway.operations.profile_reload import ProfileWatcher
from gateway.operations.watchdog import Watchdog
from gateway.policies.liveness import LivenessTracker
from gateway.policies.rate_limit import DeviceRateLimit
from gateway.process import (
    EMPTY_FRAME,
    Accepted,
    AckOnly,
    Availability,
    Dropped,
    MessageLimits,
    MessageRules,
    Refused,
)
from gateway.profiles.registry import ProfileRegistry
from gateway.stages.batch import Batcher
from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from gateway.stages.deliver import Delivery
from gateway.stages.ingest import Ingest, MqttIngest
from gateway.stages.receipts import ReceiveTimes
from gateway.stages.sinks import Sink
from gateway.stages.sinks.influx import InfluxSink
from gateway.stages.spool import SPOOL_FILE, Spool

log = logging.getLogger(__name__)

_AGE_CHECK_FRACTION = 4  # check batch age this many times per max_age_s
_RECEIPT_KEEP_S = 3600.0  # how long first receive times are kept for redeliveries


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        registry: ProfileRegistry,
        sink: Sink | None = None,
        dead_letters: DeadLetterStore | None = None,
        ingest: Ingest | None = None,
        *,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.settings = settings
        # The codec sandbox counts warnings as they happen (a reading with warnings is still
        # stored); the counters share its tally.
        self.metrics = Metrics(codec_warnings=CODEC_WARNINGS)
        # A VictoriaMetrics engine answers 204 before parsing: the InfluxSink built here reads
        # its invalid-row counter (a task of run()) to tell what it dropped.
        self._engine_watch: Callable[[float], Coroutine[Any, Any, None]] | None = None
        if sink is None:
            influx = InfluxSink(settings.influx, self.metrics)
            if settings.influx.engine == "victoriametrics":
                self._engine_watch = influx.watch_invalid_rows
            sink = influx
        self.sink: Sink = sink
        self.dead_letters = dead_letters or DeadLetterStore(
            settings.spool.dir / DEAD_LETTER_FILE,
            settings.spool.deadletter_max_records,
            settings.spool.deadletter_max_bytes,
            settings.spool.deadletter_when_full,
        )
        self.spool = Spool(settings.spool.dir / SPOOL_FILE, settings.spool.max_bytes)
        self.receive_times = ReceiveTimes(self.spool)
        self.delivery = Delivery(
            self.sink, self.spool, self.dead_letters, settings.spool, self.metrics
        )
        self.batcher = Batcher(settings.batch.max_points, settings.batch.max_age_s)
        self.ingest: Ingest = ingest or MqttIngest(
            settings.mqtt, settings.mqtt.topics or registry.subscriptions, self.on_message
        )
        self.rules = rules_for(settings, registry)
        # The directory's state when the gateway was built: an edit from then on is a change.
        self._profile_watcher = (
            ProfileWatcher(settings.profiles.dir, registry.policy)
            if settings.profiles.reload_interval_s > 0
            else None
        )
        self._sealed: collections.deque[Batch] = collections.deque()
        self._sealed_event = asyncio.Event()
        self._all_written = asyncio.Event()
        self._stopping = False
        self._first_message_at: float | None = None
        self._log_throttle = LogThrottle(interval_s=1.0)
        monitoring = settings.monitoring
        self.liveness = LivenessTracker(
            _expected_intervals(registry, monitoring.expected_interval_s),
            stale_after_intervals=monitoring.stale_after_intervals,
            max_devices=monitoring.max_tracked_devices,
        )
        unknown = self.liveness.unknown_profiles(p.id for p in registry.profiles)
        if unknown:
            log.warning("[monitoring] expected_interval_s names unknown profiles: %s", unknown)
        self.sources = Sources(
            self.metrics,
            ingest=self.ingest.stats,
            liveness=self.liveness,
            mqtt_connected=lambda: self.ingest.connected,
            started_ns=time.time_ns(),
        )
        # /healthz fails when a task died or the writer or intake is stuck with work waiting
        # for a reason nobody reports (InfluxDB down and a full disk are reported by /readyz).
        self.watchdog = watchdog or Watchdog()
        self.watchdog.stage("writer", self._writer_should_progress)
        self.watchdog.stage(
            "intake", self._intake_should_progress, lambda: self.ingest.stats.bytes_read
        )
        self.health = (
            HealthServer(settings.http, self.sources, self.readiness, failing=self.watchdog.failing)
            if settings.http.enabled
            else None
        )

    @property
    def registry(self) -> ProfileRegistry:
        return self.rules.registry

    # ---- hot path: runs inside the socket read callback -------------------------------------

    def on_message(self, message: Message) -> None:
        self.metrics.messages_received += 1
        if message.redelivered:
            first = self.receive_times.first_delivery(message)
            if first is not message:
                self.metrics.receive_times_reused += 1
                message = first
        outcome = self.rules.process(message)
        kind = type(outcome)
        if kind is Accepted:
            self._accepted(message, outcome)  # type: ignore[arg-type]  # narrowed by type() above, which is faster than isinstance
        elif kind is Refused:
            self._dead_letter(message, outcome)  # type: ignore[arg-type]  # as above
        elif kind is Availability:
            self._availability(message, outcome)  # type: ignore[arg-type]  # as above
        elif kind is Dropped:
            # A flooding device past its share of the dead-letter store: counted, not kept.
            self.metrics.refusals_not_kept += 1
            self._acknowledge_only(message)
        else:
            self._nothing_to_store(message, outcome)  # type: ignore[arg-type]  # as above

    def _accepted(self, message: Message, accepted: Accepted) -> None:
        profile, readings, drops = accepted.profile, accepted.readings, accepted.drops
        metrics = self.metrics
        metrics.messages_by_profile[profile.id] += 1
        if drops:
            self._count_drops(drops)
            log.debug("dropped %s from %s (profile %s)", drops, message.topic, profile.id)
        self.liveness.seen(profile.id, accepted.device_id, message.received_ns, message.retained)
        if accepted.retained_skipped:
            metrics.retained_readings_skipped += accepted.retained_skipped
        sealed = self.batcher.add_points(
            (profile.database, profile.retention_policy),
            readings.lines,  # the batch takes the list over: nothing else holds it
            profile.domain,
            message.ack_token,
            self.receive_times.receipt(message, readings, bool(drops)),
        )
        metrics.points_produced[profile.domain] += len(readings.lines)
        if sealed is not None:
            self._enqueue(sealed)

    def _nothing_to_store(self, message: Message, outcome: AckOnly) -> None:
        """Acknowledged without storing (see gateway/process.py): a retained message whose
        readings all carry the receive time (no sign of life either), or an empty frame."""
        self.metrics.messages_by_profile[outcome.profile.id] += 1
        if outcome.why == EMPTY_FRAME:
            self.metrics.empty_frames += 1
        else:
            self.metrics.retained_readings_skipped += outcome.retained_skipped
        self.liveness.seen(
            outcome.profile.id, outcome.device_id, message.received_ns, message.retained
        )
        self._acknowledge_only(message)

    def _availability(self, message: Message, availability: Availability) -> None:
        """A profile's availability (last will) message goes to the liveness tracker. It
        carries a state, not a reading: never decoded, stored or dead-lettered. Retained ones
        count: a will is retained so that a gateway subscribing later still learns the device
        is gone."""
        online, liveness = availability.online, availability.liveness
        if online is None:
            self.metrics.availability_messages["unrecognized"] += 1
            if self._log_throttle.allow("availability", message.received_ns) is not None:
                log.warning(
                    "availability message is neither %r nor %r: topic=%s profile=%s",
                    liveness.payload_online.decode(),
                    liveness.payload_offline.decode(),
                    message.topic,
                    availability.profile.id,
                )
        else:
            self.metrics.availability_messages["online" if online else "offline"] += 1
            self.liveness.set_availability(
                availability.device_id, online=online, received_ns=message.received_ns
            )
        self._acknowledge_only(message)

    def _acknowledge_only(self, message: Message) -> None:
        if message.ack_token is None:
            # QoS 0: nothing to acknowledge. Counted in the batch, a QoS 0 flood's refusals
            # sealed a batch every max_points messages: a write per batch, and intake paused
            # behind them while other devices' readings waited (benchmarks/fairness.py).
            return
        sealed = self.batcher.add_acknowledgement(message.ack_token)
        if sealed is not None:
            self._enqueue(sealed)

    def _dead_letter(self, message: Message, refused: Refused) -> None:
        reason, profile_id = refused.reason, refused.profile_id
        metrics = self.metrics
        metrics.dead_letters[reason] += 1
        if profile_id is not None:
            metrics.messages_by_profile[profile_id] += 1
        if refused.drops:
            self._count_drops(refused.drops)
        suppressed = self._log_throttle.allow(reason, message.received_ns)
        if suppressed is not None:
            log.warning(
                "dead letter (%s): topic=%s profile=%s %s%s",
                reason,
                refused.topic or message.topic,
                profile_id,
                refused.detail,
                f" ({suppressed} more like this in the last second not logged)"
                if suppressed
                else "",
            )
        topic = refused.topic or message.topic
        letter = DeadLetter(
            message.received_ns, topic, refused.payload, reason, refused.detail, profile_id
        )
        sealed = self.batcher.add_dead_letter(letter, message.ack_token)
        if sealed is not None:
            self._enqueue(sealed)

    def _count_drops(self, drops: list[Drop]) -> None:
        for _, reason in drops:
            self.metrics.fields_dropped[reason] += 1

    def readiness(self) -> Readiness:
        return assess_readiness(
            self.metrics,
            mqtt_connected=self.ingest.connected,
            spool_usable=self.settings.spool.enabled,
            stopping=self._stopping,
            disk_full=self._disk_full(),
        )

    def _disk_full(self) -> tuple[str | None, str | None]:
        """Why the spool or the dead-letter store cannot write (gateway/stages/storage.py):
        their writes wait for space, so nothing is acknowledged and intake pauses."""
        return (self.spool.storage.disk_full, self.dead_letters.storage.disk_full)

    def _writer_should_progress(self) -> bool:
        return (
            bool(self._sealed)
            and self.metrics.influx_writable
            and self._disk_full() == (None, None)
        )

    def _intake_should_progress(self) -> bool:
        """The broker's bytes wait unread while the writer keeps up (fewer than max_pending
        batches wait; waiting for InfluxDB or space holds intake back through them)."""
        return len(self._sealed) < self.settings.batch.max_pending and self.ingest.unread_bytes > 0

    def _enqueue(self, batch: Batch) -> None:
        self._sealed.append(batch)
        self._all_written.clear()
        self._sealed_event.set()
        if len(self._sealed) >= self.settings.batch.max_pending:
            self.ingest.pause()
            self.metrics.pause_intake(time.time_ns())

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
            await self.delivery.commit(batch)
            self.watchdog.progress("writer")
            self._sealed.popleft()
            self.receive_times.durable(batch.receipts)
            self.ingest.ack(batch.tokens)
            self.metrics.messages_acked += sum(token is not None for token in batch.tokens)
            self.metrics.dead_letters_evicted = self.dead_letters.evicted
            if len(self._sealed) < self.settings.batch.max_pending and not self._stopping:
                self.ingest.resume()
                self.metrics.resume_intake(time.time_ns())

    async def _forget_old_receive_times(self) -> None:
        """Receive times only matter until the broker has redelivered what it will redeliver.

        A redelivery follows a crash or reconnect within seconds, and first of all after a
        restart, so nothing is forgotten until this run has been receiving for a while."""
        while True:
            await asyncio.sleep(_RECEIPT_KEEP_S / 6)
            if self._first_message_at is None:
                if self.metrics.messages_received:
                    self._first_message_at = time.monotonic()
                continue
            if time.monotonic() - self._first_message_at < _RECEIPT_KEEP_S / 6:
                continue
            cutoff = time.time_ns() - int(_RECEIPT_KEEP_S * 1e9)
            await asyncio.to_thread(self.receive_times.forget_before, cutoff)

    async def _write_self_metrics(self) -> None:
        """The gateway's own figures go into InfluxDB through the same durable batches."""
        monitoring = self.settings.monitoring
        destination = (monitoring.database, monitoring.retention_policy)
        origins = CounterOrigins(started_ns=time.time_ns())
        while True:
            await asyncio.sleep(monitoring.interval_s)
            now_ns = time.time_ns()
            stats = read_stats(self.sources, now_ns)
            lines = origins.lines(stats, instance=monitoring.instance, now_ns=now_ns)
            lines += stats_lines(stats, instance=monitoring.instance, now_ns=now_ns)
            sealed = self.batcher.add_points(destination, lines, "gateway", None)
            if sealed is not None:
                self._enqueue(sealed)

    async def _watch_profiles(self) -> None:
        """Hot reload: poll the profiles directory, swap in a registry that loads cleanly.

        The swap happens between two messages on the event loop thread, so each message is
        handled entirely by the old or entirely by the new profiles: nothing in flight is lost
        or written twice. A directory that fails to load leaves the previous profiles active."""
        interval = self.settings.profiles.reload_interval_s
        watcher = self._profile_watcher
        if watcher is None:
            return
        while True:
            await asyncio.sleep(interval)
            if not await asyncio.to_thread(watcher.changed):
                continue
            try:
                registry = await asyncio.to_thread(watcher.load)
            except ProfileError as exc:
                self.metrics.profile_reloads_failed += 1
                log.error("profiles not reloaded, the previous ones stay active:\n%s", exc)
                continue
            watcher.report(self.registry, registry)
            self.install_profiles(registry)

    def install_profiles(self, registry: ProfileRegistry) -> None:
        """Every later message is handled by `registry`'s profiles."""
        self.rules.install(registry)
        self.liveness.set_intervals(
            _expected_intervals(registry, self.settings.monitoring.expected_interval_s)
        )
        self.metrics.profile_reloads += 1
        if not self.settings.mqtt.topics:
            self.ingest.set_topics(registry.subscriptions)

    # ---- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, drain_timeout_s: float = 10.0) -> None:
        """Run until `stop` is set, then stop intake, flush, acknowledge and disconnect."""
        if self.health is not None:
            await self.health.start()  # a busy port stops start-up with a clear error
        try:
            await self._run_tasks(stop, drain_timeout_s)
        finally:
            if self.health is not None:
                await self.health.stop()

    async def _run_tasks(self, stop: asyncio.Event, drain_timeout_s: float) -> None:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._write_batches(), name="writer"),
                group.create_task(self.delivery.replay_forever(), name="spool-replay"),
                group.create_task(self._seal_by_age(), name="batch-age"),
                group.create_task(self._forget_old_receive_times(), name="receive-times"),
                group.create_task(self._watch_profiles(), name="profile-reload"),
                group.create_task(self.ingest.run(), name="mqtt"),
            ]
            if self.settings.monitoring.enabled:
                tasks.append(group.create_task(self._write_self_metrics(), name="self-metrics"))
            if self._engine_watch is not None:
                watch = self._engine_watch(self.settings.monitoring.interval_s)
                tasks.append(group.create_task(watch, name="victoria-invalid-rows"))
            for task in tasks:
                self.watchdog.watch(task)
            await stop.wait()
            log.info("stopping: no new messages; writing and acknowledging what is in hand")
            await self._drain(drain_timeout_s)
            await self.ingest.stop()
            for task in tasks:
                task.cancel()
        await self.sink.close()
        self.dead_letters.close()
        self.spool.close()
        log.info(
            "stopped: %d messages received, %d acknowledged, points written %s, dead letters %s",
            self.metrics.messages_received,
            self.metrics.messages_acked,
            dict(self.metrics.points_written),
            dict(self.metrics.dead_letters),
        )
        if self.spool.depth.batches:
            log.info(
                "%d points stay in the spool and are replayed at the next start",
                self.spool.depth.points,
            )

    async def _drain(self, timeout_s: float) -> None:
        self._stopping = True
        self.watchdog.stopping = True  # tasks end from here on: that is no failure
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


def _expected_intervals(
    registry: ProfileRegistry, overrides: Mapping[str, float]
) -> dict[str, float]:
    """Each profile's `liveness.expected_interval_s`, overridden per profile id by
    [monitoring.expected_interval_s]: a box whose devices report at another rate changes its
    configuration, not the shipped profiles."""
    intervals = {
        profile.id: profile.liveness.expected_interval_s
        for profile in registry.profiles
        if profile.liveness is not None and profile.liveness.expected_interval_s is not None
    }
    return {**intervals, **overrides}


def rules_for(settings: GatewaySettings, registry: ProfileRegistry) -> MessageRules:
    """The message rules of a running gateway: its profiles with the configured limits."""
    limits = settings.limits
    rate_limit = (
        DeviceRateLimit(limits.device_rate_per_s, limits.device_burst)
        if limits.device_rate_per_s > 0
        else None
    )
    return MessageRules(
        registry,
        MessageLimits(
            limits.max_payload_bytes,
            limits.max_readings_per_message,
            limits.max_topic_bytes,
            limits.max_tag_value_bytes,
        ),
        rate_limit=rate_limit,
    )
