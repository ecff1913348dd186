"""The benchmark's readings: a mixed town from the simulators' own device models.

Payloads come from `simulators.fleet` (the same generators `python -m simulators` publishes),
pre-generated once per benchmark so every run and every contender gets the same bytes. The
gateway never sees this module: it only receives the MQTT messages.

Times: the backlog ends a week before now and the latency phase ends now, so both stay inside
the profiles' clock tolerance (30 days back) and never share a point key.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from simulators.fleet import build_fleet

# 10,000 distinct devices of every simulated kind (lighting, water, traffic, connectivity):
# the RSS target is stated for a town of this size.
TOWN = {
    "lighting": 3000,
    "water": 1500,
    "tanks": 300,
    "quality-probes": 400,
    "traffic": 1200,
    "radars": 600,
    "signals": 800,
    "speed-probes": 1200,
    "site-monitors": 1000,
}
_WEEK_MS = 7 * 86_400_000

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
"""(measurement, sorted tags): one InfluxDB series."""


PointKey = tuple[SeriesKey, int]
"""(series, time in ns): one point; a point written twice is stored once."""


@dataclass(frozen=True, slots=True)
class Readings:
    """Messages to publish, in order, and the points each must become in InfluxDB."""

    messages: list[tuple[str, bytes]]  # (topic, payload)
    points_of_message: list[list[PointKey]]

    def prefix(self, count: int) -> Readings:
        return Readings(self.messages[:count], self.points_of_message[:count])

    @property
    def series(self) -> Counter[SeriesKey]:
        """Distinct points per series: what InfluxDB must hold."""
        keys = {key for points in self.points_of_message for key in points}
        return Counter(series for series, _ in keys)

    @property
    def points(self) -> int:
        return sum(len(points) for points in self.points_of_message)

    @property
    def measurements(self) -> list[str]:
        return sorted({key[0][0] for points in self.points_of_message for key in points})


def town_readings(messages: int, *, seed: int, end_ms: int, devices_scale: float = 1.0) -> Readings:
    """`messages` round-robin reports of the town, the last of each device one interval before
    `end_ms`. `devices_scale` shrinks the town for smoke runs."""
    counts = {kind: max(1, round(count * devices_scale)) for kind, count in TOWN.items()}
    fleet = build_fleet(counts, seed=seed, total_messages=messages, start_ms=None, now_ms=end_ms)
    published: list[tuple[str, bytes]] = []
    points: list[list[PointKey]] = []
    for outgoing in fleet.messages():
        published.append((outgoing.topic, outgoing.payload))
        points.append(
            [
                ((reading.measurement, tuple(sorted(reading.tags.items()))), reading.time_ns)
                for reading in outgoing.readings
            ]
        )
    return Readings(published, points)


def backlog_end_ms() -> int:
    return int(time.time() * 1000) - _WEEK_MS


def latency_end_ms() -> int:
    return int(time.time() * 1000)
