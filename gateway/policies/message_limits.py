"""Per-message size rules that run before anything else looks at a message.

An MQTT topic may be 65,535 bytes, and everything downstream keys on it: the profile
resolution cache, the rate limiter, the liveness table, tag caches, and InfluxDB's series index
through the tags taken from topic levels. 2,000 messages with 60 KB topic levels took the
gateway from 50 to 472 MB (issue 18). So a topic over `[limits] max_topic_bytes` is refused
first: a dead letter `topic_too_long` that keeps the topic cut to the limit (enough to find
the sender) and the payload. Pure, no I/O.
"""

from __future__ import annotations

TOPIC_TOO_LONG = "topic_too_long"
_MAX_UTF8_BYTES_PER_CHAR = 4


def topic_too_long(topic: str, max_bytes: int) -> tuple[str, str] | None:
    """(the topic cut to `max_bytes`, the dead letter's detail) when it is longer, else None.

    Cheap for the usual short topic: no encoding unless its characters could exceed the
    limit."""
    if len(topic) * _MAX_UTF8_BYTES_PER_CHAR <= max_bytes:
        return None
    encoded = topic.encode()
    if len(encoded) <= max_bytes:
        return None
    kept = encoded[:max_bytes].decode(errors="ignore")  # never half a character
    detail = f"topic of {len(encoded)} bytes, limit {max_bytes}; the first {max_bytes} are kept"
    return kept, detail
