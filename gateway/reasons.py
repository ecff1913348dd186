"""Every reason the gateway gives for not storing a message or a value, with what to do.

Two kinds, both counted in the gateway's own figures (`dead_letters`, `fields_dropped`):

- `DeadLetterReason`: the whole message went to the dead-letter store (`gateway deadletter
  list`); after a fix, `gateway deadletter replay --reason R` runs it again.
- `DropReason`: one field, tag or reading of a message was left out and the rest stored.
  Reading-level drops are reported as `(reading)` with the reason; a required field's drop as
  `required_<field>_<reason>`.

The slugs are what the code raises or drops (DecodeError, field_drop in the normalizer) and
what the metrics and the dead-letter store show; tests/test_reasons.py checks that every slug in
the code is listed here, and the docs render this table (`gateway reasons`). Imports nothing of
the gateway.
"""

from __future__ import annotations

from enum import StrEnum


class DeadLetterReason(StrEnum):
    # Before decoding (gateway/process.py, gateway/policies/)
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    TOPIC_TOO_LONG = "topic_too_long"
    UNKNOWN_TOPIC = "unknown_topic"
    # Decoding a payload (gateway/stages/decode.py)
    INVALID_JSON = "invalid_json"
    INVALID_TEXT = "invalid_text"
    INVALID_CSV = "invalid_csv"
    WRONG_COLUMN_COUNT = "wrong_column_count"
    INVALID_KEYVALUE = "invalid_keyvalue"
    INVALID_NUMBER = "invalid_number"
    INVALID_ENVELOPE = "invalid_envelope"
    MISSING_FIELD = "missing_field"
    INVALID_BASE64 = "invalid_base64"
    INVALID_HEX = "invalid_hex"
    TOO_SHORT = "too_short"
    SIMULATED = "simulated"
    # Binary layouts (gateway/stages/layouts.py)
    NO_LAYOUT = "no_layout"
    TRUNCATED = "truncated"
    UNKNOWN_CHANNEL = "unknown_channel"
    BAD_LENGTH = "bad_length"
    # Vendor codecs (gateway/stages/codec.py)
    CODEC_ERROR = "codec_error"
    CODEC_TIMEOUT = "codec_timeout"
    CODEC_MEMORY = "codec_memory"
    # Normalizing and policies (gateway/stages/normalize.py, gateway/process.py)
    MISSING_READINGS = "missing_readings"
    NO_VALID_READING = "no_valid_reading"
    UNKNOWN_DEVICE = "unknown_device"
    CARDINALITY_EXCEEDED = "cardinality_exceeded"
    TOO_MANY_READINGS = "too_many_readings"
    # Delivery (gateway/stages/deliver.py): letters holding line protocol, not a message
    REJECTED_BY_INFLUX = "rejected_by_influx"
    SPOOL_EXPIRED = "spool_expired"


class DropReason(StrEnum):
    MISSING = "missing"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    NOT_FINITE = "not_finite"
    UNMAPPED_VALUE = "unmapped_value"
    STRING_TOO_LONG = "string_too_long"
    SENTINEL = "sentinel"
    MISSING_TAG = "missing_tag"
    INVALID_TAG = "invalid_tag"
    TAG_TOO_LONG = "tag_too_long"
    CLOCK_FUTURE = "clock_future"
    CLOCK_PAST = "clock_past"
    NO_VALID_FIELD = "no_valid_field"
    BAD_TIMESTAMP = "bad_timestamp"
    CARDINALITY_EXCEEDED = "cardinality_exceeded"
    # Writing (gateway/stages/sinks/victoria.py): counted when the rest of the line is stored
    STRING_UNSUPPORTED = "string_unsupported"


