"""Every MQTT packet the ingest writes obeys MQTT 5's rules for packet ids and reason codes.

The ingest talks to a `ScriptedConnection`, a real asyncio.Transport of ours that answers
CONNECT and SUBSCRIBE as a broker does and records every byte written. All recorded bytes
are decoded with mqtt5 and checked against the MQTT v5 specification (OASIS, 2019): the fixed
header of each type (2.1.3), packet ids 1..65535 (2.2.1), reason codes from each packet's own
table (3.4.2.1, 3.7.2.1, 3.14.2.1), and a PUBACK only for a QoS 1 PUBLISH received on that
connection (4.3.2; a QoS 0 PUBLISH has no packet id and gets no answer, 4.3.1). Issue 15: the
ingest acknowledged QoS 0 deliveries with packet id 0 and mosquitto dropped it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import mqtt5
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import MqttSettings
from gateway.model import Message
from gateway.stages.ingest import MqttIngest

TOPICS = ["city/#", "v3/#"]
MAX_PACKET_ID = 65535
# MQTT 5 2.1.3: the first byte of each packet a client sends (type << 4 | fixed flags).
FIRST_BYTE = {
    mqtt5.ConnectPacket: 0x10,
    mqtt5.PubAckPacket: 0x40,
    mqtt5.PubCompPacket: 0x70,
    mqtt5.SubscribePacket: 0x82,
    mqtt5.UnsubscribePacket: 0xA2,
    mqtt5.PingReqPacket: 0xC0,
    mqtt5.DisconnectPacket: 0xE0,
}
# The reason codes MQTT 5 defines for each packet (3.4.2.1, 3.7.2.1, 3.14.2.1).
PUBACK_CODES = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}
PUBCOMP_CODES = {0x00, 0x92}
DISCONNECT_CODES = {0x00, 0x04, *range(0x80, 0xA3)} - {0x84, 0x85, 0x86, 0x88, 0x89, 0x8A}
_DEADLINE_S = 10.0


class ScriptedConnection(asyncio.Transport):
    """A broker connection in memory: CONNECT gets a CONNACK and SUBSCRIBE a SUBACK granting
    QoS 1 per filter, each a loop iteration later as over a socket; everything written is kept."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.reading = True
        self._parsed = 0
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self._closing, "written after close"
        self.written += data
        while self._parsed < len(self.written):
            try:
                packet, size = mqtt5.read(memoryview(bytes(self.written[self._parsed :])))
            except IndexError:  # a packet split across writes: wait for the rest
                return
            self._parsed += size
            self._answer(packet)

    def _answer(self, packet: object) -> None:
        if isinstance(packet, mqtt5.ConnectPacket):
            self.deliver(mqtt5.ConnAckPacket().write())
        elif isinstance(packet, mqtt5.SubscribePacket):
            granted = [mqtt5.SubAckReasonCode.GRANTED_QOS_AT_LEAST_ONCE] * len(packet.topic_filters)
            self.deliver(mqtt5.SubAckPacket(packet.packet_id, granted).write())

    def deliver(self, data: bytes) -> None:
        """Bytes from the broker, handed over on the next loop iteration."""
        asyncio.get_running_loop().call_soon(self.protocol.data_received, data)

    def packets(self) -> list[tuple[int, object]]:
        """Everything written, decoded: (first byte, packet)."""
        found: list[tuple[int, object]] = []
        data, offset = bytes(self.written), 0
        with memoryview(data) as view:
            while offset < len(data):
                packet, size = mqtt5.read(view[offset:])
                found.append((data[offset], packet))
                offset += size
        return found

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading


@dataclass
class Session:
    """A running MqttIngest on scripted connections and what it handed to the pipeline."""

    ingest: MqttIngest
    connections: list[ScriptedConnection]
    received: list[Message] = field(default_factory=list)

    @property
    def connection(self) -> ScriptedConnection:
        return self.connections[-1]


