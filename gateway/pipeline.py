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
import hashlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from gateway.config import GatewaySettings
from gateway.errors import DecodeError, ProfileError
from gateway.model import Message
from gateway.operations.counters import Metrics
from gateway.operations.endpoint import HealthServer, Readiness, assess_readiness
from gateway.operations.figures import CounterOrigins, Sources, read_stats, stats_lines
from gateway.operations.logs import LogThrottle
from gateway.policies.liveness import LivenessTracker
from gateway.policies.privacy import SAFE_DETAIL_REASONS, WITHHELD_DETAIL, redactors_for
from gateway.policies.rate_limit import DeviceRateLimit
from gateway.policies.series_budget import SeriesBudget, limits_of
from gateway.profiles.registry import (
    KNOWN_DEVICES_SUFFIX,
    ProfileRegistry,
    load_directory,
    profile_files,
)
from gateway.stages.batch import Batch, Batcher
from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetter, DeadLetterStore
from gateway.stages.decode import decoder_for
from gateway.stages.deliver import Delivery
from gateway.stages.ingest import Ingest, MqttIngest
from gateway.stages.normalize import (
    RECEIVE_TIME_SPREAD_NS,
    Drop,
    Row,
    at_receive_time,
    rows_normalizer,
)
from gateway.stages.sinks import Sink
from gateway.stages.sinks.influx import InfluxSink
from gateway.stages.spool import SPOOL_FILE, ReceiptKey, Spool

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
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = Metrics()
        self.sink: Sink = sink if sink is not None else InfluxSink(settings.influx)
        self.dead_letters = dead_letters or DeadLetterStore(
            settings.spool.dir / DEAD_LETTER_FILE, settings.spool.deadletter_max_records
        )
        self.spool = Spool(settings.spool.dir / SPOOL_FILE, settings.spool.max_bytes)
        self.delivery = Delivery(
            self.sink, self.spool, self.dead_letters, settings.spool, self.metrics
        )
        self.batcher = Batcher(settings.batch.max_points, settings.batch.max_age_s)
        self.ingest: Ingest = ingest or MqttIngest(
            settings.mqtt, settings.mqtt.topics or registry.subscriptions, self.on_message
        )
        self._decoders = {p.id: decoder_for(p.decode_spec) for p in registry.profiles}
        self._normalizers = {p.id: rows_normalizer(p) for p in registry.profiles}
        self._redactors = redactors_for(registry.profiles)
        self.series = SeriesBudget.for_profiles(registry.profiles)
        self._sealed: collections.deque[Batch] = collections.deque()
        self._sealed_event = asyncio.Event()
        self._all_written = asyncio.Event()
        self._stopping = False
        # First receive times of messages in batches not yet committed (gateway/stages/spool.py).
        self._pending_receipts: dict[ReceiptKey, int] = {}
        self._first_message_at: float | None = None
        limits = settings.limits
        # Plain attributes: the hot path reads them per message.
        self._max_payload_bytes = limits.max_payload_bytes
        self._max_readings = limits.max_readings_per_message
        self._rate_limit = (
            DeviceRateLimit(limits.device_rate_per_s, limits.device_burst)
            if limits.device_rate_per_s > 0
            else None
        )
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
        ingest_stats = self.ingest.stats if isinstance(self.ingest, MqttIngest) else None
        self.sources = Sources(
            self.metrics,
            ingest=ingest_stats,
            liveness=self.liveness,
            mqtt_connected=lambda: self.ingest.connected,
            started_ns=time.time_ns(),
        )
        self.health = (
            HealthServer(settings.http, self.sources, self.readiness)
            if settings.http.enabled
            else None
        )

    # ---- hot path: runs inside the socket read callback -------------------------------------

    def on_message(self, message: Message) -> None:
        metrics = self.metrics
        metrics.messages_received += 1
        if message.redelivered:
            message = self._with_first_receive_time(message)
        topic, received_ns = message.topic, message.received_ns
        # Payload size and per-device rate before any decoding work, inline: a call less per
        # message.
        rate_limit = self._rate_limit
        if len(message.payload) > self._max_payload_bytes or (
            rate_limit is not None and not rate_limit.allow(topic, received_ns)
        ):
            self._refuse_over_limit(message)
            return
        resolved = self.registry.resolve(topic)
        if resolved is None:
            if not self._availability(message):
                self._dead_letter(message, "unknown_topic", "no profile matches this topic", None)
            return
        profile = resolved.profile
        metrics.messages_by_profile[profile.id] += 1
        drops: list[Drop] = []
        try:
            document = self._decoders[profile.id](message.payload)
            rows = self._normalizers[profile.id](document, resolved.segments, received_ns, drops)
            if profile.known_devices is not None:  # before the budget: strangers spend none
                _check_known_device(profile.known_devices, resolved.segments, rows[0][3])
            rows = self.series.admit_rows(profile.id, rows, drops)
        except DecodeError as exc:
            self._count_drops(drops)
            self._dead_letter(message, exc.reason, self._shown_detail(exc, profile.id), profile.id)
            return
        if drops:
            self._count_drops(drops)
            log.debug("dropped %s from %s (profile %s)", drops, message.topic, profile.id)
        if len(rows) > self._max_readings:
            detail = f"{len(rows)} readings, limit {self._max_readings}"
            self._dead_letter(message, "too_many_readings", detail, profile.id)
            return
        device_id = resolved.segments.get("device_id") or rows[0][3]
        self.liveness.seen(profile.id, device_id, received_ns, message.retained)
        if message.retained:
            rows = self._retained_rows(message, rows)
            if not rows:
                self._acknowledge_only(message)
                return
        receipt = None
        # at_receive_time inlined: this line runs for every message.
        if message.packet_id and (drops or 0 <= rows[0][2] - received_ns < RECEIVE_TIME_SPREAD_NS):
            receipt = self._receipt(message, rows)
        sealed = self.batcher.add_points(
            (profile.database, profile.retention_policy),
            [row[0] for row in rows],
            profile.domain,
            message.ack_token,
            receipt,
        )
        metrics.points_produced[profile.domain] += len(rows)
        if sealed is not None:
            self._enqueue(sealed)

    def _availability(self, message: Message) -> bool:
        """Hand a profile's availability (last will) message to the liveness tracker; False if
        the topic is no availability topic. It carries a state, not a reading: never decoded,
        stored or dead-lettered. Retained ones count: a will is retained so that a gateway
        subscribing later still learns the device is gone."""
        found = self.registry.resolve_availability(message.topic)
        if found is None:
            return False
        profile, liveness, device_id = found
        online = liveness.availability_state(message.payload)
        if online is None:
            self.metrics.availability_messages["unrecognized"] += 1
            if self._log_throttle.allow("availability", message.received_ns) is not None:
                log.warning(
                    "availability message is neither %r nor %r: topic=%s profile=%s",
                    liveness.payload_online.decode(),
                    liveness.payload_offline.decode(),
                    message.topic,
                    profile.id,
                )
        else:
            self.metrics.availability_messages["online" if online else "offline"] += 1
            self.liveness.set_availability(
                device_id, online=online, received_ns=message.received_ns
            )
        self._acknowledge_only(message)
        return True

    def _retained_rows(self, message: Message, rows: list[Row]) -> list[Row]:
        """The readings of a retained message that may be written.

        A retained message is the broker replaying a device's last reading on subscription,
        perhaps from a device dead for a week. Points carrying the device's own time are kept:
        written again they are the same point (InfluxDB overwrites it), and they fill the gap
        if it was never written. Points stamped with the receive time (`time.source: receive`,
        or a device clock out of tolerance) would claim the device reported just now, so they
        are skipped and counted. Neither kind counts as a sign of life (LivenessTracker.seen)."""
        received_ns = message.received_ns
        kept = [row for row in rows if not at_receive_time(row[2], received_ns)]
        self.metrics.retained_readings_skipped += len(rows) - len(kept)
        return kept

    def _acknowledge_only(self, message: Message) -> None:
        sealed = self.batcher.add_acknowledgement(message.ack_token)
        if sealed is not None:
            self._enqueue(sealed)

    def readiness(self) -> Readiness:
        return assess_readiness(
            self.metrics,
            mqtt_connected=self.ingest.connected,
            spool_usable=self.settings.spool.enabled,
            stopping=self._stopping,
        )

    def _refuse_over_limit(self, message: Message) -> None:
        """Dead-letter a message over the payload size limit or its device's rate limit
        (on_message checked both, the rate limit only if the size was within its limit)."""
        size, limit = len(message.payload), self._max_payload_bytes
        if size > limit:
            kept = message._replace(payload=message.payload[:limit])
            detail = f"{size} bytes, limit {limit}; the first {limit} bytes are kept"
            self._dead_letter(kept, "payload_too_large", detail, None)
        else:
            self._dead_letter(message, "rate_limited", "device over its rate limit", None)

    def _receipt(self, message: Message, rows: list[Row]) -> tuple[ReceiptKey, int] | None:
        """Remember the receive time of a message whose points are stamped with it.

        Called only when the first point carries the receive time or something was dropped
        (a device clock out of tolerance is replaced by the receive time and reported as a
        drop), so device-stamped messages skip the scan."""
        received_ns = message.received_ns
        if not any(at_receive_time(row[2], received_ns) for row in rows):
            return None
        key = _receipt_key(message)
        self._pending_receipts[key] = received_ns
        return (key, received_ns)

    def _with_first_receive_time(self, message: Message) -> Message:
        """A redelivery gets the receive time of its first delivery, if it was stamped with it.

        Rare (after a crash or reconnect only), so the indexed SQLite lookup on the event loop
        is cheaper than keeping every receive time in memory."""
        key = _receipt_key(message)
        first = self._pending_receipts.get(key)
        if first is None:
            first = self.spool.first_receive_time(key)
        if first is None or first == message.received_ns:
            return message
        self.metrics.receive_times_reused += 1
        return message._replace(received_ns=first)

    def _count_drops(self, drops: list[Drop]) -> None:
        for _, reason in drops:
            self.metrics.fields_dropped[reason] += 1

    def _dead_letter(
        self, message: Message, reason: str, detail: str, profile_id: str | None
    ) -> None:
        self.metrics.dead_letters[reason] += 1
        if self._redactors:
            message = self._without_private_values(message, profile_id)
        suppressed = self._log_throttle.allow(reason, message.received_ns)
        if suppressed is not None:
            log.warning(
                "dead letter (%s): topic=%s profile=%s %s%s",
                reason,
                message.topic,
                profile_id,
                detail,
                f" ({suppressed} more like this in the last second not logged)"
                if suppressed
                else "",
            )
        letter = DeadLetter(
            message.received_ns, message.topic, message.payload, reason, detail, profile_id
        )
        sealed = self.batcher.add_dead_letter(letter, message.ack_token)
        if sealed is not None:
            self._enqueue(sealed)

    def _shown_detail(self, error: DecodeError, profile_id: str) -> str:
        if profile_id in self._redactors and error.reason not in SAFE_DETAIL_REASONS:
            return WITHHELD_DETAIL  # decoder texts may quote the payload
        return error.detail

    def _without_private_values(self, message: Message, profile_id: str | None) -> Message:
        """The message as a dead letter may keep it: see gateway/policies/privacy.py."""
        if profile_id is None:  # refused before resolving (size, rate): resolve now
            resolved = self.registry.resolve(message.topic)
            profile_id = resolved.profile.id if resolved is not None else None
        redact = self._redactors.get(profile_id) if profile_id is not None else None
        if redact is None:
            return message
        return message._replace(payload=redact(message.payload))

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
            await self.delivery.commit(batch)
            self._sealed.popleft()
            for key, _ in batch.receipts:
                self._pending_receipts.pop(key, None)
            self.ingest.ack(batch.tokens)
            self.metrics.messages_acked += sum(token is not None for token in batch.tokens)
            if len(self._sealed) < self.settings.batch.max_pending and not self._stopping:
                self.ingest.resume()

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
            await asyncio.to_thread(self.spool.forget_receive_times, cutoff)

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
        directory = self.settings.profiles.dir
        interval = self.settings.profiles.reload_interval_s
        if interval <= 0:
            return
        seen = await asyncio.to_thread(_directory_state, directory)
        while True:
            await asyncio.sleep(interval)
            state = await asyncio.to_thread(_directory_state, directory)
            if state == seen:
                continue
            try:
                registry = await asyncio.to_thread(load_directory, directory, self.registry.policy)
            except ProfileError as exc:
                self.metrics.profile_reloads_failed += 1
                log.error("profiles not reloaded, the previous ones stay active:\n%s", exc)
                seen = state
                continue
            self._install_profiles(registry, _changed_files(seen, state))
            seen = state

    def _install_profiles(self, registry: ProfileRegistry, changed_files: set[str]) -> None:
        old = {profile.id: profile for profile in self.registry.profiles}
        new = {profile.id: profile for profile in registry.profiles}
        decoders = {p.id: decoder_for(p.decode_spec) for p in registry.profiles}
        normalizers = {p.id: rows_normalizer(p) for p in registry.profiles}
        self.registry, self._decoders, self._normalizers = registry, decoders, normalizers
        self._redactors = redactors_for(registry.profiles)
        self.series.set_limits(limits_of(registry.profiles))
        self.liveness.set_intervals(
            _expected_intervals(registry, self.settings.monitoring.expected_interval_s)
        )
        self.metrics.profile_reloads += 1
        if not self.settings.mqtt.topics:
            self.ingest.set_topics(registry.subscriptions)
        changed = sorted(i for i in old.keys() & new.keys() if new[i].file in changed_files)
        log.info(
            "profiles reloaded: %d active; added %s, changed %s, removed %s",
            len(new),
            sorted(new.keys() - old.keys()) or "none",
            changed or "none",
            sorted(old.keys() - new.keys()) or "none",
        )

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


