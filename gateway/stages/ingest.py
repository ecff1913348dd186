"""The only module that touches the MQTT client library.

Why this client: the gateway acknowledges a message only after its readings are durable, so
many QoS 1 messages are unacknowledged at once. Mosquitto allows 20 in flight per client unless
the client speaks MQTT v5 and announces a larger Receive Maximum. Measured on a 2-core box
(see the Speed issue): aiomqtt 2.5 costs ~125 µs per QoS 1 message and cannot acknowledge
manually; paho-mqtt 2.2 can (manual_ack=True) but its v5 path costs ~82-96 µs; the Rust sans-I/O
codec `mqtt5` decodes a PUBLISH in ~0.2 µs and ~14 µs per message end to end when driven from an
asyncio Protocol. So we drive `mqtt5` ourselves: one Protocol, no task or future per message,
every packet of a socket read handled in one loop, PUBACKs sent in bulk when the pipeline says
a batch is durable.

The interface is narrow: `MqttIngest(settings, topics, on_message)`, `run()`, `ack(tokens)`,
`pause()`, `resume()`, `stop()`, `connected`, `unread_bytes` (for the watchdog). A Message's
`ack_token` is `(session, packet_id)`: packet ids are only meaningful on the connection that
delivered them, so tokens of an older connection are counted (`stale_acks`) and not sent (the
broker redelivers those messages, and the points they produce are identical, so InfluxDB
overwrites rather than doubles them).

Waits never use `asyncio.wait_for`: on Python 3.11 it returns the result and swallows a
cancellation that arrives while the awaited future completes (the hang of issue 18). Futures
are waited for with `asyncio.wait` (never cancels them, always propagates CancelledError) and
coroutines under `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
import ssl
import struct
import termios
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

import mqtt5

from gateway.config import MqttSettings
from gateway.model import Message

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 10.0
_T = TypeVar("_T")


class Ingest(Protocol):
    """What the pipeline needs from a message source."""

    async def run(self) -> None: ...

    def ack(self, tokens: Iterable[object]) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def set_topics(self, topics: list[str]) -> None: ...

    @property
    def stats(self) -> IngestStats:
        """Counters for the gateway's own figures (connections, acknowledgements)."""
        ...

    @property
    def connected(self) -> bool: ...

    @property
    def unread_bytes(self) -> int:
        """Bytes the broker sent that intake has not read yet (the watchdog's question)."""
        ...

    async def stop(self) -> None: ...


# Opens one connection for a protocol factory, as `loop.create_connection(factory, ...)` does
# with the settings' host, port and TLS; tests pass one that returns a recording transport.
OpenConnection = Callable[
    [Callable[[], asyncio.Protocol]], Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]]
]