async def _until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until `condition` holds; fails after _DEADLINE_S."""
    async with asyncio.timeout(_DEADLINE_S):
        while not condition():  # noqa: ASYNC110 - in-memory transport: no event to wait for
            await asyncio.sleep(0.001)


def _run(scenario: Callable[[Session], Coroutine[Any, Any, None]], keepalive_s: int = 30) -> None:
    """Run `scenario` against a connected ingest in a fresh event loop (hypothesis runs many)."""

    async def main() -> None:
        connections: list[ScriptedConnection] = []

        async def open_connection(
            factory: Callable[[], asyncio.Protocol],
        ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
            protocol = factory()
            connection = ScriptedConnection(protocol)
            protocol.connection_made(connection)
            connections.append(connection)
            return connection, protocol

        mqtt = MqttSettings(
            client_id="packets",
            keepalive_s=keepalive_s,
            reconnect_min_s=0.001,
            reconnect_max_s=0.01,
        )
        received: list[Message] = []
        ingest = MqttIngest(mqtt, list(TOPICS), received.append, open_connection=open_connection)
        session = Session(ingest, connections, received)
        task = asyncio.create_task(session.ingest.run())
        try:
            await _until(lambda: session.ingest.connected)
            await scenario(session)
        finally:
            await session.ingest.stop()
            await asyncio.wait([task], timeout=_DEADLINE_S)
        assert task.done()
        task.result()  # run() ended by itself after stop(), without an error
        for connection in connections:
            check_mqtt5_rules(connection.packets())

    asyncio.run(main())


def check_mqtt5_rules(packets: list[tuple[int, object]]) -> None:
    """The rules every packet the ingest sends must follow, whatever led to it."""
    for first_byte, packet in packets:
        kind = type(packet)
        assert kind in FIRST_BYTE, f"the ingest never sends {kind.__name__}"
        assert first_byte == FIRST_BYTE[kind], f"{kind.__name__}: fixed header {first_byte:#x}"
        if isinstance(packet, mqtt5.ConnectPacket):
            assert packet.clean_start is False  # the persistent session holds the backlog
            assert 1 <= packet.receive_max <= MAX_PACKET_ID  # 3.1.2.11.3: 0 is an error
        if isinstance(packet, mqtt5.PubAckPacket | mqtt5.PubCompPacket):
            assert 1 <= packet.packet_id <= MAX_PACKET_ID, packet.packet_id
        if isinstance(packet, mqtt5.PubAckPacket):
            assert packet.reason_code.value in PUBACK_CODES
        if isinstance(packet, mqtt5.PubCompPacket):
            assert packet.reason_code.value in PUBCOMP_CODES
        if isinstance(packet, mqtt5.SubscribePacket):
            assert 1 <= packet.packet_id <= MAX_PACKET_ID
            assert packet.topic_filters  # 3.8.3-2: at least one filter
            assert all(f.max_qos.value <= 1 for f in packet.topic_filters)
        if isinstance(packet, mqtt5.UnsubscribePacket):
            assert 1 <= packet.packet_id <= MAX_PACKET_ID
            assert packet.patterns  # 3.10.3-2
        if isinstance(packet, mqtt5.DisconnectPacket):
            assert packet.reason_code.value in DISCONNECT_CODES


def _sent(connection: ScriptedConnection, kind: type) -> bool:
    return any(isinstance(packet, kind) for _, packet in connection.packets())


def _pubacks(connection: ScriptedConnection) -> list[int]:
    return [p.packet_id for _, p in connection.packets() if isinstance(p, mqtt5.PubAckPacket)]


# PUBLISHes as a broker sends them: QoS 0 without a packet id, QoS 1 with one that is unique
# among the unacknowledged (MQTT 5 2.2.1).
deliveries = st.lists(
    st.tuples(st.sampled_from([0, 1]), st.integers(1, MAX_PACKET_ID)),
    max_size=40,
    unique_by=lambda delivery: delivery[1],
)


@settings(max_examples=150, deadline=None)
@given(deliveries=deliveries, cuts=st.lists(st.integers(1, 400), max_size=6))
def test_only_qos1_deliveries_are_acknowledged_with_their_own_packet_ids(
    deliveries: list[tuple[int, int]], cuts: list[int]
) -> None:
    async def scenario(session: Session) -> None:
        stream = b"".join(
            mqtt5.PublishPacket(
                f"city/test/d-{packet_id}",
                b"{}",
                qos=mqtt5.QoS(qos),
                packet_id=packet_id if qos else None,
            ).write()
            for qos, packet_id in deliveries
        )
        for chunk in _split(stream, cuts):  # however the socket reads cut the stream
            session.connection.deliver(chunk)
        await _until(lambda: len(session.received) == len(deliveries))
        session.ingest.ack(message.ack_token for message in session.received)
        assert _pubacks(session.connection) == [pid for qos, pid in deliveries if qos == 1]
        assert session.ingest.stats.acks_refused == session.ingest.stats.stale_acks == 0

    _run(scenario)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut for cut in cuts if cut < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# Tokens as the pipeline may hand them back: None (QoS 0), this connection's (session 1), an
# earlier or later connection's, and packet ids outside 1..65535 that must never be sent.
packet_ids = st.one_of(
    st.integers(1, MAX_PACKET_ID),
    st.sampled_from([0, -1, MAX_PACKET_ID + 1, 2**31]),
    st.integers(-(2**40), 2**40),
)
tokens = st.lists(
    st.one_of(st.none(), st.tuples(st.sampled_from([0, 1, 1, 1, 2, 7]), packet_ids)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(tokens=tokens)
def test_ack_writes_only_legal_pubacks_and_counts_the_rest(
    tokens: list[tuple[int, int] | None],
) -> None:
    async def scenario(session: Session) -> None:
        session.ingest.ack(tokens)
        current = [t for t in tokens if t is not None and t[0] == 1]
        legal = [pid for _, pid in current if 1 <= pid <= MAX_PACKET_ID]
        assert _pubacks(session.connection) == legal
        stats = session.ingest.stats
        assert stats.acks_sent == len(legal)
        assert stats.acks_refused == len(current) - len(legal)
        assert stats.stale_acks == sum(1 for t in tokens if t is not None and t[0] != 1)

    _run(scenario)


@settings(max_examples=30, deadline=None)
@given(tokens=tokens)
def test_acks_for_a_closed_connection_are_counted_not_written(
    tokens: list[tuple[int, int] | None],
) -> None:
    async def scenario(session: Session) -> None:
        connection = session.connection
        connection.close()  # the broker went away; the ingest reconnects
        await _until(lambda: len(session.connections) == 2 and session.ingest.connected)
        before = bytes(connection.written)
        session.ingest.ack(t for t in tokens if t is None or t[0] != 2)  # none for the new one
        assert bytes(connection.written) == before
        assert _pubacks(session.connection) == []
        stale = sum(1 for t in tokens if t is not None and t[0] != 2)
        assert session.ingest.stats.stale_acks == stale

    _run(scenario)


def test_every_packet_type_the_ingest_sends_follows_the_rules() -> None:
    """CONNECT, SUBSCRIBE, UNSUBSCRIBE, PUBACK, PUBCOMP, PINGREQ and DISCONNECT, each made to
    happen, then all checked (in _run) against the rules."""

    async def scenario(session: Session) -> None:
        connection = session.connection
        session.ingest.set_topics(["city/#", "application/#"])  # SUBSCRIBE + UNSUBSCRIBE
        publish = mqtt5.PublishPacket("city/a/b", b"x", qos=mqtt5.QoS(1), packet_id=9)
        connection.deliver(publish.write() + mqtt5.PubRelPacket(77).write())
        await _until(lambda: len(session.received) == 1)
        session.ingest.ack([session.received[0].ack_token])
        # keepalive_s=5: a PINGREQ every 2.5 s while the connection is quiet
        await _until(lambda: _sent(connection, mqtt5.PingReqPacket))
        await session.ingest.stop()
        kinds = {type(packet) for _, packet in connection.packets()}
        assert kinds == set(FIRST_BYTE)
        pubcomps = [p for _, p in connection.packets() if isinstance(p, mqtt5.PubCompPacket)]
        assert [p.packet_id for p in pubcomps] == [77]
        assert _pubacks(connection) == [9]

    _run(scenario, keepalive_s=5)


def test_subscribe_and_unsubscribe_packet_ids_wrap_from_65535_to_1_never_0() -> None:
    async def scenario(session: Session) -> None:
        for turn in range(MAX_PACKET_ID // 2 + 2):  # two packets per turn: past one wrap
            session.ingest.set_topics(["city/#", f"extra/{turn % 2}"])
        ids = [
            p.packet_id
            for _, p in session.connection.packets()
            if isinstance(p, mqtt5.SubscribePacket | mqtt5.UnsubscribePacket)
        ]
        assert min(ids) == 1
        assert max(ids) == MAX_PACKET_ID
        wrap = ids.index(MAX_PACKET_ID)
        assert ids[wrap + 1] == 1

    _run(scenario)
