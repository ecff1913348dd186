"""First receive times of messages stamped with their receive time, for redeliveries.

A reading without a device time (`time.source: receive`, or a device clock out of tolerance)
is stamped with the time the gateway received it. If the gateway crashes before acknowledging,
the broker redelivers the message and the redelivery would get a new time: a second point.
So the first receive time of such a message is remembered, in memory until its batch is
durable and then in the spool's SQLite table (gateway/stages/spool.py), and a redelivery (MQTT's
DUP flag) gets it back. Keyed by topic, packet id and a hash of the payload.
"""

from __future__ import annotations

import hashlib

from gateway.model import Message, Readings, ReceiptKey
from gateway.stages.normalize import at_receive_time
from gateway.stages.spool import Spool

Receipt = tuple[ReceiptKey, int]
"""(key, first receive time in ns), carried by the batch until it is durable."""


class ReceiveTimes:
    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        # Receipts of messages in batches not yet durable; the spool has the others.
        self._pending: dict[ReceiptKey, int] = {}

    def first_delivery(self, message: Message) -> Message:
        """A redelivery with the receive time of its first delivery, if it was stamped with it.

        Rare (after a crash or reconnect only), so the indexed SQLite lookup on the event loop
        is cheaper than keeping every receive time in memory."""
        key = receipt_key(message)
        first = self._pending.get(key)
        if first is None:
            first = self._spool.first_receive_time(key)
        if first is None or first == message.received_ns:
            return message
        return message._replace(received_ns=first)

    def receipt(self, message: Message, readings: Readings, any_drop: bool) -> Receipt | None:
        """Remember the receive time of a message whose readings carry it.

        Only a message with a packet id can be redelivered (QoS 1). The first row tells in
        the usual case; a drop (a device clock out of tolerance is replaced by the receive
        time and reported as a drop) means some later row may carry it."""
        received_ns = message.received_ns
        if not message.packet_id:
            return None
        times_ns = readings.times_ns
        if not (any_drop or at_receive_time(times_ns[0], received_ns)):
            return None
        if not any(at_receive_time(time_ns, received_ns) for time_ns in times_ns):
            return None
        key = receipt_key(message)
        self._pending[key] = received_ns
        return (key, received_ns)

    def durable(self, receipts: list[Receipt]) -> None:
        """The batch carrying `receipts` is durable: the spool has them now."""
        for key, _ in receipts:
            self._pending.pop(key, None)

    def forget_before(self, cutoff_ns: int) -> None:
        """Drop receive times older than `cutoff_ns` from the spool (blocking: run in a thread)."""
        self._spool.forget_receive_times(cutoff_ns)


def receipt_key(message: Message) -> ReceiptKey:
    digest = hashlib.blake2b(message.payload, digest_size=8).digest()
    return (message.topic, message.packet_id, digest)