def _receipt_key(message: Message) -> ReceiptKey:
    digest = hashlib.blake2b(message.payload, digest_size=8).digest()
    return (message.topic, message.packet_id, digest)


DirectoryState = dict[str, tuple[int, int]]


def _directory_state(directory: Path) -> DirectoryState:
    """Profile file -> (mtime, size): cheap to take every few seconds, changes on any edit."""
    state: DirectoryState = {}
    try:
        files = profile_files([directory])
    except ProfileError:
        return state  # the directory vanished: loading it reports that properly
    files.extend(directory.rglob(f"*{KNOWN_DEVICES_SUFFIX}"))  # devices.known_file lists
    for file in files:
        with contextlib.suppress(OSError):  # removed between listing and stat
            info = file.stat()
            state[str(file)] = (info.st_mtime_ns, info.st_size)
    return state


def _changed_files(before: DirectoryState, after: DirectoryState) -> set[str]:
    return {name for name, info in after.items() if before.get(name) != info}


UNKNOWN_DEVICE = "unknown_device"


def _check_known_device(known: frozenset[str], segments: dict[str, str], tag: str) -> None:
    """Raise DecodeError(unknown_device) unless the sender is one of the profile's devices
    (`tag`: the device_id tag of the message's first reading, if the topic has none)."""
    device_id = segments.get("device_id") or tag
    if device_id not in known:
        raise DecodeError(
            UNKNOWN_DEVICE,
            f"device {device_id!r} is not among the profile's known devices "
            "(devices.known / known_file); add it there to accept its readings",
        )
