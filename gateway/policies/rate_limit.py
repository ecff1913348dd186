"""Per-device limits: one broken or hostile device must not crowd out the others.

A token bucket per MQTT topic (one topic per device in every shipped profile; a device that
publishes on several topics gets a bucket for each). Why not aiolimiter or asyncio-throttle:
both are awaitable acquire() calls that make the caller wait, while the hot path runs
synchronously inside the socket read callback and must decide at once; a bucket is a dict
lookup and three float operations. Time comes from the message's receive time, so tests can
drive it without sleeping.

The burst is deliberately large: after a gateway outage the broker hands over each device's
queued messages at once, and those must pass. What exceeds it becomes a dead letter
(`rate_limited`), replayable with `gateway deadletter replay --reason rate_limited`.
"""

from __future__ import annotations

_MAX_BUCKETS = 200_000  # distinct topics tracked; beyond this the buckets start over (refilled)


class DeviceRateLimit:
    """Token buckets stored as one float per topic: the time at which the bucket would hold no
    token (the generic cell rate algorithm's form of a token bucket). The bucket holds
    (now - empty_at) * rate tokens, at most `burst`; a message takes one. Same decisions as
    a [tokens, last refill] pair, at a fifth of the memory: 32 bytes per topic instead of 160
    (a list and two floats), 1.3 MB less for 10,000 devices (Speed issue)."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate_per_ns = rate_per_s / 1e9
        self._ns_per_token = 1e9 / rate_per_s
        self._burst = float(burst)
        self._full_ns = burst * self._ns_per_token  # how long an empty bucket takes to fill
        self._empty_at: dict[str, float] = {}  # topic -> when its bucket would be empty
        # Times are kept relative to the first message: a float holds an epoch time in ns
        # only to 256 ns, and the buckets' decisions should not depend on that rounding.
        self._origin_ns: int | None = None

    def allow(self, topic: str, now_ns: int) -> bool:
        if self._origin_ns is None:
            self._origin_ns = now_ns
        now_ns -= self._origin_ns
        empty_at = self._empty_at.get(topic)
        if empty_at is None:
            if len(self._empty_at) >= _MAX_BUCKETS:
                self._empty_at.clear()
            empty_at = now_ns - self._full_ns  # a new device starts with a full bucket
        elif (now_ns - empty_at) * self._rate_per_ns > self._burst:
            empty_at = now_ns - self._full_ns  # full: tokens beyond the burst are not kept
        if (now_ns - empty_at) * self._rate_per_ns >= 1.0:
            self._empty_at[topic] = empty_at + self._ns_per_token
            return True
        return False
