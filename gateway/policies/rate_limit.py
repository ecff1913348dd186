"""Per-device limits: one broken or hostile device must not crowd out the others.

A token bucket per MQTT topic (one topic per device in every shipped profile; a device that
publishes on several topics gets a bucket for each). Why not aiolimiter or asyncio-throttle:
both are awaitable acquire() calls that make the caller wait, while the hot path runs
synchronously inside the socket read callback and must decide at once; a bucket is a dict
lookup and three float operations. Time comes from the message's receive time, so tests can
drive it without sleeping.

The burst is deliberately large: after a gateway outage the broker hands over each device's
queued messages at once, and those must pass. What exceeds it becomes a dead letter
(`rate_limited`), replayable with `gateway deadletter replay --reason rate_limited`, but only
as many as a second bucket per topic allows (`keep_refused`): a device flooding at 100,000
messages a second would otherwise fill the dead-letter store in seconds and push every other
device's letters out. The refusals beyond that are acknowledged and counted, not kept.

Memory: the tables are keyed by the topic's hash, not the topic (a topic may be a kilobyte),
and a bucket that is full again is forgotten: that loses nothing, since a new topic starts
with a full bucket anyway, and a bucket one message took from is full again 1/rate seconds
later. Each time a table has doubled since it was last swept it is rebuilt without those
(amortized O(1) per message; rebuilt, because a Python dict never shrinks on deletion), so it
holds about the topics active in the last moments, not every topic ever seen: 200,000 device
topics once each cost 20 MB before. At `MAX_BUCKETS` of active topics it forgets the oldest
tenth, never every bucket at once (clearing the whole table used to hand a flooding topic a
fresh burst of 5,000 every time the table filled).
"""

from __future__ import annotations

MAX_BUCKETS = 200_000  # distinct topics tracked per table
_FIRST_SWEEP = 1024  # entries before the first sweep for full buckets
_EVICT_FRACTION = 10  # when no bucket is full again, forget the oldest 1/10 of them


class _Buckets:
    """Token buckets stored as one float per topic hash: the time at which the bucket would
    hold no token (the generic cell rate algorithm's form of a token bucket). The bucket holds
    (now - empty_at) * rate tokens, at most `burst`; a message takes one. Same decisions as a
    [tokens, last refill] pair, at a fifth of the memory (Speed issue)."""

    def __init__(self, rate_per_s: float, burst: int, max_buckets: int) -> None:
        self._rate_per_ns = rate_per_s / 1e9
        self._ns_per_token = 1e9 / rate_per_s
        self._burst = float(burst)
        self._full_ns = burst * self._ns_per_token  # how long an empty bucket takes to fill
        self._max_buckets = max_buckets
        self._empty_at: dict[int, float] = {}  # hash(topic) -> when its bucket would be empty
        self._sweep_at = min(_FIRST_SWEEP, max_buckets)

    def __len__(self) -> int:
        return len(self._empty_at)

    def take(self, key: int, now_ns: float) -> bool:
        empty_at = self._empty_at.get(key)
        if empty_at is None:
            if len(self._empty_at) >= self._sweep_at:
                self._sweep(now_ns)
            empty_at = now_ns - self._full_ns  # a new device starts with a full bucket
        elif (now_ns - empty_at) * self._rate_per_ns > self._burst:
            empty_at = now_ns - self._full_ns  # full: tokens beyond the burst are not kept
        if (now_ns - empty_at) * self._rate_per_ns >= 1.0:
            self._empty_at[key] = empty_at + self._ns_per_token
            return True
        return False

    def _sweep(self, now_ns: float) -> None:
        """Rebuild the table without the buckets that are full again; at the bound, without
        the oldest tenth too (dicts keep insertion order)."""
        full_before = now_ns - self._full_ns
        kept = [
            (key, empty_at) for key, empty_at in self._empty_at.items() if empty_at > full_before
        ]
        excess = len(kept) - self._max_buckets * (_EVICT_FRACTION - 1) // _EVICT_FRACTION
        self._empty_at = dict(kept[max(0, excess) :])
        self._sweep_at = min(self._max_buckets, max(_FIRST_SWEEP, 2 * len(self._empty_at)))


class DeviceRateLimit:
    """`allow(topic, now)`: within its device's rate? `keep_refused(topic, now)`: may this
    refusal still be stored as a dead letter?"""

    def __init__(self, rate_per_s: float, burst: int, max_buckets: int = MAX_BUCKETS) -> None:
        self._messages = _Buckets(rate_per_s, burst, max_buckets)
        # A refused device may add dead letters at its own rate and burst, no faster.
        self._refusals = _Buckets(rate_per_s, burst, max_buckets)
        # Times are kept relative to the first message: a float holds an epoch time in ns
        # only to 256 ns, and the buckets' decisions should not depend on that rounding.
        self._origin_ns: int | None = None

    @property
    def tracked(self) -> int:
        return len(self._messages)

    def allow(self, topic: str, now_ns: int) -> bool:
        if self._origin_ns is None:
            self._origin_ns = now_ns
        return self._messages.take(hash(topic), now_ns - self._origin_ns)

    def _since_origin(self, now_ns: int) -> int:
        if self._origin_ns is None:
            self._origin_ns = now_ns
        return now_ns - self._origin_ns

    def keep_refused(self, topic: str, now_ns: int) -> bool:
        """For a message `allow` refused: True while the topic's share of the dead-letter
        store is within its bucket; False means acknowledge and count it, do not store it."""
        return self._refusals.take(hash(topic), self._since_origin(now_ns))