class MqttConnectError(Exception):
    """The broker refused or did not answer the connection attempt."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        self.fatal = fatal  # e.g. bad credentials: retrying is pointless but we still retry slowly
        super().__init__(message)


@dataclass(slots=True)
class IngestStats:
    messages: int = 0
    bytes_read: int = 0  # from the broker's sockets: the watchdog's sign that intake reads
    connects: int = 0
    reconnects: int = 0
    acks_sent: int = 0
    # Acknowledgements for a connection that is gone: its packet ids mean nothing on the next
    # one, so the broker redelivers those messages (stored again, identically).
    stale_acks: int = 0
    # PUBACKs not sent because their packet id was outside 1..65535 (MQTT v5 2.2.1): a bug
    # upstream of ingest, counted rather than sent, since the broker drops a client for it.
    acks_refused: int = 0
    last_error: str = ""
    connected_since: float | None = None
    subscribed: list[str] = field(default_factory=list)


class _MqttProtocol(asyncio.Protocol):
    """One connection: decodes packets as they arrive and hands PUBLISHes on synchronously."""

    def __init__(self, session: int, on_message: Callable[[Message], None], stats: IngestStats):
        self.session = session
        self._on_message = on_message
        self._stats = stats
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[mqtt5.ConnAckPacket] = (
            asyncio.get_running_loop().create_future()
        )
        self.suback: asyncio.Future[mqtt5.SubAckPacket] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.last_received = time.monotonic()
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a stream connection, by construction
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "connection closed"
        for future in (self.connack, self.suback):
            if not future.done():
                future.set_exception(MqttConnectError(reason))
        if not self.closed.done():
            self.closed.set_result(reason)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        self._stats.bytes_read += len(data)
        buffer = self._buffer
        buffer += data
        consumed = 0
        # PUBLISHes, nearly every packet, are turned into Messages here rather than through
        # _dispatch, with the names they need bound locally: one call less per message and no
        # global lookups in the loop (the receive path was ~12% of the gateway's profile).
        read, publish_type, clock = mqtt5.read, mqtt5.PublishPacket, time.time_ns
        on_message, session = self._on_message, self.session
        published = 0
        try:
            with memoryview(buffer) as view:
                while consumed < len(view):
                    try:
                        packet, size = read(view[consumed:])
                    except IndexError:  # mqtt5 signals "not enough bytes yet" this way
                        break
                    consumed += size
                    if type(packet) is not publish_type:
                        self._dispatch(packet)
                        continue
                    published += 1
                    packet_id = packet.packet_id or 0
                    # QoS by value: mqtt5's QoS.AT_MOST_ONCE is an enum member, and truthy.
                    # A QoS 0 delivery has no packet id and must never be acknowledged.
                    on_message(
                        Message(
                            packet.topic,
                            packet.payload,
                            clock(),
                            packet.retain,
                            (session, packet_id) if packet.qos.value else None,
                            packet.duplicate,
                            packet_id,
                        )
                    )
        except ValueError as exc:
            self.abort(f"malformed packet from broker: {exc}")
            return
        finally:
            self._stats.messages += published
        del buffer[:consumed]

    def _dispatch(self, packet: object) -> None:
        """Every packet but PUBLISH (see data_received)."""
        if isinstance(packet, mqtt5.ConnAckPacket):
            if not self.connack.done():
                self.connack.set_result(packet)
        elif isinstance(packet, mqtt5.SubAckPacket):
            if not self.suback.done():
                self.suback.set_result(packet)
            elif any(code.value >= 128 for code in packet.reason_codes):
                log.error("broker refused a new subscription: %s", packet.reason_codes)
        elif isinstance(packet, mqtt5.DisconnectPacket):
            self.abort(
                f"broker disconnected us: {packet.reason_code.name} {packet.reason_str or ''}"
            )
        elif isinstance(packet, mqtt5.PubRelPacket):
            # Only reachable if a QoS 2 delivery slipped past our max_qos=1 subscription.
            self.send(mqtt5.PubCompPacket(packet.packet_id).write())

    @property
    def closing(self) -> bool:
        """Whether nothing more can be sent on this connection."""
        transport = self.transport
        return self.closed.done() or transport is None or transport.is_closing()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if self.transport is not None:
            self.transport.close()

    def pause(self) -> None:
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.last_received = time.monotonic()
            self.transport.resume_reading()


class MqttIngest:
    """A persistent MQTT v5 session that survives broker restarts and network loss."""

    def __init__(
        self,
        settings: MqttSettings,
        topics: list[str],
        on_message: Callable[[Message], None],
        *,
        open_connection: OpenConnection | None = None,
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._on_message = on_message
        self._open_connection = open_connection or self._open_tcp
        # The connection that finished subscribing (`connected`, set_topics, stop).
        self._protocol: _MqttProtocol | None = None
        # The newest connection the broker accepted, from its CONNACK on: mosquitto sends a
        # resumed session's backlog before the SUBACK, so its acknowledgements and the
        # pipeline's pause() must reach that connection before it is subscribed.
        self._delivering: _MqttProtocol | None = None
        self._session = 0
        self._stopping = asyncio.Event()
        self._paused = False
        self._unsubscribe: set[str] = set()  # filters a profile reload removed
        self._packet_id = 1  # SUBSCRIBE/UNSUBSCRIBE only: the gateway never publishes
        self.stats = IngestStats()

    @property
    def connected(self) -> bool:
        protocol = self._protocol
        return protocol is not None and not protocol.closed.done()

    @property
    def unread_bytes(self) -> int:
        """Bytes waiting in the receive queue of the newest connection's socket (FIONREAD);
        0 without one. Read while intake is paused, or when reading stopped for a reason
        nobody reports (the watchdog tells these apart, gateway/operations/watchdog.py)."""
        protocol = self._delivering
        if protocol is None or protocol.closing or protocol.transport is None:
            return 0
        sock = protocol.transport.get_extra_info("socket")
        if sock is None:
            return 0
        try:
            queued = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
        except OSError:  # closed in the meantime
            return 0
        return int(struct.unpack("i", queued)[0])

    async def run(self) -> None:
        """Connect, receive, and reconnect with capped, jittered backoff until stop()."""
        attempt = 0
        while not self._stopping.is_set():
            try:
                protocol = await self._connect()
            except (MqttConnectError, OSError, TimeoutError, ssl.SSLError) as exc:
                self.stats.last_error = str(exc)
                delay = self._backoff(attempt)
                attempt += 1
                level, reason = _connect_failure(exc, self._settings)
                host = self._settings.host
                log.log(
                    level,
                    "MQTT connect to %s:%s failed (%s); retrying in %.1fs",
                    f"[{host}]" if ":" in host else host,  # [::1]:1883, not ::1:1883
                    self._settings.port,
                    reason,
                    delay,
                )
                await self._sleep_unless_stopping(delay)
                continue
            attempt = 0
            reason = await self._serve(protocol)
            if not self._stopping.is_set():
                self.stats.reconnects += 1
                self.stats.last_error = reason
                log.warning("MQTT %s; reconnecting", reason)
                await self._sleep_unless_stopping(self._backoff(0))

    def _backoff(self, attempt: int) -> float:
        low, high = self._settings.reconnect_min_s, self._settings.reconnect_max_s
        return float(min(high, low * 2.0 ** min(attempt, 16)) * random.uniform(0.5, 1.0))

    async def _sleep_unless_stopping(self, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._stopping.wait()

    async def _connect(self) -> _MqttProtocol:
        self._session += 1
        session = self._session
        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            _, opened = await self._open_connection(
                lambda: _MqttProtocol(session, self._on_message, self.stats)
            )
        protocol = cast(_MqttProtocol, opened)  # the one our factory made
        try:
            await self._handshake(protocol)
        except BaseException:
            protocol.abort("handshake failed")
            # Nobody awaits them any more (no CONNACK in time, or it was refused): the lost
            # connection would otherwise leave exceptions asyncio logs as never retrieved.
            _settle(protocol.connack)
            _settle(protocol.suback)
            raise
        return protocol

    async def _open_tcp(
        self, factory: Callable[[], asyncio.Protocol]
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        settings = self._settings
        tls = _tls_context(settings)
        return await asyncio.get_running_loop().create_connection(
            factory,
            settings.host,
            settings.port,
            ssl=tls,
            server_hostname=(settings.tls.server_name or settings.host) if tls else None,
        )

    async def _handshake(self, protocol: _MqttProtocol) -> None:
        settings = self._settings
        password = settings.password.get_secret_value().encode() if settings.password else None
        protocol.send(
            mqtt5.ConnectPacket(
                settings.client_id,
                username=settings.username,
                password=password,
                clean_start=False,
                keep_alive=settings.keepalive_s,
                session_expiry_interval=settings.session_expiry_s,
                receive_max=_announced_receive_maximum(settings.receive_maximum),
            ).write()
        )
        if not await _until_done(protocol.connack, _CONNECT_TIMEOUT_S):
            raise TimeoutError
        connack = protocol.connack.result()
        if connack.reason_code != mqtt5.ConnAckReasonCode.SUCCESS:
            fatal = connack.reason_code in (
                mqtt5.ConnAckReasonCode.BAD_USER_NAME_OR_PASSWORD,
                mqtt5.ConnAckReasonCode.NOT_AUTHORIZED,
            )
            raise MqttConnectError(
                f"broker refused the connection: {connack.reason_code.name}", fatal=fatal
            )
        self._delivering = protocol
        await self._subscribe(protocol, connack.session_present)

    async def _subscribe(self, protocol: _MqttProtocol, session_present: bool) -> None:
        settings = self._settings
        if self._paused:  # the pipeline is still writing what an earlier connection delivered
            protocol.pause()
        # Subscribing again on a resumed session is harmless and repairs a session the broker lost;
        # retained messages are only sent for subscriptions that did not exist yet.
        filters = [
            mqtt5.TopicFilter(
                self._filter(topic),
                max_qos=mqtt5.QoS(settings.qos),
                retain_handling=mqtt5.RetainHandling.SEND_IF_SUBSCRIPTION_NOT_EXISTS,
            )
            for topic in self._topics
        ]
        protocol.send(mqtt5.SubscribePacket(self._next_packet_id(), filters).write())
        suback = await _suback(protocol)
        refused = [
            f"{topic} ({code.name})"
            for topic, code in zip(self._topics, suback.reason_codes, strict=False)
            if code.value >= 128  # mqtt5's reason codes are not IntEnums despite the stub
        ]
        if refused:
            raise MqttConnectError(f"broker refused subscriptions: {', '.join(refused)}")
        self.stats.connects += 1
        self.stats.connected_since = time.time()
        self.stats.subscribed = list(self._topics)
        log.info(
            "MQTT connected to %s:%s as %s (session %s), subscribed to %s",
            settings.host,
            settings.port,
            settings.client_id,
            "resumed" if session_present else "new",
            ", ".join(self._topics),
        )
        self._protocol = protocol
        if self._unsubscribe:
            self._send_unsubscribe(protocol)
        if self._paused:
            protocol.pause()

    def set_topics(self, topics: list[str]) -> None:
        """Change the subscriptions (a profile reload): subscribe new filters, drop old ones.

        Messages already on their way on a dropped filter still arrive and are handled like any
        other message (an unknown topic becomes a dead letter), so nothing in flight is lost."""
        added = [topic for topic in topics if topic not in self._topics]
        self._unsubscribe |= set(self._topics) - set(topics)
        self._unsubscribe -= set(topics)
        self._topics = list(topics)
        protocol = self._protocol
        if protocol is None or protocol.closed.done():
            return  # the next connect subscribes self._topics and sends the unsubscribe
        if added:
            filters = [
                mqtt5.TopicFilter(self._filter(topic), max_qos=mqtt5.QoS(self._settings.qos))
                for topic in added
            ]
            protocol.send(mqtt5.SubscribePacket(self._next_packet_id(), filters).write())
            log.info("MQTT subscribed to %s", ", ".join(added))
        if self._unsubscribe:
            self._send_unsubscribe(protocol)
        self.stats.subscribed = list(self._topics)

    def _send_unsubscribe(self, protocol: _MqttProtocol) -> None:
        gone = sorted(self._unsubscribe)
        filters = [self._filter(topic) for topic in gone]
        protocol.send(mqtt5.UnsubscribePacket(self._next_packet_id(), filters).write())
        log.info("MQTT unsubscribed from %s", ", ".join(gone))
        self._unsubscribe.clear()

    def _filter(self, topic: str) -> str:
        """The filter as subscribed: `$share/<group>/<topic>` when workers share the stream.

        The broker hands each message of a shared subscription to one member of the group;
        while a member is away, mosquitto keeps the messages already assigned to it in its
        persistent session, so they are delivered to that member when it reconnects."""
        group = self._settings.shared_group
        return f"$share/{group}/{topic}" if group else topic

    def _next_packet_id(self) -> int:
        self._packet_id = self._packet_id % 65535 + 1
        return self._packet_id

    async def _serve(self, protocol: _MqttProtocol) -> str:
        """Keep the connection alive until it closes; returns why it closed."""
        interval = max(1.0, self._settings.keepalive_s / 2)
        while not await _until_done(protocol.closed, interval):
            silent_s = time.monotonic() - protocol.last_received
            if not protocol.paused and silent_s > self._settings.keepalive_s * 1.5:
                protocol.abort(f"no answer from the broker for {silent_s:.0f}s")
                break
            protocol.send(mqtt5.PingReqPacket().write())
        return protocol.closed.result()

    def ack(self, tokens: Iterable[object]) -> None:
        """Send PUBACKs for durable messages, in receive order, in one socket write.

        Sent on the newest connection from its CONNACK on, before its SUBACK too: a resumed
        session's backlog arrives before the SUBACK, and its acknowledgements must not wait
        for (or be lost before) it. Tokens of any other connection, or of this one once it is
        closed, cannot be sent and are counted as stale."""
        protocol = self._delivering
        open_session = -1 if protocol is None or protocol.closing else protocol.session
        packet_ids = []
        stale = refused = 0
        for token in cast(Iterable[tuple[int, int] | None], tokens):  # made in data_received
            if token is None:
                continue
            if token[0] != open_session:
                stale += 1
            elif 0 < token[1] <= _MAX_PACKET_ID:
                packet_ids.append(token[1])
            else:
                refused += 1
        self.stats.stale_acks += stale
        if refused:
            self.stats.acks_refused += refused
            log.error("%d acknowledgements with a packet id outside 1..65535 not sent", refused)
        if packet_ids:
            assert protocol is not None  # packet ids are only kept for an open connection
            protocol.send(_pubacks(packet_ids))
            self.stats.acks_sent += len(packet_ids)

    def pause(self) -> None:
        """Stop reading from the socket: the broker keeps the rest (backpressure)."""
        self._paused = True
        if self._delivering is not None:  # an older connection is closed: nothing to read
            self._delivering.pause()

    def resume(self) -> None:
        self._paused = False
        if self._delivering is not None:
            self._delivering.resume()

    async def stop(self) -> None:
        """Disconnect cleanly; the session (and unacknowledged messages) stays on the broker.

        Also a connection still waiting for its SUBACK: its handshake then fails and run()
        ends instead of subscribing after the stop."""
        self._stopping.set()
        protocol = self._delivering
        if protocol is not None and not protocol.closed.done():
            protocol.send(mqtt5.DisconnectPacket().write())
            protocol.abort("stopped")


async def _suback(protocol: _MqttProtocol) -> mqtt5.SubAckPacket:
    """The SUBACK, waiting as long as the connection is busy: behind a resumed session's
    backlog it only arrives once the pipeline has taken in what comes before it, and while
    intake is paused (batches waiting for InfluxDB) nothing is read. Without a packet for
    _CONNECT_TIMEOUT_S while reading, the broker is not answering."""
    while not await _until_done(protocol.suback, 1.0):
        silent_s = time.monotonic() - protocol.last_received
        if not protocol.paused and silent_s > _CONNECT_TIMEOUT_S:
            raise TimeoutError(f"no SUBACK within {_CONNECT_TIMEOUT_S:.0f}s")
    return protocol.suback.result()


async def _until_done(future: asyncio.Future[_T], timeout_s: float) -> bool:
    """Whether `future` is done within timeout_s; it is never cancelled by the wait.

    Replaces `wait_for(shield(future), timeout_s)`, which on Python 3.11 returns normally
    when the task is cancelled while `future` completes: the cancellation is lost and the
    task runs on (issue 18: a gateway that ignored SIGTERM). asyncio.wait always raises the
    task's CancelledError."""
    done, _ = await asyncio.wait((future,), timeout=timeout_s)
    return bool(done)