WHAT_TO_DO: dict[str, str] = {
    # dead letters
    "payload_too_large": "A payload over [limits] max_payload_bytes; the first bytes are kept. "
    "Raise the limit if the device is right, then replay.",
    "rate_limited": "A device over [limits] device_rate_per_s / device_burst. Find out why it "
    "floods; replay once it is fixed or the limit raised.",
    "topic_too_long": "A topic over [limits] max_topic_bytes (a broken or hostile client); the "
    "topic is kept cut to the limit.",
    "unknown_topic": "No profile matches the topic. Add or fix a profile (`gateway profiles "
    "test --topic`), then replay.",
    "invalid_json": "The payload is not JSON. Check the device's firmware or the decode format.",
    "invalid_text": "The payload is not valid UTF-8 text for a text format.",
    "invalid_csv": "A CSV payload that cannot be read with the profile's delimiter/header.",
    "wrong_column_count": "A CSV row with another number of columns than the profile declares.",
    "invalid_keyvalue": "A key=value payload that cannot be split with the profile's separators.",
    "invalid_number": "A raw number payload that is not a number.",
    "invalid_envelope": "A LoRaWAN envelope (ChirpStack v4 / TTS v3) without the expected "
    "structure: check the network server's integration format.",
    "missing_field": "A path the profile requires (e.g. the envelope's frame) is absent.",
    "invalid_base64": "The frame is not valid base64.",
    "invalid_hex": "The frame is not valid hex.",
    "too_short": "A binary frame shorter than its fixed layout.",
    "simulated": "A TTS uplink sent from the console's simulator (`simulated: true`): kept "
    "out of the measurements on purpose.",
    "no_layout": "A binary frame that fits none of the profile's layout variants (fPort, "
    "header byte, length): add the variant rather than guess.",
    "truncated": "A binary frame cut off inside a group or a channel entry.",
    "unknown_channel": "A channel/type pair the profile does not list and whose length is "
    "unknown, so the rest of the frame cannot be read safely: add it to the profile.",
    "bad_length": "A channel entry whose declared length does not fit its layout.",
    "codec_error": "The vendor's codec threw, returned errors or no data; the codec's message "
    "is the detail. Check the codec version against the device's firmware.",
    "codec_timeout": "The codec ran past its time limit (decode.timeout_ms): an endless loop "
    "or a very slow codec.",
    "codec_memory": "The codec went past its memory or stack limit (decode.memory_mb, stack_kb).",
    "missing_readings": "The profile's readings path is absent or not an array.",
    "no_valid_reading": "No reading of the message had a usable field and timestamp; the drop "
    "reasons are the detail.",
    "unknown_device": "The device is not in the profile's devices.known / known_file. Add it "
    "if it is yours, then replay.",
    "cardinality_exceeded": "The profile reached its series budget (output.max_series): a tag "
    "may carry a per-message value. Fix the tag or raise the budget, then replay.",
    "too_many_readings": "More readings in one message than [limits] max_readings_per_message.",
    "rejected_by_influx": "InfluxDB refused these lines (e.g. a field type conflict); the "
    "letter holds the lines. Fix the schema clash, then replay.",
    "spool_expired": "Spooled lines older than [spool] max_age_s were given up on; the letter "
    "holds them. Replay once InfluxDB takes writes.",
    # drops
    "missing": "The field's path is absent or null in the reading.",
    "wrong_type": "A value of the wrong type (text for a number, a fraction for an int).",
    "out_of_range": "A value outside the field's min/max (after units), or beyond int64.",
    "not_finite": "NaN or infinity, or a conversion that overflows.",
    "unmapped_value": "A value the field's `map:` does not list.",
    "string_too_long": "A string longer than the field allows.",
    "sentinel": "The device's 'no reading' value (e.g. 0xFFFF) for this field.",
    "missing_tag": "A payload tag absent from the reading.",
    "invalid_tag": "A tag value line protocol cannot carry (empty, line break, trailing "
    "backslash).",
    "tag_too_long": "A tag value over [limits] max_tag_value_bytes: InfluxDB would index it "
    "for good.",
    "clock_future": "The device time is too far ahead (time.max_future_s): stored at the "
    "receive time with time_replaced=true.",
    "clock_past": "The device time is too far behind (time.max_past_s): stored at the "
    "receive time with time_replaced=true.",
    "no_valid_field": "A reading without any usable field.",
    "bad_timestamp": "A reading whose time cannot be read or stored.",
    "string_unsupported": "A string field not written because [influx] engine = "
    '"victoriametrics", which stores numbers only (1.79 would store 0); the numbers of the '
    "reading are stored. Keep string readings in InfluxDB, or map them to numbers in the "
    "profile (`map:`).",
}


def reasons_table() -> str:
    """The Markdown table of every reason, for the docs."""
    lines = ["| kind | reason | what it means, what to do |", "|---|---|---|"]
    for kind, reasons in (("dead letter", DeadLetterReason), ("dropped", DropReason)):
        lines.extend(f"| {kind} | `{reason}` | {WHAT_TO_DO[reason]} |" for reason in reasons)
    return "\n".join(lines) + "\n"
