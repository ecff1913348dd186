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
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate_per_ns = rate_per_s / 1e9
        self._burst = float(burst)
        self._buckets: dict[str, list[float]] = {}  # topic -> [tokens, last refill ns]

    def allow(self, topic: str, now_ns: int) -> bool:
        bucket = self._buckets.get(topic)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._buckets.clear()
            self._buckets[topic] = [self._burst - 1.0, float(now_ns)]
            return True
        tokens = bucket[0] + (now_ns - bucket[1]) * self._rate_per_ns
        bucket[0] = min(self._burst, tokens)
        bucket[1] = float(now_ns)
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False