def _pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs (success, no properties) for `packet_ids`, back to back.

    Such a PUBACK is 4 bytes, 0x40 0x02 and the packet id (MQTT v5 3.4.2.1: the reason code
    may be left out when it is 0), the same bytes as mqtt5's PubAckPacket(id).write(). One
    struct.pack of big-endian words instead of a codec object per message: ~0.3 µs less per
    message, and acknowledging runs for every message."""
    return struct.pack(f">{len(packet_ids)}I", *(_PUBACK_WORD | pid for pid in packet_ids))


_PUBACK_WORD = 0x4002 << 16
_MAX_PACKET_ID = 0xFFFF


def _announced_receive_maximum(configured: int) -> int:
    """The Receive Maximum to put in CONNECT: 65535 is sent as 65534.

    mqtt5 0.8 leaves the property out when it equals MQTT's default of 65535, and mosquitto
    2.0 then does not assume 65535 but caps the client at its own `max_inflight_messages`
    (20 by default): measured, a paced stream stalled at 20 messages per batch age. One less
    than the default makes the codec write the property and mosquitto honour it."""
    return min(configured, 65534)


def _tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """TLS 1.2 or later; the broker's chain and name (tls.server_name, else the host) checked.

    Built again on every connect, so renewed certificate files take effect at the next
    reconnect. A file that cannot be loaded raises MqttConnectError naming its key and path:
    OpenSSL's own message for a missing file does not say which one.
    """
    tls = settings.tls
    if not tls.enabled:
        return None
    # CERT_REQUIRED and check_hostname=True; without ca_file, the system's CA store.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    files = f"mqtt.tls.ca_file {tls.ca_file}"
    try:
        if tls.ca_file is not None:
            context.load_verify_locations(cafile=tls.ca_file)
        files = f"mqtt.tls.cert_file {tls.cert_file} / key_file {tls.key_file or '(in cert_file)'}"
        if tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except OSError as exc:  # ssl.SSLError is an OSError too
        raise MqttConnectError(f"cannot load {files}: {exc.strerror or exc}", fatal=True) from exc
    return context


async def probe_broker(settings: MqttSettings, topics: list[str]) -> str | None:
    """`gateway doctor`: one real CONNECT and SUBSCRIBE with the gateway's credentials and TLS
    settings. None when the broker accepted both, else why not, in the words the running
    gateway logs.

    Under its own client id with a session that ends at the disconnect: the gateway's id would
    take over a running gateway's connection (the broker drops the older one) and could end its
    persistent session, losing the readings the broker holds for it."""
    probe_id = f"{settings.client_id[:40]}-doctor-{os.getpid()}"
    probe = settings.model_copy(update={"client_id": probe_id, "session_expiry_s": 0})
    ingest = MqttIngest(probe, topics, lambda _message: None)  # retained messages: ignored
    try:
        protocol = await ingest._connect()  # the same handshake as `run`
    except ConnectionRefusedError:
        return "connection refused: nothing listens on that port"
    except (MqttConnectError, OSError, TimeoutError, ssl.SSLError) as exc:
        return _connect_failure(exc, settings)[1]
    protocol.send(mqtt5.DisconnectPacket().write())
    protocol.abort("probe done")
    return None


# OpenSSL's names of the TLS alerts a broker sends when it does not accept a client certificate.
_CLIENT_CERTIFICATE_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_REVOKED",
)


def _connect_failure(exc: Exception, settings: MqttSettings) -> tuple[int, str]:
    """Log level and words for a failed connect: ERROR when only an operator can fix it."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        name = settings.tls.server_name or settings.host
        return logging.ERROR, (
            f"TLS certificate verify failed: {exc.verify_message}; the broker's certificate "
            f"must be signed by a CA in mqtt.tls.ca_file and be valid for {name!r}"
        )
    if isinstance(exc, MqttConnectError) and exc.fatal:
        if "refused the connection" in str(exc):
            return logging.ERROR, f"{exc}: check mqtt.username and mqtt.password"
        return logging.ERROR, str(exc)
    if any(f"ALERT_{alert}" in str(exc) for alert in _CLIENT_CERTIFICATE_ALERTS):
        # With TLS 1.3 the broker judges our certificate after the handshake returned, so its
        # alert arrives as a lost connection while waiting for CONNACK, not as an SSLError.
        return logging.ERROR, (
            f"{exc}: the broker refused our TLS client certificate; check mqtt.tls.cert_file "
            "and key_file (mutual TLS)"
        )
    if isinstance(exc, TimeoutError) and not str(exc):
        return logging.WARNING, f"no answer within {_CONNECT_TIMEOUT_S:.0f}s"
    return logging.WARNING, str(exc) or type(exc).__name__


def _settle(future: asyncio.Future[_T]) -> None:
    """Retrieve or cancel a future left behind, so asyncio does not log it as never retrieved."""
    if future.done():
        if not future.cancelled():
            future.exception()
    else:
        future.cancel()
