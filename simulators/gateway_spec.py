"""What a correct gateway does with a faulty message: the simulator's own reading of the spec.

Restated from the gateway's documentation (README "Running in production", the device profile
guide, `[limits]` in the configuration reference), never imported from `gateway`: if the
gateway drifts from its documented behaviour, the truth file and InfluxDB disagree and
`simulators verify` says where. Every expectation that depends on gateway settings lives here.
"""

from __future__ import annotations

import hashlib
import hmac

from simulators.surface import PayloadFormat
from simulators.truth import Expect

# [limits] max_payload_bytes: a larger payload is a dead letter before anything decodes it.
MAX_PAYLOAD_BYTES = 65_536
PAYLOAD_TOO_LARGE = "payload_too_large"

# [limits] device_rate_per_s / device_burst: a token bucket per topic. The simulators stay
# below both by default (see runner.DeviceRateGuard), so no message of theirs is rate_limited.
DEVICE_RATE_PER_S = 20.0
DEVICE_BURST = 5_000

# time.max_future_s / time.max_past_s of every shipped profile (the defaults): a device time
# further than this from the receive time is replaced by the receive time, the point gets the
# boolean field time_replaced=true and the drop list ("(time)", clock_future | clock_past).
MAX_FUTURE_S = 300
MAX_PAST_S = 30 * 86_400
TIME_REPLACED_FIELD = "time_replaced"
CLOCK_FUTURE = "clock_future"
CLOCK_PAST = "clock_past"

# A field outside the profile's min/max, or of a type the profile cannot convert, is dropped
# with a reason and the rest of the reading kept; a reading left without fields is dropped,
# and a message left without readings is a dead letter.
OUT_OF_RANGE = "out_of_range"
WRONG_TYPE = "wrong_type"
NO_VALID_READING = "no_valid_reading"

# [privacy] hash_key: a `privacy: hash` field (an ANPR camera's plate) is stored as the first
# 16 hex digits of HMAC-SHA256(key, value), never in clear; a `privacy: drop` field (the
# snapshot URL) is not stored at all. The gateway refuses keys shorter than 16 bytes, and
# `gateway profiles test` and the golden vectors use the public key below, so that is the
# simulators' default: their truth then matches any gateway set up with that key.
PRIVATE_HASH_HEX_CHARS = 16
MIN_HASH_KEY_BYTES = 16
OFFLINE_HASH_KEY = b"mh-gateway offline tools: golden vectors only, not secret"


def private_hash(key: bytes, value: str) -> str:
    """What the gateway stores for `value` in a `privacy: hash` field hashed with `key`."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:PRIVATE_HASH_HEX_CHARS]


# A topic that no profile matches (the gateway subscribes to the profiles' filters, in which
# `+` also matches an empty level, while a profile's named segment needs at least a character).
UNKNOWN_TOPIC = "unknown_topic"

# The dead-letter reason of a payload its decoder cannot read, by payload format, for the way
# fault injection breaks each format (a cut-off JSON document, a key=value pair without "=",
# a CSV line cut short, a binary frame cut short).
MALFORMED_REASON: dict[PayloadFormat, str] = {
    "json": "invalid_json",
    "keyvalue": "invalid_keyvalue",
    "csv": "wrong_column_count",
    "binary": "too_short",
}


def unknown_device_expectation() -> tuple[Expect, str | None]:
    """A device nobody registered, on a topic of a known profile, sends a report.

    Today every shipped profile registers new devices on their first message, so the reading
    is stored like any other. If profiles stop auto-registering (issue 9: quarantine unknown
    devices), this is the one place to change, e.g. to (Expect.DEAD_LETTER, "unknown_device").
    """
    return Expect.STORE, None
