"""Simulated time and the town's local calendar.

Devices never read the wall clock: each owns a `SimClock` that moves by one reporting interval
per message, so a seeded run produces the same timestamps on every machine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

# Viet Nam has kept UTC+7 without daylight saving since 1975, so a fixed offset is exact for
# Asia/Ho_Chi_Minh and keeps the simulators independent of the tz database.
LOCAL_UTC_OFFSET_S = 7 * 3600
LOCAL_TZ = timezone(timedelta(seconds=LOCAL_UTC_OFFSET_S), "ICT")

MS_PER_S = 1000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
_S_PER_DAY = 86_400
# 1970-01-01 was a Thursday; with Monday = 0 (datetime.weekday) that is 3.
_EPOCH_WEEKDAY = 3


class SimClock:
    """One device's clock: it only moves when the device reports."""

    __slots__ = ("now_ms",)

    def __init__(self, start_ms: int) -> None:
        self.now_ms = start_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += round(seconds * MS_PER_S)


def local_hour(epoch_ms: int) -> float:
    """Hour of the local day as a float, e.g. 17.5 for 17:30 in Mỹ Hào."""
    local_s = epoch_ms / MS_PER_S + LOCAL_UTC_OFFSET_S
    return (local_s % _S_PER_DAY) / 3600


def local_weekday(epoch_ms: int) -> int:
    """Local day of the week, Monday = 0 ... Sunday = 6 (as `datetime.weekday`)."""
    local_day = (epoch_ms // MS_PER_S + LOCAL_UTC_OFFSET_S) // _S_PER_DAY
    return (local_day + _EPOCH_WEEKDAY) % 7


def local_iso_ms(epoch_ms: int) -> str:
    """ISO 8601 local time with milliseconds and offset: 2026-11-24T08:00:00.123+07:00."""
    seconds, millis = divmod(epoch_ms, MS_PER_S)
    local = datetime.fromtimestamp(seconds, LOCAL_TZ).replace(microsecond=millis * 1000)
    return local.isoformat(timespec="milliseconds")


def parse_start(text: str) -> int:
    """Epoch milliseconds from an ISO 8601 time that names its offset (or ends in Z)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        msg = f"start time {text!r} has no UTC offset; add one, e.g. +07:00 or Z"
        raise ValueError(msg)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def wall_now_ms() -> int:
    """Now, rounded down to the second, in epoch milliseconds."""
    return int(datetime.now(UTC).timestamp()) * MS_PER_S


def local_naive_s(epoch_s: int, sep: str = "T") -> str:
    """Local wall-clock time without an offset, as controllers and dataloggers whose clocks
    run on ICT stamp their reports: 2026-11-24T08:00:00 (or with sep=" ")."""
    local = datetime.fromtimestamp(epoch_s, LOCAL_TZ).replace(tzinfo=None)
    return local.isoformat(sep=sep, timespec="seconds")


def utc_rfc3339(epoch_us: int) -> str:
    """UTC time as Go servers print it (RFC 3339 with Z; time.RFC3339Nano drops trailing zeros
    of the fraction): 2026-11-24T01:00:00.1234Z, 2026-11-24T01:00:07Z."""
    seconds, micros = divmod(epoch_us, 1_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{micros:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"
