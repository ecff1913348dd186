"""The outage phase: the gateway at half its drain rate through an InfluxDB outage.

The Speed issue's two remaining targets: RSS flat (within 10%) through an InfluxDB outage at
the benchmark's half rate, because the backlog lives in the disk spool and the broker, not in
memory; and spool replay after the outage at 50,000 points/s or more while live traffic keeps
flowing.

Live traffic is the latency pool published over and over at the given rate (the same points
again: InfluxDB overwrites them, the gateway does all its work for each). influxd is stopped
for `outage_s` and started again on the same port and data. RSS (VmRSS of the gateway) is
sampled every second from just before the outage until the spool is replayed. The replay is
over when InfluxDB has accepted every point published up to 2 s before (the normal latency);
its rate is the points that were waiting when influxd came back, divided by that time.
influxd's accepted-points counter starts from 0 when it restarts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from benchmarks.backlog import Readings
from benchmarks.influx import points_written
from benchmarks.proc import rss_mb
from benchmarks.publish import Publisher
from tests.servers import Influxd, Mosquitto

_SAMPLE_S = 1.0
_LATENCY_ALLOWANCE_S = 2.0  # a point published this recently may still be in a batch
_POLL_S = 0.1


@dataclass(slots=True)
class _LiveTraffic:
    """A thread publishing the pool round and round at `rate`; counts published points."""

    broker: Mosquitto
    pool: Readings
    rate: float
    stop: threading.Event = field(default_factory=threading.Event)
    published: list[tuple[float, int]] = field(default_factory=list)  # (time, points so far)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        publisher = Publisher(self.broker)
        points = [len(p) for p in self.pool.points_of_message]
        try:
            publisher.publish_forever(
                self.pool.messages, points, self.rate, self.stop, self.published
            )
        finally:
            publisher.close()

    def points_before(self, moment: float) -> int:
        """Points published up to `moment` (monotonic)."""
        count = 0
        for stamp, total in reversed(self.published):
            if stamp <= moment:
                count = total
                break
        return count

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def outage_phase(  # noqa: PLR0917  # one phase, its inputs
    broker: Mosquitto,
    influxd: Influxd,
    gateway_pid: int,
    pool: Readings,
    rate: float,
    outage_s: float,
    timeout_s: float,
) -> dict[str, float]:
    live = _LiveTraffic(broker, pool, rate)
    written_at_start = points_written(influxd)
    live.start()
    samples: list[float] = []
    try:
        _sample_for(gateway_pid, 3.0, samples)  # steady state before the outage
        outage_from = len(samples) - 1
        before_outage = samples[outage_from]
        written_before_outage = points_written(influxd) - written_at_start
        influxd.stop()
        _sample_for(gateway_pid, outage_s, samples)
        influxd.start()
        back_at = time.monotonic()
        waiting = live.points_before(back_at) - written_before_outage
        # A longer outage leaves a longer backlog: allow the replay as long as the outage.
        caught_up = _wait_caught_up(influxd, live, written_before_outage, gateway_pid, samples,
                                    max(timeout_s, outage_s))  # fmt: skip
    finally:
        live.finish()
    replay_s = max(caught_up - back_at, 1e-3)
    outage_samples = samples[outage_from:]
    return {
        "outage_s": outage_s,
        "rate_messages_per_s": round(rate),
        "rss_mb_before": round(before_outage, 1),
        "rss_mb_max": round(max(outage_samples), 1),
        "rss_growth_pct": round((max(outage_samples) / before_outage - 1) * 100, 1),
        "points_waiting_at_restart": waiting,
        "replay_s": round(replay_s, 1),
        "replay_points_per_s": round(waiting / replay_s),
    }


def _sample_for(pid: int, seconds: float, samples: list[float]) -> None:
    deadline = time.monotonic() + seconds
    while True:
        samples.append(rss_mb(pid))
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(_SAMPLE_S, left))


def _wait_caught_up(  # noqa: PLR0917  # the state of the phase
    influxd: Influxd,
    live: _LiveTraffic,
    written_before_outage: int,
    pid: int,
    samples: list[float],
    timeout_s: float,
) -> float:
    """When InfluxDB has accepted every point published up to the latency allowance ago."""
    deadline = time.monotonic() + timeout_s
    next_sample = 0.0
    while (now := time.monotonic()) < deadline:
        if now >= next_sample:
            samples.append(rss_mb(pid))
            next_sample = now + _SAMPLE_S
        target = live.points_before(now - _LATENCY_ALLOWANCE_S)
        if written_before_outage + points_written(influxd) >= target:
            return now
        time.sleep(_POLL_S)
    raise RuntimeError(f"the gateway did not catch up within {timeout_s} s after the outage")
